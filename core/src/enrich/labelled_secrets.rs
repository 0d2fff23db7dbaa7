//! Secrets that the text around them names, whatever their own shape, as Sentry Relay's
//! `@password` rule finds them: the token after `Bearer` (an `Authorization` header's value,
//! RFC 6750), and the value after a credential's name and `=` or `:` (`token=...`,
//! `"password":"..."`, `api_key: ...`). Only the value is a match, so a redacted text keeps
//! its label: `Bearer [secret]`, `token=[secret]`.
//!
//! Prose and namespaced names stay: a value must be 4 characters or more, and after an unquoted
//! `name:` hold digits and letters both, or digits alone after a code's or a password's name
//! (`Token: what it is`, `auth:sign_up`, `Session: 10:30` stay; `password: hunter2`,
//! `otp: 493021` go; so do `auth:login_v2` and `Token: ERC-20`: removing errs on the safe
//! side). `Basic <credentials>` is found as `Bearer <token>` is, when the credentials hold a
//! digit or base64's `+`, `/` or `=`.

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
            b'b' | b'B' => token_after_scheme(s, i),
            _ => None,
        };
        if let Some(r) = found.filter(|r| out.last().is_none_or(|l: &Range<usize>| r.start >= l.end)) {
            out.push(r);
        }
    }
    out
}

/// The credentials after an `Authorization` scheme at `i`: `Bearer <token>` (RFC 6750's
/// characters, with a digit or punctuation in it), or `Basic <base64>` (8 characters or more,
/// with a digit or `+`, `/`, `=`: `Basic plan` stays).
fn token_after_scheme(s: &[u8], i: usize) -> Option<Range<usize>> {
    let (scheme_len, min, tell): (usize, usize, fn(&u8) -> bool) = if s.get(i..i + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer")) {
        (6, MIN_VALUE, |b| !b.is_ascii_alphabetic())
    } else if s.get(i..i + 5).is_some_and(|w| w.eq_ignore_ascii_case(b"basic")) {
        (5, 8, |b| b.is_ascii_digit() || b"+/=".contains(b))
    } else {
        return None;
    };
    if i.checked_sub(1).is_some_and(|p| s[p].is_ascii_alphanumeric()) {
        return None;
    }
    let start = skip(s, i + scheme_len, |b| b == b' ' || b == b'\t');
    if start == i + scheme_len {
        return None;
    }
    let end = skip(s, start, |b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    let end = skip(s, end, |b| b == b'=');
    let token = &s[start..end];
    (token.len() >= min && token.iter().any(tell)).then_some(start..end)
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
    let quoted_name = end > 0 && matches!(s[end - 1], b'"' | b'\'');
    if quoted_name {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && (s[start - 1].is_ascii_alphanumeric() || matches!(s[start - 1], b'_' | b'-' | b'.')) {
        start -= 1;
    }
    let name = normalized(&s[start..end]);
    if name.is_empty() || !is_credential_name(&name) {
        return None;
    }
    let at = skip(s, i + 1, |b| b == b' ');
    let (from, to, quoted) = match s.get(at) {
        Some(&q @ (b'"' | b'\'')) => (at + 1, quoted_end(s, at + 1, q), true),
        _ => (at, skip(s, at, |b| !b.is_ascii_whitespace() && !b"&;,'\"}<>)]#".contains(&b)), false),
    };
    let value = &s[from..to];
    // After a prose `name:` (a title, a namespaced event name): a value with digits and letters
    // (`hunter2`), or digits alone after a code's or a password's name (`otp: 493021`).
    let digits = value.iter().any(u8::is_ascii_digit);
    let reads_as_secret = digits && (value.iter().any(u8::is_ascii_alphabetic) || is_numeric_secret_name(&name));
    (value.len() >= MIN_VALUE && (!colon || quoted || quoted_name || reads_as_secret)).then_some(from..to)
}

/// Where a value quoted by `q` that starts at `from` ends: its first quote not escaped by a
/// backslash, or the end of the text.
fn quoted_end(s: &[u8], from: usize, q: u8) -> usize {
    let mut i = from;
    while i < s.len() && s[i] != q {
        i += if s[i] == b'\\' { 2 } else { 1 };
    }
    i.min(s.len())
}

/// A name's letters and digits, lower-cased, as the lists above spell names (`X-Api-Key` is
/// `xapikey`).
fn normalized(name: &[u8]) -> String {
    name.iter().filter(|b| b.is_ascii_alphanumeric()).map(|b| b.to_ascii_lowercase() as char).collect()
}

/// Names (`normalized`) whose value may be digits alone: one-time codes, PINs, passwords.
fn is_numeric_secret_name(n: &str) -> bool {
    ["pin", "otp", "pwd", "pass", "totp"].contains(&n) || ["password", "passwd", "passcode"].iter().any(|p| n.contains(p))
}

/// Whether a name (`normalized`) is a credential's.
fn is_credential_name(n: &str) -> bool {
    CREDENTIAL_NAMES.contains(&n) || CREDENTIAL_PARTS.iter().any(|p| n.contains(p))
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

    /// A JSON name's value is data, numbers too; after a prose `name:`, a value with digits and
    /// letters, or digits alone after a code's or password's name.
    #[test]
    fn numeric_secrets_and_short_passwords() {
        assert_eq!(found(r#"{"pin":4821,"otp":493021,"password":12345678}"#), ["4821", "493021", "12345678"]);
        assert_eq!(found("Invalid otp: 493021"), ["493021"]);
        assert_eq!(found("password: hunter2"), ["hunter2"]);
    }

    #[test]
    fn basic_credentials_and_escaped_quotes() {
        assert_eq!(found("Authorization: Basic dXNlcjpodW50ZXIy"), ["dXNlcjpodW50ZXIy"]);
        assert_eq!(found(r#"{"password":"\"Xk29fLq0Zp"}"#), [r#"\"Xk29fLq0Zp"#]);
        assert_eq!(found(r#"{"password":"p@ss\"w0rd123","x":1}"#), [r#"p@ss\"w0rd123"#]);
    }

    #[test]
    fn prose_and_short_values_stay() {
        for t in [
            "Token: what it is",
            "auth:sign_up",
            "Auth: Sign-in",
            "Session: 10:30 AM",
            "Basic plan",
            "Basic Authentication",
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
        for t in ["=", ":", "token=", "token:\"", "token:\"\\", "Bearer ", "basic", "Basic ", "bearer", "é token=é€abc", "\"token\"", "b"]
        {
            let _ = found(t);
        }
    }
}
