//! Errors seen, payloads never: what the Workers report to an error monitor that speaks
//! Sentry's envelope protocol (`POST /api/{project}/envelope/`), as values.
//!
//! - `dsn`: the monitor's address and key, from the `ERROR_MONITOR_DSN` secret (none: nothing
//!   is sent);
//! - `report`: what a report holds (a kind, a machine-readable code, a route template, the
//!   release and a count) and its envelope. Nothing else can go in: no event payload, no
//!   message text (an error's sentence may quote input), no path (a visitor id is one), no IP,
//!   key or visitor id;
//! - `throttle`: at most a few reports a minute per isolate and kind of error, the rest counted
//!   into the next one.

pub mod dsn;
pub mod report;
pub mod throttle;
