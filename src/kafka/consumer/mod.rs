//! The Arrow consumer: polls messages, decodes them in batches, tracks where each partition
//! must stop, and remembers how far it handed data out (for commits). Its parts, one job a
//! file: `options` (what to read and how), `plan` (partitions, start and stop positions),
//! `rounds` (polling and the decode thread), `decoding` (decoders, schema inference, the
//! error policy), `commits` (commits and lag).

mod commits;
mod decoding;
mod options;
mod plan;
mod rounds;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
pub use rdkafka::consumer::CommitMode;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub use self::decoding::metadata_fields;
use self::decoding::{make_decoder, output_schema, DecodeState};
pub use self::options::{AvroWriter, ConsumerOptions, OnError, ReadFormat, StartAt, StopAt};
use self::plan::PartitionProgress;
use super::config::{client_config, seconds, QuietContext};
use super::local::is_local_bootstrap;
use super::polled::BatchPoller;
use super::{Interrupt, KafkaError};
use crate::matrix::RowSink;

/// How many decode failures `.errors` keeps with their coordinates.
const RECENT_FAILURES: usize = 20;

/// The polling step while a consumer closes.
const CLOSE_POLL: Duration = Duration::from_millis(1);

/// Offsets to commit: the next offset to read per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitPoint(pub(super) HashMap<PartitionKey, i64>);

