//! The Arrow consumer: polls messages, decodes them in batches, tracks where each partition
//! must stop, and remembers how far it handed data out (for commits).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
pub use rdkafka::consumer::CommitMode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::{client_config, seconds, QuietContext};
use super::decode_ahead::{decode_chunks, move_rows, HeldPayloads, CHUNK_MESSAGES};
use super::local::is_local_bootstrap;
use super::polled::{first_offsets, BatchPoller, MessageSource, OneAtATime, PolledMessage};
use super::{Interrupt, KafkaError};
use crate::formats::avro::{AvroDecoder, WriterSchemas};
use crate::formats::csv::CsvDecoder;
use crate::formats::json::{infer_schema, JsonDecoder};
use crate::formats::raw::RawDecoder;
use crate::formats::registry::{RegistryConfig, SchemaRegistry};
use crate::formats::{BatchDecoder, Decoded, Format, FormatError, Payload};
use crate::matrix::RowSink;

/// How often a long wait checks for an interrupt (Ctrl-C).
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);
/// How many decode failures `.errors` keeps with their coordinates.
const RECENT_FAILURES: usize = 20;

/// The polling step while a consumer closes.
const CLOSE_POLL: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// Explicit offsets per partition (of every subscribed topic).
    Offsets(HashMap<i32, i64>),
    /// The first message at or after this time (ms since the epoch), per partition.
    Time(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAt {
    /// Follow the topics until closed.
    Never,
    /// The high watermarks taken at start: a bounded, repeatable snapshot.
    End,
    /// Messages before this time (ms since the epoch).
    Time(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Raise,
    Skip,
}

/// What the Python `Consumer(...)` takes, already checked for type.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub bootstrap: String,
    pub topics: Vec<String>,
    pub format: Format,
    /// Arrow schema of the values; inferred (json) or taken from the Avro schema when absent.
    pub schema: Option<SchemaRef>,
    /// Writer schema of unframed Avro datums (JSON text).
    pub avro_schema: Option<String>,
    pub schema_registry: Option<RegistryConfig>,
    pub group_id: Option<String>,
    pub start: StartAt,
    pub stop: StopAt,
    pub batch_size: usize,
    pub max_wait: Duration,
    pub on_error: OnError,
    pub include_metadata: bool,
    pub csv_delimiter: u8,
    /// Read partitions one after another in (topic, partition) order, for a deterministic
    /// row order without sorting (only without a group, which assigns partitions itself).
    pub ordered: bool,
    pub config: Vec<(String, String)>,
    /// For metadata, watermarks and commits: how long before the broker counts as unreachable.
    pub timeout: Duration,
}

/// Offsets to commit: the next offset to read per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitPoint(HashMap<PartitionKey, i64>);

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
    fn record(&mut self, failure: DecodeFailure) {
        self.skipped += 1;
        if self.recent.len() == RECENT_FAILURES {
            self.recent.pop_front();
        }
        self.recent.push_back(failure);
    }
}

type PartitionKey = (String, i32);

#[derive(Debug, Clone)]
struct PartitionProgress {
    /// Where reading stops (exclusive) for `StopAt::End`.
    end: i64,
    /// The high watermark when the read started: an end-of-partition event below it is
    /// not trusted (a fresh broker can report one before the data is visible).
    high_at_start: i64,
    /// The next offset to read, as far as known (-1: the group decides).
    next: i64,
    /// Caught up with the partition's end (until the next message arrives).
    at_eof: bool,
    done: bool,
}

pub struct ArrowConsumer {
    /// Readers without a group poll through librdkafka's batch API (see `polled`). Declared
    /// before `consumer`, so that its messages and queue are released first.
    batch_poller: Option<BatchPoller>,
    consumer: BaseConsumer<QuietContext>,
    options: ConsumerOptions,
    progress: HashMap<PartitionKey, PartitionProgress>,
    /// Kept apart from `consumer` so decoding can borrow it while messages borrow the consumer.
    state: DecodeState,
    warnings: Vec<String>,
    finished: bool,
    /// Ordered reads: the partitions still to read, with their start offsets.
    ordered_queue: std::collections::VecDeque<(PartitionKey, i64)>,
    /// Ordered reads: the one partition assigned now.
    ordered_current: Option<PartitionKey>,
    /// For `stop="end"` without a group: the offsets between the start and the end
    /// positions (messages, less any compacted away), for progress bars.
    snapshot_size: Option<i64>,
    /// Partitions whose last event was end-of-partition, with no message since (single-topic
    /// readers only: librdkafka's EOF event names the partition number, not the topic).
    at_end: std::collections::HashSet<PartitionKey>,
}

