//! Conversion analytics over raw events: goals (`goal`), what every such query shares with the
//! Stats API (`common`), the funnel (`funnel/`) and attribution across visits (`attribution/`).

pub mod attribution;
pub mod common;
pub mod funnel;
pub mod goal;
