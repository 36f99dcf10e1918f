//! An MQTT proxy into Kafka, as Confluent MQTT Proxy does it: devices publish over MQTT 3.1.1
//! and every PUBLISH becomes one Kafka record (key = the MQTT topic, value = the payload as it
//! is) in the Kafka topic the first matching `topic.regex.list` rule names.
//!
//! # Guarantees
//!
//! - QoS 0: queued to Kafka, nothing answered (fire and forget).
//! - QoS 1: PUBACK only after Kafka acknowledged the record (at least once).
//! - QoS 2: PUBREC only after Kafka acknowledged the record; the packet id is kept until
//!   PUBREL, so a retransmitted (DUP) PUBLISH is answered without producing it again (exactly
//!   once). Sessions with `clean session = 0` keep these ids across reconnections.
//! - Acknowledgements go out in the order the PUBLISHes came in (§4.6).
//! - A Kafka failure (delivery timed out, topic authorization, ...) is never acknowledged: the
//!   connection is closed without the PUBACK/PUBREC, and counted (`kafka_errors`), so a device
//!   that reconnects retransmits.
//! - What the proxy refuses (a topic no rule matches, a payload above
//!   `mqtt.message.max.bytes`, a retained message) is counted and the connection closed, the
//!   one refusal MQTT 3.1.1 can express for a PUBLISH (§3.3.5). SUBSCRIBE is answered with
//!   the failure code 0x80 for each filter: it is a proxy, not a broker.
//! - A malformed packet, a first packet that is not CONNECT, or silence longer than 1.5 times
//!   the keep-alive closes the connection (counted).

mod bridge;
pub mod codec;
pub mod config;
mod publisher;
mod server;

use std::collections::BTreeMap;
use std::time::Duration;

pub use bridge::{broker_address, BridgeOptions, BridgeStats, MqttBridge};
pub use config::{parse_properties, ProxyConfig};
pub use publisher::{publish, PublishOptions};
pub use server::{MqttProxy, ProxyStats};

use crate::kafka::KafkaError;

/// The producer settings the proxy and the bridge write with, under the user's own.
fn producer_defaults(timeout: Duration) -> [(&'static str, String); 4] {
    [
        // Exactly once into Kafka when librdkafka retries (a QoS 2 promise), in order.
        ("enable.idempotence", "true".to_string()),
        // A device waits for its PUBACK: batch briefly, not librdkafka's 5 ms.
        ("linger.ms", "1".to_string()),
        (
            "message.timeout.ms",
            timeout.as_millis().max(1000).to_string(),
        ),
        // The Java producer's partitioner, as Confluent's proxy: same key, same partition.
        ("partitioner", "murmur2_random".to_string()),
    ]
}

/// Confluent MQTT Proxy's default `mqtt.message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8092;

/// Everything that can stop a proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("topic rule {rule:?}: {reason}")]
    TopicRule { rule: String, reason: String },
    #[error("cannot listen on {listen:?}: {reason}")]
    Listen { listen: String, reason: String },
    /// The MQTT broker a bridge subscribes through could not be reached, refused the
    /// connection or refused a subscription.
    #[error("MQTT broker {broker}: {reason}")]
    Broker { broker: String, reason: String },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// One `topic.regex.list` rule: MQTT topics matching `pattern` (as a whole, like Java's
/// `Matcher.matches`) go to `kafka_topic`.
#[derive(Debug, Clone)]
pub struct TopicRule {
    pub kafka_topic: String,
    pub pattern: String,
    regex: regex::Regex,
}

/// The rules in order: the first match wins.
#[derive(Debug, Clone, Default)]
pub struct TopicMap {
    rules: Vec<TopicRule>,
}

impl TopicMap {
    /// Rules from `(kafka topic, regex)` pairs.
    pub fn new<K: AsRef<str>, P: AsRef<str>>(pairs: &[(K, P)]) -> Result<Self, MqttError> {
        let mut rules = Vec::with_capacity(pairs.len());
        for (topic, pattern) in pairs {
            let (topic, pattern) = (topic.as_ref().trim(), pattern.as_ref().trim());
            let rule = || format!("{topic}:{pattern}");
            check_kafka_topic(topic).map_err(|reason| MqttError::TopicRule {
                rule: rule(),
                reason,
            })?;
            let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                MqttError::TopicRule {
                    rule: rule(),
                    reason: format!("invalid regular expression: {e}"),
                }
            })?;
            rules.push(TopicRule {
                kafka_topic: topic.to_string(),
                pattern: pattern.to_string(),
                regex,
            });
        }
        Ok(TopicMap { rules })
    }

    /// Confluent's form: `<kafka topic>:<regex>` pairs separated by commas
    /// (`temperature:.*temperature,brightness:.*brightness`).
    pub fn parse(list: &str) -> Result<Self, MqttError> {
        let mut pairs = Vec::new();
        for item in list.split(',').filter(|item| !item.trim().is_empty()) {
            let Some((topic, pattern)) = item.split_once(':') else {
                return Err(MqttError::TopicRule {
                    rule: item.trim().to_string(),
                    reason: "expected <kafka topic>:<regex>".into(),
                });
            };
            pairs.push((topic, pattern));
        }
        Self::new(&pairs)
    }

    /// The index of the first rule whose pattern matches all of `mqtt_topic`.
    pub fn find(&self, mqtt_topic: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.regex.is_match(mqtt_topic))
    }

    pub fn rules(&self) -> &[TopicRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The Kafka topics the rules name, each once.
    pub fn kafka_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if !topics.contains(&rule.kafka_topic.as_str()) {
                topics.push(&rule.kafka_topic);
            }
        }
        topics
    }
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_kafka_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the Kafka topic name is empty".into());
    }
    if topic.len() > 249 || topic == "." || topic == ".." {
        return Err(format!("{topic:?} is not a valid Kafka topic name"));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "Kafka topic {topic:?} contains {bad:?} (allowed: letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Kafka's bootstrap servers.
    pub bootstrap: String,
    /// `host:port` to accept MQTT connections on; port 0 picks a free one.
    pub listen: String,
    pub topics: TopicMap,
    /// PUBLISH payloads larger than this are refused.
    pub max_message_bytes: usize,
    /// librdkafka properties for the producer, over the proxy's defaults.
    pub producer_config: Vec<(String, String)>,
    /// How long Kafka may take to acknowledge a record before it counts as failed.
    pub timeout: Duration,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Usernames and their passwords: with some, a CONNECT without a matching pair is refused
    /// (CONNACK 0x05 without credentials, 0x04 with wrong ones); without, anyone connects.
    pub users: BTreeMap<String, String>,
}

impl ProxyOptions {
    pub fn new(bootstrap: &str, topics: TopicMap) -> Self {
        ProxyOptions {
            bootstrap: bootstrap.to_string(),
            listen: "127.0.0.1:1883".to_string(),
            topics,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            producer_config: Vec::new(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            users: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests;
