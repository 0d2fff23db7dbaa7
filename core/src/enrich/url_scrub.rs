//! Page URL and referrer scrubbing: remove PII-looking query and matrix parameters (by name or
//! value, in every decoded form), replace path segments that carry PII or secrets with
//! `:redacted`, scrub URLs nested in parameters recursively, drop the fragment unless the
//! project routes by hash (then scrub it like a path and a query), and split what is left into
//! the parts the events table stores. Parsing is the `url` crate's.

use super::{home_paths, pii, text_pii};
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

/// How deep URLs nested in parameters (`next=`, `return_to=`, `redirect=`, `url=` or any
/// other name) are scrubbed: a nested URL is scrubbed like the page's, and so on down to this
/// depth; a parameter holding a URL nested deeper is removed.
pub const MAX_NESTED_DEPTH: usize = 3;

/// What a path segment or fragment route segment that carries personal data or a secret
/// becomes: `/users/jane@example.com/settings` is stored as `/users/:redacted/settings`.
pub const REDACTED_SEGMENT: &str = ":redacted";

/// Keep the `name=value` pairs of a raw query string that carry no PII; both name and value
/// are judged in every percent-decoded form (decoded until stable, bounded), so `e%2Dmail=`,
/// `x=a%40b.com` and `x=a%2540b.com` are caught. A value that is a URL is scrubbed
/// recursively (`scrub_nested_url`) and kept, re-encoded, when something is left of it; a
/// clean pair is kept exactly as sent.
pub fn scrub_query(raw: &str) -> String {
    scrub_query_at(raw, 0)
}

fn scrub_query_at(raw: &str, depth: usize) -> String {
    raw.split('&').filter(|pair| !pair.is_empty()).filter_map(|pair| scrub_pair(pair, depth)).collect::<Vec<_>>().join("&")
}

/// One `name=value` pair of a page URL's query, as sent: what `scrub_query` keeps of it (None
/// when it goes).
pub fn scrub_query_pair(pair: &str) -> Option<String> {
    scrub_pair(pair, 0)
}

/// One `name=value` pair (of a query or a matrix parameter): None when it goes.
fn scrub_pair(pair: &str, depth: usize) -> Option<String> {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    let (names, name_stable) = pii::decoded_forms(name, true);
    if !name_stable || names.iter().any(|n| pii::is_pii_name(n)) || pii::is_pii_value(name) {
        return None;
    }
    // A nested URL is read in the first decoded form that is a URL (encoded once, that is the
    // form after one round): decoding further would undo the nested URL's own encoding.
    let (forms, _) = pii::decoded_forms(value, true);
    if let Some(nested_url) = forms.iter().skip(usize::from(forms.len() > 1)).find(|f| looks_like_nested_url(f)) {
        // Scrubbed decoded, where `+` is a space: `/call/+14155550123` shows its number only as
        // sent, and then nothing of it is kept.
        if text_pii::contains_pii(value) && !pii::is_pii_value(nested_url) {
            return None;
        }
        return match scrub_nested_value(nested_url, depth + 1)? {
            Nested::Unchanged => Some(pair.to_string()),
            Nested::Scrubbed(scrubbed) => {
                let enc: String = url::form_urlencoded::byte_serialize(scrubbed.as_bytes()).collect();
                Some(format!("{name}={enc}"))
            }
        };
    }
    (!pii::is_pii_value(value)).then(|| pair.to_string())
}

/// What is left of a nested URL.
#[derive(Debug, PartialEq, Eq)]
pub enum Nested {
    /// Nothing had to go: keep the value exactly as it was sent.
    Unchanged,
    /// The scrubbed URL, to store in place of the value.
    Scrubbed(String),
}

/// A value that is a URL, scrubbed at `depth`: None when nothing of it may be kept (nested
/// too deep, unparseable, or still holding PII where it cannot be cut out, such as an IP host).
pub fn scrub_nested_value(decoded: &str, depth: usize) -> Option<Nested> {
    let scrubbed = nested(decoded, depth, true)?;
    if pii::is_pii_value(&scrubbed) {
        return None;
    }
    // Unchanged only when the value as sent shows nothing either: the `url` crate resolves dot
    // segments, so `/account/jane@example.com/../orders` rebuilds the same both ways.
    if Some(&scrubbed) == nested(decoded, depth, false).as_ref() && !pii::is_pii_value(decoded) {
        return Some(Nested::Unchanged);
    }
    Some(Nested::Scrubbed(scrubbed))
}

