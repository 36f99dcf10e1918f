//! A running query's data path: records in, deserialised into a batch, filtered, projected,
//! re-keyed, serialised, records out. The Kafka runtime feeds it consumer batches; the
//! conformance runner feeds it one record at a time; both see the same operators.

use std::sync::Arc;

use crate::aggregate::stage::AggregationStage;
use crate::expr::{columns_used, eval_column, Batch, CompiledExpr};
use crate::formats::RecordSerde;
use crate::functions::BoundFunction;
use crate::functions::RowError;
use crate::join::{chain_entry, run_chain, JoinStage, Side};
use crate::small_key::SmallKey;
use crate::value::Value;

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    pub topic: String,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// One result row of a query before serialisation (what push queries send to clients).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub key: Vec<Value>,
    /// The input record had no key and the query kept its key: the output has none either.
    pub key_absent: bool,
    /// The window (start, end) of a windowed source's record.
    pub window: Option<(i64, i64)>,
    /// The projected values (NULLs for value columns when the record was a tombstone).
    pub value: Vec<Value>,
    /// The input had no value: a stream passes it on as a record without a value (sinks);
    /// push queries skip it, as ksqlDB's do.
    pub tombstone: bool,
    pub timestamp: i64,
}

/// A table's row as a query last wrote it: what pull queries read.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterializedRow {
    pub key: Vec<Value>,
    pub window: Option<(i64, i64)>,
    pub value: Vec<Value>,
    pub timestamp: i64,
}

/// A table sink's current rows, by their position in ksqlDB's state stores: the sink
/// partition of their key, then the serialised key, then the window.
///
/// A hash map, sorted only when a pull query reads it: every result of the query updates a
/// row here, and an ordered map's comparisons were a tenth of an aggregate's time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Materialized {
    /// The sink topic's partitions (the stores are one per partition).
    pub partitions: i32,
    pub rows: rustc_hash::FxHashMap<SmallKey, MaterializedRow>,
}

impl Materialized {
    /// The rows in the order ksqlDB's state stores give them back (by position).
    pub fn rows_in_store_order(&self) -> Vec<MaterializedRow> {
        let mut rows: Vec<(&SmallKey, &MaterializedRow)> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows.into_iter().map(|(_, row)| row.clone()).collect()
    }
}

/// A record the query could not process: ksqlDB's processing log.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingError {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub message: String,
}

/// Counters a query reports (`DESCRIBE EXTENDED`, `LocalKsql.stats()`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    pub records_in: u64,
    pub records_out: u64,
    /// Records skipped because they could not be read (bad bytes, tombstones in streams).
    pub skipped: u64,
    /// Cells set to NULL because an expression failed on them.
    pub expression_errors: u64,
}

/// How the output record's timestamp is chosen.
#[derive(Clone)]
pub enum OutputTimestamp {
    /// The input record's (ROWTIME).
    Input,
    /// The value of an output column (`WITH (timestamp='col')` on the sink).
    Column {
        index: usize,
        /// The column is a key column (`index` counts key columns), else a value column.
        key: bool,
        format: Option<TimestampFormat>,
    },
}

/// How the input record's timestamp is chosen.
#[derive(Clone)]
pub enum InputTimestamp {
    /// The record's own timestamp.
    Record,
    /// A column of the scope (`WITH (timestamp='col')` on the source).
    Column {
        index: usize,
        format: Option<TimestampFormat>,
    },
}

/// A `timestamp_format` and the built-in that parses it (STRINGTOTIMESTAMP, bound at plan time).
#[derive(Clone)]
pub struct TimestampFormat {
    pub pattern: String,
    pub parser: Arc<dyn BoundFunction>,
}

/// How a windowed source's keys carry their window (Kafka Streams' windowed serdes): the
/// key's bytes, then the window's end and start (session windows, 8 bytes each, big-endian),
/// or its start only (time windows, whose end is start + size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWindow {
    Session,
    Time { size_ms: i64 },
}

