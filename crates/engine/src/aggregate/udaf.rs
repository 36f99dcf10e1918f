//! ksqlDB's aggregate functions (UDAFs) as accumulators: one per call, group and window.
//!
//! Semantics follow ksqlDB 0.29 / Confluent Platform 7.x, including its Java arithmetic and its
//! quirks (they are what its users see): INTEGER sums wrap, `STDDEV_SAMP` returns the sample
//! *variance*, `AVG` of no values is 0.0, `LATEST_BY_OFFSET(col, n)` keeps the earliest `n` when
//! two sessions merge, and so on. UDAFs take no implicit casts (ksqlDB resolves them without
//! widening), so `AVG(DECIMAL)` is refused as ksqlDB refuses it.
//!
//! A table aggregation takes a row's old values back out with [`Accumulator::undo`]; ksqlDB
//! allows only its "table UDAFs" there: COUNT, SUM, SUM_LIST, AVG, COLLECT_LIST, HISTOGRAM,
//! STDDEV_SAMP, STDDEV_SAMPLE, CORRELATION and ATTR. The others (MIN, MAX, COUNT_DISTINCT,
//! COLLECT_SET, EARLIEST_BY_OFFSET, LATEST_BY_OFFSET, TOPK, TOPKDISTINCT) cannot undo, and
//! ksqlDB refuses them on a table source.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::functions::math::{compare_values, rescale, Rounding};
use crate::types::SqlType;
use crate::value::{decimal_to_string, Value};

/// One aggregate call's running state for one group (and window).
pub trait Accumulator: Send + fmt::Debug {
    /// Folds one input row's argument values in (`args` are the call's non-literal arguments,
    /// evaluated; COUNT(*) gets an empty slice).
    fn add(&mut self, args: &[Value]);
    /// The current result.
    fn result(&self) -> Value;
    /// Merges another accumulator of the same function (session windows merging), as ksqlDB's
    /// `merge(self, other)`: where the order matters, `self` is the first argument. Kafka
    /// Streams merges the overlapping sessions into a fresh accumulator, then adds the record.
    fn merge(&mut self, other: &dyn Accumulator);
    /// Takes one row's values back out (a table's old row in a table aggregation); returns
    /// false if the function cannot undo (see the module docs for which can).
    fn undo(&mut self, args: &[Value]) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn box_clone(&self) -> Box<dyn Accumulator>;
    /// Where ksqlDB's function threw while aggregating (DECIMAL sum overflow, TOPK with k = 0),
    /// its message. ksqlDB's aggregator has no error handling: the query fails. The
    /// accumulator keeps its state from before the failing row.
    fn failure(&self) -> Option<&str> {
        None
    }
    /// The accumulator's whole state as one value (its intermediate state: e.g. AVG's sum and
    /// count), such that `restore` on a fresh accumulator of the same function gives back an
    /// equal accumulator (same `result()`, same behaviour on further `add`/`undo`/`merge`).
    /// It is a `STRUCT` of the accumulator's kind (a STRING) and its fields, including the
    /// function's parameters (k, n, limits, ...) and any failure; [`super::snapshot`] makes
    /// bytes of it.
    fn snapshot(&self) -> Value;
    /// Appends the snapshot's bytes (as [`super::snapshot::write`] writes `snapshot()`). The
    /// functions most queries use write theirs without building the value: the changelog
    /// takes one per changed group and batch.
    fn write_snapshot(&self, out: &mut Vec<u8>) {
        super::snapshot::write(&self.snapshot(), out);
    }
    /// Replaces this (fresh) accumulator's state with a snapshot; Err names what did not fit.
    /// A snapshot of another function, or of this one with other parameters (k, n, scale,
    /// ignoreNulls, ...), does not fit; limits are taken from the snapshot. On Err the
    /// accumulator is left as it was.
    fn restore(&mut self, snapshot: &Value) -> Result<(), String>;
}

impl Clone for Box<dyn Accumulator> {
    fn clone(&self) -> Self {
        self.box_clone()
    }
}

type Factory = Arc<dyn Fn() -> Box<dyn Accumulator> + Send + Sync>;

/// A resolved aggregate call: what it returns and a factory for fresh accumulators.
#[derive(Clone)]
pub struct AggregateFunction {
    /// ksqlDB's spelling, as its messages show it (`SUM`, `avg`, `collect_list`, ...).
    pub name: String,
    pub return_type: SqlType,
    /// The type ksqlDB stores between records (e.g. `STRUCT<SUM, COUNT>` for AVG): a value
    /// format that cannot hold it (DELIMITED and STRUCTs, ARRAYs, MAPs) makes ksqlDB refuse the
    /// query with "One of the functions used in the statement has an intermediate type that the
    /// value format can not handle. ...".
    pub intermediate_type: SqlType,
    undoable: bool,
    factory: Factory,
}

impl fmt::Debug for AggregateFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateFunction")
            .field("name", &self.name)
            .field("return_type", &self.return_type)
            .field("intermediate_type", &self.intermediate_type)
            .field("undoable", &self.undoable)
            .finish_non_exhaustive()
    }
}

impl AggregateFunction {
    pub fn new_accumulator(&self) -> Box<dyn Accumulator> {
        (self.factory)()
    }

    /// Whether every accumulator of this function can undo (table sources).
    pub fn undoable(&self) -> bool {
        self.undoable
    }
}

/// Names this module knows (upper case).
pub const NAMES: &[&str] = &[
    "ATTR",
    "AVG",
    "COLLECT_LIST",
    "COLLECT_SET",
    "CORRELATION",
    "COUNT",
    "COUNT_DISTINCT",
    "EARLIEST_BY_OFFSET",
    "HISTOGRAM",
    "LATEST_BY_OFFSET",
    "MAX",
    "MIN",
    "STDDEV_SAMP",
    "STDDEV_SAMPLE",
    "SUM",
    "SUM_LIST",
    "TOPK",
    "TOPKDISTINCT",
];

/// How many of the call's trailing arguments are literals (ksqlDB's "init args"), given the
/// total argument count: TOPK and TOPKDISTINCT take `k` last; EARLIEST_BY_OFFSET and
/// LATEST_BY_OFFSET take up to two (`n`, `ignoreNulls`) after the column.
pub fn literal_argument_count(name: &str, total_args: usize) -> usize {
    match name.to_ascii_uppercase().as_str() {
        "TOPK" | "TOPKDISTINCT" if total_args >= 2 => 1,
        "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET" => total_args.saturating_sub(1).min(2),
        _ => 0,
    }
}

const COLLECT_LIST_LIMIT: &str = "ksql.functions.collect_list.limit";
const COLLECT_SET_LIMIT: &str = "ksql.functions.collect_set.limit";
/// HISTOGRAM ignores new distinct values past this many (fixed in ksqlDB).
const HISTOGRAM_LIMIT: usize = 1000;

/// Resolves `NAME(args)` given the types of its column arguments and the values of its
/// trailing literal arguments (e.g. `TOPK(col, 3)`: `arg_types = [type of col]`,
/// `literals = [Integer(3)]`), and engine properties (`ksql.functions.collect_list.limit`,
/// `ksql.functions.collect_set.limit`; unset or negative means no limit, as in ksqlDB).
pub fn resolve(
    name: &str,
    arg_types: &[SqlType],
    literals: &[Value],
    properties: &BTreeMap<String, String>,
) -> Result<AggregateFunction, String> {
    let upper = name.to_ascii_uppercase();
    let Some(display) = display_name(&upper) else {
        return Err(format!("Can't find any functions with the name '{name}'"));
    };
    let refused = || {
        let shown: Vec<String> = arg_types
            .iter()
            .map(ToString::to_string)
            .chain(literals.iter().map(literal_type_name))
            .collect();
        format!(
            "Function '{display}' does not accept parameters ({}).",
            shown.join(", ")
        )
    };
    let single = match arg_types {
        [only] => Some(only),
        _ => None,
    };
    let no_literals = literals.is_empty();
    let numeric = |t: &SqlType| matches!(t, SqlType::Integer | SqlType::BigInt | SqlType::Double);
    let function = match upper.as_str() {
        "COUNT" if no_literals && arg_types.len() <= 1 => {
            built(display, SqlType::BigInt, None, true, || Count { count: 0 })
        }
        "COUNT_DISTINCT" if no_literals && single.is_some() => built(
            display,
            SqlType::BigInt,
            Some(SqlType::Array(Box::new(SqlType::Integer))),
            false,
            || CountDistinct {
                seen: HashSet::new(),
            },
        ),
        "SUM" if no_literals => match single {
            Some(t @ SqlType::Decimal { precision, scale }) => {
                let (precision, scale) = (*precision, *scale);
                built(display, t.clone(), None, true, move || DecimalSum {
                    unscaled: 0,
                    scale,
                    precision,
                    failure: None,
                })
            }
            Some(t) if numeric(t) => {
                let zero = JavaSum::zero(t);
                built(display, t.clone(), None, true, move || Sum { sum: zero })
            }
            _ => return Err(refused()),
        },
        "SUM_LIST" if no_literals => match single {
            Some(SqlType::Array(inner)) if numeric(inner) => {
                let zero = JavaSum::zero(inner);
                built(display, (**inner).clone(), None, true, move || SumList {
                    sum: zero,
                })
            }
            _ => return Err(refused()),
        },
        "AVG" if no_literals => match single {
            Some(t) if numeric(t) => {
                let zero = JavaSum::zero(t);
                let state = struct_type(&[("SUM", t.clone()), ("COUNT", SqlType::BigInt)]);
                built(display, SqlType::Double, Some(state), true, move || Avg {
                    sum: zero,
                    count: 0,
                })
            }
            _ => return Err(refused()),
        },
        "STDDEV_SAMP" | "STDDEV_SAMPLE" if no_literals => match single {
            Some(t) if numeric(t) => {
                let zero = JavaSum::zero(t);
                let variance_only = upper == "STDDEV_SAMP";
                let state = struct_type(&[
                    ("SUM", t.clone()),
                    ("COUNT", SqlType::BigInt),
                    ("M2", SqlType::Double),
                ]);
                built(display, SqlType::Double, Some(state), true, move || {
                    StdDev {
                        sum: zero,
                        count: 0,
                        m2: 0.0,
                        variance_only,
                    }
                })
            }
            _ => return Err(refused()),
        },
        "CORRELATION" if no_literals => match arg_types {
            [x, y] if x == y && numeric(x) => {
                let state = struct_type(&[
                    ("X_SUM", SqlType::Double),
                    ("Y_SUM", SqlType::Double),
                    ("X_SQUARED_SUM", SqlType::Double),
                    ("Y_SQUARED_SUM", SqlType::Double),
                    ("XY_SUM", SqlType::Double),
                    ("COUNT", SqlType::BigInt),
                ]);
                built(display, SqlType::Double, Some(state), true, || {
                    Correlation::default()
                })
            }
            _ => return Err(refused()),
        },
        "MIN" | "MAX" if no_literals => match single {
            Some(t) if comparable_for_min_max(t) => {
                let keep = if upper == "MAX" {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                built(display, t.clone(), None, false, move || MinMax {
                    keep,
                    best: None,
                })
            }
            _ => return Err(refused()),
        },
        "COLLECT_LIST" if no_literals && single.is_some() => {
            let limit = collect_limit(properties, COLLECT_LIST_LIMIT)?;
            let array = SqlType::Array(Box::new(arg_types[0].clone()));
            built(display, array, None, true, move || CollectList {
                items: Vec::new(),
                limit,
            })
        }
        "COLLECT_SET" if no_literals && single.is_some() => {
            let limit = collect_limit(properties, COLLECT_SET_LIMIT)?;
            let array = SqlType::Array(Box::new(arg_types[0].clone()));
            built(display, array, None, false, move || CollectSet {
                items: Vec::new(),
                keys: HashSet::new(),
                limit,
            })
        }
        "HISTOGRAM" if no_literals && single == Some(&SqlType::String) => {
            let map = SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::BigInt));
            built(display, map, None, true, || Histogram {
                counts: Vec::new(),
            })
        }
        "ATTR" if no_literals && single.is_some() => {
            let t = arg_types[0].clone();
            let entry = struct_type(&[("VALUE", t.clone()), ("COUNT", SqlType::Integer)]);
            let state = SqlType::Array(Box::new(entry));
            built(display, t, Some(state), true, || Attr {
                entries: Vec::new(),
            })
        }
        "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET" => {
            let Some(t) = single else {
                return Err(refused());
            };
            let (n, ignore_nulls) = match literals {
                [] => (None, true),
                [Value::Boolean(ignore)] => (None, *ignore),
                [Value::Integer(n)] => (Some(*n), true),
                [Value::Integer(n), Value::Boolean(ignore)] => (Some(*n), *ignore),
                _ => return Err(refused()),
            };
            offset_function(display, t, n, ignore_nulls, upper == "LATEST_BY_OFFSET")?
        }
        "TOPK" => {
            let (Some(sort_type), [Value::Integer(k)]) = (arg_types.first(), literals) else {
                return Err(refused());
            };
            if !matches!(
                sort_type,
                SqlType::Integer | SqlType::BigInt | SqlType::Double | SqlType::String
            ) {
                return Err(refused());
            }
            let element = if arg_types.len() == 1 {
                sort_type.clone()
            } else {
                // Extra columns ride along in a struct: `sort_col`, `col0`, `col1`, ...
                let fields = std::iter::once(("sort_col".to_string(), sort_type.clone()))
                    .chain(
                        arg_types[1..]
                            .iter()
                            .enumerate()
                            .map(|(i, t)| (format!("col{i}"), t.clone())),
                    )
                    .collect();
                SqlType::Struct(fields)
            };
            let (k, width) = (*k, arg_types.len());
            let array = SqlType::Array(Box::new(element));
            built(display, array, None, false, move || TopK {
                k,
                width,
                entries: Vec::new(),
                failure: None,
            })
        }
        "TOPKDISTINCT" => match (single, literals) {
            (Some(t), [Value::Integer(k)]) if comparable_for_min_max(t) => {
                let k = *k;
                let array = SqlType::Array(Box::new(t.clone()));
                built(display, array, None, false, move || TopKDistinct {
                    k,
                    items: Vec::new(),
                    failure: None,
                })
            }
            _ => return Err(refused()),
        },
        _ => return Err(refused()),
    };
    Ok(function)
}

/// ksqlDB's own spelling of each name (its messages print it as declared).
fn display_name(upper: &str) -> Option<&'static str> {
    Some(match upper {
        "AVG" => "avg",
        "COLLECT_LIST" => "collect_list",
        "COLLECT_SET" => "collect_set",
        "CORRELATION" => "correlation",
        "HISTOGRAM" => "histogram",
        "SUM_LIST" => "sum_list",
        other => *NAMES.iter().find(|n| **n == other)?,
    })
}

fn built<A: Accumulator + 'static>(
    display: &str,
    return_type: SqlType,
    intermediate_type: Option<SqlType>,
    undoable: bool,
    make: impl Fn() -> A + Send + Sync + 'static,
) -> AggregateFunction {
    AggregateFunction {
        name: display.to_string(),
        intermediate_type: intermediate_type.unwrap_or_else(|| return_type.clone()),
        return_type,
        undoable,
        factory: Arc::new(move || Box::new(make())),
    }
}

fn struct_type(fields: &[(&str, SqlType)]) -> SqlType {
    SqlType::Struct(
        fields
            .iter()
            .map(|(name, t)| (name.to_string(), t.clone()))
            .collect(),
    )
}

/// MIN, MAX and TOPKDISTINCT take Java's `Comparable` types.
fn comparable_for_min_max(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::Integer
            | SqlType::BigInt
            | SqlType::Double
            | SqlType::Decimal { .. }
            | SqlType::String
            | SqlType::Bytes
            | SqlType::Date
            | SqlType::Time
            | SqlType::Timestamp
    )
}

/// A literal's type as ksqlDB prints it in "does not accept parameters".
fn literal_type_name(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(_) => "BOOLEAN".into(),
        Value::Integer(_) => "INTEGER".into(),
        Value::BigInt(_) => "BIGINT".into(),
        Value::Double(_) => "DOUBLE".into(),
        Value::Decimal { unscaled, scale } => {
            let digits = crate::formats::decimal::unscaled_digits(*unscaled).max(*scale as u32);
            format!("DECIMAL({digits}, {scale})")
        }
        Value::String(_) => "STRING".into(),
        Value::Bytes(_) => "BYTES".into(),
        Value::Date(_) => "DATE".into(),
        Value::Time(_) => "TIME".into(),
        Value::Timestamp(_) => "TIMESTAMP".into(),
        Value::Array(_) => "ARRAY".into(),
        Value::Map(_) => "MAP".into(),
        Value::Struct(_) => "STRUCT".into(),
    }
}

