//! Credentials with well-known shapes, found anywhere in a text: cloud access key ids, API
//! tokens with published prefixes (GitHub, GitLab, Stripe, Slack, Google, OpenAI, npm, ...),
//! PEM private-key blocks, JWTs, and long opaque tokens. Each finder returns byte ranges, so
//! callers may redact the match (titles, event names) or drop the whole value (parameters,
//! properties). Prefixes are public facts from each vendor's documentation.

use std::ops::Range;

/// A published token prefix, the least number of characters that follow it, and which.
struct Prefixed {
    prefix: &'static str,
    min_rest: usize,
    rest: fn(u8) -> bool,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn dashed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn dotted(b: u8) -> bool {
    dashed(b) || b == b'.'
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

const PREFIXED: &[Prefixed] = &[
    // GitHub: personal, OAuth, user-to-server, server-to-server, refresh; fine-grained PATs.
    Prefixed { prefix: "ghp_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "gho_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "ghu_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "ghs_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "ghr_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "github_pat_", min_rest: 20, rest: word },
    // GitLab personal/project/deploy tokens.
    Prefixed { prefix: "glpat-", min_rest: 20, rest: dashed },
    Prefixed { prefix: "gldt-", min_rest: 20, rest: dashed },
    // Stripe (and this service's own keys, which share the shape).
    Prefixed { prefix: "sk_live_", min_rest: 10, rest: word },
    Prefixed { prefix: "sk_test_", min_rest: 10, rest: word },
    Prefixed { prefix: "rk_live_", min_rest: 10, rest: word },
    Prefixed { prefix: "rk_test_", min_rest: 10, rest: word },
    Prefixed { prefix: "pk_live_", min_rest: 10, rest: word },
    Prefixed { prefix: "pk_test_", min_rest: 10, rest: word },
    Prefixed { prefix: "whsec_", min_rest: 20, rest: alnum },
    // Slack bot, user, app-level, refresh, workspace tokens.
    Prefixed { prefix: "xoxb-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xoxp-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xoxa-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xoxe-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xoxr-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xoxs-", min_rest: 10, rest: dashed },
    Prefixed { prefix: "xapp-", min_rest: 10, rest: dashed },
    // Google API keys: AIza + 35.
    Prefixed { prefix: "AIza", min_rest: 35, rest: dashed },
    // OpenAI and Anthropic.
    Prefixed { prefix: "sk-ant-", min_rest: 20, rest: dashed },
    Prefixed { prefix: "sk-proj-", min_rest: 20, rest: dashed },
    Prefixed { prefix: "sk-", min_rest: 32, rest: dashed },
    // npm, PyPI, Hugging Face, DigitalOcean, Shopify, Square, SendGrid.
    Prefixed { prefix: "npm_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "pypi-", min_rest: 40, rest: dashed },
    Prefixed { prefix: "hf_", min_rest: 30, rest: alnum },
    Prefixed { prefix: "dop_v1_", min_rest: 40, rest: alnum },
    Prefixed { prefix: "shpat_", min_rest: 20, rest: alnum },
    Prefixed { prefix: "shpss_", min_rest: 20, rest: alnum },
    Prefixed { prefix: "shpca_", min_rest: 20, rest: alnum },
    Prefixed { prefix: "shppa_", min_rest: 20, rest: alnum },
    Prefixed { prefix: "sq0atp-", min_rest: 20, rest: dashed },
    Prefixed { prefix: "sq0csp-", min_rest: 20, rest: dashed },
    Prefixed { prefix: "SG.", min_rest: 40, rest: dotted },
];

/// For each first byte, which of PREFIXED start with it (bit k: PREFIXED[k]): most words start
/// with none, so a word is compared only with the prefixes it could begin.
const PREFIXED_BY_FIRST: [u64; 256] = {
    assert!(PREFIXED.len() <= 64, "one bit a prefix");
    let mut table = [0u64; 256];
    let mut k = 0;
    while k < PREFIXED.len() {
        table[PREFIXED[k].prefix.as_bytes()[0] as usize] |= 1 << k;
        k += 1;
    }
    table
};

/// AWS access key ids: one of these four-letter prefixes and 16 upper-case letters or digits.
const AWS_PREFIXES: &[&str] = &["AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA", "ASCA"];

/// Whether position `i` of `s` starts a word (the byte before is not a letter, digit or `_`).
fn at_word_start(s: &[u8], i: usize) -> bool {
    i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_')
}

fn run_end(s: &[u8], from: usize, ok: fn(u8) -> bool) -> usize {
    let end = s[from..].iter().position(|&b| !ok(b)).map_or(s.len(), |n| from + n);
    #[cfg(test)]
    tests::SCANNED.with(|n| n.set(n.get() + (end - from)));
    end
}

/// Every range of `text` that holds a secret of a well-known shape, in order, not overlapping.
pub fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    let mut opaque_from = 0;
    while i < s.len() {
        if !candidate(s, i) {
            i += 1;
            continue;
        }
        if let Some(end) = secret_at_from(text, i, &mut opaque_from) {
            out.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// `secret_at`, skipping the opaque-token test inside a run that already failed it: every
/// suffix of a failing run fails too (shorter, no longer stretches, no new kinds of
/// character), so the scan stays linear, not quadratic, in runs like `a-a-a-a-...`.
fn secret_at_from(text: &str, i: usize, opaque_from: &mut usize) -> Option<usize> {
    if let Some(end) = known_secret_at(text, i) {
        return Some(end);
    }
    let s = text.as_bytes();
    if i < *opaque_from || !at_word_start(s, i) {
        return None;
    }
    let tok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=');
    let end = run_end(s, i, tok);
    match opaque_token_at(s, i) {
        Some(e) => Some(e),
        None => {
            *opaque_from = end;
            None
        }
    }
}

/// Where a secret may start: a word start, or a dash (a PEM header). Looking only there keeps
/// the scan about linear in the text.
fn candidate(s: &[u8], i: usize) -> bool {
    s[i] == b'-' || (s[i].is_ascii_alphanumeric() && at_word_start(s, i))
}

/// The end of a secret of a published shape (PEM, JWT, vendor prefix, AWS key id) at byte `i`.
fn known_secret_at(text: &str, i: usize) -> Option<usize> {
    let s = text.as_bytes();
    if !text.is_char_boundary(i) {
        return None;
    }
    let rest = &text[i..];
    if rest.starts_with("-----BEGIN") {
        return pem_block(text, i);
    }
    if !at_word_start(s, i) {
        return None;
    }
    if rest.starts_with("eyJ") {
        if let Some(end) = jwt_at(s, i) {
            return Some(end);
        }
    }
    let first = s[i];
    let mut candidates = PREFIXED_BY_FIRST[first as usize];
    while candidates != 0 {
        let p = &PREFIXED[candidates.trailing_zeros() as usize];
        candidates &= candidates - 1;
        if rest.starts_with(p.prefix) {
            let from = i + p.prefix.len();
            let end = run_end(s, from, p.rest);
            if end - from >= p.min_rest {
                return Some(end);
            }
        }
    }
    if first == b'A' && AWS_PREFIXES.iter().any(|p| rest.starts_with(p)) {
        let end = run_end(s, i + 4, upper_digit);
        if end - (i + 4) == 16 && !s.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return Some(end);
        }
    }
    None
}

/// `-----BEGIN ... PRIVATE KEY-----` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP ... BLOCK) up to its
/// END line, or to the end of the text when that is missing (a truncated key is still a key).
fn pem_block(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let header_end = rest[10..].find("-----").map(|n| 10 + n)?;
    let label = &rest[10..header_end];
    if !label.contains("PRIVATE KEY") || label.len() > 40 {
        return None;
    }
    let after = header_end + 5;
    Some(match rest[after..].find("-----END") {
        Some(n) => {
            let end_label = after + n + 8;
            rest[end_label..].find("-----").map_or(text.len(), |m| i + end_label + m + 5)
        }
        None => text.len(),
    })
}

/// A JWT (JWS: three parts) or JWE (five): base64url parts separated by dots, the header
/// a JSON object (`eyJ`). The signature part may be empty (`alg: none`).
fn jwt_at(s: &[u8], i: usize) -> Option<usize> {
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=';
    let mut parts = Vec::new();
    let mut at = i;
    loop {
        let end = run_end(s, at, b64);
        parts.push(end - at);
        if s.get(end) == Some(&b'.') && parts.len() < 5 {
            at = end + 1;
        } else {
            let ok = (parts.len() == 3 || parts.len() == 5) && parts[0] >= 10 && parts[1] >= 2;
            return ok.then_some(end);
        }
    }
}

/// Long opaque strings (session ids, reset tokens, API keys without a known prefix): a run of
/// 32+ base64/hex characters with letters and digits, one stretch of it at least 16 letters and
/// digits long. Slugs (`how-we-build-it-2026`) and UUIDs (stretches of 8 and 12) are not tokens;
/// a 32-character hex digest or a 40-character git hash is (see url_scrub for commit paths).
fn opaque_token_at(s: &[u8], i: usize) -> Option<usize> {
    let tok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=');
    let end = run_end(s, i, tok);
    let run = &s[i..end];
    if run.len() < 32 {
        return None;
    }
    looks_opaque(run).then_some(end)
}

/// The test behind `opaque_token_at`, for a whole value.
pub fn looks_opaque(run: &[u8]) -> bool {
    let longest = run.split(|b| !b.is_ascii_alphanumeric()).map(<[u8]>::len).max().unwrap_or(0);
    run.len() >= 32 && longest >= 16 && run.iter().any(u8::is_ascii_digit) && run.iter().any(u8::is_ascii_alphabetic)
}

/// Whether any secret of a well-known shape, or a long opaque token, is in `text`.
pub fn contains_secret(text: &str) -> bool {
    let mut opaque_from = 0;
    (0..text.len()).any(|i| candidate(text.as_bytes(), i) && secret_at_from(text, i, &mut opaque_from).is_some())
}

/// Published shapes only (no opaque-token rule): for values that are long and opaque by
/// design, such as ad click ids.
pub fn contains_known_secret_shape(text: &str) -> bool {
    (0..text.len()).any(|i| candidate(text.as_bytes(), i) && known_secret_at(text, i).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Bytes `run_end` stepped over on this thread.
        pub(super) static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// `known_secret_at` looks for an AWS key id only at an `A`.
    #[test]
    fn aws_prefixes_start_with_a() {
        assert!(AWS_PREFIXES.iter().all(|p| p.starts_with('A')));
    }

    /// The review's case: `a-a-a-...` made every letter a word start and rescanned the rest of
    /// the run from each (22 ms for one event). Linear now.
    #[test]
    fn long_runs_are_scanned_once() {
        // Counted in bytes the runs' scans step over, not timed: a rescan from every word
        // start would step over about 100 million here (linear is 4 × 20,000).
        let text = "a-".repeat(10_000);
        SCANNED.with(|n| n.set(0));
        assert!(!contains_secret(&text));
        assert!(secret_spans(&text).is_empty());
        let scanned = SCANNED.with(|n| n.get());
        assert!(scanned <= 10 * text.len(), "{scanned} bytes stepped over for two scans of {} bytes", text.len());
        // A token after a failing run is still found.
        assert!(contains_secret(&format!("{} ghp_16C7e42F292c6912E7710c838347Ae178B4a", "a-".repeat(100))));
    }

    #[test]
    fn known_shapes_anywhere_in_text() {
        for s in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAY34FZKBOKMUTVV7A",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
            "glpat-x2Yz3AbCdEf4GhIjKl5M",
            "sk_live_51H8a2bC3dE4fG5hI6jK7lM8nO",
            "rk_test_abcdefghij12",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
            "xapp-1-A0123456789-abcdef",
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
            "sk-proj-abcDEF1234567890ghiJKL",
            "sk-ant-api03-abcdefghijklmnopqrstu",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "shpat_0123456789abcdef0123456789abcdef",
            "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcDEF123_-x",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
            "d41d8cd98f00b204e9800998ecf8427e",
        ] {
            assert!(contains_secret(s), "{s}");
            let text = format!("before ({s}), after");
            let spans = secret_spans(&text);
            assert_eq!(spans.len(), 1, "{text}: {spans:?}");
            // A PEM header without its END line runs to the end of the text.
            let want = if s.starts_with("-----") { &text[8..] } else { s };
            assert_eq!(&text[spans[0].clone()], want, "{text}");
        }
    }

    #[test]
    fn pem_blocks_run_to_their_end_line() {
        let t = "x -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- y";
        assert_eq!(secret_spans(t), vec![2..t.len() - 2]);
        let cut = "x -----BEGIN EC PRIVATE KEY----- MHcCAQEE";
        assert_eq!(secret_spans(cut), vec![2..cut.len()]);
        assert!(!contains_secret("-----BEGIN CERTIFICATE-----"));
        assert!(!contains_secret("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn lookalikes_are_not_secrets() {
        for s in [
            "ghp_ docs",
            "the sk_live_ prefix",
            "AKIA keys",
            "AKIAIOSFODNN7EXAMPLEX",
            "xoxb- tokens",
            "desk-lamp-2026",
            "eyJ is base64",
            "550e8400-e29b-41d4-a716-446655440000",
            "how-we-build-things-at-scale-in-2026-part-2",
            "507f1f77bcf86cd799439011",
            "summer-sale-2026",
            "sk_test_mode",
        ] {
            assert!(!contains_secret(s), "{s}: {:?}", secret_spans(s));
        }
        assert!(!contains_secret(&"a".repeat(40)), "no digits: a slug, not a token");
    }

    #[test]
    fn click_ids_are_opaque_by_design_but_not_known_shapes() {
        let gclid = "Cj0KCQiA4NWrBhD-ARIsAFCKwWuG9ZxRf8d3b1gxr2GQp3jEUW5tB4i2pUmT7nqlK1QqWL4aAmnDEALw_wcB";
        assert!(contains_secret(gclid));
        assert!(!contains_known_secret_shape(gclid));
        assert!(contains_known_secret_shape("x ghp_16C7e42F292c6912E7710c838347Ae178B4a"));
    }
}