#[derive(Default)]
struct DecodeState {
    decoder: Option<Box<dyn BatchDecoder>>,
    /// Next offset per partition after the messages handed out so far (what commit stores).
    handed_out: HashMap<PartitionKey, i64>,
    errors: ErrorLog,
    messages_read: u64,
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
            consumer,
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

    /// Looks the topics up, takes the watermarks, and assigns or subscribes.
    fn start(&mut self) -> Result<(), KafkaError> {
        let timeout = self.options.timeout;
        let local = is_local_bootstrap(&self.options.bootstrap);
        let mut start_positions = TopicPartitionList::new();
        let mut high_watermarks: HashMap<PartitionKey, i64> = HashMap::new();
        for topic in self.options.topics.clone() {
            let metadata = self
                .consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| self.unreachable(e))?;
            let topic_meta = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .ok_or_else(|| self.unreachable("no metadata returned"))?;
            if topic_meta.error().is_some() || topic_meta.partitions().is_empty() {
                return Err(KafkaError::UnknownTopic {
                    topic,
                    bootstrap: self.options.bootstrap.clone(),
                });
            }
            for partition in topic_meta.partitions() {
                let id = partition.id();
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(&topic, id, timeout)
                    .map_err(|e| self.unreachable(e))?;
                if local && low > 0 && matches!(self.options.start, StartAt::Earliest) {
                    self.warnings.push(format!(
                        "LocalKafka dropped the oldest {low} messages of {topic}[{id}]: it keeps only the newest \
                         ~100,000 messages / 5 MiB per partition; use more partitions or a real broker"
                    ));
                }
                let start = match &self.options.start {
                    StartAt::Earliest => low,
                    StartAt::Latest => high,
                    StartAt::Offsets(offsets) => {
                        let wanted = *offsets.get(&id).unwrap_or(&low);
                        if wanted < low {
                            self.warnings.push(format!(
                                "{topic}[{id}] starts at offset {low}: offsets {wanted}..{low} are gone (retention)"
                            ));
                        }
                        wanted.clamp(low, high)
                    }
                    StartAt::Time(_) => low, // replaced below by offsets_for_times
                };
                start_positions.add_partition_offset(&topic, id, Offset::Offset(start))?;
                let end = match self.options.stop {
                    StopAt::End => high,
                    _ => i64::MAX,
                };
                self.progress.insert(
                    (topic.clone(), id),
                    PartitionProgress {
                        end,
                        high_at_start: high,
                        next: -1,
                        at_eof: false,
                        done: false,
                    },
                );
                high_watermarks.insert((topic.clone(), id), high);
            }
        }