/// The collect limit: ksqlDB parses it with `Integer.parseInt`, and a negative one (or none)
/// means no limit. (Confluent Cloud pins it to 1000; self-managed ksqlDB has no default.)
fn collect_limit(properties: &BTreeMap<String, String>, key: &str) -> Result<usize, String> {
    let Some(text) = properties.get(key) else {
        return Ok(i32::MAX as usize);
    };
    let limit: i32 = text.trim().parse().map_err(|_| {
        format!("Failed to create aggregate function: {key} is not an integer: '{text}'")
    })?;
    Ok(if limit < 0 {
        i32::MAX as usize
    } else {
        limit as usize
    })
}

fn offset_function(
    display: &str,
    column_type: &SqlType,
    n: Option<i32>,
    ignore_nulls: bool,
    latest: bool,
) -> Result<AggregateFunction, String> {
    let entry = struct_type(&[("SEQ", SqlType::BigInt), ("VAL", column_type.clone())]);
    let Some(n) = n else {
        let make = move || ByOffset {
            entry: latest.then(|| (next_sequence(), Value::Null)),
            ignore_nulls,
            latest,
        };
        return Ok(built(
            display,
            column_type.clone(),
            Some(entry),
            false,
            make,
        ));
    };
    if n <= 0 {
        let which = if latest { "latestN" } else { "earliestN" };
        return Err(format!("{which} must be 1 or greater"));
    }
    let array = SqlType::Array(Box::new(column_type.clone()));
    let state = SqlType::Array(Box::new(entry));
    let make = move || ByOffsetN {
        entries: Vec::new(),
        n: n as usize,
        ignore_nulls,
        latest,
    };
    Ok(built(display, array, Some(state), false, make))
}

static NULL: Value = Value::Null;

fn arg(args: &[Value], index: usize) -> &Value {
    args.get(index).unwrap_or(&NULL)
}

/// `as_any` and `box_clone`, the same for every accumulator.
macro_rules! accumulator_plumbing {
    () => {
        fn as_any(&self) -> &dyn Any {
            self
        }

        fn box_clone(&self) -> Box<dyn Accumulator> {
            Box::new(self.clone())
        }
    };
}

fn same<T: 'static>(other: &dyn Accumulator) -> Option<&T> {
    other.as_any().downcast_ref::<T>()
}

// ---------------------------------------------------------------------------------------------
// Snapshots: `STRUCT<kind STRING, fields...>`. The kind and the function's fixed parameters go
// in too and are checked on restore, so that a changelog read into another query's
// accumulators fails instead of being silently misread.
// ---------------------------------------------------------------------------------------------

fn snapshot_of(kind: &str, fields: impl IntoIterator<Item = Value>) -> Value {
    Value::Struct(
        std::iter::once(Value::String(kind.into()))
            .chain(fields)
            .collect(),
    )
}

/// The bytes of `snapshot_of(kind, fields)`, written directly.
fn write_snapshot_of(kind: &str, fields: &[Value], out: &mut Vec<u8>) {
    super::snapshot::write_struct_header(1 + fields.len(), out);
    super::snapshot::write_str(kind, out);
    for field in fields {
        super::snapshot::write(field, out);
    }
}

fn failure_value(failure: &Option<String>) -> Value {
    failure.clone().map_or(Value::Null, Value::String)
}

/// An offset function's `(sequence, value)` entry, as ksqlDB's `STRUCT<SEQ, VAL>`.
fn sequenced_value((sequence, value): &(u64, Value)) -> Value {
    // The sequence's bits: a BIGINT holds every u64 and gives it back with `as u64`.
    Value::Struct(vec![Value::BigInt(*sequence as i64), value.clone()])
}

/// Reads a snapshot of one kind, naming the kind in its errors.
#[derive(Clone, Copy)]
struct Restoring<'a>(&'a str);

impl Restoring<'_> {
    /// The snapshot's `N` fields after its kind.
    fn fields<const N: usize>(self, snapshot: &Value) -> Result<&[Value; N], String> {
        let kind = self.0;
        let Value::Struct(all) = snapshot else {
            return Err(format!(
                "a {kind} snapshot is a STRUCT, not {}",
                literal_type_name(snapshot)
            ));
        };
        match all.split_first() {
            Some((Value::String(found), fields)) if found == kind => {
                fields.try_into().map_err(|_| {
                    format!(
                        "a {kind} snapshot has {N} fields after its kind, not {}",
                        fields.len()
                    )
                })
            }
            Some((Value::String(found), _)) => Err(format!(
                "a {found} snapshot cannot restore a {kind} accumulator"
            )),
            _ => Err(format!(
                "a {kind} snapshot is a STRUCT starting with its kind, a STRING"
            )),
        }
    }

    fn wrong(self, what: &str, expected: &str, found: &Value) -> String {
        format!(
            "{} snapshot: {what} should be {expected}, not {}",
            self.0,
            literal_type_name(found)
        )
    }

    fn big_int(self, what: &str, value: &Value) -> Result<i64, String> {
        match value {
            Value::BigInt(v) => Ok(*v),
            other => Err(self.wrong(what, "a BIGINT", other)),
        }
    }

    fn integer(self, what: &str, value: &Value) -> Result<i32, String> {
        match value {
            Value::Integer(v) => Ok(*v),
            other => Err(self.wrong(what, "an INTEGER", other)),
        }
    }

    fn double(self, what: &str, value: &Value) -> Result<f64, String> {
        match value {
            Value::Double(v) => Ok(*v),
            other => Err(self.wrong(what, "a DOUBLE", other)),
        }
    }

    fn boolean(self, what: &str, value: &Value) -> Result<bool, String> {
        match value {
            Value::Boolean(v) => Ok(*v),
            other => Err(self.wrong(what, "a BOOLEAN", other)),
        }
    }

    fn array<'v>(self, what: &str, value: &'v Value) -> Result<&'v [Value], String> {
        match value {
            Value::Array(items) => Ok(items),
            other => Err(self.wrong(what, "an ARRAY", other)),
        }
    }

    /// A count or limit: a BIGINT that is no less than zero.
    fn size(self, what: &str, value: &Value) -> Result<usize, String> {
        let v = self.big_int(what, value)?;
        usize::try_from(v).map_err(|_| format!("{} snapshot: {what} is {v}", self.0))
    }

    /// [`Accumulator::failure`]: NULL or the message.
    fn failure(self, value: &Value) -> Result<Option<String>, String> {
        match value {
            Value::Null => Ok(None),
            Value::String(message) => Ok(Some(message.clone())),
            other => Err(self.wrong("the failure", "NULL or a STRING", other)),
        }
    }

    /// One of the function's fixed parameters, which must be this accumulator's.
    fn same<T: PartialEq + fmt::Display>(
        self,
        what: &str,
        found: T,
        mine: T,
    ) -> Result<(), String> {
        if found == mine {
            return Ok(());
        }
        Err(format!(
            "{} snapshot: {what} is {found}, this accumulator's is {mine}",
            self.0
        ))
    }

    fn sequenced(self, what: &str, value: &Value) -> Result<(u64, Value), String> {
        match value {
            Value::Struct(fields) => match fields.as_slice() {
                [Value::BigInt(sequence), value] => Ok((*sequence as u64, value.clone())),
                _ => Err(format!(
                    "{} snapshot: {what} should be a STRUCT<SEQ BIGINT, VAL>",
                    self.0
                )),
            },
            other => Err(self.wrong(what, "a STRUCT<SEQ BIGINT, VAL>", other)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Java's values: equality (`equals`), hashing keys that agree with it, and ordering
// (`compareTo`).
// ---------------------------------------------------------------------------------------------

/// `Objects.equals` on ksqlDB's Java values: doubles by bits with one NaN (so -0.0 differs
/// from 0.0), decimals by value *and* scale, maps regardless of entry order.
pub fn java_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) | (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| java_equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .any(|(k2, v2)| java_equals(k, k2) && java_equals(v, v2))
                })
        }
        _ => a == b,
    }
}

/// Bytes that are equal exactly when [`java_equals`] says the values are, for hashing.
fn java_key(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_java_key(value, &mut out);
    out
}

