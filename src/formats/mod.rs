//! Message payloads to and from Arrow.
//!
//! Each format has one decoder that turns a batch of message payloads into one
//! `RecordBatch`, and reports the payloads it could not decode by their index in the batch,
//! so the consumer can name topic/partition/offset and apply its error policy.

pub mod avro;
pub mod csv;
pub mod dates;
pub mod encode;
mod encode_flat;
pub mod flat;
pub(crate) mod float_fields;
pub mod json;
mod json_flat;
pub mod ksql_types;
pub mod raw;
pub mod registry;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, FieldRef, Schema, SchemaRef};

pub use dates::parse_dates;
pub use ksql_types::{parse_column_declarations, parse_ksql_type};

/// Errors of the format layer that are not about one message (those are [`RowFailure`]s).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("invalid schema: {0}")]
    Schema(String),
    #[error("invalid Avro schema: {0}")]
    AvroSchema(String),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// One message as the decoders see it: key and value bytes, either may be absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Payload<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// A message that could not be decoded: its index in the decoded slice and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    pub index: usize,
    pub reason: String,
}

/// The result of decoding a batch: the rows that decoded (in input order) and the rest.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub failures: Vec<RowFailure>,
}

impl Decoded {
    /// True when message `index` of the input is in `batch`.
    pub fn kept_mask(&self, input_len: usize) -> Vec<bool> {
        let mut keep = vec![true; input_len];
        for failure in &self.failures {
            keep[failure.index] = false;
        }
        keep
    }

    /// One `Decoded` from parts decoded separately, each given with the index of its first
    /// message in the whole input (failure indices are shifted by it).
    pub fn concat(
        schema: &SchemaRef,
        parts: Vec<(usize, Decoded)>,
    ) -> Result<Decoded, FormatError> {
        let mut batches = Vec::with_capacity(parts.len());
        let mut failures = Vec::new();
        for (first_index, decoded) in parts {
            failures.extend(decoded.failures.into_iter().map(|f| RowFailure {
                index: f.index + first_index,
                ..f
            }));
            batches.push(decoded.batch);
        }
        let batch = match batches.len() {
            1 => batches.pop().expect("one batch"),
            _ => arrow::compute::concat_batches(schema, &batches)?,
        };
        Ok(Decoded { batch, failures })
    }
}

