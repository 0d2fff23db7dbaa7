//! Secrets that the text around them names, whatever their own shape, as Sentry Relay's
//! `@password` rule finds them: the token after `Bearer` (an `Authorization` header's value,
//! RFC 6750), and the value after a credential's name and `=` or `:` (`token=...`,
//! `"password":"..."`, `api_key: ...`). Only the value is a match, so a redacted text keeps
//! its label: `Bearer [secret]`, `token=[secret]`.
//!
//! Prose stays: a value must be 4 characters or more, and after an unquoted `name:` it must hold
//! a digit or a token's punctuation (`Token: what it is`, `OAuth: Login with Google` stay).

use std::ops::Range;

/// Parts of a credential's name, in its letters and digits lower-cased (`reset_token`,
/// `X-Api-Key`, `accessToken`, `PGPASSWORD`). `code` and `key` alone are not among them:
/// `Error code: 500`, `key: value` in prose.
const CREDENTIAL_PARTS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "sessionid",
    "sessid",
    "csrf",
    "xsrf",
    "jwt",
    "authorization",
    "bearer",
    "cookie",
];
/// Whole names that are credentials only alone.
const CREDENTIAL_NAMES: &[&str] = &["pwd", "pass", "otp", "pin", "auth", "sid", "session"];

const MIN_VALUE: usize = 4;

/// Every labelled secret's value in `text`, in order.
pub fn labelled_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    for (i, &b) in s.iter().enumerate() {
        let found = match b {
            b'=' | b':' => value_after_name(s, i),
            b'b' | b'B' => token_after_bearer(s, i),
            _ => None,
        };
        if let Some(r) = found.filter(|r| out.last().is_none_or(|l: &Range<usize>| r.start >= l.end)) {
            out.push(r);
        }
    }
    out
}

/// The token after `Bearer ` at `i`: RFC 6750's characters, with a digit or punctuation in it.
fn token_after_bearer(s: &[u8], i: usize) -> Option<Range<usize>> {
    let word = s.get(i..i + 6)?;
    if !word.eq_ignore_ascii_case(b"bearer") || i.checked_sub(1).is_some_and(|p| s[p].is_ascii_alphanumeric()) {
        return None;
    }
    let start = skip(s, i + 6, |b| b == b' ' || b == b'\t');
    if start == i + 6 {
        return None;
    }
    let end = skip(s, start, |b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    let end = skip(s, end, |b| b == b'=');
    let token = &s[start..end];
    (token.len() >= MIN_VALUE && token.iter().any(|b| !b.is_ascii_alphabetic())).then_some(start..end)
}

/// The value after a credential's name and the `=` or `:` at `i`: quoted (JSON's
/// `"password":"hunter2"`) up to its quote, else up to a space or a delimiter.
fn value_after_name(s: &[u8], i: usize) -> Option<Range<usize>> {
    let colon = s[i] == b':';
    // The name: letters, digits, `_`, `-`, `.`, ending at the separator (or at a quote, then spaces).
    let mut end = i;
    while end > 0 && s[end - 1] == b' ' {
        end -= 1;
    }
    if end > 0 && matches!(s[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && (s[start - 1].is_ascii_alphanumeric() || matches!(s[start - 1], b'_' | b'-' | b'.')) {
        start -= 1;
    }
    if start == end || !is_credential_name(&s[start..end]) {
        return None;
    }
    let at = skip(s, i + 1, |b| b == b' ');
    let (from, to, quoted) = match s.get(at) {
        Some(&q @ (b'"' | b'\'')) => (at + 1, skip(s, at + 1, |b| b != q), true),
        _ => (at, skip(s, at, |b| !b.is_ascii_whitespace() && !b"&;,'\"}<>)]#".contains(&b)), false),
    };
    let value = &s[from..to];
    let looks_like_data = !colon || quoted || value.iter().any(|b| !b.is_ascii_alphabetic());
    (value.len() >= MIN_VALUE && looks_like_data).then_some(from..to)
}

fn is_credential_name(name: &[u8]) -> bool {
    let n: String = name.iter().filter(|b| b.is_ascii_alphanumeric()).map(|b| b.to_ascii_lowercase() as char).collect();
    CREDENTIAL_NAMES.contains(&n.as_str()) || CREDENTIAL_PARTS.iter().any(|p| n.contains(p))
}

fn skip(s: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    from + s[from.min(s.len())..].iter().take_while(|&&b| ok(b)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        labelled_spans(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(found("Authorization: Bearer mF_9.B5f-4.1JqM"), ["mF_9.B5f-4.1JqM"]);
        assert_eq!(found("bearer\tYWxhZGRpbjpvcGVuc2VzYW1l=="), ["YWxhZGRpbjpvcGVuc2VzYW1l=="]);
        assert!(found("Bearer of bad news, bearer token, Bearer").is_empty());
        assert!(found("StandardBearer abc123").is_empty(), "a word that ends in bearer");
    }

    #[test]
    fn values_after_a_credentials_name() {
        assert_eq!(found("?reset_token=Xk29fLq0Zp&plan=pro"), ["Xk29fLq0Zp"]);
        assert_eq!(found(r#"{"password":"hunter two","user":"x"}"#), ["hunter two"]);
        assert_eq!(found("login failed for api_key: 7Yq2mZp4, retrying"), ["7Yq2mZp4"]);
        assert_eq!(found("X-Api-Key = 'abcd efgh'"), ["abcd efgh"]);
        assert_eq!(found("PGPASSWORD=geheim psql"), ["geheim"]);
        assert_eq!(found("accessToken:eyJhbGc1; sid=a1b2c3"), ["eyJhbGc1", "a1b2c3"]);
    }

    #[test]
    fn prose_and_short_values_stay() {
        for t in [
            "Token: what it is",
            "OAuth: Login with Google",
            "Error code: 500",
            "Forgot password? Reset it",
            "pin=12",
            "key: value",
            "https://a.com/x",
        ] {
            assert!(found(t).is_empty(), "{t}");
        }
    }

    #[test]
    fn never_panics_at_the_edges() {
        for t in ["=", ":", "token=", "token:\"", "Bearer ", "bearer", "é token=é€abc", "\"token\"", "b"] {
            let _ = found(t);
        }
    }
}
