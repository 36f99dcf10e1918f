//! Joins, as ksqlDB runs them on Kafka Streams: stream-stream joins within a time window,
//! stream-table joins (a stream record looks up the table's row; table updates emit nothing)
//! and table-table joins (an update on either side updates the result).
//!
//! A join of N sources is a chain of N - 1 stages, left-deep as ksqlDB builds it: the first
//! stage joins the first two sources, and each later stage joins the rows of the stage before
//! (a stream if any source so far is a stream, else a table) with the next source.
//!
//! A stage's joined row is its left side's cells, then the right source's scope, then the join
//! key (ksqlDB's `ROWKEY`), with NULLs for a side without a match.

pub mod plan;

use std::collections::HashMap;

use crate::aggregate::stage::encode_group;
use crate::expr::{eval_row, CompiledExpr};
use crate::sql::ast::JoinKind;
use crate::topology::{InputRecord, ReadOutcome, ReadRow, SourceReader};
use crate::value::Value;

/// A stream-stream join's window: a right record joins a left one when
/// `left - before <= right <= left + after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    pub before_ms: i64,
    pub after_ms: i64,
    /// `GRACE PERIOD`: how late a record may still join.
    pub grace_ms: i64,
    /// The grace period was written: an outer side's record without a match waits for its
    /// window to close before it is joined with NULLs (Kafka Streams' fix for spurious
    /// results); without one, it is joined with NULLs at once, as before that fix.
    pub explicit_grace: bool,
}

impl JoinWindow {
    /// Parses `WITHIN 10 SECONDS`, `WITHIN (1 SECOND, 2 SECONDS)`, with an optional
    /// `GRACE PERIOD 5 SECONDS` (the text after WITHIN).
    pub fn parse(text: &str) -> Result<JoinWindow, String> {
        let upper = text.trim().to_ascii_uppercase();
        let (window, grace) = match upper.find("GRACE") {
            Some(at) => (upper[..at].trim(), Some(upper[at..].trim())),
            None => (upper.as_str(), None),
        };
        let duration = |text: &str| -> Result<i64, String> {
            let words: Vec<&str> = text.split_whitespace().collect();
            match words.as_slice() {
                [amount, unit] => crate::aggregate::window::duration_ms(amount, unit),
                _ => Err(format!("Invalid WITHIN clause: {text}")),
            }
        };
        let window = window.trim_start_matches('(').trim_end_matches(')');
        let (before_ms, after_ms) = match window.split_once(',') {
            Some((before, after)) => (duration(before.trim())?, duration(after.trim())?),
            None => {
                let both = duration(window.trim())?;
                (both, both)
            }
        };
        let grace_ms = match grace {
            Some(grace) => duration(
                grace
                    .trim_start_matches("GRACE")
                    .trim()
                    .trim_start_matches("PERIOD")
                    .trim(),
            )?,
            // Kafka Streams' JoinWindows.of: a day's grace when none is given.
            None => 86_400_000,
        };
        Ok(JoinWindow {
            before_ms,
            after_ms,
            grace_ms,
            explicit_grace: grace.is_some(),
        })
    }
}

/// One buffered or kept row of a side.
#[derive(Debug, Clone)]
struct SideRow {
    key: Value,
    cells: Vec<Value>,
    timestamp: i64,
    /// A stream-stream join's row found a match, or was joined with NULLs already.
    settled: bool,
}

/// A joined row, ready for WHERE and SELECT.
pub struct JoinedRow {
    pub cells: Vec<Value>,
    pub timestamp: i64,
    /// A table-table join's row that no longer exists.
    pub tombstone: bool,
}

/// A join stage of a query: its left side is the query's own source (the first stage) or the
/// stage before's rows; its right side is a source.
pub struct JoinStage {
    pub kind: JoinKind,
    pub right: SourceReader,
    pub left_table: bool,
    pub right_table: bool,
    /// The join expressions over each side's scope.
    pub left_key: CompiledExpr,
    pub right_key: CompiledExpr,
    pub window: Option<JoinWindow>,
    pub left_width: usize,
    pub right_width: usize,
    /// Records of a stream side too late for the window and its grace.
    pub late_records: u64,
    left_rows: Vec<SideRow>,
    right_rows: Vec<SideRow>,
    left_table_rows: HashMap<Vec<u8>, SideRow>,
    right_table_rows: HashMap<Vec<u8>, SideRow>,
    /// Table-table joins: the keys whose joined row exists (a delete then sends a tombstone).
    joined: std::collections::HashSet<Vec<u8>>,
    /// A foreign-key table-table join: the left rows' join expression names a right row's
    /// primary key, and the result is keyed by the left row's own key (its first cell).
    pub foreign_key: bool,
    stream_time: i64,
}

