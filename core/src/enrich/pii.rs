//! Detectors for things that must never be stored: PII-looking parameter names and values,
//! judged in every percent-decoded form. Used on URL query parameters, path segments, matrix
//! parameters, fragments, referrers, titles, event names and custom properties. Err on the side
//! of removing. What is found inside a value lives in `text_pii` (contact details, addresses,
//! numbers) and `secrets` (credentials of well-known shapes).

use super::{secrets, text_pii};
use crate::percent::decode_lossy;

/// Parts of a name (letters and digits, lower-cased) that mark it wherever they occur.
const CONTAINS: &[&[u8]] = &[
    // a person's id in the customer's systems, in any name that holds it (`crm_user_id`,
    // `userIds`); the shorter names are exact (EXACT)
    b"userid",
    b"email",
    b"phone",
    b"firstname",
    b"lastname",
    b"fullname",
    b"middlename",
    b"username",
    b"displayname",
    b"realname",
    b"givenname",
    b"familyname",
    b"customername",
    b"address",
    b"street",
    b"postalcode",
    b"token",
    b"password",
    b"passwd",
    b"passphrase",
    b"secret",
    b"session",
    b"sessid",
    b"ssn",
    b"socialsecurity",
    b"apikey",
    b"accesskey",
    b"privatekey",
    b"creditcard",
    b"cardnumber",
    b"ccnumber",
    b"birthdate",
    b"birthday",
    b"dateofbirth",
    b"passport",
    b"license",
    b"credential",
    b"telephone",
    b"cellphone",
    b"msisdn",
    b"taxid",
    b"nationalid",
    // database passwords (`MYSQL_PWD`, `PGPASSWORD`), one-time codes, CSRF tokens, JWT cookies
    b"pwd",
    b"twofactor",
    b"totp",
    b"otpcode",
    b"mfacode",
    b"csrf",
    b"xsrf",
    b"jwt",
    // the name of a card's or an account's holder, or on a bill or a parcel
    b"cardholder",
    b"nameoncard",
    b"accountholder",
    b"billingname",
    b"shippingname",
    b"holdername",
];

/// For each first byte, which of CONTAINS start with it (bit k: CONTAINS[k]), so a position of
/// a name is compared only with the parts that could start there.
const CONTAINS_BY_FIRST: [u128; 256] = {
    assert!(CONTAINS.len() <= 128, "one bit a part");
    let mut table = [0u128; 256];
    let mut k = 0;
    while k < CONTAINS.len() {
        table[CONTAINS[k][0] as usize] |= 1 << k;
        k += 1;
    }
    table
};

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
        b"name",
        b"fname",
        b"lname",
        b"mname",
        b"surname",
        b"nickname",
        b"tel",
        b"mobile",
        b"cell",
        b"ssn",
        b"sid",
        b"dob",
        b"pin",
        b"otp",
        b"key",
        b"pass",
        b"zip",
        b"zipcode",
        b"postcode",
        b"cvv",
        b"cvc",
        b"sig",
        b"signature",
        b"code",
        b"nonce",
        b"bearer",
        b"ip",
        // one-time codes, and session cookies of well-known services and frameworks
        b"mfa",
        b"sudo",
        b"su",
        b"sentrysid",
        b"connectsid",
        b"symfony",
        b"setcookie",
        // a card holder's name: the autofill name (`cc-name`) and `card[name]`
        b"ccname",
        b"cardname",
        // Mailchimp's subscriber id (`mc_eid`): the same on every e-mail to one address
        b"mceid",
        // The id a customer's own systems give a person or their device: personal data there.
        // Stored as a keyed hash, such a property would be the person's visitor id (a user id's
        // form) in rows an erasure of the person never reaches and in aggregates that outlive
        // it; so it goes, as a URL parameter of that name does. Longer names holding `userid`
        // are in CONTAINS.
        b"uid",
        b"useruuid",
        b"customerid",
        b"custid",
        b"distinctid",
        b"accountid",
        b"memberid",
        b"personid",
        b"contactid",
        b"subscriberid",
        b"profileid",
        b"externalid",
        b"anonymousid",
        b"visitorid",
        b"clientid",
        b"deviceid",
        // Segment's query parameters naming the user and the anonymous visitor (analytics.js reads them)
        b"ajsuid",
        b"ajsaid",
    ];
    if EXACT.contains(&n) || has_word(name, &["iban", "2fa"]) {
        return true;
    }
    for i in 0..n.len() {
        let rest = &n[i..];
        let mut candidates = CONTAINS_BY_FIRST[rest[0] as usize];
        while candidates != 0 {
            if rest.starts_with(CONTAINS[candidates.trailing_zeros() as usize]) {
                return true;
            }
            candidates &= candidates - 1;
        }
        // auth, oauth, authorization, authcode, x-auth ... but not author/authors (blogs).
        if rest.starts_with(b"auth") && (!rest.starts_with(b"author") || rest.starts_with(b"authoriz")) {
            return true;
        }
    }
    false
}

