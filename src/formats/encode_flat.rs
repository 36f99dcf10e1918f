//! Hand-written JSON and CSV writers for flat batches (numbers, booleans, strings): numbers
//! are formatted with lexical (shortest round-trip form) straight into the message buffer.
//! Strings may be any of arrow's three layouts: pandas 3 hands its strings over as
//! `large_string`, polars as `string_view`.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::encode::Encoded;

enum Column<'a> {
    I64(Vec<i64>, &'a dyn Array),
    U64(Vec<u64>, &'a dyn Array),
    F32(&'a [f32], &'a dyn Array),
    F64(&'a [f64], &'a dyn Array),
    Bool(&'a arrow_array::BooleanArray),
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Utf8View(&'a arrow_array::StringViewArray),
}

fn columns(batch: &RecordBatch) -> Option<Vec<Column<'_>>> {
    batch
        .columns()
        .iter()
        .map(|c: &ArrayRef| {
            let array = c.as_ref();
            Some(match c.data_type() {
                DataType::Int8 => Column::I64(
                    c.as_primitive::<Int8Type>()
                        .values()
                        .iter()
                        .map(|v| *v as i64)
                        .collect(),
                    array,
                ),
                DataType::Int16 => Column::I64(
                    c.as_primitive::<Int16Type>()
                        .values()
                        .iter()
                        .map(|v| *v as i64)
                        .collect(),
                    array,
                ),
                DataType::Int32 => Column::I64(
                    c.as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|v| *v as i64)
                        .collect(),
                    array,
                ),
                DataType::Int64 => {
                    Column::I64(c.as_primitive::<Int64Type>().values().to_vec(), array)
                }
                DataType::UInt8 => Column::U64(
                    c.as_primitive::<UInt8Type>()
                        .values()
                        .iter()
                        .map(|v| *v as u64)
                        .collect(),
                    array,
                ),
                DataType::UInt16 => Column::U64(
                    c.as_primitive::<UInt16Type>()
                        .values()
                        .iter()
                        .map(|v| *v as u64)
                        .collect(),
                    array,
                ),
                DataType::UInt32 => Column::U64(
                    c.as_primitive::<UInt32Type>()
                        .values()
                        .iter()
                        .map(|v| *v as u64)
                        .collect(),
                    array,
                ),
                DataType::UInt64 => {
                    Column::U64(c.as_primitive::<UInt64Type>().values().to_vec(), array)
                }
                DataType::Float32 => Column::F32(c.as_primitive::<Float32Type>().values(), array),
                DataType::Float64 => Column::F64(c.as_primitive::<Float64Type>().values(), array),
                DataType::Boolean => Column::Bool(c.as_boolean()),
                DataType::Utf8 => Column::Utf8(c.as_string::<i32>()),
                DataType::LargeUtf8 => Column::LargeUtf8(c.as_string::<i64>()),
                DataType::Utf8View => Column::Utf8View(c.as_string_view()),
                _ => return None,
            })
        })
        .collect()
}

impl Column<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Column::I64(_, a) | Column::U64(_, a) | Column::F32(_, a) | Column::F64(_, a) => {
                a.is_null(row)
            }
            Column::Bool(a) => a.is_null(row),
            Column::Utf8(a) => a.is_null(row),
            Column::LargeUtf8(a) => a.is_null(row),
            Column::Utf8View(a) => a.is_null(row),
        }
    }

    /// The text of a non-null string; `None` for the other columns.
    fn text(&self, row: usize) -> Option<&str> {
        match self {
            Column::Utf8(a) => Some(a.value(row)),
            Column::LargeUtf8(a) => Some(a.value(row)),
            Column::Utf8View(a) => Some(a.value(row)),
            _ => None,
        }
    }

    /// Writes a non-null number or boolean; returns false for strings (the caller quotes).
    /// Non-finite floats are written as `null_text` (JSON has no NaN).
    fn write_scalar(&self, row: usize, out: &mut Vec<u8>, null_text: &[u8]) -> bool {
        let mut buffer = [0u8; lexical_core::BUFFER_SIZE];
        match self {
            Column::I64(v, _) => out.extend_from_slice(lexical_core::write(v[row], &mut buffer)),
            Column::U64(v, _) => out.extend_from_slice(lexical_core::write(v[row], &mut buffer)),
            Column::F32(v, _) if v[row].is_finite() => {
                out.extend_from_slice(lexical_core::write(v[row], &mut buffer))
            }
            Column::F64(v, _) if v[row].is_finite() => {
                out.extend_from_slice(lexical_core::write(v[row], &mut buffer))
            }
            Column::F32(..) | Column::F64(..) => out.extend_from_slice(null_text),
            Column::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Column::Utf8(_) | Column::LargeUtf8(_) | Column::Utf8View(_) => return false,
        }
        true
    }
}

/// JSON objects (explicit nulls), or `None` if a column is not flat.
pub fn encode_json(batch: &RecordBatch) -> Option<Encoded> {
    let columns = columns(batch)?;
    let keys: Vec<Vec<u8>> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut key = if i == 0 { b"{".to_vec() } else { b",".to_vec() };
            write_json_string(f.name(), &mut key);
            key.push(b':');
            key
        })
        .collect();
    let mut out = Encoded::with_capacity(
        batch.num_rows(),
        batch.num_rows() * 24 * columns.len().max(1),
    );
    for row in 0..batch.num_rows() {
        let buf = out.buffer();
        if columns.is_empty() {
            buf.push(b'{');
        }
        for (column, key) in columns.iter().zip(&keys) {
            buf.extend_from_slice(key);
            if column.is_null(row) {
                buf.extend_from_slice(b"null");
            } else if !column.write_scalar(row, buf, b"null") {
                if let Some(text) = column.text(row) {
                    write_json_string(text, buf);
                }
            }
        }
        buf.push(b'}');
        out.end_payload();
    }
    Some(out)
}

/// Delimited lines (empty field for null, strings quoted when needed), or `None` if a column
/// is not flat.
pub fn encode_csv(batch: &RecordBatch, delimiter: u8) -> Option<Encoded> {
    let columns = columns(batch)?;
    let mut out = Encoded::with_capacity(
        batch.num_rows(),
        batch.num_rows() * 20 * columns.len().max(1),
    );
    for row in 0..batch.num_rows() {
        let buf = out.buffer();
        let row_start = buf.len();
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                buf.push(delimiter);
            }
            if column.is_null(row) || column.write_scalar(row, buf, b"") {
                continue;
            }
            if let Some(text) = column.text(row) {
                let text = text.as_bytes();
                if text
                    .iter()
                    .any(|b| *b == delimiter || *b == b'"' || *b == b'\n' || *b == b'\r')
                {
                    buf.push(b'"');
                    for b in text {
                        if *b == b'"' {
                            buf.push(b'"');
                        }
                        buf.push(*b);
                    }
                    buf.push(b'"');
                } else {
                    buf.extend_from_slice(text);
                }
            }
        }
        if buf.len() == row_start {
            // One column, null or empty: `""` keeps the line from being empty.
            buf.extend_from_slice(b"\"\"");
        }
        out.end_payload();
    }
    Some(out)
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}
