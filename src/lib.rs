//! kafkaml's core: Kafka and ksqlDB data to and from Arrow, with no Python in sight.
//! The Python bindings live in `python/` behind the `python` feature.

pub mod formats;
pub mod kafka;
pub mod ksql;
pub mod ksql_server;
pub mod matrix;
// Model inference (tract): TensorFlow frozen graphs and ONNX.
pub mod model;
// The stream scorer: consume -> score -> produce.
pub mod pipeline;
// The embedded Schema Registry: Confluent's REST API over state kept in a Kafka topic.
pub mod registry;
pub mod serve;
// The MQTT proxy: devices publish over MQTT 3.1.1, each PUBLISH becomes a Kafka record.
pub mod mqtt;

#[cfg(feature = "python")]
mod python;
