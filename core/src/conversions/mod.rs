//! Conversion analytics over raw events, on goals (`query::goal`): what every such query shares
//! with the Stats API (`common`), the funnel (`funnel/`), attribution across visits (`attribution/`), retention
//! (`retention/`) and paths (`paths/`).

pub mod attribution;
pub mod common;
pub mod funnel;
pub mod paths;
pub mod retention;

use crate::error::ApiError;
use crate::query::plan::Tables;
use serde_json::Value;

/// Which conversion query a request is: each has its endpoint, its usage counter and its tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Funnel,
    Attribution,
    Retention,
    Paths,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Funnel, Kind::Attribution, Kind::Retention, Kind::Paths];

    /// Its name: the endpoint's last segment, the MCP tool and the usage counter's dimension.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Funnel => "funnel",
            Kind::Attribution => "attribution",
            Kind::Retention => "retention",
            Kind::Paths => "paths",
        }
    }

    /// Its endpoint, `/v1/<name>`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Funnel => "/v1/funnel",
            Kind::Attribution => "/v1/attribution",
            Kind::Retention => "/v1/retention",
            Kind::Paths => "/v1/paths",
        }
    }

    /// The query `POST /v1/<name>` asks, if the path is one.
    pub fn from_path(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == path)
    }
}

/// A checked conversion query and its one statement.
#[derive(Debug, Clone)]
pub enum Planned {
    Funnel(funnel::Planned),
    Attribution(attribution::Planned),
    Retention(retention::Planned),
    Paths(paths::Planned),
}

/// A body of `kind`, for a project, to its statement; no I/O.
pub fn plan(
    kind: Kind,
    body: &[u8],
    project_id: &str,
    project_timezone: Option<&str>,
    tables: Tables,
    now_ms: i64,
) -> Result<Planned, ApiError> {
    Ok(match kind {
        Kind::Funnel => Planned::Funnel(funnel::plan(body, project_id, project_timezone, tables, now_ms)?),
        Kind::Attribution => Planned::Attribution(attribution::plan(body, project_id, project_timezone, tables, now_ms)?),
        Kind::Retention => Planned::Retention(retention::plan(body, project_id, project_timezone, tables, now_ms)?),
        Kind::Paths => Planned::Paths(paths::plan(body, project_id, project_timezone, tables, now_ms)?),
    })
}

impl Planned {
    pub fn sql(&self) -> &str {
        match self {
            Planned::Funnel(p) => &p.sql,
            Planned::Attribution(p) => &p.sql,
            Planned::Retention(p) => &p.sql,
            Planned::Paths(p) => &p.sql,
        }
    }

    /// The response, from ClickHouse's answer. Err: it did not read (ours, not the client's).
    pub fn answer(&self, raw: &str) -> Result<Value, String> {
        match self {
            Planned::Funnel(p) => funnel::answer::answer(&p.funnel, raw),
            Planned::Attribution(p) => attribution::answer::answer(&p.attribution, raw),
            Planned::Retention(p) => retention::answer::answer(&p.retention, raw),
            Planned::Paths(p) => paths::answer::answer(&p.paths, raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_its_endpoint() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_path(&format!("/v1/{}", k.name())), Some(k));
        }
        for other in ["/v1/query", "/v1/funnels", "/funnel", "/v1/", ""] {
            assert_eq!(Kind::from_path(other), None, "{other}");
        }
        let t = Tables { database: "millimetric", table: "events" };
        let p = plan(Kind::Retention, br#"{"date_range":"7d"}"#, "p", None, t, 0).unwrap();
        assert!(p.sql().contains("toRelativeWeekNum") && p.answer("").unwrap()["cohorts"] == serde_json::json!([]));
    }
}
