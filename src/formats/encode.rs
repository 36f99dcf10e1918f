//! Arrow rows to message payloads (JSON objects, delimited lines, Avro datums, raw bytes).

use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;

use super::avro::batch_to_avro_values;
use super::{relabel, schema_utc_as_offset, utc_as_offset, FormatError};

/// Many payloads in one buffer: payload `i` is `buf[ends[i-1]..ends[i]]`; `None` if null.
#[derive(Debug, Default)]
pub struct Encoded {
    buf: Vec<u8>,
    ends: Vec<usize>,
    nulls: Option<Vec<bool>>,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if self.nulls.as_ref().is_some_and(|n| n[i]) {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..self.ends[i]])
    }

    fn push_end(&mut self) {
        self.ends.push(self.buf.len());
    }

    pub(crate) fn with_capacity(payloads: usize, bytes: usize) -> Self {
        Encoded {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(payloads),
            nulls: None,
        }
    }

    /// The buffer the next payload is written to; [`Self::end_payload`] closes it.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub(crate) fn end_payload(&mut self) {
        self.push_end();
    }
}

/// How values are written.
pub enum ValueEncoder {
    Json,
    Csv {
        delimiter: u8,
    },
    /// Avro datums; with `schema_id`, in the Confluent wire format (magic byte + id).
    Avro {
        schema: Arc<AvroSchema>,
        schema_id: Option<u32>,
    },
    /// The single binary or string column `value` (or the only column) as the bytes.
    Raw,
}

/// What the user asked for, before the data's schema is known.
#[derive(Debug, Clone)]
pub enum ValueFormat {
    Json,
    Csv {
        delimiter: u8,
    },
    Raw,
    /// Avro with the given writer schema (JSON text) or one derived from the data; with a
    /// registry, the schema is registered under `<topic>-value` and messages are framed.
    Avro {
        schema: Option<String>,
        registry: Option<super::registry::RegistryConfig>,
    },
}

impl ValueEncoder {
    /// The encoder for `format` and data of `schema` going to `topic`.
    pub fn new(
        format: &ValueFormat,
        topic: &str,
        schema: &arrow_schema::Schema,
    ) -> Result<Self, FormatError> {
        Ok(match format {
            ValueFormat::Json => ValueEncoder::Json,
            ValueFormat::Csv { delimiter } => ValueEncoder::Csv {
                delimiter: *delimiter,
            },
            ValueFormat::Raw => ValueEncoder::Raw,
            ValueFormat::Avro {
                schema: given,
                registry,
            } => {
                let avro = match given {
                    Some(text) => AvroSchema::parse_str(text)
                        .map_err(|e| FormatError::AvroSchema(e.to_string()))?,
                    None => super::avro::arrow_to_avro_schema(schema, topic)?,
                };
                let schema_id = match registry {
                    Some(config) => Some(
                        super::registry::SchemaRegistry::new(config.clone())?
                            .register(&format!("{topic}-value"), &avro)?,
                    ),
                    None => None,
                };
                ValueEncoder::Avro {
                    schema: Arc::new(avro),
                    schema_id,
                }
            }
        })
    }

    pub fn encode(&self, batch: &RecordBatch) -> Result<Encoded, FormatError> {
        match self {
            // Flat batches (numbers, booleans, strings) take the hand-written writers.
            ValueEncoder::Json => match super::encode_flat::encode_json(batch) {
                Some(encoded) => Ok(encoded),
                None => encode_json(&utc_zones_as_offsets(batch)?),
            },
            ValueEncoder::Csv { delimiter } => {
                match super::encode_flat::encode_csv(batch, *delimiter) {
                    Some(encoded) => Ok(encoded),
                    None => encode_csv(&utc_zones_as_offsets(batch)?, *delimiter),
                }
            }
            ValueEncoder::Avro { schema, schema_id } => encode_avro(batch, schema, *schema_id),
            ValueEncoder::Raw => {
                let column = batch
                    .column_by_name("value")
                    .or_else(|| (batch.num_columns() == 1).then(|| batch.column(0)))
                    .ok_or_else(|| {
                        FormatError::Encode(
                            "raw format needs a column named 'value' (or a single column)".into(),
                        )
                    })?;
                encode_bytes(column.as_ref())
            }
        }
    }
}

