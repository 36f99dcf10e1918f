//! Avro datums to and from Arrow.
//!
//! Decoding reads each datum with the writer's schema (given, or fetched by id from a Schema
//! Registry for the Confluent wire format) and builds Arrow columns from the values; fields
//! are matched by name, so datums written with an older or newer schema fill the columns they
//! share. Encoding derives an Avro record schema from the Arrow schema unless one is given.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{Name, Schema as AvroSchema};
use apache_avro::types::Value;
use arrow_array::builder::BooleanBuilder;
use arrow_array::types::*;
use arrow_array::*;
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use super::registry::SchemaRegistry;
use super::{classify_each, empty_batch, BatchDecoder, Decoded, FormatError, Payload};

/// The first byte of a Confluent-framed message: magic 0, then a 4-byte schema id.
const CONFLUENT_MAGIC: u8 = 0;

/// Where the writer's schema of each datum comes from.
pub enum WriterSchemas {
    /// Every message is a bare datum written with this schema.
    Fixed(Arc<AvroSchema>),
    /// Confluent wire format: magic byte, schema id, datum; schemas fetched and cached.
    Registry(SchemaRegistry),
}

pub struct AvroDecoder {
    writer_schemas: WriterSchemas,
    /// Known once the first schema is seen (registry mode) or from the start (fixed mode).
    schema: Option<SchemaRef>,
}

impl AvroDecoder {
    pub fn new(
        writer_schemas: WriterSchemas,
        schema: Option<SchemaRef>,
    ) -> Result<Self, FormatError> {
        let schema = match (&writer_schemas, schema) {
            (_, Some(given)) => Some(given),
            (WriterSchemas::Fixed(avro), None) => Some(Arc::new(avro_to_arrow_schema(avro)?)),
            (WriterSchemas::Registry(_), None) => None,
        };
        Ok(AvroDecoder {
            writer_schemas,
            schema,
        })
    }

    /// Reads one datum into an Avro value.
    fn read_value(&mut self, bytes: &[u8]) -> Result<(Value, Arc<AvroSchema>), String> {
        let (writer, datum) = match &mut self.writer_schemas {
            WriterSchemas::Fixed(schema) => (schema.clone(), bytes),
            WriterSchemas::Registry(registry) => {
                if bytes.len() < 5 || bytes[0] != CONFLUENT_MAGIC {
                    return Err(
                        "not in Confluent wire format (magic byte 0 and a 4-byte schema id)".into(),
                    );
                }
                let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                let schema = registry.avro_schema(id).map_err(|e| e.to_string())?;
                (schema, &bytes[5..])
            }
        };
        let mut input = EofGuard {
            rest: datum,
            hit_end: false,
        };
        let value = apache_avro::from_avro_datum(&writer, &mut input, None)
            .map_err(|e| format!("invalid Avro datum: {e}"))?;
        if input.hit_end {
            // apache-avro reads a union, string or boolean cut off by the end as null
            return Err("truncated Avro datum: the message ends inside a value".into());
        }
        if !input.rest.is_empty() {
            return Err(format!(
                "{} bytes left over after the Avro datum",
                input.rest.len()
            ));
        }
        Ok((value, writer))
    }

    fn schema_or_first(&mut self, payloads: &[Payload<'_>]) -> Result<SchemaRef, FormatError> {
        if let Some(schema) = &self.schema {
            return Ok(schema.clone());
        }
        for payload in payloads {
            if let Some(bytes) = payload.value {
                if let Ok((_, writer)) = self.read_value(bytes) {
                    let schema = Arc::new(avro_to_arrow_schema(&writer)?);
                    self.schema = Some(schema.clone());
                    return Ok(schema);
                }
            }
        }
        Err(FormatError::Schema(
            "no message in the first batch could be read with its registered schema; pass schema="
                .into(),
        ))
    }
}

/// A reader over one datum that notes when the decoder asked for bytes past its end.
///
/// apache-avro turns an end of input met inside a union index, a string or a boolean into
/// a null value instead of an error, so a truncated message would decode "successfully"
/// with nulls in place of its lost fields. A complete datum is never read past its end.
struct EofGuard<'a> {
    rest: &'a [u8],
    hit_end: bool,
}

impl std::io::Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.hit_end = true;
        }
        self.rest.read(buf)
    }
}