        if let StartAt::Time(ms) = self.options.start {
            if local {
                return Err(KafkaError::Unsupported(
                    "LocalKafka cannot look up offsets by time (librdkafka's mock cluster ignores timestamps); \
                     start by offset, or use a real broker"
                        .into(),
                ));
            }
            let mut query = TopicPartitionList::new();
            for (topic, id) in self.progress.keys() {
                query.add_partition_offset(topic, *id, Offset::Offset(ms))?;
            }
            let found = self
                .consumer
                .offsets_for_times(query, timeout)
                .map_err(|e| self.unreachable(e))?;
            for element in found.elements() {
                // No message at or after the time: start at the end of the partition, as an
                // offset (the high watermark taken above), so that `stop="end"` sees the
                // partition is already done instead of waiting for a message forever.
                let key = (element.topic().to_string(), element.partition());
                if let Err(error) = element.error() {
                    return Err(KafkaError::Client(format!(
                        "looking up the offset for the start time in {}[{}] failed: {error}",
                        key.0, key.1
                    )));
                }
                let offset = match element.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => match high_watermarks.get(&key) {
                        Some(high) => Offset::Offset(*high),
                        None => Offset::End,
                    },
                };
                start_positions.set_partition_offset(
                    element.topic(),
                    element.partition(),
                    offset,
                )?;
            }
        }

        if self.is_subscribed() {
            // A real group member: committed offsets win, partitions are shared with the group.
            if self.options.stop == StopAt::End {
                self.mark_already_done_from_committed(&start_positions)?;
            }
            let topics: Vec<&str> = self.options.topics.iter().map(String::as_str).collect();
            self.consumer.subscribe(&topics)?;
        } else {
            for element in start_positions.elements() {
                if let Offset::Offset(start) = element.offset() {
                    let key = (element.topic().to_string(), element.partition());
                    if let Some(progress) = self.progress.get_mut(&key) {
                        progress.next = start;
                    }
                    self.mark_done_if_at_end(&key, start);
                }
            }
            if self.options.stop == StopAt::End {
                let size = self
                    .progress
                    .values()
                    .map(|p| (p.end - p.next).max(0))
                    .sum();
                self.snapshot_size = Some(size);
            }
            if self.options.ordered {
                let mut queue: Vec<(PartitionKey, i64)> = start_positions
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                        _ => None,
                    })
                    .collect();
                queue.sort();
                self.ordered_queue = queue.into();
                self.assign_next_ordered()?;
            } else {
                self.consumer.assign(&start_positions)?;
            }
        }
        self.check_finished();
        Ok(())
    }

    /// A group member without an explicit start subscribes (the group assigns partitions and
    /// committed offsets win); every other reader assigns its partitions itself.
    fn is_subscribed(&self) -> bool {
        let explicit_start = matches!(self.options.start, StartAt::Offsets(_) | StartAt::Time(_));
        self.options.group_id.is_some() && !explicit_start
    }

    /// With a group, reading starts at the committed offsets; partitions already committed
    /// up to their end have nothing to read.
    fn mark_already_done_from_committed(
        &mut self,
        positions: &TopicPartitionList,
    ) -> Result<(), KafkaError> {
        let committed = self
            .consumer
            .committed_offsets(positions.clone(), self.options.timeout)
            .map_err(|e| self.unreachable(e))?;
        for element in committed.elements() {
            let key = (element.topic().to_string(), element.partition());
            let start = match element.offset() {
                Offset::Offset(o) => o,
                _ => match positions
                    .find_partition(element.topic(), element.partition())
                    .map(|p| p.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => continue,
                },
            };
            self.mark_done_if_at_end(&key, start);
        }
        Ok(())
    }

    /// Ordered reads: once the current partition is done, assign the next one not done.
    fn assign_next_ordered(&mut self) -> Result<(), KafkaError> {
        if let Some(current) = &self.ordered_current {
            if !self.progress.get(current).is_some_and(|p| p.done) {
                return Ok(());
            }
        }
        self.ordered_current = None;
        while let Some((key, start)) = self.ordered_queue.pop_front() {
            if self.progress.get(&key).is_some_and(|p| p.done) {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&key.0, key.1, Offset::Offset(start))?;
            self.consumer.assign(&tpl)?;
            self.ordered_current = Some(key);
            break;
        }
        Ok(())
    }

    /// Is the reading of what is assigned now over? (In ordered mode: the current partition.)
    fn assigned_done(&self) -> bool {
        assigned_done(&self.progress, &self.ordered_current)
    }

    fn mark_done_if_at_end(&mut self, key: &PartitionKey, next_offset: i64) {
        if let Some(progress) = self.progress.get_mut(key) {
            if next_offset >= progress.end {
                progress.done = true;
            }
        }
    }

    /// Finished when a stop is set and every partition this consumer reads is done.
    fn check_finished(&mut self) {
        if self.options.stop == StopAt::Never || self.finished {
            return;
        }
        if self.ordered_current.is_some() {
            // Ordered reads finish with the last partition of the queue, not the current one.
            let is_done = |key: &PartitionKey| self.progress.get(key).is_none_or(|p| p.done);
            self.finished =
                self.assigned_done() && self.ordered_queue.iter().all(|(key, _)| is_done(key));
            return;
        }
        let assigned: Vec<PartitionKey> = match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return,
        };
        let keys: Vec<&PartitionKey> = if assigned.is_empty() {
            // Not yet assigned by the group: finished only if nothing at all is left.
            self.progress.keys().collect()
        } else {
            assigned.iter().collect()
        };
        self.finished = keys
            .iter()
            .all(|k| self.progress.get(*k).is_none_or(|p| p.done));
    }

    /// On end-of-partition, partitions whose position reached their end are done.
    fn on_partition_eof(&mut self, partition: i32) {
        let positions = match self.consumer.position() {
            Ok(p) => p,
            Err(_) => return,
        };
        for element in positions.elements() {
            if element.partition() != partition {
                continue;
            }
            let key = (element.topic().to_string(), partition);
            match (self.options.stop, element.offset()) {
                (StopAt::End, Offset::Offset(o)) => self.mark_done_if_at_end(&key, o),
                // Reached the end and the stop time has passed: nothing more can come before it.
                (StopAt::Time(_), position) => {
                    if let Some(p) = self.progress.get_mut(&key) {
                        let position = match position {
                            Offset::Offset(o) => o.max(p.next),
                            _ => p.next,
                        };
                        p.at_eof = position >= p.high_at_start;
                    }
                }
                _ => {}
            }
            // A single topic has one partition with this number: the EOF is unambiguous.
            if self.options.topics.len() == 1 && self.options.stop == StopAt::End {
                let handed = self.state.handed_out.get(&key).copied();
                if let (Some(p), Some(next)) = (self.progress.get_mut(&key), handed) {
                    // transactional control records can hide the last offsets
                    p.done |= next >= p.end - 1;
                }
            }
        }
        self.check_finished();
    }

    /// A stop time that has passed ends every partition that is caught up: nothing earlier
    /// can arrive there any more.
    fn apply_time_stop(&mut self) {
        if let StopAt::Time(stop_ms) = self.options.stop {
            if now_ms() >= stop_ms {
                for progress in self.progress.values_mut() {
                    progress.done |= progress.at_eof;
                }
                self.check_finished();
            }
        }
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

    /// Messages between this consumer's positions and the ends of the partitions it is
    /// assigned now; `None` while unknown (not assigned yet, or no fetch answered yet).
    ///
    /// Uses the watermarks librdkafka caches from its fetch responses, as consumer-lag
    /// metrics do: no request to the broker (a watermark query from a busy group member
    /// timed out on the in-process cluster), and fresh for every partition being fetched.
    pub fn lag(&self) -> Option<i64> {
        let positions = self.consumer.position().ok()?;
        if positions.count() == 0 {
            return None; // not assigned yet (a group still joining): unknown, not zero
        }
        let mut total = 0;
        for element in positions.elements() {
            let (low, high) = self.cached_watermarks(element.topic(), element.partition())?;
            let key = (element.topic().to_string(), element.partition());
            let position = match element.offset() {
                Offset::Offset(o) => o,
                // Nothing consumed here yet: at its end if the fetcher said so, else unknown
                // (librdkafka caches the low watermark only with statistics on).
                _ if self.at_end.contains(&key) => high,
                _ if low >= 0 => low,
                _ => return None,
            };
            // Messages the batch poller took but did not hand out yet are not read.
            let pending = self
                .batch_poller
                .as_ref()
                .map_or(0, |p| p.pending_in(element.topic(), element.partition()));
            total += (high - position).max(0) + pending;
        }
        Some(total)
    }

    /// The (low, high) watermarks of the last fetch response, if one arrived; low is
    /// negative when unknown.
    fn cached_watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let topic = std::ffi::CString::new(topic).ok()?;
        let (mut low, mut high) = (-1_i64, -1_i64);
        // SAFETY: the client pointer lives as long as `self.consumer`; the call only reads
        // librdkafka's partition state into the two locals.
        let error = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        let known = error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            && high >= 0;
        known.then_some((low, high))
    }

    /// One round of polling; `Ok(None)` when it ended without messages to hand out.
    /// `return_when_idle`: end the round after a quiet moment instead of waiting on.
    /// With `rows`, the decoded rows go there (see `next_rows`).
    fn poll_batch(
        &mut self,
        interrupt: Interrupt<'_>,
        return_when_idle: bool,
        rows: Option<&mut dyn RowSink>,
    ) -> Result<Option<RecordBatch>, KafkaError> {
        let outcome = match self.batch_poller.take() {
            Some(mut poller) => {
                let outcome = self
                    .round(&mut poller, interrupt, return_when_idle, rows)
                    .map_err(|(error, mut rewind)| {
                        // The messages taken after the round's were not handed out either.
                        for (key, offset) in poller.pending_first_offsets() {
                            rewind.entry(key).or_insert(offset);
                        }
                        poller.discard_pending();
                        (error, rewind)
                    });
                self.batch_poller = Some(poller);
                outcome
            }
            None => self.round(&mut OneAtATime, interrupt, return_when_idle, rows),
        };
        outcome.map_err(|(error, rewind)| {
            // Nothing of this round was handed out: go back to its first messages, so none is
            // lost and a bad one is met again (as Kafka's Java consumer does).
            self.rewind(rewind);
            error
        })
    }

    /// A round of polling from `source`. On failure, nothing was handed out: the error comes
    /// with the first offset per partition of the round's messages, to go back to.
    fn round<S: MessageSource<QuietContext>>(
        &mut self,
        source: &mut S,
        interrupt: Interrupt<'_>,
        return_when_idle: bool,
        mut rows: Option<&mut dyn RowSink>,
    ) -> Result<Option<RecordBatch>, (KafkaError, HashMap<PartitionKey, i64>)> {
        // Decode on a second thread while polling, once there is a decoder (json infers its
        // schema from the first batch) and batches are worth splitting.
        let decode_ahead =
            self.state.decoder.is_some() && self.options.batch_size >= 2 * CHUNK_MESSAGES;
        let subscribed = self.is_subscribed();
        let ArrowConsumer {
            ref consumer,
            ref options,
            ref mut progress,
            ref mut state,
            ref mut at_end,
            ref ordered_current,
            ..
        } = *self;
        // In a block: the messages borrow the consumer until it ends.
        let (batch, eof_partitions) = {
            let (gathered, decoded_ahead) = std::thread::scope(|scope| {
                let (sender, worker) = match state.decoder.as_deref_mut() {
                    Some(decoder) if decode_ahead => {
                        let (sender, receiver) = std::sync::mpsc::channel();
                        let rows = rows.take();
                        let worker = scope.spawn(move || decode_chunks(decoder, receiver, rows));
                        (Some(sender), Some(worker))
                    }
                    _ => (None, None),
                };
                let mut gather = Gather {
                    consumer,
                    options,
                    progress,
                    at_end,
                    ordered_current,
                    subscribed,
                };
                // The decode thread reads payloads of the messages in `gathered`: they are kept
                // until it has been joined (and leaked if the poll loop panics; see `Held`).
                let gathered = gather.run(source, interrupt, return_when_idle, sender);
                let decoded = worker.map(|worker| {
                    worker.join().unwrap_or_else(|_| {
                        Err(FormatError::Schema("the decode thread panicked".into()).into())
                    })
                });
                (gathered, decoded)
            });
            let Gathered {
                messages,
                eof_partitions,
                error,
            } = gathered;
            let result = match (error, decoded_ahead) {
                (Some(error), _) => Err(error),
                _ if messages.is_empty() => Ok(None),
                (None, decoded_ahead) => match decoded_ahead {
                    Some(decoded) => decoded,
                    None => self
                        .state
                        .decode(&self.options, &messages)
                        .and_then(|decoded| match rows {
                            Some(rows) => move_rows(decoded, rows),
                            None => Ok(decoded),
                        }),
                }
                .and_then(|decoded| self.state.hand_out(&self.options, &messages, decoded))
                .map(Some),
            };
            match result {
                Ok(batch) => (batch, eof_partitions),
                Err(error) => return Err((error, first_offsets(&messages))),
            }
        };
        for partition in eof_partitions {
            self.on_partition_eof(partition);
        }
        self.check_finished();
        Ok(batch)
    }

    fn rewind(&mut self, positions: HashMap<PartitionKey, i64>) {
        for ((topic, partition), offset) in positions {
            if let Some(progress) = self.progress.get_mut(&(topic.clone(), partition)) {
                progress.done = offset >= progress.end;
                progress.next = offset;
            }
            let _ = self.consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                self.options.timeout,
            );
        }
        self.finished = false;
    }

    /// Where a commit now would leave the group: the offset after the last message handed
    /// out, per partition. A pipeline keeps it to commit later, once the batch's results
    /// are safe.
    pub fn commit_point(&self) -> CommitPoint {
        CommitPoint(self.state.handed_out.clone())
    }

    /// Commits the offsets after every message handed out so far (synchronously).
    pub fn commit(&mut self) -> Result<usize, KafkaError> {
        let point = self.commit_point();
        self.commit_at(&point, CommitMode::Sync)
    }

    /// Commits the offsets of `point`; with `CommitMode::Async` the call returns at once and
    /// a failure goes unreported (the next commit covers it).
    pub fn commit_at(
        &mut self,
        point: &CommitPoint,
        mode: CommitMode,
    ) -> Result<usize, KafkaError> {
        if self.options.group_id.is_none() {
            return Err(KafkaError::Config("commit() needs a group_id".into()));
        }
        if point.0.is_empty() {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &point.0 {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        self.consumer
            .commit(&tpl, mode)
            .map_err(|e| KafkaError::Client(format!("commit failed: {e}")))?;
        Ok(point.0.len())
    }

    /// Leaves the group (if any) and closes the client's consumer side; dropping calls it.
    pub fn close(&mut self) {
        self.finished = true;
        // Messages must go back to librdkafka before its consumer closes.
        self.batch_poller = None;
        if self.consumer.closed() {
            return;
        }
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
    }
}

/// Messages between two reads of the clock while they keep coming (reading it for every
/// message showed up in profiles).
const MESSAGES_PER_CLOCK_READ: u32 = 64;

/// The polling half of a round, over the parts of the consumer it needs.
struct Gather<'a, 'c> {
    consumer: &'c BaseConsumer<QuietContext>,
    options: &'a ConsumerOptions,
    progress: &'a mut HashMap<PartitionKey, PartitionProgress>,
    at_end: &'a mut std::collections::HashSet<PartitionKey>,
    ordered_current: &'a Option<PartitionKey>,
    /// A group member's rebalance legitimately replays from the committed offsets.
    subscribed: bool,
}

/// What a round of polling gathered, and the error that ended it early, if any.
struct Gathered<M> {
    messages: Vec<M>,
    eof_partitions: Vec<i32>,
    error: Option<KafkaError>,
}

impl<'a, 'c> Gather<'a, 'c> {
    /// Polls until the batch is full, `max_wait` has passed since its first message, or the
    /// stop is reached. With `decode_ahead`, each full chunk of payloads goes to the decode
    /// thread as soon as it is gathered.
    fn run<S: MessageSource<QuietContext>>(
        &mut self,
        source: &mut S,
        interrupt: Interrupt<'_>,
        return_when_idle: bool,
        decode_ahead: Option<Sender<HeldPayloads>>,
    ) -> Gathered<S::Message<'c>> {
        let batch_size = self.options.batch_size;
        let max_wait = self.options.max_wait;
        let mut held = Held(Vec::with_capacity(batch_size.min(100_000)));
        let messages = &mut held.0;
        let mut chunk = HeldPayloads::with_capacity(CHUNK_MESSAGES);
        let mut eof_partitions = Vec::new();
        let mut error = None;
        let mut first_at: Option<Instant> = None;
        let mut now = Instant::now();
        let mut last_check = now;
        let mut since_clock_read = 0;
        // The last message's partition: messages come in runs per partition, so the key is
        // rebuilt only when the partition changes.
        let mut key: PartitionKey = (String::new(), -1);
        let mut key_topic_id = 0;
        let mut stopped_early = false;
        loop {
            if messages.len() >= batch_size {
                break;
            }
            let wait = match first_at {
                Some(t) => match max_wait.checked_sub(now.duration_since(t)) {
                    Some(left) => left.min(INTERRUPT_CHECK),
                    None => break,
                },
                None => INTERRUPT_CHECK,
            };
            let polled = source.next(self.consumer, wait, batch_size - messages.len());
            since_clock_read += 1;
            if first_at.is_none()
                || !matches!(polled, Some(Ok(_)))
                || since_clock_read >= MESSAGES_PER_CLOCK_READ
            {
                now = Instant::now();
                since_clock_read = 0;
            }
            match polled {
                None => {}
                Some(Ok(message)) => {
                    let partition = message.partition();
                    if key.1 != partition || key_topic_id != message.topic_id() {
                        key = (message.topic().to_string(), partition);
                        key_topic_id = message.topic_id();
                    }
                    let offset = message.offset();
                    let Some(progress) = self.progress.get_mut(&key) else {
                        continue;
                    };
                    if progress.done {
                        continue;
                    }
                    if !self.subscribed && offset < progress.next {
                        // Before the position this reader assigned: a replay librdkafka made on
                        // its own (seen once on a fresh broker after an offset-for-time start).
                        continue;
                    }
                    if offset >= progress.end {
                        progress.done = true;
                        stopped_early = true;
                        continue;
                    }
                    if let StopAt::Time(stop_ms) = self.options.stop {
                        if message.timestamp_ms().is_some_and(|ts| ts >= stop_ms) {
                            progress.done = true;
                            stopped_early = true;
                            continue;
                        }
                    }
                    if offset + 1 >= progress.end {
                        progress.done = true;
                        stopped_early = true;
                    }
                    progress.next = offset + 1;
                    progress.at_eof = false;
                    if !self.at_end.is_empty() {
                        self.at_end.remove(&key);
                    }
                    first_at.get_or_insert(now);
                    if decode_ahead.is_some() {
                        // Safety: the message goes into `held`, which keeps it until the
                        // decode thread is joined (`poll_batch`), or forever on a panic.
                        unsafe { chunk.push(message.key(), message.payload()) };
                    }
                    messages.push(message);
                    if let Some(sender) = &decode_ahead {
                        if chunk.len() == CHUNK_MESSAGES {
                            let full = std::mem::replace(
                                &mut chunk,
                                HeldPayloads::with_capacity(CHUNK_MESSAGES),
                            );
                            if sender.send(full).is_err() {
                                break; // the decode thread failed; its error ends the round
                            }
                        }
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    eof_partitions.push(partition);
                    if let [topic] = self.options.topics.as_slice() {
                        self.at_end.insert((topic.clone(), partition));
                    }
                    if self.options.stop != StopAt::Never {
                        break;
                    }
                }
                // Transport errors are retried by librdkafka; the fatal ones end the read.
                Some(Err(fatal)) if is_fatal(&fatal) => {
                    error = Some(KafkaError::Client(fatal.to_string()));
                    break;
                }
                Some(Err(_)) => {}
            }
            if stopped_early {
                stopped_early = false;
                if assigned_done(self.progress, self.ordered_current) {
                    break;
                }
            }
            if now.duration_since(last_check) >= INTERRUPT_CHECK {
                last_check = now;
                if interrupt() {
                    error = Some(KafkaError::Interrupted);
                    break;
                }
                if first_at.is_none() && return_when_idle {
                    break; // let the caller re-check the stop (assignment may have changed)
                }
            }
        }
        if let Some(sender) = decode_ahead {
            if !chunk.is_empty() {
                let _ = sender.send(chunk); // a failed decode thread reports its own error
            }
        }
        Gathered {
            messages: std::mem::take(&mut held.0),
            eof_partitions,
            error,
        }
    }
}

/// The messages of a round while it is polled. The decode thread reads their payloads in
/// place, so if the poll loop panics they are leaked rather than freed under its feet (a
/// panic unwinds the loop before the thread scope joins the decoder).
struct Held<M>(Vec<M>);

impl<M> Drop for Held<M> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(std::mem::take(&mut self.0));
        }
    }
}

