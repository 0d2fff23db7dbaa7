//! The read side's core: a Stats API query (Plausible v2 shape) checked (`request`), its
//! dates resolved in its time zone (`dates`), planned into ClickHouse SQL (`sql`), and the
//! answers assembled into the response (`results`). Pure: the read Worker runs the
//! statements and passes the answers back.

pub mod aggregates;
pub mod dates;
pub mod events;
pub mod goal;
pub mod plan;
pub mod realtime;
pub mod request;
pub mod results;
pub mod sql;
