//! `POST /v1/retention`: the body checked (`request`), one statement (`sql`), the triangle
//! (`answer`). `plan` ties them together without I/O; the read Worker runs the statement.

pub mod answer;
pub mod request;
pub mod sql;

use crate::error::ApiError;
use crate::query::plan::Tables;
use request::Retention;

#[derive(Debug, Clone)]
pub struct Planned {
    pub retention: Retention,
    pub sql: String,
}

pub fn plan(body: &[u8], project_id: &str, project_timezone: Option<&str>, tables: Tables, now_ms: i64) -> Result<Planned, ApiError> {
    let retention = request::parse(body, project_timezone, now_ms)?;
    let sql = super::common::checked_statement(
        sql::statement(&retention, &retention.common.scope(tables.database, tables.table, project_id)),
        "The goals and filters are too large to run: use fewer conditions or values.",
    )?;
    Ok(Planned { retention, sql })
}