impl BatchDecoder for AvroDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema
            .clone()
            .unwrap_or_else(|| Arc::new(Schema::empty()))
    }

    fn decode(&mut self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        let schema = self.schema_or_first(payloads)?;
        let struct_type = DataType::Struct(schema.fields().clone());
        let mut values = Vec::with_capacity(payloads.len());
        let (good, mut failures) = classify_each(payloads, |payload| {
            let value = match payload.value {
                Some(bytes) => self.read_value(bytes)?.0,
                None => Value::Null, // a tombstone is a row of nulls
            };
            // Checking each row on its own lets a bad one be named without failing the rest.
            build_array(&[&value], &struct_type)
                .map_err(|e| format!("does not fit the schema: {e}"))?;
            values.push(value);
            Ok(())
        });
        debug_assert_eq!(good.len(), values.len());
        let refs: Vec<&Value> = values.iter().collect();
        let batch = if refs.is_empty() {
            empty_batch(&schema)
        } else {
            let array = build_array(&refs, &struct_type).map_err(FormatError::Schema)?;
            let strukt = array
                .as_any()
                .downcast_ref::<StructArray>()
                .expect("struct built");
            RecordBatch::try_new(schema.clone(), strukt.columns().to_vec())?
        };
        failures.sort_by_key(|f| f.index);
        Ok(Decoded { batch, failures })
    }
}

// ---------- Avro schema -> Arrow schema ----------

/// The Arrow schema of an Avro record schema (a non-record schema becomes one column `value`).
pub fn avro_to_arrow_schema(schema: &AvroSchema) -> Result<Schema, FormatError> {
    let mut names = HashMap::new();
    let (data_type, nullable) = avro_to_arrow_type(schema, &mut names, 0)?;
    match data_type {
        DataType::Struct(fields) if !nullable => Ok(Schema::new(fields)),
        other => Ok(Schema::new(vec![Field::new("value", other, nullable)])),
    }
}

fn avro_to_arrow_type<'s>(
    schema: &'s AvroSchema,
    names: &mut HashMap<Name, &'s AvroSchema>,
    depth: usize,
) -> Result<(DataType, bool), FormatError> {
    if depth > 64 {
        return Err(FormatError::AvroSchema(
            "recursive Avro types have no Arrow equivalent".into(),
        ));
    }
    let unsupported = |what: &str| {
        Err(FormatError::AvroSchema(format!(
            "Avro type {what} is not supported"
        )))
    };
    let data_type = match schema {
        AvroSchema::Null => DataType::Null,
        AvroSchema::Boolean => DataType::Boolean,
        AvroSchema::Int => DataType::Int32,
        AvroSchema::Long => DataType::Int64,
        AvroSchema::Float => DataType::Float32,
        AvroSchema::Double => DataType::Float64,
        AvroSchema::Bytes => DataType::Binary,
        AvroSchema::String | AvroSchema::Uuid => DataType::Utf8,
        AvroSchema::Enum(e) => {
            names.insert(e.name.clone(), schema);
            DataType::Utf8
        }
        AvroSchema::Fixed(f) => {
            names.insert(f.name.clone(), schema);
            DataType::FixedSizeBinary(f.size as i32)
        }
        AvroSchema::Decimal(d) => {
            if d.precision > 38 {
                return unsupported(&format!("decimal with precision {} (> 38)", d.precision));
            }
            DataType::Decimal128(d.precision as u8, d.scale as i8)
        }
        AvroSchema::Date => DataType::Date32,
        AvroSchema::TimeMillis => DataType::Time32(TimeUnit::Millisecond),
        AvroSchema::TimeMicros => DataType::Time64(TimeUnit::Microsecond),
        AvroSchema::TimestampMillis => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        AvroSchema::TimestampMicros => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        AvroSchema::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        AvroSchema::LocalTimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, None),
        AvroSchema::LocalTimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
        AvroSchema::LocalTimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, None),
        AvroSchema::Array(a) => {
            let (item, _) = avro_to_arrow_type(&a.items, names, depth + 1)?;
            DataType::new_list(item, true)
        }
        AvroSchema::Map(m) => {
            let (value, _) = avro_to_arrow_type(&m.types, names, depth + 1)?;
            map_type(value)
        }
        AvroSchema::Record(r) => {
            names.insert(r.name.clone(), schema);
            let mut fields = Vec::with_capacity(r.fields.len());
            for field in &r.fields {
                let (data_type, nullable) = avro_to_arrow_type(&field.schema, names, depth + 1)?;
                fields.push(Field::new(&field.name, data_type, nullable));
            }
            DataType::Struct(Fields::from(fields))
        }
        AvroSchema::Union(u) => {
            let others: Vec<&AvroSchema> = u
                .variants()
                .iter()
                .filter(|s| **s != AvroSchema::Null)
                .collect();
            return match others.as_slice() {
                [only] => Ok((avro_to_arrow_type(only, names, depth + 1)?.0, true)),
                [] => Ok((DataType::Null, true)),
                _ => unsupported("union of several non-null types"),
            };
        }
        AvroSchema::Ref { name } => {
            let target = *names.get(name).ok_or_else(|| {
                FormatError::AvroSchema(format!("unknown named type {}", name.name))
            })?;
            return avro_to_arrow_type(target, names, depth + 1);
        }
        AvroSchema::BigDecimal => return unsupported("big-decimal"),
        AvroSchema::Duration => return unsupported("duration"),
    };
    Ok((data_type, matches!(schema, AvroSchema::Null)))
}

