//! The registry's log on Kafka: appends records to partition 0 of the `_schemas` topic and
//! follows it from the beginning in a thread of its own, applying every record to the state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::record::Record;
use super::state::State;
use super::{RegistryError, RegistryOptions};
use crate::kafka::config::{client_config, QuietContext};
use crate::kafka::local::is_local_bootstrap;

/// All records go to (and are read from) this partition: one partition is one total order.
const PARTITION: i32 = 0;
/// How long the follower blocks in one poll: also how soon it notices `stop`.
const POLL: Duration = Duration::from_millis(100);

/// Where the follower has got to: the next offset it will read.
struct Position {
    next: Mutex<i64>,
    moved: Condvar,
    /// The follower's latest error (a broker gone, say), for timeouts to explain themselves.
    last_error: Mutex<Option<String>>,
}

impl Position {
    fn advance(&self, next: i64) {
        let mut current = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if next > *current {
            *current = next;
            self.moved.notify_all();
        }
    }
}

/// Delivers each record's offset (or its failure) back to the writer that produced it.
struct Delivery;

impl ClientContext for Delivery {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: RdKafkaError, _: &str) {}
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<mpsc::Sender<Result<i64, String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, sender: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.to_string()),
        };
        let _ = sender.send(outcome);
    }
}

pub struct KafkaLog {
    bootstrap: String,
    topic: String,
    timeout: Duration,
    producer: ThreadedProducer<Delivery>,
    position: Arc<Position>,
    stop: Arc<AtomicBool>,
    follower: Option<JoinHandle<()>>,
}

