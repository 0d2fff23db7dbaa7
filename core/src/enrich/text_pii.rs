//! Personal data inside free text: e-mail addresses, phone numbers (international forms
//! included), card numbers, IPv4 and IPv6 addresses, and from their own files bank account
//! numbers (`iban`), credentials in URLs (`url_credentials`), account names in home-directory
//! paths (`home_paths`), secrets of known shapes (`secrets`) and secrets their text names
//! (`labelled_secrets`: `Bearer ...`, `token=...`), and devices' hardware addresses
//! (`hardware_addresses`). Each is found as a byte range,
//! so a text can be judged (`contains_pii`) or redacted (`redact`: each match becomes a marker
//! such as `[email]`, the rest of the text stays).

use super::{hardware_addresses, home_paths, iban, labelled_secrets, secrets, url_credentials};
use std::borrow::Cow;
use std::net::Ipv6Addr;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Card,
    Ip,
    Secret,
    Iban,
    Credentials,
    User,
    Mac,
}

impl Kind {
    /// What a redacted match is replaced with.
    pub fn marker(self) -> &'static str {
        match self {
            Kind::Email => "[email]",
            Kind::Phone => "[phone]",
            Kind::Card => "[card]",
            Kind::Ip => "[ip]",
            Kind::Secret => "[secret]",
            Kind::Iban => "[iban]",
            Kind::Credentials => "[credentials]",
            Kind::User => "[user]",
            Kind::Mac => "[mac]",
        }
    }
}

/// Every match in `text`, in order, overlaps merged (the earlier match's kind wins; on the same
/// start, the longer). An IBAN is listed before the secrets, so a 32-character one is an IBAN,
/// not an opaque token; `user:pw@host` is credentials, not an e-mail address at `pw`.
pub fn pii_spans(text: &str) -> Vec<(Range<usize>, Kind)> {
    let mut all = every_match(text);
    all.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<(Range<usize>, Kind)> = Vec::new();
    for (r, k) in all {
        match out.last_mut() {
            Some((last, _)) if r.start < last.end => last.end = last.end.max(r.end),
            _ => out.push((r, k)),
        }
    }
    out
}

/// Whether `text` holds a match of any kind but an opaque token, judged before overlaps merge:
/// an e-mail address behind a long token (`<32 hex>/jane@example.com`) is still found.
pub fn holds_non_secret_match(text: &str) -> bool {
    every_match(text).iter().any(|(_, kind)| *kind != Kind::Secret)
}

/// Each scanner's matches, unordered and unmerged.
fn every_match(text: &str) -> Vec<(Range<usize>, Kind)> {
    let mut all: Vec<(Range<usize>, Kind)> = Vec::new();
    // Numbers and IBANs are read with Unicode spaces and dashes as ASCII ones (`ascii_separators`).
    let plain = ascii_separators(text);
    all.extend(iban::iban_spans(&plain).into_iter().map(|r| (whole_chars(text, r), Kind::Iban)));
    let credentials = url_credentials::credential_spans(text);
    all.extend(secrets::secret_spans(text).into_iter().map(|r| (r, Kind::Secret)));
    all.extend(labelled_secrets::labelled_spans(text).into_iter().map(|r| (r, Kind::Secret)));
    let inside_credentials = |r: &Range<usize>| credentials.iter().any(|c| r.start < c.end + 1 && c.start < r.end);
    all.extend(email_spans(text).into_iter().filter(|r| !inside_credentials(r)).map(|r| (r, Kind::Email)));
    all.extend(credentials.iter().cloned().map(|r| (r, Kind::Credentials)));
    all.extend(home_paths::home_path_spans(text).into_iter().map(|r| (r, Kind::User)));
    all.extend(ip_spans(text).into_iter().map(|r| (r, Kind::Ip)));
    all.extend(hardware_addresses::mac_spans(text).into_iter().map(|r| (r, Kind::Mac)));
    all.extend(number_spans(&plain).into_iter().map(|(r, k)| (whole_chars(text, r), k)));
    all
}

pub fn contains_pii(text: &str) -> bool {
    !pii_spans(text).is_empty()
}

