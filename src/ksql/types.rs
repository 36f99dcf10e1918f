//! ksqlDB result schemas and rows into Arrow.
//!
//! Type strings are parsed by [`crate::formats::ksql_types`] (one parser for declarations and
//! results). Rows arrive as JSON arrays; they are buffered as text and decoded in bulk by
//! arrow-json, so no JSON value is materialised per row.
//!
//! Two ksqlDB encodings need a translation: BYTES values are base64 strings (decoded into
//! Arrow binary for top-level columns; inside ARRAY/MAP/STRUCT they stay base64 text), and
//! STRUCT values are JSON objects while rows are JSON arrays, so rows of schemas with nested
//! structs are rewritten into objects before decoding.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_json::reader::{infer_json_schema_from_iterator, Decoder, ReaderBuilder};
use arrow_json::StructMode;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use base64::Engine;

use super::parse::{split_array, Columns};
use crate::formats::{parse_column_declarations, parse_ksql_type, FormatError};

/// A result set's schema from its header, as Arrow.
pub fn header_schema(columns: &Columns) -> Result<Schema, FormatError> {
    let schema = match columns {
        Columns::Declarations(text) => parse_column_declarations(&[text.as_str()])?,
        Columns::NamesAndTypes { names, types } => {
            let mut fields = Vec::with_capacity(names.len());
            for (name, type_text) in names.iter().zip(types) {
                let data_type = parse_ksql_type(type_text)
                    .map_err(|e| FormatError::Schema(format!("column {name:?}: {e}")))?;
                fields.push(Field::new(name, data_type, true));
            }
            Schema::new(fields)
        }
    };
    Ok(result_schema(&schema))
}

/// The schema results are delivered in: nested BYTES stay base64 text (see module docs).
fn result_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), nested_binary_as_text(f.data_type(), true), true))
            .collect::<Vec<_>>(),
    )
}

fn nested_binary_as_text(data_type: &DataType, top_level: bool) -> DataType {
    match data_type {
        DataType::Binary if !top_level => DataType::Utf8,
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(nested_binary_as_text(item.data_type(), false)),
        )),
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_data_type(nested_binary_as_text(f.data_type(), false))
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Map(entries, sorted) => DataType::Map(
            Arc::new(
                entries
                    .as_ref()
                    .clone()
                    .with_data_type(nested_binary_as_text(entries.data_type(), false)),
            ),
            *sorted,
        ),
        other => other.clone(),
    }
}

fn has_nested_struct(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(_) => true,
        DataType::List(item) => has_nested_struct(item.data_type()),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => kv.iter().any(|f| has_nested_struct(f.data_type())),
            _ => false,
        },
        _ => false,
    }
}

/// Rows arrow-json decodes at a time (it preallocates for this many).
const DECODE_BATCH_ROWS: usize = 16_384;

/// Collects rows (JSON array texts) and decodes them into record batches of `schema`.
pub struct RowDecoder {
    schema: SchemaRef,
    decoder: Decoder,
    /// Rows must be rewritten into `{"0":…,"1":…}` objects (nested structs present).
    as_objects: bool,
    /// Top-level BYTES columns: decoded as text, then base64-decoded.
    binary_columns: Vec<usize>,
    pending: Vec<u8>,
    pending_rows: usize,
}

