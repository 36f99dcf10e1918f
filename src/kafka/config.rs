//! librdkafka client configuration: kafkaml's defaults, then the user's properties on top,
//! passed through unchanged as confluent-kafka users know them.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

/// Builds a client configuration: `defaults` first, then `user` overrides.
pub fn client_config(
    bootstrap: &str,
    defaults: &[(&str, String)],
    user: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    // librdkafka replaces the bootstrap connection by one to the broker it names, failing a
    // request sent on it, and opens that connection only after half of this backoff: with
    // the default 100 ms every new client's first metadata request took ~55 ms; ~15 now.
    config.set("reconnect.backoff.ms", "20");
    for (key, value) in defaults {
        config.set(*key, value);
    }
    for (key, value) in user {
        config.set(key, value);
    }
    config
}

/// A client context that remembers the latest client-level error (e.g. "Connection
/// refused"), so a timeout can say why, instead of printing it to stderr.
#[derive(Default)]
pub struct QuietContext {
    last_error: Mutex<Option<String>>,
}

impl QuietContext {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl ClientContext for QuietContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        // A client error polled through the batch API comes as a log line, not an error event.
        if facility == "ERROR" {
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(message.to_string());
            }
        }
    }
}

impl ConsumerContext for QuietContext {
    /// rust-rdkafka's rebalance, except that an event served after the consumer group has
    /// terminated is dropped: librdkafka (2.12) destroys an assign request sent to a terminated
    /// group without replying, and `rd_kafka_assign` waits for that reply forever. It happened
    /// when a revoke queued by `unsubscribe` was polled during close, after the group had
    /// already finished closing.
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        if base_consumer.closed() {
            return;
        }
        let client = base_consumer.client().native_ptr();
        let cooperative = matches!(
            base_consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        // SAFETY: the same calls rust-rdkafka's default makes, on a live client and list; an
        // error object returned is destroyed once.
        unsafe {
            use rdkafka::bindings as rd;
            let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
            if !cooperative {
                let list = if assign {
                    partitions.ptr()
                } else {
                    std::ptr::null()
                };
                rd::rd_kafka_assign(client, list);
                return;
            }
            let error = if assign {
                rd::rd_kafka_incremental_assign(client, partitions.ptr())
            } else {
                rd::rd_kafka_incremental_unassign(client, partitions.ptr())
            };
            if !error.is_null() {
                rd::rd_kafka_error_destroy(error);
            }
        }
    }
}

pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
