//! ksqlDB's AVRO format through a Schema Registry: the schema ksqlDB derives from columns and
//! registers when a side is made (record `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema`,
//! every field an optional `["null", T]` union with a null default, Connect's logical-type
//! annotations on DECIMAL, DATE, TIME and TIMESTAMP, nested records named `<parent>_<FIELD>`),
//! Confluent's wire format (`0x00`, the 4-byte big-endian schema id, the Avro binary datum),
//! and the coercions ksqlDB applies when a writer schema differs from the columns (int to
//! BIGINT, numbers to STRING, enums to STRING, ...). Records are read with the writer schema
//! their id names, columns matched to fields by name (exactly, else ignoring case).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::schema::{Name, Schema};
use apache_avro::types::Value as AvroValue;
use base64::Engine as _;
use serde_json::json;

use super::decimal::{from_twos_complement, parse_decimal, rescale, to_twos_complement};
use super::json::find_field;
use super::{SchemaRegistry, Side};
use crate::types::SqlType;
use crate::value::{decimal_to_string, java_double_to_string, Value};

/// ksqlDB's default record name for values.
pub const DEFAULT_VALUE_SCHEMA_NAME: &str = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema";
/// ksqlDB's default record name for keys.
pub const DEFAULT_KEY_SCHEMA_NAME: &str = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchemaKey";

/// The key record name ksqlDB gives a source's AVRO keys: `OUTPUT` ->
/// `io.confluent.ksql.avro_schemas.OutputKey` (the corpus's expected key schemas).
pub fn key_schema_name(source_name: &str) -> String {
    let mut chars = source_name.chars();
    let capitalized: String = match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    };
    format!("io.confluent.ksql.avro_schemas.{capitalized}Key")
}

/// A parsed schema with its named types, so references resolve.
pub(crate) struct ParsedSchema {
    pub(crate) schema: Schema,
    names: HashMap<Name, Schema>,
}

impl ParsedSchema {
    pub(crate) fn parse(text: &str) -> Result<ParsedSchema, String> {
        let mut json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("Invalid Avro schema: {e}"))?;
        default_decimal_precision(&mut json);
        let schema = Schema::parse(&json).map_err(|e| format!("Invalid Avro schema: {e}"))?;
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .map_err(|e| format!("Invalid Avro schema: {e}"))?
            .get_names()
            .iter()
            .map(|(name, schema)| (name.clone(), (*schema).clone()))
            .collect();
        Ok(ParsedSchema { schema, names })
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> Result<&'a Schema, String> {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .ok_or_else(|| format!("Unknown Avro type reference {name}")),
            other => Ok(other),
        }
    }
}

/// Connect reads a decimal without `precision` as precision 64 (the Avro parser would
/// otherwise drop the logical type and leave bare bytes).
fn default_decimal_precision(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::Object(fields) => {
            if fields.get("logicalType").and_then(|t| t.as_str()) == Some("decimal")
                && !fields.contains_key("precision")
            {
                fields.insert("precision".into(), json!(64));
            }
            fields.values_mut().for_each(default_decimal_precision);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(default_decimal_precision),
        _ => {}
    }
}

/// Checks a name as Avro does; the message is ksqlDB's.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => {
            return Err(format!(
                "Schema is not compatible with Avro: Illegal initial character: {name}"
            ))
        }
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "Schema is not compatible with Avro: Illegal character in: {name}"
        ))
    }
}

/// Checks that columns can be written in Avro (names, MAP keys).
pub(crate) fn check_columns(columns: &[(String, SqlType)], wrapped: bool) -> Result<(), String> {
    fn check_type(ty: &SqlType) -> Result<(), String> {
        match ty {
            SqlType::Array(item) => check_type(item),
            SqlType::Map(key, value) => {
                if **key != SqlType::String {
                    return Err("Avro only supports MAPs with STRING keys".into());
                }
                check_type(value)
            }
            SqlType::Struct(fields) => fields.iter().try_for_each(|(name, ty)| {
                check_name(name)?;
                check_type(ty)
            }),
            _ => Ok(()),
        }
    }
    for (name, ty) in columns {
        if wrapped {
            check_name(name)?;
        }
        check_type(ty)?;
    }
    Ok(())
}

/// The schema ksqlDB registers for these columns, as JSON.
pub(crate) fn derive_schema(
    columns: &[(String, SqlType)],
    wrapped: bool,
    full_name: &str,
) -> serde_json::Value {
    if !wrapped && columns.len() == 1 {
        return type_schema(&columns[0].1, full_name);
    }
    record_schema(columns.iter().map(|(n, t)| (n.as_str(), t)), full_name)
}

fn record_schema<'a>(
    fields: impl Iterator<Item = (&'a str, &'a SqlType)>,
    full_name: &str,
) -> serde_json::Value {
    let (namespace, name) = match full_name.rsplit_once('.') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, full_name),
    };
    let fields: Vec<serde_json::Value> = fields
        .map(|(field, ty)| {
            json!({
                "name": field,
                "type": ["null", type_schema(ty, &format!("{full_name}_{field}"))],
                "default": null,
            })
        })
        .collect();
    let mut record = serde_json::Map::new();
    record.insert("type".into(), json!("record"));
    record.insert("name".into(), json!(name));
    if let Some(namespace) = namespace {
        record.insert("namespace".into(), json!(namespace));
    }
    record.insert("fields".into(), serde_json::Value::Array(fields));
    record.insert("connect.name".into(), json!(full_name));
    serde_json::Value::Object(record)
}

