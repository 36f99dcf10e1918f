//! kafkaml's embedded KSQL engine: ksqlDB's statements, types, expressions, functions and
//! serialisation formats, and the topologies that persistent and push queries run.
//!
//! The crate knows nothing of Kafka clients or Python: the project's main crate feeds records in
//! and takes records out (on a real cluster), and the conformance runner drives the same
//! topologies record by record, as ksqlDB's own test driver does.
//!
//! Evaluation is columnar over ksqlDB values (`value::Value`): a batch of records is decoded into
//! one column per field, each expression produces a column, and functions — model UDFs above
//! all — see whole columns. Values rather than Arrow arrays, because ksqlDB's semantics (Java's
//! integer arithmetic, BigDecimal scales, null handling inside structs and maps) are decided per
//! value; Arrow arrays are made at the edges where Arrow is wanted.

pub mod aggregate;
pub mod catalog;
pub mod conformance;
pub mod engine;
pub mod expr;
pub mod formats;
pub mod functions;
pub mod join;
pub mod partitioner;
pub mod pull;
pub mod rest;
pub mod small_key;
pub mod sql;
pub mod topology;
pub mod types;
pub mod value;
