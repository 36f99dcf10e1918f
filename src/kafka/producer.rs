//! The Arrow producer: encodes record batches in Rust and hands the messages to librdkafka.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::config::{client_config, seconds};
use super::{Interrupt, KafkaError};
use crate::formats::encode::{encode_bytes, Encoded, ValueEncoder, ValueFormat};
use crate::formats::FormatError;

const INTERRUPT_CHECK: Duration = Duration::from_millis(100);
/// The pause between looks for delivery reports while waiting for them (see
/// `ArrowProducer::wait_for_reports`).
const REPORT_PAUSE: Duration = Duration::from_micros(500);
/// Rows encoded at a time: the messages of a slice stay in one reused-size buffer instead of
/// one buffer for a whole table (gigabytes for millions of rows, every page of it faulted in).
const ENCODE_ROWS: usize = 8_192;
/// How long [`RecordProducer::new`] waits for a broker to create a topic on demand.
const TOPIC_CREATION_WAIT: Duration = Duration::from_secs(5);

/// Counts deliveries and keeps the first failure's reason.
#[derive(Default)]
pub struct DeliveryTracker {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_client_error: Mutex<Option<String>>,
}

impl DeliveryTracker {
    /// Delivery reports handled so far, delivered or failed.
    fn reports(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_client_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _message: &str) {}
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                use rdkafka::message::Message;
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| {
                        format!("{error} (partition {}, first failure)", message.partition())
                    });
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProducerOptions {
    pub bootstrap: String,
    pub topic: String,
    pub format: ValueFormat,
    /// The column whose values (in text form, or bytes) become the message keys.
    pub key_column: Option<String>,
    pub config: Vec<(String, String)>,
    pub timeout: Duration,
}

pub struct ArrowProducer {
    producer: BaseProducer<DeliveryTracker>,
    options: ProducerOptions,
    /// Made from the first batch's schema (Avro needs it to derive and register a schema).
    encoder: Option<ValueEncoder>,
    sent: u64,
}

