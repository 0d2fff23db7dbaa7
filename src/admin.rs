//! Operator endpoints behind `ADMIN_TOKEN` (`/admin/...`): the token check and the paging of
//! listings, decided here; the Worker only reads and writes what these say.

use crate::error::ApiError;

/// Whether `given` is the admin token, compared in time that does not depend on where the two
/// first differ (only on their lengths). An unset or empty token matches nothing.
pub fn token_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    let (Some(e), Some(g)) = (expected.filter(|t| !t.is_empty()), given) else { return false };
    let (e, g) = (e.as_bytes(), g.as_bytes());
    let mut diff = (e.len() != g.len()) as u8;
    for i in 0..e.len() {
        diff |= e[i] ^ g.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

pub fn token_required() -> ApiError {
    ApiError::new(401, "admin_token_required", "Send the ADMIN_TOKEN as a Bearer token.")
}

/// One page of a listing: how many entries, and where the last page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub cursor: Option<String>,
}

/// `?limit=N&cursor=C` of a listing whose pages hold up to `max` entries (`default` when no
/// limit is given). Unknown parameters are refused, so a typo does not silently list all.
pub fn parse_page(query: Option<&str>, default: u64, max: u64) -> Result<Page, ApiError> {
    let mut page = Page { limit: default, cursor: None };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => {
                page.limit = v.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    ApiError::bad_request("invalid_limit", format!("`limit` must be a whole number from 1 to {max}."))
                })?
            }
            "cursor" if !v.is_empty() => page.cursor = Some(v.into_owned()),
            "cursor" => {}
            other => {
                return Err(ApiError::bad_request("unknown_parameter", format!("`{other}` is not a parameter here; use `limit` and `cursor`.")))
            }
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        assert!(token_matches(Some("s3cret-token"), Some("s3cret-token")));
        for wrong in ["s3cret-toke", "s3cret-token!", "S3cret-token", "", "x"] {
            assert!(!token_matches(Some("s3cret-token"), Some(wrong)), "{wrong}");
        }
        assert!(!token_matches(None, Some("")));
        assert!(!token_matches(Some(""), Some("")), "an empty ADMIN_TOKEN opens nothing");
        assert!(!token_matches(Some("t"), None));
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(parse_page(None, 20, 100).unwrap(), Page { limit: 20, cursor: None });
        assert_eq!(parse_page(Some("limit=5&cursor=abc%3D"), 20, 100).unwrap(), Page { limit: 5, cursor: Some("abc=".into()) });
        for bad in ["limit=0", "limit=101", "limit=x", "limit=-1"] {
            assert_eq!(parse_page(Some(bad), 20, 100).unwrap_err().code, "invalid_limit", "{bad}");
        }
        assert_eq!(parse_page(Some("page=2"), 20, 100).unwrap_err().code, "unknown_parameter");
    }
}