impl KeyWindow {
    /// Splits a windowed key into the key's own bytes and the window (start, end).
    pub fn split(self, bytes: &[u8]) -> Result<(&[u8], (i64, i64)), String> {
        let read = |b: &[u8]| {
            let mut array = [0u8; 8];
            array.copy_from_slice(b);
            i64::from_be_bytes(array)
        };
        match self {
            KeyWindow::Session if bytes.len() >= 16 => {
                let at = bytes.len() - 16;
                let end = read(&bytes[at..at + 8]);
                let start = read(&bytes[at + 8..]);
                Ok((&bytes[..at], (start, end)))
            }
            KeyWindow::Time { size_ms } if bytes.len() >= 8 => {
                let at = bytes.len() - 8;
                let start = read(&bytes[at..]);
                Ok((&bytes[..at], (start, start.saturating_add(size_ms))))
            }
            _ => Err(format!(
                "A windowed key needs at least {} bytes, got {}",
                if self == KeyWindow::Session { 16 } else { 8 },
                bytes.len()
            )),
        }
    }

    /// A key's bytes with its window appended.
    pub fn join(self, mut key: Vec<u8>, (start, end): (i64, i64)) -> Vec<u8> {
        if self == KeyWindow::Session {
            key.extend_from_slice(&end.to_be_bytes());
        }
        key.extend_from_slice(&start.to_be_bytes());
        key
    }
}

/// How a query reads one source: its topic, formats and columns. A record becomes a row in the
/// source's scope: key columns, value columns, ROWTIME, ROWPARTITION, ROWOFFSET, then
/// WINDOWSTART and WINDOWEND when the keys are windowed.
pub struct SourceReader {
    pub topic: String,
    pub key: RecordSerde,
    pub value: RecordSerde,
    pub key_count: usize,
    pub value_count: usize,
    pub input_timestamp: InputTimestamp,
    /// The source's keys are windowed: WINDOWSTART and WINDOWEND follow the pseudo-columns in
    /// the row, and a sink's keys carry the same window.
    pub key_window: Option<KeyWindow>,
    /// The source is a table: a record is an upsert of its key (a record without a key is
    /// skipped), a record without a value deletes it, and a row the filter drops is deleted.
    pub table: bool,
}

/// A record read into its source's scope.
pub struct ReadRow {
    pub cells: Vec<Value>,
    pub timestamp: i64,
    /// The record had no value.
    pub tombstone: bool,
    /// The record had no key.
    pub keyless: bool,
    pub window: Option<(i64, i64)>,
}

/// What reading a record gave.
pub enum ReadOutcome {
    Row(ReadRow),
    /// Not a row (a table record without a key, a NULL or negative timestamp): counted only.
    Skipped,
    /// Bytes the formats cannot read: counted and logged.
    Unreadable(String),
    /// The query must stop (`ksql.timestamp.throw.on.invalid`).
    Fatal(String),
}

impl SourceReader {
    /// The number of cells in the source's scope.
    pub fn width(&self) -> usize {
        self.key_count + self.value_count + 3 + if self.key_window.is_some() { 2 } else { 0 }
    }

    /// Reads one record into the source's scope.
    pub fn read(&self, record: &InputRecord, fail_on_invalid_timestamp: bool) -> ReadOutcome {
        let scope_width = self.width();
        let mut no_key = false;
        let (key_bytes, window) = match (self.key_window, record.key.as_deref()) {
            (Some(kind), Some(bytes)) => match kind.split(bytes) {
                Ok((key, window)) => (Some(key), Some(window)),
                Err(message) => return ReadOutcome::Unreadable(message),
            },
            (_, bytes) => (bytes, None),
        };
        let key = match self.key.deserialize(key_bytes) {
            Ok(Some(values)) => values,
            // A table's row needs its primary key.
            Ok(None) if self.table => return ReadOutcome::Skipped,
            Ok(None) => {
                no_key = true;
                vec![Value::Null; self.key_count]
            }
            Err(e) => return ReadOutcome::Unreadable(e.0),
        };
        let (value, tombstone) = match self.value.deserialize(record.value.as_deref()) {
            Ok(Some(values)) => (values, false),
            // A stream passes tombstones on (as a record without a value).
            Ok(None) => (vec![Value::Null; self.value_count], true),
            Err(e) => return ReadOutcome::Unreadable(e.0),
        };
        // Room for the pseudo-columns and window bounds pushed below.
        let mut row: Vec<Value> = Vec::with_capacity(scope_width);
        row.extend(key);
        row.extend(value);
        row.resize(self.key_count + self.value_count, Value::Null);
        let timestamp = match &self.input_timestamp {
            InputTimestamp::Record => record.timestamp,
            InputTimestamp::Column { index, format } => {
                match timestamp_of(&row[*index], format.as_ref()) {
                    Ok(Some(t)) => t,
                    Ok(None) => return ReadOutcome::Skipped,
                    // `ksql.timestamp.throw.on.invalid`: the query stops, as Kafka Streams
                    // does on a failing extractor.
                    Err(message) if fail_on_invalid_timestamp => {
                        return ReadOutcome::Fatal(format!(
                            "Fatal user code error in TimestampExtractor callback for record {}-{}@{}: {message}",
                            record.topic, record.partition, record.offset
                        ))
                    }
                    Err(message) => return ReadOutcome::Unreadable(message),
                }
            }
        };
        if timestamp < 0 {
            return ReadOutcome::Skipped;
        }
        if tombstone {
            // ksqlDB keeps the pseudo-columns in the value: a tombstone has none.
            row.extend([Value::Null, Value::Null, Value::Null]);
        } else {
            row.push(Value::BigInt(timestamp));
            row.push(Value::Integer(record.partition));
            row.push(Value::BigInt(record.offset));
        }
        if self.key_window.is_some() {
            let (start, end) = window.map_or((Value::Null, Value::Null), |(s, e)| {
                (Value::BigInt(s), Value::BigInt(e))
            });
            row.push(start);
            row.push(end);
        }
        ReadOutcome::Row(ReadRow {
            cells: row,
            timestamp,
            tombstone,
            keyless: no_key,
            window,
        })
    }
}

