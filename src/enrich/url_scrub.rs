//! Page URL and referrer scrubbing: drop PII-looking query parameters (by name or value),
//! drop the fragment unless the project routes by hash, and split what is left into the
//! parts the events table stores. Parsing is the `url` crate's.

use super::pii::{is_pii_name, is_pii_value, looks_like_email};
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanUrl {
    pub host: String,
    pub path: String,
    /// Query string without `?`, only the parameters that were kept, in their original spelling.
    pub query: String,
    /// Fragment without `#`, empty unless hash routing is on.
    pub fragment: String,
}

impl CleanUrl {
    /// scheme://host/path?query (no fragment): what a referrer column stores.
    pub fn without_fragment(&self, scheme: &str) -> String {
        let mut s = format!("{scheme}://{}{}", self.host, self.path);
        if !self.query.is_empty() {
            s.push('?');
            s.push_str(&self.query);
        }
        s
    }
}

/// Keep the `name=value` pairs of a raw query string that carry no PII; both name and value
/// are judged after percent-decoding, so `e%2Dmail=` and `x=a%40b.com` are caught.
pub fn scrub_query(raw: &str) -> String {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name);
            let value = decode(value);
            !is_pii_name(&name) && !is_pii_value(&value)
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(percent_decode(&s.replace('+', " ")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = (bytes[i + 1] as char).to_digit(16);
            let l = (bytes[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path segments that are email addresses (`/users/jane@example.com/settings`) become `:email`.
fn scrub_path(path: &str) -> String {
    if !path.contains('@') && !path.contains("%40") {
        return path.to_string();
    }
    path.split('/')
        .map(|seg| if looks_like_email(&percent_decode(seg)) { ":email" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Scrub a parsed http(s) URL. `keep_fragment`: the project routes by hash (`/#/pricing`);
/// then the fragment is kept, its own query part scrubbed too.
pub fn scrub(url: &Url, keep_fragment: bool) -> CleanUrl {
    let fragment = match (keep_fragment, url.fragment()) {
        (true, Some(f)) => match f.split_once('?') {
            Some((route, q)) => {
                let q = scrub_query(q);
                if q.is_empty() { route.to_string() } else { format!("{route}?{q}") }
            }
            // `#access_token=...&state=...` (OAuth implicit flow): the whole fragment is parameters.
            None if f.contains('=') => scrub_query(f),
            None => f.to_string(),
        },
        _ => String::new(),
    };
    CleanUrl {
        host: url.host_str().unwrap_or("").trim_end_matches('.').to_ascii_lowercase(),
        path: scrub_path(url.path()),
        query: url.query().map(scrub_query).unwrap_or_default(),
        fragment,
    }
}

/// Parse and scrub; None when it is not an absolute http(s) URL (a referrer like
/// `android-app://...` or garbage is dropped rather than stored raw).
pub fn parse_and_scrub(raw: &str, keep_fragment: bool) -> Option<(Url, CleanUrl)> {
    let url = Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let clean = scrub(&url, keep_fragment);
    Some((url, clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(u: &str) -> String {
        parse_and_scrub(u, false).unwrap().1.query
    }

    #[test]
    fn pii_names_are_removed_in_any_style() {
        assert_eq!(q("https://a.com/p?email=x&page=2"), "page=2");
        assert_eq!(q("https://a.com/p?UserEmail=x&E-Mail=y&e%2Dmail=z&lang=en"), "lang=en");
        assert_eq!(q("https://a.com/p?access_token=abc&refreshToken=d&sessionId=1&Password=p&ssn=1&auth=x"), "");
        assert_eq!(q("https://a.com/p?first_name=Jane&lastName=Doe&phone=1&address=x&sort=asc"), "sort=asc");
    }

    #[test]
    fn pii_values_are_removed_whatever_the_name() {
        assert_eq!(q("https://a.com/?q=jane%40example.com&x=1"), "x=1");
        assert_eq!(q("https://a.com/?c=4111+1111+1111+1111&x=1"), "x=1");
        assert_eq!(q("https://a.com/?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcDEF123_-x&x=1"), "x=1");
        assert_eq!(q("https://a.com/?m=%2B44%2020%207946%200958&x=1"), "x=1");
        assert_eq!(q("https://a.com/?r=d41d8cd98f00b204e9800998ecf8427e&x=1"), "x=1");
        // kept as sent, encoding untouched
        assert_eq!(q("https://a.com/?utm_source=news%20letter&id=1700000000"), "utm_source=news%20letter&id=1700000000");
    }

    #[test]
    fn fragments_drop_unless_hash_routing() {
        let (_, c) = parse_and_scrub("https://a.com/app#/settings?token=abc&tab=2", false).unwrap();
        assert_eq!(c.fragment, "");
        let (_, c) = parse_and_scrub("https://a.com/app#/settings?token=abc&tab=2", true).unwrap();
        assert_eq!(c.fragment, "/settings?tab=2");
        let (_, c) = parse_and_scrub("https://a.com/#access_token=abc&state=s1", true).unwrap();
        assert_eq!(c.fragment, "state=s1");
    }

    #[test]
    fn parts_and_path_emails() {
        let (_, c) = parse_and_scrub("HTTPS://WWW.A.COM./Users/jane@example.com/edit?x=1", false).unwrap();
        assert_eq!(c.host, "www.a.com");
        assert_eq!(c.path, "/Users/:email/edit");
        assert_eq!(c.without_fragment("https"), "https://www.a.com/Users/:email/edit?x=1");
        assert!(parse_and_scrub("android-app://com.google.android.gm/", false).is_none());
        assert!(parse_and_scrub("not a url", false).is_none());
    }
}
