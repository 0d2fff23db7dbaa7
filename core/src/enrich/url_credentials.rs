//! Credentials embedded in URL-like text: `scheme://user:password@host` in a title, a property
//! value or a parameter, for any scheme (`postgres://`, `redis://`, `amqp://`, `ftp://`,
//! `ssh://git@host`) or none (`//user:pw@host`). The user info is the span; the scheme, the
//! `@` and the host are kept, so `pg://matt:[credentials]@db/1` still says where it pointed.
//! (The page URL's and referrer's own user info never reach a row: `url_scrub` drops it.)

use std::ops::Range;

/// RFC 3986 user info: unreserved, percent-encoded and sub-delimiter characters, and `:`.
fn userinfo_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%' | b'!' | b'$' | b'&' | b'\'' | b'*' | b'+' | b',' | b';' | b'=' | b':')
}

fn scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// `//` opens an authority when it starts the text, follows a scheme (`x:`) that itself starts
/// a word, or follows anything that is not part of a path or host (`(//u:p@h)`).
fn opens_authority(s: &[u8], slashes: usize) -> bool {
    if slashes == 0 {
        return true;
    }
    if s[slashes - 1] != b':' {
        return !(s[slashes - 1].is_ascii_alphanumeric() || matches!(s[slashes - 1], b'/' | b'.' | b'-' | b'_'));
    }
    let mut start = slashes - 1;
    while start > 0 && scheme_char(s[start - 1]) {
        start -= 1;
    }
    start < slashes - 1 && s[start].is_ascii_alphabetic() && (start == 0 || !s[start - 1].is_ascii_alphanumeric())
}

/// The user info of every URL in `text` that carries one, as byte ranges.
pub fn credential_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    for (at, _) in text.match_indices("//") {
        if !opens_authority(s, at) {
            continue;
        }
        let from = at + 2;
        let mut end = from;
        while end < s.len() && userinfo_char(s[end]) {
            end += 1;
        }
        let host_follows = s.get(end + 1).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'[');
        if end > from && s.get(end) == Some(&b'@') && host_follows && out.last().is_none_or(|r: &Range<usize>| r.end <= from) {
            out.push(from..end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(t: &str) -> String {
        let mut out = t.to_string();
        for r in credential_spans(t).into_iter().rev() {
            out.replace_range(r, "[credentials]");
        }
        out
    }

    #[test]
    fn user_info_of_any_scheme_in_any_text() {
        for (t, want) in [
            ("https://admin:hunter2@example.com/", "https://[credentials]@example.com/"),
            ("pg://matt:pass@localhost/1", "pg://[credentials]@localhost/1"),
            ("see 'redis://redis:foo@localhost:6379/0' now", "see 'redis://[credentials]@localhost:6379/0' now"),
            (
                "a redis://r:foo@localhost:6379/0 b mongodb+srv://app:S3cr%40t@cluster0.example.net/db",
                "a redis://[credentials]@localhost:6379/0 b mongodb+srv://[credentials]@cluster0.example.net/db",
            ),
            ("FTP://jane:pw@files.example.org", "FTP://[credentials]@files.example.org"),
            ("ssh://git@github.com/org/repo", "ssh://[credentials]@github.com/org/repo"),
            ("redis://:onlypassword@cache:6379", "redis://[credentials]@cache:6379"),
            ("(//user:pw@host.example)", "(//[credentials]@host.example)"),
            ("amqp://guest:guest@[::1]:5672", "amqp://[credentials]@[::1]:5672"),
        ] {
            assert_eq!(redacted(t), want, "{t}");
        }
    }

    #[test]
    fn urls_without_user_info_are_kept() {
        for t in [
            "https://medium.com/@user/post",
            "https://example.com/@handle",
            "//cdn.example/x.js",
            "npm i pkg@1.2.3",
            "postgres:///path",
            "git@github.com:org/repo.git",
            "foo@localhost",
            "https://example.com/a//b@c",
            "http://example.com/?next=//x",
            "mail me @ home://",
        ] {
            assert_eq!(redacted(t), t);
        }
    }
}