fn type_schema(ty: &SqlType, full_name: &str) -> serde_json::Value {
    match ty {
        SqlType::Boolean => json!("boolean"),
        SqlType::Integer => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Double => json!("double"),
        SqlType::String => json!("string"),
        SqlType::Bytes => json!("bytes"),
        SqlType::Decimal { precision, scale } => json!({
            "type": "bytes",
            "scale": scale,
            "precision": precision,
            "connect.version": 1,
            "connect.parameters": {
                "scale": scale.to_string(),
                "connect.decimal.precision": precision.to_string(),
            },
            "connect.name": "org.apache.kafka.connect.data.Decimal",
            "logicalType": "decimal",
        }),
        SqlType::Date => json!({
            "type": "int",
            "connect.version": 1,
            "connect.name": "org.apache.kafka.connect.data.Date",
            "logicalType": "date",
        }),
        SqlType::Time => json!({
            "type": "int",
            "connect.version": 1,
            "connect.name": "org.apache.kafka.connect.data.Time",
            "logicalType": "time-millis",
        }),
        SqlType::Timestamp => json!({
            "type": "long",
            "connect.version": 1,
            "connect.name": "org.apache.kafka.connect.data.Timestamp",
            "logicalType": "timestamp-millis",
        }),
        SqlType::Array(item) => {
            json!({"type": "array", "items": ["null", type_schema(item, full_name)]})
        }
        SqlType::Map(_, value) => {
            json!({"type": "map", "values": ["null", type_schema(value, full_name)]})
        }
        SqlType::Struct(fields) => {
            record_schema(fields.iter().map(|(n, t)| (n.as_str(), t)), full_name)
        }
    }
}

/// Column types for a registered schema (`CREATE STREAM` without columns): a record's fields
/// when wrapped (names upper-cased, nested ones too, as ksqlDB's inference does), else one column `ROWVAL` / `ROWKEY` of the
/// schema's type. Keys are never wrapped in ksqlDB's inference.
pub fn infer_columns(
    schema_text: &str,
    side: Side,
    wrapped: bool,
) -> Result<Vec<(String, SqlType)>, String> {
    infer_columns_named(schema_text, side, wrapped, true)
}

/// As `infer_columns`, keeping the schema's field names as written when `upper_case` is false
/// (ksqlDB does so for a schema chosen with `VALUE_SCHEMA_ID` / `KEY_SCHEMA_ID`).
pub fn infer_columns_named(
    schema_text: &str,
    side: Side,
    wrapped: bool,
    upper_case: bool,
) -> Result<Vec<(String, SqlType)>, String> {
    let name_of = |name: &str| {
        if upper_case {
            name.to_uppercase()
        } else {
            name.to_string()
        }
    };
    let parsed = ParsedSchema::parse(schema_text)?;
    let top = non_null(parsed.resolve(&parsed.schema)?, &parsed)?;
    if side == Side::Value && wrapped {
        if let Schema::Record(record) = top {
            return record
                .fields
                .iter()
                .map(|field| {
                    Ok((
                        name_of(&field.name),
                        sql_type(&field.schema, &parsed, upper_case)?,
                    ))
                })
                .collect();
        }
    }
    let name = if side == Side::Key {
        "ROWKEY"
    } else {
        "ROWVAL"
    };
    Ok(vec![(
        name.to_string(),
        sql_type(top, &parsed, upper_case)?,
    )])
}

/// The one non-null branch of an optional union, or the schema itself.
fn non_null<'a>(schema: &'a Schema, parsed: &'a ParsedSchema) -> Result<&'a Schema, String> {
    match schema {
        Schema::Union(union) => {
            let branches: Vec<&Schema> = union
                .variants()
                .iter()
                .filter(|s| !matches!(s, Schema::Null))
                .collect();
            match branches.as_slice() {
                [only] => parsed.resolve(only),
                _ => Err("Unions other than [\"null\", T] are not supported".into()),
            }
        }
        other => parsed.resolve(other),
    }
}