impl KafkaLog {
    pub fn open(
        bootstrap: &str,
        options: &RegistryOptions,
        state: Arc<RwLock<State>>,
    ) -> Result<Self, RegistryError> {
        let timeout_ms = options.timeout.as_millis().to_string();
        let producer: ThreadedProducer<Delivery> = client_config(
            bootstrap,
            &[
                // librdkafka's producers ask brokers to create unknown topics when they fetch
                // metadata: the topic would get the broker's defaults (not compacted).
                ("allow.auto.create.topics", "false".into()),
                ("enable.idempotence", "true".into()),
                ("acks", "all".into()),
                ("linger.ms", "0".into()),
                ("message.timeout.ms", timeout_ms),
            ],
            &options.config,
        )
        .create_with_context(Delivery)
        .map_err(|e| RegistryError::Config(format!("cannot create a Kafka producer: {e}")))?;
        let mut log = KafkaLog {
            bootstrap: bootstrap.to_string(),
            topic: options.topic.clone(),
            timeout: options.timeout,
            producer,
            position: Arc::new(Position {
                next: Mutex::new(0),
                moved: Condvar::new(),
                last_error: Mutex::new(None),
            }),
            stop: Arc::new(AtomicBool::new(false)),
            follower: None,
        };
        log.ensure_topic(options)?;
        let consumer: BaseConsumer<QuietContext> = client_config(
            bootstrap,
            &[
                ("group.id", "kafkaml-schema-registry".into()),
                ("enable.auto.commit", "false".into()),
                ("enable.partition.eof", "true".into()),
                ("auto.offset.reset", "earliest".into()),
                // Writers wait for their record to come back: fetch again soon.
                ("fetch.wait.max.ms", "50".into()),
                ("fetch.error.backoff.ms", "20".into()),
            ],
            &options.config,
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| RegistryError::Config(format!("cannot create a Kafka consumer: {e}")))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&options.topic, PARTITION, Offset::Beginning)
            .map_err(|e| RegistryError::Store(e.to_string()))?;
        consumer
            .assign(&assignment)
            .map_err(|e| RegistryError::Store(format!("cannot read {:?}: {e}", options.topic)))?;
        let (position, stop, topic) = (log.position.clone(), log.stop.clone(), log.topic.clone());
        let follower = std::thread::Builder::new()
            .name("schema-registry-log".into())
            .spawn(move || follow(consumer, &topic, &state, &position, &stop))
            .map_err(|e| RegistryError::Store(format!("cannot start the log follower: {e}")))?;
        log.follower = Some(follower);
        Ok(log)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn position(&self) -> i64 {
        *self.position.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unreachable(&self, what: &str, error: impl std::fmt::Display) -> RegistryError {
        RegistryError::Store(format!(
            "{what} on Kafka at {} (topic {:?}) failed within {:.1} s: {error}",
            self.bootstrap,
            self.topic,
            self.timeout.as_secs_f64()
        ))
    }

    /// Creates the topic (one partition, compacted) unless it exists. Clusters that do not
    /// create topics on request (librdkafka's mock cluster) create it when it is produced to.
    fn ensure_topic(&self, options: &RegistryOptions) -> Result<(), RegistryError> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), self.timeout)
            .map_err(|e| self.unreachable("reading metadata", e))?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty());
        if exists {
            return Ok(());
        }
        let brokers = metadata.brokers().len().max(1) as i32;
        if !is_local_bootstrap(&self.bootstrap)
            && self.create_topic(options, brokers.min(3)).is_ok()
        {
            return Ok(());
        }
        self.create_by_producing(options)
    }

    /// Creates the topic by producing a no-op record with a producer that may auto-create
    /// topics: the only way on librdkafka's mock cluster.
    fn create_by_producing(&self, options: &RegistryOptions) -> Result<(), RegistryError> {
        let creator: BaseProducer = client_config(
            &self.bootstrap,
            &[("allow.auto.create.topics", "true".into())],
            &options.config,
        )
        .create()
        .map_err(|e| RegistryError::Config(format!("cannot create a Kafka producer: {e}")))?;
        let (key, _) = Record::Noop.encode();
        creator
            .send(
                BaseRecord::<String, [u8]>::to(&self.topic)
                    .partition(PARTITION)
                    .key(&key),
            )
            .map_err(|(e, _)| self.unreachable("creating the topic", e))?;
        creator
            .flush(self.timeout)
            .map_err(|e| self.unreachable("creating the topic", e))
    }

    fn create_topic(&self, options: &RegistryOptions, replicas: i32) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&self.bootstrap, &[], &options.config)
                .create()
                .map_err(|e| e.to_string())?;
        let topic = NewTopic::new(&self.topic, 1, TopicReplication::Fixed(replicas))
            .set("cleanup.policy", "compact");
        let admin_options = AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout));
        // rdkafka's admin futures need no reactor; a small runtime on a thread of its own
        // drives this one whether or not the caller is inside a runtime.
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .map_err(|e| e.to_string())?
                        .block_on(admin.create_topics([&topic], &admin_options))
                        .map_err(|e| e.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("the admin request panicked".into()))
        })?;
        match results.into_iter().next() {
            Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(()),
            Some(Err((_, code))) => Err(code.to_string()),
            None => Err("no answer".into()),
        }
    }

    /// Waits until the follower has applied everything written before this call.
    pub fn catch_up(&self) -> Result<(), RegistryError> {
        // Right after the topic is created its leader may not be known yet: ask again.
        let deadline = Instant::now() + self.timeout;
        let end = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .producer
                .client()
                .fetch_watermarks(&self.topic, PARTITION, left)
            {
                Ok((_, end)) => break end,
                Err(e) if left.is_zero() => {
                    return Err(self.unreachable("reading the end of the log", e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.wait_for(end)
    }

    fn wait_for(&self, next: i64) -> Result<(), RegistryError> {
        let deadline = Instant::now() + self.timeout;
        let mut current = self.position.next.lock().unwrap_or_else(|e| e.into_inner());
        while *current < next {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let reason = self
                    .position
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| format!("read up to offset {current} of {next}"));
                return Err(self.unreachable("reading the log", reason));
            }
            current = self
                .position
                .moved
                .wait_timeout(current, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Appends `records` in order and waits until the follower has applied them.
    pub fn append(&self, records: &[Record]) -> Result<(), RegistryError> {
        let (sender, receiver) = mpsc::channel();
        for record in records {
            let (key, value) = record.encode();
            let mut message = BaseRecord::with_opaque_to(&self.topic, Box::new(sender.clone()))
                .partition(PARTITION)
                .key(&key);
            if let Some(value) = &value {
                message = message.payload(value);
            }
            self.producer
                .send(message)
                .map_err(|(e, _)| self.unreachable("writing to the log", e))?;
        }
        drop(sender);
        let mut last = -1;
        for _ in records {
            // message.timeout.ms bounds every delivery report; the margin covers the rest.
            let outcome = receiver
                .recv_timeout(self.timeout + Duration::from_secs(5))
                .map_err(|_| self.unreachable("writing to the log", "no delivery report"))?;
            last = last.max(outcome.map_err(|e| self.unreachable("writing to the log", e))?);
        }
        self.wait_for(last + 1)
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(follower) = self.follower.take() {
            let _ = follower.join();
        }
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

/// The follower: applies every record in log order and publishes how far it got.
fn follow(
    consumer: BaseConsumer<QuietContext>,
    topic: &str,
    state: &RwLock<State>,
    position: &Position,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(message)) => {
                if let Some(key) = message.key() {
                    if let Some(record) = Record::decode(key, message.payload()) {
                        state
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .apply(&record);
                    }
                }
                position.advance(message.offset() + 1);
            }
            Some(Err(RdKafkaError::PartitionEOF(_))) => {
                // At the end: everything below the consumer's position is applied (compaction
                // may have left gaps in the offsets, so the last message is not enough).
                if let Ok(list) = consumer.position() {
                    if let Some(Offset::Offset(next)) =
                        list.find_partition(topic, PARTITION).map(|p| p.offset())
                    {
                        position.advance(next);
                    }
                }
            }
            Some(Err(error)) => {
                if let Ok(mut last) = position.last_error.lock() {
                    *last = Some(error.to_string());
                }
            }
        }
    }
}
