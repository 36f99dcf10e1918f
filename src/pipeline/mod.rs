//! Stream deployment: consume -> decode -> features -> score -> encode -> produce, in a Rust
//! thread, committing the source offsets only after the results are acknowledged.

pub mod features;
pub mod scorer;

pub use features::{FeatureError, FeatureSpec};
pub use scorer::{RowScorer, ScorerOptions, ScorerStats, StreamScorer};

use crate::kafka::KafkaError;

/// Everything that can stop a stream scorer, with where it happened.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("features of {topic}: {0}", topic = .1)]
    Features(FeatureError, String),
    #[error("cannot score the message at {topic}[{partition}]@{offset}: {reason}")]
    BadRow {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("the model failed on a batch of {rows} rows from {topic}: {reason}")]
    Model {
        topic: String,
        rows: usize,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    /// A fault of kafkaml itself (a panicking thread), not of the data or the settings.
    #[error("{0}")]
    Internal(String),
}