/// A stateless stream query: source -> WHERE -> SELECT / PARTITION BY -> sink.
pub struct StreamTopology {
    pub source: SourceReader,
    pub sink_topic: Option<String>,
    pub filter: Option<CompiledExpr>,
    pub key_projection: Vec<CompiledExpr>,
    /// PARTITION BY: the key is computed, not the input's.
    pub rekeyed: bool,
    /// A push query: ksqlDB's push queries over streams skip records without a value.
    pub push: bool,
    /// `ksql.timestamp.throw.on.invalid`: an unreadable timestamp stops the query.
    pub fail_on_invalid_timestamp: bool,
    /// Why the query stopped, when it did: it reads nothing more (its runtime reports it).
    pub failed: Option<String>,
    pub value_projection: Vec<CompiledExpr>,
    /// GROUP BY: the rows update aggregates, and the aggregates' changes are the output (the
    /// projections above are then unused: the stage has its own, over the aggregate's row).
    pub aggregation: Option<AggregationStage>,
    /// A join's stages, one per source after the first (whose records then come in too):
    /// the first joins this query's source with the second source, each later one joins the
    /// rows of the stage before with the next source.
    pub joins: Vec<JoinStage>,
    /// A table query with a filter: the keys whose row passed it last (encoded).
    pub passing: std::collections::HashSet<Vec<u8>>,
    /// How the sink's keys carry a window: the source's for a stream over a windowed source,
    /// the query's for a windowed aggregation.
    pub sink_window: Option<KeyWindow>,
    /// Where the aggregation's state changes go (set by a runtime that restores state).
    pub changelog_topic: Option<String>,
    /// The runtime takes the changelog's records itself when it commits
    /// ([`StreamTopology::defer_changelog`]); otherwise each batch's go with its results.
    pub changelog_deferred: bool,
    /// The latest result timestamp since the changelog was last taken (its records' time).
    pub changelog_timestamp: i64,
    /// A table sink's rows, kept for pull queries (`None` for streams).
    pub materialized: Option<Materialized>,
    pub sink_key: Option<RecordSerde>,
    pub sink_value: Option<RecordSerde>,
    pub output_timestamp: OutputTimestamp,
    pub limit: Option<u64>,
    pub stats: QueryStats,
    pub errors: Vec<ProcessingError>,
    /// Emptied batch columns kept for the next batch: allocating ~40 columns of 10,000 cells
    /// anew for every batch made the allocator hand memory back and fault it in again (~7 % of
    /// a CSAS's time).
    pub spare_columns: Vec<Vec<Value>>,
}

/// The most processing errors a query keeps (older ones are dropped, counts stay exact).
const KEPT_ERRORS: usize = 1000;

impl StreamTopology {
    /// The topics the query reads: its source's, then each joined source's (once each).
    pub fn topics(&self) -> Vec<String> {
        let mut topics = vec![self.source.topic.clone()];
        for stage in &self.joins {
            if !topics.contains(&stage.right.topic) {
                topics.push(stage.right.topic.clone());
            }
        }
        topics
    }

