//! The stateful step of an aggregate query: rows (already filtered by `WHERE`) update one
//! aggregate per group and window, and each update is a row of the result table: ksqlDB's
//! `EMIT CHANGES`, one output per input, or, with `EMIT FINAL`, one per window once it closes.
//!
//! State is kept in memory per query. A window is dropped once it closes (it can take no more
//! records); non-windowed groups live as long as the query.

use std::borrow::Cow;
use std::sync::Arc;

use hashbrown::hash_map::RawEntryMut;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::snapshot::{self, decode_value, encode_value, FORMAT_VERSION};
use super::udaf::{Accumulator, AggregateFunction};
use super::window::{WindowKind, WindowSpec};
use crate::expr::{eval_column, Batch, CompiledExpr};
use crate::functions::RowError;
use crate::small_key::SmallKey;
use crate::topology::ResultRow;
use crate::value::Value;

/// One aggregate function call of the query, with its column arguments over the source scope.
pub struct AggregateCall {
    pub function: Arc<AggregateFunction>,
    pub args: Vec<CompiledExpr>,
}

/// What the planner decides about an aggregation.
///
/// `having`, `key_projection` and `value_projection` read the aggregate's row: the grouping
/// values, then the calls' results, then WINDOWSTART and WINDOWEND.
pub struct AggregationPlan {
    pub group_by: Vec<CompiledExpr>,
    pub calls: Vec<AggregateCall>,
    pub window: Option<WindowSpec>,
    pub having: Option<CompiledExpr>,
    pub key_projection: Vec<CompiledExpr>,
    pub value_projection: Vec<CompiledExpr>,
    /// `EMIT FINAL`: a window's result is sent once, when it closes.
    pub emit_final: bool,
    /// The source is a table with this many key columns (its updates replace rows).
    pub table_key_count: Option<usize>,
}

/// The aggregation of a `GROUP BY` (or of a whole stream: no grouping columns): its plan and
/// its state.
pub struct AggregationStage {
    pub plan: AggregationPlan,
    /// Records outside every window that would take them (after the grace period).
    pub late_records: u64,
    /// Records dropped because a grouping value was NULL or failed to compute.
    pub null_groups: u64,
    /// An aggregate function failed (ksqlDB's query then stops): the message.
    pub failure: Option<String>,
    /// A table source's rows as last aggregated, by primary key (the first `key_count` columns
    /// of a row): an update or delete takes the old row back out of its group first.
    table_rows: Option<TableRows>,
    /// What changed since the changelog was last taken (`None`: no changelog kept).
    dirty: Option<Dirty>,
    /// hashbrown's map for its raw entries: an update finds or makes its group in one lookup.
    groups: hashbrown::HashMap<GroupKey, Aggregate, rustc_hash::FxBuildHasher>,
    sessions: HashMap<Vec<u8>, Vec<Aggregate>>,
    /// The largest record timestamp seen: windows close by it.
    stream_time: i64,
    /// Emptied snapshot columns, kept for the next batch: allocating them anew for each made
    /// glibc return their memory and fault it back in.
    spare_columns: Vec<Vec<Value>>,
}

struct TableRows {
    key_count: usize,
    /// Primary key encoded -> (grouping values, the calls' argument values).
    rows: HashMap<Vec<u8>, TableRow>,
}

/// The state that changed since the changelog was last taken.
#[derive(Default)]
struct Dirty {
    /// Groups whose aggregate changed (each once: its `changed` flag says it is listed) or
    /// went away.
    groups: Vec<GroupKey>,
    sessions: HashSet<Vec<u8>>,
    table_rows: HashSet<Vec<u8>>,
}

/// A table row's grouping values and the calls' argument values.
type TableRow = (Vec<Value>, Vec<Vec<Value>>);

/// A group's identity: its grouping values encoded, then its window's start (big-endian;
/// `i64::MIN` without a window). One byte string, so a lookup can borrow a reused buffer.
type GroupKey = SmallKey;

/// The bytes of a window start at the end of a [`GroupKey`].
const WINDOW_START_BYTES: usize = 8;

/// A column the aggregation reads: the batch's own when the expression is a column, else
/// computed.
type Column<'a> = Cow<'a, [Value]>;

