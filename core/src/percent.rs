//! Percent-decoding (`%XX`), in the two ways the core needs it: strictly, where a text must
//! mean exactly one thing (a visitor id in a URL path), and lossily, where a value is read for
//! what it may hide (PII scrubbing decodes every form a value takes).

/// The byte an escape at `i` stands for: `%` and two hex digits.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
    let digit = |b: u8| (b as char).to_digit(16).expect("checked hex") as u8;
    (bytes[i] == b'%').then(|| digit(hex[0]) * 16 + digit(hex[1]))
}

/// The bytes after one round of decoding. A `%` that starts no escape is kept as it is when
/// `keep_stray`, else the text is refused (None).
fn decode(s: &str, keep_stray: bool) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match escape_at(bytes, i) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None if !keep_stray => return None,
                None => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(out)
}

/// Every escape decoded, as UTF-8; `+`, `&`, `#` and the rest stay as they are (a path is not a
/// form). None for a broken escape or bytes that are not UTF-8.
pub fn decode_strict(s: &str) -> Option<String> {
    String::from_utf8(decode(s, false)?).ok()
}

/// One round of decoding: a stray `%` stays, bytes that are not UTF-8 become U+FFFD.
pub fn decode_lossy(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    String::from_utf8_lossy(&decode(s, true).expect("strays are kept")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding_takes_only_whole_escapes_of_utf8() {
        assert_eq!(decode_strict("a%20b%2Fc+d").as_deref(), Some("a b/c+d"));
        assert_eq!(decode_strict("%E8%A8%AA%e5%95%8F").as_deref(), Some("訪問"));
        for bad in ["%", "%Z1", "a%2", "%+1", "%C3", "%FF"] {
            assert_eq!(decode_strict(bad), None, "{bad}");
        }
    }

    #[test]
    fn lossy_decoding_keeps_strays_and_replaces_broken_utf8() {
        assert_eq!(decode_lossy("a%20b+c"), "a b+c");
        assert_eq!(decode_lossy("100% sure %2"), "100% sure %2");
        assert_eq!(decode_lossy("%C3"), "\u{FFFD}");
        assert_eq!(decode_lossy("%2540"), "%40", "one round only");
        assert_eq!(decode_lossy("plain"), "plain");
    }
}
