//! The stream scorer: Rust threads that consume a topic batch by batch, score each row with
//! a model, produce one result per row (id columns, score, anomaly flag), and commit the
//! consumed offsets only once every result of the batch is acknowledged — at-least-once,
//! and exactly once across a clean stop and restart. The scorer thread polls (decoding on
//! the consumer's decode thread) while a delivery thread scores and produces the batch before.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{ArrayRef, BooleanArray, Float32Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::features::{extract, FeatureSpec};
use super::PipelineError;
use crate::formats::encode::ValueFormat;
use crate::kafka::consumer::{
    ArrowConsumer, CommitMode, CommitPoint, ConsumerOptions, DecodeFailure, ErrorLog, OnError,
    StopAt,
};
use crate::kafka::producer::{ArrowProducer, ProducerOptions};
use crate::kafka::KafkaError;

/// How often lag and rate are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How many rejected rows the scorer keeps with their coordinates.
const RECENT_FAILURES: usize = 20;

/// What the scorer needs from a model: one anomaly score per row.
pub trait RowScorer: Send + Sync {
    /// Features per row.
    fn input_width(&self) -> usize;
    /// Scores of the rows of `rows` (row-major [n_rows, input_width]).
    fn score_rows(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, String>;
}

/// A loaded model scores a row by how badly it reconstructs it (the talk's anomaly score).
impl RowScorer for crate::model::Model {
    fn input_width(&self) -> usize {
        crate::model::Model::input_width(self)
    }
    fn score_rows(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, String> {
        self.reconstruction_error(rows, n_rows)
            .map_err(|e| e.to_string())
    }
}

pub struct ScorerOptions {
    /// The source: topic, format, schema, group (required), batch size, decode-error policy.
    pub consumer: ConsumerOptions,
    pub sink_topic: String,
    pub sink_format: ValueFormat,
    pub producer_config: Vec<(String, String)>,
    pub features: FeatureSpec,
    /// Columns copied from each input row into its result (e.g. the event id).
    pub id_columns: Vec<String>,
    /// Per-feature `(offset, scale)`: the model sees `(x - offset) / scale` (a standard or
    /// min-max scaler fitted in training), so scores are in the space it was trained in.
    pub scaling: Option<(Vec<f32>, Vec<f32>)>,
    /// Scores above it are flagged as anomalies; without it results carry no flag.
    pub threshold: Option<f32>,
    /// Rows whose features cannot be read: stop with an error, or count and skip them.
    pub on_bad_row: OnError,
    /// How long broker calls (connect, flush, commit) may take before they count as failed.
    pub timeout: Duration,
}

/// Counters the scorer thread updates and any thread may read.
#[derive(Default)]
struct Counters {
    consumed: AtomicU64,
    produced: AtomicU64,
    /// Results flagged `anomaly` (acknowledged ones, as `produced`).
    anomalies: AtomicU64,
    /// Decode failures and rejected rows, under the skip policy.
    skipped: AtomicU64,
    batches: AtomicU64,
    commits: AtomicU64,
    /// -1 until known.
    lag: AtomicI64,
    /// How many times the lag was measured (so a waiter can ask for a fresh measurement).
    lag_checks: AtomicU64,
    /// Results per second over the last stats interval, as f64 bits.
    rate_bits: AtomicU64,
}

/// A snapshot of the scorer's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerStats {
    pub consumed: u64,
    pub produced: u64,
    /// Results flagged as anomalies (0 without a threshold).
    pub anomalies: u64,
    pub skipped: u64,
    pub batches: u64,
    pub commits: u64,
    /// Messages of the source not yet consumed; `None` until first measured.
    pub lag: Option<i64>,
    pub lag_checks: u64,
    /// Results per second over the last second or so.
    pub rate: f64,
    pub elapsed: Duration,
    pub running: bool,
    /// The message of the error that ended the scorer; `None` while it is healthy. It stays
    /// after [`StreamScorer::take_error`], so a failed scorer keeps saying why.
    pub error: Option<String>,
}

struct Shared {
    counters: Counters,
    /// Finish the current batch, commit, and end.
    stop: AtomicBool,
    /// End now, abandoning an uncommitted batch (it is read again on restart).
    abort: AtomicBool,
    running: AtomicBool,
    error: Mutex<Option<PipelineError>>,
    /// The message of `error`, kept when the error itself is taken.
    error_message: Mutex<Option<String>>,
    failures: Mutex<ErrorLog>,
}

impl Shared {
    /// Records the error that ends the scorer and marks it stopped.
    fn fail(&self, error: Option<PipelineError>) {
        if let Some(error) = error {
            if let Ok(mut message) = self.error_message.lock() {
                *message = Some(error.to_string());
            }
            if let Ok(mut slot) = self.error.lock() {
                *slot = Some(error);
            }
        }
        self.running.store(false, Ordering::Release);
    }
}

pub struct StreamScorer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

impl StreamScorer {
    /// Connects to the source and the sink (so bad settings fail here, not in the thread),
    /// then starts scoring in a new thread.
    pub fn start(
        mut options: ScorerOptions,
        model: Arc<dyn RowScorer>,
    ) -> Result<Self, PipelineError> {
        if options.consumer.group_id.is_none() {
            return Err(PipelineError::Config(
                "a stream scorer needs a group_id: its committed offsets are how it resumes".into(),
            ));
        }
        if options
            .id_columns
            .iter()
            .any(|c| c == "score" || c == "anomaly")
        {
            return Err(PipelineError::Config(
                "id columns cannot be named 'score' or 'anomaly'".into(),
            ));
        }
        if let Some((offset, scale)) = &options.scaling {
            let width = model.input_width();
            if offset.len() != width || scale.len() != width {
                return Err(PipelineError::Config(format!(
                    "scaling has {} offsets and {} scales; the model takes {width} features",
                    offset.len(),
                    scale.len()
                )));
            }
            if let Some(j) = scale.iter().position(|s| *s == 0.0 || !s.is_finite()) {
                return Err(PipelineError::Config(format!(
                    "scale of feature {j} is {}: it must be finite and non-zero",
                    scale[j]
                )));
            }
        }
        options.consumer.stop = StopAt::Never;
        options.consumer.ordered = false;
        // Coordinates name the messages at fault; the key is carried over to the result.
        options.consumer.include_metadata = true;
        let consumer = ArrowConsumer::new(options.consumer.clone())?;
        let producer = ArrowProducer::new(ProducerOptions {
            bootstrap: options.consumer.bootstrap.clone(),
            topic: options.sink_topic.clone(),
            format: options.sink_format.clone(),
            key_column: None,
            config: producer_config(&options),
            timeout: options.timeout,
        })?;
        let shared = Arc::new(Shared {
            counters: Counters {
                lag: AtomicI64::new(-1),
                ..Counters::default()
            },
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            running: AtomicBool::new(true),
            error: Mutex::new(None),
            error_message: Mutex::new(None),
            failures: Mutex::new(ErrorLog::default()),
        });
        let options = Arc::new(options);
        let worker = Worker {
            options: Arc::clone(&options),
            consumer,
            shared: Arc::clone(&shared),
            delivery: Some(Delivery {
                options,
                model,
                producer,
                shared: Arc::clone(&shared),
            }),
            decode_failures_seen: 0,
            acknowledged: CommitPoint::default(),
            committed: CommitPoint::default(),
        };
        let thread = std::thread::Builder::new()
            .name("kafkaml-stream-scorer".into())
            .spawn(move || {
                let shared = Arc::clone(&worker.shared);
                // A panic must not leave the scorer looking healthy: it ends it with an error.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| worker.run())) {
                    shared.fail(Some(PipelineError::Internal(format!(
                        "the scorer thread panicked: {}",
                        panic_message(&panic)
                    ))));
                }
            })
            .map_err(|e| PipelineError::Config(format!("cannot start the scorer thread: {e}")))?;
        Ok(StreamScorer {
            shared,
            thread: Some(thread),
            started: Instant::now(),
        })
    }

