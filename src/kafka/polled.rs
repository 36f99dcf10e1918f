//! Messages as the consumer polls them: one at a time through rust-rdkafka (a group member,
//! whose rebalances and commit replies rust-rdkafka handles), or many at a time through
//! librdkafka's batch API (every reader that assigns its partitions itself).
//!
//! The batch API takes the queue's lock and reads the clock once per call instead of three or
//! four times per message, and allocates nothing per message: the benchmark's raw 1M-message
//! read used 0.46 CPU-s with it instead of 0.73 (`examples/raw_consume.rs`), and kafkaml's
//! poller 0.20 instead of 0.39.

use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{BorrowedMessage, Message};

/// What the consumer reads of a polled message, whichever way it was polled.
pub trait PolledMessage {
    fn topic(&self) -> &str;
    /// Equal for messages of the same topic (and cheaper to compare than the name).
    fn topic_id(&self) -> usize;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    /// Milliseconds since the epoch, when the message has a timestamp.
    fn timestamp_ms(&self) -> Option<i64>;
}

impl PolledMessage for BorrowedMessage<'_> {
    fn topic(&self) -> &str {
        Message::topic(self)
    }
    fn topic_id(&self) -> usize {
        self.topic_ptr() as usize
    }
    fn partition(&self) -> i32 {
        Message::partition(self)
    }
    fn offset(&self) -> i64 {
        Message::offset(self)
    }
    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }
    fn payload(&self) -> Option<&[u8]> {
        Message::payload(self)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        Message::timestamp(self).to_millis()
    }
}

/// The first offset of each partition among `messages`.
pub fn first_offsets<'m, M: PolledMessage + 'm>(
    messages: impl IntoIterator<Item = &'m M>,
) -> HashMap<(String, i32), i64> {
    let mut first: HashMap<(String, i32), i64> = HashMap::new();
    for m in messages {
        let offset = first
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(m.offset());
        *offset = (*offset).min(m.offset());
    }
    first
}

/// A message taken from librdkafka's batch API, destroyed when dropped. It must be dropped
/// before its consumer (`BatchPoller` and the consumer's `close` see to it).
pub struct RawMessage {
    message: NonNull<rd::rd_kafka_message_t>,
}

impl RawMessage {
    fn fields(&self) -> &rd::rd_kafka_message_t {
        // Safety: the message stays valid until `drop` destroys it.
        unsafe { self.message.as_ref() }
    }

    /// A message, not a consumer error (end of partition, unknown topic, ...).
    fn is_message(&self) -> bool {
        self.fields().err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Borrows `len` bytes at `start`, or `None` for a null pointer (an absent key or value).
    fn bytes(&self, start: *mut std::ffi::c_void, len: usize) -> Option<&[u8]> {
        // Safety: librdkafka's message owns the bytes until it is destroyed.
        (!start.is_null()).then(|| unsafe { std::slice::from_raw_parts(start as *const u8, len) })
    }
}

impl PolledMessage for RawMessage {
    fn topic(&self) -> &str {
        // Safety: the topic handle outlives its messages; its name is a C string.
        let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.fields().rkt)) };
        name.to_str().unwrap_or("")
    }
    fn topic_id(&self) -> usize {
        self.fields().rkt as usize
    }
    fn partition(&self) -> i32 {
        self.fields().partition
    }
    fn offset(&self) -> i64 {
        self.fields().offset
    }
    fn key(&self) -> Option<&[u8]> {
        self.bytes(self.fields().key, self.fields().key_len)
    }
    fn payload(&self) -> Option<&[u8]> {
        self.bytes(self.fields().payload, self.fields().len)
    }
    fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // Safety: reads the valid message; writes only `kind`.
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.message.as_ptr(), &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE).then_some(ms)
    }
}

// Safety: librdkafka's messages may be read and destroyed on any thread, and nothing changes
// them through a shared reference.
unsafe impl Send for RawMessage {}
unsafe impl Sync for RawMessage {}

impl Drop for RawMessage {
    fn drop(&mut self) {
        // Safety: this is the only owner of the message.
        unsafe { rd::rd_kafka_message_destroy(self.message.as_ptr()) };
    }
}

/// Most messages one batch call takes: enough that the per-call costs vanish (a round's last
/// call takes no more than the round has room for).
const MESSAGES_PER_CALL: usize = 256;