/// Is the reading of what is assigned now over? (In ordered mode: the current partition.)
fn assigned_done(
    progress: &HashMap<PartitionKey, PartitionProgress>,
    ordered_current: &Option<PartitionKey>,
) -> bool {
    match ordered_current {
        Some(current) => progress.get(current).is_none_or(|p| p.done),
        None => progress.values().all(|p| p.done),
    }
}

fn output_schema(options: &ConsumerOptions, values: SchemaRef) -> SchemaRef {
    if !options.include_metadata {
        return values;
    }
    let mut fields: Vec<Arc<Field>> = values.fields().iter().cloned().collect();
    fields.extend(metadata_fields().into_iter().map(Arc::new));
    Arc::new(Schema::new(fields))
}

impl DecodeState {
    /// Decodes the messages' payloads on this thread (making the decoder first if the schema
    /// is to be inferred from them).
    fn decode(
        &mut self,
        options: &ConsumerOptions,
        messages: &[impl PolledMessage],
    ) -> Result<Decoded, KafkaError> {
        let payloads: Vec<Payload<'_>> = messages
            .iter()
            .map(|m| Payload {
                key: m.key(),
                value: m.payload(),
            })
            .collect();
        if self.decoder.is_none() {
            self.decoder = make_decoder(options, Some(&payloads))?;
        }
        let decoder = self.decoder.as_mut().expect("decoder made above");
        Ok(decoder.decode(&payloads)?)
    }