impl RowDecoder {
    pub fn new(schema: SchemaRef) -> Result<Self, FormatError> {
        let as_objects = schema
            .fields()
            .iter()
            .any(|f| has_nested_struct(f.data_type()));
        let mut binary_columns = Vec::new();
        // Positional names keep arbitrary (even duplicate) column names out of the decoder.
        let decode_fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let data_type = if f.data_type() == &DataType::Binary {
                    binary_columns.push(i);
                    DataType::Utf8
                } else {
                    f.data_type().clone()
                };
                Field::new(i.to_string(), data_type, true)
            })
            .collect();
        let mode = if as_objects {
            StructMode::ObjectOnly
        } else {
            StructMode::ListOnly
        };
        let decoder = ReaderBuilder::new(Arc::new(Schema::new(decode_fields)))
            .with_struct_mode(mode)
            .with_batch_size(DECODE_BATCH_ROWS)
            .with_coerce_primitive(true)
            .build_decoder()?;
        Ok(RowDecoder {
            schema,
            decoder,
            as_objects,
            binary_columns,
            pending: Vec::new(),
            pending_rows: 0,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    /// Adds one row, the JSON array text of its values.
    pub fn push(&mut self, values: &str) -> Result<(), FormatError> {
        if self.as_objects {
            let elements = split_array(values).map_err(FormatError::Schema)?;
            self.pending.push(b'{');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    self.pending.push(b',');
                }
                self.pending
                    .extend_from_slice(format!("\"{i}\":").as_bytes());
                self.pending.extend_from_slice(element.as_bytes());
            }
            self.pending.extend_from_slice(b"}\n");
        } else {
            self.pending.extend_from_slice(values.as_bytes());
            self.pending.push(b'\n');
        }
        self.pending_rows += 1;
        Ok(())
    }

    /// Decodes the buffered rows into one batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, FormatError> {
        if self.pending_rows == 0 {
            return Ok(None);
        }
        let text = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let mut parts = Vec::new();
        let mut offset = 0;
        while offset < text.len() {
            let read = self.decoder.decode(&text[offset..])?;
            offset += read;
            if read == 0 || self.decoder.len() >= DECODE_BATCH_ROWS {
                if let Some(part) = self.decoder.flush()? {
                    parts.push(part);
                }
                if read == 0
                    && offset < text.len()
                    && self.decoder.is_empty()
                    && !self.decoder.has_partial_record()
                {
                    // No progress and nothing buffered: only whitespace can remain.
                    break;
                }
            }
        }
        if let Some(part) = self.decoder.flush()? {
            parts.push(part);
        }
        let decoded = match parts.len() {
            0 => return Ok(None),
            1 => parts.pop().expect("one part"),
            _ => arrow::compute::concat_batches(&parts[0].schema(), &parts)?,
        };
        let mut columns: Vec<ArrayRef> = decoded.columns().to_vec();
        for &i in &self.binary_columns {
            columns[i] = base64_column(self.schema.field(i).name(), &columns[i])?;
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

fn base64_column(name: &str, column: &ArrayRef) -> Result<ArrayRef, FormatError> {
    let text = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| {
            FormatError::Schema(format!("BYTES column {name:?} did not decode as text"))
        })?;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(text.len());
    for value in text.iter() {
        values.push(match value {
            None => None,
            Some(encoded) => Some(engine.decode(encoded).map_err(|e| {
                FormatError::Schema(format!(
                    "BYTES column {name:?}: {encoded:?} is not base64: {e}"
                ))
            })?),
        });
    }
    Ok(Arc::new(BinaryArray::from_iter(values)))
}

