//! Base64 as clients send it, decoded one way for every caller (Segment's Basic auth, PostHog's
//! base64 bodies, MCP's `=?base64?...?=` headers): the standard or the URL-safe alphabet, with
//! or without padding, white space ignored.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// The bytes `text` encodes, or None when it is not Base64 in either alphabet.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let text: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true);
    [&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE]
        .into_iter()
        .find_map(|alphabet| GeneralPurpose::new(alphabet, config).decode(&text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_any_padding() {
        assert_eq!(decode(b"SGVsbG8sIOS4lueVjA==").unwrap(), "Hello, 世界".as_bytes());
        assert_eq!(decode(b"SGVsbG8sIOS4lueVjA").unwrap(), "Hello, 世界".as_bytes());
        assert_eq!(decode(b"-_8").unwrap(), decode(b"+/8=").unwrap());
        assert_eq!(decode(b"SGVs\nbG8=").unwrap(), b"Hello");
        assert_eq!(decode(b"!!"), None);
    }
}