    /// Which source of a join a record of `topic` belongs to: 0 for the query's own source,
    /// `i` for the right side of stage `i - 1` (a topic two sources share is the first's).
    fn join_source(&self, topic: &str) -> usize {
        if topic == self.source.topic {
            return 0;
        }
        self.joins
            .iter()
            .position(|stage| stage.right.topic == topic)
            .map_or(0, |stage| stage + 1)
    }

    /// Reads a record of join source `source` (see `join_source`) into its scope.
    fn read_join_source(&self, source: usize, record: &InputRecord) -> ReadOutcome {
        match chain_entry(source) {
            (_, Side::Left) => self.source.read(record, self.fail_on_invalid_timestamp),
            (stage, Side::Right) => {
                self.joins[stage].read_right(record, self.fail_on_invalid_timestamp)
            }
        }
    }

    /// Whether a LIMIT has been reached (the query is done).
    pub fn is_done(&self) -> bool {
        self.limit
            .is_some_and(|limit| self.stats.records_out >= limit)
    }

    fn log(&mut self, record: &InputRecord, message: String) {
        if self.errors.len() >= KEPT_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(ProcessingError {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            message,
        });
    }

    /// Counts the cells that failed to compute, and logs the first few with their records.
    fn log_expression_errors(&mut self, errors: &[RowError], kept: &[&InputRecord]) {
        self.stats.expression_errors += errors.len() as u64;
        for error in errors.iter().take(16) {
            if let Some(record) = kept.get(error.row) {
                let record = (*record).clone();
                self.log(
                    &record,
                    format!("Error computing expression: {}", error.message),
                );
            }
        }
    }