fn sql_type(schema: &Schema, parsed: &ParsedSchema, upper_case: bool) -> Result<SqlType, String> {
    let schema = non_null(schema, parsed)?;
    Ok(match schema {
        Schema::Boolean => SqlType::Boolean,
        Schema::Int => SqlType::Integer,
        Schema::Long => SqlType::BigInt,
        Schema::Float | Schema::Double => SqlType::Double,
        Schema::String | Schema::Enum(_) | Schema::Uuid => SqlType::String,
        Schema::Bytes | Schema::Fixed(_) => SqlType::Bytes,
        Schema::Decimal(decimal) => SqlType::Decimal {
            precision: decimal.precision.min(38) as u8,
            scale: decimal.scale.min(38) as u8,
        },
        Schema::Date => SqlType::Date,
        Schema::TimeMillis | Schema::TimeMicros => SqlType::Time,
        Schema::TimestampMillis | Schema::TimestampMicros => SqlType::Timestamp,
        Schema::Array(array) => {
            SqlType::Array(Box::new(sql_type(&array.items, parsed, upper_case)?))
        }
        Schema::Map(map) => SqlType::Map(
            Box::new(SqlType::String),
            Box::new(sql_type(&map.types, parsed, upper_case)?),
        ),
        Schema::Record(record) => SqlType::Struct(
            record
                .fields
                .iter()
                .map(|field| {
                    let name = if upper_case {
                        field.name.to_uppercase()
                    } else {
                        field.name.clone()
                    };
                    Ok((name, sql_type(&field.schema, parsed, upper_case)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("Avro type {other:?} has no ksqlDB type")),
    })
}

/// Connect's type names, which ksqlDB's Avro coercion errors quote.
fn connect_type(value: &AvroValue) -> &'static str {
    match value {
        AvroValue::Null => "null",
        AvroValue::Boolean(_) => "boolean",
        AvroValue::Int(_) | AvroValue::Date(_) | AvroValue::TimeMillis(_) => "int32",
        AvroValue::Long(_)
        | AvroValue::TimestampMillis(_)
        | AvroValue::TimestampMicros(_)
        | AvroValue::TimeMicros(_) => "int64",
        AvroValue::Float(_) => "float32",
        AvroValue::Double(_) => "float64",
        AvroValue::String(_) | AvroValue::Enum(..) | AvroValue::Uuid(_) => "string",
        AvroValue::Bytes(_) | AvroValue::Fixed(..) | AvroValue::Decimal(_) => "bytes",
        AvroValue::Array(_) => "array",
        AvroValue::Map(_) => "map",
        AvroValue::Record(_) => "struct",
        _ => "unsupported",
    }
}

fn connect_type_of(ty: &SqlType) -> &'static str {
    match ty {
        SqlType::Boolean => "boolean",
        SqlType::Integer | SqlType::Date | SqlType::Time => "int32",
        SqlType::BigInt | SqlType::Timestamp => "int64",
        SqlType::Double => "float64",
        SqlType::Decimal { .. } | SqlType::Bytes => "bytes",
        SqlType::String => "string",
        SqlType::Array(_) => "array",
        SqlType::Map(..) => "map",
        SqlType::Struct(_) => "struct",
    }
}

/// An Avro datum (decoded with its writer schema) as a value of the column type.
fn from_avro(
    value: &AvroValue,
    schema: &Schema,
    ty: &SqlType,
    parsed: &ParsedSchema,
    field: &str,
) -> Result<Value, String> {
    let schema = parsed.resolve(schema)?;
    if let AvroValue::Union(index, inner) = value {
        let branch = match schema {
            Schema::Union(union) => union.variants().get(*index as usize).unwrap_or(schema),
            other => other,
        };
        return from_avro(inner, branch, ty, parsed, field);
    }
    let mismatch = || {
        format!(
            "Cannot deserialize type {} as type {} for field {field}",
            connect_type(value),
            connect_type_of(ty)
        )
    };
    Ok(match (ty, value) {
        (_, AvroValue::Null) => Value::Null,
        (SqlType::Boolean, AvroValue::Boolean(b)) => Value::Boolean(*b),
        (SqlType::Integer, AvroValue::Int(v)) => Value::Integer(*v),
        (SqlType::BigInt, AvroValue::Int(v)) => Value::BigInt(*v as i64),
        (SqlType::BigInt, AvroValue::Long(v) | AvroValue::TimestampMillis(v)) => Value::BigInt(*v),
        (SqlType::Double, AvroValue::Double(v)) => Value::Double(*v),
        (SqlType::Double, AvroValue::Float(v)) => Value::Double(*v as f64),
        (SqlType::Double, AvroValue::Int(v)) => Value::Double(*v as f64),
        (SqlType::Double, AvroValue::Long(v)) => Value::Double(*v as f64),
        (SqlType::String, AvroValue::String(s) | AvroValue::Enum(_, s)) => Value::String(s.clone()),
        (SqlType::String, AvroValue::Int(v)) => Value::String(v.to_string()),
        (SqlType::String, AvroValue::Long(v)) => Value::String(v.to_string()),
        (SqlType::String, AvroValue::Double(v)) => Value::String(java_double_to_string(*v)),
        (SqlType::String, AvroValue::Float(v)) => Value::String(java_double_to_string(*v as f64)),
        (SqlType::String, AvroValue::Boolean(b)) => Value::String(b.to_string()),
        (SqlType::String, AvroValue::Uuid(u)) => Value::String(u.to_string()),
        (SqlType::Bytes, AvroValue::Bytes(b) | AvroValue::Fixed(_, b)) => Value::Bytes(b.clone()),
        (SqlType::Decimal { precision, scale }, AvroValue::Decimal(decimal)) => {
            let writer_scale = match schema {
                Schema::Decimal(d) => d.scale as i32,
                _ => *scale as i32,
            };
            let bytes: Vec<u8> = decimal.try_into().map_err(|e| format!("{e}"))?;
            decimal_value(&bytes, writer_scale, *precision, *scale)?
        }
        // A decimal whose logical type the parser did not accept arrives as its bytes.
        (SqlType::Decimal { precision, scale }, AvroValue::Bytes(bytes)) => {
            decimal_value(bytes, *scale as i32, *precision, *scale)?
        }
        (SqlType::Decimal { precision, scale }, AvroValue::Int(v)) => {
            super::decimal::fit_decimal(*v as i128, 0, *precision, *scale)?
        }
        (SqlType::Decimal { precision, scale }, AvroValue::Long(v)) => {
            super::decimal::fit_decimal(*v as i128, 0, *precision, *scale)?
        }
        (SqlType::Date, AvroValue::Date(v) | AvroValue::Int(v)) => Value::Date(*v),
        (SqlType::Time, AvroValue::TimeMillis(v) | AvroValue::Int(v)) => Value::Time(*v as i64),
        (SqlType::Time, AvroValue::TimeMicros(v)) => Value::Time(v / 1000),
        (SqlType::Timestamp, AvroValue::TimestampMillis(v) | AvroValue::Long(v)) => {
            Value::Timestamp(*v)
        }
        (SqlType::Timestamp, AvroValue::TimestampMicros(v)) => Value::Timestamp(v.div_euclid(1000)),
        (SqlType::Array(item_type), AvroValue::Array(items)) => {
            let Schema::Array(array) = schema else {
                return Err(mismatch());
            };
            Value::Array(
                items
                    .iter()
                    .map(|item| from_avro(item, &array.items, item_type, parsed, field))
                    .collect::<Result<_, _>>()?,
            )
        }
        (SqlType::Map(_, value_type), AvroValue::Map(entries)) => {
            let Schema::Map(map) = schema else {
                return Err(mismatch());
            };
            // Avro maps carry no order; sorted keys keep output deterministic.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let item = from_avro(&entries[key], &map.types, value_type, parsed, field)?;
                out.push((Value::String(key.clone()), item));
            }
            Value::Map(out)
        }
        (SqlType::Struct(struct_fields), AvroValue::Record(record_fields)) => {
            let Schema::Record(record) = schema else {
                return Err(mismatch());
            };
            let mut out = Vec::with_capacity(struct_fields.len());
            for (name, field_type) in struct_fields {
                let position = record
                    .fields
                    .iter()
                    .position(|f| f.name == *name)
                    .or_else(|| {
                        record
                            .fields
                            .iter()
                            .position(|f| f.name.eq_ignore_ascii_case(name))
                    });
                out.push(match position {
                    Some(i) => from_avro(
                        record_fields.get(i).map_or(&AvroValue::Null, |f| &f.1),
                        &record.fields[i].schema,
                        field_type,
                        parsed,
                        &format!("{field}.{name}"),
                    )?,
                    None => Value::Null,
                });
            }
            Value::Struct(out)
        }
        _ => return Err(mismatch()),
    })
}

fn decimal_value(bytes: &[u8], from_scale: i32, precision: u8, scale: u8) -> Result<Value, String> {
    let unscaled = from_twos_complement(bytes).ok_or("Decimal wider than 38 digits")?;
    super::decimal::fit_decimal(unscaled, from_scale, precision, scale)
}

/// A value as an Avro datum of `schema` (the writer schema).
fn to_avro(
    value: &Value,
    ty: &SqlType,
    schema: &Schema,
    parsed: &ParsedSchema,
    field: &str,
) -> Result<AvroValue, String> {
    let schema = parsed.resolve(schema)?;
    if let Schema::Union(union) = schema {
        if value.is_null() {
            let index = union
                .variants()
                .iter()
                .position(|s| matches!(s, Schema::Null))
                .ok_or_else(|| format!("NULL for the non-optional field {field}"))?;
            return Ok(AvroValue::Union(index as u32, Box::new(AvroValue::Null)));
        }
        let mut last_error = format!("No branch of the union fits field {field}");
        for (index, branch) in union.variants().iter().enumerate() {
            if matches!(branch, Schema::Null) {
                continue;
            }
            match to_avro(value, ty, branch, parsed, field) {
                Ok(datum) => return Ok(AvroValue::Union(index as u32, Box::new(datum))),
                Err(error) => last_error = error,
            }
        }
        return Err(last_error);
    }
    let mismatch =
        || format!("Cannot write {ty} value {value:?} as Avro {schema:?} for field {field}");
    Ok(match (schema, value) {
        (Schema::Null, Value::Null) => AvroValue::Null,
        (_, Value::Null) => return Err(format!("NULL for the non-optional field {field}")),
        (Schema::Boolean, Value::Boolean(b)) => AvroValue::Boolean(*b),
        (Schema::Int, Value::Integer(v) | Value::Date(v)) => AvroValue::Int(*v),
        (Schema::Int, Value::Time(v)) => AvroValue::Int(*v as i32),
        (Schema::Long, Value::Integer(v)) => AvroValue::Long(*v as i64),
        (Schema::Long, Value::BigInt(v) | Value::Timestamp(v) | Value::Time(v)) => {
            AvroValue::Long(*v)
        }
        (Schema::Double, Value::Double(v)) => AvroValue::Double(*v),
        (Schema::Double, Value::Integer(v)) => AvroValue::Double(*v as f64),
        (Schema::Double, Value::BigInt(v)) => AvroValue::Double(*v as f64),
        (Schema::Float, Value::Double(v)) => AvroValue::Float(*v as f32),
        (Schema::String, Value::String(s)) => AvroValue::String(s.clone()),
        (Schema::Enum(e), Value::String(s)) => {
            let index = e
                .symbols
                .iter()
                .position(|symbol| symbol == s)
                .ok_or_else(mismatch)?;
            AvroValue::Enum(index as u32, s.clone())
        }
        (Schema::Bytes, Value::Bytes(b)) => AvroValue::Bytes(b.clone()),
        (Schema::Fixed(f), Value::Bytes(b)) if f.size == b.len() => {
            AvroValue::Fixed(f.size, b.clone())
        }
        (Schema::Decimal(decimal), Value::Decimal { unscaled, scale }) => {
            let unscaled =
                rescale(*unscaled, *scale as i32, decimal.scale as i32).ok_or_else(mismatch)?;
            let mut bytes = to_twos_complement(unscaled);
            if let Schema::Fixed(fixed) = decimal.inner.as_ref() {
                if bytes.len() > fixed.size {
                    return Err(mismatch());
                }
                let filler = if unscaled < 0 { 0xff } else { 0x00 };
                let mut padded = vec![filler; fixed.size - bytes.len()];
                padded.extend_from_slice(&bytes);
                bytes = padded;
            }
            AvroValue::Decimal(apache_avro::Decimal::from(bytes))
        }
        (Schema::Date, Value::Date(v) | Value::Integer(v)) => AvroValue::Date(*v),
        (Schema::TimeMillis, Value::Time(v)) => AvroValue::TimeMillis(*v as i32),
        (Schema::TimeMicros, Value::Time(v)) => AvroValue::TimeMicros(v * 1000),
        (Schema::TimestampMillis, Value::Timestamp(v) | Value::BigInt(v)) => {
            AvroValue::TimestampMillis(*v)
        }
        (Schema::TimestampMicros, Value::Timestamp(v)) => AvroValue::TimestampMicros(v * 1000),
        (Schema::Array(array), Value::Array(items)) => {
            let SqlType::Array(item_type) = ty else {
                return Err(mismatch());
            };
            AvroValue::Array(
                items
                    .iter()
                    .map(|item| to_avro(item, item_type, &array.items, parsed, field))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Schema::Map(map), Value::Map(entries)) => {
            let SqlType::Map(_, value_type) = ty else {
                return Err(mismatch());
            };
            let mut out = HashMap::with_capacity(entries.len());
            for (key, item) in entries {
                let key = match key {
                    Value::String(s) => s.clone(),
                    other => super::json::scalar_text(other),
                };
                out.insert(key, to_avro(item, value_type, &map.types, parsed, field)?);
            }
            AvroValue::Map(out)
        }
        (Schema::Record(record), Value::Struct(values)) => {
            let SqlType::Struct(struct_fields) = ty else {
                return Err(mismatch());
            };
            let named: Vec<(String, (&Value, &SqlType))> = struct_fields
                .iter()
                .zip(values)
                .map(|((name, field_type), value)| (name.clone(), (value, field_type)))
                .collect();
            record_datum(record, &named, parsed, field)?
        }
        _ => return Err(mismatch()),
    })
}

fn record_datum(
    record: &apache_avro::schema::RecordSchema,
    named: &[(String, (&Value, &SqlType))],
    parsed: &ParsedSchema,
    field: &str,
) -> Result<AvroValue, String> {
    let mut out = Vec::with_capacity(record.fields.len());
    for record_field in &record.fields {
        let path = if field.is_empty() {
            record_field.name.clone()
        } else {
            format!("{field}.{}", record_field.name)
        };
        let datum = match find_field(named, &record_field.name) {
            // A NULL where the schema takes none is the field's default (as Connect's Struct).
            Some((value, ty)) => match (
                to_avro(value, ty, &record_field.schema, parsed, &path),
                &record_field.default,
            ) {
                (Err(_), Some(default)) if value.is_null() => {
                    json_to_avro(default, &record_field.schema, parsed)?
                }
                (datum, _) => datum?,
            },
            // A field the columns lack gets its default, else NULL (ksqlDB with a schema id).
            None => match &record_field.default {
                Some(default) => json_to_avro(default, &record_field.schema, parsed)?,
                None => to_avro(
                    &Value::Null,
                    &SqlType::String,
                    &record_field.schema,
                    parsed,
                    &path,
                )
                .map_err(|_| format!("No column for the non-optional field {path}"))?,
            },
        };
        out.push((record_field.name.clone(), datum));
    }
    Ok(AvroValue::Record(out))
}

/// Per-side state of the AVRO format.
pub(crate) struct AvroSerde {
    registry: Arc<dyn SchemaRegistry>,
    subject: String,
    wrapped: bool,
    /// The schema rows are written with: the one given by id, else the derived one.
    writer: Arc<ParsedSchema>,
    writer_text: String,
    /// The writer's id: given, or that of the derived schema once registered.
    writer_id: OnceLock<i32>,
    /// Writer schemas of records read, by id.
    readers: Mutex<HashMap<i32, Arc<ParsedSchema>>>,
}

impl AvroSerde {
    pub(crate) fn new(
        registry: Arc<dyn SchemaRegistry>,
        topic: &str,
        side: Side,
        columns: &[(String, SqlType)],
        wrapped: bool,
        schema_id: Option<i32>,
        full_name: &str,
    ) -> Result<AvroSerde, String> {
        let subject = format!(
            "{topic}-{}",
            if side == Side::Key { "key" } else { "value" }
        );
        let writer_id = OnceLock::new();
        let writer_text = match schema_id {
            Some(id) => {
                let _ = writer_id.set(id);
                registry.schema_by_id(id).map_err(|e| {
                    format!("Cannot fetch schema {id} from the Schema Registry: {e}")
                })?
            }
            None => {
                check_columns(columns, wrapped)?;
                derive_schema(columns, wrapped, full_name).to_string()
            }
        };
        let writer = Arc::new(ParsedSchema::parse(&writer_text)?);
        let serde = AvroSerde {
            registry,
            subject,
            wrapped,
            writer,
            writer_text,
            writer_id,
            readers: Mutex::new(HashMap::new()),
        };
        // ksqlDB registers a derived schema when the statement runs (its
        // SchemaRegisterInjector), so registry errors are statement errors.
        serde.writer_id()?;
        Ok(serde)
    }

    /// The subject this side registers under (`<topic>-value` / `<topic>-key`).
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }

    fn reader(&self, id: i32) -> Result<Arc<ParsedSchema>, String> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(schema) = readers.get(&id) {
            return Ok(schema.clone());
        }
        let text = self
            .registry
            .schema_by_id(id)
            .map_err(|e| format!("Cannot fetch schema {id} from the Schema Registry: {e}"))?;
        let schema = Arc::new(ParsedSchema::parse(&text)?);
        readers.insert(id, schema.clone());
        Ok(schema)
    }

    /// Decodes the wire format into the datum and its writer schema.
    fn decode(&self, bytes: &[u8]) -> Result<(AvroValue, Arc<ParsedSchema>), String> {
        let (id, mut body) = split_wire(bytes)?;
        let schema = self.reader(id)?;
        let datum = apache_avro::from_avro_datum(&schema.schema, &mut body, None)
            .map_err(|e| format!("Invalid Avro data for schema {id}: {e}"))?;
        Ok((datum, schema))
    }

    pub(crate) fn deserialize(
        &self,
        bytes: &[u8],
        columns: &[(String, SqlType)],
    ) -> Result<Option<Vec<Value>>, String> {
        let (datum, schema) = self.decode(bytes)?;
        let (datum, top) = unwrap_union(&datum, &schema.schema, &schema)?;
        if !self.wrapped && columns.len() == 1 {
            let (name, ty) = &columns[0];
            return Ok(Some(vec![from_avro(datum, top, ty, &schema, name)?]));
        }
        let (AvroValue::Record(fields), Schema::Record(record)) = (datum, top) else {
            if let AvroValue::Null = datum {
                return Ok(None);
            }
            return Err(format!(
                "Expected an Avro record, got {}",
                connect_type(datum)
            ));
        };
        let mut row = Vec::with_capacity(columns.len());
        for (name, ty) in columns {
            let position = record
                .fields
                .iter()
                .position(|f| f.name == *name)
                .or_else(|| {
                    record
                        .fields
                        .iter()
                        .position(|f| f.name.eq_ignore_ascii_case(name))
                });
            row.push(match position {
                Some(i) => from_avro(
                    fields.get(i).map_or(&AvroValue::Null, |f| &f.1),
                    &record.fields[i].schema,
                    ty,
                    &schema,
                    name,
                )?,
                None => Value::Null,
            });
        }
        Ok(Some(row))
    }

    fn writer_id(&self) -> Result<i32, String> {
        if let Some(id) = self.writer_id.get() {
            return Ok(*id);
        }
        let id = self
            .registry
            .register(&self.subject, &self.writer_text)
            .map_err(|e| format!("Cannot register the schema under {}: {e}", self.subject))?;
        Ok(*self.writer_id.get_or_init(|| id))
    }

    pub(crate) fn serialize(
        &self,
        row: &[Value],
        columns: &[(String, SqlType)],
    ) -> Result<Option<Vec<u8>>, String> {
        let schema = &self.writer;
        let datum = if !self.wrapped && columns.len() == 1 {
            if row[0].is_null() {
                return Ok(None);
            }
            to_avro(
                &row[0],
                &columns[0].1,
                &schema.schema,
                schema,
                &columns[0].0,
            )?
        } else {
            let top = non_null(&schema.schema, schema)?;
            let Schema::Record(record) = top else {
                return Err("The registered schema is not a record".into());
            };
            let named: Vec<(String, (&Value, &SqlType))> = columns
                .iter()
                .zip(row)
                .map(|((name, ty), value)| (name.clone(), (value, ty)))
                .collect();
            let record_value = record_datum(record, &named, schema, "")?;
            match &schema.schema {
                Schema::Union(union) => {
                    let index = union
                        .variants()
                        .iter()
                        .position(|s| !matches!(s, Schema::Null))
                        .unwrap_or(0);
                    AvroValue::Union(index as u32, Box::new(record_value))
                }
                _ => record_value,
            }
        };
        let id = self.writer_id()?;
        Ok(Some(wire(id, datum, &schema.schema)?))
    }
}