/// Arrow prints zoned timestamps only for zones it resolves: "utc" is printed as "+00:00".
fn utc_zones_as_offsets(batch: &RecordBatch) -> Result<RecordBatch, FormatError> {
    let schema = batch.schema();
    Ok(relabel(batch.clone(), &schema_utc_as_offset(&schema))?)
}

fn encode_json(batch: &RecordBatch) -> Result<Encoded, FormatError> {
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
        writer.write(batch)?;
        writer.finish()?;
    }
    // One object per line and JSON strings escape line breaks, so each '\n' ends one row.
    let mut out = Encoded {
        buf: Vec::with_capacity(buf.len()),
        ends: Vec::with_capacity(batch.num_rows()),
        nulls: None,
    };
    for line in buf.split(|b| *b == b'\n').take(batch.num_rows()) {
        out.buf.extend_from_slice(line);
        out.push_end();
    }
    Ok(out)
}

fn encode_csv(batch: &RecordBatch, delimiter: u8) -> Result<Encoded, FormatError> {
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let textual: Vec<bool> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        })
        .collect();
    let mut out = Encoded {
        buf: Vec::with_capacity(batch.num_rows() * 32),
        ends: Vec::with_capacity(batch.num_rows()),
        nulls: None,
    };
    let mut field = String::new();
    for row in 0..batch.num_rows() {
        let row_start = out.buf.len();
        for (col, formatter) in formatters.iter().enumerate() {
            if col > 0 {
                out.buf.push(delimiter);
            }
            field.clear();
            use std::fmt::Write;
            write!(field, "{}", formatter.value(row))
                .map_err(|e| FormatError::Encode(e.to_string()))?;
            let needs_quotes = textual[col]
                && field
                    .bytes()
                    .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
            if needs_quotes {
                out.buf.push(b'"');
                for b in field.bytes() {
                    if b == b'"' {
                        out.buf.push(b'"');
                    }
                    out.buf.push(b);
                }
                out.buf.push(b'"');
            } else {
                out.buf.extend_from_slice(field.as_bytes());
            }
        }
        if out.buf.len() == row_start {
            // One column, null or empty: an empty message is no line at all, `""` is an
            // empty (null) field.
            out.buf.extend_from_slice(b"\"\"");
        }
        out.push_end();
    }
    Ok(out)
}

fn encode_avro(
    batch: &RecordBatch,
    schema: &AvroSchema,
    schema_id: Option<u32>,
) -> Result<Encoded, FormatError> {
    let values = batch_to_avro_values(batch, schema)?;
    let mut out = Encoded {
        buf: Vec::new(),
        ends: Vec::with_capacity(values.len()),
        nulls: None,
    };
    for (row, value) in values.into_iter().enumerate() {
        if let Some(id) = schema_id {
            out.buf.push(0);
            out.buf.extend_from_slice(&id.to_be_bytes());
        }
        let datum = apache_avro::to_avro_datum(schema, value)
            .map_err(|e| FormatError::Encode(format!("row {row}: {e}")))?;
        out.buf.extend_from_slice(&datum);
        out.push_end();
    }
    Ok(out)
}