pub(crate) fn map_type(value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

// ---------- Avro values -> Arrow arrays (column-wise) ----------

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn mismatch(value: &Value, data_type: &DataType) -> String {
    let shown = format!("{value:?}");
    let shown: String = shown.chars().take(60).collect();
    format!("value {shown} cannot be stored as {data_type}")
}

macro_rules! primitive {
    ($values:expr, $data_type:expr, $array:ty, $($pattern:pat => $out:expr),+) => {{
        let mut out = Vec::with_capacity($values.len());
        for v in $values {
            out.push(match unwrap_union(v) {
                Value::Null => None,
                $($pattern => Some($out),)+
                other => return Err(mismatch(other, $data_type)),
            });
        }
        Arc::new(<$array>::from(out)) as ArrayRef
    }};
}

/// Builds one Arrow array of `data_type` from Avro values (one value per row).
pub fn build_array(values: &[&Value], data_type: &DataType) -> Result<ArrayRef, String> {
    let array: ArrayRef = match data_type {
        DataType::Null => Arc::new(NullArray::new(values.len())),
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(values.len());
            for v in values {
                match unwrap_union(v) {
                    Value::Null => builder.append_null(),
                    Value::Boolean(b) => builder.append_value(*b),
                    other => return Err(mismatch(other, data_type)),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Int32 => primitive!(values, data_type, Int32Array, Value::Int(x) => *x),
        DataType::Int64 => primitive!(values, data_type, Int64Array,
            Value::Long(x) => *x, Value::Int(x) => *x as i64),
        DataType::Float32 => primitive!(values, data_type, Float32Array,
            Value::Float(x) => *x, Value::Int(x) => *x as f32, Value::Long(x) => *x as f32),
        DataType::Float64 => primitive!(values, data_type, Float64Array,
            Value::Double(x) => *x, Value::Float(x) => *x as f64,
            Value::Int(x) => *x as f64, Value::Long(x) => *x as f64),
        DataType::Date32 => {
            primitive!(values, data_type, Date32Array, Value::Date(x) => *x, Value::Int(x) => *x)
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            primitive!(values, data_type, Time32MillisecondArray,
            Value::TimeMillis(x) => *x, Value::Int(x) => *x)
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            primitive!(values, data_type, Time64MicrosecondArray,
            Value::TimeMicros(x) => *x, Value::Long(x) => *x)
        }
        DataType::Timestamp(unit, tz) => {
            let raw: ArrayRef = match unit {
                TimeUnit::Second => {
                    primitive!(values, data_type, TimestampSecondArray, Value::Long(x) => *x)
                }
                TimeUnit::Millisecond => primitive!(values, data_type, TimestampMillisecondArray,
                    Value::TimestampMillis(x) => *x, Value::LocalTimestampMillis(x) => *x, Value::Long(x) => *x),
                TimeUnit::Microsecond => primitive!(values, data_type, TimestampMicrosecondArray,
                    Value::TimestampMicros(x) => *x, Value::LocalTimestampMicros(x) => *x, Value::Long(x) => *x),
                TimeUnit::Nanosecond => primitive!(values, data_type, TimestampNanosecondArray,
                    Value::TimestampNanos(x) => *x, Value::LocalTimestampNanos(x) => *x, Value::Long(x) => *x),
            };
            // Avro timestamps are instants: only the zone label is set (a cast from no zone
            // would shift them as wall-clock readings, and needs the tz database for names).
            let data = raw
                .to_data()
                .into_builder()
                .data_type(DataType::Timestamp(*unit, tz.clone()));
            make_array(data.build().map_err(|e| e.to_string())?)
        }
        DataType::Utf8 => {
            let mut out: Vec<Option<String>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match unwrap_union(v) {
                    Value::Null => None,
                    Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
                    Value::Uuid(u) => Some(u.to_string()),
                    other => return Err(mismatch(other, data_type)),
                });
            }
            Arc::new(StringArray::from(out))
        }
        DataType::Binary => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match unwrap_union(v) {
                    Value::Null => None,
                    Value::Bytes(b) | Value::Fixed(_, b) => Some(b.as_slice()),
                    other => return Err(mismatch(other, data_type)),
                });
            }
            Arc::new(BinaryArray::from(out))
        }
        DataType::FixedSizeBinary(size) => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match unwrap_union(v) {
                    Value::Null => None,
                    Value::Fixed(n, b) if *n as i32 == *size => Some(b.as_slice()),
                    other => return Err(mismatch(other, data_type)),
                });
            }
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(out.into_iter(), *size)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Decimal128(precision, scale) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(match unwrap_union(v) {
                    Value::Null => None,
                    Value::Decimal(d) => {
                        let bytes = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
                        Some(
                            i128_from_be_twos_complement(&bytes)
                                .ok_or_else(|| mismatch(v, data_type))?,
                        )
                    }
                    other => return Err(mismatch(other, data_type)),
                });
            }
            Arc::new(
                Decimal128Array::from(out)
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::List(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut validity = Vec::with_capacity(values.len());
            let mut children: Vec<&Value> = Vec::new();
            for v in values {
                match unwrap_union(v) {
                    Value::Null => validity.push(false),
                    Value::Array(items) => {
                        children.extend(items.iter());
                        validity.push(true);
                    }
                    other => return Err(mismatch(other, data_type)),
                }
                offsets
                    .push(i32::try_from(children.len()).map_err(|_| "list too long".to_string())?);
            }
            let child = build_array(&children, item.data_type())?;
            Arc::new(
                ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::from(validity)),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("bad map type {data_type}"));
            };
            let mut offsets = vec![0i32];
            let mut validity = Vec::with_capacity(values.len());
            let mut keys: Vec<&str> = Vec::new();
            let mut items: Vec<&Value> = Vec::new();
            for v in values {
                match unwrap_union(v) {
                    Value::Null => validity.push(false),
                    Value::Map(map) => {
                        // Sorted keys make the output deterministic (Avro maps are unordered).
                        let mut pairs: Vec<_> = map.iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(b.0));
                        for (k, value) in pairs {
                            keys.push(k);
                            items.push(value);
                        }
                        validity.push(true);
                    }
                    other => return Err(mismatch(other, data_type)),
                }
                offsets.push(keys.len() as i32);
            }
            let key_array: ArrayRef = Arc::new(StringArray::from(keys));
            let value_array = build_array(&items, kv[1].data_type())?;
            let entries_array =
                StructArray::try_new(kv.clone(), vec![key_array, value_array], None)
                    .map_err(|e| e.to_string())?;
            Arc::new(
                MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::new(offsets.into()),
                    entries_array,
                    Some(NullBuffer::from(validity)),
                    *sorted,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Struct(fields) => {
            let mut validity = Vec::with_capacity(values.len());
            let mut columns: Vec<Vec<&Value>> =
                vec![Vec::with_capacity(values.len()); fields.len()];
            for v in values {
                match unwrap_union(v) {
                    Value::Null => {
                        validity.push(false);
                        for column in columns.iter_mut() {
                            column.push(&Value::Null);
                        }
                    }
                    Value::Record(record) => {
                        validity.push(true);
                        for (field, column) in fields.iter().zip(columns.iter_mut()) {
                            let found = record
                                .iter()
                                .find(|(name, _)| name == field.name())
                                .map(|(_, v)| v);
                            column.push(found.unwrap_or(&Value::Null));
                        }
                    }
                    other => return Err(mismatch(other, data_type)),
                }
            }
            let mut arrays = Vec::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(&columns) {
                let array = build_array(column, field.data_type())
                    .map_err(|e| format!("field {:?}: {e}", field.name()))?;
                let null_in_valid_row =
                    || (0..array.len()).any(|i| validity[i] && array.is_null(i));
                if !field.is_nullable() && array.null_count() > 0 && null_in_valid_row() {
                    return Err(format!(
                        "field {:?} is missing or null but not nullable",
                        field.name()
                    ));
                }
                arrays.push(array);
            }
            let nulls = NullBuffer::from(validity);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            Arc::new(
                StructArray::try_new(fields.clone(), arrays, nulls).map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("Arrow type {other} is not supported for Avro")),
    };
    Ok(array)
}

