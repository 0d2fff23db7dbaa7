//! ClickHouse, the pure half: the connection settings and insert requests (`clickhouse`),
//! spelling values into SQL (`sql`), the schema's migrations, retention of raw events, and the
//! daily rollup into aggregates that outlive them.

pub mod clickhouse;
pub mod migrations;
pub mod retention;
pub mod rollup;
pub mod sql;