    pub fn stats(&self) -> ScorerStats {
        let c = &self.shared.counters;
        let lag = c.lag.load(Ordering::Relaxed);
        ScorerStats {
            consumed: c.consumed.load(Ordering::Relaxed),
            produced: c.produced.load(Ordering::Relaxed),
            anomalies: c.anomalies.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            lag: (lag >= 0).then_some(lag),
            lag_checks: c.lag_checks.load(Ordering::Acquire),
            rate: f64::from_bits(c.rate_bits.load(Ordering::Relaxed)),
            elapsed: self.started.elapsed(),
            // Read after `running`: a scorer seen stopped has its error recorded.
            running: self.is_running(),
            error: self
                .shared
                .error_message
                .lock()
                .ok()
                .and_then(|m| m.clone()),
        }
    }

    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// The skip policy's account: rows and messages skipped, the latest with coordinates.
    pub fn failures(&self) -> ErrorLog {
        self.shared
            .failures
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    /// Asks the thread to finish its batch and end; does not wait.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Stops cleanly: the batch in hand is finished, its results acknowledged and its
    /// offsets committed. After `timeout` (say, the broker is down) the batch is abandoned
    /// instead — it is read again on restart. Returns the error that ended the thread, if any.
    pub fn stop(&mut self, timeout: Duration) -> Result<(), PipelineError> {
        self.request_stop();
        let deadline = Instant::now() + timeout;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.is_running() {
            self.shared.abort.store(true, Ordering::Release);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                return Err(PipelineError::Config("the scorer thread panicked".into()));
            }
        }
        self.take_error().map_or(Ok(()), Err)
    }

