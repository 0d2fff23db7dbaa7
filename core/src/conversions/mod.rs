//! Conversion analytics over raw events, on goals (`query::goal`): what every such query shares
//! with the Stats API (`common`), the funnel (`funnel/`), attribution across visits (`attribution/`), retention
//! (`retention/`) and paths (`paths/`).

pub mod attribution;
pub mod common;
pub mod funnel;
pub mod paths;
pub mod retention;