    /// Runs records through the query, returning result rows (push queries).
    pub fn process_rows(&mut self, records: &[InputRecord]) -> Vec<ResultRow> {
        let scope_width = self
            .joins
            .last()
            .map_or(self.source.width(), JoinStage::width);
        // The rows are a table's (its deletes are rows too).
        let table = self
            .joins
            .last()
            .map_or(self.source.table, JoinStage::produces_table);
        // Not `vec![Vec::with_capacity(n); width]`: a clone keeps no capacity, and growing the
        // columns cell by cell was a tenth of a query's time in realloc.
        let mut batch = Batch {
            columns: (0..scope_width)
                .map(|_| match self.spare_columns.pop() {
                    Some(mut column) => {
                        column.reserve(records.len());
                        column
                    }
                    None => Vec::with_capacity(records.len()),
                })
                .collect(),
            rows: 0,
        };
        let mut kept: Vec<&InputRecord> = Vec::with_capacity(records.len());
        let mut timestamps: Vec<i64> = Vec::with_capacity(records.len());
        let mut tombstones: Vec<bool> = Vec::with_capacity(records.len());
        let mut keyless: Vec<bool> = Vec::with_capacity(records.len());
        let mut windows: Vec<Option<(i64, i64)>> = Vec::with_capacity(records.len());
        for record in records {
            if self.failed.is_some() {
                break;
            }
            self.stats.records_in += 1;
            // A join's records come from any of its sources.
            let join_source = (!self.joins.is_empty()).then(|| self.join_source(&record.topic));
            let outcome = match join_source {
                Some(source) => self.read_join_source(source, record),
                None => self.source.read(record, self.fail_on_invalid_timestamp),
            };
            let read = match outcome {
                ReadOutcome::Row(row) => row,
                ReadOutcome::Skipped => {
                    self.stats.skipped += 1;
                    continue;
                }
                ReadOutcome::Unreadable(message) => {
                    self.stats.skipped += 1;
                    self.log(record, message);
                    continue;
                }
                ReadOutcome::Fatal(message) => {
                    self.stats.skipped += 1;
                    self.failed = Some(message);
                    break;
                }
            };
            // One row, or a join's (no Vec for the one).
            let (one, joined) = match join_source {
                Some(source) => (None, run_chain(&mut self.joins, source, read)),
                None => (Some(read), Vec::new()),
            };
            for row in one.into_iter().chain(joined.into_iter().map(ReadRow::from)) {
                for (column, value) in batch.columns.iter_mut().zip(row.cells) {
                    column.push(value);
                }
                batch.rows += 1;
                kept.push(record);
                timestamps.push(row.timestamp);
                tombstones.push(row.tombstone);
                keyless.push(row.keyless);
                windows.push(row.window);
            }
        }
        let mut errors: Vec<RowError> = Vec::new();
        if let Some(filter) = &self.filter {
            let keep = eval_column(filter, &batch, &mut errors);
            let mut selected: Vec<usize> = Vec::with_capacity(batch.rows);
            for row in 0..batch.rows {
                // A filter passes no tombstones.
                let passes = keep[row] == Value::Boolean(true) && !tombstones[row];
                if !table {
                    if passes {
                        selected.push(row);
                    }
                    continue;
                }
                // A table's row that stops passing is deleted downstream; one that never
                // passed is not sent at all.
                let key = crate::aggregate::stage::encode_group(
                    if self.joins.is_empty() {
                        &batch.columns[..self.source.key_count]
                    } else {
                        &batch.columns[batch.columns.len() - 1..]
                    }
                    .iter()
                    .map(|c| c[row].clone())
                    .collect::<Vec<_>>()
                    .as_slice(),
                );
                if passes {
                    self.passing.insert(key);
                    selected.push(row);
                } else if self.passing.remove(&key) {
                    tombstones[row] = true;
                    selected.push(row);
                }
            }
            if selected.len() != batch.rows {
                // Moved, not cloned: the dropped rows' cells are not needed any more.
                batch = Batch {
                    columns: batch
                        .columns
                        .into_iter()
                        .map(|mut c| {
                            selected
                                .iter()
                                .map(|&i| std::mem::take(&mut c[i]))
                                .collect()
                        })
                        .collect(),
                    rows: selected.len(),
                };
                kept = selected.iter().map(|&i| kept[i]).collect();
                timestamps = selected.iter().map(|&i| timestamps[i]).collect();
                tombstones = selected.iter().map(|&i| tombstones[i]).collect();
                keyless = selected.iter().map(|&i| keyless[i]).collect();
                windows = selected.iter().map(|&i| windows[i]).collect();
            }
        }
        if let Some(stage) = self.aggregation.as_mut() {
            let rows = stage.process(&batch, &timestamps, &tombstones, self.push, &mut errors);
            self.keep_spare_columns(batch.columns.into_iter());
            let stage = self.aggregation.as_mut().expect("aggregating");
            if let Some(failure) = &stage.failure {
                self.failed.get_or_insert_with(|| failure.clone());
            }
            self.log_expression_errors(&errors, &kept);
            let rows: Vec<ResultRow> = match self.limit {
                Some(limit) => rows
                    .into_iter()
                    .take(limit.saturating_sub(self.stats.records_out) as usize)
                    .collect(),
                None => rows,
            };
            self.stats.records_out += rows.len() as u64;
            return rows;
        }
        let mut projected = project(
            self.key_projection.iter().chain(&self.value_projection),
            &mut batch,
            &mut errors,
        );
        let mut values = projected.split_off(self.key_projection.len());
        let keys = projected;
        self.log_expression_errors(&errors, &kept);
        // A tombstone has no value: a new key reading more than the input's key is NULL.
        let key_only: Vec<bool> = self
            .key_projection
            .iter()
            // A join's key (its last cell) is known for its deletes too.
            .map(|e| {
                !self.joins.is_empty() || columns_used(e).iter().all(|&i| i < self.source.key_count)
            })
            .collect();
        let mut rows = Vec::with_capacity(batch.rows);
        for row in 0..batch.rows {
            if self.is_done() {
                break;
            }
            // A push query over a table shows deletes (as tombstone rows); over a stream, none.
            if self.push && tombstones[row] && !table {
                self.stats.skipped += 1;
                continue;
            }
            let key: Vec<Value> = keys
                .iter()
                .zip(&key_only)
                .map(|(c, key_only)| {
                    if tombstones[row] && self.rekeyed && !key_only {
                        Value::Null
                    } else {
                        c[row].clone()
                    }
                })
                .collect();
            // Each cell goes to exactly one row: moved out of its column.
            let value: Vec<Value> = values
                .iter_mut()
                .map(|c| std::mem::take(&mut c[row]))
                .collect();
            let timestamp = match &self.output_timestamp {
                OutputTimestamp::Input => timestamps[row],
                OutputTimestamp::Column {
                    index,
                    key: in_key,
                    format,
                } => {
                    let cell = if *in_key {
                        &key[*index]
                    } else {
                        &value[*index]
                    };
                    match timestamp_of(cell, format.as_ref()) {
                        // Kafka takes no negative timestamps: ksqlDB drops the record.
                        Ok(Some(t)) if t >= 0 => t,
                        _ => {
                            self.stats.skipped += 1;
                            continue;
                        }
                    }
                }
            };
            self.stats.records_out += 1;
            rows.push(ResultRow {
                key,
                key_absent: keyless[row] && !self.rekeyed,
                window: windows[row],
                value,
                tombstone: tombstones[row],
                timestamp,
            });
        }
        self.keep_spare_columns([batch.columns, keys, values].into_iter().flatten());
        rows
    }