fn unwrap_union<'a>(
    datum: &'a AvroValue,
    schema: &'a Schema,
    parsed: &'a ParsedSchema,
) -> Result<(&'a AvroValue, &'a Schema), String> {
    let schema = parsed.resolve(schema)?;
    match (datum, schema) {
        (AvroValue::Union(index, inner), Schema::Union(union)) => {
            let branch = union
                .variants()
                .get(*index as usize)
                .ok_or("Union branch out of range")?;
            unwrap_union(inner, branch, parsed)
        }
        _ => Ok((datum, schema)),
    }
}

/// Confluent's framing: magic byte 0, schema id, datum.
fn split_wire(bytes: &[u8]) -> Result<(i32, &[u8]), String> {
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err("Unknown magic byte!".into());
    }
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

fn wire(id: i32, datum: AvroValue, schema: &Schema) -> Result<Vec<u8>, String> {
    let body = apache_avro::to_avro_datum(schema, datum)
        .map_err(|e| format!("Cannot encode Avro datum: {e}"))?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Test data: JSON as an Avro datum of `schema` (field names matched ignoring case, numbers
/// accepted for strings, base64 for bytes, numbers or text for decimals).
fn json_to_avro(
    json: &serde_json::Value,
    schema: &Schema,
    parsed: &ParsedSchema,
) -> Result<AvroValue, String> {
    let schema = parsed.resolve(schema)?;
    let mismatch = || format!("Cannot write test value {json} as Avro {schema:?}");
    use serde_json::Value as J;
    // The corpus writes some numbers of integer-based types as text (`"1"` for a DATE).
    if let (
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros,
        J::String(text),
    ) = (schema, json)
    {
        if let Ok(number) = text.trim().parse::<i64>() {
            return json_to_avro(&J::from(number), schema, parsed);
        }
    }
    Ok(match (schema, json) {
        (Schema::Union(union), _) => {
            for (index, branch) in union.variants().iter().enumerate() {
                let fits = match (branch, json) {
                    (Schema::Null, J::Null) => true,
                    (Schema::Null, _) | (_, J::Null) => false,
                    _ => true,
                };
                if fits {
                    if let Ok(datum) = json_to_avro(json, branch, parsed) {
                        return Ok(AvroValue::Union(index as u32, Box::new(datum)));
                    }
                }
            }
            return Err(mismatch());
        }
        (Schema::Null, J::Null) => AvroValue::Null,
        (Schema::Boolean, J::Bool(b)) => AvroValue::Boolean(*b),
        (Schema::Int, J::Number(n)) => AvroValue::Int(n.as_i64().ok_or_else(mismatch)? as i32),
        (Schema::Long, J::Number(n)) => AvroValue::Long(n.as_i64().ok_or_else(mismatch)?),
        (Schema::Float, J::Number(n)) => AvroValue::Float(n.as_f64().ok_or_else(mismatch)? as f32),
        (Schema::Double, J::Number(n)) => AvroValue::Double(n.as_f64().ok_or_else(mismatch)?),
        (Schema::String, J::String(s)) => AvroValue::String(s.clone()),
        (Schema::String, J::Number(n)) => AvroValue::String(n.to_string()),
        (Schema::String, J::Bool(b)) => AvroValue::String(b.to_string()),
        (Schema::Enum(e), J::String(s)) => {
            let index = e.symbols.iter().position(|x| x == s).ok_or_else(mismatch)?;
            AvroValue::Enum(index as u32, s.clone())
        }
        (Schema::Bytes, J::String(s)) => AvroValue::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| mismatch())?,
        ),
        (Schema::Fixed(f), J::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| mismatch())?;
            AvroValue::Fixed(f.size, bytes)
        }
        (Schema::Decimal(decimal), J::Number(_) | J::String(_)) => {
            let text = match json {
                J::String(s) => s.clone(),
                other => other.to_string(),
            };
            let (unscaled, scale) = parse_decimal(&text).ok_or_else(mismatch)?;
            let unscaled = rescale(unscaled, scale, decimal.scale as i32).ok_or_else(mismatch)?;
            AvroValue::Decimal(apache_avro::Decimal::from(to_twos_complement(unscaled)))
        }
        (Schema::Date, J::Number(n)) => AvroValue::Date(n.as_i64().ok_or_else(mismatch)? as i32),
        (Schema::TimeMillis, J::Number(n)) => {
            AvroValue::TimeMillis(n.as_i64().ok_or_else(mismatch)? as i32)
        }
        (Schema::TimeMicros, J::Number(n)) => {
            AvroValue::TimeMicros(n.as_i64().ok_or_else(mismatch)?)
        }
        (Schema::TimestampMillis, J::Number(n)) => {
            AvroValue::TimestampMillis(n.as_i64().ok_or_else(mismatch)?)
        }
        (Schema::TimestampMicros, J::Number(n)) => {
            AvroValue::TimestampMicros(n.as_i64().ok_or_else(mismatch)?)
        }
        (Schema::Array(array), J::Array(items)) => AvroValue::Array(
            items
                .iter()
                .map(|item| json_to_avro(item, &array.items, parsed))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(map), J::Object(fields)) => AvroValue::Map(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_to_avro(v, &map.types, parsed)?)))
                .collect::<Result<_, String>>()?,
        ),
        (Schema::Record(record), J::Object(fields)) => {
            let fields: Vec<(String, &serde_json::Value)> =
                fields.iter().map(|(k, v)| (k.clone(), v)).collect();
            let mut out = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let datum = match find_field(&fields, &field.name) {
                    Some(value) => json_to_avro(value, &field.schema, parsed)?,
                    None => match &field.default {
                        Some(default) => json_to_avro(default, &field.schema, parsed)?,
                        None => json_to_avro(&J::Null, &field.schema, parsed)?,
                    },
                };
                out.push((field.name.clone(), datum));
            }
            AvroValue::Record(out)
        }
        _ => return Err(mismatch()),
    })
}