    /// The error that ended the thread, once (later calls return `None`).
    pub fn take_error(&self) -> Option<PipelineError> {
        self.shared.error.lock().ok().and_then(|mut e| e.take())
    }
}

impl Drop for StreamScorer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop(Duration::from_secs(5));
        }
    }
}

/// The scorer's producer settings: results survive broker restarts without duplicates.
fn producer_config(options: &ScorerOptions) -> Vec<(String, String)> {
    let mut config = vec![
        ("enable.idempotence".to_string(), "true".to_string()),
        // A restart of the broker takes seconds: keep retrying well past it.
        (
            "message.timeout.ms".to_string(),
            (options.timeout.as_millis().max(1000) * 6).to_string(),
        ),
    ];
    config.extend(options.producer_config.iter().cloned());
    config
}

/// The scorer thread: polls and decodes batches, hands them to the delivery thread, and
/// commits the offsets of each batch once the delivery thread reports its results acknowledged.
struct Worker {
    options: Arc<ScorerOptions>,
    consumer: ArrowConsumer,
    shared: Arc<Shared>,
    /// Moved to its own thread when scoring starts.
    delivery: Option<Delivery>,
    /// How many of the consumer's skipped decode failures are already counted.
    decode_failures_seen: u64,
    /// The offsets after the last batch whose results are all acknowledged: the most a
    /// commit may store (what was handed out may still be on its way to the sink).
    acknowledged: CommitPoint,
    /// The offsets last committed.
    committed: CommitPoint,
}

/// The delivery thread: scores each batch, produces its results and waits for their
/// acknowledgement, while the scorer thread polls the next batch.
struct Delivery {
    options: Arc<ScorerOptions>,
    model: Arc<dyn RowScorer>,
    producer: ArrowProducer,
    shared: Arc<Shared>,
}

/// Batches waiting for the delivery thread: one, so that polling runs at most a batch or two
/// ahead of delivery (bounded memory).
const BATCHES_AHEAD: usize = 1;

impl Worker {
    fn run(mut self) {
        let result = self.score_until_stopped();
        let final_commit = if self.shared.abort.load(Ordering::Acquire) {
            Ok(())
        } else {
            self.commit_with_retries()
        };
        self.consumer.close();
        self.shared.fail(result.err().or(final_commit.err()));
    }