    /// Applies the error policy to the decoded messages, counts them as handed out, and adds
    /// the metadata columns.
    fn hand_out(
        &mut self,
        options: &ConsumerOptions,
        messages: &[impl PolledMessage],
        decoded: Decoded,
    ) -> Result<RecordBatch, KafkaError> {
        if let Some(first) = decoded.failures.first() {
            if options.on_error == OnError::Raise {
                let m = &messages[first.index];
                return Err(KafkaError::Decode {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    reason: first.reason.clone(),
                });
            }
            for failure in &decoded.failures {
                let m = &messages[failure.index];
                self.errors.record(DecodeFailure {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    reason: failure.reason.clone(),
                });
            }
        }
        self.messages_read += messages.len() as u64;
        // Skipped messages count as consumed: a commit moves past them. Offsets rise within
        // each partition, so the last message of each run of one partition is the one to keep.
        for (i, m) in messages.iter().enumerate() {
            let run_ends = messages.get(i + 1).is_none_or(|next| {
                next.partition() != m.partition() || next.topic_id() != m.topic_id()
            });
            if run_ends {
                self.handed_out
                    .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            }
        }
        let schema = output_schema(options, decoded.batch.schema());
        if !options.include_metadata {
            return Ok(decoded.batch);
        }
        let keep = decoded.kept_mask(messages.len());
        let kept: Vec<_> = messages
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(m, _)| m)
            .collect();
        let mut columns: Vec<ArrayRef> = decoded.batch.columns().to_vec();
        columns.push(Arc::new(
            kept.iter()
                .map(|m| Some(m.topic()))
                .collect::<StringArray>(),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.partition()).collect::<Int32Array>(),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.offset()).collect::<Int64Array>(),
        ));
        columns.push(Arc::new(
            kept.iter()
                .map(|m| m.timestamp_ms())
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.key()).collect::<BinaryArray>(),
        ));
        Ok(RecordBatch::try_new(schema, columns).map_err(FormatError::from)?)
    }
}

