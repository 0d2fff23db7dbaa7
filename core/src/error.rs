//! Errors a client sees: an HTTP status, a stable machine-readable code, and a sentence
//! that says what to fix. Every refusal in the ingest path is one of these.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
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
    }
}