/// Whether one of `words` is a word of `name` of its own, in any case: it starts where a word
/// starts (the name's start, after a separator, a lower-case letter before a capital, a letter
/// before a digit or a digit before a letter: `has2FA`, `bankIBAN`) and ends where one ends
/// (the end, a separator, a capital, a digit, or a plural `s` at the end: `IBANNumber`,
/// `iban2`, `IBANs`). So short names are not spelled by letters across a word boundary
/// (`ui_banner`, `v2_fast`) or inside a longer word (`Ibanez`).
fn has_word(name: &str, words: &[&str]) -> bool {
    let b = name.as_bytes();
    (0..b.len()).filter(|&i| word_starts(b, i)).any(|i| words.iter().any(|w| word_at(b, i, w.as_bytes())))
}

fn word_starts(b: &[u8], i: usize) -> bool {
    let c = b[i];
    if !c.is_ascii_alphanumeric() {
        return false;
    }
    let Some(&p) = i.checked_sub(1).and_then(|j| b.get(j)) else { return true };
    !p.is_ascii_alphanumeric() || (p.is_ascii_lowercase() && c.is_ascii_uppercase()) || p.is_ascii_digit() != c.is_ascii_digit()
}

fn word_at(b: &[u8], i: usize, w: &[u8]) -> bool {
    let end = i + w.len();
    if end > b.len() || !b[i..end].eq_ignore_ascii_case(w) {
        return false;
    }
    match &b[end..] {
        [] => true,
        [s] if s.eq_ignore_ascii_case(&b's') => true,
        [c, ..] => !c.is_ascii_alphanumeric() || c.is_ascii_uppercase() || c.is_ascii_digit() != b[end - 1].is_ascii_digit(),
    }
}

/// How many rounds of percent-decoding a value gets. Real values are encoded once, sometimes
/// twice or three times by redirect chains; a value still changing after this many rounds is
/// not judged clean: `is_pii_value` treats it as PII, so it is removed.
pub const MAX_DECODE_ROUNDS: usize = 6;

/// Every form `v` takes while being percent-decoded, as sent first, until it is stable or
/// MAX_DECODE_ROUNDS have passed. `plus_is_space`: the value is form-encoded (a query), so the
/// first round also reads `+` as a space (the raw form keeps it, for `+44 ...`).
/// The bool says whether the last form is stable.
pub fn decoded_forms(v: &str, plus_is_space: bool) -> (Vec<String>, bool) {
    let mut forms = vec![v.to_string()];
    if !v.contains('%') && (!plus_is_space || !v.contains('+')) {
        return (forms, true);
    }
    let mut cur = if plus_is_space { v.replace('+', " ") } else { v.to_string() };
    if cur != v {
        forms.push(cur.clone());
    }
    for _ in 0..MAX_DECODE_ROUNDS {
        let next = decode_lossy(&cur);
        if next == cur {
            return (forms, true);
        }
        forms.push(next.clone());
        cur = next;
    }
    (forms, decode_lossy(&cur) == cur)
}

/// The last form of `decoded_forms`: what the value means once fully decoded.
pub fn decode_until_stable(v: &str, plus_is_space: bool) -> String {
    decoded_forms(v, plus_is_space).0.pop().expect("at least the raw form")
}

/// Values that look like PII or secrets whatever their name: an e-mail address, phone or card
/// number, IP address or secret of a known shape anywhere in any decoded form of the value
/// (`text_pii`, `secrets`), or a value still changing after MAX_DECODE_ROUNDS of decoding.
pub fn is_pii_value(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty() {
        return false;
    }
    let (forms, stable) = decoded_forms(v, true);
    !stable || forms.iter().any(|f| text_pii::contains_pii(f))
}