impl ArrowProducer {
    /// Connects, checks the broker answers within the timeout, and returns a producer.
    pub fn new(options: ProducerOptions) -> Result<Self, KafkaError> {
        let defaults = [
            // Fail a message after the timeout instead of librdkafka's 5 minutes.
            (
                "message.timeout.ms",
                (options.timeout.as_millis().max(1000) * 3).to_string(),
            ),
            ("linger.ms", "10".to_string()),
            // Each row once and in order, even when librdkafka retries a batch (a plain
            // producer may write a retried batch twice, or after later ones).
            ("enable.idempotence", "true".to_string()),
            ("queue.buffering.max.messages", "500000".to_string()),
            (
                "socket.timeout.ms",
                options.timeout.as_millis().max(10).to_string(),
            ),
        ];
        let producer: BaseProducer<DeliveryTracker> =
            client_config(&options.bootstrap, &defaults, &options.config)
                .create_with_context(DeliveryTracker::default())
                .map_err(|e| KafkaError::Config(e.to_string()))?;
        producer
            .client()
            .fetch_metadata(Some(&options.topic), options.timeout)
            .map_err(|e| {
                let reason = producer
                    .context()
                    .last_client_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| e.to_string());
                KafkaError::Unreachable {
                    bootstrap: options.bootstrap.clone(),
                    timeout_s: seconds(options.timeout),
                    reason,
                }
            })?;
        // The idempotent producer asks for its producer id when the first metadata arrives,
        // often on the bootstrap connection that librdkafka then replaces; the request fails
        // and librdkafka retries it 500 ms later (3 of 50 one-row writes took ~0.5 s). Each
        // metadata answer retries a failed request at once: after a second one, over the
        // broker's own connection, 0 of 89 did (~1 ms more each).
        let _ = producer
            .client()
            .fetch_metadata(Some(&options.topic), options.timeout);
        Ok(ArrowProducer {
            producer,
            options,
            encoder: None,
            sent: 0,
        })
    }

    pub fn topic(&self) -> &str {
        &self.options.topic
    }

    /// Encodes `batch` and queues one message per row (keyed by the key column, if any).
    pub fn send_batch(
        &mut self,
        batch: &RecordBatch,
        interrupt: Interrupt<'_>,
    ) -> Result<usize, KafkaError> {
        let keys: Option<Encoded> = match self.options.key_column.as_deref() {
            Some(name) => {
                let column = batch.column_by_name(name).ok_or_else(|| {
                    FormatError::Encode(format!(
                        "key column {name:?} is not among the data's columns"
                    ))
                })?;
                Some(encode_bytes(column.as_ref())?)
            }
            None => None,
        };
        self.send_encoded(batch, keys, interrupt)
    }

    /// Encodes `batch` and queues one message per row, keyed by `keys` (one per row; a null
    /// key sends no key) — for keys that are not part of the values.
    pub fn send_batch_with_keys(
        &mut self,
        batch: &RecordBatch,
        keys: &dyn arrow_array::Array,
        interrupt: Interrupt<'_>,
    ) -> Result<usize, KafkaError> {
        if keys.len() != batch.num_rows() {
            return Err(FormatError::Encode(format!(
                "{} keys for {} rows",
                keys.len(),
                batch.num_rows()
            ))
            .into());
        }
        let keys = encode_bytes(keys)?;
        self.send_encoded(batch, Some(keys), interrupt)
    }

    fn send_encoded(
        &mut self,
        batch: &RecordBatch,
        keys: Option<Encoded>,
        interrupt: Interrupt<'_>,
    ) -> Result<usize, KafkaError> {
        if self.encoder.is_none() {
            self.encoder = Some(ValueEncoder::new(
                &self.options.format,
                &self.options.topic,
                &batch.schema(),
            )?);
        }
        let mut sent = 0;
        while sent < batch.num_rows() {
            let rows = ENCODE_ROWS.min(batch.num_rows() - sent);
            let values = self
                .encoder
                .as_ref()
                .expect("made above")
                .encode(&batch.slice(sent, rows))?;
            self.queue_messages(&values, keys.as_ref(), sent, interrupt)?;
            sent += rows;
        }
        self.sent += sent as u64;
        Ok(sent)
    }

    /// Queues one message per encoded value; `first_row` is the first value's row in the
    /// caller's batch (its key's index, and the row an error names).
    fn queue_messages(
        &mut self,
        values: &Encoded,
        keys: Option<&Encoded>,
        first_row: usize,
        interrupt: Interrupt<'_>,
    ) -> Result<(), KafkaError> {
        let mut last_check = Instant::now();
        for index in 0..values.len() {
            let row = first_row + index;
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.options.topic);
            if let Some(value) = values.get(index) {
                record = record.payload(value);
            }
            if let Some(key) = keys.and_then(|k| k.get(row)) {
                record = record.key(key);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((error, returned))
                        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        record = returned;
                        self.wait_for_reports();
                        if last_check.elapsed() >= INTERRUPT_CHECK {
                            last_check = Instant::now();
                            if interrupt() {
                                return Err(KafkaError::Interrupted);
                            }
                        }
                    }
                    Err((error, _)) => {
                        return Err(KafkaError::Delivery {
                            topic: self.options.topic.clone(),
                            failed: 1,
                            reason: format!("row {row}: {error}"),
                        })
                    }
                }
            }
            if index % 1024 == 0 {
                self.serve_ready_reports();
            }
        }
        Ok(())
    }

    /// Handles the delivery reports that are ready, without waiting.
    fn serve_ready_reports(&self) {
        let tracker = self.producer.context();
        loop {
            let before = tracker.reports();
            self.producer.poll(Duration::ZERO);
            if tracker.reports() == before {
                return;
            }
        }
    }

    /// Handles the ready delivery reports, then sleeps briefly. Not rust-rdkafka's
    /// `poll(timeout)`: it asks librdkafka to wait in whole milliseconds and polls without
    /// waiting once less than one is left, so a 1 ms poll spins for its whole millisecond;
    /// waiting for a broker on the same 2 cores, that spinning took the CPU the broker needed
    /// (a quarter of a JSON write's samples were clock reads).
    fn wait_for_reports(&self) {
        self.serve_ready_reports();
        std::thread::sleep(REPORT_PAUSE);
    }

    /// Waits until every queued message is delivered or failed; fails if any failed.
    pub fn flush(&mut self, interrupt: Interrupt<'_>) -> Result<u64, KafkaError> {
        let deadline = Instant::now() + self.options.timeout * 4;
        // Not rust-rdkafka's flush: between its checks it polls for 100 ms, and its poll
        // always lasts its whole timeout, so every flush took >= 100 ms (a stream scorer
        // flushing each batch spent most of its time there). A zero flush sends what lingers;
        // short waits then serve the delivery reports as they come.
        let _ = self.producer.flush(Duration::ZERO);
        let mut last_check = Instant::now();
        while self.producer.in_flight_count() > 0 {
            self.wait_for_reports();
            if last_check.elapsed() >= INTERRUPT_CHECK {
                last_check = Instant::now();
                if interrupt() {
                    return Err(KafkaError::Interrupted);
                }
            }
            if Instant::now() > deadline && self.producer.in_flight_count() > 0 {
                return Err(KafkaError::Delivery {
                    topic: self.options.topic.clone(),
                    failed: self.producer.in_flight_count() as u64,
                    reason: "still undelivered after the timeout".into(),
                });
            }
        }
        let tracker = self.producer.context();
        let failed = tracker.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let reason = tracker
                .first_error
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .unwrap_or_default();
            return Err(KafkaError::Delivery {
                topic: self.options.topic.clone(),
                failed,
                reason,
            });
        }
        Ok(tracker.delivered.load(Ordering::Relaxed))
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// How a [`RecordProducer`] delivery ended: `Ok` once Kafka acknowledged the record (with
/// the producer's `acks`, all in-sync replicas by default), or librdkafka's reason.
pub type DeliveryOutcome = Result<(), std::sync::Arc<str>>;