/// The decoder for the configured format; `None` when json must first infer a schema.
fn make_decoder(
    o: &ConsumerOptions,
    sample: Option<&[Payload<'_>]>,
) -> Result<Option<Box<dyn BatchDecoder>>, KafkaError> {
    let decoder: Box<dyn BatchDecoder> = match o.format {
        Format::Raw => Box::new(RawDecoder::new()),
        Format::Json => match (&o.schema, sample) {
            (Some(schema), _) => Box::new(JsonDecoder::new(schema.clone())),
            (None, Some(sample)) => Box::new(JsonDecoder::new(Arc::new(infer_schema(sample)?))),
            (None, None) => return Ok(None),
        },
        Format::Csv => {
            let schema = o.schema.clone().ok_or_else(|| {
                KafkaError::Config(
                    "format 'csv' needs schema= (a pyarrow.Schema or KSQL column declarations)"
                        .into(),
                )
            })?;
            Box::new(CsvDecoder::new(schema, o.csv_delimiter))
        }
        Format::Avro => {
            let writer = match (&o.avro_schema, &o.schema_registry) {
                (Some(text), _) => WriterSchemas::Fixed(Arc::new(
                    apache_avro::Schema::parse_str(text).map_err(|e| FormatError::AvroSchema(e.to_string()))?,
                )),
                (None, Some(registry)) => WriterSchemas::Registry(SchemaRegistry::new(registry.clone())?),
                (None, None) => {
                    return Err(KafkaError::Config(
                        "format 'avro' needs schema_registry= (Confluent wire format) or avro_schema= (bare datums)".into(),
                    ))
                }
            };
            Box::new(AvroDecoder::new(writer, o.schema.clone())?)
        }
    };
    Ok(Some(decoder))
}

fn is_fatal(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::UnknownTopicOrPartition
                | Code::TopicAuthorizationFailed
                | Code::GroupAuthorizationFailed
                | Code::Fatal
        )
    )
}