pub(crate) fn write_java_key(value: &Value, out: &mut Vec<u8>) {
    fn length(out: &mut Vec<u8>, n: usize) {
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    match value {
        Value::Null => out.push(0),
        Value::Boolean(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::Integer(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::BigInt(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Double(v) => {
            out.push(4);
            let bits = if v.is_nan() {
                f64::NAN.to_bits()
            } else {
                v.to_bits()
            };
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Value::Decimal { unscaled, scale } => {
            out.push(5);
            out.extend_from_slice(&unscaled.to_le_bytes());
            out.push(*scale);
        }
        Value::String(s) => {
            out.push(6);
            length(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(7);
            length(out, b.len());
            out.extend_from_slice(b);
        }
        Value::Date(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Time(v) => {
            out.push(9);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Timestamp(v) => {
            out.push(10);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Array(items) | Value::Struct(items) => {
            out.push(if matches!(value, Value::Array(_)) {
                11
            } else {
                12
            });
            length(out, items.len());
            for item in items {
                write_java_key(item, out);
            }
        }
        Value::Map(entries) => {
            // Entry order does not matter to Map.equals: the encoded entries go in sorted.
            let mut encoded: Vec<Vec<u8>> = entries
                .iter()
                .map(|(k, v)| {
                    let mut entry = java_key(k);
                    write_java_key(v, &mut entry);
                    entry
                })
                .collect();
            encoded.sort_unstable();
            out.push(13);
            length(out, encoded.len());
            for entry in encoded {
                length(out, entry.len());
                out.extend_from_slice(&entry);
            }
        }
    }
}

/// `compareTo` of two non-null values of one Comparable type: `Double.compare` (-0.0 < 0.0,
/// NaN above all), `BigDecimal` by value, strings by UTF-16 code units, bytes as Java's
/// *signed* bytes (`ByteBuffer.compareTo`).
fn java_compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.total_cmp(y),
        },
        (Value::Decimal { .. }, Value::Decimal { .. }) => compare_values(a, b),
        (Value::String(x), Value::String(y)) => x.encode_utf16().cmp(y.encode_utf16()),
        (Value::Bytes(x), Value::Bytes(y)) => {
            x.iter().map(|&b| b as i8).cmp(y.iter().map(|&b| b as i8))
        }
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        _ => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// COUNT
// ---------------------------------------------------------------------------------------------

/// COUNT(col) counts non-null values; COUNT(*) (no arguments) counts rows.
#[derive(Clone, Debug)]
struct Count {
    count: i64,
}

impl Accumulator for Count {
    fn snapshot(&self) -> Value {
        snapshot_of("COUNT", [Value::BigInt(self.count)])
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        write_snapshot_of("COUNT", &[Value::BigInt(self.count)], out);
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("COUNT");
        let [count] = restoring.fields(snapshot)?;
        self.count = restoring.big_int("the count", count)?;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        if args.first().is_none_or(|v| !v.is_null()) {
            self.count = self.count.wrapping_add(1);
        }
    }

    fn result(&self) -> Value {
        Value::BigInt(self.count)
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.count = self.count.wrapping_add(other.count);
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        if args.first().is_none_or(|v| !v.is_null()) {
            self.count = self.count.wrapping_sub(1);
        }
        true
    }

    accumulator_plumbing!();
}

/// COUNT_DISTINCT, exactly (ksqlDB estimates with a HyperLogLog of 2^14 registers, which is
/// exact for small counts and within about 1% beyond).
#[derive(Clone, Debug)]
struct CountDistinct {
    seen: HashSet<Vec<u8>>,
}

impl Accumulator for CountDistinct {
    /// The `java_key`s, sorted so that equal states give equal snapshots (a HashSet's order
    /// is per process). The keys' layout is thereby part of the changelog format.
    fn snapshot(&self) -> Value {
        let mut keys: Vec<&Vec<u8>> = self.seen.iter().collect();
        keys.sort_unstable();
        let keys = keys.into_iter().map(|key| Value::Bytes(key.clone()));
        snapshot_of("COUNT_DISTINCT", [Value::Array(keys.collect())])
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("COUNT_DISTINCT");
        let [keys] = restoring.fields(snapshot)?;
        let seen = restoring
            .array("the seen values", keys)?
            .iter()
            .map(|key| match key {
                Value::Bytes(key) => Ok(key.clone()),
                other => Err(restoring.wrong("a seen value", "BYTES", other)),
            })
            .collect::<Result<_, _>>()?;
        self.seen = seen;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if !value.is_null() {
            self.seen.insert(java_key(value));
        }
    }

    fn result(&self) -> Value {
        Value::BigInt(self.seen.len() as i64)
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.seen.extend(other.seen.iter().cloned());
        }
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    accumulator_plumbing!();
}

// ---------------------------------------------------------------------------------------------
// SUM, SUM_LIST, AVG, STDDEV_SAMP, STDDEV_SAMPLE, CORRELATION
// ---------------------------------------------------------------------------------------------

/// A running sum in the Java type ksqlDB keeps it in: `int` and `long` wrap on overflow.
#[derive(Clone, Copy, Debug, PartialEq)]
enum JavaSum {
    Int(i32),
    Long(i64),
    Double(f64),
}

impl JavaSum {
    fn zero(t: &SqlType) -> JavaSum {
        match t {
            SqlType::Integer => JavaSum::Int(0),
            SqlType::BigInt => JavaSum::Long(0),
            _ => JavaSum::Double(0.0),
        }
    }

    /// `self + value` for a non-null value of the sum's type.
    fn plus(self, value: &Value) -> JavaSum {
        match self {
            JavaSum::Int(s) => JavaSum::Int(s.wrapping_add(java_int(value))),
            JavaSum::Long(s) => JavaSum::Long(s.wrapping_add(java_long(value))),
            JavaSum::Double(s) => JavaSum::Double(s + java_double(value)),
        }
    }

    fn minus(self, value: &Value) -> JavaSum {
        match self {
            JavaSum::Int(s) => JavaSum::Int(s.wrapping_sub(java_int(value))),
            JavaSum::Long(s) => JavaSum::Long(s.wrapping_sub(java_long(value))),
            JavaSum::Double(s) => JavaSum::Double(s - java_double(value)),
        }
    }

    fn plus_sum(self, other: JavaSum) -> JavaSum {
        match (self, other) {
            (JavaSum::Int(a), JavaSum::Int(b)) => JavaSum::Int(a.wrapping_add(b)),
            (JavaSum::Long(a), JavaSum::Long(b)) => JavaSum::Long(a.wrapping_add(b)),
            (JavaSum::Double(a), JavaSum::Double(b)) => JavaSum::Double(a + b),
            (mine, _) => mine,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            JavaSum::Int(s) => s as f64,
            JavaSum::Long(s) => s as f64,
            JavaSum::Double(s) => s,
        }
    }

    fn to_value(self) -> Value {
        match self {
            JavaSum::Int(s) => Value::Integer(s),
            JavaSum::Long(s) => Value::BigInt(s),
            JavaSum::Double(s) => Value::Double(s),
        }
    }

    /// A snapshot's sum, which must be of this (zero) sum's Java type.
    fn restored(self, restoring: Restoring, value: &Value) -> Result<JavaSum, String> {
        match (self, value) {
            (JavaSum::Int(_), Value::Integer(v)) => Ok(JavaSum::Int(*v)),
            (JavaSum::Long(_), Value::BigInt(v)) => Ok(JavaSum::Long(*v)),
            (JavaSum::Double(_), Value::Double(v)) => Ok(JavaSum::Double(*v)),
            _ => {
                let expected = match self {
                    JavaSum::Int(_) => "an INTEGER",
                    JavaSum::Long(_) => "a BIGINT",
                    JavaSum::Double(_) => "a DOUBLE",
                };
                Err(restoring.wrong("the sum", expected, value))
            }
        }
    }
}

fn java_int(value: &Value) -> i32 {
    value.as_i64().unwrap_or(0) as i32
}

fn java_long(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn java_double(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// SUM of INTEGER, BIGINT or DOUBLE: 0 when no value was non-null.
#[derive(Clone, Debug)]
struct Sum {
    sum: JavaSum,
}

impl Accumulator for Sum {
    fn snapshot(&self) -> Value {
        snapshot_of("SUM", [self.sum.to_value()])
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        write_snapshot_of("SUM", &[self.sum.to_value()], out);
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("SUM");
        let [sum] = restoring.fields(snapshot)?;
        self.sum = self.sum.restored(restoring, sum)?;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if !value.is_null() {
            self.sum = self.sum.plus(value);
        }
    }

    fn result(&self) -> Value {
        self.sum.to_value()
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.sum = self.sum.plus_sum(other.sum);
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        let value = arg(args, 0);
        if !value.is_null() {
            self.sum = self.sum.minus(value);
        }
        true
    }

    accumulator_plumbing!();
}

/// SUM of DECIMAL(p, s): a DECIMAL(p, s) that must stay below 10^(p - s) in magnitude, else
/// ksqlDB throws "Numeric field overflow". Merging and undoing do not check, as in ksqlDB.
#[derive(Clone, Debug)]
struct DecimalSum {
    /// At `scale` (a group with no values sums to zero at the column's scale).
    unscaled: i128,
    scale: u8,
    precision: u8,
    failure: Option<String>,
}

impl DecimalSum {
    fn at_scale(&self, value: &Value) -> Option<i128> {
        match value {
            Value::Decimal { unscaled, scale } => Some(rescale(
                *unscaled,
                *scale as i32,
                self.scale as i32,
                Rounding::HalfCeiling,
            )),
            other => other
                .as_i64()
                .map(|v| rescale(v as i128, 0, self.scale as i32, Rounding::HalfCeiling)),
        }
    }

    fn overflow_message(&self, unscaled: i128) -> String {
        let (rounded, rounded_scale) =
            round_to_precision(unscaled, self.scale as i32, self.precision);
        let digits = self.precision as i32 - self.scale as i32;
        format!(
            "Numeric field overflow: A field with precision {} and scale {} must round to an \
             absolute value less than 10^{digits}. Got {}",
            self.precision,
            self.scale,
            plain_decimal(rounded, rounded_scale)
        )
    }
}

/// `BigDecimal.round(new MathContext(precision))`: HALF_UP to `precision` significant digits.
fn round_to_precision(unscaled: i128, scale: i32, precision: u8) -> (i128, i32) {
    let precision = (precision as u32).max(1);
    let digits = crate::formats::decimal::unscaled_digits(unscaled);
    if digits <= precision {
        return (unscaled, scale);
    }
    let drop = digits - precision;
    let divisor = 10i128.pow(drop);
    let (quotient, remainder) = (unscaled / divisor, unscaled % divisor);
    let mut rounded = if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
        quotient + unscaled.signum()
    } else {
        quotient
    };
    let mut new_scale = scale - drop as i32;
    // 9.99 -> 10.0: rounding up can add a digit, which is a zero to drop again.
    if crate::formats::decimal::unscaled_digits(rounded) > precision {
        rounded /= 10;
        new_scale -= 1;
    }
    (rounded, new_scale)
}

/// `BigDecimal.toPlainString()`, also for negative scales (`2E+2` -> `200`).
fn plain_decimal(unscaled: i128, scale: i32) -> String {
    if scale >= 0 {
        decimal_to_string(unscaled, scale.min(255) as u8)
    } else {
        format!("{unscaled}{}", "0".repeat(scale.unsigned_abs() as usize))
    }
}

impl Accumulator for DecimalSum {
    fn snapshot(&self) -> Value {
        snapshot_of(
            "DECIMAL_SUM",
            [
                self.result(),
                Value::Integer(self.precision.into()),
                failure_value(&self.failure),
            ],
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("DECIMAL_SUM");
        let [sum, precision, failure] = restoring.fields(snapshot)?;
        let Value::Decimal { unscaled, scale } = sum else {
            return Err(restoring.wrong("the sum", "a DECIMAL", sum));
        };
        restoring.same("the scale", *scale, self.scale)?;
        let precision = restoring.integer("the precision", precision)?;
        restoring.same("the precision", precision, self.precision.into())?;
        let failure = restoring.failure(failure)?;
        self.unscaled = *unscaled;
        self.failure = failure;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if value.is_null() || self.failure.is_some() {
            return;
        }
        // Past 38 digits of precision nothing overflows the i128 check first.
        let limit = 10i128.checked_pow(self.precision as u32);
        match self
            .at_scale(value)
            .and_then(|v| self.unscaled.checked_add(v))
        {
            Some(sum) if limit.is_none_or(|limit| sum.unsigned_abs() < limit.unsigned_abs()) => {
                self.unscaled = sum
            }
            Some(sum) => self.failure = Some(self.overflow_message(sum)),
            None => self.failure = Some("Numeric field overflow".into()),
        }
    }

    fn result(&self) -> Value {
        Value::Decimal {
            unscaled: self.unscaled,
            scale: self.scale,
        }
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            match self.unscaled.checked_add(other.unscaled) {
                Some(sum) => self.unscaled = sum,
                None => self.failure = Some("Numeric field overflow".into()),
            }
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        let value = arg(args, 0);
        if !value.is_null() {
            match self
                .at_scale(value)
                .and_then(|v| self.unscaled.checked_sub(v))
            {
                Some(difference) => self.unscaled = difference,
                None => self.failure = Some("Numeric field overflow".into()),
            }
        }
        true
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    accumulator_plumbing!();
}

/// SUM_LIST of ARRAY<INTEGER | BIGINT | DOUBLE>: each array's non-null elements are summed
/// from zero, then added to the running sum.
#[derive(Clone, Debug)]
struct SumList {
    sum: JavaSum,
}

impl SumList {
    fn list_sum(&self, items: &[Value]) -> JavaSum {
        let zero = match self.sum {
            JavaSum::Int(_) => JavaSum::Int(0),
            JavaSum::Long(_) => JavaSum::Long(0),
            JavaSum::Double(_) => JavaSum::Double(0.0),
        };
        items
            .iter()
            .filter(|v| !v.is_null())
            .fold(zero, |sum, v| sum.plus(v))
    }
}

impl Accumulator for SumList {
    fn snapshot(&self) -> Value {
        snapshot_of("SUM_LIST", [self.sum.to_value()])
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("SUM_LIST");
        let [sum] = restoring.fields(snapshot)?;
        self.sum = self.sum.restored(restoring, sum)?;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        if let Value::Array(items) = arg(args, 0) {
            self.sum = self.sum.plus_sum(self.list_sum(items));
        }
    }

    fn result(&self) -> Value {
        self.sum.to_value()
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.sum = self.sum.plus_sum(other.sum);
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        if let Value::Array(items) = arg(args, 0) {
            self.sum = match (self.sum, self.list_sum(items)) {
                (JavaSum::Int(a), JavaSum::Int(b)) => JavaSum::Int(a.wrapping_sub(b)),
                (JavaSum::Long(a), JavaSum::Long(b)) => JavaSum::Long(a.wrapping_sub(b)),
                (JavaSum::Double(a), JavaSum::Double(b)) => JavaSum::Double(a - b),
                (mine, _) => mine,
            };
        }
        true
    }

    accumulator_plumbing!();
}

/// AVG: the sum in the column's Java type (INTEGER sums wrap) over a BIGINT count, as a
/// DOUBLE; 0.0 (not NULL) before any non-null value.
#[derive(Clone, Debug)]
struct Avg {
    sum: JavaSum,
    count: i64,
}

impl Accumulator for Avg {
    fn snapshot(&self) -> Value {
        snapshot_of("AVG", [self.sum.to_value(), Value::BigInt(self.count)])
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        let fields = [self.sum.to_value(), Value::BigInt(self.count)];
        write_snapshot_of("AVG", &fields, out);
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("AVG");
        let [sum, count] = restoring.fields(snapshot)?;
        let sum = self.sum.restored(restoring, sum)?;
        self.count = restoring.big_int("the count", count)?;
        self.sum = sum;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if !value.is_null() {
            self.sum = self.sum.plus(value);
            self.count += 1;
        }
    }

    fn result(&self) -> Value {
        if self.count == 0 {
            return Value::Double(0.0);
        }
        Value::Double(self.sum.as_f64() / self.count as f64)
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.sum = self.sum.plus_sum(other.sum);
            self.count += other.count;
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        let value = arg(args, 0);
        if !value.is_null() {
            self.sum = self.sum.minus(value);
            self.count -= 1;
        }
        true
    }

    accumulator_plumbing!();
}

/// STDDEV_SAMP and STDDEV_SAMPLE: Youngs-Cramer updates of M2 with ksqlDB's exact Java
/// arithmetic (the INTEGER/BIGINT deltas are computed in `long`). STDDEV_SAMP returns
/// M2 / (n - 1), the sample *variance*, where STDDEV_SAMPLE returns its square root; both are
/// 0.0 below two values. On merging, STDDEV_SAMP divides INTEGER/BIGINT sums by counts in
/// integer arithmetic (truncating the means), STDDEV_SAMPLE in doubles.
#[derive(Clone, Debug)]
struct StdDev {
    sum: JavaSum,
    count: i64,
    m2: f64,
    /// STDDEV_SAMP.
    variance_only: bool,
}

impl StdDev {
    fn kind(&self) -> &'static str {
        if self.variance_only {
            "STDDEV_SAMP"
        } else {
            "STDDEV_SAMPLE"
        }
    }

    /// `value * (count + 1) - (sum + value)` in the sum's Java type, as a double.
    fn delta(&self, value: &Value) -> f64 {
        let next = self.count.wrapping_add(1);
        match self.sum {
            JavaSum::Int(sum) => {
                let v = java_int(value);
                (v as i64)
                    .wrapping_mul(next)
                    .wrapping_sub(sum.wrapping_add(v) as i64) as f64
            }
            JavaSum::Long(sum) => {
                let v = java_long(value);
                v.wrapping_mul(next).wrapping_sub(sum.wrapping_add(v)) as f64
            }
            JavaSum::Double(sum) => {
                let v = java_double(value);
                v * next as f64 - (sum + v)
            }
        }
    }

    /// The difference of the two means, as each function's merge computes it.
    fn mean_difference(&self, other: &StdDev) -> f64 {
        let (c1, c2) = (self.count, other.count);
        match (self.sum, other.sum) {
            (JavaSum::Int(a), JavaSum::Int(b)) if self.variance_only => (a as i64)
                .wrapping_div(c1)
                .wrapping_sub((b as i64).wrapping_div(c2))
                as f64,
            (JavaSum::Long(a), JavaSum::Long(b)) if self.variance_only => {
                a.wrapping_div(c1).wrapping_sub(b.wrapping_div(c2)) as f64
            }
            (a, b) => a.as_f64() / c1 as f64 - b.as_f64() / c2 as f64,
        }
    }
}

impl Accumulator for StdDev {
    fn snapshot(&self) -> Value {
        snapshot_of(
            self.kind(),
            [
                self.sum.to_value(),
                Value::BigInt(self.count),
                Value::Double(self.m2),
            ],
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring(self.kind());
        let [sum, count, m2] = restoring.fields(snapshot)?;
        let sum = self.sum.restored(restoring, sum)?;
        let count = restoring.big_int("the count", count)?;
        self.m2 = restoring.double("M2", m2)?;
        (self.sum, self.count) = (sum, count);
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if value.is_null() {
            return;
        }
        let count = self.count.wrapping_add(1);
        let m2 = if count - 1 > 0 {
            let delta = self.delta(value);
            delta * delta / count.wrapping_mul(count - 1) as f64
        } else {
            0.0
        };
        self.count = count;
        self.sum = self.sum.plus(value);
        self.m2 += m2;
    }

    fn result(&self) -> Value {
        if self.count < 2 {
            return Value::Double(0.0);
        }
        let variance = self.m2 / (self.count - 1) as f64;
        Value::Double(if self.variance_only {
            variance
        } else {
            variance.sqrt()
        })
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        let Some(other) = same::<Self>(other) else {
            return;
        };
        let (c1, c2) = (self.count, other.count);
        let count = c1.wrapping_add(c2);
        self.m2 = if c1 == 0 || c2 == 0 {
            self.m2 + other.m2
        } else {
            let inner = self.mean_difference(other);
            self.m2 + other.m2 + c1.wrapping_mul(c2) as f64 * inner * inner / count as f64
        };
        self.count = count;
        self.sum = self.sum.plus_sum(other.sum);
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        let value = arg(args, 0);
        if value.is_null() {
            return true;
        }
        let count = self.count.wrapping_sub(1);
        let m2 = if count > 0 {
            let delta = self.delta(value);
            delta * delta / count.wrapping_mul(count + 1) as f64
        } else {
            0.0
        };
        self.count = count;
        self.sum = self.sum.minus(value);
        self.m2 -= m2;
        true
    }

    accumulator_plumbing!();
}

/// CORRELATION(x, y): Pearson's coefficient from single-pass sums in doubles; rows with a
/// NULL in either are skipped. Fewer than two rows (or a constant column) give NaN.
#[derive(Clone, Debug, Default)]
struct Correlation {
    x_sum: f64,
    y_sum: f64,
    x_squared_sum: f64,
    y_squared_sum: f64,
    xy_sum: f64,
    count: i64,
}

impl Correlation {
    fn pair(args: &[Value]) -> Option<(f64, f64)> {
        let (x, y) = (arg(args, 0), arg(args, 1));
        if x.is_null() || y.is_null() {
            return None;
        }
        Some((java_double(x), java_double(y)))
    }
}

impl Accumulator for Correlation {
    fn snapshot(&self) -> Value {
        let sums = [
            self.x_sum,
            self.y_sum,
            self.x_squared_sum,
            self.y_squared_sum,
            self.xy_sum,
        ];
        snapshot_of(
            "CORRELATION",
            sums.into_iter()
                .map(Value::Double)
                .chain([Value::BigInt(self.count)]),
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("CORRELATION");
        let [x, y, x_squared, y_squared, xy, count] = restoring.fields(snapshot)?;
        *self = Correlation {
            x_sum: restoring.double("X_SUM", x)?,
            y_sum: restoring.double("Y_SUM", y)?,
            x_squared_sum: restoring.double("X_SQUARED_SUM", x_squared)?,
            y_squared_sum: restoring.double("Y_SQUARED_SUM", y_squared)?,
            xy_sum: restoring.double("XY_SUM", xy)?,
            count: restoring.big_int("the count", count)?,
        };
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        if let Some((x, y)) = Self::pair(args) {
            self.x_sum += x;
            self.y_sum += y;
            self.x_squared_sum += x * x;
            self.y_squared_sum += y * y;
            self.xy_sum += x * y;
            self.count += 1;
        }
    }

    fn result(&self) -> Value {
        let n = self.count as f64;
        let numerator = n * self.xy_sum - self.x_sum * self.y_sum;
        let denominator_x = n * self.x_squared_sum - self.x_sum * self.x_sum;
        let denominator_y = n * self.y_squared_sum - self.y_sum * self.y_sum;
        Value::Double(numerator / (denominator_x * denominator_y).sqrt())
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.x_sum += other.x_sum;
            self.y_sum += other.y_sum;
            self.x_squared_sum += other.x_squared_sum;
            self.y_squared_sum += other.y_squared_sum;
            self.xy_sum += other.xy_sum;
            self.count += other.count;
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        if let Some((x, y)) = Self::pair(args) {
            self.x_sum -= x;
            self.y_sum -= y;
            self.x_squared_sum -= x * x;
            self.y_squared_sum -= y * y;
            self.xy_sum -= x * y;
            self.count -= 1;
        }
        true
    }

    accumulator_plumbing!();
}

// ---------------------------------------------------------------------------------------------
// MIN, MAX
// ---------------------------------------------------------------------------------------------

/// MIN / MAX by Java's `compareTo`; NULLs are skipped, and NULL is the result until a value.
#[derive(Clone, Debug)]
struct MinMax {
    /// `Greater` for MAX, `Less` for MIN.
    keep: Ordering,
    best: Option<Value>,
}

impl MinMax {
    fn kind(&self) -> &'static str {
        if self.keep == Ordering::Greater {
            "MAX"
        } else {
            "MIN"
        }
    }

    fn offer(&mut self, candidate: &Value) {
        if candidate.is_null() {
            return;
        }
        match &self.best {
            Some(best) if java_compare(candidate, best) != self.keep => {}
            _ => self.best = Some(candidate.clone()),
        }
    }
}

impl Accumulator for MinMax {
    /// NULL before any value (NULLs are never kept).
    fn snapshot(&self) -> Value {
        snapshot_of(self.kind(), [self.result()])
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        write_snapshot_of(self.kind(), &[self.result()], out);
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let [best] = Restoring(self.kind()).fields(snapshot)?;
        self.best = (!best.is_null()).then(|| best.clone());
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        self.offer(arg(args, 0));
    }

    fn result(&self) -> Value {
        self.best.clone().unwrap_or(Value::Null)
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(Some(best)) = same::<Self>(other).map(|o| &o.best) {
            self.offer(best);
        }
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    accumulator_plumbing!();
}

// ---------------------------------------------------------------------------------------------
// COLLECT_LIST, COLLECT_SET, HISTOGRAM, ATTR
// ---------------------------------------------------------------------------------------------

/// COLLECT_LIST: every value, NULLs included, in arrival order, up to the limit.
#[derive(Clone, Debug)]
struct CollectList {
    items: Vec<Value>,
    limit: usize,
}

impl Accumulator for CollectList {
    fn snapshot(&self) -> Value {
        snapshot_of(
            "COLLECT_LIST",
            [self.result(), Value::BigInt(self.limit as i64)],
        )
    }

    /// The limit comes from the snapshot: the items were collected under it, and the group
    /// goes on as it would have without the restart.
    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("COLLECT_LIST");
        let [items, limit] = restoring.fields(snapshot)?;
        let items = restoring.array("the items", items)?.to_vec();
        self.limit = restoring.size("the limit", limit)?;
        self.items = items;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        if self.items.len() < self.limit {
            self.items.push(arg(args, 0).clone());
        }
    }

    fn result(&self) -> Value {
        Value::Array(self.items.clone())
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            let room = self.limit.saturating_sub(self.items.len());
            self.items.extend(other.items.iter().take(room).cloned());
        }
    }

    /// Removes the *last* equal value (ksqlDB does not track which row added which), or
    /// nothing when none is there (the value came past the limit).
    fn undo(&mut self, args: &[Value]) -> bool {
        let value = arg(args, 0);
        if let Some(index) = self.items.iter().rposition(|item| java_equals(item, value)) {
            self.items.remove(index);
        }
        true
    }

    accumulator_plumbing!();
}

/// COLLECT_SET: distinct values (by Java's `equals`; NULL is one value), in first-arrival
/// order, up to the limit.
#[derive(Clone, Debug)]
struct CollectSet {
    items: Vec<Value>,
    keys: HashSet<Vec<u8>>,
    limit: usize,
}

impl CollectSet {
    fn insert(&mut self, value: &Value) {
        if self.items.len() < self.limit && self.keys.insert(java_key(value)) {
            self.items.push(value.clone());
        }
    }
}

impl Accumulator for CollectSet {
    /// The keys are the items' `java_key`s: not stored, made again on restore.
    fn snapshot(&self) -> Value {
        snapshot_of(
            "COLLECT_SET",
            [self.result(), Value::BigInt(self.limit as i64)],
        )
    }

    /// The limit comes from the snapshot, as COLLECT_LIST's does.
    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("COLLECT_SET");
        let [items, limit] = restoring.fields(snapshot)?;
        let items = restoring.array("the items", items)?;
        let limit = restoring.size("the limit", limit)?;
        let mut keys = HashSet::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if !keys.insert(java_key(item)) {
                return Err(format!(
                    "COLLECT_SET snapshot: item {index} repeats an earlier one"
                ));
            }
        }
        (self.items, self.keys, self.limit) = (items.to_vec(), keys, limit);
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        self.insert(arg(args, 0));
    }

    fn result(&self) -> Value {
        Value::Array(self.items.clone())
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            for item in &other.items {
                self.insert(item);
            }
        }
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    accumulator_plumbing!();
}

/// HISTOGRAM: a count per distinct string (NULL counted under a NULL key, as Java's HashMap
/// does), ignoring new strings past 1000 distinct ones; entries undone to zero disappear.
#[derive(Clone, Debug)]
struct Histogram {
    /// In first-arrival order (ksqlDB's HashMap order is its own; JSON consumers compare maps
    /// regardless of order).
    counts: Vec<(Value, i64)>,
}

impl Histogram {
    fn bump(&mut self, key: &Value, by: i64) {
        if let Some((_, count)) = self.counts.iter_mut().find(|(k, _)| k == key) {
            *count += by;
        } else if self.counts.len() < HISTOGRAM_LIMIT {
            self.counts.push((key.clone(), by));
        }
    }
}

impl Accumulator for Histogram {
    fn snapshot(&self) -> Value {
        snapshot_of("HISTOGRAM", [self.result()])
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("HISTOGRAM");
        let [counts] = restoring.fields(snapshot)?;
        let Value::Map(entries) = counts else {
            return Err(restoring.wrong("the counts", "a MAP", counts));
        };
        let counts = entries
            .iter()
            .map(|(key, count)| Ok((key.clone(), restoring.big_int("a count", count)?)))
            .collect::<Result<_, String>>()?;
        self.counts = counts;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        self.bump(arg(args, 0), 1);
    }

    fn result(&self) -> Value {
        Value::Map(
            self.counts
                .iter()
                .map(|(k, count)| (k.clone(), Value::BigInt(*count)))
                .collect(),
        )
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            for (key, count) in &other.counts {
                self.bump(key, *count);
            }
        }
    }

    /// An absent key (one that came past the limit) is left alone; ksqlDB throws there.
    fn undo(&mut self, args: &[Value]) -> bool {
        let key = arg(args, 0);
        if let Some(index) = self.counts.iter().position(|(k, _)| k == key) {
            self.counts[index].1 -= 1;
            if self.counts[index].1 < 1 {
                self.counts.remove(index);
            }
        }
        true
    }

    accumulator_plumbing!();
}

/// ATTR: the value when every row (still) holds the same one, else NULL. NULL counts as a
/// value, so NULL then 'a' gives NULL. Counts are Java `int`s clamped at zero.
#[derive(Clone, Debug)]
struct Attr {
    entries: Vec<(Value, i32)>,
}

impl Attr {
    fn update(&mut self, value: &Value, by: i32) {
        let mut found = false;
        for (entry, count) in &mut self.entries {
            if java_equals(entry, value) {
                found = true;
                *count = count.wrapping_add(by).max(0);
            }
        }
        if !found && by > 0 {
            self.entries.push((value.clone(), by));
        }
    }
}

impl Accumulator for Attr {
    /// As ksqlDB's `ARRAY<STRUCT<VALUE, COUNT>>`, zero counts included (they are kept).
    fn snapshot(&self) -> Value {
        let entries = self
            .entries
            .iter()
            .map(|(value, count)| Value::Struct(vec![value.clone(), Value::Integer(*count)]));
        snapshot_of("ATTR", [Value::Array(entries.collect())])
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("ATTR");
        let [entries] = restoring.fields(snapshot)?;
        let entries = restoring
            .array("the entries", entries)?
            .iter()
            .map(|entry| match entry {
                Value::Struct(fields) => match fields.as_slice() {
                    [value, Value::Integer(count)] => Ok((value.clone(), *count)),
                    _ => Err(
                        "ATTR snapshot: an entry should be a STRUCT<VALUE, COUNT INTEGER>"
                            .to_string(),
                    ),
                },
                other => Err(restoring.wrong("an entry", "a STRUCT", other)),
            })
            .collect::<Result<_, _>>()?;
        self.entries = entries;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        self.update(arg(args, 0), 1);
    }

    fn result(&self) -> Value {
        let mut live = self.entries.iter().filter(|(_, count)| *count > 0);
        match (live.next(), live.next()) {
            (Some((value, _)), None) => value.clone(),
            _ => Value::Null,
        }
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            for (value, count) in &other.entries {
                self.update(value, *count);
            }
        }
    }

    fn undo(&mut self, args: &[Value]) -> bool {
        self.update(arg(args, 0), -1);
        true
    }

    accumulator_plumbing!();
}

// ---------------------------------------------------------------------------------------------
// EARLIEST_BY_OFFSET, LATEST_BY_OFFSET
// ---------------------------------------------------------------------------------------------

/// Process-wide arrival order, as ksqlDB's static sequence: rows reach an aggregation in
/// offset order, so "earliest" is the smallest sequence. Merging sessions compares them.
static OFFSET_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn next_sequence() -> u64 {
    OFFSET_SEQUENCE.fetch_add(1, AtomicOrdering::Relaxed)
}

/// After restoring an entry of `sequence` (from an earlier process, whose count this one
/// started again from zero), sequences go on past it: rows arriving now are later than every
/// restored one, and merges compare them.
fn resume_sequence_after(sequence: u64) {
    OFFSET_SEQUENCE.fetch_max(sequence.saturating_add(1), AtomicOrdering::Relaxed);
}

/// EARLIEST_BY_OFFSET(col[, ignoreNulls]) and LATEST_BY_OFFSET(col[, ignoreNulls]).
#[derive(Clone, Debug)]
struct ByOffset {
    /// (sequence, value). LATEST starts, as in ksqlDB, with a NULL entry sequenced when the
    /// accumulator is made; EARLIEST starts empty.
    entry: Option<(u64, Value)>,
    ignore_nulls: bool,
    latest: bool,
}

impl ByOffset {
    fn kind(&self) -> &'static str {
        if self.latest {
            "LATEST_BY_OFFSET"
        } else {
            "EARLIEST_BY_OFFSET"
        }
    }
}

impl Accumulator for ByOffset {
    fn snapshot(&self) -> Value {
        let entry = self.entry.as_ref().map_or(Value::Null, sequenced_value);
        snapshot_of(self.kind(), [Value::Boolean(self.ignore_nulls), entry])
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring(self.kind());
        let [ignore_nulls, entry] = restoring.fields(snapshot)?;
        let ignore_nulls = restoring.boolean("ignoreNulls", ignore_nulls)?;
        restoring.same("ignoreNulls", ignore_nulls, self.ignore_nulls)?;
        let entry = match entry {
            Value::Null => None,
            entry => Some(restoring.sequenced("the entry", entry)?),
        };
        if let Some((sequence, _)) = &entry {
            resume_sequence_after(*sequence);
        }
        self.entry = entry;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if (value.is_null() && self.ignore_nulls) || (!self.latest && self.entry.is_some()) {
            return;
        }
        self.entry = Some((next_sequence(), value.clone()));
    }

    fn result(&self) -> Value {
        self.entry
            .as_ref()
            .map_or(Value::Null, |(_, value)| value.clone())
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        let Some(Some(theirs)) = same::<Self>(other).map(|o| &o.entry) else {
            return;
        };
        let Some(mine) = &self.entry else {
            self.entry = Some(theirs.clone());
            return;
        };
        let take_theirs = if !self.latest {
            mine.0 >= theirs.0
        } else if self.ignore_nulls && (mine.1.is_null() || theirs.1.is_null()) {
            // ksqlDB's null-ignoring comparator: a NULL entry loses to a value, and of two
            // NULLs the first argument stays.
            mine.1.is_null() && !theirs.1.is_null()
        } else {
            mine.0 < theirs.0
        };
        if take_theirs {
            self.entry = Some(theirs.clone());
        }
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    accumulator_plumbing!();
}

/// EARLIEST_BY_OFFSET(col, n[, ignoreNulls]) and LATEST_BY_OFFSET(col, n[, ignoreNulls]):
/// ARRAYs in arrival order.
#[derive(Clone, Debug)]
struct ByOffsetN {
    entries: Vec<(u64, Value)>,
    n: usize,
    ignore_nulls: bool,
    latest: bool,
}

impl ByOffsetN {
    fn kind(&self) -> &'static str {
        if self.latest {
            "LATEST_BY_OFFSET_N"
        } else {
            "EARLIEST_BY_OFFSET_N"
        }
    }
}

impl Accumulator for ByOffsetN {
    fn snapshot(&self) -> Value {
        let entries = self.entries.iter().map(sequenced_value).collect();
        snapshot_of(
            self.kind(),
            [
                Value::BigInt(self.n as i64),
                Value::Boolean(self.ignore_nulls),
                Value::Array(entries),
            ],
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring(self.kind());
        let [n, ignore_nulls, entries] = restoring.fields(snapshot)?;
        restoring.same("n", restoring.size("n", n)?, self.n)?;
        let ignore_nulls = restoring.boolean("ignoreNulls", ignore_nulls)?;
        restoring.same("ignoreNulls", ignore_nulls, self.ignore_nulls)?;
        let entries: Vec<(u64, Value)> = restoring
            .array("the entries", entries)?
            .iter()
            .map(|entry| restoring.sequenced("an entry", entry))
            .collect::<Result<_, _>>()?;
        if let Some(latest) = entries.iter().map(|(sequence, _)| *sequence).max() {
            resume_sequence_after(latest);
        }
        self.entries = entries;
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if value.is_null() && self.ignore_nulls {
            return;
        }
        if self.latest {
            self.entries.push((next_sequence(), value.clone()));
            if self.entries.len() > self.n {
                let excess = self.entries.len() - self.n;
                self.entries.drain(..excess);
            }
        } else if self.entries.len() < self.n {
            self.entries.push((next_sequence(), value.clone()));
        }
    }

    fn result(&self) -> Value {
        Value::Array(self.entries.iter().map(|(_, v)| v.clone()).collect())
    }

    /// Both functions keep the *earliest* n of the two by sequence: ksqlDB's LATEST merge
    /// sorts ascending and takes the head too.
    fn merge(&mut self, other: &dyn Accumulator) {
        if let Some(other) = same::<Self>(other) {
            self.entries.extend(other.entries.iter().cloned());
            self.entries.sort_by_key(|(sequence, _)| *sequence);
            self.entries.truncate(self.n);
        }
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    accumulator_plumbing!();
}

// ---------------------------------------------------------------------------------------------
// TOPK, TOPKDISTINCT
// ---------------------------------------------------------------------------------------------

const INDEX_MINUS_ONE: &str = "Index -1 out of bounds for length 0";

/// TOPK(col[, other cols...], k): the k greatest non-null values, descending, duplicates
/// kept; with other columns, STRUCTs of the sort value and those columns' values from the same
/// row. Ties keep arrival order (Java's stable sort), and a value equal to the current k-th
/// does not displace it.
#[derive(Clone, Debug)]
struct TopK {
    k: i32,
    /// Arguments per row: 1 for plain values, more for STRUCT entries.
    width: usize,
    entries: Vec<Value>,
    failure: Option<String>,
}

impl TopK {
    fn sort_value(entry: &Value) -> &Value {
        match entry {
            Value::Struct(fields) => fields.first().unwrap_or(&NULL),
            plain => plain,
        }
    }

    fn is_full(&self, len: usize) -> bool {
        self.k >= 0 && len == self.k as usize
    }
}

impl Accumulator for TopK {
    fn snapshot(&self) -> Value {
        snapshot_of(
            "TOPK",
            [
                Value::Integer(self.k),
                Value::BigInt(self.width as i64),
                self.result(),
                failure_value(&self.failure),
            ],
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("TOPK");
        let [k, width, entries, failure] = restoring.fields(snapshot)?;
        restoring.same("k", restoring.integer("k", k)?, self.k)?;
        restoring.same(
            "the column count",
            restoring.size("the column count", width)?,
            self.width,
        )?;
        let entries = restoring.array("the entries", entries)?;
        // With other columns every entry is a STRUCT of the sort value and theirs.
        let misfit = entries.iter().position(|entry| match entry {
            Value::Struct(fields) => fields.len() != self.width || self.width == 1,
            _ => self.width > 1,
        });
        if let Some(index) = misfit {
            return Err(format!(
                "TOPK snapshot: entry {index} does not have the call's {} columns",
                self.width
            ));
        }
        let failure = restoring.failure(failure)?;
        (self.entries, self.failure) = (entries.to_vec(), failure);
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let sort = arg(args, 0);
        if sort.is_null() || self.failure.is_some() {
            return;
        }
        let len = self.entries.len();
        if let Some(last) = self.entries.last() {
            if java_compare(sort, Self::sort_value(last)) != Ordering::Greater && self.is_full(len)
            {
                return;
            }
        }
        let entry = if self.width == 1 {
            sort.clone()
        } else {
            Value::Struct((0..self.width).map(|i| arg(args, i).clone()).collect())
        };
        if self.is_full(len) {
            let Some(last) = self.entries.last_mut() else {
                self.failure = Some(INDEX_MINUS_ONE.into());
                return;
            };
            *last = entry;
        } else {
            self.entries.push(entry);
        }
        self.entries
            .sort_by(|a, b| java_compare(Self::sort_value(b), Self::sort_value(a)));
    }

    fn result(&self) -> Value {
        Value::Array(self.entries.clone())
    }

    /// Merges the two descending lists, the first one winning ties.
    fn merge(&mut self, other: &dyn Accumulator) {
        let Some(other) = same::<Self>(other) else {
            return;
        };
        let (mut i, mut j) = (0, 0);
        let mut merged = Vec::new();
        while !self.is_full(merged.len()) {
            match (self.entries.get(i), other.entries.get(j)) {
                (Some(mine), theirs)
                    if theirs.is_none_or(|t| {
                        java_compare(Self::sort_value(mine), Self::sort_value(t)) != Ordering::Less
                    }) =>
                {
                    merged.push(mine.clone());
                    i += 1;
                }
                (_, Some(theirs)) => {
                    merged.push(theirs.clone());
                    j += 1;
                }
                _ => break,
            }
        }
        self.entries = merged;
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    accumulator_plumbing!();
}

/// TOPKDISTINCT(col, k): the k greatest distinct non-null values, descending.
#[derive(Clone, Debug)]
struct TopKDistinct {
    k: i32,
    items: Vec<Value>,
    failure: Option<String>,
}

impl TopKDistinct {
    fn is_full(&self, len: usize) -> bool {
        self.k >= 0 && len == self.k as usize
    }
}

impl Accumulator for TopKDistinct {
    fn snapshot(&self) -> Value {
        snapshot_of(
            "TOPKDISTINCT",
            [
                Value::Integer(self.k),
                self.result(),
                failure_value(&self.failure),
            ],
        )
    }

    fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let restoring = Restoring("TOPKDISTINCT");
        let [k, items, failure] = restoring.fields(snapshot)?;
        restoring.same("k", restoring.integer("k", k)?, self.k)?;
        let items = restoring.array("the items", items)?.to_vec();
        let failure = restoring.failure(failure)?;
        (self.items, self.failure) = (items, failure);
        Ok(())
    }

    fn add(&mut self, args: &[Value]) {
        let value = arg(args, 0);
        if value.is_null() || self.failure.is_some() {
            return;
        }
        let len = self.items.len();
        if self.is_full(len) {
            let Some(last) = self.items.last() else {
                self.failure = Some(INDEX_MINUS_ONE.into());
                return;
            };
            if java_compare(value, last) != Ordering::Greater {
                return;
            }
        }
        if self.items.iter().any(|item| java_equals(item, value)) {
            return;
        }
        let full = self.is_full(len);
        match self.items.last_mut() {
            Some(last) if full => *last = value.clone(),
            _ => self.items.push(value.clone()),
        }
        self.items.sort_by(|a, b| java_compare(b, a));
    }

    fn result(&self) -> Value {
        Value::Array(self.items.clone())
    }

    fn merge(&mut self, other: &dyn Accumulator) {
        let Some(other) = same::<Self>(other) else {
            return;
        };
        let (mut i, mut j) = (0, 0);
        let mut merged = Vec::new();
        while !self.is_full(merged.len()) {
            match (self.items.get(i), other.items.get(j)) {
                (None, None) => break,
                (Some(mine), None) => {
                    merged.push(mine.clone());
                    i += 1;
                }
                (None, Some(theirs)) => {
                    merged.push(theirs.clone());
                    j += 1;
                }
                (Some(mine), Some(theirs)) => match java_compare(mine, theirs) {
                    Ordering::Greater => {
                        merged.push(mine.clone());
                        i += 1;
                    }
                    Ordering::Less => {
                        merged.push(theirs.clone());
                        j += 1;
                    }
                    Ordering::Equal => {
                        merged.push(mine.clone());
                        i += 1;
                        j += 1;
                    }
                },
            }
        }
        self.items = merged;
    }

    fn undo(&mut self, _args: &[Value]) -> bool {
        false
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    accumulator_plumbing!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use SqlType::{BigInt, Double, Integer};

    fn function(name: &str, types: &[SqlType], literals: &[Value]) -> AggregateFunction {
        resolve(name, types, literals, &BTreeMap::new()).unwrap()
    }

    fn refusal(name: &str, types: &[SqlType], literals: &[Value]) -> String {
        resolve(name, types, literals, &BTreeMap::new()).unwrap_err()
    }

    /// The result after each single-argument row.
    fn each(function: &AggregateFunction, values: &[Value]) -> Vec<Value> {
        let mut accumulator = function.new_accumulator();
        values
            .iter()
            .map(|v| {
                accumulator.add(std::slice::from_ref(v));
                accumulator.result()
            })
            .collect()
    }

    fn filled(function: &AggregateFunction, values: &[Value]) -> Box<dyn Accumulator> {
        let mut accumulator = function.new_accumulator();
        for v in values {
            accumulator.add(std::slice::from_ref(v));
        }
        accumulator
    }

    fn int(v: i32) -> Value {
        Value::Integer(v)
    }

    fn long(v: i64) -> Value {
        Value::BigInt(v)
    }

    fn double(v: f64) -> Value {
        Value::Double(v)
    }

    fn text(v: &str) -> Value {
        Value::String(v.into())
    }

    fn dec(unscaled: i128, scale: u8) -> Value {
        Value::Decimal { unscaled, scale }
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn decimal(precision: u8, scale: u8) -> SqlType {
        SqlType::Decimal { precision, scale }
    }

    const NULL_VALUE: Value = Value::Null;

    #[test]
    fn count_star_counts_rows_and_count_of_a_column_skips_nulls() {
        let star = function("count", &[], &[]);
        assert_eq!(star.return_type, BigInt);
        let mut rows = star.new_accumulator();
        rows.add(&[]);
        rows.add(&[]);
        assert_eq!(rows.result(), long(2));

        let column = function("COUNT", &[SqlType::String], &[]);
        let mut counted = filled(&column, &[text("a"), NULL_VALUE, text("b")]);
        assert_eq!(counted.result(), long(2));
        assert!(counted.undo(&[text("a")]));
        assert!(counted.undo(&[NULL_VALUE]));
        assert_eq!(counted.result(), long(1));
        counted.merge(filled(&column, &[text("c"), text("d")]).as_ref());
        assert_eq!(counted.result(), long(3));
        assert!(column.undoable());
    }

    #[test]
    fn integer_sums_wrap_like_java_ints() {
        let sum = function("SUM", &[Integer], &[]);
        assert_eq!(sum.return_type, Integer);
        assert_eq!(
            each(&sum, &[int(i32::MAX), int(1)]),
            vec![int(i32::MAX), int(i32::MIN)]
        );
        let sum = function("SUM", &[BigInt], &[]);
        assert_eq!(
            filled(&sum, &[long(i64::MAX), long(2)]).result(),
            long(i64::MIN + 1)
        );
    }

    #[test]
    fn sums_skip_nulls_start_at_zero_undo_and_merge() {
        let sum = function("SUM", &[BigInt], &[]);
        assert_eq!(filled(&sum, &[NULL_VALUE]).result(), long(0));
        assert_eq!(sum.new_accumulator().result(), long(0));

        let sum = function("SUM", &[Double], &[]);
        let mut total = filled(&sum, &[double(0.5), NULL_VALUE, double(0.25)]);
        assert_eq!(total.result(), double(0.75));
        assert!(total.undo(&[double(0.5)]));
        assert!(total.undo(&[NULL_VALUE]));
        assert_eq!(total.result(), double(0.25));
        total.merge(filled(&sum, &[double(2.0)]).as_ref());
        assert_eq!(total.result(), double(2.25));
    }

    #[test]
    fn decimal_sums_keep_the_columns_precision_and_scale() {
        let sum = function("SUM", &[decimal(4, 2)], &[]);
        assert_eq!(sum.return_type, decimal(4, 2));
        assert_eq!(sum.new_accumulator().result(), dec(0, 2));
        let mut total = filled(&sum, &[dec(1250, 2), NULL_VALUE, dec(25, 2)]);
        assert_eq!(total.result(), dec(1275, 2));
        assert!(total.undo(&[dec(1250, 2)]));
        assert_eq!(total.result(), dec(25, 2));
        total.merge(filled(&sum, &[dec(-100, 2)]).as_ref());
        assert_eq!(total.result(), dec(-75, 2));
        assert_eq!(total.failure(), None);
    }

    #[test]
    fn decimal_sum_overflow_fails_as_ksqldb_does_and_keeps_the_last_sum() {
        let sum = function("SUM", &[decimal(4, 2)], &[]);
        let mut total = filled(&sum, &[dec(6000, 2), dec(5000, 2)]);
        assert_eq!(
            total.failure(),
            Some(
                "Numeric field overflow: A field with precision 4 and scale 2 must round to an \
                 absolute value less than 10^2. Got 110.0"
            )
        );
        assert_eq!(total.result(), dec(6000, 2));
        total.add(&[dec(1, 2)]);
        assert_eq!(
            total.result(),
            dec(6000, 2),
            "a failed query takes no more rows"
        );

        let sum = function("SUM", &[decimal(2, 0)], &[]);
        let total = filled(&sum, &[dec(99, 0), dec(99, 0)]);
        assert!(total
            .failure()
            .unwrap()
            .ends_with("less than 10^2. Got 200"));
        let total = filled(&sum, &[dec(-99, 0), dec(-1, 0)]);
        assert!(total.failure().unwrap().ends_with("Got -100"));
    }

    #[test]
    fn decimals_round_to_precision_as_java_math_context_does() {
        assert_eq!(round_to_precision(10001, 2, 4), (1000, 1));
        assert_eq!(round_to_precision(99995, 2, 4), (1000, 0));
        assert_eq!(round_to_precision(198, 0, 2), (20, -1));
        assert_eq!(round_to_precision(-10005, 2, 4), (-1001, 1));
        assert_eq!(plain_decimal(20, -1), "200");
        assert_eq!(plain_decimal(1000, 1), "100.0");
    }

    #[test]
    fn sum_list_adds_the_arrays_non_null_elements() {
        let ints = SqlType::Array(Box::new(Integer));
        let sum = function("sum_list", &[ints], &[]);
        assert_eq!(sum.return_type, Integer);
        let mut total = filled(
            &sum,
            &[
                array(vec![int(1), NULL_VALUE, int(2)]),
                NULL_VALUE,
                array(vec![int(3)]),
            ],
        );
        assert_eq!(total.result(), int(6));
        assert!(total.undo(&[array(vec![int(1), NULL_VALUE, int(2)])]));
        assert_eq!(total.result(), int(3));
        assert!(refusal(
            "SUM_LIST",
            &[SqlType::Array(Box::new(SqlType::String))],
            &[]
        )
        .starts_with("Function 'sum_list' does not accept parameters (ARRAY<STRING>)."));
    }

    #[test]
    fn averages_are_doubles_and_zero_before_any_value() {
        let avg = function("AVG", &[Integer], &[]);
        assert_eq!(avg.return_type, Double);
        assert_eq!(avg.new_accumulator().result(), double(0.0));
        assert_eq!(
            each(&avg, &[int(2), int(3), NULL_VALUE, int(7)]),
            vec![double(2.0), double(2.5), double(2.5), double(4.0)]
        );
        // The sum is a Java int: it wraps before the division.
        let wrapped = filled(&avg, &[int(i32::MAX), int(1)]);
        assert_eq!(wrapped.result(), double(-1073741824.0));
    }

    #[test]
    fn averages_undo_and_merge() {
        let avg = function("avg", &[BigInt], &[]);
        let mut mean = filled(&avg, &[long(10), long(11)]);
        mean.merge(filled(&avg, &[long(3)]).as_ref());
        assert_eq!(mean.result(), double(8.0));
        assert!(mean.undo(&[long(3)]));
        assert!(mean.undo(&[NULL_VALUE]));
        assert_eq!(mean.result(), double(10.5));
        assert!(mean.undo(&[long(10)]));
        assert!(mean.undo(&[long(11)]));
        assert_eq!(mean.result(), double(0.0));
    }

    #[test]
    fn averages_take_no_decimals_because_udafs_take_no_implicit_casts() {
        assert_eq!(
            refusal("AVG", &[decimal(4, 2)], &[]),
            "Function 'avg' does not accept parameters (DECIMAL(4, 2))."
        );
        assert!(refusal("SUM", &[SqlType::String], &[]).starts_with("Function 'SUM'"));
    }

    #[test]
    fn stddev_samp_is_the_sample_variance_and_stddev_sample_its_root() {
        let values = [int(4), int(9), NULL_VALUE, int(1), int(12)];
        let samp = function("STDDEV_SAMP", &[Integer], &[]);
        let sample = function("STDDEV_SAMPLE", &[Integer], &[]);
        assert_eq!(samp.return_type, Double);
        let variances = each(&samp, &values);
        assert_eq!(variances[0], double(0.0), "fewer than two values");
        assert_eq!(variances[1], double(12.5));
        assert_eq!(variances[4], double(24.333333333333332));
        assert_eq!(filled(&sample, &values).result(), double(4.932882862316247));

        let mut variance = filled(&samp, &values);
        assert!(variance.undo(&[int(9)]));
        assert_eq!(variance.result(), double(32.333333333333336));

        let doubles = function("STDDEV_SAMP", &[Double], &[]);
        let spread = filled(&doubles, &[double(0.5), double(2.25), double(-1.0)]);
        assert_eq!(spread.result(), double(2.645833333333333));
    }

    #[test]
    fn stddev_samp_merges_with_integer_means_and_stddev_sample_with_double_ones() {
        for (name, expected) in [
            ("STDDEV_SAMP", 10.166666666666666),
            ("STDDEV_SAMPLE", 3.4034296427770228),
        ] {
            let f = function(name, &[Integer], &[]);
            let mut merged = filled(&f, &[int(4), int(9)]);
            merged.merge(filled(&f, &[int(1), int(3)]).as_ref());
            assert_eq!(merged.result(), double(expected), "{name}");
            let mut into_empty = f.new_accumulator();
            into_empty.merge(merged.as_ref());
            assert_eq!(into_empty.result(), double(expected), "{name}");
        }
    }

    #[test]
    fn correlation_is_pearsons_over_rows_without_nulls() {
        let correlation = function("CORRELATION", &[Integer, Integer], &[]);
        assert_eq!(correlation.return_type, Double);
        let mut r = correlation.new_accumulator();
        assert!(matches!(r.result(), Value::Double(v) if v.is_nan()));
        r.add(&[int(1), int(2)]);
        assert!(matches!(r.result(), Value::Double(v) if v.is_nan()));
        r.add(&[int(2), int(3)]);
        r.add(&[int(5), NULL_VALUE]);
        r.add(&[int(4), int(1)]);
        assert_eq!(r.result(), double(-0.6546536707079772));
        assert!(r.undo(&[int(4), int(1)]));
        assert_eq!(r.result(), double(1.0));

        let doubles = function("correlation", &[Double, Double], &[]);
        let mut r = doubles.new_accumulator();
        for (x, y) in [(0.5, 3.0), (1.5, 1.0), (2.0, -1.0)] {
            r.add(&[double(x), double(y)]);
        }
        assert_eq!(r.result(), double(-0.9819805060619657));
        assert_eq!(
            refusal("CORRELATION", &[Integer, BigInt], &[]),
            "Function 'correlation' does not accept parameters (INTEGER, BIGINT)."
        );
    }

    #[test]
    fn min_and_max_skip_nulls_and_start_null() {
        let values = [NULL_VALUE, int(5), int(-3), int(7), NULL_VALUE];
        let max = function("MAX", &[Integer], &[]);
        let min = function("MIN", &[Integer], &[]);
        assert_eq!(max.return_type, Integer);
        assert_eq!(
            each(&max, &values),
            vec![NULL_VALUE, int(5), int(5), int(7), int(7)]
        );
        assert_eq!(
            each(&min, &values),
            vec![NULL_VALUE, int(5), int(-3), int(-3), int(-3)]
        );
        let mut merged = filled(&max, &[int(3)]);
        merged.merge(filled(&max, &[int(8)]).as_ref());
        merged.merge(max.new_accumulator().as_ref());
        assert_eq!(merged.result(), int(8));
        assert!(!merged.undo(&[int(8)]));
        assert!(!max.undoable());
    }

    #[test]
    fn min_and_max_order_as_java_compare_to() {
        let max =
            |t: SqlType, values: &[Value]| filled(&function("MAX", &[t], &[]), values).result();
        let min =
            |t: SqlType, values: &[Value]| filled(&function("MIN", &[t], &[]), values).result();
        let zero = max(Double, &[double(-0.0), double(0.0)]);
        assert!(matches!(zero, Value::Double(v) if v == 0.0 && v.is_sign_positive()));
        assert!(
            matches!(max(Double, &[double(1.0), double(f64::NAN)]), Value::Double(v) if v.is_nan())
        );
        assert_eq!(min(Double, &[double(f64::NAN), double(3.0)]), double(3.0));
        // UTF-16 order: U+FF61 sorts after the surrogates of U+1F600.
        assert_eq!(
            max(SqlType::String, &[text("\u{1F600}"), text("\u{FF61}")]),
            text("\u{FF61}")
        );
        // ByteBuffer compares signed bytes: 0x80 is -128.
        assert_eq!(
            max(
                SqlType::Bytes,
                &[Value::Bytes(vec![0x80]), Value::Bytes(vec![0x7F])]
            ),
            Value::Bytes(vec![0x7F])
        );
        assert_eq!(
            max(decimal(4, 2), &[dec(-1012, 2), dec(510, 2)]),
            dec(510, 2)
        );
        assert_eq!(
            min(SqlType::Date, &[Value::Date(5), Value::Date(-100)]),
            Value::Date(-100)
        );
        assert_eq!(
            max(
                SqlType::Timestamp,
                &[Value::Timestamp(50), Value::Timestamp(-1)]
            ),
            Value::Timestamp(50)
        );
        assert!(refusal("MAX", &[SqlType::Boolean], &[])
            .starts_with("Function 'MAX' does not accept parameters (BOOLEAN)."));
    }

    #[test]
    fn count_distinct_counts_distinct_non_null_values_by_java_equals() {
        let distinct = function("COUNT_DISTINCT", &[SqlType::String], &[]);
        assert_eq!(
            each(&distinct, &[text("a"), text("b"), text("a"), NULL_VALUE]),
            vec![long(1), long(2), long(2), long(2)]
        );
        let map_type = SqlType::Map(Box::new(SqlType::String), Box::new(Integer));
        let maps = function("COUNT_DISTINCT", &[map_type], &[]);
        let forward = Value::Map(vec![(text("x"), int(1)), (text("y"), int(2))]);
        let backward = Value::Map(vec![(text("y"), int(2)), (text("x"), int(1))]);
        assert_eq!(filled(&maps, &[forward, backward]).result(), long(1));
        let doubles = function("COUNT_DISTINCT", &[Double], &[]);
        let mut signed_zeros = filled(&doubles, &[double(0.0), double(-0.0)]);
        assert_eq!(signed_zeros.result(), long(2));
        signed_zeros.merge(filled(&doubles, &[double(0.0), double(7.0)]).as_ref());
        assert_eq!(signed_zeros.result(), long(3));
        assert!(!signed_zeros.undo(&[double(7.0)]));
    }

    #[test]
    fn collect_list_keeps_every_value_and_nulls_in_order() {
        let element = SqlType::Struct(vec![("A".into(), SqlType::String)]);
        let list = function("COLLECT_LIST", std::slice::from_ref(&element), &[]);
        assert_eq!(list.return_type, SqlType::Array(Box::new(element)));
        assert_eq!(list.name, "collect_list");
        let row = |s: &str| Value::Struct(vec![text(s)]);
        let collected = filled(
            &list,
            &[
                row("p"),
                NULL_VALUE,
                row("p"),
                Value::Struct(vec![NULL_VALUE]),
            ],
        );
        assert_eq!(
            collected.result(),
            array(vec![
                row("p"),
                NULL_VALUE,
                row("p"),
                Value::Struct(vec![NULL_VALUE])
            ])
        );
    }

    #[test]
    fn collect_list_undoes_the_last_equal_value() {
        let list = function("collect_list", &[SqlType::String], &[]);
        let mut collected = filled(&list, &[text("a"), text("b"), text("a"), text("c")]);
        assert!(collected.undo(&[text("a")]));
        assert_eq!(
            collected.result(),
            array(vec![text("a"), text("b"), text("c")])
        );
        assert!(collected.undo(&[text("zzz")]));
        assert_eq!(
            collected.result(),
            array(vec![text("a"), text("b"), text("c")])
        );
        assert!(list.undoable());
    }

    #[test]
    fn collect_limits_come_from_the_properties() {
        let mut properties = BTreeMap::new();
        properties.insert(COLLECT_LIST_LIMIT.to_string(), "2".to_string());
        properties.insert(COLLECT_SET_LIMIT.to_string(), "1".to_string());
        let list = resolve("COLLECT_LIST", &[Integer], &[], &properties).unwrap();
        let set = resolve("COLLECT_SET", &[Integer], &[], &properties).unwrap();
        let values = [int(3), int(4), int(5)];
        assert_eq!(filled(&list, &values).result(), array(vec![int(3), int(4)]));
        assert_eq!(filled(&set, &values).result(), array(vec![int(3)]));

        let mut merged = filled(&list, &[int(1)]);
        merged.merge(filled(&list, &[int(2), int(9)]).as_ref());
        assert_eq!(merged.result(), array(vec![int(1), int(2)]));

        properties.insert(COLLECT_LIST_LIMIT.to_string(), "-1".to_string());
        let unlimited = resolve("COLLECT_LIST", &[Integer], &[], &properties).unwrap();
        let many: Vec<Value> = (0..1500).map(int).collect();
        assert_eq!(filled(&unlimited, &many).result(), array(many.clone()));
        // Self-managed ksqlDB has no default limit (Confluent Cloud's is 1000).
        let default = function("COLLECT_LIST", &[Integer], &[]);
        assert_eq!(filled(&default, &many).result(), array(many));

        properties.insert(COLLECT_LIST_LIMIT.to_string(), "lots".to_string());
        assert!(resolve("COLLECT_LIST", &[Integer], &[], &properties)
            .unwrap_err()
            .contains(COLLECT_LIST_LIMIT));
    }

    #[test]
    fn collect_set_keeps_distinct_values_by_java_equals() {
        let map_type = SqlType::Map(Box::new(SqlType::String), Box::new(BigInt));
        let set = function("COLLECT_SET", &[map_type], &[]);
        assert_eq!(set.name, "collect_set");
        let forward = Value::Map(vec![(text("x"), long(1)), (text("y"), long(2))]);
        let backward = Value::Map(vec![(text("y"), long(2)), (text("x"), long(1))]);
        let other = Value::Map(vec![(text("x"), long(3))]);
        let collected = filled(
            &set,
            &[
                forward.clone(),
                NULL_VALUE,
                backward,
                other.clone(),
                NULL_VALUE,
            ],
        );
        assert_eq!(
            collected.result(),
            array(vec![forward.clone(), NULL_VALUE, other.clone()])
        );

        let mut merged = filled(&set, std::slice::from_ref(&other));
        merged.merge(collected.as_ref());
        assert_eq!(merged.result(), array(vec![other, forward, NULL_VALUE]));
        assert!(!merged.undo(&[NULL_VALUE]));
        assert!(!set.undoable());
    }

    #[test]
    fn histogram_counts_each_string_and_undoes_to_nothing() {
        let histogram = function("HISTOGRAM", &[SqlType::String], &[]);
        assert_eq!(histogram.name, "histogram");
        assert_eq!(
            histogram.return_type,
            SqlType::Map(Box::new(SqlType::String), Box::new(BigInt))
        );
        let mut counts = filled(&histogram, &[text("x"), text("y"), text("x"), NULL_VALUE]);
        assert_eq!(
            counts.result(),
            Value::Map(vec![
                (text("x"), long(2)),
                (text("y"), long(1)),
                (NULL_VALUE, long(1)),
            ])
        );
        assert!(counts.undo(&[text("y")]));
        assert!(counts.undo(&[NULL_VALUE]));
        assert!(counts.undo(&[text("never")]));
        assert_eq!(counts.result(), Value::Map(vec![(text("x"), long(2))]));
        counts.merge(filled(&histogram, &[text("x"), text("z")]).as_ref());
        assert_eq!(
            counts.result(),
            Value::Map(vec![(text("x"), long(3)), (text("z"), long(1))])
        );
        assert!(refusal("histogram", &[Integer], &[]).starts_with("Function 'histogram'"));
    }

    #[test]
    fn histogram_ignores_new_strings_past_a_thousand() {
        let histogram = function("HISTOGRAM", &[SqlType::String], &[]);
        let mut values: Vec<Value> = (0..1001).map(|i| text(&format!("k{i}"))).collect();
        values.push(text("k0"));
        let Value::Map(entries) = filled(&histogram, &values).result() else {
            panic!("not a map");
        };
        assert_eq!(entries.len(), 1000);
        assert_eq!(entries[0], (text("k0"), long(2)));
        assert!(!entries.iter().any(|(k, _)| *k == text("k1000")));
    }

    #[test]
    fn attr_is_the_single_value_or_null() {
        let attr = function("ATTR", &[SqlType::String], &[]);
        assert_eq!(attr.return_type, SqlType::String);
        assert_eq!(
            each(&attr, &[text("v"), text("v")]),
            vec![text("v"), text("v")]
        );
        assert_eq!(
            each(&attr, &[text("v"), text("w")]),
            vec![text("v"), NULL_VALUE]
        );
        // NULL is a value of its own.
        assert_eq!(
            each(&attr, &[NULL_VALUE, text("v")]),
            vec![NULL_VALUE, NULL_VALUE]
        );

        let mut table = filled(&attr, &[text("v"), text("w")]);
        assert!(table.undo(&[text("w")]));
        assert_eq!(table.result(), text("v"));
        assert!(table.undo(&[text("v")]));
        assert!(table.undo(&[text("v")]));
        assert_eq!(table.result(), NULL_VALUE);
        table.add(&[text("u")]);
        assert_eq!(table.result(), text("u"));

        let mut merged = filled(&attr, &[text("u")]);
        merged.merge(filled(&attr, &[text("u")]).as_ref());
        assert!(merged.undo(&[text("u")]));
        assert_eq!(merged.result(), text("u"));
        merged.merge(filled(&attr, &[text("w")]).as_ref());
        assert_eq!(merged.result(), NULL_VALUE);
    }

    #[test]
    fn earliest_by_offset_keeps_the_first_value() {
        let earliest = function("EARLIEST_BY_OFFSET", &[Integer], &[]);
        assert_eq!(earliest.return_type, Integer);
        assert_eq!(
            each(&earliest, &[NULL_VALUE, int(5), int(6)]),
            vec![NULL_VALUE, int(5), int(5)]
        );
        let keeping_nulls = function("EARLIEST_BY_OFFSET", &[Integer], &[Value::Boolean(false)]);
        assert_eq!(
            each(&keeping_nulls, &[NULL_VALUE, int(5)]),
            vec![NULL_VALUE, NULL_VALUE]
        );
        assert!(!earliest.undoable());
    }

    #[test]
    fn earliest_n_by_offset_keeps_the_first_n() {
        let two = function("EARLIEST_BY_OFFSET", &[Integer], &[int(2)]);
        assert_eq!(two.return_type, SqlType::Array(Box::new(Integer)));
        assert_eq!(
            each(&two, &[NULL_VALUE, int(1), int(2), int(3)]),
            vec![
                array(vec![]),
                array(vec![int(1)]),
                array(vec![int(1), int(2)]),
                array(vec![int(1), int(2)])
            ]
        );
        let keeping_nulls = function(
            "EARLIEST_BY_OFFSET",
            &[Integer],
            &[int(2), Value::Boolean(false)],
        );
        assert_eq!(
            each(&keeping_nulls, &[NULL_VALUE, int(1), int(2)]),
            vec![
                array(vec![NULL_VALUE]),
                array(vec![NULL_VALUE, int(1)]),
                array(vec![NULL_VALUE, int(1)])
            ]
        );
    }

    #[test]
    fn latest_by_offset_keeps_the_last_value() {
        let latest = function("LATEST_BY_OFFSET", &[SqlType::String], &[]);
        assert_eq!(
            each(&latest, &[text("a"), NULL_VALUE, text("b")]),
            vec![text("a"), text("a"), text("b")]
        );
        assert_eq!(latest.new_accumulator().result(), NULL_VALUE);
        let keeping_nulls = function(
            "LATEST_BY_OFFSET",
            &[SqlType::String],
            &[Value::Boolean(false)],
        );
        assert_eq!(
            each(&keeping_nulls, &[text("a"), NULL_VALUE, text("b")]),
            vec![text("a"), NULL_VALUE, text("b")]
        );
    }

    #[test]
    fn latest_n_by_offset_keeps_the_last_n() {
        let two = function("LATEST_BY_OFFSET", &[Integer], &[int(2)]);
        assert_eq!(
            each(&two, &[int(1), NULL_VALUE, int(2), int(3)]),
            vec![
                array(vec![int(1)]),
                array(vec![int(1)]),
                array(vec![int(1), int(2)]),
                array(vec![int(2), int(3)])
            ]
        );
        let keeping_nulls = function(
            "LATEST_BY_OFFSET",
            &[Integer],
            &[int(2), Value::Boolean(false)],
        );
        assert_eq!(
            each(&keeping_nulls, &[int(1), NULL_VALUE, int(2)]),
            vec![
                array(vec![int(1)]),
                array(vec![int(1), NULL_VALUE]),
                array(vec![NULL_VALUE, int(2)])
            ]
        );
    }

    /// Sessions merge as Kafka Streams merges them: the overlapping sessions into a fresh
    /// accumulator, then the new row.
    fn merged_sessions(function: &AggregateFunction, sessions: &[&[Value]], row: &Value) -> Value {
        let sessions: Vec<_> = sessions
            .iter()
            .map(|values| filled(function, values))
            .collect();
        let mut merged = function.new_accumulator();
        for session in &sessions {
            merged.merge(session.as_ref());
        }
        merged.add(std::slice::from_ref(row));
        merged.result()
    }

    #[test]
    fn offset_functions_merge_sessions_by_arrival() {
        let earliest = function("EARLIEST_BY_OFFSET", &[Integer], &[]);
        let latest = function("LATEST_BY_OFFSET", &[Integer], &[]);
        let latest_with_nulls = function("LATEST_BY_OFFSET", &[Integer], &[Value::Boolean(false)]);
        let sessions: &[&[Value]] = &[&[int(10)], &[int(30)]];
        assert_eq!(merged_sessions(&earliest, sessions, &int(20)), int(10));
        assert_eq!(merged_sessions(&latest, sessions, &int(20)), int(20));
        let with_null: &[&[Value]] = &[&[int(10)], &[NULL_VALUE]];
        assert_eq!(merged_sessions(&latest, with_null, &NULL_VALUE), int(10));
        assert_eq!(
            merged_sessions(&latest_with_nulls, with_null, &NULL_VALUE),
            NULL_VALUE
        );

        let earliest_nulls = function(
            "EARLIEST_BY_OFFSET",
            &[Integer],
            &[int(2), Value::Boolean(false)],
        );
        let nulls_first: &[&[Value]] = &[&[NULL_VALUE], &[int(1)]];
        assert_eq!(
            merged_sessions(&earliest_nulls, nulls_first, &NULL_VALUE),
            array(vec![NULL_VALUE, int(1)])
        );
    }

    #[test]
    fn latest_n_merging_keeps_the_earliest_n_as_ksqldb_does() {
        let two = function("LATEST_BY_OFFSET", &[Integer], &[int(2)]);
        let sessions: &[&[Value]] = &[&[int(1), int(2)], &[int(3), int(4)]];
        assert_eq!(
            merged_sessions(&two, sessions, &int(5)),
            array(vec![int(2), int(5)])
        );
    }

    #[test]
    fn offset_functions_check_their_literals() {
        assert_eq!(
            refusal("EARLIEST_BY_OFFSET", &[Integer], &[int(0)]),
            "earliestN must be 1 or greater"
        );
        assert_eq!(
            refusal("LATEST_BY_OFFSET", &[Integer], &[int(-1)]),
            "latestN must be 1 or greater"
        );
        assert_eq!(
            refusal("LATEST_BY_OFFSET", &[Integer], &[text("x")]),
            "Function 'LATEST_BY_OFFSET' does not accept parameters (INTEGER, STRING)."
        );
        assert_eq!(
            refusal("EARLIEST_BY_OFFSET", &[Integer], &[long(2)]),
            "Function 'EARLIEST_BY_OFFSET' does not accept parameters (INTEGER, BIGINT)."
        );
        assert!(resolve(
            "EARLIEST_BY_OFFSET",
            &[Integer, Integer],
            &[],
            &BTreeMap::new()
        )
        .is_err());
        let latest = function(
            "LATEST_BY_OFFSET",
            &[Integer],
            &[int(2), Value::Boolean(true)],
        );
        assert_eq!(
            latest.intermediate_type,
            SqlType::Array(Box::new(SqlType::Struct(vec![
                ("SEQ".into(), BigInt),
                ("VAL".into(), Integer)
            ])))
        );
    }

    #[test]
    fn literal_arguments_are_the_trailing_ones() {
        assert_eq!(literal_argument_count("TOPK", 2), 1);
        assert_eq!(literal_argument_count("topk", 4), 1);
        assert_eq!(literal_argument_count("TOPK", 1), 0);
        assert_eq!(literal_argument_count("TOPKDISTINCT", 2), 1);
        assert_eq!(literal_argument_count("EARLIEST_BY_OFFSET", 1), 0);
        assert_eq!(literal_argument_count("EARLIEST_BY_OFFSET", 2), 1);
        assert_eq!(literal_argument_count("LATEST_BY_OFFSET", 3), 2);
        assert_eq!(literal_argument_count("CORRELATION", 2), 0);
        assert_eq!(literal_argument_count("COUNT", 0), 0);
    }

    #[test]
    fn topk_keeps_the_greatest_k_with_duplicates() {
        let top = function("TOPK", &[Integer], &[int(3)]);
        assert_eq!(top.return_type, SqlType::Array(Box::new(Integer)));
        assert_eq!(
            each(
                &top,
                &[int(5), int(50), NULL_VALUE, int(49), int(8), int(50)]
            ),
            vec![
                array(vec![int(5)]),
                array(vec![int(50), int(5)]),
                array(vec![int(50), int(5)]),
                array(vec![int(50), int(49), int(5)]),
                array(vec![int(50), int(49), int(8)]),
                array(vec![int(50), int(50), int(49)]),
            ]
        );
        let strings = function("TOPK", &[SqlType::String], &[int(2)]);
        assert_eq!(
            filled(&strings, &[text("b"), text("a"), text("c")]).result(),
            array(vec![text("c"), text("b")])
        );
    }

    #[test]
    fn topk_with_other_columns_makes_structs_and_keeps_ties_in_arrival_order() {
        let top = function("TOPK", &[Integer, SqlType::String], &[int(3)]);
        assert_eq!(
            top.return_type,
            SqlType::Array(Box::new(SqlType::Struct(vec![
                ("sort_col".into(), Integer),
                ("col0".into(), SqlType::String)
            ])))
        );
        let entry = |v: i32, s: Value| Value::Struct(vec![int(v), s]);
        let mut kept = top.new_accumulator();
        for (v, s) in [
            (5, text("a")),
            (9, text("b")),
            (5, text("c")),
            (0, text("x")),
            (9, NULL_VALUE),
        ] {
            kept.add(&[int(v), s]);
        }
        kept.add(&[NULL_VALUE, text("skipped")]);
        assert_eq!(
            kept.result(),
            array(vec![
                entry(9, text("b")),
                entry(9, NULL_VALUE),
                entry(5, text("a"))
            ])
        );

        let mut merged = top.new_accumulator();
        merged.add(&[int(9), text("mine")]);
        let mut theirs = top.new_accumulator();
        theirs.add(&[int(9), text("theirs")]);
        theirs.add(&[int(7), text("theirs")]);
        theirs.add(&[int(1), text("theirs")]);
        merged.merge(theirs.as_ref());
        assert_eq!(
            merged.result(),
            array(vec![
                entry(9, text("mine")),
                entry(9, text("theirs")),
                entry(7, text("theirs"))
            ])
        );
    }

    #[test]
    fn topk_checks_its_types_and_k() {
        assert_eq!(
            refusal("TOPK", &[decimal(4, 2)], &[int(2)]),
            "Function 'TOPK' does not accept parameters (DECIMAL(4, 2), INTEGER)."
        );
        assert_eq!(
            refusal("TOPK", &[Integer], &[long(2)]),
            "Function 'TOPK' does not accept parameters (INTEGER, BIGINT)."
        );
        assert!(resolve("TOPK", &[Integer], &[], &BTreeMap::new()).is_err());
        let none = function("TOPK", &[Integer], &[int(0)]);
        let mut failed = none.new_accumulator();
        failed.add(&[int(1)]);
        assert_eq!(
            failed.failure(),
            Some("Index -1 out of bounds for length 0")
        );
        assert!(!none.undoable());
    }

    #[test]
    fn topkdistinct_keeps_the_greatest_k_distinct_values() {
        let top = function("TOPKDISTINCT", &[Integer], &[int(3)]);
        assert_eq!(
            each(&top, &[int(5), int(50), int(49), int(50), int(8), int(51)]),
            vec![
                array(vec![int(5)]),
                array(vec![int(50), int(5)]),
                array(vec![int(50), int(49), int(5)]),
                array(vec![int(50), int(49), int(5)]),
                array(vec![int(50), int(49), int(8)]),
                array(vec![int(51), int(50), int(49)]),
            ]
        );
        let bytes = function("TOPKDISTINCT", &[SqlType::Bytes], &[int(3)]);
        let b = |v: u8| Value::Bytes(vec![v]);
        assert_eq!(
            filled(&bytes, &[b(0x01), b(0x80), b(0x7F), NULL_VALUE, b(0x01)]).result(),
            array(vec![b(0x7F), b(0x01), b(0x80)])
        );
        let decimals = function("TOPKDISTINCT", &[decimal(2, 1)], &[int(2)]);
        assert_eq!(
            decimals.return_type,
            SqlType::Array(Box::new(decimal(2, 1)))
        );
        assert_eq!(
            filled(&decimals, &[dec(98, 1), dec(89, 1), dec(99, 1)]).result(),
            array(vec![dec(99, 1), dec(98, 1)])
        );

        let mut merged = filled(&top, &[int(9), int(4)]);
        merged.merge(filled(&top, &[int(9), int(6), int(1)]).as_ref());
        assert_eq!(merged.result(), array(vec![int(9), int(6), int(4)]));
        assert!(refusal("TOPKDISTINCT", &[SqlType::Boolean], &[int(3)])
            .starts_with("Function 'TOPKDISTINCT'"));
    }

    #[test]
    fn every_name_resolves_and_undoability_is_ksqldbs() {
        let undoable = [
            "ATTR",
            "AVG",
            "COLLECT_LIST",
            "CORRELATION",
            "COUNT",
            "HISTOGRAM",
            "STDDEV_SAMP",
            "STDDEV_SAMPLE",
            "SUM",
            "SUM_LIST",
        ];
        for name in NAMES {
            assert_eq!(*name, name.to_ascii_uppercase());
            let (types, literals): (Vec<SqlType>, Vec<Value>) = match *name {
                "HISTOGRAM" => (vec![SqlType::String], vec![]),
                "CORRELATION" => (vec![Double, Double], vec![]),
                "SUM_LIST" => (vec![SqlType::Array(Box::new(Double))], vec![]),
                "TOPK" | "TOPKDISTINCT" => (vec![Double], vec![int(2)]),
                _ => (vec![Double], vec![]),
            };
            let f = function(name, &types, &literals);
            assert_eq!(f.undoable(), undoable.contains(name), "{name}");
            let mut accumulator = f.new_accumulator();
            let row: Vec<Value> = types.iter().map(|_| NULL_VALUE).collect();
            accumulator.add(&row);
            assert_eq!(accumulator.undo(&row), f.undoable(), "{name}");
            let _ = accumulator.result();
        }
        assert_eq!(
            refusal("NOPE", &[Integer], &[]),
            "Can't find any functions with the name 'NOPE'"
        );
    }

    #[test]
    fn intermediate_types_are_ksqldbs() {
        assert_eq!(function("COUNT", &[], &[]).intermediate_type, BigInt);
        assert_eq!(function("MAX", &[Integer], &[]).intermediate_type, Integer);
        assert_eq!(
            function("AVG", &[Integer], &[]).intermediate_type,
            SqlType::Struct(vec![("SUM".into(), Integer), ("COUNT".into(), BigInt)])
        );
        assert_eq!(
            function("TOPK", &[Integer], &[int(3)]).intermediate_type,
            SqlType::Array(Box::new(Integer))
        );
        assert_eq!(
            function("COUNT_DISTINCT", &[SqlType::String], &[]).intermediate_type,
            SqlType::Array(Box::new(Integer))
        );
    }

    #[test]
    fn java_keys_agree_with_java_equals() {
        let cases = [
            (double(0.0), double(-0.0), false),
            (double(f64::NAN), double(-f64::NAN), true),
            (dec(10, 1), dec(100, 2), false),
            (int(1), long(1), false),
            (
                Value::Map(vec![(text("a"), int(1)), (text("b"), NULL_VALUE)]),
                Value::Map(vec![(text("b"), NULL_VALUE), (text("a"), int(1))]),
                true,
            ),
            (
                array(vec![text("ab")]),
                array(vec![text("a"), text("b")]),
                false,
            ),
            (array(vec![int(1)]), Value::Struct(vec![int(1)]), false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(java_equals(&a, &b), equal, "{a:?} {b:?}");
            assert_eq!(java_key(&a) == java_key(&b), equal, "{a:?} {b:?}");
        }
    }

    #[test]
    fn clones_are_independent_and_foreign_merges_are_ignored() {
        let sum = function("SUM", &[Integer], &[]);
        let mut original = filled(&sum, &[int(2)]);
        let copy = original.clone();
        original.add(&[int(3)]);
        assert_eq!(copy.result(), int(2));
        assert_eq!(original.result(), int(5));
        let count = filled(&function("COUNT", &[], &[]), &[]);
        original.merge(count.as_ref());
        assert_eq!(original.result(), int(5));
    }

    // -----------------------------------------------------------------------------------------
    // Snapshots
    // -----------------------------------------------------------------------------------------

    use crate::aggregate::snapshot::{decode_value, encode_value};

    /// Bit-exact comparison (NaN results included, which `==` never equals).
    fn bits(value: &Value) -> Vec<u8> {
        encode_value(value)
    }

    fn with_properties(
        name: &str,
        types: &[SqlType],
        literals: &[Value],
        properties: &[(&str, &str)],
    ) -> AggregateFunction {
        let properties = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(name, types, literals, &properties).unwrap()
    }

    /// Through bytes, as the changelog carries it, into a fresh accumulator.
    fn restored(function: &AggregateFunction, original: &dyn Accumulator) -> Box<dyn Accumulator> {
        let bytes = encode_value(&original.snapshot());
        let mut written = vec![crate::aggregate::snapshot::FORMAT_VERSION];
        original.write_snapshot(&mut written);
        assert_eq!(
            written, bytes,
            "write_snapshot writes what snapshot() encodes to"
        );
        let mut restored = function.new_accumulator();
        restored.restore(&decode_value(&bytes).unwrap()).unwrap();
        restored
    }

    fn assert_alike(label: &str, a: &dyn Accumulator, b: &dyn Accumulator) {
        assert_eq!(bits(&a.result()), bits(&b.result()), "{label}: result");
        assert_eq!(a.failure(), b.failure(), "{label}: failure");
    }

    /// `rows` into an accumulator, snapshot -> bytes -> restore into a fresh one; then both
    /// must give the same result, snapshot and failure, and go on alike: merged into a fresh
    /// accumulator, merging a later one, adding `next`, and (where the function can) undoing
    /// `next` and the first row.
    fn assert_restores(
        label: &str,
        function: &AggregateFunction,
        rows: &[Vec<Value>],
        next: &[Value],
    ) {
        let mut original = function.new_accumulator();
        for row in rows {
            original.add(row);
        }
        let mut copy = restored(function, original.as_ref());
        assert_eq!(
            bits(&copy.snapshot()),
            bits(&original.snapshot()),
            "{label}: snapshot"
        );
        assert_alike(label, original.as_ref(), copy.as_ref());

        let (mut into_original, mut into_copy) =
            (function.new_accumulator(), function.new_accumulator());
        into_original.merge(original.as_ref());
        into_copy.merge(copy.as_ref());
        assert_alike(&format!("{label}, merged in"), &*into_original, &*into_copy);
        let mut later = function.new_accumulator();
        later.add(next);
        let (mut merged_original, mut merged_copy) = (original.clone(), copy.clone());
        merged_original.merge(later.as_ref());
        merged_copy.merge(later.as_ref());
        assert_alike(
            &format!("{label}, merging"),
            &*merged_original,
            &*merged_copy,
        );

        original.add(next);
        copy.add(next);
        assert_alike(&format!("{label}, added"), original.as_ref(), copy.as_ref());
        if function.undoable() {
            assert!(original.undo(next) && copy.undo(next), "{label}");
            assert_alike(
                &format!("{label}, undone"),
                original.as_ref(),
                copy.as_ref(),
            );
            if let Some(first) = rows.first() {
                assert!(original.undo(first) && copy.undo(first), "{label}");
                assert_alike(&format!("{label}, undone 1st"), &*original, &*copy);
            }
        }
    }

    /// Rows of one argument each.
    fn rows(values: &[Value]) -> Vec<Vec<Value>> {
        values.iter().map(|v| vec![v.clone()]).collect()
    }

    #[test]
    fn counts_restore() {
        let star = function("COUNT", &[], &[]);
        assert_restores("COUNT(*)", &star, &[vec![], vec![], vec![]], &[]);
        assert_restores("COUNT(*) fresh", &star, &[], &[]);
        let column = function("COUNT", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("b")]);
        assert_restores("COUNT", &column, &values, &[text("c")]);
        assert_restores("COUNT null", &column, &values, &[NULL_VALUE]);

        let distinct = function("COUNT_DISTINCT", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("b"), text("a")]);
        assert_restores("COUNT_DISTINCT", &distinct, &values, &[text("a")]);
        assert_restores("COUNT_DISTINCT new", &distinct, &values, &[text("c")]);
        let doubles = function("COUNT_DISTINCT", &[Double], &[]);
        let values = rows(&[double(0.0), double(-0.0), double(f64::NAN), NULL_VALUE]);
        assert_restores(
            "COUNT_DISTINCT doubles",
            &doubles,
            &values,
            &[double(-f64::NAN)],
        );
    }

    #[test]
    fn sums_restore() {
        let ints = function("SUM", &[Integer], &[]);
        let values = rows(&[int(i32::MAX), NULL_VALUE, int(1)]);
        assert_restores("SUM INTEGER", &ints, &values, &[int(5)]);
        let longs = function("SUM", &[BigInt], &[]);
        let values = rows(&[long(i64::MIN), NULL_VALUE, long(-1)]);
        assert_restores("SUM BIGINT", &longs, &values, &[long(7)]);
        let doubles = function("SUM", &[Double], &[]);
        let values = rows(&[double(0.1), NULL_VALUE, double(0.2)]);
        assert_restores("SUM DOUBLE", &doubles, &values, &[double(0.3)]);
        assert_restores(
            "SUM DOUBLE empty",
            &doubles,
            &rows(&[NULL_VALUE]),
            &[double(-0.0)],
        );

        let decimals = function("SUM", &[decimal(4, 2)], &[]);
        let values = rows(&[dec(1250, 2), NULL_VALUE, dec(25, 2)]);
        assert_restores("SUM DECIMAL", &decimals, &values, &[dec(1, 2)]);
        let overflowed = rows(&[dec(6000, 2), dec(5000, 2)]);
        assert_restores("SUM DECIMAL failed", &decimals, &overflowed, &[dec(1, 2)]);
        let mut failed = filled(&decimals, &[dec(6000, 2), dec(5000, 2)]);
        let copy = restored(&decimals, failed.as_ref());
        assert!(copy
            .failure()
            .unwrap()
            .starts_with("Numeric field overflow"));
        failed.add(&[dec(1, 2)]);
        assert_eq!(failed.result(), copy.result());
        let wide = function("SUM", &[decimal(38, 0)], &[]);
        let huge = dec(10i128.pow(38) - 1, 0);
        assert_restores("SUM DECIMAL(38)", &wide, &rows(&[huge]), &[dec(-1, 0)]);

        let list = function("SUM_LIST", &[SqlType::Array(Box::new(Integer))], &[]);
        let values = rows(&[
            array(vec![int(1), NULL_VALUE, int(2)]),
            NULL_VALUE,
            array(vec![int(i32::MAX)]),
        ]);
        assert_restores("SUM_LIST", &list, &values, &[array(vec![int(4)])]);
        let list = function("SUM_LIST", &[SqlType::Array(Box::new(Double))], &[]);
        let values = rows(&[array(vec![double(0.1), NULL_VALUE]), array(vec![])]);
        assert_restores(
            "SUM_LIST DOUBLE",
            &list,
            &values,
            &[array(vec![double(0.7)])],
        );
    }

    #[test]
    fn averages_deviations_and_correlations_restore() {
        let avg = function("AVG", &[Integer], &[]);
        let values = rows(&[int(2), int(3), NULL_VALUE, int(i32::MAX)]);
        assert_restores("AVG INTEGER", &avg, &values, &[int(4)]);
        assert_restores("AVG empty", &avg, &[], &[int(4)]);
        let avg = function("AVG", &[Double], &[]);
        let values = rows(&[double(0.1), double(0.7), NULL_VALUE]);
        assert_restores("AVG DOUBLE", &avg, &values, &[double(1e-300)]);

        for name in ["STDDEV_SAMP", "STDDEV_SAMPLE"] {
            for (t, values, next) in [
                (
                    Integer,
                    rows(&[int(1), int(2), NULL_VALUE, int(4)]),
                    int(10),
                ),
                (BigInt, rows(&[long(7), NULL_VALUE, long(-3)]), long(5)),
                (
                    Double,
                    rows(&[double(0.5), double(1.5), NULL_VALUE]),
                    double(3.25),
                ),
                (Double, rows(&[double(2.0)]), double(1.0)),
            ] {
                let f = function(name, std::slice::from_ref(&t), &[]);
                assert_restores(&format!("{name} {t}"), &f, &values, &[next]);
            }
        }

        let correlation = function("CORRELATION", &[Double, Double], &[]);
        let pairs = vec![
            vec![double(1.0), double(2.0)],
            vec![double(2.0), double(4.5)],
            vec![NULL_VALUE, double(3.0)],
            vec![double(3.0), double(5.1)],
        ];
        let next = [double(4.0), double(9.0)];
        assert_restores("CORRELATION", &correlation, &pairs, &next);
        // One pair: NaN, which must come back as the same NaN.
        assert_restores("CORRELATION NaN", &correlation, &pairs[..1], &next);
        let ints = function("CORRELATION", &[Integer, Integer], &[]);
        let pairs = vec![
            vec![int(1), int(3)],
            vec![int(2), NULL_VALUE],
            vec![int(5), int(4)],
        ];
        assert_restores("CORRELATION INTEGER", &ints, &pairs, &[int(0), int(1)]);
    }

    #[test]
    fn min_and_max_restore() {
        let min = function("MIN", &[Integer], &[]);
        let values = rows(&[int(5), NULL_VALUE, int(3)]);
        assert_restores("MIN", &min, &values, &[int(1)]);
        assert_restores("MIN none", &min, &rows(&[NULL_VALUE]), &[int(1)]);
        let max = function("MAX", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("c")]);
        assert_restores("MAX", &max, &values, &[text("b")]);
        let max = function("MAX", &[Double], &[]);
        let values = rows(&[double(-0.0), double(f64::NAN)]);
        assert_restores("MAX NaN", &max, &values, &[double(1.0)]);
        let max = function("MAX", &[decimal(5, 3)], &[]);
        let values = rows(&[dec(1500, 3), dec(-2, 3)]);
        assert_restores("MAX DECIMAL", &max, &values, &[dec(1501, 3)]);
    }

    #[test]
    fn collections_restore_with_their_limits() {
        let list = function("COLLECT_LIST", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("b"), text("a")]);
        assert_restores("COLLECT_LIST", &list, &values, &[text("c")]);
        let limited = with_properties(
            "COLLECT_LIST",
            &[Integer],
            &[],
            &[(COLLECT_LIST_LIMIT, "3")],
        );
        let values = rows(&[int(1), NULL_VALUE, int(2)]);
        assert_restores("COLLECT_LIST full", &limited, &values, &[int(3)]);

        let set = function("COLLECT_SET", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("a"), text("b")]);
        assert_restores("COLLECT_SET", &set, &values, &[text("c")]);
        assert_restores("COLLECT_SET seen", &set, &values, &[NULL_VALUE]);
        let limited = with_properties("COLLECT_SET", &[Integer], &[], &[(COLLECT_SET_LIMIT, "2")]);
        let values = rows(&[int(1), int(1), int(2)]);
        assert_restores("COLLECT_SET full", &limited, &values, &[int(3)]);

        // The limit the items were collected under goes with them.
        let unlimited = function("COLLECT_LIST", &[Integer], &[]);
        let mut copy = restored(&unlimited, filled(&limited_list(), &[int(1)]).as_ref());
        copy.add(&[int(2)]);
        copy.add(&[int(3)]);
        assert_eq!(copy.result(), array(vec![int(1), int(2)]));
        let set = function("COLLECT_SET", &[Integer], &[]);
        let mut copy = restored(&set, filled(&limited, &[int(1), int(1)]).as_ref());
        copy.add(&[int(1)]);
        copy.add(&[int(2)]);
        copy.add(&[int(3)]);
        assert_eq!(copy.result(), array(vec![int(1), int(2)]));
    }

    fn limited_list() -> AggregateFunction {
        with_properties(
            "COLLECT_LIST",
            &[Integer],
            &[],
            &[(COLLECT_LIST_LIMIT, "2")],
        )
    }

    #[test]
    fn histograms_and_attrs_restore() {
        let histogram = function("HISTOGRAM", &[SqlType::String], &[]);
        let values = rows(&[text("a"), NULL_VALUE, text("b"), text("a")]);
        assert_restores("HISTOGRAM", &histogram, &values, &[text("a")]);
        assert_restores("HISTOGRAM new", &histogram, &values, &[text("c")]);
        let mut full = histogram.new_accumulator();
        for i in 0..HISTOGRAM_LIMIT {
            full.add(&[text(&i.to_string())]);
        }
        let mut copy = restored(&histogram, full.as_ref());
        full.add(&[text("over")]);
        copy.add(&[text("over")]);
        assert_eq!(copy.result(), full.result());

        let attr = function("ATTR", &[Integer], &[]);
        assert_restores("ATTR", &attr, &rows(&[int(1), int(1)]), &[int(1)]);
        let values = rows(&[int(1), NULL_VALUE, int(1)]);
        assert_restores("ATTR mixed", &attr, &values, &[NULL_VALUE]);
        // An entry undone to zero stays (ATTR keeps it): it must come back as it was.
        let mut undone = filled(&attr, &[int(1), int(2)]);
        assert!(undone.undo(&[int(2)]));
        let mut copy = restored(&attr, undone.as_ref());
        assert_eq!(bits(&copy.snapshot()), bits(&undone.snapshot()));
        assert_eq!(copy.result(), int(1));
        undone.add(&[int(2)]);
        copy.add(&[int(2)]);
        assert_eq!(copy.result(), undone.result());
    }

    #[test]
    fn offset_functions_restore() {
        let cases: Vec<(&str, Vec<Value>, Vec<Value>, Value)> = vec![
            (
                "EARLIEST_BY_OFFSET",
                vec![],
                vec![NULL_VALUE, int(1), int(2)],
                int(3),
            ),
            ("EARLIEST_BY_OFFSET", vec![], vec![], int(3)),
            (
                "EARLIEST_BY_OFFSET",
                vec![Value::Boolean(false)],
                vec![NULL_VALUE, int(1)],
                int(3),
            ),
            (
                "LATEST_BY_OFFSET",
                vec![],
                vec![int(1), NULL_VALUE, int(2)],
                NULL_VALUE,
            ),
            ("LATEST_BY_OFFSET", vec![], vec![], int(3)),
            (
                "LATEST_BY_OFFSET",
                vec![Value::Boolean(false)],
                vec![int(1), NULL_VALUE],
                int(3),
            ),
            (
                "EARLIEST_BY_OFFSET",
                vec![int(2)],
                vec![NULL_VALUE, int(1)],
                int(2),
            ),
            (
                "EARLIEST_BY_OFFSET",
                vec![int(2)],
                vec![int(1), int(2)],
                int(3),
            ),
            (
                "EARLIEST_BY_OFFSET",
                vec![int(3), Value::Boolean(false)],
                vec![int(1), NULL_VALUE],
                int(3),
            ),
            (
                "LATEST_BY_OFFSET",
                vec![int(2)],
                vec![int(1), NULL_VALUE, int(2)],
                int(3),
            ),
            (
                "LATEST_BY_OFFSET",
                vec![int(2), Value::Boolean(false)],
                vec![int(1), int(2), NULL_VALUE],
                int(3),
            ),
        ];
        for (name, literals, values, next) in cases {
            let f = function(name, &[Integer], &literals);
            let label = format!("{name} {literals:?} {values:?}");
            assert_restores(&label, &f, &rows(&values), &[next]);
        }
    }

    /// A restart begins the process's sequence again; a restored entry from before it must
    /// still be earlier than every row that arrives after it.
    #[test]
    fn restored_offsets_stay_earlier_than_new_rows() {
        let far = OFFSET_SEQUENCE.load(AtomicOrdering::Relaxed) + 1_000_000_000;
        let latest = function("LATEST_BY_OFFSET", &[Integer], &[]);
        let before_restart = Value::Struct(vec![
            text("LATEST_BY_OFFSET"),
            Value::Boolean(true),
            Value::Struct(vec![long(far as i64), int(1)]),
        ]);
        let mut old = latest.new_accumulator();
        old.restore(&before_restart).unwrap();
        let mut new = latest.new_accumulator();
        new.add(&[int(2)]);
        let mut merged = latest.new_accumulator();
        merged.merge(old.as_ref());
        merged.merge(new.as_ref());
        assert_eq!(merged.result(), int(2));

        let earliest = function("EARLIEST_BY_OFFSET", &[Integer], &[int(2)]);
        let before_restart = Value::Struct(vec![
            text("EARLIEST_BY_OFFSET_N"),
            long(2),
            Value::Boolean(true),
            array(vec![Value::Struct(vec![long(far as i64 + 5), int(1)])]),
        ]);
        let mut old = earliest.new_accumulator();
        old.restore(&before_restart).unwrap();
        let mut merged = filled(&earliest, &[int(3), int(4)]);
        merged.merge(old.as_ref());
        assert_eq!(merged.result(), array(vec![int(1), int(3)]));
    }

    #[test]
    fn topks_restore() {
        let top = function("TOPK", &[Integer], &[int(3)]);
        let values = rows(&[int(5), int(50), NULL_VALUE, int(49), int(8)]);
        assert_restores("TOPK", &top, &values, &[int(50)]);
        assert_restores("TOPK low", &top, &values, &[int(1)]);
        let strings = function("TOPK", &[SqlType::String], &[int(2)]);
        assert_restores("TOPK STRING", &strings, &rows(&[text("b")]), &[text("a")]);
        let wide = function("TOPK", &[Integer, SqlType::String], &[int(2)]);
        let values = vec![
            vec![int(5), text("a")],
            vec![int(9), text("b")],
            vec![NULL_VALUE, text("x")],
            vec![int(5), NULL_VALUE],
        ];
        assert_restores("TOPK columns", &wide, &values, &[int(9), text("c")]);
        let none = function("TOPK", &[Integer], &[int(0)]);
        assert_restores("TOPK failed", &none, &rows(&[int(1)]), &[int(2)]);
        let copy = restored(&none, filled(&none, &[int(1)]).as_ref());
        assert_eq!(copy.failure(), Some(INDEX_MINUS_ONE));

        let distinct = function("TOPKDISTINCT", &[Integer], &[int(3)]);
        let values = rows(&[int(5), int(50), NULL_VALUE, int(50), int(8)]);
        assert_restores("TOPKDISTINCT", &distinct, &values, &[int(51)]);
        assert_restores("TOPKDISTINCT seen", &distinct, &values, &[int(5)]);
        let bytes = function("TOPKDISTINCT", &[SqlType::Bytes], &[int(2)]);
        let values = rows(&[Value::Bytes(vec![0x80]), Value::Bytes(vec![0x01])]);
        assert_restores(
            "TOPKDISTINCT BYTES",
            &bytes,
            &values,
            &[Value::Bytes(vec![])],
        );
        let none = function("TOPKDISTINCT", &[Integer], &[int(0)]);
        assert_restores("TOPKDISTINCT failed", &none, &rows(&[int(1)]), &[int(2)]);
    }

    #[test]
    fn snapshots_are_the_intermediate_state_with_a_kind() {
        let avg = filled(
            &function("AVG", &[Integer], &[]),
            &[int(2), NULL_VALUE, int(3)],
        );
        assert_eq!(
            avg.snapshot(),
            Value::Struct(vec![text("AVG"), int(5), long(2)])
        );
        let latest = filled(
            &function("LATEST_BY_OFFSET", &[Integer], &[int(2)]),
            &[int(7)],
        );
        let Value::Struct(fields) = latest.snapshot() else {
            panic!("not a struct");
        };
        assert_eq!(
            fields[..3],
            [text("LATEST_BY_OFFSET_N"), long(2), Value::Boolean(true)]
        );
        assert!(matches!(&fields[3], Value::Array(entries)
            if matches!(entries.as_slice(), [Value::Struct(entry)]
                if matches!(entry.as_slice(), [Value::BigInt(_), Value::Integer(7)]))));
        let sum = filled(&function("SUM", &[decimal(4, 2)], &[]), &[dec(5, 1)]);
        assert_eq!(
            sum.snapshot(),
            Value::Struct(vec![text("DECIMAL_SUM"), dec(50, 2), int(4), NULL_VALUE])
        );
    }

    #[test]
    fn snapshots_that_do_not_fit_are_refused_and_change_nothing() {
        let sum = function("SUM", &[Integer], &[]);
        let count = filled(&function("COUNT", &[], &[]), &[]);
        let mut target = filled(&sum, &[int(4)]);
        let refused = |target: &mut Box<dyn Accumulator>, snapshot: &Value| {
            let error = target.restore(snapshot).unwrap_err();
            assert_eq!(target.result(), int(4), "{error}");
            error
        };
        assert_eq!(
            refused(&mut target, &count.snapshot()),
            "a COUNT snapshot cannot restore a SUM accumulator"
        );
        let long_sum = filled(&function("SUM", &[BigInt], &[]), &[long(1)]);
        assert_eq!(
            refused(&mut target, &long_sum.snapshot()),
            "SUM snapshot: the sum should be an INTEGER, not BIGINT"
        );
        assert_eq!(
            refused(&mut target, &int(3)),
            "a SUM snapshot is a STRUCT, not INTEGER"
        );
        assert_eq!(
            refused(&mut target, &Value::Struct(vec![text("SUM")])),
            "a SUM snapshot has 1 fields after its kind, not 0"
        );
        assert_eq!(
            refused(&mut target, &Value::Struct(vec![int(1), int(2)])),
            "a SUM snapshot is a STRUCT starting with its kind, a STRING"
        );

        let top3 = filled(&function("TOPK", &[Integer], &[int(3)]), &[int(1)]);
        let mut top2 = function("TOPK", &[Integer], &[int(2)]).new_accumulator();
        assert_eq!(
            top2.restore(&top3.snapshot()).unwrap_err(),
            "TOPK snapshot: k is 3, this accumulator's is 2"
        );
        let mut wide = function("TOPK", &[Integer, Integer], &[int(3)]).new_accumulator();
        assert_eq!(
            wide.restore(&top3.snapshot()).unwrap_err(),
            "TOPK snapshot: the column count is 1, this accumulator's is 2"
        );
        let decimals = filled(&function("SUM", &[decimal(4, 2)], &[]), &[dec(1, 2)]);
        let mut other_scale = function("SUM", &[decimal(4, 1)], &[]).new_accumulator();
        assert_eq!(
            other_scale.restore(&decimals.snapshot()).unwrap_err(),
            "DECIMAL_SUM snapshot: the scale is 2, this accumulator's is 1"
        );
        let earliest = filled(&function("EARLIEST_BY_OFFSET", &[Integer], &[]), &[int(1)]);
        let mut keeping_nulls =
            function("EARLIEST_BY_OFFSET", &[Integer], &[Value::Boolean(false)]).new_accumulator();
        assert_eq!(
            keeping_nulls.restore(&earliest.snapshot()).unwrap_err(),
            "EARLIEST_BY_OFFSET snapshot: ignoreNulls is true, this accumulator's is false"
        );
        let mut samp = function("STDDEV_SAMP", &[Double], &[]).new_accumulator();
        let sample = function("STDDEV_SAMPLE", &[Double], &[]).new_accumulator();
        assert_eq!(
            samp.restore(&sample.snapshot()).unwrap_err(),
            "a STDDEV_SAMPLE snapshot cannot restore a STDDEV_SAMP accumulator"
        );
        let set = function("COLLECT_SET", &[Integer], &[]);
        let mut target = filled(&set, &[int(9)]);
        let repeated = Value::Struct(vec![
            text("COLLECT_SET"),
            array(vec![int(1), int(1)]),
            long(5),
        ]);
        assert_eq!(
            target.restore(&repeated).unwrap_err(),
            "COLLECT_SET snapshot: item 1 repeats an earlier one"
        );
        let negative = Value::Struct(vec![text("COLLECT_SET"), array(vec![]), long(-1)]);
        assert_eq!(
            target.restore(&negative).unwrap_err(),
            "COLLECT_SET snapshot: the limit is -1"
        );
        assert_eq!(target.result(), array(vec![int(9)]));
    }

    #[test]
    fn every_function_restores_its_fresh_state() {
        for name in NAMES {
            let (types, literals): (Vec<SqlType>, Vec<Value>) = match *name {
                "HISTOGRAM" => (vec![SqlType::String], vec![]),
                "CORRELATION" => (vec![Double, Double], vec![]),
                "SUM_LIST" => (vec![SqlType::Array(Box::new(Double))], vec![]),
                "TOPK" | "TOPKDISTINCT" => (vec![Double], vec![int(2)]),
                _ => (vec![Double], vec![]),
            };
            let f = function(name, &types, &literals);
            let row: Vec<Value> = types.iter().map(|_| double(1.5)).collect();
            let with_null: Vec<Value> = types.iter().map(|_| NULL_VALUE).collect();
            assert_restores(name, &f, &[], &row);
            assert_restores(name, &f, &[with_null, row.clone()], &row);
        }
    }
}