/// Identifiers (click ids, visitor and event ids) are long opaque strings by design, so the
/// opaque-token rule does not apply to them; every other class does, anywhere in any decoded
/// form: contact details, card and bank account numbers, IP addresses, credentials in URLs,
/// home-directory names, JWTs and secrets of known shapes. A value still changing after
/// MAX_DECODE_ROUNDS counts as personal, as in `is_pii_value`.
pub fn is_personal_id(v: &str) -> bool {
    let (forms, stable) = decoded_forms(v.trim(), false);
    !stable || forms.iter().any(|f| text_pii::holds_non_secret_match(f) || secrets::contains_known_secret_shape(f))
}

/// Free text that is stored with its personal data redacted (titles, custom event names):
/// each match becomes a marker (`[email]`, `[phone]`, `[card]`, `[ip]`, `[secret]`), the rest
/// is kept as sent. When the text only shows personal data once percent-decoded
/// (`jane%40example.com`), the decoded text is what is redacted and stored; a text that never
/// decodes to a stable form is replaced by `[redacted]`. Every decoded form is judged, not only
/// the last: `jane%40example.com%2531` shows an address one round in, and a digit glued onto
/// its domain (`jane@example.com1`) once fully decoded.
pub fn redact_text(v: &str) -> String {
    const GONE: &str = "[redacted]";
    let mut cur = text_pii::redact(v).into_owned();
    let mut decoded = false;
    for _ in 0..=MAX_DECODE_ROUNDS {
        let (mut forms, stable) = decoded_forms(&cur, false);
        if !stable {
            return GONE.to_string();
        }
        // Redact the first decoded form that shows something, then judge what that leaves.
        match forms.iter().skip(1).find(|f| text_pii::contains_pii(f)) {
            Some(shown) => cur = text_pii::redact(shown).into_owned(),
            None => return if decoded { forms.pop().expect("at least the raw form") } else { cur },
        }
        decoded = true;
    }
    GONE.to_string()
}

pub use super::text_pii::{looks_like_card, looks_like_email, looks_like_ip, looks_like_phone, luhn};

/// A JWT (or JWE) anywhere in the value.
pub fn looks_like_jwt(v: &str) -> bool {
    v.contains("eyJ") && secrets::secret_spans(v).iter().any(|r| v[r.clone()].starts_with("eyJ"))
}

/// A secret of a published shape (not merely long and opaque) anywhere in the value.
pub fn looks_like_known_secret(v: &str) -> bool {
    secrets::contains_known_secret_shape(v)
}

