//! Column builders for flat schemas (numbers, booleans, strings), shared by the hand-written
//! JSON and CSV fast paths. A row is parsed into slots first and appended only when every
//! field parsed, so one bad message never leaves a half-written row behind.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::*;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

/// The column types the fast paths handle; anything else goes through arrow's readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatType {
    Int(IntWidth),
    UInt(IntWidth),
    Float32,
    Float64,
    Boolean,
    Utf8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntWidth {
    W8,
    W16,
    W32,
    W64,
}

impl FlatType {
    pub fn of(data_type: &DataType) -> Option<FlatType> {
        Some(match data_type {
            DataType::Int8 => FlatType::Int(IntWidth::W8),
            DataType::Int16 => FlatType::Int(IntWidth::W16),
            DataType::Int32 => FlatType::Int(IntWidth::W32),
            DataType::Int64 => FlatType::Int(IntWidth::W64),
            DataType::UInt8 => FlatType::UInt(IntWidth::W8),
            DataType::UInt16 => FlatType::UInt(IntWidth::W16),
            DataType::UInt32 => FlatType::UInt(IntWidth::W32),
            DataType::UInt64 => FlatType::UInt(IntWidth::W64),
            DataType::Float32 => FlatType::Float32,
            DataType::Float64 => FlatType::Float64,
            DataType::Boolean => FlatType::Boolean,
            DataType::Utf8 => FlatType::Utf8,
            _ => return None,
        })
    }

    /// The flat types of every column of `schema`, or `None` if one is not flat.
    pub fn of_schema(schema: &SchemaRef) -> Option<Vec<FlatType>> {
        schema
            .fields()
            .iter()
            .map(|f| FlatType::of(f.data_type()))
            .collect()
    }
}

/// One parsed field, waiting for the rest of its row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    /// A range of the row's string scratch buffer.
    Str(usize, usize),
}

/// Parses `text` as a value of `flat` (a number, boolean, or the text itself).
pub fn parse_text(text: &[u8], flat: FlatType, scratch: &mut Vec<u8>) -> Result<Slot, String> {
    let bad = || {
        format!(
            "{:?} is not a valid {}",
            String::from_utf8_lossy(text),
            flat_name(flat)
        )
    };
    Ok(match flat {
        FlatType::Int(_) => match lexical_core::parse::<i64>(text) {
            Ok(v) => Slot::Int(v),
            // 3.0 is an integer written as a float: accept it, reject 3.5.
            Err(_) => match lexical_core::parse::<f64>(text) {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.007e15 => Slot::Int(f as i64),
                _ => return Err(bad()),
            },
        },
        FlatType::UInt(_) => Slot::UInt(lexical_core::parse::<u64>(text).map_err(|_| bad())?),
        FlatType::Float32 | FlatType::Float64 => Slot::Float(parse_float(text).ok_or_else(bad)?),
        FlatType::Boolean => {
            if text.eq_ignore_ascii_case(b"true") {
                Slot::Bool(true)
            } else if text.eq_ignore_ascii_case(b"false") {
                Slot::Bool(false)
            } else {
                return Err(bad());
            }
        }
        FlatType::Utf8 => {
            std::str::from_utf8(text).map_err(|_| "invalid UTF-8 in a string".to_string())?;
            let start = scratch.len();
            scratch.extend_from_slice(text);
            Slot::Str(start, scratch.len())
        }
    })
}