/// `text` with each match replaced by its kind's marker.
pub fn redact(text: &str) -> Cow<'_, str> {
    let spans = pii_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (r, k) in spans {
        out.push_str(&text[at..r.start]);
        out.push_str(k.marker());
        at = r.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

// --- e-mail addresses ------------------------------------------------------------------------

fn local_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'' | '!' | '#' | '$' | '&' | '*' | '=' | '?' | '^' | '`' | '{' | '|' | '}' | '~')
}

fn domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '.' || c == '-'
}

/// `local@domain.tld` wherever it is: inside brackets, quotes, after `mailto:`, before a full
/// stop. The domain needs a dot and an alphabetic top-level label of two letters or more, so
/// `pkg@1.2.3` and `@handle` are not addresses. Quotes and brackets around it are not part of it.
pub fn email_spans(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // The ASCII at sign, or the full-width one (U+FF20).
    for (at, sign) in text.match_indices(['@', '\u{FF20}']) {
        let before = &text[..at];
        let mut start = at;
        for (i, c) in before.char_indices().rev() {
            if !local_char(c) || matches!(c, '{' | '}' | '`' | '|') {
                break;
            }
            start = i;
        }
        // A local part does not start with a dot; a quote before it is punctuation.
        while text[start..at].starts_with(['.', '\'']) {
            start += 1;
        }
        let d = at + sign.len();
        let after = &text[d..];
        let mut end = d;
        for (i, c) in after.char_indices() {
            if !domain_char(c) {
                break;
            }
            end = d + i + c.len_utf8();
        }
        let mut domain = &text[d..end];
        while domain.ends_with(['.', '-']) {
            domain = &domain[..domain.len() - 1];
        }
        // What is glued after the top-level label is not part of the address:
        // `jane@example.com1`, `.com-1`, `.com.1`. A last label that is no top-level one loses
        // its tail of non-letters, or goes whole, until one is (or no dot is left).
        let mut cut = false;
        while let Some(dot) = domain.rfind('.') {
            let last = &domain[dot + 1..];
            if tld_ok(last) {
                break;
            }
            let letters = last.trim_end_matches(|c: char| !c.is_alphabetic());
            let keep = if letters.is_empty() || letters.len() == last.len() { dot } else { dot + 1 + letters.len() };
            domain = domain[..keep].trim_end_matches(['.', '-']);
            cut = true;
        }
        // Once cut, two labels of digits are a version's (`pkg@1.0.0-alpha.beta.1`), not a
        // mail domain's (`163.com` has one).
        if cut && domain.split('.').filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())).count() >= 2 {
            continue;
        }
        let end = d + domain.len();
        let labels: Vec<&str> = domain.split('.').collect();
        let tld = labels.last().copied().unwrap_or("");
        if start < at && labels.len() >= 2 && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-')) && tld_ok(tld) {
            if out.last().is_some_and(|r: &Range<usize>| r.end > start) {
                continue; // `a@b.com@c.com`: already covered
            }
            out.push(start..end);
        }
    }
    out
}

/// A top-level domain: letters (`com`, `рф`), or an internationalised one in its ASCII form
/// (`xn--p1ai`).
fn tld_ok(tld: &str) -> bool {
    let ace = tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        && tld.len() > 4
        && !tld.ends_with('-')
        && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ace || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

pub fn looks_like_email(v: &str) -> bool {
    v.contains(['@', '\u{FF20}']) && !email_spans(v).is_empty()
}

// --- IP addresses ----------------------------------------------------------------------------

/// Whether `start..end` stands as a word of its own: no letter or digit right beside it. An
/// underscore is a separator here (`ip_81.2.69.14`, `order_4111111111111111`).
fn boundary_ok(s: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric();
    (start == 0 || !word(s[start - 1])) && (end == s.len() || !word(s[end]))
}

/// IPv4 dotted quads and IPv6 addresses (compressed, v4-mapped, with a zone) standing as a
/// word of their own: `v1.2.3.4` and `std::vector` are not addresses, `[2001:db8::1]:443` and
/// `10.0.0.1:8080` are.
pub fn ip_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if !(b.is_ascii_hexdigit() || b == b':') {
            i += 1;
            continue;
        }
        let end = i + s[i..].iter().position(|&b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.')).unwrap_or(s.len() - i);
        let mut run = &text[i..end];
        while run.ends_with('.') || (run.ends_with(':') && !run.ends_with("::")) {
            run = &run[..run.len() - 1];
        }
        ips_in_run(s, run, i, &mut out);
        i = end.max(i + 1);
    }
    out
}

