//! Errors a client sees: an HTTP status, a stable machine-readable code, and a sentence
//! that says what to fix. Every refusal in the ingest path is one of these.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// For a 405: the methods the path takes, sent as the `Allow` header (RFC 9110).
    #[serde(skip)]
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), allow: None }
    }

    /// 405 `method_not_allowed`: the path takes `allow` (e.g. "GET, HEAD"), as the message says.
    pub fn method_not_allowed(allow: &'static str, message: impl Into<String>) -> Self {
        ApiError { allow: Some(allow), ..Self::new(405, "method_not_allowed", message) }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The JSON body sent with the status: `{"error":{"code":..,"message":..}}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a ApiError,
        }
        serde_json::to_string(&Body { error: self }).expect("ApiError always serializes")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_code_and_message_but_not_status() {
        let e = ApiError::new(401, "unknown_key", "The key is not known. Check it.");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "unknown_key");
        assert_eq!(v["error"]["message"], "The key is not known. Check it.");
        assert!(v["error"].get("status").is_none());
        let e = ApiError::method_not_allowed("GET, HEAD", "Use GET /health.");
        assert_eq!((e.status, e.code, e.allow), (405, "method_not_allowed", Some("GET, HEAD")));
        assert!(!e.to_json().contains("GET, HEAD"), "the methods go in the header: {}", e.to_json());
    }
}
