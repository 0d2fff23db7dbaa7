//! `POST /v1/funnel`: the body checked (`request`), one statement for the whole funnel and
//! its breakdown (`sql`), and the answer (`answer`). `plan` ties them together without I/O;
//! the read Worker runs the statement.

pub mod answer;
pub mod request;
pub mod sql;

use crate::error::ApiError;
use crate::query::plan::Tables;
use request::Funnel;

/// A checked funnel and its statement.
#[derive(Debug, Clone)]
pub struct Planned {
    pub funnel: Funnel,
    pub sql: String,
}

pub fn plan(body: &[u8], project_id: &str, project_timezone: Option<&str>, tables: Tables, now_ms: i64) -> Result<Planned, ApiError> {
    let funnel = request::parse(body, project_timezone, now_ms)?;
    let scope = funnel.common.scope(tables.database, tables.table, project_id);
    let sql = super::common::checked_statement(
        sql::statement(&funnel, &scope),
        "The steps and filters are too large to run: use fewer conditions or values (or a `matches` pattern instead of many values).",
    )?;
    Ok(Planned { funnel, sql })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_too_large_to_run_is_the_client_s_400() {
        let values: Vec<String> = (0..100).map(|i| format!("{i}{}", "x".repeat(1900))).collect();
        let filters: Vec<serde_json::Value> = (0..2).map(|_| serde_json::json!(["is", "event:page", values])).collect();
        let body = serde_json::json!({"steps": [{"page": "/"}, {"event": "a"}], "date_range": "7d", "filters": filters});
        let t = Tables { database: "millimetric", table: "events" };
        let e = plan(body.to_string().as_bytes(), "p", None, t, 0).unwrap_err();
        assert_eq!((e.status, e.code), (400, "filters_too_large"));
        let ok = plan(br#"{"steps":[{"page":"/"},{"event":"a"}],"date_range":"7d","breakdown":"visit:source"}"#, "p", None, t, 0).unwrap();
        assert!(ok.sql.contains("ARRAY JOIN [(1, ''), (0, bd0)]") && ok.sql.contains("project_id = 'p'"));
    }
}