/// The addresses in `run` (hex digits, colons and dots at `start` of `s`): the run itself, or
/// else addresses beside its colons, since a colon is not part of a word: IPv4 pieces
/// (`ip:81.2.69.14`, `81.2.69.14:bad`) and an IPv6 address ending the run (`addr:2a02:1234::1`).
/// Overlapping finds (an IPv4 address ending an IPv6 one) are merged by `pii_spans`.
fn ips_in_run(s: &[u8], run: &str, start: usize, out: &mut Vec<Range<usize>>) {
    let end = start + run.len();
    if boundary_ok(s, start, end) && is_ip(run) {
        out.push(start..end);
        return;
    }
    let before = out.len();
    let mut at = start;
    for piece in run.split(':') {
        if piece.contains('.') && boundary_ok(s, at, at + piece.len()) && is_ip(piece) {
            out.push(at..at + piece.len());
        }
        at += piece.len() + 1;
    }
    if let Some(a) = ipv6_endings(run).find(|&a| boundary_ok(s, start + a, end) && is_ip(&run[a..])) {
        // In place of the pieces it holds (`10.0.0.1:8080`, or `::ffff:81.2.69.14`).
        let ending = start + a..end;
        let outside: Vec<_> = out.drain(before..).filter(|r| r.start < ending.start || r.end > ending.end).collect();
        out.extend(outside);
        out.push(ending);
    }
}

/// Where an address ending `run` after one of its colons may start: only within its last
/// `LONGEST` characters (an IPv6 address with a zone is shorter), so a long run of colons costs
/// linear time, not a try at every colon.
fn ipv6_endings(run: &str) -> impl Iterator<Item = usize> + '_ {
    const LONGEST: usize = 64;
    let from = run.len().saturating_sub(LONGEST + 1);
    run[from..].match_indices(':').map(move |(c, _)| from + c + 1).filter(|&a| a < run.len())
}

fn is_ip(run: &str) -> bool {
    // `10.0.0.1:8080`: an IPv4 address and its port.
    if let Some((v4, port)) = run.split_once(':') {
        if v4.contains('.') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && is_ip(v4) {
            return true;
        }
    }
    if run.contains(':') {
        run.matches(':').count() >= 2 && run.bytes().any(|b| b.is_ascii_digit()) && run.parse::<Ipv6Addr>().is_ok()
    } else {
        // Octets of one to three digits up to 255, leading zeros allowed (`Ipv4Addr` refuses
        // `192.168.001.010`, which logs and `inet_aton` write).
        run.split('.').count() == 4 && run.split('.').all(is_octet)
    }
}

/// One part of a dotted IPv4 address: one to three digits up to 255, leading zeros allowed.
pub fn is_octet(p: &str) -> bool {
    (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n <= 255)
}

pub fn looks_like_ip(v: &str) -> bool {
    !ip_spans(v).is_empty()
}

// --- phone and card numbers ------------------------------------------------------------------

fn number_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'+' | b'/')
}

/// `text` with Unicode spaces and dashes (a title's `&nbsp;` is U+00A0, `‑` U+2011) spelled as
/// the ASCII separator, repeated to the character's length in bytes: what a scanner finds there
/// is a byte range of `text` itself, once widened to whole characters (`whole_chars`).
fn ascii_separators(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let sep = match c {
            '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe63}' | '\u{ff0d}' => '-',
            _ => {
                out.push(c);
                continue;
            }
        };
        out.extend(std::iter::repeat_n(sep, c.len_utf8()));
    }
    Cow::Owned(out)
}

/// A range found in `ascii_separators(text)`, as a range of whole characters of `text`.
fn whole_chars(text: &str, mut r: Range<usize>) -> Range<usize> {
    while !text.is_char_boundary(r.start) {
        r.start -= 1;
    }
    while !text.is_char_boundary(r.end) {
        r.end += 1;
    }
    r
}

