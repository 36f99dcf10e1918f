//! Aggregations (`GROUP BY`, `WINDOW`, `HAVING`): the aggregate functions, the windows, and the
//! stateful stage a query's rows go through between its `WHERE` and its sink.

pub mod plan;
pub mod snapshot;
pub mod stage;
pub mod udaf;
pub mod window;
