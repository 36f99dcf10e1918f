//! `kafkaml-broker`: a Kafka-protocol broker that runs inside the process (LocalKafka's
//! engine). One node, replication factor 1; every message written is kept, in memory or,
//! with [`BrokerConfig::path`], also appended to one file per partition and read back on
//! start. It serves what librdkafka-based clients use: produce (idempotent producers too),
//! fetch with long polling, offsets by time, topic creation and deletion (and auto-creation),
//! consumer groups with rebalances and committed offsets.
//!
//! ```no_run
//! let broker = kafkaml_broker::Broker::start(kafkaml_broker::BrokerConfig::default()).unwrap();
//! println!("bootstrap.servers={}", broker.bootstrap());
//! broker.stop();
//! ```

mod groups;
mod log;
mod server;
mod state;

use std::path::PathBuf;
use std::sync::Arc;

pub use state::TopicInfo;

/// How to run a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The address to listen on (loopback by default).
    pub host: String,
    /// The port to listen on; 0 picks a free one.
    pub port: u16,
    /// A directory that keeps the data across restarts; None keeps it in memory only.
    pub path: Option<PathBuf>,
    /// Partitions of a topic created on first use (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Whether producing to (or a producer's metadata request for) an unknown topic creates it
    /// (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// How long an empty consumer group's first rebalance waits for more members, from each
    /// member's join (Kafka's `group.initial.rebalance.delay.ms`, 3 s there): members started
    /// together get one generation instead of a rebalance each.
    pub initial_rebalance_delay: std::time::Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            path: None,
            default_partitions: 1,
            auto_create_topics: true,
            initial_rebalance_delay: std::time::Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid topic name {0:?}: use 1-249 of a-z, A-Z, 0-9, '.', '_', '-' (not '.' or '..')"
    )]
    InvalidTopic(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic:?}: a topic needs at least one partition, not {partitions}")]
    InvalidPartitions { topic: String, partitions: i32 },
    #[error("the broker is stopped")]
    Stopped,
}

/// A running broker; dropping it stops it.
pub struct Broker {
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<state::State>,
    bootstrap: String,
}

impl Broker {
    /// Loads the data under `config.path` (if any), binds the listener and starts serving.
    pub fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        if config.default_partitions < 1 {
            return Err(BrokerError::InvalidPartitions {
                topic: "(default)".into(),
                partitions: config.default_partitions,
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kafkaml-broker")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| BrokerError::Io {
                context: "starting the broker's runtime".into(),
                source,
            })?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((
                config.host.as_str(),
                config.port,
            )))
            .map_err(|source| BrokerError::Io {
                context: format!("listening on {}:{}", config.host, config.port),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| BrokerError::Io {
            context: "reading the listener's address".into(),
            source,
        })?;
        let advertised_host = if address.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            address.ip().to_string()
        };
        let state = Arc::new(state::State::load(
            config,
            advertised_host.clone(),
            i32::from(address.port()),
        )?);
        runtime.spawn(server::serve(listener, state.clone()));
        runtime.spawn(server::expire_sessions(state.clone()));
        Ok(Broker {
            runtime: Some(runtime),
            state,
            bootstrap: format!("{advertised_host}:{}", address.port()),
        })
    }

    /// The `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        self.running()?;
        self.state.create_topic(name, partitions, Vec::new())
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        self.running()?;
        self.state.delete_topic(name)
    }

    /// The topics, sorted by name, with their partitions' offsets.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.state.topic_infos()
    }

    /// Stops serving: connections are closed, in-memory data is gone, files stay.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn running(&self) -> Result<(), BrokerError> {
        if self.runtime.is_some() {
            Ok(())
        } else {
            Err(BrokerError::Stopped)
        }
    }

    fn shutdown(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Waits for a task in the middle of an append, so that a broker started next on
            // the same directory finds whole files.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        self.state.flush();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