    /// Polls batch after batch and hands each to the delivery thread, which scores it and
    /// produces its results while the next batch is polled. Offsets are committed as the
    /// delivery thread reports batches acknowledged; when polling ends, with or without an
    /// error, the batches already handed over are delivered first.
    fn score_until_stopped(&mut self) -> Result<(), PipelineError> {
        let delivery = self.delivery.take().expect("scoring starts once");
        let (batches, to_deliver) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
        let (reports, delivered) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("kafkaml-scorer-delivery".into())
                .spawn_scoped(scope, move || delivery.run(to_deliver, reports))
                .map_err(|e| {
                    PipelineError::Config(format!("cannot start the delivery thread: {e}"))
                })?;
            let polled = self.poll_batches(batches, &delivered);
            let joined = thread
                .join()
                .map_err(|_| PipelineError::Config("the delivery thread panicked".into()));
            // The delivery thread has ended: every report is in the channel.
            let mut failure = polled.err().or(joined.err());
            for report in delivered.try_iter() {
                match report {
                    Ok(point) => self.acknowledged = point,
                    Err(error) => failure = failure.or(Some(error)),
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }

    fn poll_batches(
        &mut self,
        batches: SyncSender<(RecordBatch, CommitPoint)>,
        delivered: &Receiver<Result<CommitPoint, PipelineError>>,
    ) -> Result<(), PipelineError> {
        let shared = Arc::clone(&self.shared);
        let mut last_stats = Instant::now();
        let mut produced_at_last_stats = 0;
        while !shared.stop.load(Ordering::Acquire) {
            let mut stop_requested =
                || shared.stop.load(Ordering::Acquire) || shared.abort.load(Ordering::Acquire);
            let batch = match self.consumer.poll_once(&mut stop_requested) {
                Ok(batch) => batch,
                // The messages gathered so far were not handed out: they stay uncommitted.
                Err(KafkaError::Interrupted) => break,
                Err(error) => return Err(error.into()),
            };
            self.sync_skipped_decodes();
            if let Some(batch) = batch {
                let point = self.consumer.commit_point();
                if batches.send((batch, point)).is_err() {
                    break; // the delivery thread ended: its report says why
                }
            }
            for report in delivered.try_iter() {
                self.acknowledged = report?;
            }
            if self.acknowledged != self.committed {
                // Asynchronous: a failed commit (broker restarting) is covered by the next
                // one, and the final commit waits for its answer.
                if self
                    .consumer
                    .commit_at(&self.acknowledged, CommitMode::Async)
                    .is_ok()
                {
                    self.committed = self.acknowledged.clone();
                    shared.counters.commits.fetch_add(1, Ordering::Relaxed);
                }
            }
            if last_stats.elapsed() >= STATS_EVERY {
                let produced = shared.counters.produced.load(Ordering::Relaxed);
                let rate =
                    (produced - produced_at_last_stats) as f64 / last_stats.elapsed().as_secs_f64();
                shared
                    .counters
                    .rate_bits
                    .store(rate.to_bits(), Ordering::Relaxed);
                if let Some(lag) = self.consumer.lag() {
                    shared.counters.lag.store(lag, Ordering::Relaxed);
                    shared.counters.lag_checks.fetch_add(1, Ordering::Release);
                }
                produced_at_last_stats = produced;
                last_stats = Instant::now();
            }
        }
        Ok(())
    }

    /// Decode failures the consumer skipped count as skipped events of the scorer.
    fn sync_skipped_decodes(&mut self) {
        let errors = self.consumer.errors();
        let new = errors.skipped.saturating_sub(self.decode_failures_seen);
        if new == 0 {
            return;
        }
        self.decode_failures_seen = errors.skipped;
        self.shared
            .counters
            .skipped
            .fetch_add(new, Ordering::Relaxed);
        if let Ok(mut log) = self.shared.failures.lock() {
            log.skipped += new;
            let newest = errors.recent.len().saturating_sub(new as usize);
            for failure in errors.recent.iter().skip(newest) {
                push_recent(&mut log.recent, failure.clone());
            }
        }
    }

    /// Commits the offsets whose results are acknowledged, retrying through a broker restart
    /// for up to the timeout.
    fn commit_with_retries(&mut self) -> Result<(), PipelineError> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            match self
                .consumer
                .commit_at(&self.acknowledged, CommitMode::Sync)
            {
                Ok(_) => {
                    self.shared.counters.commits.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error)
                    if Instant::now() >= deadline || self.shared.abort.load(Ordering::Acquire) =>
                {
                    return Err(error.into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Delivery {
    /// Delivers batches until the scorer thread hangs up, reporting each batch's commit point
    /// once its results are acknowledged; the first error is reported and ends delivery.
    fn run(
        mut self,
        batches: Receiver<(RecordBatch, CommitPoint)>,
        reports: Sender<Result<CommitPoint, PipelineError>>,
    ) {
        for (batch, point) in batches {
            let delivered = self.score_batch(&batch).and_then(|(sent, anomalies)| {
                let abort = &self.shared.abort;
                self.producer.flush(&mut || abort.load(Ordering::Acquire))?;
                let counters = &self.shared.counters;
                counters.produced.fetch_add(sent, Ordering::Relaxed);
                counters.anomalies.fetch_add(anomalies, Ordering::Relaxed);
                Ok(point)
            });
            let failed = delivered.is_err();
            if reports.send(delivered).is_err() || failed {
                return;
            }
        }
    }

    /// Scores a batch and sends its results (without waiting for them); returns how many,
    /// and how many of them are flagged as anomalies.
    fn score_batch(&mut self, batch: &RecordBatch) -> Result<(u64, u64), PipelineError> {
        let topic = || self.options.consumer.topics.join(",");
        let width = self.model.input_width();
        let mut rows = extract(batch, &self.options.features, width)
            .map_err(|e| PipelineError::Features(e, topic()))?;
        if let Some((offset, scale)) = &self.options.scaling {
            for row in rows.values.chunks_exact_mut(width) {
                for ((value, offset), scale) in row.iter_mut().zip(offset).zip(scale) {
                    *value = (*value - offset) / scale;
                }
            }
        }
        if !rows.rejected.is_empty() {
            self.reject(batch, &rows.rejected)?;
        }
        let counters = &self.shared.counters;
        counters
            .consumed
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        if rows.kept.is_empty() {
            return Ok((0, 0));
        }
        let scores = self
            .model
            .score_rows(&rows.values, rows.kept.len())
            .map_err(|reason| PipelineError::Model {
                topic: topic(),
                rows: rows.kept.len(),
                reason,
            })?;
        let anomalies = self
            .options
            .threshold
            .map_or(0, |t| scores.iter().filter(|&&s| s > t).count() as u64);
        let (results, keys) = self.results(batch, &rows.kept, scores)?;
        let abort = &self.shared.abort;
        let mut aborted = || abort.load(Ordering::Acquire);
        self.producer
            .send_batch_with_keys(&results, keys.as_ref(), &mut aborted)?;
        Ok((results.num_rows() as u64, anomalies))
    }

    /// Rows whose features cannot be read: the first ends the scorer (raise), or all are
    /// counted with their coordinates (skip).
    fn reject(
        &self,
        batch: &RecordBatch,
        rejected: &[(usize, String)],
    ) -> Result<(), PipelineError> {
        let coordinates = |row: usize| -> (String, i32, i64) {
            let topic = batch
                .column_by_name("_topic")
                .map(|c| c.as_string::<i32>().value(row).to_string());
            let partition = batch
                .column_by_name("_partition")
                .map(|c| c.as_primitive::<Int32Type>().value(row));
            let offset = batch
                .column_by_name("_offset")
                .map(|c| c.as_primitive::<Int64Type>().value(row));
            (
                topic.unwrap_or_default(),
                partition.unwrap_or(-1),
                offset.unwrap_or(-1),
            )
        };
        if self.options.on_bad_row == OnError::Raise {
            let (row, reason) = &rejected[0];
            let (topic, partition, offset) = coordinates(*row);
            return Err(PipelineError::BadRow {
                topic,
                partition,
                offset,
                reason: reason.clone(),
            });
        }
        if let Ok(mut log) = self.shared.failures.lock() {
            for (row, reason) in rejected {
                let (topic, partition, offset) = coordinates(*row);
                log.skipped += 1;
                push_recent(
                    &mut log.recent,
                    DecodeFailure {
                        topic,
                        partition,
                        offset,
                        reason: reason.clone(),
                    },
                );
            }
        }
        self.shared
            .counters
            .skipped
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The result rows (id columns, score, flag) of the kept input rows, and their keys.
    fn results(
        &self,
        batch: &RecordBatch,
        kept: &[usize],
        scores: Vec<f32>,
    ) -> Result<(RecordBatch, ArrayRef), PipelineError> {
        let indices = UInt32Array::from_iter_values(kept.iter().map(|&i| i as u32));
        let take = |column: &ArrayRef| -> Result<ArrayRef, PipelineError> {
            arrow::compute::take(column.as_ref(), &indices, None)
                .map_err(|e| PipelineError::Config(format!("cannot select rows: {e}")))
        };
        let schema = batch.schema();
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for name in &self.options.id_columns {
            let index = schema.index_of(name).map_err(|_| {
                let available: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
                PipelineError::Config(format!(
                    "id column {name:?} is not in the source; its columns are {available:?}"
                ))
            })?;
            fields.push(schema.field(index).clone());
            columns.push(take(batch.column(index))?);
        }
        if let Some(threshold) = self.options.threshold {
            let flags = BooleanArray::from_iter(scores.iter().map(|&s| Some(s > threshold)));
            fields.push(Field::new("score", DataType::Float32, false));
            fields.push(Field::new("anomaly", DataType::Boolean, false));
            columns.push(Arc::new(Float32Array::from(scores)));
            columns.push(Arc::new(flags));
        } else {
            fields.push(Field::new("score", DataType::Float32, false));
            columns.push(Arc::new(Float32Array::from(scores)));
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let results = RecordBatch::try_new(schema, columns)
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        let keys = take(
            batch
                .column_by_name("_key")
                .expect("metadata columns are on"),
        )?;
        Ok((results, keys))
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

fn push_recent(recent: &mut std::collections::VecDeque<DecodeFailure>, failure: DecodeFailure) {
    if recent.len() == RECENT_FAILURES {
        recent.pop_front();
    }
    recent.push_back(failure);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::{Float64Array, Int64Array};

    use super::*;
    use crate::kafka::consumer::ReadFormat;
    use crate::kafka::local::LocalCluster;

    /// Score = sum of squares: easy to check by hand.
    struct SumOfSquares;

    impl RowScorer for SumOfSquares {
        fn input_width(&self) -> usize {
            2
        }
        fn score_rows(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, String> {
            Ok(rows
                .chunks(2)
                .take(n_rows)
                .map(|r| r[0] * r[0] + r[1] * r[1])
                .collect())
        }
    }

    fn consumer_options(
        bootstrap: &str,
        topic: &str,
        group: Option<&str>,
        stop: StopAt,
    ) -> ConsumerOptions {
        ConsumerOptions {
            group_id: group.map(str::to_string),
            stop,
            batch_size: 1000,
            max_wait: Duration::from_millis(50),
            on_error: OnError::Skip,
            ..ConsumerOptions::new(bootstrap, [topic], ReadFormat::json())
        }
    }

    /// Scores events' `a` and `b` into "scores", with `id` as the id column.
    fn scorer_options(bootstrap: &str, on_bad_row: OnError) -> ScorerOptions {
        ScorerOptions {
            consumer: consumer_options(bootstrap, "events", Some("scorer"), StopAt::Never),
            sink_topic: "scores".into(),
            sink_format: ValueFormat::Json,
            producer_config: Vec::new(),
            features: FeatureSpec::Columns(vec!["a".into(), "b".into()]),
            id_columns: vec!["id".into()],
            scaling: None,
            threshold: None,
            on_bad_row,
            timeout: Duration::from_secs(10),
        }
    }

    fn produce_inputs(cluster: &LocalCluster, topic: &str, n: i64) {
        let mut producer = ArrowProducer::new(ProducerOptions {
            bootstrap: cluster.bootstrap_servers().into(),
            topic: topic.into(),
            format: ValueFormat::Json,
            key_column: None,
            config: Vec::new(),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Float64, false),
        ]));
        // Row 7 has a null feature: skipped and counted, not scored.
        let a = Float64Array::from_iter((0..n).map(|i| (i != 7).then_some(i as f64)));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(a),
                Arc::new(Float64Array::from_iter_values((0..n).map(|_| 1.0))),
            ],
        )
        .unwrap();
        producer.send_batch(&batch, &mut || false).unwrap();
        producer.flush(&mut || false).unwrap();
    }

    #[test]
    fn every_input_gets_one_result_with_its_id_score_and_flag() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("events", 2).unwrap();
        cluster.create_topic("scores", 1).unwrap();
        produce_inputs(&cluster, "events", 500);
        let bootstrap = cluster.bootstrap_servers().to_string();
        let options = ScorerOptions {
            // b is always 1: scaled to (1 - 1) / 1 = 0, so the score is a² / 4
            scaling: Some((vec![0.0, 1.0], vec![2.0, 1.0])),
            threshold: Some(100.5),
            ..scorer_options(&bootstrap, OnError::Skip)
        };
        let mut scorer = StreamScorer::start(options, Arc::new(SumOfSquares)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while scorer.stats().consumed < 500 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        scorer.stop(Duration::from_secs(10)).unwrap();
        let stats = scorer.stats();
        assert_eq!(
            (stats.consumed, stats.produced, stats.skipped),
            (500, 499, 1)
        );
        assert!(!stats.running);
        assert_eq!(stats.error, None);
        // a²/4 > 100.5 for a >= 21: ids 21..500 (7, the skipped one, is below)
        assert_eq!(stats.anomalies, 479);
        let failures = scorer.failures();
        assert_eq!(failures.recent.len(), 1);
        assert!(
            failures.recent[0].reason.contains("\"a\" is null"),
            "{:?}",
            failures.recent[0]
        );
        assert_eq!(failures.recent[0].topic, "events");

        let mut reader =
            ArrowConsumer::new(consumer_options(&bootstrap, "scores", None, StopAt::End)).unwrap();
        let mut results: HashMap<i64, (f64, bool)> = HashMap::new();
        while let Some(batch) = reader.next_batch(&mut || false).unwrap() {
            let ids = batch
                .column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let scores = batch
                .column_by_name("score")
                .unwrap()
                .as_primitive::<arrow_array::types::Float64Type>()
                .clone();
            let flags = batch
                .column_by_name("anomaly")
                .unwrap()
                .as_boolean()
                .clone();
            for i in 0..batch.num_rows() {
                assert!(
                    results
                        .insert(ids.value(i), (scores.value(i), flags.value(i)))
                        .is_none(),
                    "duplicate result"
                );
            }
        }
        assert_eq!(results.len(), 499);
        assert!(!results.contains_key(&7));
        for (id, (score, flag)) in results {
            let expected = (id * id) as f64 / 4.0;
            assert!(
                (score - expected).abs() <= expected * 1e-6,
                "id {id}: {score} != {expected}"
            );
            assert_eq!(flag, expected > 100.5, "id {id}");
        }
    }

    #[test]
    fn lag_is_measured_every_second_and_reaches_zero_once_caught_up() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("events", 4).unwrap();
        cluster.create_topic("scores", 1).unwrap();
        produce_inputs(&cluster, "events", 2000);
        let options = scorer_options(cluster.bootstrap_servers(), OnError::Skip);
        let mut scorer = StreamScorer::start(options, Arc::new(SumOfSquares)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while scorer.stats().consumed < 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let checks_when_done = scorer.stats().lag_checks;
        while Instant::now() < deadline
            && !(scorer.stats().lag_checks >= checks_when_done + 2 && scorer.stats().lag == Some(0))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = scorer.stats();
        scorer.stop(Duration::from_secs(10)).unwrap();
        assert_eq!(stats.consumed, 2000);
        assert_eq!(stats.lag, Some(0), "{stats:?}");
        assert!(stats.lag_checks >= checks_when_done + 2, "{stats:?}");
    }

    #[test]
    fn a_bad_row_under_raise_stops_the_scorer_naming_the_message() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("events", 1).unwrap();
        produce_inputs(&cluster, "events", 20);
        let options = scorer_options(cluster.bootstrap_servers(), OnError::Raise);
        let mut scorer = StreamScorer::start(options, Arc::new(SumOfSquares)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while scorer.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let expected = "cannot score the message at events[0]@7: feature column \"a\" is null";
        // Seen in the stats before anyone takes the error, and still after.
        assert_eq!(scorer.stats().error.as_deref(), Some(expected));
        let error = scorer.stop(Duration::from_secs(5)).unwrap_err().to_string();
        assert_eq!(error, expected);
        assert_eq!(scorer.stats().error.as_deref(), Some(expected));
        assert!(
            scorer.take_error().is_none(),
            "the error is handed out once"
        );
        assert_eq!(
            scorer.stats().produced,
            0,
            "nothing of the bad batch is produced"
        );
    }
}