fn i128_from_be_twos_complement(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

// ---------- Arrow -> Avro (for producing) ----------

/// An Avro record schema for rows of `schema` (nullable columns become `["null", T]`).
pub fn arrow_to_avro_schema(schema: &Schema, record_name: &str) -> Result<AvroSchema, FormatError> {
    let mut counter = 0;
    let fields = fields_to_avro_json(schema.fields(), &mut counter)?;
    let json =
        serde_json::json!({"type": "record", "name": avro_name(record_name), "fields": fields});
    AvroSchema::parse(&json).map_err(|e| FormatError::AvroSchema(e.to_string()))
}

/// Avro names are `[A-Za-z_][A-Za-z0-9_]*`; topic names may hold dots and dashes.
fn avro_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

fn fields_to_avro_json(
    fields: &Fields,
    counter: &mut usize,
) -> Result<Vec<serde_json::Value>, FormatError> {
    fields
        .iter()
        .map(|field| {
            let inner = type_to_avro_json(field.data_type(), counter)?;
            let avro_type = if field.is_nullable() {
                serde_json::json!(["null", inner])
            } else {
                inner
            };
            let mut entry = serde_json::json!({"name": avro_name(field.name()), "type": avro_type});
            if field.is_nullable() {
                entry["default"] = serde_json::Value::Null;
            }
            Ok(entry)
        })
        .collect()
}

fn type_to_avro_json(
    data_type: &DataType,
    counter: &mut usize,
) -> Result<serde_json::Value, FormatError> {
    use serde_json::json;
    Ok(match data_type {
        DataType::Null => json!("null"),
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            json!("int")
        }
        DataType::Int64 | DataType::UInt32 => json!("long"),
        DataType::Float16 | DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => json!("bytes"),
        DataType::FixedSizeBinary(n) => {
            *counter += 1;
            json!({"type": "fixed", "name": format!("fixed_{counter}"), "size": n})
        }
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Time32(_) => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::Time64(_) => json!({"type": "long", "logicalType": "time-micros"}),
        DataType::Timestamp(unit, tz) => {
            let local = if tz.is_some() { "" } else { "local-" };
            let unit = match unit {
                TimeUnit::Second | TimeUnit::Millisecond => "millis",
                TimeUnit::Microsecond => "micros",
                TimeUnit::Nanosecond => "nanos",
            };
            json!({"type": "long", "logicalType": format!("{local}timestamp-{unit}")})
        }
        DataType::Decimal128(p, s) => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s})
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let inner = type_to_avro_json(item.data_type(), counter)?;
            let items = if item.is_nullable() {
                json!(["null", inner])
            } else {
                inner
            };
            json!({"type": "array", "items": items})
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                unreachable!("map entries are a struct")
            };
            let inner = type_to_avro_json(kv[1].data_type(), counter)?;
            json!({"type": "map", "values": ["null", inner]})
        }
        DataType::Struct(fields) => {
            *counter += 1;
            json!({"type": "record", "name": format!("record_{counter}"), "fields": fields_to_avro_json(fields, counter)?})
        }
        other => {
            return Err(FormatError::Encode(format!(
                "Arrow type {other} has no Avro equivalent here"
            )))
        }
    })
}