/// Polls a consumer's queue through the batch API. Messages taken but not yet handed out
/// wait in `pending` for the next poll (they are past librdkafka's position already).
pub struct BatchPoller {
    queue: NonNull<rd::rd_kafka_queue_t>,
    pending: VecDeque<RawMessage>,
    taken: Vec<*mut rd::rd_kafka_message_t>,
}

impl BatchPoller {
    /// For a consumer that assigns its partitions itself. Not for a group member: the batch
    /// API answers a rebalance without rust-rdkafka's handler by unassigning everything, and
    /// would hand out commit replies as messages.
    pub fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Self> {
        // Safety: returns a new reference to the consumer's queue, released in `drop`.
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        Some(BatchPoller {
            queue: NonNull::new(queue)?,
            pending: VecDeque::new(),
            taken: vec![std::ptr::null_mut(); MESSAGES_PER_CALL],
        })
    }

    /// The next message or consumer error, waiting up to `wait` when none is queued;
    /// `wanted` caps how many are taken from librdkafka now.
    pub fn poll(
        &mut self,
        wait: Duration,
        wanted: usize,
    ) -> Option<Result<RawMessage, ClientError>> {
        if self.pending.is_empty() {
            let wanted = wanted.clamp(1, MESSAGES_PER_CALL);
            // Whatever is queued, without waiting (no clock read either); then, if nothing
            // was, wait for one.
            let mut count = self.take(0, wanted);
            if count == 0 && !wait.is_zero() {
                count = self.take(wait.as_millis().clamp(1, i32::MAX as u128) as i32, 1);
            }
            for &message in &self.taken[..count] {
                if let Some(message) = NonNull::new(message) {
                    self.pending.push_back(RawMessage { message });
                }
            }
        }
        let message = self.pending.pop_front()?;
        Some(match message.fields().err {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(message),
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                Err(ClientError::PartitionEOF(message.partition()))
            }
            error => Err(ClientError::MessageConsumption(error.into())),
        })
    }

    fn take(&mut self, timeout_ms: i32, wanted: usize) -> usize {
        // Safety: `taken` has room for `wanted` pointers; the queue reference is live.
        let count = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                self.taken.as_mut_ptr(),
                wanted,
            )
        };
        count.max(0) as usize
    }

    /// The first offset per partition of the messages taken and not handed out.
    pub fn pending_first_offsets(&self) -> HashMap<(String, i32), i64> {
        first_offsets(self.pending.iter().filter(|m| m.is_message()))
    }

    /// How many messages of `(topic, partition)` wait to be handed out.
    pub fn pending_in(&self, topic: &str, partition: i32) -> i64 {
        let of_partition =
            |m: &&RawMessage| m.is_message() && m.partition() == partition && m.topic() == topic;
        self.pending.iter().filter(of_partition).count() as i64
    }

    /// Destroys the messages waiting to be handed out.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
    }
}

// Safety: librdkafka's queues may be polled and released on any thread; polling takes
// `&mut self`, and a shared reference only reads the pending messages.
unsafe impl Send for BatchPoller {}
unsafe impl Sync for BatchPoller {}

/// Where a polling round takes its messages from: rust-rdkafka's one-at-a-time poll, or the
/// batch API. `wanted` is how many messages the round still has room for.
pub trait MessageSource<C: ConsumerContext> {
    type Message<'c>: PolledMessage
    where
        C: 'c;
    fn next<'c>(
        &mut self,
        consumer: &'c BaseConsumer<C>,
        wait: Duration,
        wanted: usize,
    ) -> Option<Result<Self::Message<'c>, ClientError>>;
}

/// rust-rdkafka's poll, which also serves rebalances and commit replies (group members).
pub struct OneAtATime;

impl<C: ConsumerContext> MessageSource<C> for OneAtATime {
    type Message<'c>
        = BorrowedMessage<'c>
    where
        C: 'c;
    fn next<'c>(
        &mut self,
        consumer: &'c BaseConsumer<C>,
        wait: Duration,
        _wanted: usize,
    ) -> Option<Result<BorrowedMessage<'c>, ClientError>> {
        consumer.poll(wait)
    }
}

impl<C: ConsumerContext> MessageSource<C> for BatchPoller {
    type Message<'c>
        = RawMessage
    where
        C: 'c;
    fn next(
        &mut self,
        _consumer: &BaseConsumer<C>,
        wait: Duration,
        wanted: usize,
    ) -> Option<Result<RawMessage, ClientError>> {
        self.poll(wait, wanted)
    }
}

impl Drop for BatchPoller {
    fn drop(&mut self) {
        self.pending.clear();
        // Safety: releases the reference taken in `new`.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}
