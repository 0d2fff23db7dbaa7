//! The bodies other vendors' SDKs send, to JSON: gzip (by header, by `compression=`, or by its
//! magic bytes, as posthog-js sends it with no header), base64 (`compression=base64`), and a
//! form body `data=<base64 or JSON>`. Bounded as `/collect`'s are (`ingest::event::decode_body`).

use crate::error::ApiError;
use crate::ingest::event::{check_content_encoding, decode_body, BodyEncoding, Limits};
use std::borrow::Cow;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How the request said its body was sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Framing {
    /// `Content-Encoding: gzip`.
    pub gzip_header: bool,
    /// The `compression` query parameter (`gzip`, `gzip-js`, `base64`; PostHog's names).
    pub compression: Option<String>,
    /// `Content-Type: application/x-www-form-urlencoded`.
    pub form: bool,
}

impl Framing {
    /// What a request's `Content-Encoding`, `Content-Type` and query string say of its body;
    /// `415 unsupported_encoding` for an encoding other than gzip (`/collect`'s check).
    pub fn of_request(content_encoding: Option<&str>, content_type: Option<&str>, query: Option<&str>) -> Result<Framing, ApiError> {
        Ok(Framing {
            gzip_header: check_content_encoding(content_encoding)? == BodyEncoding::Gzip,
            compression: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "compression")
                .map(|(_, v)| v.into_owned()),
            form: content_type.is_some_and(|t| t.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")),
        })
    }
}

/// The body's JSON text, whatever of the above it came in.
pub fn decode(raw: &[u8], framing: &Framing, limits: &Limits) -> Result<Vec<u8>, ApiError> {
    let compression = framing.compression.as_deref().map(str::to_ascii_lowercase);
    if matches!(compression.as_deref(), Some("lz64" | "lz-string")) {
        return Err(ApiError::new(
            415,
            "unsupported_encoding",
            "lz64 (lz-string) bodies are not accepted. Configure the SDK for gzip or no compression (posthog-js: `disable_compression: false`).",
        ));
    }
    // Copied only where a step changes it (decode_body makes the one copy of a plain body).
    let raw: Cow<[u8]> = if framing.form { Cow::Owned(form_data(raw)?) } else { Cow::Borrowed(raw) };
    let raw = if compression.as_deref() == Some("base64") || (framing.form && !looks_like_json(&raw) && !is_gzip(&raw)) {
        Cow::Owned(base64_decode(&raw)?)
    } else {
        raw
    };
    let gzip = framing.gzip_header || matches!(compression.as_deref(), Some("gzip" | "gzip-js")) || is_gzip(&raw);
    decode_body(&raw, if gzip { BodyEncoding::Gzip } else { BodyEncoding::Identity }, limits)
}

fn is_gzip(raw: &[u8]) -> bool {
    raw.starts_with(&GZIP_MAGIC)
}

fn looks_like_json(raw: &[u8]) -> bool {
    matches!(raw.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// The `data` field of a form body, percent-decoded.
fn form_data(raw: &[u8]) -> Result<Vec<u8>, ApiError> {
    url::form_urlencoded::parse(raw)
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v.into_owned().into_bytes())
        .ok_or_else(|| ApiError::bad_request("invalid_body", "A form body must carry the events in its `data` field."))
}

fn base64_decode(raw: &[u8]) -> Result<Vec<u8>, ApiError> {
    crate::base64_text::decode(raw)
        .ok_or_else(|| ApiError::bad_request("invalid_body", "The body says it is base64 but is not. Send JSON, gzip or base64 of either."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::LIMITS;
    use crate::ingest::event::tests::gz;

    const JSON: &[u8] = br#"{"event":"x"}"#;

    #[test]
    fn every_framing_decodes_to_the_same_json() {
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let form = |d: &str| format!("data={}", url::form_urlencoded::byte_serialize(d.as_bytes()).collect::<String>()).into_bytes();
        let plain = Framing::default();
        let sniffed = decode(&gz(JSON), &plain, &LIMITS).unwrap();
        assert_eq!(sniffed, JSON, "gzip with no header is found by its magic bytes");
        let cases: Vec<(Vec<u8>, Framing)> = vec![
            (JSON.to_vec(), plain.clone()),
            (gz(JSON), Framing { gzip_header: true, ..Default::default() }),
            (gz(JSON), Framing { compression: Some("gzip-js".into()), ..Default::default() }),
            (b64(JSON).into_bytes(), Framing { compression: Some("base64".into()), ..Default::default() }),
            (form(&b64(JSON)), Framing { form: true, ..Default::default() }),
            (form(std::str::from_utf8(JSON).unwrap()), Framing { form: true, ..Default::default() }),
        ];
        for (raw, framing) in cases {
            assert_eq!(decode(&raw, &framing, &LIMITS).unwrap(), JSON, "{framing:?}");
        }
    }

    #[test]
    fn the_framing_is_read_from_the_request() {
        let f =
            Framing::of_request(Some(" GZIP"), Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"), Some("v=3&compression=gzip-js"));
        assert_eq!(f, Ok(Framing { gzip_header: true, compression: Some("gzip-js".into()), form: true }));
        assert_eq!(Framing::of_request(None, Some("text/plain"), None), Ok(Framing::default()));
        assert_eq!(Framing::of_request(Some("x-gzip"), None, None).map(|f| f.gzip_header), Ok(true));
        assert_eq!(Framing::of_request(Some("identity"), None, None).map(|f| f.gzip_header), Ok(false));
        // An encoding the body is not decoded from is refused, as /collect refuses it, never
        // read as plain bytes (and answered as JSON that does not parse).
        for other in ["deflate", "br", "gzip, br"] {
            let e = Framing::of_request(Some(other), None, None).unwrap_err();
            assert_eq!((e.status, e.code), (415, "unsupported_encoding"), "{other}");
        }
    }

    #[test]
    fn bad_framings_are_clear_refusals() {
        let lz = Framing { compression: Some("lz64".into()), ..Default::default() };
        assert_eq!(decode(JSON, &lz, &LIMITS).unwrap_err().status, 415);
        let b64 = Framing { compression: Some("base64".into()), ..Default::default() };
        assert_eq!(decode(b"%%%", &b64, &LIMITS).unwrap_err().code, "invalid_body");
        let form = Framing { form: true, ..Default::default() };
        assert_eq!(decode(b"other=1", &form, &LIMITS).unwrap_err().code, "invalid_body");
        let bomb = gz(&vec![b' '; LIMITS.max_decoded_bytes + 1]);
        assert_eq!(decode(&bomb, &Framing::default(), &LIMITS).unwrap_err().code, "body_too_large");
    }
}