fn parse_float(text: &[u8]) -> Option<f64> {
    lexical_core::parse::<f64>(text).ok().or(match text {
        b"NaN" | b"nan" => Some(f64::NAN),
        b"Infinity" | b"inf" => Some(f64::INFINITY),
        b"-Infinity" | b"-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    })
}

pub fn flat_name(flat: FlatType) -> &'static str {
    match flat {
        FlatType::Int(_) => "integer",
        FlatType::UInt(_) => "unsigned integer",
        FlatType::Float32 | FlatType::Float64 => "number",
        FlatType::Boolean => "boolean",
        FlatType::Utf8 => "string",
    }
}

enum ColumnBuilder {
    I8(PrimitiveBuilder<Int8Type>),
    I16(PrimitiveBuilder<Int16Type>),
    I32(PrimitiveBuilder<Int32Type>),
    I64(PrimitiveBuilder<Int64Type>),
    U8(PrimitiveBuilder<UInt8Type>),
    U16(PrimitiveBuilder<UInt16Type>),
    U32(PrimitiveBuilder<UInt32Type>),
    U64(PrimitiveBuilder<UInt64Type>),
    F32(PrimitiveBuilder<Float32Type>),
    F64(PrimitiveBuilder<Float64Type>),
    Bool(BooleanBuilder),
    Utf8(StringBuilder),
}

/// Builds one record batch of a flat schema, row by row.
pub struct FlatBatchBuilder {
    schema: SchemaRef,
    pub types: Vec<FlatType>,
    columns: Vec<ColumnBuilder>,
}

macro_rules! checked_int {
    ($builder:expr, $value:expr, $t:ty, $name:expr) => {{
        let v = <$t>::try_from($value)
            .map_err(|_| format!("{} is out of range for {}", $value, $name))?;
        $builder.append_value(v)
    }};
}

impl FlatBatchBuilder {
    pub fn new(schema: SchemaRef, types: Vec<FlatType>, capacity: usize) -> Self {
        let columns = types
            .iter()
            .map(|t| match t {
                FlatType::Int(IntWidth::W8) => {
                    ColumnBuilder::I8(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::Int(IntWidth::W16) => {
                    ColumnBuilder::I16(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::Int(IntWidth::W32) => {
                    ColumnBuilder::I32(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::Int(IntWidth::W64) => {
                    ColumnBuilder::I64(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::UInt(IntWidth::W8) => {
                    ColumnBuilder::U8(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::UInt(IntWidth::W16) => {
                    ColumnBuilder::U16(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::UInt(IntWidth::W32) => {
                    ColumnBuilder::U32(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::UInt(IntWidth::W64) => {
                    ColumnBuilder::U64(PrimitiveBuilder::with_capacity(capacity))
                }
                FlatType::Float32 => ColumnBuilder::F32(PrimitiveBuilder::with_capacity(capacity)),
                FlatType::Float64 => ColumnBuilder::F64(PrimitiveBuilder::with_capacity(capacity)),
                FlatType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
                FlatType::Utf8 => {
                    ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 8))
                }
            })
            .collect();
        FlatBatchBuilder {
            schema,
            types,
            columns,
        }
    }

    /// Checks that every slot fits its column (ranges of integers), without appending.
    pub fn check_row(&self, slots: &[Slot]) -> Result<(), String> {
        for (slot, (flat, field)) in slots
            .iter()
            .zip(self.types.iter().zip(self.schema.fields()))
        {
            let fits = match (*slot, flat) {
                (Slot::Int(v), FlatType::Int(w)) => int_fits(v as i128, *w, true),
                (Slot::UInt(v), FlatType::UInt(w)) => int_fits(v as i128, *w, false),
                (Slot::Int(v), FlatType::UInt(w)) => v >= 0 && int_fits(v as i128, *w, false),
                (Slot::UInt(v), FlatType::Int(w)) => int_fits(v as i128, *w, true),
                _ => true,
            };
            if !fits {
                return Err(format!(
                    "field {:?}: value out of range for {}",
                    field.name(),
                    field.data_type()
                ));
            }
        }
        Ok(())
    }

    /// Appends one row; `slots` must have passed [`Self::check_row`].
    pub fn append_row(&mut self, slots: &[Slot], scratch: &[u8]) -> Result<(), String> {
        for (slot, column) in slots.iter().zip(self.columns.iter_mut()) {
            let int = |slot: &Slot| -> i64 {
                match slot {
                    Slot::Int(v) => *v,
                    Slot::UInt(v) => *v as i64,
                    _ => 0,
                }
            };
            match (column, slot) {
                (ColumnBuilder::I8(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::I16(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::I32(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::I64(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::U8(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::U16(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::U32(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::U64(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::F32(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::F64(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::Bool(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::Utf8(b), Slot::Null) => b.append_null(),
                (ColumnBuilder::I8(b), s) => checked_int!(b, int(s), i8, "int8"),
                (ColumnBuilder::I16(b), s) => checked_int!(b, int(s), i16, "int16"),
                (ColumnBuilder::I32(b), s) => checked_int!(b, int(s), i32, "int32"),
                (ColumnBuilder::I64(b), s) => b.append_value(int(s)),
                (ColumnBuilder::U8(b), s) => checked_int!(b, int(s), u8, "uint8"),
                (ColumnBuilder::U16(b), s) => checked_int!(b, int(s), u16, "uint16"),
                (ColumnBuilder::U32(b), s) => checked_int!(b, int(s), u32, "uint32"),
                (ColumnBuilder::U64(b), Slot::UInt(v)) => b.append_value(*v),
                (ColumnBuilder::U64(b), s) => checked_int!(b, int(s), u64, "uint64"),
                (ColumnBuilder::F32(b), Slot::Float(v)) => b.append_value(*v as f32),
                (ColumnBuilder::F64(b), Slot::Float(v)) => b.append_value(*v),
                (ColumnBuilder::Bool(b), Slot::Bool(v)) => b.append_value(*v),
                (ColumnBuilder::Utf8(b), Slot::Str(start, end)) => {
                    // checked as UTF-8 when the slot was made
                    b.append_value(
                        std::str::from_utf8(&scratch[*start..*end]).map_err(|e| e.to_string())?,
                    )
                }
                (_, other) => {
                    return Err(format!("internal: slot {other:?} does not fit its column"))
                }
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    ColumnBuilder::I8(b) => Arc::new(b.finish()),
                    ColumnBuilder::I16(b) => Arc::new(b.finish()),
                    ColumnBuilder::I32(b) => Arc::new(b.finish()),
                    ColumnBuilder::I64(b) => Arc::new(b.finish()),
                    ColumnBuilder::U8(b) => Arc::new(b.finish()),
                    ColumnBuilder::U16(b) => Arc::new(b.finish()),
                    ColumnBuilder::U32(b) => Arc::new(b.finish()),
                    ColumnBuilder::U64(b) => Arc::new(b.finish()),
                    ColumnBuilder::F32(b) => Arc::new(b.finish()),
                    ColumnBuilder::F64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Bool(b) => Arc::new(b.finish()),
                    ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

fn int_fits(v: i128, width: IntWidth, signed: bool) -> bool {
    let bits = match width {
        IntWidth::W8 => 8,
        IntWidth::W16 => 16,
        IntWidth::W32 => 32,
        IntWidth::W64 => 64,
    };
    if signed {
        v >= -(1i128 << (bits - 1)) && v < (1i128 << (bits - 1))
    } else {
        v >= 0 && v < (1i128 << bits)
    }
}

/// Decodes `payloads` in up to four chunks on scoped threads (one per core), then joins the
/// batches: the hand-written readers are CPU-bound and librdkafka's polling is not.
pub fn decode_in_parallel<F>(
    schema: &SchemaRef,
    payloads: &[super::Payload<'_>],
    decode_chunk: F,
) -> Result<super::Decoded, super::FormatError>
where
    F: Fn(&[super::Payload<'_>]) -> Result<super::Decoded, super::FormatError> + Sync,
{
    const MIN_CHUNK: usize = 2048;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if threads < 2 || payloads.len() < 2 * MIN_CHUNK {
        return decode_chunk(payloads);
    }
    let chunk_len = payloads.len().div_ceil(threads);
    let results: Vec<Result<super::Decoded, super::FormatError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = payloads
            .chunks(chunk_len)
            .map(|chunk| scope.spawn(|| decode_chunk(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(super::FormatError::Schema(
                        "a decoder thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut parts = Vec::with_capacity(results.len());
    for (i, result) in results.into_iter().enumerate() {
        parts.push((i * chunk_len, result?));
    }
    super::Decoded::concat(schema, parts)
}