/// Absolute http(s) URLs, scheme-relative ones (`//host/...`) and absolute paths (`/account?x`).
pub fn looks_like_nested_url(v: &str) -> bool {
    let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || v.starts_with('/')
}

/// A URL found inside a parameter or property, scrubbed like a page URL at `depth` (1 for one
/// nested in the page's query): user info dropped, path segments and matrix parameters, the
/// query (its own nested URLs one level deeper) and the fragment (like a hash route) scrubbed.
/// Absolute URLs come back absolute, `//host` scheme-relative and paths as paths. None when it
/// is nested deeper than MAX_NESTED_DEPTH or does not parse: then it is not kept.
pub fn scrub_nested_url(v: &str, depth: usize) -> Option<String> {
    nested(v, depth, true)
}

/// `scrub_nested_url`, or with `scrub` false the same URL rebuilt the same way with nothing
/// removed (to tell whether scrubbing changed anything).
fn nested(v: &str, depth: usize, scrub: bool) -> Option<String> {
    if depth > MAX_NESTED_DEPTH {
        return None;
    }
    let (url, form) = if v.starts_with("//") {
        (Url::parse(&format!("https:{v}")).ok()?, Form::SchemeRelative)
    } else if v.starts_with('/') {
        (Url::parse("https://nested.invalid").ok()?.join(v).ok()?, Form::Path)
    } else {
        (Url::parse(v).ok()?, Form::Absolute)
    };
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    // User info (`https://user:password@host/`) is never kept; unscrubbed, it shows the change.
    let user_info = match (scrub, url.username(), url.password()) {
        (true, _, _) | (false, "", None) => String::new(),
        (false, u, p) => format!("{u}:{}@", p.unwrap_or("")),
    };
    let mut out = match form {
        Form::Absolute => format!("{}://{user_info}{}", url.scheme(), host_and_port(&url)),
        Form::SchemeRelative => format!("//{user_info}{}", host_and_port(&url)),
        Form::Path => String::new(),
    };
    out.push_str(&if scrub { scrub_path(url.path()) } else { url.path().to_string() });
    if let Some(q) = url.query() {
        let q = if scrub { scrub_query_at(q, depth) } else { q.to_string() };
        if !q.is_empty() {
            out.push('?');
            out.push_str(&q);
        }
    }
    if let Some(f) = url.fragment() {
        let f = if scrub { scrub_fragment(f, depth) } else { f.to_string() };
        if !f.is_empty() {
            out.push('#');
            out.push_str(&f);
        }
    }
    Some(out)
}

enum Form {
    Absolute,
    SchemeRelative,
    Path,
}

fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("").trim_end_matches('.').to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Path segments are judged like values, in every decoded form: one that holds an e-mail
/// address, phone number, IP address, card number or a secret (a JWT, a token of a known shape,
/// a long opaque token) becomes REDACTED_SEGMENT. So does an id-like segment (letters and
/// digits, a stretch of 8 or more, or a UUID) right after a segment named like a credential
/// (`/session/Xk29fLq0Zp`, `/reset-password/...`, `/token/<uuid>`). Commit hashes after
/// `commit`, `commits`, `tree` or `blob` are kept (they name code, not people). Matrix
/// parameters (`/cart;jsessionid=...`) are kept or removed one by one, like query parameters.
pub fn scrub_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(segments.len());
    let mut prev = "";
    for (i, &seg) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map(|n| n.split(';').next().unwrap_or("")).unwrap_or("");
        let (base, matrix) = seg.split_once(';').unwrap_or((seg, ""));
        let decoded = pii::decode_until_stable(base, false);
        let prev_decoded = pii::decode_until_stable(prev, false);
        let redact = !base.is_empty()
            && !is_commit_hash(prev, &decoded)
            && (pii::is_pii_value(base)
                || (pii::is_pii_name(&prev_decoded) && (id_like(&decoded) || number_like(&decoded)))
                || (prev_decoded == home_paths::USERS_SEGMENT && home_paths::is_home_folder(&pii::decode_until_stable(next, false))));
        let mut kept = if redact { REDACTED_SEGMENT.to_string() } else { base.to_string() };
        if !matrix.is_empty() {
            for param in matrix.split(';').filter(|p| !p.is_empty()) {
                if let Some(p) = scrub_pair(param, MAX_NESTED_DEPTH) {
                    kept.push(';');
                    kept.push_str(&p);
                }
            }
        }
        out.push(kept);
        prev = base;
    }
    out.join("/")
}

