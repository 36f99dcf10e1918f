//! Kafka clients that speak Arrow: a consumer that decodes batches of messages into record
//! batches, a producer that encodes record batches into messages, and the in-process
//! cluster used for demos and quick tests.

pub mod config;
pub mod consumer;
mod decode_ahead;
pub mod local;
mod polled;
pub mod producer;

use crate::formats::FormatError;

/// Everything that can go wrong talking to Kafka, with the coordinates that locate it.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach Kafka at {bootstrap} within {timeout_s:.1} s: {reason}")]
    Unreachable {
        bootstrap: String,
        timeout_s: f64,
        reason: String,
    },
    /// `hint` says what to do: the closest existing name, or which topics there are.
    #[error("topic {topic:?} does not exist on {bootstrap}{hint}")]
    UnknownTopic {
        topic: String,
        bootstrap: String,
        hint: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot decode message at {topic}[{partition}]@{offset}: {reason}")]
    Decode {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("delivery to topic {topic:?} failed for {failed} message(s): {reason}")]
    Delivery {
        topic: String,
        failed: u64,
        reason: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("Kafka client error: {0}")]
    Client(String),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Rows read into a matrix that do not fit it (a null without a fill, say).
    #[error(transparent)]
    Matrix(#[from] crate::matrix::MatrixError),
    #[error("interrupted")]
    Interrupted,
}

impl From<rdkafka::error::KafkaError> for KafkaError {
    fn from(error: rdkafka::error::KafkaError) -> Self {
        KafkaError::Client(error.to_string())
    }
}

/// Called now and then during long waits; returns true when the caller wants to stop
/// (Ctrl-C in Python).
pub type Interrupt<'a> = &'a mut dyn FnMut() -> bool;

/// Gives the memory that closed clients freed back to the operating system. glibc keeps
/// freed memory in its per-thread arenas, and librdkafka frees its fetch buffers on its own
/// threads: after a 1M-message read that was ~65 MB of resident memory, which the next
/// allocation (the numpy matrix, say) then came on top of. (librdkafka allocates with glibc's
/// malloc; the Python extension's Rust allocations go to mimalloc, which returns its own.)
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: malloc_trim only walks glibc's own heaps; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
