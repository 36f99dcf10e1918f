//! Polling rounds: gathering up to a batch of messages (handing full chunks to a decode
//! thread as they arrive), decoding the rest, and going back to a round's first messages
//! when it fails, so that nothing is lost.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;

use super::decoding::INFERENCE_SAMPLE;
use super::options::{ConsumerOptions, StopAt};
use super::plan::{assigned_done, PartitionProgress};
use super::{ArrowConsumer, PartitionKey};
use crate::formats::FormatError;
use crate::kafka::config::QuietContext;
use crate::kafka::decode_ahead::{decode_chunks, move_rows, HeldPayloads, CHUNK_MESSAGES};
use crate::kafka::polled::{first_offsets, MessageSource, OneAtATime, PolledMessage};
use crate::kafka::{Interrupt, KafkaError};
use crate::matrix::RowSink;

/// How often a long wait checks for an interrupt (Ctrl-C).
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

impl ArrowConsumer {
    /// One round of polling; `Ok(None)` when it ended without messages to hand out.
    /// `return_when_idle`: end the round after a quiet moment instead of waiting on.
    /// With `rows`, the decoded rows go there (see `next_rows`).
    pub(super) fn poll_batch(
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
        // Decode on a second thread while polling, once the decoder knows its schema (json
        // infers it from the first round; Avro through a registry without a reader schema
        // learns it from the first message it reads: decode_chunks sizes its output from
        // the schema it is given, so an unknown one would make batches without columns) and
        // batches are worth splitting.
        let decode_ahead = self
            .state
            .decoder
            .as_ref()
            .is_some_and(|decoder| !decoder.schema().fields().is_empty())
            && self.options.batch_size >= 2 * CHUNK_MESSAGES;
        // A schema still to be inferred comes from a short first round (see INFERENCE_SAMPLE).
        let batch_size = match self.state.decoder {
            Some(_) => self.options.batch_size,
            None => self.options.batch_size.min(INFERENCE_SAMPLE),
        };
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
                    batch_size,
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
        if let Some(warning) = self.state.unknown_fields_warning() {
            self.warnings.push(warning);
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
}

/// Messages between two reads of the clock while they keep coming (reading it for every
/// message showed up in profiles).
const MESSAGES_PER_CLOCK_READ: u32 = 64;

/// The polling half of a round, over the parts of the consumer it needs.
struct Gather<'a, 'c> {
    consumer: &'c BaseConsumer<QuietContext>,
    options: &'a ConsumerOptions,
    /// This round's length in messages.
    batch_size: usize,
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
        let batch_size = self.batch_size;
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

#[cfg(test)]
mod tests {
    use arrow_schema::SchemaRef;

    use super::super::test_support::{
        id_schema, id_snapshot, produce_id_range, produce_ids, read_id_batches,
    };
    use super::*;
    use crate::formats::json::JsonDecoder;
    use crate::formats::{BatchDecoder, Decoded, Payload};
    use crate::kafka::consumer::ReadFormat;
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
        let mut consumer = ArrowConsumer::new(ConsumerOptions {
            batch_size: 100,
            max_wait: Duration::from_secs(5),
            ..id_snapshot(cluster.bootstrap_servers(), "ids")
        })
        .unwrap();
        assert!(consumer.batch_poller.is_some());
        consumer.state.decoder = Some(Box::new(FailsOnce {
            inner: Box::new(JsonDecoder::new(id_schema())),
            failed: false,
        }));
        let never = &mut || false;
        let mut ids = Vec::new();
        let mut failures = 0;
        loop {
            match consumer.next_batch(never) {
                Ok(Some(batch)) => {
                    use arrow_array::cast::AsArray;
                    let values = batch
                        .column(0)
                        .as_primitive::<arrow_array::types::Int64Type>();
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

    #[test]
    fn rounds_hold_at_most_a_batch_and_a_schema_is_inferred_from_a_short_first_one() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("many", 1).unwrap();
        let total = INFERENCE_SAMPLE as i64 + 5_000;
        produce_id_range(cluster.bootstrap_servers(), "many", 0..total);
        let declared = ConsumerOptions {
            batch_size: 4_000,
            ..id_snapshot(cluster.bootstrap_servers(), "many")
        };
        let batches = read_id_batches(&mut ArrowConsumer::new(declared.clone()).unwrap()).unwrap();
        assert!(batches.iter().all(|b| b.len() <= 4_000));
        assert_eq!(batches.concat(), (0..total).collect::<Vec<i64>>());

        let inferred = ConsumerOptions {
            batch_size: 50_000,
            format: ReadFormat::json(),
            ..declared
        };
        let mut consumer = ArrowConsumer::new(inferred).unwrap();
        let batches = read_id_batches(&mut consumer).unwrap();
        assert_eq!(batches[0].len(), INFERENCE_SAMPLE);
        assert_eq!(batches.concat(), (0..total).collect::<Vec<i64>>());
        let schema = consumer.schema().unwrap();
        assert_eq!(schema.field(0).data_type(), &arrow_schema::DataType::Int64);
    }
}