/// A column as message bytes: binary as is, everything else in its text form.
pub fn encode_bytes(column: &dyn Array) -> Result<Encoded, FormatError> {
    let printable = arrow_cast::cast(column, &utc_as_offset(column.data_type()))?;
    let column = printable.as_ref();
    let mut out = Encoded {
        buf: Vec::new(),
        ends: Vec::with_capacity(column.len()),
        nulls: None,
    };
    if column.null_count() > 0 {
        out.nulls = Some((0..column.len()).map(|i| column.is_null(i)).collect());
    }
    match column.data_type() {
        DataType::Binary => {
            let bytes = column.as_binary::<i32>();
            for i in 0..column.len() {
                if bytes.is_valid(i) {
                    out.buf.extend_from_slice(bytes.value(i));
                }
                out.push_end();
            }
        }
        _ => {
            let options = FormatOptions::default().with_null("");
            let formatter = ArrayFormatter::try_new(column, &options)?;
            use std::io::Write;
            for i in 0..column.len() {
                if column.is_valid(i) {
                    write!(out.buf, "{}", formatter.value(i))
                        .map_err(|e| FormatError::Encode(e.to_string()))?;
                }
                out.push_end();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Float64Array, Int64Array, StringArray};

    use super::super::{csv::CsvDecoder, json::JsonDecoder, BatchDecoder, Payload};
    use super::*;

    fn batch() -> RecordBatch {
        let schema =
            crate::formats::parse_column_declarations(&["ID BIGINT, NAME STRING, V DOUBLE"])
                .unwrap();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![
                    Some("plain"),
                    Some("with, \"quotes\"\nand a break"),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![Some(0.1), Some(-2.5e-300), None])),
            ],
        )
        .unwrap()
    }

    fn round_trip(encoded: &Encoded, decoder: &mut dyn BatchDecoder) -> RecordBatch {
        let payloads: Vec<Payload> = (0..encoded.len())
            .map(|i| Payload {
                key: None,
                value: encoded.get(i),
            })
            .collect();
        let decoded = decoder.decode(&payloads).unwrap();
        assert!(decoded.failures.is_empty(), "{:?}", decoded.failures);
        decoded.batch
    }

    #[test]
    fn json_and_csv_round_trip_exactly() {
        let original = batch();
        let json = ValueEncoder::Json.encode(&original).unwrap();
        assert_eq!(json.len(), 3);
        assert_eq!(json.get(0).unwrap(), br#"{"ID":1,"NAME":"plain","V":0.1}"#);
        assert_eq!(
            round_trip(&json, &mut JsonDecoder::new(original.schema())),
            original
        );

        let csv = ValueEncoder::Csv { delimiter: b',' }
            .encode(&original)
            .unwrap();
        assert_eq!(csv.get(0).unwrap(), b"1,plain,0.1");
        assert_eq!(csv.get(2).unwrap(), b"3,,");
        assert_eq!(
            round_trip(&csv, &mut CsvDecoder::new(original.schema(), b',')),
            original
        );
    }

    #[test]
    fn utc_timestamps_round_trip_through_json_and_csv() {
        use arrow_array::TimestampMillisecondArray;
        use arrow_schema::{Field, Schema, TimeUnit};
        let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![Field::new("t", utc, true)]));
        let times = TimestampMillisecondArray::from(vec![Some(1_700_000_000_123), None])
            .with_timezone("UTC");
        let original = RecordBatch::try_new(schema.clone(), vec![Arc::new(times)]).unwrap();
        let json = ValueEncoder::Json.encode(&original).unwrap();
        assert_eq!(json.get(0).unwrap(), br#"{"t":"2023-11-14T22:13:20.123Z"}"#);
        assert_eq!(
            round_trip(&json, &mut JsonDecoder::new(schema.clone())),
            original
        );
        let csv = ValueEncoder::Csv { delimiter: b',' }
            .encode(&original)
            .unwrap();
        assert_eq!(
            round_trip(&csv, &mut CsvDecoder::new(schema, b',')),
            original
        );
        assert_eq!(
            encode_bytes(original.column(0).as_ref())
                .unwrap()
                .get(0)
                .unwrap(),
            b"2023-11-14T22:13:20.123Z"
        );
    }

    /// pandas' zoned columns name their zone (`datetime64[ns, Europe/Berlin]`): the text
    /// carries each instant's own offset (winter and summer time), and a naive column's text
    /// none; both read back as the same values.
    #[test]
    fn named_zones_and_naive_timestamps_round_trip_as_iso_text() {
        use arrow_array::{TimestampMicrosecondArray, TimestampNanosecondArray};
        use arrow_schema::{Field, Schema, TimeUnit};
        let berlin = DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Berlin".into()));
        let naive = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", berlin, true),
            Field::new("n", naive, true),
        ]));
        // 2024-03-31T00:30:00Z and 01:30:00.123456Z, either side of Berlin's clock change.
        let zoned = TimestampMicrosecondArray::from(vec![
            Some(1_711_845_000_000_000),
            Some(1_711_848_600_123_456),
            None,
        ])
        .with_timezone("Europe/Berlin");
        let wall =
            TimestampNanosecondArray::from(vec![Some(1_711_848_600_123_456_789), None, Some(0)]);
        let original =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(zoned), Arc::new(wall)]).unwrap();

        let json = ValueEncoder::Json.encode(&original).unwrap();
        assert_eq!(
            std::str::from_utf8(json.get(0).unwrap()).unwrap(),
            r#"{"t":"2024-03-31T01:30:00+01:00","n":"2024-03-31T01:30:00.123456789"}"#
        );
        assert_eq!(
            std::str::from_utf8(json.get(1).unwrap()).unwrap(),
            r#"{"t":"2024-03-31T03:30:00.123456+02:00","n":null}"#
        );
        assert_eq!(
            round_trip(&json, &mut JsonDecoder::new(schema.clone())),
            original
        );

        let csv = ValueEncoder::Csv { delimiter: b',' }
            .encode(&original)
            .unwrap();
        assert_eq!(
            std::str::from_utf8(csv.get(1).unwrap()).unwrap(),
            "2024-03-31T03:30:00.123456+02:00,"
        );
        assert_eq!(
            std::str::from_utf8(csv.get(2).unwrap()).unwrap(),
            ",1970-01-01T00:00:00"
        );
        assert_eq!(
            round_trip(&csv, &mut CsvDecoder::new(schema.clone(), b',')),
            original
        );
        assert_eq!(
            encode_bytes(original.column(0).as_ref())
                .unwrap()
                .get(1)
                .unwrap(),
            b"2024-03-31T03:30:00.123456+02:00"
        );
    }

    /// pandas 3 hands strings over as `large_string`, polars as `string_view`: the same
    /// messages as from `string`.
    #[test]
    fn every_string_layout_is_written_alike() {
        use arrow_schema::{Field, Schema};
        let original = batch();
        let bytes = |encoded: &Encoded| -> Vec<Vec<u8>> {
            (0..encoded.len())
                .map(|i| encoded.get(i).unwrap().to_vec())
                .collect()
        };
        let csv = ValueEncoder::Csv { delimiter: b',' };
        for layout in [DataType::LargeUtf8, DataType::Utf8View] {
            let names = arrow_cast::cast(original.column(1), &layout).unwrap();
            let mut fields: Vec<Field> = original
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields[1] = fields[1].clone().with_data_type(layout.clone());
            let mut columns = original.columns().to_vec();
            columns[1] = names;
            let other = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
            assert!(
                super::super::encode_flat::encode_json(&other).is_some(),
                "{layout}"
            );
            assert_eq!(
                bytes(&ValueEncoder::Json.encode(&other).unwrap()),
                bytes(&ValueEncoder::Json.encode(&original).unwrap())
            );
            assert_eq!(
                bytes(&csv.encode(&other).unwrap()),
                bytes(&csv.encode(&original).unwrap())
            );
        }
    }

    #[test]
    fn keys_in_text_form_and_nulls() {
        let keys = encode_bytes(batch().column(0).as_ref()).unwrap();
        assert_eq!(keys.get(0), Some(&b"1"[..]));
        assert_eq!(keys.get(1), None);
    }
}