#[derive(Debug)]
struct Aggregate {
    group: Vec<Value>,
    window: Option<(i64, i64)>,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// The largest timestamp of the records aggregated (the result's timestamp).
    timestamp: i64,
    /// The last result passed `HAVING` (so the next one failing it is a tombstone).
    emitted: bool,
    /// Changed since the changelog was last taken (and listed in `Dirty::groups`).
    changed: bool,
}

impl Clone for Aggregate {
    fn clone(&self) -> Self {
        Aggregate {
            group: self.group.clone(),
            window: self.window,
            accumulators: self.accumulators.iter().map(|a| a.box_clone()).collect(),
            timestamp: self.timestamp,
            emitted: self.emitted,
            changed: self.changed,
        }
    }
}

/// What one input row changed, in order.
enum Change {
    /// An aggregate's new result: the index of its snapshot.
    Updated { snapshot: usize },
    /// A session merged into another: its old window's row is deleted.
    Removed {
        group: Vec<Value>,
        window: (i64, i64),
        timestamp: i64,
        emitted: bool,
    },
}

/// The snapshots' rows and where each came from.
struct Snapshots {
    batch: Batch,
    windows: Vec<Option<(i64, i64)>>,
    timestamps: Vec<i64>,
    /// The aggregate each snapshot is of, to keep its `emitted` flag.
    owners: Vec<Owner>,
    /// The input row that made each snapshot (`usize::MAX` for a window closing), so that an
    /// expression's error names its record.
    inputs: Vec<usize>,
}

#[derive(Clone)]
enum Owner {
    Group(GroupKey),
    Session(Vec<u8>, (i64, i64)),
    /// Not looked up again: without HAVING every result passes, and a closed window's final
    /// result has no aggregate left.
    Untracked,
}

impl AggregationStage {
    pub fn new(plan: AggregationPlan) -> Self {
        AggregationStage {
            table_rows: plan.table_key_count.map(|key_count| TableRows {
                key_count,
                rows: HashMap::default(),
            }),
            plan,
            late_records: 0,
            null_groups: 0,
            failure: None,
            dirty: None,
            groups: Default::default(),
            sessions: HashMap::default(),
            stream_time: i64::MIN,
            spare_columns: Vec::new(),
        }
    }

    /// The number of groups (and windows) held.
    pub fn state_size(&self) -> usize {
        self.groups.len() + self.sessions.values().map(Vec::len).sum::<usize>()
    }