    /// Keeps emptied columns for the next batch (as many as a batch reads).
    fn keep_spare_columns(&mut self, columns: impl Iterator<Item = Vec<Value>>) {
        let wanted = self
            .joins
            .last()
            .map_or(self.source.width(), JoinStage::width);
        for mut column in columns {
            if self.spare_columns.len() >= wanted {
                break;
            }
            if column.capacity() > 0 {
                column.clear();
                self.spare_columns.push(column);
            }
        }
    }

    /// Runs records through the query and serialises the results for the sink topic.
    pub fn process(&mut self, records: &[InputRecord]) -> Vec<OutputRecord> {
        let rows = self.process_rows(records);
        let (Some(sink_topic), Some(sink_key), Some(sink_value)) =
            (self.sink_topic.clone(), &self.sink_key, &self.sink_value)
        else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut failures = Vec::new();
        let mut position = Vec::new();
        for row in rows {
            let value = if row.tombstone {
                Ok(None)
            } else {
                sink_value.serialize(&row.value)
            };
            // A single NULL key column is written as no key (several are written as a
            // record of NULLs).
            let key = if row.key_absent || (row.key.len() == 1 && row.key[0].is_null()) {
                Ok(None)
            } else {
                sink_key.serialize(&row.key)
            };
            if let (Some(materialized), Ok(Some(bytes))) = (self.materialized.as_mut(), &key) {
                let partition = crate::partitioner::partition_for(bytes, materialized.partitions);
                position.clear();
                position.extend_from_slice(&partition.to_be_bytes());
                position.extend_from_slice(bytes);
                if let Some((start, end)) = row.window {
                    position.extend_from_slice(&start.to_be_bytes());
                    position.extend_from_slice(&end.to_be_bytes());
                }
                // The row is serialised already: its cells move into the store.
                if row.tombstone {
                    materialized.rows.remove(position.as_slice());
                } else if let Some(kept) = materialized.rows.get_mut(position.as_slice()) {
                    // Most results update a row the store has (the same key and window).
                    kept.value = row.value;
                    kept.timestamp = row.timestamp;
                } else {
                    materialized.rows.insert(
                        SmallKey::from(position.as_slice()),
                        MaterializedRow {
                            key: row.key,
                            window: row.window,
                            value: row.value,
                            timestamp: row.timestamp,
                        },
                    );
                }
            }
            // A windowed source's sink keys keep the window.
            let key = match (key, self.sink_window, row.window) {
                (Ok(Some(bytes)), Some(kind), Some(window)) => Ok(Some(kind.join(bytes, window))),
                (key, _, _) => key,
            };
            match (key, value) {
                (Ok(key), Ok(value)) => out.push(OutputRecord {
                    topic: sink_topic.clone(),
                    timestamp: row.timestamp,
                    key,
                    value,
                }),
                (Err(e), _) | (_, Err(e)) => failures.push(e.0),
            }
        }
        for message in failures {
            self.stats.skipped += 1;
            let record = InputRecord {
                topic: self.source.topic.clone(),
                partition: -1,
                offset: -1,
                timestamp: 0,
                key: None,
                value: None,
            };
            self.log(
                &record,
                format!("Error serializing record for topic {sink_topic}: {message}"),
            );
        }
        self.changelog_timestamp = out
            .iter()
            .map(|o| o.timestamp)
            .fold(self.changelog_timestamp, i64::max);
        // The state this batch changed goes to the changelog with the sink's records, so that
        // both are acknowledged before the batch's offsets are committed.
        if !self.changelog_deferred {
            out.extend(self.take_changelog_records());
        }
        out
    }