/// The rows of `batch` as Avro record values matching `schema` (from [`arrow_to_avro_schema`]
/// or given by the user with the same field names).
pub fn batch_to_avro_values(
    batch: &RecordBatch,
    schema: &AvroSchema,
) -> Result<Vec<Value>, FormatError> {
    let AvroSchema::Record(record) = schema else {
        return Err(FormatError::Encode(
            "the Avro schema for producing must be a record".into(),
        ));
    };
    let mut names = HashMap::new();
    let mut columns = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        let column = batch
            .column_by_name(&field.name)
            .or_else(|| {
                // arrow_to_avro_schema sanitised the name; find the column it came from
                batch
                    .schema()
                    .fields()
                    .iter()
                    .position(|f| avro_name(f.name()) == field.name)
                    .map(|i| batch.column(i))
            })
            .ok_or_else(|| {
                FormatError::Encode(format!(
                    "the data has no column {:?} for the Avro schema",
                    field.name
                ))
            })?;
        columns.push(
            array_to_avro_values(column.as_ref(), &field.schema, &mut names)
                .map_err(|e| FormatError::Encode(format!("column {:?}: {e}", field.name)))?,
        );
    }
    let rows = (0..batch.num_rows())
        .map(|row| {
            Value::Record(
                record
                    .fields
                    .iter()
                    .zip(columns.iter_mut())
                    .map(|(field, column)| {
                        (
                            field.name.clone(),
                            std::mem::replace(&mut column[row], Value::Null),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    Ok(rows)
}

fn array_to_avro_values<'s>(
    array: &dyn Array,
    schema: &'s AvroSchema,
    names: &mut HashMap<Name, &'s AvroSchema>,
) -> Result<Vec<Value>, String> {
    if !matches!(schema, AvroSchema::Union(_) | AvroSchema::Null) && array.null_count() > 0 {
        let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        return Err(format!(
            "row {row} is null but the Avro type is not nullable"
        ));
    }
    non_null_avro_values(array, schema, names)
}

fn non_null_or_union_values<'s>(
    array: &dyn Array,
    schema: &'s AvroSchema,
    names: &mut HashMap<Name, &'s AvroSchema>,
) -> Result<Vec<Value>, String> {
    match schema {
        AvroSchema::Union(_) => array_to_avro_values(array, schema, names),
        _ => non_null_avro_values(array, schema, names),
    }
}

/// Converts `array` ignoring its nulls (the caller has dealt with them).
fn non_null_avro_values<'s>(
    array: &dyn Array,
    schema: &'s AvroSchema,
    names: &mut HashMap<Name, &'s AvroSchema>,
) -> Result<Vec<Value>, String> {
    use arrow_array::cast::AsArray;
    let len = array.len();
    if let AvroSchema::Union(union) = schema {
        let null_index = union.variants().iter().position(|s| *s == AvroSchema::Null);
        let (value_index, value_schema) = union
            .variants()
            .iter()
            .enumerate()
            .find(|(_, s)| **s != AvroSchema::Null)
            .ok_or("a union of only null")?;
        let inner = non_null_avro_values(array, value_schema, names)?;
        return inner
            .into_iter()
            .enumerate()
            .map(|(i, v)| match (array.is_null(i), null_index) {
                (true, Some(n)) => Ok(Value::Union(n as u32, Box::new(Value::Null))),
                (true, None) => Err(format!("row {i} is null but the Avro type is not nullable")),
                (false, _) => Ok(Value::Union(value_index as u32, Box::new(v))),
            })
            .collect();
    }
    if let AvroSchema::Ref { name } = schema {
        let target = *names
            .get(name)
            .ok_or_else(|| format!("unknown named type {}", name.name))?;
        return array_to_avro_values(array, target, names);
    }
    let as_i64 = |array: &dyn Array| -> Result<Vec<i64>, String> {
        let cast = arrow_cast::cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
        Ok(cast.as_primitive::<Int64Type>().values().to_vec())
    };
    let values: Vec<Value> = match schema {
        AvroSchema::Null => vec![Value::Null; len],
        AvroSchema::Boolean => array
            .as_boolean_opt()
            .ok_or("expected booleans")?
            .iter()
            .map(|b| Value::Boolean(b.unwrap_or_default()))
            .collect(),
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => {
            let cast = arrow_cast::cast(array, &DataType::Int32).map_err(|e| e.to_string())?;
            let ints = cast.as_primitive::<Int32Type>().values().iter();
            match schema {
                AvroSchema::Date => ints.map(|x| Value::Date(*x)).collect(),
                AvroSchema::TimeMillis => ints.map(|x| Value::TimeMillis(*x)).collect(),
                _ => ints.map(|x| Value::Int(*x)).collect(),
            }
        }
        AvroSchema::Long => as_i64(array)?.into_iter().map(Value::Long).collect(),
        AvroSchema::TimeMicros => as_i64(array)?.into_iter().map(Value::TimeMicros).collect(),
        AvroSchema::TimestampMillis
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampNanos => {
            let unit = match schema {
                AvroSchema::TimestampMillis | AvroSchema::LocalTimestampMillis => {
                    TimeUnit::Millisecond
                }
                AvroSchema::TimestampMicros | AvroSchema::LocalTimestampMicros => {
                    TimeUnit::Microsecond
                }
                _ => TimeUnit::Nanosecond,
            };
            let rescaled = match array.data_type() {
                DataType::Timestamp(_, tz) => {
                    arrow_cast::cast(array, &DataType::Timestamp(unit, tz.clone()))
                        .map_err(|e| e.to_string())?
                }
                _ => arrow_cast::cast(array, &DataType::Int64).map_err(|e| e.to_string())?,
            };
            as_i64(&rescaled)?
                .into_iter()
                .map(|x| match schema {
                    AvroSchema::TimestampMillis => Value::TimestampMillis(x),
                    AvroSchema::LocalTimestampMillis => Value::LocalTimestampMillis(x),
                    AvroSchema::TimestampMicros => Value::TimestampMicros(x),
                    AvroSchema::LocalTimestampMicros => Value::LocalTimestampMicros(x),
                    AvroSchema::TimestampNanos => Value::TimestampNanos(x),
                    _ => Value::LocalTimestampNanos(x),
                })
                .collect()
        }
        AvroSchema::Float => {
            let cast = arrow_cast::cast(array, &DataType::Float32).map_err(|e| e.to_string())?;
            cast.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|x| Value::Float(*x))
                .collect()
        }
        AvroSchema::Double => {
            let cast = arrow_cast::cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
            cast.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|x| Value::Double(*x))
                .collect()
        }
        AvroSchema::String | AvroSchema::Uuid | AvroSchema::Enum(_) => {
            if let AvroSchema::Enum(e) = schema {
                names.insert(e.name.clone(), schema);
            }
            let cast = arrow_cast::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
            let strings = cast.as_string::<i32>();
            (0..len)
                .map(|i| {
                    let s = if strings.is_null(i) {
                        ""
                    } else {
                        strings.value(i)
                    };
                    match schema {
                        AvroSchema::Enum(e) => e
                            .symbols
                            .iter()
                            .position(|sym| sym == s)
                            .map(|p| Value::Enum(p as u32, s.to_string()))
                            .ok_or_else(|| {
                                format!("{s:?} is not a symbol of enum {}", e.name.name)
                            }),
                        _ => Ok(Value::String(s.to_string())),
                    }
                })
                .collect::<Result<_, _>>()?
        }
        AvroSchema::Bytes | AvroSchema::Fixed(_) => {
            let cast = arrow_cast::cast(array, &DataType::Binary).map_err(|e| e.to_string())?;
            let bytes = cast.as_binary::<i32>();
            (0..len)
                .map(|i| {
                    let b = if bytes.is_null(i) {
                        Vec::new()
                    } else {
                        bytes.value(i).to_vec()
                    };
                    match schema {
                        AvroSchema::Fixed(f) => Value::Fixed(f.size, b),
                        _ => Value::Bytes(b),
                    }
                })
                .collect()
        }
        AvroSchema::Decimal(d) => {
            let cast = arrow_cast::cast(
                array,
                &DataType::Decimal128(d.precision as u8, d.scale as i8),
            )
            .map_err(|e| e.to_string())?;
            let fixed_len = match d.inner.as_ref() {
                AvroSchema::Fixed(f) => Some(f.size),
                _ => None,
            };
            cast.as_primitive::<Decimal128Type>()
                .values()
                .iter()
                .map(|x| {
                    let full = x.to_be_bytes();
                    // minimal two's complement for bytes; the fixed size for fixed
                    let keep = fixed_len.unwrap_or_else(|| minimal_twos_complement_len(*x));
                    apache_avro::Decimal::from(&full[16 - keep.min(16)..])
                })
                .map(Value::Decimal)
                .collect()
        }
        AvroSchema::Array(a) => {
            let list = array.as_list_opt::<i32>().ok_or("expected a list column")?;
            let items = array_to_avro_values(list.values().as_ref(), &a.items, names)?;
            let offsets = list.value_offsets();
            (0..len)
                .map(|i| Value::Array(items[offsets[i] as usize..offsets[i + 1] as usize].to_vec()))
                .collect()
        }
        AvroSchema::Map(m) => {
            let map = array.as_map_opt().ok_or("expected a map column")?;
            let keys = arrow_cast::cast(map.keys(), &DataType::Utf8).map_err(|e| e.to_string())?;
            let keys = keys.as_string::<i32>();
            let items = array_to_avro_values(map.values().as_ref(), &m.types, names)?;
            let offsets = map.value_offsets();
            (0..len)
                .map(|i| {
                    let range = offsets[i] as usize..offsets[i + 1] as usize;
                    Value::Map(
                        range
                            .map(|j| (keys.value(j).to_string(), items[j].clone()))
                            .collect(),
                    )
                })
                .collect()
        }
        AvroSchema::Record(r) => {
            names.insert(r.name.clone(), schema);
            let strukt = array.as_struct_opt().ok_or("expected a struct column")?;
            let mut columns = Vec::new();
            for field in &r.fields {
                let child = strukt
                    .column_by_name(&field.name)
                    .ok_or_else(|| format!("struct has no field {:?}", field.name))?;
                // Children of a null struct row may be null whatever their own type says.
                let child_null_in_valid_row =
                    (0..len).any(|i| strukt.is_valid(i) && child.is_null(i));
                let values =
                    if matches!(field.schema, AvroSchema::Union(_)) || !child_null_in_valid_row {
                        non_null_or_union_values(child.as_ref(), &field.schema, names)?
                    } else {
                        return Err(format!(
                            "field {:?} is null but its Avro type is not nullable",
                            field.name
                        ));
                    };
                columns.push(values);
            }
            (0..len)
                .map(|i| {
                    Value::Record(
                        r.fields
                            .iter()
                            .zip(&columns)
                            .map(|(f, c)| (f.name.clone(), c[i].clone()))
                            .collect(),
                    )
                })
                .collect()
        }
        other => {
            return Err(format!(
                "Avro type {other:?} is not supported for producing"
            ))
        }
    };
    Ok(values)
}