    /// Folds the batch's rows in, in order, and returns the result table's changes. `skip`
    /// marks rows that take no part (records without a value). `push`: tombstones are not
    /// returned (a push query shows rows only).
    pub fn process(
        &mut self,
        batch: &Batch,
        timestamps: &[i64],
        skip: &[bool],
        push: bool,
        errors: &mut Vec<RowError>,
    ) -> Vec<ResultRow> {
        let mut group_errors = Vec::new();
        let group_columns: Vec<Column> = self
            .plan
            .group_by
            .iter()
            .map(|e| column(e, batch, &mut group_errors))
            .collect();
        let mut group_failed = vec![false; batch.rows];
        for error in &group_errors {
            if let Some(failed) = group_failed.get_mut(error.row) {
                *failed = true;
            }
        }
        errors.extend(group_errors);
        let arg_columns: Vec<Vec<Column>> = self
            .plan
            .calls
            .iter()
            .map(|call| call.args.iter().map(|e| column(e, batch, errors)).collect())
            .collect();
        let width = self.plan.group_by.len() + self.plan.calls.len() + 2;
        let mut snapshots = Snapshots::new(width, &mut self.spare_columns);
        let mut changes = Vec::new();
        let mut args: Vec<Vec<Value>> = self
            .plan
            .calls
            .iter()
            .map(|c| Vec::with_capacity(c.args.len()))
            .collect();
        // The group's key, written into one buffer for every record.
        let mut key: Vec<u8> = Vec::new();
        for row in 0..batch.rows {
            if self.table_rows.is_some() {
                self.update_table_row(
                    batch,
                    row,
                    (&group_columns, &arg_columns, group_failed[row]),
                    (skip[row], timestamps[row]),
                    &mut snapshots,
                    &mut changes,
                );
                continue;
            }
            if skip[row] {
                continue;
            }
            if group_failed[row] || group_columns.iter().any(|c| c[row].is_null()) {
                self.null_groups += 1;
                continue;
            }
            let group = || group_columns.iter().map(|c| c[row].clone()).collect();
            for (values, columns) in args.iter_mut().zip(&arg_columns) {
                values.clear();
                values.extend(columns.iter().map(|c| c[row].clone()));
            }
            let timestamp = timestamps[row];
            self.stream_time = self.stream_time.max(timestamp);
            key.clear();
            for column in &group_columns {
                super::udaf::write_java_key(&column[row], &mut key);
            }
            let group_length = key.len();
            match self.plan.window.map(|w| w.kind) {
                None => {
                    key.extend_from_slice(&i64::MIN.to_be_bytes());
                    self.update_group(
                        &key,
                        group,
                        None,
                        (&args, timestamp, row),
                        &mut snapshots,
                        &mut changes,
                    );
                }
                Some(WindowKind::Session { gap_ms }) => {
                    self.update_session(
                        key.clone(),
                        group(),
                        gap_ms,
                        (&args, timestamp, row),
                        &mut snapshots,
                        &mut changes,
                    );
                }
                Some(_) => {
                    let spec = self.plan.window.expect("windowed");
                    let mut taken = false;
                    for window in spec.time_windows(timestamp) {
                        if spec.time_window_closed(window.1, self.stream_time) {
                            continue;
                        }
                        taken = true;
                        key.truncate(group_length);
                        key.extend_from_slice(&window.0.to_be_bytes());
                        self.update_group(
                            &key,
                            group,
                            Some(window),
                            (&args, timestamp, row),
                            &mut snapshots,
                            &mut changes,
                        );
                    }
                    if !taken {
                        self.late_records += 1;
                    }
                }
            }
        }
        let out = if self.plan.emit_final {
            // Updates are held until their window closes.
            self.closed_windows(push, errors)
        } else {
            self.results(snapshots, changes, push, errors)
        };
        self.evict_closed();
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn update_group(
        &mut self,
        key: &[u8],
        group: impl FnOnce() -> Vec<Value>,
        window: Option<(i64, i64)>,
        (args, timestamp, input): (&[Vec<Value>], i64, usize),
        snapshots: &mut Snapshots,
        changes: &mut Vec<Change>,
    ) {
        // Most records update a group that exists: one lookup, without copying its key.
        let calls = &self.plan.calls;
        let aggregate = match self.groups.raw_entry_mut().from_key(key) {
            RawEntryMut::Occupied(entry) => entry.into_mut(),
            RawEntryMut::Vacant(entry) => {
                let aggregate = Aggregate {
                    group: group(),
                    window,
                    accumulators: calls.iter().map(|c| c.function.new_accumulator()).collect(),
                    timestamp,
                    emitted: false,
                    changed: false,
                };
                entry.insert(GroupKey::from(key), aggregate).1
            }
        };
        for (accumulator, values) in aggregate.accumulators.iter_mut().zip(args) {
            accumulator.add(values);
            if let Some(message) = accumulator.failure() {
                self.failure.get_or_insert_with(|| message.to_string());
            }
        }
        aggregate.timestamp = aggregate.timestamp.max(timestamp);
        mark_changed(&mut self.dirty, key, aggregate);
        let owner = owner_of(self.plan.having.is_some(), key, aggregate);
        let snapshot = snapshots.push(aggregate, owner, input);
        changes.push(Change::Updated { snapshot });
    }

    /// A table's row changed (`deleted`: it is gone): its old values leave their group, its
    /// new ones join theirs. One result per group touched; one only when the group is the same.
    #[allow(clippy::type_complexity)]
    fn update_table_row(
        &mut self,
        batch: &Batch,
        row: usize,
        (group_columns, arg_columns, group_failed): (&[Column], &[Vec<Column>], bool),
        (deleted, timestamp): (bool, i64),
        snapshots: &mut Snapshots,
        changes: &mut Vec<Change>,
    ) {
        let table = self.table_rows.as_mut().expect("table source");
        let primary_key = encode_group(
            &batch.columns[..table.key_count]
                .iter()
                .map(|c| c[row].clone())
                .collect::<Vec<_>>(),
        );
        let old = table.rows.remove(&primary_key);
        if let Some(dirty) = self.dirty.as_mut() {
            dirty.table_rows.insert(primary_key.clone());
        }
        let group: Vec<Value> = group_columns.iter().map(|c| c[row].clone()).collect();
        let joins = !deleted && !group_failed && !group.iter().any(Value::is_null);
        if !deleted && !joins {
            self.null_groups += 1;
        }
        let args: Vec<Vec<Value>> = arg_columns
            .iter()
            .map(|columns| columns.iter().map(|c| c[row].clone()).collect())
            .collect();
        self.stream_time = self.stream_time.max(timestamp);
        let having = self.plan.having.is_some();
        if let Some((old_group, old_args)) = old {
            let key = group_key(&old_group, i64::MIN);
            match self.groups.get_mut(key.as_slice()) {
                Some(aggregate) => {
                    mark_changed(&mut self.dirty, &key, aggregate);
                    for (accumulator, values) in aggregate.accumulators.iter_mut().zip(&old_args) {
                        accumulator.undo(values);
                    }
                    aggregate.timestamp = aggregate.timestamp.max(timestamp);
                    // The same group takes the new values before its one result.
                    if !(joins && old_group == group) {
                        let owner = owner_of(having, &key, aggregate);
                        let snapshot = snapshots.push(aggregate, owner, row);
                        changes.push(Change::Updated { snapshot });
                    }
                }
                None => {
                    if let Some(dirty) = self.dirty.as_mut() {
                        dirty.groups.push(GroupKey::from(key.as_slice()));
                    }
                }
            }
        }
        if joins {
            let key = group_key(&group, i64::MIN);
            self.update_group(
                &key,
                || group.clone(),
                None,
                (&args, timestamp, row),
                snapshots,
                changes,
            );
            let table = self.table_rows.as_mut().expect("table source");
            table.rows.insert(primary_key, (group, args));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update_session(
        &mut self,
        encoded: Vec<u8>,
        group: Vec<Value>,
        gap_ms: i64,
        (args, timestamp, input): (&[Vec<Value>], i64, usize),
        snapshots: &mut Snapshots,
        changes: &mut Vec<Change>,
    ) {
        let spec = self.plan.window.expect("session window");
        if let Some(dirty) = self.dirty.as_mut() {
            dirty.sessions.insert(encoded.clone());
        }
        let sessions = self.sessions.entry(encoded.clone()).or_default();
        // Sessions within the gap of the record merge with it (Kafka Streams' findSessions).
        let (mut merging, kept): (Vec<Aggregate>, Vec<Aggregate>) =
            std::mem::take(sessions).into_iter().partition(|s| {
                let (start, end) = s.window.expect("session");
                end >= timestamp - gap_ms && start <= timestamp + gap_ms
            });
        *sessions = kept;
        let start = merging
            .iter()
            .map(|s| s.window.expect("session").0)
            .fold(timestamp, i64::min);
        let end = merging
            .iter()
            .map(|s| s.window.expect("session").1)
            .fold(timestamp, i64::max);
        if spec.session_closed(end, self.stream_time) {
            // Too late: the sessions stay as they were.
            self.late_records += 1;
            sessions.append(&mut merging);
            return;
        }
        let mut merged = Aggregate {
            group,
            window: Some((start, end)),
            accumulators: self
                .plan
                .calls
                .iter()
                .map(|c| c.function.new_accumulator())
                .collect(),
            timestamp,
            emitted: false,
            changed: false,
        };
        merging.sort_by_key(|s| s.window.expect("session").0);
        for old in &merging {
            for (into, from) in merged.accumulators.iter_mut().zip(&old.accumulators) {
                into.merge(from.as_ref());
            }
            merged.timestamp = merged.timestamp.max(old.timestamp);
            changes.push(Change::Removed {
                group: old.group.clone(),
                window: old.window.expect("session"),
                timestamp: old.timestamp,
                emitted: old.emitted,
            });
        }
        for (accumulator, values) in merged.accumulators.iter_mut().zip(args) {
            accumulator.add(values);
            if let Some(message) = accumulator.failure() {
                self.failure.get_or_insert_with(|| message.to_string());
            }
        }
        let snapshot = snapshots.push(&merged, Owner::Session(encoded, (start, end)), input);
        changes.push(Change::Updated { snapshot });
        sessions.push(merged);
    }

    /// Evaluates HAVING and the projection over the snapshots and turns the changes into rows.
    fn results(
        &mut self,
        snapshots: Snapshots,
        changes: Vec<Change>,
        push: bool,
        outer_errors: &mut Vec<RowError>,
    ) -> Vec<ResultRow> {
        let Snapshots {
            mut batch,
            windows,
            timestamps,
            owners,
            inputs,
        } = snapshots;
        let mut snapshot_errors = Vec::new();
        let errors = &mut snapshot_errors;
        let having = self
            .plan
            .having
            .as_ref()
            .map(|h| eval_column(h, &batch, errors));
        // The snapshots are spent on the key and value columns (moved where read once).
        let plan = &self.plan;
        let mut keys = crate::topology::project(
            plan.key_projection.iter().chain(&plan.value_projection),
            &mut batch,
            errors,
        );
        let mut values = keys.split_off(plan.key_projection.len());
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Updated { snapshot } => {
                    let passes = having
                        .as_ref()
                        .is_none_or(|h| h[snapshot] == Value::Boolean(true));
                    let was_emitted = self.set_emitted(&owners[snapshot], passes);
                    let key: Vec<Value> = keys
                        .iter_mut()
                        .map(|c| std::mem::take(&mut c[snapshot]))
                        .collect();
                    if passes {
                        rows.push(ResultRow {
                            key,
                            key_absent: false,
                            window: windows[snapshot],
                            value: values
                                .iter_mut()
                                .map(|c| std::mem::take(&mut c[snapshot]))
                                .collect(),
                            tombstone: false,
                            timestamp: timestamps[snapshot],
                        });
                    } else if was_emitted && !push {
                        rows.push(self.tombstone(key, windows[snapshot], timestamps[snapshot]));
                    }
                }
                Change::Removed {
                    group,
                    window,
                    timestamp,
                    emitted,
                } => {
                    if push || (self.plan.having.is_some() && !emitted) {
                        continue;
                    }
                    let key = self.key_of(&group, window, errors);
                    rows.push(self.tombstone(key, Some(window), timestamp));
                }
            }
        }
        outer_errors.extend(snapshot_errors.into_iter().map(|e| RowError {
            row: inputs.get(e.row).copied().unwrap_or(usize::MAX),
            message: e.message,
        }));
        let width = batch.columns.len();
        for mut column in [keys, values, batch.columns].into_iter().flatten() {
            if self.spare_columns.len() >= width {
                break;
            }
            // A column moved out of the snapshots left one without capacity behind.
            if column.capacity() > 0 {
                column.clear();
                self.spare_columns.push(column);
            }
        }
        rows
    }

    fn tombstone(&self, key: Vec<Value>, window: Option<(i64, i64)>, timestamp: i64) -> ResultRow {
        ResultRow {
            key,
            key_absent: false,
            window,
            value: vec![Value::Null; self.plan.value_projection.len()],
            tombstone: true,
            timestamp,
        }
    }

    /// The output key of a group that has no snapshot in this batch (a merged-away session).
    fn key_of(
        &self,
        group: &[Value],
        window: (i64, i64),
        errors: &mut Vec<RowError>,
    ) -> Vec<Value> {
        let mut columns: Vec<Vec<Value>> = group.iter().map(|v| vec![v.clone()]).collect();
        columns.extend(self.plan.calls.iter().map(|_| vec![Value::Null]));
        columns.push(vec![Value::BigInt(window.0)]);
        columns.push(vec![Value::BigInt(window.1)]);
        let batch = Batch { columns, rows: 1 };
        self.plan
            .key_projection
            .iter()
            .map(|e| eval_column(e, &batch, errors).pop().unwrap_or_default())
            .collect()
    }

    /// Records whether the aggregate's latest result passed HAVING; returns the previous answer.
    fn set_emitted(&mut self, owner: &Owner, passes: bool) -> bool {
        let aggregate = match owner {
            Owner::Group(key) => self.groups.get_mut(key),
            Owner::Untracked => None,
            Owner::Session(encoded, window) => self
                .sessions
                .get_mut(encoded)
                .and_then(|s| s.iter_mut().find(|a| a.window == Some(*window))),
        };
        match aggregate {
            Some(aggregate) => std::mem::replace(&mut aggregate.emitted, passes),
            // Evicted in this batch already: it had been emitted if it passed before.
            None => false,
        }
    }

    /// `EMIT FINAL`: the results of the windows that closed, in the order they close.
    fn closed_windows(&mut self, push: bool, errors: &mut Vec<RowError>) -> Vec<ResultRow> {
        let Some(spec) = self.plan.window else {
            return Vec::new();
        };
        let stream_time = self.stream_time;
        let mut closed: Vec<Aggregate> = Vec::new();
        let dirty = &mut self.dirty;
        self.groups.retain(|key, a| {
            let (_, end) = a.window.expect("windowed");
            if spec.time_window_closed(end, stream_time) {
                if let (false, Some(dirty)) = (a.changed, dirty.as_mut()) {
                    dirty.groups.push(key.clone());
                }
                closed.push(a.clone());
                false
            } else {
                true
            }
        });
        for (key, sessions) in self.sessions.iter_mut() {
            if let Some(dirty) = dirty.as_mut() {
                dirty.sessions.insert(key.clone());
            }
            sessions.retain(|a| {
                let (_, end) = a.window.expect("session");
                if spec.session_closed(end, stream_time) {
                    closed.push(a.clone());
                    false
                } else {
                    true
                }
            });
        }
        closed.sort_by_key(|a| (a.window.map(|w| (w.1, w.0)), a.timestamp));
        let width = self.plan.group_by.len() + self.plan.calls.len() + 2;
        let mut snapshots = Snapshots::new(width, &mut self.spare_columns);
        let changes = closed
            .iter()
            .map(|a| Change::Updated {
                snapshot: snapshots.push(a, Owner::Untracked, usize::MAX),
            })
            .collect();
        self.results(snapshots, changes, push, errors)
    }

    /// Drops windows that can take no more records (EMIT CHANGES has sent their results).
    fn evict_closed(&mut self) {
        let Some(spec) = self.plan.window else {
            return;
        };
        if self.plan.emit_final {
            return;
        }
        let stream_time = self.stream_time;
        let dirty = &mut self.dirty;
        self.groups.retain(|key, a| {
            let closed = a
                .window
                .is_some_and(|(_, end)| spec.time_window_closed(end, stream_time));
            // A changed group is listed already; its record will be a tombstone.
            if let (true, false, Some(dirty)) = (closed, a.changed, dirty.as_mut()) {
                dirty.groups.push(key.clone());
            }
            !closed
        });
        for (key, sessions) in self.sessions.iter_mut() {
            let before = sessions.len();
            sessions.retain(|a| {
                !a.window
                    .is_some_and(|(_, end)| spec.session_closed(end, stream_time))
            });
            if let (true, Some(dirty)) = (sessions.len() != before, dirty.as_mut()) {
                dirty.sessions.insert(key.clone());
            }
        }
        self.sessions.retain(|_, s| !s.is_empty());
    }
}

/// The aggregation's state as records of a compacted changelog topic, so that a restarted
/// query resumes with the state its committed offsets imply (ksqlDB's
/// `...-Aggregate-Materialize-changelog`). Keys: `G` + grouping values + window start (a group
/// and window), `S` + grouping values (a key's sessions), `T` + primary key (a table source's
/// row), `W` (stream time). A group that is gone is a tombstone.
impl AggregationStage {
    /// Starts keeping track of what changes, for `take_changelog`.
    pub fn keep_changelog(&mut self) {
        self.dirty.get_or_insert_with(Dirty::default);
    }