/// Where source `source` of a join chain comes in: the stage and its side (source 0 is the
/// first stage's left side, source `i` the right side of stage `i - 1`).
pub fn chain_entry(source: usize) -> (usize, Side) {
    match source {
        0 => (0, Side::Left),
        right => (right - 1, Side::Right),
    }
}

/// Runs a row of source `source` of a join chain through the stages it reaches: each stage's
/// rows are the left rows of the next. Returns the last stage's rows.
pub fn run_chain(stages: &mut [JoinStage], source: usize, row: ReadRow) -> Vec<JoinedRow> {
    let (first, side) = chain_entry(source);
    let mut rows = stages[first].join(side, row);
    for stage in &mut stages[first + 1..] {
        rows = rows
            .into_iter()
            .flat_map(|joined| stage.join(Side::Left, joined.into()))
            .collect();
    }
    rows
}

impl From<JoinedRow> for ReadRow {
    fn from(joined: JoinedRow) -> ReadRow {
        ReadRow {
            cells: joined.cells,
            timestamp: joined.timestamp,
            tombstone: joined.tombstone,
            keyless: false,
            window: None,
        }
    }
}

/// Which side a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl JoinStage {
    pub fn new(
        kind: JoinKind,
        right: SourceReader,
        left_table: bool,
        (left_key, right_key): (CompiledExpr, CompiledExpr),
        window: Option<JoinWindow>,
        left_width: usize,
    ) -> Self {
        JoinStage {
            kind,
            right_table: right.table,
            right_width: right.width(),
            right,
            left_table,
            left_key,
            right_key,
            window,
            left_width,
            late_records: 0,
            left_rows: Vec::new(),
            right_rows: Vec::new(),
            left_table_rows: HashMap::new(),
            right_table_rows: HashMap::new(),
            joined: Default::default(),
            foreign_key: false,
            stream_time: i64::MIN,
        }
    }

    /// The number of cells in a joined row.
    pub fn width(&self) -> usize {
        self.left_width + self.right_width + 1
    }

    /// Whether the result is a table (a table-table join).
    pub fn produces_table(&self) -> bool {
        self.left_table && self.right_table
    }

    /// Reads a record of the right side.
    pub fn read_right(&self, record: &InputRecord, fail_on_invalid_timestamp: bool) -> ReadOutcome {
        self.right.read(record, fail_on_invalid_timestamp)
    }

    /// Joins a row that arrived on `side`; returns the rows it makes.
    pub fn join(&mut self, side: Side, row: ReadRow) -> Vec<JoinedRow> {
        let key_expr = match side {
            Side::Left => &self.left_key,
            Side::Right => &self.right_key,
        };
        let mut lambda_values = Vec::new();
        let key = eval_row(key_expr, &|i| row.cells[i].clone(), &mut lambda_values)
            .unwrap_or(Value::Null);
        let table = match side {
            Side::Left => self.left_table,
            Side::Right => self.right_table,
        };
        let incoming = SideRow {
            key,
            cells: row.cells,
            timestamp: row.timestamp,
            settled: false,
        };
        match (self.left_table, self.right_table) {
            (true, true) if self.foreign_key => {
                self.foreign_key_join(side, incoming, row.tombstone)
            }
            (true, true) => self.table_table(side, incoming, row.tombstone),
            (false, true) if table => {
                // The table side only changes state: its updates emit nothing.
                self.keep_table_row(side, incoming, row.tombstone);
                Vec::new()
            }
            (false, true) => self.stream_table(incoming, row.tombstone),
            _ => self.stream_stream(side, incoming, row.tombstone),
        }
    }

    /// A table side's row read again at a restart: its row is kept; nothing is emitted.
    pub fn restore(&mut self, side: Side, row: ReadRow) {
        let key_expr = match side {
            Side::Left => &self.left_key,
            Side::Right => &self.right_key,
        };
        let mut lambda_values = Vec::new();
        let key = eval_row(key_expr, &|i| row.cells[i].clone(), &mut lambda_values)
            .unwrap_or(Value::Null);
        let kept = SideRow {
            key,
            cells: row.cells,
            timestamp: row.timestamp,
            settled: true,
        };
        if self.foreign_key && side == Side::Left {
            let primary = encode_group(&kept.cells[..1]);
            if row.tombstone {
                self.left_table_rows.remove(&primary);
            } else {
                self.left_table_rows.insert(primary, kept);
            }
        } else {
            self.keep_table_row(side, kept, row.tombstone);
        }
    }

    /// Which keys of a table-table join have a joined row, from both sides' rows (once the
    /// restore has read them).
    pub fn rebuild_joined(&mut self) {
        self.joined.clear();
        if self.foreign_key {
            for (primary, left) in &self.left_table_rows {
                let matched = !left.key.is_null()
                    && self
                        .right_table_rows
                        .contains_key(&encode_group(std::slice::from_ref(&left.key)));
                if matched || self.kind == JoinKind::Left {
                    self.joined.insert(primary.clone());
                }
            }
            return;
        }
        let keys: std::collections::HashSet<&Vec<u8>> = self
            .left_table_rows
            .keys()
            .chain(self.right_table_rows.keys())
            .collect();
        for key in keys {
            let (left, right) = (
                self.left_table_rows.contains_key(key),
                self.right_table_rows.contains_key(key),
            );
            let exists = match self.kind {
                JoinKind::Inner => left && right,
                JoinKind::Left => left,
                JoinKind::Right => right,
                JoinKind::Full => left || right,
            };
            if exists {
                self.joined.insert(key.clone());
            }
        }
    }

    /// A table-table join's rows as they are (once restored): what the next stage of a chain
    /// restores its left side from.
    pub fn current_rows(&self) -> Vec<JoinedRow> {
        let mut rows = Vec::with_capacity(self.joined.len());
        for key in &self.joined {
            let left = self.left_table_rows.get(key);
            if self.foreign_key {
                let Some(left) = left else { continue };
                let right = self.referenced_row(left);
                let timestamp = right.map_or(left.timestamp, |r| r.timestamp.max(left.timestamp));
                rows.push(self.fk_row(left, right, timestamp));
                continue;
            }
            let right = self.right_table_rows.get(key);
            let timestamp = left
                .iter()
                .chain(right.iter())
                .map(|r| r.timestamp)
                .max()
                .unwrap_or(0);
            rows.push(self.joined_row(left, right, timestamp));
        }
        rows
    }

    fn keep_table_row(&mut self, side: Side, row: SideRow, deleted: bool) {
        let encoded = encode_group(std::slice::from_ref(&row.key));
        let rows = match side {
            Side::Left => &mut self.left_table_rows,
            Side::Right => &mut self.right_table_rows,
        };
        if deleted || row.key.is_null() {
            rows.remove(&encoded);
        } else {
            rows.insert(encoded, row);
        }
    }

    fn stream_table(&mut self, left: SideRow, tombstone: bool) -> Vec<JoinedRow> {
        // A stream record without a value or a join key joins nothing (Kafka Streams drops it).
        if tombstone || left.key.is_null() {
            return Vec::new();
        }
        let encoded = encode_group(std::slice::from_ref(&left.key));
        match self.right_table_rows.get(&encoded) {
            Some(right) => vec![self.joined_row(Some(&left), Some(right), left.timestamp)],
            None if self.kind == JoinKind::Left => {
                vec![self.joined_row(Some(&left), None, left.timestamp)]
            }
            None => Vec::new(),
        }
    }

    fn table_table(&mut self, side: Side, row: SideRow, deleted: bool) -> Vec<JoinedRow> {
        let key = row.key.clone();
        let timestamp = row.timestamp;
        if key.is_null() {
            return Vec::new();
        }
        self.keep_table_row(side, row, deleted);
        let encoded = encode_group(std::slice::from_ref(&key));
        let left = self.left_table_rows.get(&encoded);
        let right = self.right_table_rows.get(&encoded);
        let exists = match self.kind {
            JoinKind::Inner => left.is_some() && right.is_some(),
            JoinKind::Left => left.is_some(),
            JoinKind::Right => right.is_some(),
            JoinKind::Full => left.is_some() || right.is_some(),
        };
        let timestamp = left
            .iter()
            .chain(right.iter())
            .map(|r| r.timestamp)
            .fold(timestamp, i64::max);
        if exists {
            let joined = self.joined_row(left, right, timestamp);
            self.joined.insert(encoded);
            vec![joined]
        } else if self.joined.remove(&encoded) {
            let mut tombstone = self.joined_row(None, None, timestamp);
            *tombstone.cells.last_mut().expect("join key") = key;
            tombstone.tombstone = true;
            vec![tombstone]
        } else {
            Vec::new()
        }
    }

    /// A foreign-key join: the right row a left row's join expression names, if any.
    fn referenced_row(&self, left: &SideRow) -> Option<&SideRow> {
        if left.key.is_null() {
            return None;
        }
        self.right_table_rows
            .get(&encode_group(std::slice::from_ref(&left.key)))
    }

    /// A foreign-key join: a left row changes its one result; a right row changes the results of
    /// every left row that refers to it.
    fn foreign_key_join(&mut self, side: Side, row: SideRow, deleted: bool) -> Vec<JoinedRow> {
        let timestamp = row.timestamp;
        match side {
            Side::Left => {
                let primary = encode_group(&row.cells[..1]);
                if deleted {
                    // A left row's delete always goes on (Kafka Streams forwards it joined or not).
                    self.left_table_rows.remove(&primary);
                    self.joined.remove(&primary);
                    return vec![self.fk_tombstone(row.cells[0].clone(), timestamp)];
                }
                let right = self.referenced_row(&row).cloned();
                let out = match (&right, self.kind) {
                    (Some(right), _) => Some(self.fk_row(&row, Some(right), timestamp)),
                    (None, JoinKind::Left) => Some(self.fk_row(&row, None, timestamp)),
                    (None, _) => None,
                };
                let pk = row.cells[0].clone();
                self.left_table_rows.insert(primary.clone(), row);
                match out {
                    Some(joined) => {
                        self.joined.insert(primary);
                        vec![joined]
                    }
                    None if self.joined.remove(&primary) => vec![self.fk_tombstone(pk, timestamp)],
                    None => Vec::new(),
                }
            }
            Side::Right => {
                let key = row.key.clone();
                self.keep_table_row(Side::Right, row, deleted);
                if key.is_null() {
                    return Vec::new();
                }
                let right = self
                    .right_table_rows
                    .get(&encode_group(std::slice::from_ref(&key)))
                    .cloned();
                let mut referring: Vec<(Vec<u8>, SideRow)> = self
                    .left_table_rows
                    .iter()
                    .filter(|(_, left)| crate::expr::values_equal(&left.key, &key))
                    .map(|(primary, left)| (primary.clone(), left.clone()))
                    .collect();
                referring.sort_by(|(_, a), (_, b)| {
                    crate::expr::compare(&a.cells[0], &b.cells[0])
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                let mut out = Vec::new();
                for (primary, left) in referring {
                    match (&right, self.kind) {
                        (Some(right), _) => {
                            out.push(self.fk_row(&left, Some(right), timestamp));
                            self.joined.insert(primary);
                        }
                        (None, JoinKind::Left) => out.push(self.fk_row(&left, None, timestamp)),
                        (None, _) => {
                            if self.joined.remove(&primary) {
                                out.push(self.fk_tombstone(left.cells[0].clone(), timestamp));
                            }
                        }
                    }
                }
                out
            }
        }
    }

    /// A foreign-key join's row, keyed by the left row's key.
    fn fk_row(&self, left: &SideRow, right: Option<&SideRow>, timestamp: i64) -> JoinedRow {
        let mut joined = self.joined_row(Some(left), right, timestamp);
        *joined.cells.last_mut().expect("join key") = left.cells[0].clone();
        joined
    }

    fn fk_tombstone(&self, key: Value, timestamp: i64) -> JoinedRow {
        let mut tombstone = self.joined_row(None, None, timestamp);
        *tombstone.cells.last_mut().expect("join key") = key;
        tombstone.tombstone = true;
        tombstone
    }

    fn stream_stream(&mut self, side: Side, mut row: SideRow, tombstone: bool) -> Vec<JoinedRow> {
        let window = self.window.expect("a stream-stream join has a window");
        if tombstone || row.key.is_null() {
            return Vec::new();
        }
        self.stream_time = self.stream_time.max(row.timestamp);
        // How long after a record its window takes partners: its "after" on the left, the
        // window's "before" seen from the right.
        let reach = |side: Side| match side {
            Side::Left => window.after_ms,
            Side::Right => window.before_ms,
        };
        let outer = |side: Side| match side {
            Side::Left => matches!(self.kind, JoinKind::Left | JoinKind::Full),
            Side::Right => matches!(self.kind, JoinKind::Right | JoinKind::Full),
        };
        let closes = |side: Side, timestamp: i64| timestamp + reach(side) + window.grace_ms;
        if closes(side, row.timestamp) < self.stream_time {
            // Too late to join: an outer side's record still comes out, with NULLs.
            self.late_records += 1;
            return if outer(side) {
                vec![self.one_sided(side, &row)]
            } else {
                Vec::new()
            };
        }
        let (low, high) = match side {
            Side::Left => (
                row.timestamp - window.before_ms,
                row.timestamp + window.after_ms,
            ),
            Side::Right => (
                row.timestamp - window.after_ms,
                row.timestamp + window.before_ms,
            ),
        };
        let others = match side {
            Side::Left => &mut self.right_rows,
            Side::Right => &mut self.left_rows,
        };
        let mut matches = Vec::new();
        for other in others.iter_mut() {
            if other.timestamp >= low && other.timestamp <= high && other.key == row.key {
                other.settled = true;
                matches.push(other.clone());
            }
        }
        let mut out: Vec<JoinedRow> = matches
            .iter()
            .map(|other| {
                let timestamp = other.timestamp.max(row.timestamp);
                match side {
                    Side::Left => self.joined_row(Some(&row), Some(other), timestamp),
                    Side::Right => self.joined_row(Some(other), Some(&row), timestamp),
                }
            })
            .collect();
        row.settled = !matches.is_empty();
        if !row.settled && outer(side) && !window.explicit_grace {
            out.push(self.one_sided(side, &row));
            row.settled = true;
        }
        match side {
            Side::Left => self.left_rows.push(row),
            Side::Right => self.right_rows.push(row),
        }
        // Outer rows whose window closed without a match come out with NULLs, oldest first.
        let stream_time = self.stream_time;
        let mut closed: Vec<(Side, SideRow)> = Vec::new();
        for (side, rows) in [
            (Side::Left, &mut self.left_rows),
            (Side::Right, &mut self.right_rows),
        ] {
            for row in rows.iter_mut() {
                if !row.settled && outer(side) && closes(side, row.timestamp) < stream_time {
                    row.settled = true;
                    closed.push((side, row.clone()));
                }
            }
        }
        closed.sort_by_key(|(_, row)| row.timestamp);
        out.extend(closed.iter().map(|(side, row)| self.one_sided(*side, row)));
        let horizon = window.before_ms.max(window.after_ms) + window.grace_ms;
        let keep = |row: &SideRow| row.timestamp + horizon >= stream_time;
        self.left_rows.retain(keep);
        self.right_rows.retain(keep);
        out
    }

    /// A record joined with NULLs for the other side.
    fn one_sided(&self, side: Side, row: &SideRow) -> JoinedRow {
        match side {
            Side::Left => self.joined_row(Some(row), None, row.timestamp),
            Side::Right => self.joined_row(None, Some(row), row.timestamp),
        }
    }

    fn joined_row(
        &self,
        left: Option<&SideRow>,
        right: Option<&SideRow>,
        timestamp: i64,
    ) -> JoinedRow {
        let mut cells = Vec::with_capacity(self.width());
        match left {
            Some(left) => cells.extend(left.cells.iter().cloned()),
            None => cells.resize(self.left_width, Value::Null),
        }
        match right {
            Some(right) => cells.extend(right.cells.iter().cloned()),
            None => cells.resize(self.left_width + self.right_width, Value::Null),
        }
        let key = left
            .map(|l| l.key.clone())
            .filter(|k| !k.is_null())
            .or_else(|| right.map(|r| r.key.clone()))
            .unwrap_or(Value::Null);
        cells.push(key);
        JoinedRow {
            cells,
            timestamp,
            tombstone: false,
        }
    }
}