fn minimal_twos_complement_len(x: i128) -> usize {
    let bytes = x.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    16 - start
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;

    use super::*;

    fn sample_schema() -> AvroSchema {
        AvroSchema::parse_str(
            r#"{"type": "record", "name": "Reading", "fields": [
                {"name": "id", "type": "long"},
                {"name": "v", "type": ["null", "double"], "default": null},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
                {"name": "attrs", "type": {"type": "map", "values": "int"}},
                {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
                {"name": "loc", "type": ["null", {"type": "record", "name": "Loc", "fields": [{"name": "lat", "type": "double"}]}], "default": null},
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn arrow_avro_arrow_round_trip_with_nulls_and_nesting() {
        let avro = Arc::new(sample_schema());
        let arrow = Arc::new(avro_to_arrow_schema(&avro).unwrap());
        assert_eq!(
            arrow.field_with_name("price").unwrap().data_type(),
            &DataType::Decimal128(9, 2)
        );
        assert!(arrow.field_with_name("v").unwrap().is_nullable());

        let row = |id: i64, v: Option<f64>, lat: Option<f64>| {
            Value::Record(vec![
                ("id".into(), Value::Long(id)),
                (
                    "v".into(),
                    match v {
                        Some(x) => Value::Union(1, Box::new(Value::Double(x))),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                ),
                ("tags".into(), Value::Array(vec![Value::String("x".into())])),
                (
                    "attrs".into(),
                    Value::Map([("k".to_string(), Value::Int(3))].into()),
                ),
                (
                    "price".into(),
                    Value::Decimal(apache_avro::Decimal::from(&(-12345i64).to_be_bytes()[6..])),
                ),
                (
                    "loc".into(),
                    match lat {
                        Some(x) => Value::Union(
                            1,
                            Box::new(Value::Record(vec![("lat".into(), Value::Double(x))])),
                        ),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                ),
                ("kind".into(), Value::Enum(1, "B".into())),
            ])
        };
        let datums: Vec<Vec<u8>> = [row(1, Some(0.5), Some(47.1)), row(2, None, None)]
            .into_iter()
            .map(|v| apache_avro::to_avro_datum(&avro, v).unwrap())
            .collect();
        let mut payloads: Vec<Payload> = datums
            .iter()
            .map(|d| Payload {
                key: None,
                value: Some(d),
            })
            .collect();
        payloads.push(Payload {
            key: None,
            value: Some(b"\x02"),
        }); // truncated
        let mut decoder = AvroDecoder::new(WriterSchemas::Fixed(avro.clone()), None).unwrap();
        let decoded = decoder.decode(&payloads).unwrap();
        assert_eq!(decoded.failures.len(), 1, "{:?}", decoded.failures);
        assert_eq!(decoded.failures[0].index, 2);
        let batch = decoded.batch;
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(4).as_primitive::<Decimal128Type>().value(0),
            -12345
        );
        assert!(batch.column(1).is_null(1));
        assert!(batch.column(5).is_null(1));
        assert_eq!(batch.column(6).as_string::<i32>().value(0), "B");

        // and back: Arrow rows -> Avro datums -> the same Arrow rows
        let values = batch_to_avro_values(&batch, &avro).unwrap();
        let again: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| apache_avro::to_avro_datum(&avro, v).unwrap())
            .collect();
        assert_eq!(again, datums);
    }

    #[test]
    fn derived_schema_encodes_arrow_rows() {
        let schema = crate::formats::parse_column_declarations(&[
            "ID BIGINT, `my-name` STRING, V DOUBLE, T TIMESTAMP",
        ])
        .unwrap();
        let avro = arrow_to_avro_schema(&schema, "credit.card-topic").unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(2.5)])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_000),
                    None,
                ])),
            ],
        )
        .unwrap();
        let values = batch_to_avro_values(&batch, &avro).unwrap();
        let datums: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| apache_avro::to_avro_datum(&avro, v).unwrap())
            .collect();
        let payloads: Vec<Payload> = datums
            .iter()
            .map(|d| Payload {
                key: None,
                value: Some(d),
            })
            .collect();
        let mut decoder = AvroDecoder::new(WriterSchemas::Fixed(Arc::new(avro)), None).unwrap();
        let decoded = decoder.decode(&payloads).unwrap();
        assert!(decoded.failures.is_empty());
        assert_eq!(decoded.batch.schema().field(1).name(), "my_name");
        assert!(decoded.batch.column(0).is_null(1));
        assert_eq!(
            decoded
                .batch
                .column(2)
                .as_primitive::<Float64Type>()
                .value(1),
            2.5
        );
    }

    #[test]
    fn truncated_datums_fail_instead_of_decoding_as_nulls() {
        let avro = Arc::new(
            AvroSchema::parse_str(
                r#"{"type": "record", "name": "R", "fields": [
                    {"name": "id", "type": "long"}, {"name": "s", "type": ["null", "string"]},
                    {"name": "ok", "type": "boolean"}]}"#,
            )
            .unwrap(),
        );
        let row = Value::Record(vec![
            ("id".into(), Value::Long(9)),
            (
                "s".into(),
                Value::Union(1, Box::new(Value::String("nine".into()))),
            ),
            ("ok".into(), Value::Boolean(true)),
        ]);
        let full = apache_avro::to_avro_datum(&avro, row).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Fixed(avro), None).unwrap();
        let mut payloads = vec![Payload {
            key: None,
            value: Some(&full[..]),
        }];
        // cut inside the union index, inside the string, and before the boolean
        for cut in [1, 4, full.len() - 1] {
            payloads.push(Payload {
                key: None,
                value: Some(&full[..cut]),
            });
        }
        let decoded = decoder.decode(&payloads).unwrap();
        let bad: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(bad, [1, 2, 3], "{:?}", decoded.failures);
        assert!(
            decoded.failures[0].reason.contains("truncated"),
            "{:?}",
            decoded.failures[0]
        );
        assert_eq!(decoded.batch.num_rows(), 1);
    }

    #[test]
    fn decimal_bytes_sign_extension() {
        assert_eq!(i128_from_be_twos_complement(&[0xff, 0x38]), Some(-200));
        assert_eq!(i128_from_be_twos_complement(&[0x00, 0xc8]), Some(200));
        assert_eq!(minimal_twos_complement_len(-200), 2);
        assert_eq!(minimal_twos_complement_len(127), 1);
        assert_eq!(minimal_twos_complement_len(128), 2);
    }
}