    /// Whether anything changed since the changelog was last taken.
    pub fn changelog_pending(&self) -> bool {
        self.dirty.as_ref().is_some_and(|dirty| {
            !(dirty.groups.is_empty() && dirty.sessions.is_empty() && dirty.table_rows.is_empty())
        })
    }

    /// The changelog records of what changed since the last call (key, value or tombstone).
    pub fn take_changelog(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let Some(dirty) = self.dirty.as_mut() else {
            return Vec::new();
        };
        let dirty = std::mem::take(dirty);
        let mut records = Vec::new();
        for key in dirty.groups {
            // `G`, the grouping values' length, then the key (values, window start).
            let mut bytes = Vec::with_capacity(5 + key.len());
            bytes.push(b'G');
            let group_length = key.len() - WINDOW_START_BYTES;
            bytes.extend_from_slice(&(group_length as u32).to_be_bytes());
            bytes.extend_from_slice(&key);
            let value = self.groups.get_mut(&key).map(|a| {
                a.changed = false;
                let mut bytes = vec![FORMAT_VERSION];
                write_aggregate_state(a, &mut bytes);
                bytes
            });
            records.push((bytes, value));
        }
        for key in dirty.sessions {
            let mut bytes = vec![b'S'];
            bytes.extend_from_slice(&key);
            let value = self
                .sessions
                .get(&key)
                .filter(|s| !s.is_empty())
                .map(|sessions| {
                    let mut bytes = vec![FORMAT_VERSION];
                    snapshot::write_array_header(sessions.len(), &mut bytes);
                    for session in sessions {
                        write_aggregate_state(session, &mut bytes);
                    }
                    bytes
                });
            records.push((bytes, value));
        }
        if let Some(table) = &self.table_rows {
            for key in dirty.table_rows {
                let mut bytes = vec![b'T'];
                bytes.extend_from_slice(&key);
                let value = table.rows.get(&key).map(|(group, args)| {
                    encode_value(&Value::Struct(vec![
                        Value::Array(group.clone()),
                        Value::Array(args.iter().map(|a| Value::Array(a.clone())).collect()),
                    ]))
                });
                records.push((bytes, value));
            }
        }
        if !records.is_empty() {
            records.push((
                vec![b'W'],
                Some(encode_value(&Value::BigInt(self.stream_time))),
            ));
        }
        records
    }