/// What to do when a record's delivery report arrives.
pub enum DeliveryNotice {
    /// Nothing beyond the counters (fire and forget).
    Count,
    /// Send the outcome to whoever waits for it.
    Notify(tokio::sync::oneshot::Sender<DeliveryOutcome>),
}

/// Counts a [`RecordProducer`]'s deliveries and forwards each record's outcome.
#[derive(Default)]
pub struct NoticeContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    last_client_error: Mutex<Option<String>>,
}

impl ClientContext for NoticeContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_client_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _message: &str) {}
}

impl ProducerContext for NoticeContext {
    type DeliveryOpaque = Box<DeliveryNotice>;

    fn delivery(&self, result: &DeliveryResult<'_>, notice: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err((error, message)) => {
                use rdkafka::message::Message;
                self.failed.fetch_add(1, Ordering::Relaxed);
                Err(format!(
                    "{error} (topic {:?}, partition {})",
                    message.topic(),
                    message.partition()
                )
                .into())
            }
        };
        if let DeliveryNotice::Notify(sender) = *notice {
            // The waiter may be gone (its connection closed): the counters still count.
            let _ = sender.send(outcome);
        }
    }
}

/// Why a record was not queued.
#[derive(Debug)]
pub enum QueueError {
    /// librdkafka's queue is full: retry after some deliveries (backpressure).
    Full,
    Failed(KafkaError),
}

/// A producer of single records, each with its own delivery report: for services that must
/// answer their clients only once Kafka has a record (the MQTT proxy's PUBACK). A background
/// thread serves librdkafka's delivery reports.
pub struct RecordProducer {
    producer: rdkafka::producer::ThreadedProducer<NoticeContext>,
    bootstrap: String,
    timeout: Duration,
}

impl RecordProducer {
    /// Connects to `bootstrap` (`config`: librdkafka properties over kafkaml's defaults) and
    /// checks that each topic of `topics` exists or can be auto-created.
    pub fn new(
        bootstrap: &str,
        defaults: &[(&str, String)],
        config: &[(String, String)],
        topics: &[&str],
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer: rdkafka::producer::ThreadedProducer<NoticeContext> =
            client_config(bootstrap, defaults, config)
                .create_with_context(NoticeContext::default())
                .map_err(|e| KafkaError::Config(e.to_string()))?;
        let unreachable = |error: rdkafka::error::KafkaError| {
            let reason = producer
                .context()
                .last_client_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| error.to_string());
            KafkaError::Unreachable {
                bootstrap: bootstrap.to_string(),
                timeout_s: seconds(timeout),
                reason,
            }
        };
        let names: Vec<&str> = if topics.is_empty() {
            vec![""]
        } else {
            topics.to_vec()
        };
        for topic in names {
            let wanted = (!topic.is_empty()).then_some(topic);
            // A broker that creates topics on demand answers the request that triggers the
            // creation with "unknown topic": ask again for a few seconds before believing it.
            let deadline = Instant::now() + timeout.min(TOPIC_CREATION_WAIT);
            loop {
                let metadata = producer
                    .client()
                    .fetch_metadata(wanted, timeout)
                    .map_err(unreachable)?;
                let unknown = metadata.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error()
                            == Some(
                                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                            )
                });
                if !unknown {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(KafkaError::UnknownTopic {
                        topic: topic.to_string(),
                        bootstrap: bootstrap.to_string(),
                        hint: " (and the broker did not create it on demand)".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // As in ArrowProducer::new: a second metadata answer, over the broker's own
        // connection, retries the idempotent producer's id request at once instead of 500 ms
        // later (the first QoS 1 publishes of a benchmark waited ~400 ms for it).
        let _ = producer
            .client()
            .fetch_metadata(topics.first().copied(), timeout);
        Ok(RecordProducer {
            producer,
            bootstrap: bootstrap.to_string(),
            timeout,
        })
    }

    /// Queues one record; `notice` says what happens with its delivery report.
    pub fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        notice: DeliveryNotice,
    ) -> Result<(), (QueueError, DeliveryNotice)> {
        let record = BaseRecord::with_opaque_to(topic, Box::new(notice))
            .key(key)
            .payload(value);
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((error, record)) => {
                let notice = *record.delivery_opaque;
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                    Err((QueueError::Full, notice))
                } else {
                    Err((
                        QueueError::Failed(KafkaError::Delivery {
                            topic: topic.to_string(),
                            failed: 1,
                            reason: error.to_string(),
                        }),
                        notice,
                    ))
                }
            }
        }
    }

    /// Records Kafka acknowledged, and records that failed, so far.
    pub fn counts(&self) -> (u64, u64) {
        let context = self.producer.context();
        (
            context.delivered.load(Ordering::Relaxed),
            context.failed.load(Ordering::Relaxed),
        )
    }

    /// Records queued and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to the producer's timeout for queued records (dropping it then fails those
    /// still queued).
    pub fn flush(&self) -> Result<(), KafkaError> {
        self.producer
            .flush(self.timeout)
            .map_err(|e| KafkaError::Delivery {
                topic: String::new(),
                failed: self.producer.in_flight_count().max(0) as u64,
                reason: format!("{e} (flushing to {})", self.bootstrap),
            })
    }
}