/// Phone and card numbers: maximal runs of digits and the separators numbers are written with
/// (a `+` starts a new run: `2026-11-22 +44 20 ...` holds a date and a number), trimmed, with
/// at least seven digits, each judged whole and then by its space-separated windows.
fn number_spans(text: &str) -> Vec<(Range<usize>, Kind)> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !(s[i].is_ascii_digit() || s[i] == b'+' || s[i] == b'(') {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < s.len() && number_char(s[end]) && s[end] != b'+' {
            end += 1;
        }
        let (a, b) = trim_run(s, i, end);
        if a < b && s[a..b].iter().filter(|b| b.is_ascii_digit()).count() >= 7 && boundary_ok(s, a, b) {
            if let Some(found) = judge_run(text, a, b) {
                out.extend(found);
            }
        }
        i = end;
    }
    out
}

fn trim_run(s: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    while a < b && matches!(s[a], b' ' | b'-' | b'.' | b'/' | b')') {
        a += 1;
    }
    while b > a && matches!(s[b - 1], b' ' | b'-' | b'.' | b'/' | b'(' | b'+') {
        b -= 1;
    }
    (a, b)
}

/// The run whole, else its windows of space-separated chunks (longest first): `on 22 2026
/// 555-123-4567` holds a number that the run as a whole does not look like.
fn judge_run(text: &str, a: usize, b: usize) -> Option<Vec<(Range<usize>, Kind)>> {
    if let Some(k) = number_kind(&text[a..b]) {
        return Some(vec![(a..b, k)]);
    }
    let chunks: Vec<Range<usize>> = {
        let mut v = Vec::new();
        let mut at = a;
        for part in text[a..b].split(' ') {
            if !part.is_empty() {
                v.push(at..at + part.len());
            }
            at += part.len() + 1;
        }
        v
    };
    if chunks.len() < 2 || chunks.len() > 12 {
        return None;
    }
    let mut found = Vec::new();
    let mut covered_to = a;
    for from in 0..chunks.len() {
        if chunks[from].start < covered_to {
            continue;
        }
        for to in (from..chunks.len()).rev() {
            if from == 0 && to == chunks.len() - 1 {
                continue; // the whole run, judged above
            }
            let r = chunks[from].start..chunks[to].end;
            if let Some(k) = number_kind(&text[r.clone()]) {
                covered_to = r.end;
                found.push((r, k));
                break;
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

fn number_kind(v: &str) -> Option<Kind> {
    if looks_like_card(v) {
        Some(Kind::Card)
    } else if looks_like_phone(v) {
        Some(Kind::Phone)
    } else {
        None
    }
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

/// Digit groups of `v`, split at every non-digit.
fn groups(v: &str) -> Vec<&str> {
    v.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect()
}

/// 13 to 19 digits passing the Luhn check, starting as the card networks' numbers do (2 to 6:
/// Mastercard, Amex, Diners, JCB, Visa, Discover, UnionPay, Maestro), ungrouped or grouped as
/// cards are printed (fours; Amex 4-6-5), by spaces, dashes or dots. Epoch milliseconds
/// (`1712517344320`, 13 digits from a 1) are not cards.
pub fn looks_like_card(v: &str) -> bool {
    let Some(d) = digits_of(v, &[' ', '-', '.']) else { return false };
    if !(13..=19).contains(&d.len()) || !(2..=6).contains(&d[0]) || !luhn(&d) {
        return false;
    }
    let g: Vec<usize> = groups(v).iter().map(|g| g.len()).collect();
    g.len() == 1 || g == [4, 6, 5] || g == [4, 6, 4] || (g[..g.len() - 1].iter().all(|&n| n == 4) && (1..=4).contains(&g[g.len() - 1]))
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
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Written like a date (2026-11-22, 22.11.2026, 11/22/2026): not a phone number.
fn is_date_like(g: &[&str]) -> bool {
    let n = |s: &str| s.parse::<u32>().unwrap_or(99);
    let lens: Vec<usize> = g.iter().map(|s| s.len()).collect();
    match lens.as_slice() {
        [4, 1..=2, 1..=2, ..] => n(g[1]) <= 12 && n(g[2]) <= 31,
        [1..=2, 1..=2, 4, ..] => (n(g[0]) <= 31 && n(g[1]) <= 12) || (n(g[0]) <= 12 && n(g[1]) <= 31),
        _ => false,
    }
}

/// A phone number: 7 to 15 digits written as people write them.
/// - international: `+44 20 7946 0958`, `+14155550123`, `0044 20 7946 0958`;
/// - an area code in brackets: `(555) 123-4567`, `+49 (0)30 123456`;
/// - three or more groups, the last of at least three digits: `555-123-4567`, `020 7946 0958`,
///   `03-1234-5678`; or five pairs from a trunk `0`: `01 23 45 67 89`;
/// - two groups from a trunk `0`: `030 1234567`.
///
/// Bare digit runs (ids, epoch seconds), dates, `10 12 14 16` and `12345-678` are not.
pub fn looks_like_phone(v: &str) -> bool {
    let Some(d) = digits_of(v, &[' ', '-', '.', '(', ')', '+', '/']) else { return false };
    if !(7..=15).contains(&d.len()) || v.matches('+').count() > 1 || (v.contains('+') && !v.starts_with('+')) {
        return false;
    }
    let g = groups(v);
    if is_date_like(&g) || v.contains('/') {
        return false;
    }
    if v.starts_with('+') {
        return true;
    }
    if v.starts_with("00") && g.len() >= 2 && g[0].len() <= 5 {
        return true;
    }
    if v.contains('(') {
        return bracketed_area_code(v);
    }
    let lens: Vec<usize> = g.iter().map(|g| g.len()).collect();
    let trunk = g[0].starts_with('0');
    if lens.len() >= 3 && lens[0] <= 3 && !trunk && lens[1..].iter().all(|&n| n == 3) {
        return false; // `1 299 000`: thousands, not a number to call
    }
    match lens.len() {
        0 | 1 => false,
        2 => trunk && (2..=5).contains(&lens[0]) && lens[1] >= 5,
        _ => lens.iter().all(|&n| n <= 5) && (lens[lens.len() - 1] >= 3 || (trunk && lens.len() == 5 && lens.iter().all(|&n| n == 2))),
    }
}

/// `(555) 123-4567`, `(030) 1234567`: a bracket opens the number and holds its area code (1 to
/// 5 digits), and at least six digits follow. A bracket anywhere else is not a phone's:
/// `1.2.3 (2026-01-15)` is a version and a date, `iPhone 15 (2023) 256` a model.
fn bracketed_area_code(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('(') else { return false };
    let Some((area, number)) = rest.split_once(')') else { return false };
    (1..=5).contains(&area.len())
        && area.bytes().all(|b| b.is_ascii_digit())
        && number.bytes().all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.'))
        && number.bytes().filter(u8::is_ascii_digit).count() >= 6
}

/// For the scanners' tests: `find` finds exactly one span in each case's text, and it is the
/// case's expected part.
#[cfg(test)]
pub(crate) fn assert_finds_one(find: fn(&str) -> Vec<Range<usize>>, cases: &[(&str, &str)]) {
    for (t, want) in cases {
        let s = find(t);
        assert_eq!(s.len(), 1, "{t}: {s:?}");
        assert_eq!(&t[s[0].clone()], *want, "{t}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_written_with_dots_or_unicode_separators() {
        for (text, want) in [
            ("Receipt 4111.1111.1111.1111", "Receipt [card]"),
            ("Receipt 4111\u{a0}1111\u{a0}1111\u{a0}1111", "Receipt [card]"),
            ("Receipt 4111\u{2011}1111\u{2011}1111\u{2011}1111 paid", "Receipt [card] paid"),
            ("call 01\u{a0}23\u{a0}45\u{a0}67\u{a0}89", "call [phone]"),
            ("call +1\u{202f}415\u{202f}555\u{2013}0123.", "call [phone]."),
        ] {
            assert_eq!(redact(text), want, "{text:?}");
        }
        // Spans end on whole characters, wherever the separators stand.
        for text in [
            "\u{2011}4111\u{2011}1111\u{2011}1111\u{2011}1111\u{2011}",
            "\u{3000}+44\u{3000}20\u{3000}7946\u{3000}0958\u{3000}",
            "4111\u{a0}",
        ] {
            let _ = redact(text);
        }
        assert_eq!(redact("v2.0\u{a0}1.2.3 costs 12\u{a0}€"), "v2.0\u{a0}1.2.3 costs 12\u{a0}€", "no number to hide");
        // Many Unicode dashes before a card (a stay's dates) do not hide it.
        assert_eq!(
            redact("Stay 2026\u{2013}11\u{2013}22 \u{2013} 2026\u{2013}11\u{2013}30 \u{2013} 2026\u{2013}12\u{2013}05 \u{2013} 2026\u{2013}12\u{2013}09 4111 1111 1111 1111"),
            "Stay 2026\u{2013}11\u{2013}22 \u{2013} 2026\u{2013}11\u{2013}30 \u{2013} 2026\u{2013}12\u{2013}05 \u{2013} 2026\u{2013}12\u{2013}09 [card]"
        );
        assert_eq!(redact("IBAN DE89\u{a0}3704\u{a0}0044\u{a0}0532\u{a0}0130\u{a0}00."), "IBAN [iban].");
        assert_eq!(redact("IBAN DE89\u{202f}3704\u{202f}0044\u{202f}0532\u{202f}0130\u{202f}00"), "IBAN [iban]");
        assert_eq!(redact("Paid acct_DE89370400440532013000"), "Paid acct_[iban]");
    }

    #[test]
    fn an_underscore_or_trailing_digits_do_not_hide_an_address() {
        assert_eq!(redact("Blocked ip_81.2.69.14 / ip_2a02:1234:5678::1"), "Blocked ip_[ip] / ip_[ip]");
        assert_eq!(redact("order_4111111111111111"), "order_[card]");
        assert_eq!(redact("mail jane.doe@example.com1 now"), "mail [email]1 now");
        assert_eq!(redact("jane.doe@example.com-1 jane.doe@example.com.1 jane@example.com1-2"), "[email]-1 [email].1 [email]1-2");
        assert_eq!(redact("ivan@mail.xn--p1ai"), "[email]");
        // A version after `@` is no address, whatever follows its last label.
        assert_eq!(redact("npm i pkg@1.0.0-alpha.beta.1 lib@2.0.0-beta.build.7"), "npm i pkg@1.0.0-alpha.beta.1 lib@2.0.0-beta.build.7");
        assert_eq!(redact("mail@163.com1"), "[email]1");
        assert_eq!(redact("pkg@1.2.3 and build.v2"), "pkg@1.2.3 and build.v2");
    }

    #[test]
    fn emails_with_punctuation_around_them() {
        assert_finds_one(
            email_spans,
            &[
                ("<jane@example.com>", "jane@example.com"),
                ("(jane.doe@mail.example.co.uk).", "jane.doe@mail.example.co.uk"),
                ("mailto:a+b@x.io", "a+b@x.io"),
                ("\"o'brien@example.ie\",", "o'brien@example.ie"),
                ("{ops@example.io}", "ops@example.io"),
                ("josé@exämple.de!", "josé@exämple.de"),
                // A full-width at sign (U+FF20), as East Asian keyboards type it.
                ("mail jane＠example.com now", "jane＠example.com"),
                ("(tanaka＠mail.example.jp)", "tanaka＠mail.example.jp"),
            ],
        );
        for t in ["@handle", "a@b", "pkg@1.2.3", "x@.com", "user@host", "a @ b.com"] {
            assert!(email_spans(t).is_empty(), "{t}");
        }
    }

    /// Review finding: an address right after a colon (`ip:81.2.69.14`, `addr:2a02:1234::1`)
    /// started a run at the colon, which was judged whole and skipped.
    #[test]
    fn ips_right_after_a_colon() {
        assert_finds_one(
            ip_spans,
            &[
                ("ip:81.2.69.14", "81.2.69.14"),
                ("Blocked ip:81.2.69.14 today", "81.2.69.14"),
                ("addr:2a02:1234::1", "2a02:1234::1"),
                ("from:10.0.0.1:8080", "10.0.0.1:8080"),
                ("fe:1.2.3.4", "1.2.3.4"),
                // review finding: an address before a colon and a hex word
                ("Blocked 81.2.69.14:bad", "81.2.69.14"),
                ("ip:81.2.69.14:dead", "81.2.69.14"),
                ("ad:81.2.69.14:be", "81.2.69.14"),
            ],
        );
        assert_eq!(redact("Blocked ip:81.2.69.14"), "Blocked ip:[ip]");
        for t in ["12:34:56", "aa:bb:cc:dd:ee:ff", "v:1.2.3", "time 10:30", "12:34:56.789"] {
            assert!(ip_spans(t).is_empty(), "{t}");
        }
        // Two addresses in one run are both found.
        assert_eq!(ip_spans("1.2.3.4:x:5.6.7.8").len(), 2);
        // A long run of colons and digits (a hostile title): only its last characters are tried
        // as an address's ending (each ending tried once made this quadratic).
        let hostile = "12345:".repeat(20_000);
        assert!(ip_spans(&hostile).is_empty());
        assert!(ipv6_endings(&hostile).count() <= 11, "{} endings tried", ipv6_endings(&hostile).count());
        // An IPv4 piece and an IPv6 ending in one run: neither is kept (second review).
        assert_eq!(redact("81.2.69.14:2a02:1234::1"), "[ip]:[ip]");
        assert_eq!(redact("ip:2a02:1234::81.2.69.14"), "ip:[ip]");
        // An ending glued to a word is not an address.
        assert_eq!(redact("x ab::cd::1st"), "x ab::cd::1st");
    }

    /// Review finding: internationalised top-level domains in their ASCII form (`xn--p1ai`, .рф).
    #[test]
    fn emails_under_a_punycode_top_level_domain() {
        for t in ["ivan@mail.xn--p1ai", "write to ivan@mail.XN--P1AI."] {
            let s = email_spans(t);
            assert_eq!(s.len(), 1, "{t}");
            assert!(t[s[0].clone()].to_ascii_lowercase().ends_with("xn--p1ai"), "{t}");
        }
    }

    #[test]
    fn ips_standing_alone() {
        // With leading zeros (`inet_aton` and many logs write them), too.
        for t in [
            "81.2.69.142",
            "x 10.0.0.1:8080 y",
            "[2001:db8::1]:443",
            "::1",
            "::ffff:192.0.2.1",
            "fe80::1%eth0",
            "1.1.1.1,8.8.8.8",
            "192.168.001.010",
            "ip=010.000.000.001",
        ] {
            assert!(looks_like_ip(t), "{t}");
        }
        for t in ["1.2.3", "v1.2.3.4", "10:30:00", "std::vector", "999.1.1.1", "1.2.3.4.5", "dead:beef", "abc::def"] {
            assert!(!looks_like_ip(t), "{t}");
        }
    }

    #[test]
    fn cards_pass_luhn_and_are_grouped_like_cards() {
        assert!(looks_like_card("4111111111111111"));
        assert!(looks_like_card("4111 1111 1111 1111"));
        assert!(looks_like_card("5500-0000-0000-0004"));
        assert!(looks_like_card("378282246310005")); // amex, 15
        assert!(looks_like_card("3782 822463 10005"));
        assert!(!looks_like_card("4111111111111112")); // fails Luhn
        assert!(!looks_like_card("123456789012")); // too short
        assert!(!looks_like_card("2026-01-01 - 2026-01-31"), "a date range is not a card");
        assert!(!looks_like_card("1712517344320"), "epoch milliseconds (Luhn-valid) are not a card");
    }

    #[test]
    fn phones_but_not_ids_dates_or_sizes() {
        for p in [
            "+44 20 7946 0958",
            "+14155550123",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "+1 (415) 555-0123",
            "+49 (0)30 123456",
            "0044 20 7946 0958",
            "+81-3-1234-5678",
            "01 23 45 67 89",
            "030 1234567",
            "020 7946 0958",
        ] {
            assert!(looks_like_phone(p), "{p}");
        }
        for p in [
            "1700000000",
            "2026-11-22",
            "22.11.2026",
            "11/22/2026",
            "12-34",
            "v1.2.3",
            "10 12 14 16",
            "12345-678",
            "978-3-16-148410-0",
            "1 299 000",
        ] {
            assert!(!looks_like_phone(p), "{p}");
        }
    }

    #[test]
    fn redaction_keeps_the_rest_of_the_text() {
        assert_eq!(redact("Hi jane@example.com, call +44 20 7946 0958 from 10.0.0.1"), "Hi [email], call [phone] from [ip]");
        assert_eq!(redact("on 2026-11-22 +1 415 555 0123."), "on 2026-11-22 [phone].");
        assert_eq!(redact("card: 4111 1111 1111 1111."), "card: [card].");
        assert_eq!(redact("Pricing – 2026"), "Pricing – 2026");
        assert!(matches!(redact("plain"), Cow::Borrowed(_)));
    }
}