    /// Applies one changelog record (a restart reads the changelog to its end first).
    pub fn restore_changelog(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let (&kind, rest) = key.split_first().ok_or("an empty changelog key")?;
        let decoded = value.map(decode_value).transpose()?;
        match (kind, decoded) {
            (b'W', Some(Value::BigInt(time))) => self.stream_time = time,
            (b'G', state) => {
                let length = rest
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or("a short changelog key")?;
                // The grouping values and the window start: the group's key.
                let key = rest
                    .get(4..4 + length + WINDOW_START_BYTES)
                    .ok_or("a short changelog key")?;
                match state {
                    Some(state) => {
                        let aggregate = self.aggregate_from(&state)?;
                        self.groups.insert(GroupKey::from(key), aggregate);
                    }
                    None => {
                        self.groups.remove(key);
                    }
                }
            }
            (b'S', Some(Value::Array(sessions))) => {
                let restored = sessions
                    .iter()
                    .map(|s| self.aggregate_from(s))
                    .collect::<Result<Vec<_>, _>>()?;
                self.sessions.insert(rest.to_vec(), restored);
            }
            (b'S', None) => {
                self.sessions.remove(rest);
            }
            (b'T', row) => {
                let Some(table) = self.table_rows.as_mut() else {
                    return Err("a table row in the changelog of a stream aggregation".into());
                };
                match row {
                    Some(Value::Struct(parts)) => match parts.as_slice() {
                        [Value::Array(group), Value::Array(args)] => {
                            let args = args
                                .iter()
                                .map(|a| match a {
                                    Value::Array(values) => Ok(values.clone()),
                                    _ => Err("a table row's arguments are not lists".to_string()),
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            table.rows.insert(rest.to_vec(), (group.clone(), args));
                        }
                        _ => return Err("a malformed table row in the changelog".into()),
                    },
                    None => {
                        table.rows.remove(rest);
                    }
                    Some(_) => return Err("a malformed table row in the changelog".into()),
                }
            }
            (other, _) => {
                return Err(format!(
                    "an unknown changelog record kind {:?}",
                    char::from(other)
                ))
            }
        }
        Ok(())
    }

    fn aggregate_from(&self, state: &Value) -> Result<Aggregate, String> {
        let Value::Struct(parts) = state else {
            return Err("a malformed aggregate in the changelog".into());
        };
        let [Value::Array(group), window, Value::BigInt(timestamp), Value::Boolean(emitted), Value::Array(snapshots)] =
            parts.as_slice()
        else {
            return Err("a malformed aggregate in the changelog".into());
        };
        let window = match window {
            Value::Struct(bounds) => match bounds.as_slice() {
                [Value::BigInt(start), Value::BigInt(end)] => Some((*start, *end)),
                _ => return Err("a malformed window in the changelog".into()),
            },
            _ => None,
        };
        if snapshots.len() != self.plan.calls.len() {
            return Err(format!(
                "the changelog holds {} aggregate states, the query has {} aggregate calls",
                snapshots.len(),
                self.plan.calls.len()
            ));
        }
        let mut accumulators = Vec::with_capacity(self.plan.calls.len());
        for (call, snapshot) in self.plan.calls.iter().zip(snapshots) {
            let mut accumulator = call.function.new_accumulator();
            accumulator.restore(snapshot)?;
            accumulators.push(accumulator);
        }
        Ok(Aggregate {
            group: group.clone(),
            window,
            accumulators,
            timestamp: *timestamp,
            emitted: *emitted,
            changed: false,
        })
    }
}

/// One aggregate's bytes: a STRUCT of its grouping values, window, timestamp, HAVING state
/// and accumulators' snapshots (read back by `aggregate_from`).
fn write_aggregate_state(aggregate: &Aggregate, out: &mut Vec<u8>) {
    snapshot::write_struct_header(5, out);
    snapshot::write_array_header(aggregate.group.len(), out);
    for value in &aggregate.group {
        snapshot::write(value, out);
    }
    match aggregate.window {
        Some((start, end)) => {
            snapshot::write_struct_header(2, out);
            snapshot::write(&Value::BigInt(start), out);
            snapshot::write(&Value::BigInt(end), out);
        }
        None => snapshot::write(&Value::Null, out),
    }
    snapshot::write(&Value::BigInt(aggregate.timestamp), out);
    snapshot::write(&Value::Boolean(aggregate.emitted), out);
    snapshot::write_array_header(aggregate.accumulators.len(), out);
    for accumulator in &aggregate.accumulators {
        accumulator.write_snapshot(out);
    }
}

impl Snapshots {
    /// Columns come from `spare` (emptied ones a batch before kept) where it has them.
    fn new(width: usize, spare: &mut Vec<Vec<Value>>) -> Snapshots {
        Snapshots {
            batch: Batch {
                columns: (0..width)
                    .map(|_| spare.pop().unwrap_or_default())
                    .collect(),
                rows: 0,
            },
            windows: Vec::new(),
            timestamps: Vec::new(),
            owners: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// Adds the aggregate's current row: grouping values, results, window bounds.
    fn push(&mut self, aggregate: &Aggregate, owner: Owner, input: usize) -> usize {
        let mut column = 0;
        for value in &aggregate.group {
            self.batch.columns[column].push(value.clone());
            column += 1;
        }
        for accumulator in &aggregate.accumulators {
            self.batch.columns[column].push(accumulator.result());
            column += 1;
        }
        let (start, end) = aggregate
            .window
            .map_or((Value::Null, Value::Null), |(s, e)| {
                (Value::BigInt(s), Value::BigInt(e))
            });
        self.batch.columns[column].push(start);
        self.batch.columns[column + 1].push(end);
        self.windows.push(aggregate.window);
        self.timestamps.push(aggregate.timestamp);
        self.owners.push(owner);
        self.inputs.push(input);
        self.batch.rows += 1;
        self.batch.rows - 1
    }
}

/// A group's key: its grouping values encoded, then the window start.
fn group_key(group: &[Value], window_start: i64) -> Vec<u8> {
    let mut key = encode_group(group);
    key.extend_from_slice(&window_start.to_be_bytes());
    key
}

/// Lists a group in the changelog's next records, once until they are taken.
fn mark_changed(dirty: &mut Option<Dirty>, key: &[u8], aggregate: &mut Aggregate) {
    if let (false, Some(dirty)) = (aggregate.changed, dirty.as_mut()) {
        aggregate.changed = true;
        dirty.groups.push(GroupKey::from(key));
    }
}

/// What a snapshot of `aggregate` answers to: the group, looked up again for `HAVING`'s
/// verdict; without HAVING every result passes, so that is recorded now.
fn owner_of(having: bool, key: &[u8], aggregate: &mut Aggregate) -> Owner {
    if having {
        Owner::Group(GroupKey::from(key))
    } else {
        aggregate.emitted = true;
        Owner::Untracked
    }
}

/// The batch's own column when `expr` is one, else the expression's values.
fn column<'a>(expr: &CompiledExpr, batch: &'a Batch, errors: &mut Vec<RowError>) -> Column<'a> {
    match expr {
        CompiledExpr::Column(index) => Cow::Borrowed(batch.columns[*index].as_slice()),
        _ => Cow::Owned(eval_column(expr, batch, errors)),
    }
}

/// The grouping values as bytes that are equal exactly when the values are (Java's equality,
/// as ksqlDB groups: doubles by their bits, every NaN alike): the state's hash key.
pub fn encode_group(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * values.len());
    for value in values {
        super::udaf::write_java_key(value, &mut out);
    }
    out
}