/// Six digits or more, alone or with a number's separators (`4155550123`, `415-555-0123`, a
/// one-time code): after a segment that names what it is (`/phone/`, `/otp/`), personal.
fn number_like(seg: &str) -> bool {
    seg.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b' ' | b'+' | b'(' | b')'))
        && seg.bytes().filter(u8::is_ascii_digit).count() >= 6
}

fn is_commit_hash(prev: &str, seg: &str) -> bool {
    matches!(prev, "commit" | "commits" | "tree" | "blob") && (7..=40).contains(&seg.len()) && seg.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An id rather than a word: a UUID, or letters and digits with a stretch of 8 or more.
fn id_like(seg: &str) -> bool {
    let is_uuid = seg.len() == 36
        && seg.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() });
    let longest = seg.split(|c: char| !c.is_ascii_alphanumeric()).map(str::len).max().unwrap_or(0);
    is_uuid || (longest >= 8 && seg.bytes().any(|b| b.is_ascii_digit()) && seg.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// A fragment kept for hash routing: its route scrubbed like a path, its `?query` like a
/// query; a fragment that is all parameters (`#access_token=...&state=...`, OAuth's implicit
/// flow) like a query.
fn scrub_fragment(f: &str, depth: usize) -> String {
    match f.split_once('?') {
        Some((route, q)) => {
            let route = scrub_path(route);
            let q = scrub_query_at(q, depth);
            if q.is_empty() {
                route
            } else {
                format!("{route}?{q}")
            }
        }
        None if f.contains('=') && !f.starts_with('/') => scrub_query_at(f, depth),
        // `#/access_token=...&state=...`: a route whose last part is parameters; they are
        // scrubbed as a query is.
        None if f.rsplit_once('/').is_some_and(|(_, last)| last.contains('=')) => {
            let (route, last) = f.rsplit_once('/').expect("checked");
            let route = scrub_path(&format!("{route}/"));
            let q = scrub_query_at(last, depth);
            format!("{route}{q}")
        }
        None => scrub_path(f),
    }
}

/// Scrub a parsed http(s) URL. `keep_fragment`: the project routes by hash (`/#/pricing`);
/// then the fragment is kept, scrubbed like a path and a query (`scrub_fragment`); else it
/// is dropped. The host is kept as sent (lower-cased): it names the site, not the visitor.
pub fn scrub(url: &Url, keep_fragment: bool) -> CleanUrl {
    let fragment = match (keep_fragment, url.fragment()) {
        (true, Some(f)) => scrub_fragment(f, 0),
        _ => String::new(),
    };
    CleanUrl {
        host: url.host_str().unwrap_or("").trim_end_matches('.').to_ascii_lowercase(),
        path: scrub_path(url.path()),
        query: url.query().map(scrub_query).unwrap_or_default(),
        fragment,
    }
}

/// Whether a host is, or spells, an IP address: `81.2.69.14`, `[2a02::1]`, and the names that
/// resolve to the address they spell (`de.81.2.69.14.nip.io`, `81-2-69-14.nip.io`,
/// `2a01-4f8-c17-b8f--2.sslip.io`, `ec2-54-12-34-56.compute-1.amazonaws.com`). Four numbers
/// in a row, and only four (`conf-2026-11-22-10-30` is a date and a time).
pub fn host_spells_ip(host: &str) -> bool {
    let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let four_octets = |parts: &[&str]| parts.split(|p| !numeric(p)).any(|run| run.len() == 4 && run.iter().all(|p| text_pii::is_octet(p)));
    // `--` is sslip.io's `::`: at least two groups and a digit (`face--bad` is a name).
    let dashed_v6 = |label: &str| {
        label.split('-').filter(|g| !g.is_empty()).count() >= if label.contains("--") { 2 } else { 3 }
            && label.bytes().any(|b| b.is_ascii_digit())
            && label.replace('-', ":").parse::<std::net::Ipv6Addr>().is_ok()
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let labels: Vec<&str> = host.split('.').collect();
    text_pii::looks_like_ip(host)
        || four_octets(&labels)
        || labels.iter().any(|l| four_octets(&l.split('-').collect::<Vec<_>>()) || dashed_v6(l))
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
        assert_eq!(c.path, "/Users/:redacted/edit");
        assert_eq!(c.without_fragment("https"), "https://www.a.com/Users/:redacted/edit?x=1");
        assert!(parse_and_scrub("android-app://com.google.android.gm/", false).is_none());
        assert!(parse_and_scrub("not a url", false).is_none());
    }
}
