//! librdkafka client configuration: kafkaml's defaults, then the user's properties on top,
//! passed through unchanged as confluent-kafka users know them.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;

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

impl ConsumerContext for QuietContext {}

pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