/// One message that could not be decoded.
#[derive(Debug, Clone)]
pub struct DecodeFailure {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// The skip policy's account: how many messages were skipped and the latest few.
#[derive(Debug, Clone, Default)]
pub struct ErrorLog {
    pub skipped: u64,
    pub recent: VecDeque<DecodeFailure>,
}

impl ErrorLog {
    pub(super) fn record(&mut self, failure: DecodeFailure) {
        self.skipped += 1;
        if self.recent.len() == RECENT_FAILURES {
            self.recent.pop_front();
        }
        self.recent.push_back(failure);
    }
}

/// A partition of a topic.
type PartitionKey = (String, i32);

pub struct ArrowConsumer {
    /// Readers without a group poll through librdkafka's batch API (see `polled`). Declared
    /// before `consumer`, so that its messages and queue are released first.
    batch_poller: Option<BatchPoller>,
    /// `close` ran (it waits up to the timeout once, not again when dropped).
    close_tried: bool,
    /// Dropped by hand: see `Drop for ArrowConsumer`.
    consumer: std::mem::ManuallyDrop<BaseConsumer<QuietContext>>,
    options: ConsumerOptions,
    progress: HashMap<PartitionKey, PartitionProgress>,
    /// Kept apart from `consumer` so decoding can borrow it while messages borrow the consumer.
    state: DecodeState,
    warnings: Vec<String>,
    finished: bool,
    /// Ordered reads: the partitions still to read, with their start offsets.
    ordered_queue: VecDeque<(PartitionKey, i64)>,
    /// Ordered reads: the one partition assigned now.
    ordered_current: Option<PartitionKey>,
    /// For `stop="end"` without a group: the offsets between the start and the end
    /// positions (messages, less any compacted away), for progress bars.
    snapshot_size: Option<i64>,
    /// Partitions whose last event was end-of-partition, with no message since (single-topic
    /// readers only: librdkafka's EOF event names the partition number, not the topic).
    at_end: std::collections::HashSet<PartitionKey>,
}

impl ArrowConsumer {
    pub fn new(options: ConsumerOptions) -> Result<Self, KafkaError> {
        if options.topics.is_empty() {
            return Err(KafkaError::Config("no topics given".into()));
        }
        if options.batch_size == 0 {
            return Err(KafkaError::Config("batch_size must be at least 1".into()));
        }
        let reset = match options.start {
            StartAt::Latest => "latest",
            _ => "earliest",
        };
        let mut defaults = vec![
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            ("enable.partition.eof", "true".to_string()),
            ("auto.offset.reset", reset.to_string()),
            // Bounded prefetch: memory stays flat while following a topic. 32 MB is ~50 ms of
            // reading here; 64 MB read no faster and added ~60 MB to a 1M-message read's peak.
            ("queued.max.messages.kbytes", "32768".to_string()),
            // When that queue is full librdkafka stops fetching for this long (1 s by
            // default): a reader that drains it in bursts would stall for most of it.
            ("fetch.queue.backoff.ms", "10".to_string()),
            (
                "socket.timeout.ms",
                options.timeout.as_millis().max(10).to_string(),
            ),
        ];
        if options.stop != StopAt::Never {
            // A bounded read must not sit in the broker's long poll of a partition it has
            // finished (ordered reads move from partition to partition).
            defaults.push(("fetch.wait.max.ms", "20".to_string()));
        }
        if options.ordered {
            // One partition is fetched at a time: larger fetches (1 MiB by default) make
            // fewer round trips (+10-20 % on a 1M-message read, benchmarks/README.md).
            defaults.push(("max.partition.fetch.bytes", (8 << 20).to_string()));
        }
        if options.group_id.is_some() && is_local_bootstrap(&options.bootstrap) {
            // A notebook re-runs a group cell before the old member's session ends (45 s by
            // default), and the mock ignores LeaveGroup: a re-run waits about the session
            // (2.2 s measured at 3 s, 5.2 s at 6 s). Heartbeats come from librdkafka's own
            // thread on loopback, so a short session does not expire a busy reader.
            defaults.push(("session.timeout.ms", "3000".to_string()));
            defaults.push(("heartbeat.interval.ms", "300".to_string()));
        }
        // librdkafka assigns partitions only with a group id; an anonymous reader gets a
        // private one and never commits under it.
        let group = options
            .group_id
            .clone()
            .unwrap_or_else(|| format!("kafkaml-anonymous-{}", unique_suffix()));
        defaults.push(("group.id", group));
        let consumer: BaseConsumer<QuietContext> =
            client_config(&options.bootstrap, &defaults, &options.config)
                .create_with_context(QuietContext::default())
                .map_err(|e| KafkaError::Config(e.to_string()))?;
        let decoder = make_decoder(&options, None)?;
        let batch_poller = match options.group_id {
            None => BatchPoller::new(&consumer),
            Some(_) => None,
        };
        let mut this = ArrowConsumer {
            batch_poller,
            close_tried: false,
            consumer: std::mem::ManuallyDrop::new(consumer),
            progress: HashMap::new(),
            state: DecodeState {
                decoder,
                ..DecodeState::default()
            },
            warnings: Vec::new(),
            finished: false,
            ordered_queue: Default::default(),
            ordered_current: None,
            snapshot_size: None,
            at_end: Default::default(),
            options,
        };
        this.start()?;
        Ok(this)
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> KafkaError {
        let reason = self
            .consumer
            .context()
            .last_error()
            .unwrap_or_else(|| reason.to_string());
        KafkaError::Unreachable {
            bootstrap: self.options.bootstrap.clone(),
            timeout_s: seconds(self.options.timeout),
            reason,
        }
    }

    /// The options this consumer was made with.
    pub fn options(&self) -> &ConsumerOptions {
        &self.options
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn errors(&self) -> &ErrorLog {
        &self.state.errors
    }

    pub fn messages_read(&self) -> u64 {
        self.state.messages_read
    }

    /// How many offsets a bounded read without a group covers (known at start).
    pub fn snapshot_size(&self) -> Option<i64> {
        self.snapshot_size
    }

    /// Warnings gathered since the last call (e.g. data dropped by retention).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The schema of the batches; `None` until a json schema was inferred.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.state
            .decoder
            .as_ref()
            .map(|d| output_schema(&self.options, d.schema()))
    }

    /// The next batch: up to `batch_size` messages, or fewer when `max_wait` passed since the
    /// batch's first message or the stop was reached. `None` once the stop is reached.
    pub fn next_batch(
        &mut self,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<RecordBatch>, KafkaError> {
        self.next_batch_into(interrupt, None)
    }

    /// Like `next_batch`, but the decoded rows go to `rows` as they are decoded, and the
    /// batch returned has none: `Ok(false)` once the stop is reached. Needs a consumer
    /// without `include_metadata` (the metadata columns are not rows of the values).
    /// After an error, `rows` may hold rows of the failed round (which is read again):
    /// discard it.
    pub fn next_rows(
        &mut self,
        interrupt: Interrupt<'_>,
        rows: &mut dyn RowSink,
    ) -> Result<bool, KafkaError> {
        if self.options.include_metadata {
            return Err(KafkaError::Config(
                "rows read into a matrix cannot include the metadata columns".into(),
            ));
        }
        if self.options.stop == StopAt::Never {
            return Err(KafkaError::Config(
                "reading into a matrix needs a stop: pass stop=\"end\" (the end offsets taken at \
                 start) or a datetime"
                    .into(),
            ));
        }
        Ok(self.next_batch_into(interrupt, Some(rows))?.is_some())
    }

    fn next_batch_into(
        &mut self,
        interrupt: Interrupt<'_>,
        mut rows: Option<&mut dyn RowSink>,
    ) -> Result<Option<RecordBatch>, KafkaError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let stop_set = self.options.stop != StopAt::Never;
            let round_rows: Option<&mut dyn RowSink> = match rows {
                Some(ref mut rows) => Some(&mut **rows),
                None => None,
            };
            let batch = self.poll_batch(interrupt, stop_set, round_rows)?;
            self.apply_time_stop();
            if self.options.ordered {
                self.assign_next_ordered()?;
                self.check_finished();
            }
            if let Some(batch) = batch {
                return Ok(Some(batch));
            }
        }
    }