/// Long opaque strings (API keys, session ids, password-reset tokens): see `secrets`.
pub fn looks_like_token(v: &str) -> bool {
    secrets::looks_opaque(v.as_bytes())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: personal data seen in an intermediate decoded form only (the last form
    /// glues a decoded digit onto the domain: `jane@example.com1`) was stored.
    #[test]
    fn text_redacts_personal_data_seen_in_any_decoded_form() {
        for t in ["Invoice jane%40example.com%2531", "Invoice jane%2540example.com%252531"] {
            let r = redact_text(t);
            assert!(!r.contains("jane@") && !r.contains("jane%40") && !r.contains("jane%2540"), "{t} -> {r}");
        }
        assert_eq!(redact_text("Invoice jane%40example.com"), "Invoice [email]");
        assert_eq!(redact_text("50%25 off"), "50%25 off");
        assert!(is_personal_id("ivan@mail.xn--p1ai") && is_personal_id("ip:81.2.69.14"));
    }

    #[test]
    fn names_in_any_case_and_separator_style() {
        for n in [
            "email",
            "EMAIL",
            "e-mail",
            "user_email",
            "userEmail",
            "Email-Address",
            "phone",
            "phone_number",
            "PhoneNumber",
            "tel",
            "name",
            "first_name",
            "lastName",
            "full-name",
            "username",
            "address",
            "street_address",
            "token",
            "access_token",
            "id_token",
            "refreshToken",
            "password",
            "PASSWD",
            "pwd",
            "secret",
            "client_secret",
            "session",
            "sessionId",
            "PHPSESSID",
            "JSESSIONID",
            "auth",
            "Authorization",
            "oauth_verifier",
            "auth_code",
            "ssn",
            "SSN",
            "social-security-number",
            "api_key",
            "apiKey",
            "cc_number",
            "zip",
            // a card's or an account's holder, by name (review finding: kept before)
            "cardholder_name",
            "cardHolder",
            "name_on_card",
            "nameOnCard",
            "billing_name",
            "shippingName",
            "account_holder",
            "cc-name",
            "card[name]",
            "holderName",
        ] {
            assert!(is_pii_name(n), "{n} should be PII");
        }
        for n in ["utm_source", "gclid", "page", "q", "ref", "lang", "id", "sort", "author", "authors", "campaign", "filename", "product"] {
            assert!(!is_pii_name(n), "{n} should not be PII");
        }
    }

    /// The names Sentry Relay treats as sensitive (its password-key rule and its session and
    /// CSRF cookie names), plus one-time codes and deployment cookies of our own choosing.
    #[test]
    fn one_time_codes_database_passwords_session_and_csrf_names() {
        for n in [
            "two-factor",
            "two_factor",
            "twoFactorCode",
            "2fa",
            "2fa_code",
            "totp",
            "otp_code",
            "mfa",
            "mfa_code",
            "MYSQL_PWD",
            "mysql_pwd",
            "PGPASSWORD",
            "csrf",
            "_csrf",
            "xsrf",
            "_xsrf",
            "fastcsrf",
            "_iris_csrf",
            "csrf-token",
            "XSRF-TOKEN",
            "csrfmiddlewaretoken",
            "sentrysid",
            "sudo",
            "su",
            "symfony",
            "connect.sid",
            "_vercel_jwt",
            "set-cookie",
            "payee_iban",
            "ibanNumber",
        ] {
            assert!(is_pii_name(n), "{n} should be PII");
        }
        for n in ["has_2fa", "2fa_enabled", "customerIban", "IBAN", "bank-iban", "2FA", "has2FA", "enable2FA", "X-2FA-Code", "2FA_code"]
            .into_iter()
            .chain(["IBANNumber", "customerIBANNumber", "iban2", "IBANs", "bankIBAN", "ibanCode"])
        {
            assert!(is_pii_name(n), "{n} should be PII");
        }
        // `iban` and `2fa` are words of their own, not letters across a word boundary
        for n in [
            "ui_banner",
            "api_bandwidth",
            "wifi_band",
            "mini_bank",
            "v2_fast_checkout",
            "page2_faq",
            "level2_facet",
            "uiBanner",
            "ibanez",
            "2fast",
        ] {
            assert!(!is_pii_name(n), "{n} is an ordinary name");
        }
        for n in ["spot_price", "footprint", "hotpot", "cookie_consent", "source", "subject", "summary", "sudoku", "auXth", "jwt_docs_page"]
        {
            let expected = n == "jwt_docs_page"; // a name that holds `jwt` is taken for one: err on removing
            assert_eq!(is_pii_name(n), expected, "{n}");
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
        // a bracket is an area code only at the start, before the number
        assert!(looks_like_phone("+49 (0)30 123456"));
        assert!(looks_like_phone("(030) 1234567"));
        for v in ["1.2.3 (2026-01-15)", "2.4.1 (1234567)", "12 (345) 6789", "(2023) 256", "(1234) 567", "15 (2023) 256"] {
            assert!(!looks_like_phone(v), "{v}");
        }
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
    fn values_are_decoded_until_stable_and_bounded() {
        assert_eq!(decode_until_stable("jane%252540example.com", true), "jane@example.com");
        assert_eq!(decode_until_stable("a+b%2Bc", true), "a b+c");
        assert_eq!(decode_until_stable("a+b", false), "a+b");
        assert_eq!(decode_until_stable("100%", true), "100%");
        let (forms, stable) = decoded_forms("%2B44%2020%207946%200958", true);
        assert!(stable && forms.last().unwrap() == "+44 20 7946 0958", "{forms:?}");
        let mut deep = "x%40y.com".to_string();
        for _ in 0..MAX_DECODE_ROUNDS {
            deep = deep.replace('%', "%25");
        }
        assert!(!decoded_forms(&deep, true).1, "still changing after the last round");
        assert!(is_pii_value(&deep));
        assert!(is_pii_value("jane%252540example.com"));
        assert!(!is_pii_value("red%2520shoes"));
    }

    #[test]
    fn free_text_is_redacted_even_when_encoded() {
        assert_eq!(redact_text("Hi jane@example.com"), "Hi [email]");
        assert_eq!(redact_text("Hi jane%40example.com"), "Hi [email]");
        assert_eq!(redact_text("50% off – 100%"), "50% off – 100%");
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
