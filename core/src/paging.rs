//! Paging of listings (`?limit=N&cursor=C`), for the admin endpoints and any other list.

use crate::error::ApiError;

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
                page.limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| ApiError::bad_request("invalid_limit", format!("`limit` must be a whole number from 1 to {max}.")))?
            }
            "cursor" if !v.is_empty() => page.cursor = Some(v.into_owned()),
            "cursor" => {}
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("`{other}` is not a parameter here; use `limit` and `cursor`."),
                ))
            }
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

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