/// The columns `include_metadata=True` adds.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("_key", DataType::Binary, true),
    ]
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
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    use super::*;
    use crate::kafka::local::LocalCluster;

    /// Fails its first batch, then decodes as `inner` does: a round that fails once.
    struct FailsOnce {
        inner: Box<dyn BatchDecoder>,
        failed: bool,
    }

    impl BatchDecoder for FailsOnce {
        fn schema(&self) -> SchemaRef {
            self.inner.schema()
        }
        fn decode(&mut self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
            if !std::mem::replace(&mut self.failed, true) {
                return Err(FormatError::Schema("injected failure".into()));
            }
            self.inner.decode(payloads)
        }
    }

    /// Writes `{"id": i}` for the ids of each partition's range.
    fn produce_ids(bootstrap: &str, topic: &str, partitions: &[std::ops::Range<i64>]) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        for (partition, ids) in partitions.iter().enumerate() {
            for id in ids.clone() {
                let value = format!("{{\"id\": {id}}}");
                let record = BaseRecord::<(), _>::to(topic)
                    .partition(partition as i32)
                    .payload(&value);
                producer.send(record).map_err(|(e, _)| e).unwrap();
                producer.poll(Duration::ZERO);
            }
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn a_failed_round_is_read_again_exactly_once() {
        // Without a group the consumer takes messages from librdkafka up to 256 at a time, and
        // keeps those its round did not use. When a round fails, its messages (and any kept)
        // must be read again, each exactly once, in every partition.
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("ids", 3).unwrap();
        produce_ids(
            cluster.bootstrap_servers(),
            "ids",
            &[0..30, 30..1_500, 1_500..3_000],
        );
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let mut consumer = ArrowConsumer::new(ConsumerOptions {
            bootstrap: cluster.bootstrap_servers().into(),
            topics: vec!["ids".into()],
            format: Format::Json,
            schema: Some(schema.clone()),
            avro_schema: None,
            schema_registry: None,
            group_id: None,
            start: StartAt::Earliest,
            stop: StopAt::End,
            batch_size: 100,
            max_wait: Duration::from_secs(5),
            on_error: OnError::Raise,
            include_metadata: false,
            csv_delimiter: b',',
            ordered: false,
            config: Vec::new(),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        assert!(consumer.batch_poller.is_some());
        consumer.state.decoder = Some(Box::new(FailsOnce {
            inner: Box::new(JsonDecoder::new(schema)),

            failed: false,
        }));
        let never = &mut || false;
        let mut ids = Vec::new();
        let mut failures = 0;
        loop {
            match consumer.next_batch(never) {
                Ok(Some(batch)) => {
                    let values = batch.column(0).as_primitive::<Int64Type>();
                    ids.extend(values.values().iter().copied());
                }
                Ok(None) => break,
                Err(KafkaError::Format(_)) => failures += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(failures, 1);
        ids.sort_unstable();
        assert_eq!(ids, (0..3_000).collect::<Vec<i64>>());
        assert_eq!(consumer.messages_read(), 3_000);
    }
}