/// Turns message payloads into Arrow record batches.
pub trait BatchDecoder: Send + Sync {
    /// The schema of every batch this decoder returns.
    fn schema(&self) -> SchemaRef;
    /// Decodes `payloads`; messages that fail are left out of the batch and listed.
    fn decode(&mut self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError>;
    /// The same decoding through a shared reference, for decoders that keep no state
    /// between batches: several threads may then decode chunks of one read at once.
    fn as_shared(&self) -> Option<&dyn SharedDecoder> {
        None
    }
    /// Names of fields the messages held that the schema lacks (and so were left out), for
    /// decoders asked to track them; the first few, in the order they were met.
    fn unknown_fields(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A decoder several threads can use at once (see [`BatchDecoder::as_shared`]).
pub trait SharedDecoder: Sync {
    /// As [`BatchDecoder::decode`], on one thread: callers split work between threads.
    fn decode_shared(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError>;

    /// For a float32 matrix: the payloads straight into row-major float32 rows of `columns`
    /// (indices into the schema), each value what the batch would hold cast to float32.
    /// `None` when these payloads need [`SharedDecoder::decode_shared`] (a null, a failure,
    /// a decoder without such a path).
    fn decode_float32_rows(
        &self,
        _payloads: &[Payload<'_>],
        _columns: &[usize],
    ) -> Option<Vec<f32>> {
        None
    }
}

/// A message value format, as named in the Python API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Avro,
    Raw,
}

impl std::str::FromStr for Format {
    type Err = FormatError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" | "delimited" => Ok(Format::Csv),
            "avro" => Ok(Format::Avro),
            "raw" | "bytes" => Ok(Format::Raw),
            other => Err(FormatError::Schema(format!(
                "unknown format {other:?}; expected one of 'json', 'csv' (alias 'delimited'), 'avro', 'raw'"
            ))),
        }
    }
}

/// Messages the decoders prefetch ahead of the one they parse.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to start loading `bytes` into its cache. Payloads that are not cached cost
/// the flat decoders more than parsing them: in `decode_bench` a third of the CSV float
/// decoder's time was its first loads of each message, and prefetching the message
/// `PREFETCH_AHEAD` places ahead made it 1.45x as fast (JSON 1.2x). Reading from a broker,
/// the payloads are mostly cached still (librdkafka's prefetch queue fits the L3 cache) and
/// it made no measurable difference; it helps when the decoder falls far behind.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = bytes.as_ptr() as usize & !(LINE - 1);
        let end = bytes.as_ptr() as usize + bytes.len();
        for line in (start..end).step_by(LINE) {
            // Safety: SSE is part of x86_64; a prefetch is a hint that never faults, whatever
            // the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The payloads with their indices, each value prefetched `PREFETCH_AHEAD` places before it
/// is reached.
pub(crate) fn prefetching<'p, 'a>(
    payloads: &'p [Payload<'a>],
) -> impl Iterator<Item = (usize, &'p Payload<'a>)> {
    payloads.iter().enumerate().inspect(move |(index, _)| {
        if let Some(ahead) = payloads.get(index + PREFETCH_AHEAD).and_then(|p| p.value) {
            prefetch(ahead);
        }
    })
}

/// Decodes all payloads with `together`; only if that fails, decodes each on its own to
/// find the bad ones, then the good ones together. Keeps the fast path free of per-message
/// bookkeeping for decoders (arrow's) that fail a whole batch on one bad message.
pub(crate) fn decode_isolating_failures(
    payloads: &[Payload<'_>],
    mut together: impl FnMut(&[&Payload<'_>]) -> Result<RecordBatch, String>,
) -> Result<Decoded, FormatError> {
    let all: Vec<&Payload<'_>> = payloads.iter().collect();
    if let Ok(batch) = together(&all) {
        return Ok(Decoded {
            batch,
            failures: Vec::new(),
        });
    }
    let (good, failures) = classify_each(payloads, |p| together(&[p]).map(|_| ()));
    let kept: Vec<&Payload<'_>> = good.iter().map(|&i| &payloads[i]).collect();
    let batch = together(&kept).map_err(|reason| {
        FormatError::Schema(format!("rows that decoded alone failed together: {reason}"))
    })?;
    Ok(Decoded { batch, failures })
}

/// Decodes each payload on its own with `decode_one`; returns the good indices and the failures.
pub(crate) fn classify_each<F>(
    payloads: &[Payload<'_>],
    mut decode_one: F,
) -> (Vec<usize>, Vec<RowFailure>)
where
    F: FnMut(&Payload<'_>) -> Result<(), String>,
{
    let mut good = Vec::with_capacity(payloads.len());
    let mut failures = Vec::new();
    for (index, payload) in payloads.iter().enumerate() {
        match decode_one(payload) {
            Ok(()) => good.push(index),
            Err(reason) => failures.push(RowFailure { index, reason }),
        }
    }
    (good, failures)
}

/// Names of UTC that no time zone database holds but pandas and pyarrow pass through.
/// Arrow resolves offsets like `"+00:00"` and (with its `chrono-tz` feature) IANA names such
/// as `"UTC"` or `"Europe/Berlin"`, case-sensitively: these are spelled `"+00:00"` for its
/// readers and writers.
fn is_utc_name(tz: &str) -> bool {
    matches!(tz, "utc" | "Z" | "z")
}

/// `data_type` with the UTC names arrow cannot resolve spelled `"+00:00"`, nested types
/// included.
pub(crate) fn utc_as_offset(data_type: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(utc_as_offset(f.data_type())),
        )
    };
    match data_type {
        DataType::Timestamp(unit, Some(tz)) if is_utc_name(tz) => {
            DataType::Timestamp(*unit, Some("+00:00".into()))
        }
        DataType::List(item) => DataType::List(field(item)),
        DataType::LargeList(item) => DataType::LargeList(field(item)),
        DataType::FixedSizeList(item, n) => DataType::FixedSizeList(field(item), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(entries, sorted) => DataType::Map(field(entries), *sorted),
        other => other.clone(),
    }
}

/// `schema` with the UTC names arrow cannot resolve spelled `"+00:00"` (the same `Arc` if
/// there are none).
pub(crate) fn schema_utc_as_offset(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(utc_as_offset(f.data_type())),
            )
        })
        .collect();
    if fields
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return schema.clone();
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with the types of `schema`, which differ at most in time zone names (a zoned
/// timestamp cast to another zone keeps its instants: only the label changes).
pub(crate) fn relabel(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| arrow_cast::cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}

/// An empty batch of `schema`, for when every message of a batch failed.
pub(crate) fn empty_batch(schema: &SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(Arc::clone(schema))
}
