//! Hardware (MAC) addresses inside text, as Sentry Relay's `@mac` rule finds them: six pairs of
//! hex digits, separated all by `:` or all by `-` (`00:1A:2B:3C:4D:5E`, `00-1a-2b-3c-4d-5e`),
//! standing apart from the letters and digits around them. One names a device for its life.

use std::ops::Range;

const PAIRS: usize = 6;
/// Six pairs and five separators.
const LEN: usize = PAIRS * 3 - 1;

/// Every hardware address in `text`, in order.
pub fn mac_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + LEN <= s.len() {
        if mac_at(s, i) {
            out.push(i..i + LEN);
            i += LEN;
        } else {
            i += 1;
        }
    }
    out
}

fn mac_at(s: &[u8], i: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric();
    if i > 0 && (word(s[i - 1]) || matches!(s[i - 1], b':' | b'-')) {
        return false;
    }
    if s.get(i + LEN).is_some_and(|&b| word(b) || matches!(b, b':' | b'-')) {
        return false;
    }
    let sep = s[i + 2];
    if sep != b':' && sep != b'-' {
        return false;
    }
    (0..PAIRS).all(|p| {
        let at = i + p * 3;
        s[at].is_ascii_hexdigit() && s[at + 1].is_ascii_hexdigit() && (p == PAIRS - 1 || s[at + 2] == sep)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_pairs_one_separator() {
        let found = |t: &str| mac_spans(t).into_iter().map(|r| t[r].to_string()).collect::<Vec<_>>();
        assert_eq!(found("Device 00:1A:2B:3C:4D:5E offline"), ["00:1A:2B:3C:4D:5E"]);
        assert_eq!(found("(00-1a-2b-3c-4d-5e)"), ["00-1a-2b-3c-4d-5e"]);
        for kept in ["12:34:56", "aa:bb:cc:dd:ee", "00:1A-2B:3C:4D:5E", "x00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E:6F", "é00:1A:2B:3C:4D:5"]
        {
            assert!(found(kept).is_empty(), "{kept}");
        }
    }
}
