//! `LocalKafka(engine="mock")`: librdkafka's in-process mock cluster on loopback ports (the
//! default engine is kafkaml's own broker, crates/broker).
//!
//! Good for demos and quick tests, not a broker: data lives in memory, each partition keeps
//! only its newest ~100,000 message batches / 5 MiB (older data is dropped silently, which the
//! consumer turns into a warning), and offsets cannot be looked up by time.

use std::collections::HashSet;
use std::sync::Mutex;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::KafkaError;

/// Bootstrap addresses of the mock clusters alive in this process.
static LOCAL_BOOTSTRAPS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// True when `bootstrap` names a mock cluster of this process.
pub fn is_local_bootstrap(bootstrap: &str) -> bool {
    let guard = LOCAL_BOOTSTRAPS.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .is_some_and(|set| bootstrap.split(',').any(|b| set.contains(b.trim())))
}

pub struct LocalCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl LocalCluster {
    pub fn start(brokers: i32) -> Result<Self, KafkaError> {
        if brokers < 1 {
            return Err(KafkaError::Config(
                "LocalKafka needs at least one broker".into(),
            ));
        }
        let cluster = MockCluster::new(brokers)
            .map_err(|e| KafkaError::Client(format!("cannot start LocalKafka: {e}")))?;
        let bootstrap = cluster.bootstrap_servers();
        let mut guard = LOCAL_BOOTSTRAPS.lock().unwrap_or_else(|e| e.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        for address in bootstrap.split(',') {
            set.insert(address.trim().to_string());
        }
        Ok(LocalCluster { cluster, bootstrap })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), KafkaError> {
        if partitions < 1 {
            return Err(KafkaError::Config(
                "a topic needs at least one partition".into(),
            ));
        }
        self.cluster
            .create_topic(name, partitions, 1)
            .map_err(|e| KafkaError::Client(format!("cannot create topic {name:?}: {e}")))
    }

    /// Takes broker `id` (1-based) down or up, for fault tests.
    pub fn set_broker_up(&self, id: i32, up: bool) -> Result<(), KafkaError> {
        let result = if up {
            self.cluster.broker_up(id)
        } else {
            self.cluster.broker_down(id)
        };
        result.map_err(|e| KafkaError::Client(format!("broker {id}: {e}")))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let mut guard = LOCAL_BOOTSTRAPS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = guard.as_mut() {
            for address in self.bootstrap.split(',') {
                set.remove(address.trim());
            }
        }
    }
}
