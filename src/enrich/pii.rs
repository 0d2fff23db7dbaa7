//! Detectors for things that must never be stored: PII-looking parameter names and values.
//! Used on URL query parameters, referrers and custom properties. Err on the side of removing.

/// Parameter or property names that look like they carry personal data or credentials,
/// in any case and separator style (`user_email`, `userEmail`, `E-Mail`, `access-token`).
pub fn is_pii_name(name: &str) -> bool {
    // Letters and digits only, lower-cased, in a stack buffer: names are short.
    let mut buf = [0u8; 64];
    let mut len = 0;
    for c in name.chars().filter(|c| c.is_alphanumeric()) {
        for l in c.to_lowercase() {
            let mut tmp = [0u8; 4];
            let enc = l.encode_utf8(&mut tmp).as_bytes();
            if len + enc.len() > buf.len() {
                return true; // a 64-byte parameter name is not one we need to keep
            }
            buf[len..len + enc.len()].copy_from_slice(enc);
            len += enc.len();
        }
    }
    let n = &buf[..len];
    if n.is_empty() {
        return false;
    }
    const EXACT: &[&[u8]] = &[
        b"name", b"fname", b"lname", b"mname", b"surname", b"nickname", b"tel", b"mobile", b"cell", b"ssn", b"sid", b"dob", b"pin",
        b"otp", b"key", b"pass", b"pwd", b"zip", b"zipcode", b"postcode", b"iban", b"cvv", b"cvc", b"sig", b"signature", b"code",
        b"nonce", b"jwt", b"bearer", b"ip",
    ];
    const CONTAINS: &[&[u8]] = &[
        b"email", b"phone", b"firstname", b"lastname", b"fullname", b"middlename", b"username", b"displayname", b"realname",
        b"givenname", b"familyname", b"customername", b"address", b"street", b"postalcode", b"token", b"password", b"passwd",
        b"passphrase", b"secret", b"session", b"sessid", b"ssn", b"socialsecurity", b"apikey", b"accesskey", b"privatekey",
        b"creditcard", b"cardnumber", b"ccnumber", b"birthdate", b"birthday", b"dateofbirth", b"passport", b"license",
        b"credential", b"telephone", b"cellphone", b"msisdn", b"taxid", b"nationalid",
    ];
    if EXACT.contains(&n) {
        return true;
    }
    for i in 0..n.len() {
        let rest = &n[i..];
        if CONTAINS.iter().any(|t| t[0] == rest[0] && rest.starts_with(t)) {
            return true;
        }
        // auth, oauth, authorization, authcode, x-auth ... but not author/authors (blogs).
        if rest.starts_with(b"auth") && !(rest.starts_with(b"author") && !rest.starts_with(b"authoriz")) {
            return true;
        }
    }
    false
}

/// Values that look like PII or secrets whatever their name.
pub fn is_pii_value(v: &str) -> bool {
    let v = v.trim();
    !v.is_empty()
        && (looks_like_email(v)
            || looks_like_jwt(v)
            || looks_like_token(v)
            || digit_runs(v).any(|run| looks_like_card(run) || looks_like_phone(run)))
}

/// Maximal runs of digits and the separators numbers are written with, trimmed, that hold
/// at least seven digits: the candidates for phone and card numbers inside free text.
fn digit_runs(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '+')))
        .map(|run| run.trim_matches(|c: char| matches!(c, ' ' | '-' | '.')))
        .filter(|run| run.bytes().filter(u8::is_ascii_digit).count() >= 7)
}

pub fn looks_like_email(v: &str) -> bool {
    if !v.contains('@') {
        return false;
    }
    // anywhere in the value: "contact me at a@b.co" counts too
    v.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"' | '\'' | '(' | ')' | ':' | '/'))
        .any(|w| {
            let Some((local, domain)) = w.split_once('@') else { return false };
            !local.is_empty()
                && domain.len() >= 3
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        })
}

fn digits_of(v: &str, allowed_seps: &[char]) -> Option<Vec<u8>> {
    let mut d = Vec::with_capacity(v.len());
    for c in v.chars() {
        if let Some(x) = c.to_digit(10) {
            d.push(x as u8);
        } else if !allowed_seps.contains(&c) {
            return None;
        }
    }
    Some(d)
}

/// 13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
pub fn looks_like_card(v: &str) -> bool {
    match digits_of(v, &[' ', '-']) {
        Some(d) if (13..=19).contains(&d.len()) => luhn(&d),
        _ => false,
    }
}

pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// International (+44 20 7946 0958) or grouped (555-123-4567, (555) 123 4567) numbers.
/// Bare digit runs (ids, epoch seconds) and ISO dates are not phone numbers.
pub fn looks_like_phone(v: &str) -> bool {
    let Some(d) = digits_of(v, &[' ', '-', '.', '(', ')', '+']) else { return false };
    if !(7..=15).contains(&d.len()) {
        return false;
    }
    if v.matches('+').count() > 1 || (v.contains('+') && !v.starts_with('+')) {
        return false;
    }
    let is_iso_date = v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    let grouped = v.contains([' ', '-', '.', '(', ')']);
    !is_iso_date && (v.starts_with('+') || grouped)
}

/// Three base64url segments, the first a JSON header (`eyJ`).
pub fn looks_like_jwt(v: &str) -> bool {
    if !v.starts_with("eyJ") {
        return false;
    }
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'='))
}

/// Long opaque strings (API keys, session ids, password-reset tokens): 32+ characters of
/// base64/hex alphabet that mix letters and digits.
pub fn looks_like_token(v: &str) -> bool {
    v.len() >= 32
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=' | b'.'))
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_any_case_and_separator_style() {
        for n in [
            "email", "EMAIL", "e-mail", "user_email", "userEmail", "Email-Address", "phone", "phone_number", "PhoneNumber",
            "tel", "name", "first_name", "lastName", "full-name", "username", "address", "street_address", "token",
            "access_token", "id_token", "refreshToken", "password", "PASSWD", "pwd", "secret", "client_secret", "session",
            "sessionId", "PHPSESSID", "JSESSIONID", "auth", "Authorization", "oauth_verifier", "auth_code", "ssn", "SSN",
            "social-security-number", "api_key", "apiKey", "cc_number", "zip",
        ] {
            assert!(is_pii_name(n), "{n} should be PII");
        }
        for n in ["utm_source", "gclid", "page", "q", "ref", "lang", "id", "sort", "author", "authors", "campaign", "filename", "product"] {
            assert!(!is_pii_name(n), "{n} should not be PII");
        }
    }

    #[test]
    fn emails() {
        assert!(looks_like_email("jane.doe@example.com"));
        assert!(looks_like_email("mail me: jane+x@mail.example.co.uk"));
        assert!(!looks_like_email("@handle"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("plain text"));
    }

    #[test]
    fn cards_pass_luhn_only() {
        assert!(looks_like_card("4111111111111111"));
        assert!(looks_like_card("4111 1111 1111 1111"));
        assert!(looks_like_card("5500-0000-0000-0004"));
        assert!(looks_like_card("378282246310005")); // amex, 15
        assert!(!looks_like_card("4111111111111112")); // fails Luhn
        assert!(!looks_like_card("123456789012")); // too short
    }

    #[test]
    fn phones_but_not_ids_or_dates() {
        assert!(looks_like_phone("+44 20 7946 0958"));
        assert!(looks_like_phone("+14155550123"));
        assert!(looks_like_phone("(555) 123-4567"));
        assert!(looks_like_phone("555-123-4567"));
        assert!(!looks_like_phone("1700000000")); // epoch seconds
        assert!(!looks_like_phone("2026-11-22"));
        assert!(!looks_like_phone("12-34"));
        assert!(!looks_like_phone("v1.2.3"));
    }

    #[test]
    fn numbers_inside_free_text() {
        assert!(is_pii_value("call +44 20 7946 0958 after 5"));
        assert!(is_pii_value("card: 4111 1111 1111 1111."));
        assert!(is_pii_value("reach me on (555) 123-4567"));
        assert!(!is_pii_value("order 1700000000 shipped"));
        assert!(!is_pii_value("released 2026-11-22"));
    }

    #[test]
    fn jwts_and_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(looks_like_jwt(jwt));
        assert!(is_pii_value(jwt));
        assert!(looks_like_token("sk_live_4eC39HqLyjWDarjtT1zdp7dc1234567890"));
        assert!(looks_like_token("d41d8cd98f00b204e9800998ecf8427e"));
        assert!(!looks_like_token("summer-sale-2026")); // too short
        assert!(!looks_like_token(&"a".repeat(40))); // no digits: a slug, not a token
        assert!(!is_pii_value("pricing"));
        assert!(!is_pii_value("42"));
    }
}
