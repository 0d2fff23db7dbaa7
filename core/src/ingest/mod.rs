//! An event's way in, top to bottom: the event contract (`event`, with its `revenue`), its time (`timestamp`), the
//! pipeline that enriches it into a row (`pipeline`, `row`), and the rule that the first write
//! of an id wins (`first_write`), and where accepted rows are written (`delivery`: straight
//! into ClickHouse, the queue as the fallback; what a dead letter holds: `dead_letter_summary`). `geo_load` and `warm_up` are the isolate's start-up decisions.

pub mod dead_letter_summary;
pub mod delivery;
pub mod event;
pub mod first_write;
pub mod geo_load;
pub mod pipeline;
pub mod revenue;
pub mod row;
pub mod timestamp;
pub mod warm_up;
