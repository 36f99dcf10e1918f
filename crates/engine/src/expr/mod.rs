//! Expressions: typed against a schema at plan time (`compile`), then evaluated on batches of
//! rows (`eval`) with ksqlDB's semantics.

mod arith;
mod cast;
mod compile;
mod eval;

pub use arith::{compare, values_equal};
pub use cast::{cast_typed, cast_value, has_struct, value_to_string};
pub use compile::{compile, CompileError, CompiledExpr, Scope, AGGREGATES};
pub use eval::{columns_used, eval_column, eval_row, Batch};