    /// Like `next_batch`, but also returns `None` when nothing arrived for a moment (about
    /// 100 ms), so that a caller following a topic can do other work between batches.
    /// `is_finished` tells the two `None`s apart.
    pub fn poll_once(
        &mut self,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<RecordBatch>, KafkaError> {
        if self.finished {
            return Ok(None);
        }
        let batch = self.poll_batch(interrupt, true, None)?;
        self.apply_time_stop();
        if self.options.ordered {
            self.assign_next_ordered()?;
            self.check_finished();
        }
        Ok(batch)
    }

    /// Leaves the group (if any) and closes the client's consumer side; dropping calls it.
    pub fn close(&mut self) {
        self.finished = true;
        // Messages must go back to librdkafka before its consumer closes.
        self.batch_poller = None;
        if self.consumer.closed() || self.close_tried {
            return;
        }
        self.close_tried = true;
        if self.options.group_id.is_some() {
            self.consumer.unsubscribe();
        }
        let _ = self.consumer.unassign();
        // rust-rdkafka's drop closes a consumer by polling in 100 ms steps until it is closed:
        // every drop waited ~100 ms after the close had finished. Closed here in 1 ms steps.
        if self.consumer.close_queue().is_ok() {
            let deadline = Instant::now() + self.options.timeout;
            while !self.consumer.closed() && Instant::now() < deadline {
                // Messages still queued are dropped unread: nothing is handed out any more.
                let _ = self.consumer.poll(CLOSE_POLL);
            }
        }
    }
}

impl Drop for ArrowConsumer {
    fn drop(&mut self) {
        self.close();
        if self.consumer.closed() {
            // SAFETY: dropped once, here, and not used afterwards.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.consumer) };
        } else {
            // rust-rdkafka's drop would poll until librdkafka reports the consumer closed, with
            // no deadline: a close that never completes (seen once against LocalKafka) hung the
            // caller for good. Past `close`'s own deadline the client is left behind instead.
            eprintln!(
                "kafkaml: the Kafka consumer did not close within {:?}; its connections are left open",
                self.options.timeout
            );
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_ms(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod test_support;
