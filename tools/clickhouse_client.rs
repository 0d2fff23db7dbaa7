//! Blocking ClickHouse HTTP client for tools and tests.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Client {
    pub base_url: String,
    pub user: String,
    pub password: String,
    pub database: Option<String>,
    pub timeout: Duration,
}

impl Client {
    pub fn new(base_url: &str) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            user: "default".into(),
            password: String::new(),
            database: None,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn with_database(mut self, db: &str) -> Client {
        self.database = Some(db.to_string());
        self
    }

    /// Run one statement; the body of the answer, or ClickHouse's error text.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let mut req = ureq::post(&format!("{}/", self.base_url))
            .timeout(self.timeout)
            .set("X-ClickHouse-User", &self.user)
            .set("X-ClickHouse-Key", &self.password)
            .query("allow_experimental_low_cardinality_type", "1");
        if let Some(db) = &self.database {
            req = req.query("database", db);
        }
        match req.send_string(sql) {
            Ok(resp) => resp.into_string().map_err(|e| e.to_string()),
            Err(ureq::Error::Status(code, resp)) => Err(format!("HTTP {code}: {}", resp.into_string().unwrap_or_default().trim())),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn ping(&self) -> bool {
        ureq::get(&format!("{}/ping", self.base_url)).timeout(Duration::from_secs(2)).call().is_ok()
    }
}