    /// The aggregation's state that changed since the last call, as records of its changelog
    /// (none when it keeps none). Their offsets may be committed once these are acknowledged.
    pub fn take_changelog_records(&mut self) -> Vec<OutputRecord> {
        let (Some(topic), Some(stage)) = (&self.changelog_topic, self.aggregation.as_mut()) else {
            return Vec::new();
        };
        let timestamp = std::mem::take(&mut self.changelog_timestamp);
        stage
            .take_changelog()
            .into_iter()
            .map(|(key, value)| OutputRecord {
                topic: topic.clone(),
                timestamp,
                key: Some(key),
                value,
            })
            .collect()
    }

    /// From now on `process` leaves the changelog's records to `take_changelog_records`: a
    /// runtime that commits on an interval takes them when it commits, so a group that many
    /// batches updated in between is written once (Kafka Streams' caching stores flush so).
    pub fn defer_changelog(&mut self) {
        self.changelog_deferred = true;
    }

    /// Whether state changed that the changelog has not had yet.
    pub fn changelog_pending(&self) -> bool {
        self.changelog_topic.is_some()
            && self
                .aggregation
                .as_ref()
                .is_some_and(AggregationStage::changelog_pending)
    }

    /// Keeps the aggregation's state in `topic` (a compacted changelog) from now on.
    pub fn keep_changelog(&mut self, topic: &str) {
        if let Some(stage) = self.aggregation.as_mut() {
            stage.keep_changelog();
            self.changelog_topic = Some(topic.to_string());
        }
    }