/// A schema for rows that came without a header (KSQL 5.x `/query`): types inferred from
/// the first rows, columns named `col0`, `col1`, ...
pub fn infer_schema(rows: &[&str]) -> Result<Schema, FormatError> {
    let mut objects = Vec::with_capacity(rows.len());
    for row in rows {
        let values: Vec<serde_json::Value> = serde_json::from_str(row)
            .map_err(|e| FormatError::Schema(format!("row {row:?} is not a JSON array: {e}")))?;
        let object: serde_json::Map<String, serde_json::Value> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("col{i}"), v))
            .collect();
        objects.push(Ok(serde_json::Value::Object(object)));
    }
    let inferred = infer_json_schema_from_iterator(objects.into_iter())?;
    // Keep column order (the inference sorts nothing, but be explicit about positions).
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.sort_by_key(|f| f.name()[3..].parse::<usize>().unwrap_or(usize::MAX));
    Ok(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int32Type, Int64Type};
    use arrow_schema::TimeUnit;

    #[test]
    fn header_declarations_with_keys_backquotes_and_nesting() {
        let schema = header_schema(&Columns::Declarations(
            "`ID` BIGINT KEY, `lower name` STRING, `AMOUNT` DECIMAL(10, 2), `TAGS` ARRAY<STRING>, \
             `ATTRS` MAP<STRING, INTEGER>, `ADDR` STRUCT<`STREET` STRING, `NO` INTEGER>, `RAW` BYTES, \
             `NESTED_RAW` ARRAY<BYTES>, `TS` TIMESTAMP, `D` DATE, `T` TIME, `OK` BOOLEAN, `X` DOUBLE"
                .into(),
        ))
        .unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "ID",
                "lower name",
                "AMOUNT",
                "TAGS",
                "ATTRS",
                "ADDR",
                "RAW",
                "NESTED_RAW",
                "TS",
                "D",
                "T",
                "OK",
                "X"
            ]
        );
        assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(schema.field(6).data_type(), &DataType::Binary);
        assert_eq!(
            schema.field(7).data_type(),
            &DataType::new_list(DataType::Utf8, true)
        );
        assert_eq!(
            schema.field(8).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
    }

    #[test]
    fn names_and_types_and_errors_name_the_column() {
        let schema = header_schema(&Columns::NamesAndTypes {
            names: vec!["K".into(), "V".into()],
            types: vec!["INTEGER".into(), "DECIMAL(4,1)".into()],
        })
        .unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(4, 1));
        let err = header_schema(&Columns::NamesAndTypes {
            names: vec!["K".into()],
            types: vec!["INTEGR".into()],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"K\"") && err.contains("INTEGR"), "{err}");
    }

    #[test]
    fn flat_rows_decode_in_bulk() {
        let schema = Arc::new(
            header_schema(&Columns::Declarations(
                "`ID` BIGINT KEY, `NAME` STRING, `AMOUNT` DECIMAL(10, 2), `RAW` BYTES, `TS` TIMESTAMP, `D` DATE".into(),
            ))
            .unwrap(),
        );
        let mut decoder = RowDecoder::new(schema.clone()).unwrap();
        decoder
            .push("[1,\"a\",12.5,\"aGVsbG8=\",\"2021-04-25T18:31:40.123\",\"2021-04-25\"]")
            .unwrap();
        decoder.push("[2,null,null,null,null,null]").unwrap();
        assert_eq!(decoder.pending_rows(), 2);
        let batch = decoder.flush().unwrap().unwrap();
        assert_eq!(batch.schema(), schema);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 2]
        );
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "a");
        assert!(batch.column(1).is_null(1));
        assert_eq!(
            batch.column(2).as_primitive::<Decimal128Type>().value(0),
            1250
        );
        assert_eq!(batch.column(3).as_binary::<i32>().value(0), b"hello");
        assert!(batch.column(3).is_null(1));
        assert_eq!(
            batch
                .column(4)
                .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                .value(0),
            1_619_375_500_123
        );
        assert_eq!(
            batch
                .column(5)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            18742
        );
        assert!(decoder.flush().unwrap().is_none());
    }

    #[test]
    fn nested_structs_are_rewritten_into_objects() {
        let schema = Arc::new(
            header_schema(&Columns::Declarations(
                "`K` INTEGER, `S` STRUCT<`A` INTEGER, `B` ARRAY<STRING>>, `M` MAP<STRING, INTEGER>"
                    .into(),
            ))
            .unwrap(),
        );
        let mut decoder = RowDecoder::new(schema).unwrap();
        decoder
            .push("[1, {\"A\":5,\"B\":[\"x\",\"y,z\"]}, {\"k\":1}]")
            .unwrap();
        decoder.push("[2,null,null]").unwrap();
        let batch = decoder.flush().unwrap().unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int32Type>().values(),
            &[1, 2]
        );
        let s = batch.column(1).as_struct();
        assert_eq!(s.column(0).as_primitive::<Int32Type>().value(0), 5);
        assert!(s.is_null(1));
        assert_eq!(batch.column(2).as_map().value(0).len(), 1);
    }

    #[test]
    fn bad_rows_say_why() {
        let schema = Arc::new(
            header_schema(&Columns::Declarations("`A` INTEGER, `R` BYTES".into())).unwrap(),
        );
        let mut decoder = RowDecoder::new(schema.clone()).unwrap();
        decoder.push("[1,\"not base64!\"]").unwrap();
        let err = decoder.flush().unwrap_err().to_string();
        assert!(err.contains("\"R\"") && err.contains("base64"), "{err}");
        let mut decoder = RowDecoder::new(schema).unwrap();
        decoder.push("[1]").unwrap();
        let err = decoder.flush().unwrap_err().to_string();
        assert!(err.contains("1 columns for 2 fields"), "{err}");
    }

    #[test]
    fn headerless_rows_get_inferred_types() {
        let schema = infer_schema(&["[1,\"a\",1.5,true]", "[2,\"b\",2.0,false]"]).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["col0", "col1", "col2", "col3"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);
        assert_eq!(schema.field(3).data_type(), &DataType::Boolean);
    }
}