/// Test data: an Avro datum as the JSON the corpus writes (decimals as numbers, bytes in
/// base64, dates as days, times and timestamps as milliseconds).
fn avro_to_json(
    datum: &AvroValue,
    schema: &Schema,
    parsed: &ParsedSchema,
) -> Result<serde_json::Value, String> {
    let schema = parsed.resolve(schema)?;
    use serde_json::Value as J;
    let number = |v: f64| {
        serde_json::Number::from_f64(v)
            .map(J::Number)
            .unwrap_or_else(|| J::String(java_double_to_string(v)))
    };
    Ok(match datum {
        AvroValue::Union(index, inner) => {
            let branch = match schema {
                Schema::Union(union) => union.variants().get(*index as usize).unwrap_or(schema),
                other => other,
            };
            avro_to_json(inner, branch, parsed)?
        }
        AvroValue::Null => J::Null,
        AvroValue::Boolean(b) => J::Bool(*b),
        AvroValue::Int(v) | AvroValue::Date(v) | AvroValue::TimeMillis(v) => json!(v),
        AvroValue::Long(v)
        | AvroValue::TimestampMillis(v)
        | AvroValue::TimeMicros(v)
        | AvroValue::TimestampMicros(v) => json!(v),
        AvroValue::Float(v) => number(*v as f64),
        AvroValue::Double(v) => number(*v),
        AvroValue::String(s) | AvroValue::Enum(_, s) => J::String(s.clone()),
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        AvroValue::Decimal(decimal) => {
            let scale = match schema {
                Schema::Decimal(d) => d.scale.min(255) as u8,
                _ => 0,
            };
            let bytes: Vec<u8> = decimal.try_into().map_err(|e| format!("{e}"))?;
            let unscaled = from_twos_complement(&bytes).ok_or("Decimal wider than 38 digits")?;
            let text = decimal_to_string(unscaled, scale);
            serde_json::from_str::<J>(&text).unwrap_or(J::String(text))
        }
        AvroValue::Array(items) => {
            let Schema::Array(array) = schema else {
                return Err("Avro array without an array schema".into());
            };
            J::Array(
                items
                    .iter()
                    .map(|item| avro_to_json(item, &array.items, parsed))
                    .collect::<Result<_, _>>()?,
            )
        }
        AvroValue::Map(entries) => {
            let Schema::Map(map) = schema else {
                return Err("Avro map without a map schema".into());
            };
            let mut out = serde_json::Map::new();
            for (key, item) in entries {
                out.insert(key.clone(), avro_to_json(item, &map.types, parsed)?);
            }
            J::Object(out)
        }
        AvroValue::Record(fields) => {
            let Schema::Record(record) = schema else {
                return Err("Avro record without a record schema".into());
            };
            let mut out = serde_json::Map::new();
            for ((name, item), field) in fields.iter().zip(&record.fields) {
                out.insert(name.clone(), avro_to_json(item, &field.schema, parsed)?);
            }
            J::Object(out)
        }
        other => J::String(format!("{other:?}")),
    })
}

/// Test data: JSON encoded with `schema_text` into Confluent's wire format under `id`.
pub(crate) fn encode_json(
    json: &serde_json::Value,
    schema_text: &str,
    id: i32,
) -> Result<Vec<u8>, String> {
    let parsed = ParsedSchema::parse(schema_text)?;
    let datum = json_to_avro(json, &parsed.schema, &parsed)?;
    wire(id, datum, &parsed.schema)
}

/// Test data: wire-format bytes back to JSON, with the writer schema from the registry.
pub(crate) fn decode_json(
    bytes: &[u8],
    registry: &dyn SchemaRegistry,
) -> Result<serde_json::Value, String> {
    let (id, mut body) = split_wire(bytes)?;
    let text = registry
        .schema_by_id(id)
        .map_err(|e| format!("Cannot fetch schema {id} from the Schema Registry: {e}"))?;
    let parsed = ParsedSchema::parse(&text)?;
    let datum = apache_avro::from_avro_datum(&parsed.schema, &mut body, None)
        .map_err(|e| format!("Invalid Avro data for schema {id}: {e}"))?;
    avro_to_json(&datum, &parsed.schema, &parsed)
}