    /// The topics a query reads to their end before it starts: a join's table sides (a stream
    /// record then finds the table rows written before it), and when it resumes an earlier
    /// run (`resuming`), its changelog and its sink (a table's rows, for pull queries).
    pub fn restore_topics(&self, resuming: bool) -> Vec<String> {
        let mut topics = Vec::new();
        if resuming && self.aggregation.is_some() {
            topics.extend(self.changelog_topic.clone());
        }
        if resuming && self.materialized.is_some() {
            topics.extend(self.sink_topic.clone());
        }
        if self.joins.first().is_some_and(|stage| stage.left_table) {
            topics.push(self.source.topic.clone());
        }
        for stage in &self.joins {
            if stage.right_table {
                topics.push(stage.right.topic.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        topics.retain(|topic| seen.insert(topic.clone()));
        topics
    }

    /// Applies one record of a `restore_topics` topic to the query's state.
    pub fn restore(&mut self, record: &InputRecord) -> Result<(), String> {
        let at = || format!("{}-{}@{}", record.topic, record.partition, record.offset);
        if self.changelog_topic.as_deref() == Some(record.topic.as_str()) {
            if let (Some(stage), Some(key)) = (self.aggregation.as_mut(), &record.key) {
                stage
                    .restore_changelog(key, record.value.as_deref())
                    .map_err(|e| format!("cannot restore from the changelog at {}: {e}", at()))?;
            }
            return Ok(());
        }
        if self.sink_topic.as_deref() == Some(record.topic.as_str()) {
            return self
                .restore_materialized(record)
                .map_err(|e| format!("cannot restore the table's rows from {}: {e}", at()));
        }
        if self.joins.is_empty() {
            return Ok(());
        }
        let source = self.join_source(&record.topic);
        if let ReadOutcome::Row(row) = self.read_join_source(source, record) {
            let (stage, side) = chain_entry(source);
            self.joins[stage].restore(side, row);
        }
        Ok(())
    }

    /// Ends a restore: a table-table join works out which keys have a joined row, and a later
    /// stage whose left side is such a join keeps its rows.
    pub fn finish_restore(&mut self) {
        for at in 0..self.joins.len() {
            if at > 0 && self.joins[at].left_table {
                for row in self.joins[at - 1].current_rows() {
                    self.joins[at].restore(Side::Left, row.into());
                }
            }
            let stage = &mut self.joins[at];
            if stage.left_table && stage.right_table {
                stage.rebuild_joined();
            }
        }
    }

    /// A table sink's record back into its kept rows (and its WHERE's passing keys).
    fn restore_materialized(&mut self, record: &InputRecord) -> Result<(), String> {
        let (Some(materialized), Some(sink_key), Some(sink_value)) =
            (self.materialized.as_mut(), &self.sink_key, &self.sink_value)
        else {
            return Ok(());
        };
        let Some(bytes) = record.key.as_deref() else {
            return Ok(());
        };
        let (key_bytes, window) = match self.sink_window {
            Some(kind) => {
                let (key, window) = kind.split(bytes)?;
                (key, Some(window))
            }
            None => (bytes, None),
        };
        let key = sink_key
            .deserialize(Some(key_bytes))
            .map_err(|e| e.0)?
            .unwrap_or_default();
        let partition = crate::partitioner::partition_for(key_bytes, materialized.partitions);
        let mut position = partition.to_be_bytes().to_vec();
        position.extend_from_slice(key_bytes);
        if let Some((start, end)) = window {
            position.extend_from_slice(&start.to_be_bytes());
            position.extend_from_slice(&end.to_be_bytes());
        }
        let passing_key = crate::aggregate::stage::encode_group(&key);
        match sink_value
            .deserialize(record.value.as_deref())
            .map_err(|e| e.0)?
        {
            Some(value) => {
                materialized.rows.insert(
                    SmallKey::from(position.as_slice()),
                    MaterializedRow {
                        key,
                        window,
                        value,
                        timestamp: record.timestamp,
                    },
                );
                if self.filter.is_some() {
                    self.passing.insert(passing_key);
                }
            }
            None => {
                materialized.rows.remove(position.as_slice());
                self.passing.remove(&passing_key);
            }
        }
        Ok(())
    }
}

/// Evaluates each projection over `batch`. A column that only one projection reads, as it is,
/// is moved out of the batch instead of copied (most of a `SELECT a, b, c` is such columns),
/// so `batch` is spent afterwards.
pub(crate) fn project<'a>(
    projections: impl Iterator<Item = &'a CompiledExpr> + Clone,
    batch: &mut Batch,
    errors: &mut Vec<RowError>,
) -> Vec<Vec<Value>> {
    let mut readers = vec![0usize; batch.columns.len()];
    for expr in projections.clone() {
        for index in columns_used(expr) {
            readers[index] += 1;
        }
    }
    let movable = |expr: &CompiledExpr| match expr {
        CompiledExpr::Column(index) if readers[*index] == 1 => Some(*index),
        _ => None,
    };
    let mut results: Vec<Option<Vec<Value>>> = projections
        .clone()
        .map(|expr| match movable(expr) {
            Some(_) => None,
            None => Some(eval_column(expr, batch, errors)),
        })
        .collect();
    for (result, expr) in results.iter_mut().zip(projections) {
        if let Some(index) = movable(expr) {
            *result = Some(std::mem::take(&mut batch.columns[index]));
        }
    }
    results.into_iter().map(Option::unwrap_or_default).collect()
}

/// A timestamp column's value in epoch milliseconds: BIGINT as is, TIMESTAMP, or a string in
/// the column's `timestamp_format`. `Ok(None)` for NULL.
pub fn timestamp_of(
    value: &Value,
    format: Option<&TimestampFormat>,
) -> Result<Option<i64>, String> {
    Ok(match value {
        Value::Null => None,
        Value::BigInt(v) => Some(*v),
        Value::Integer(v) => Some(*v as i64),
        Value::Timestamp(v) => Some(*v),
        Value::String(text) => match format {
            Some(format) => match format
                .parser
                .call(&[value.clone(), Value::String(format.pattern.clone())])?
            {
                Value::BigInt(t) | Value::Timestamp(t) => Some(t),
                _ => {
                    return Err(format!(
                        "Cannot parse timestamp '{text}' with format '{}'",
                        format.pattern
                    ))
                }
            },
            None => Some(text.trim().parse::<i64>().map_err(|_| {
                format!("Cannot parse timestamp '{text}' without a timestamp_format")
            })?),
        },
        other => {
            return Err(format!(
                "Timestamp column has an unsupported value {other:?}"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_keys_carry_their_window_as_kafka_streams_writes_it() {
        let session = KeyWindow::Session.join(b"k".to_vec(), (12, 465));
        assert_eq!(session.len(), 17);
        assert_eq!(&session[1..9], &465i64.to_be_bytes());
        assert_eq!(
            KeyWindow::Session.split(&session),
            Ok((&b"k"[..], (12, 465)))
        );
        let time = KeyWindow::Time { size_ms: 1000 };
        let bytes = time.join(b"k".to_vec(), (2000, 0));
        assert_eq!(bytes.len(), 9);
        assert_eq!(time.split(&bytes), Ok((&b"k"[..], (2000, 3000))));
        assert!(KeyWindow::Session.split(b"short").is_err());
    }
}
