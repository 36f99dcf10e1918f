//! ksqlDB's serialisation formats: a record's key or value bytes to a row of values and back,
//! with ksqlDB's rules for each format (DELIMITED quoting, JSON's case-insensitive field names
//! and number coercions, KAFKA's big-endian primitives, AVRO through a Schema Registry).
//!
//! A `RecordSerde` is made per source or sink side (key or value) when a statement is planned:
//! making it checks that the columns suit the format (the statement error ksqlDB gives), and
//! every record then goes through `deserialize` / `serialize`. A failure on one record is a
//! processing error (the record is skipped and counted, as ksqlDB does), never a panic.
//!
//! What the planner decides and passes in `FormatSpec`:
//! - `wrap_single_value`: `Some(..)` only when the statement says `WRAP_SINGLE_VALUE`, or from
//!   `ksql.persistence.wrap.single.values` when the value has exactly one column (an explicit
//!   setting on several columns is ksqlDB's statement error). Keys with one column are always
//!   unwrapped and keys with several are wrapped (JSON object, AVRO record), as in ksqlDB.
//! - `delimiter`: from `KEY_DELIMITER` / `VALUE_DELIMITER` through `parse_delimiter`.
//! - `full_schema_name` (AVRO only): `VALUE_AVRO_SCHEMA_FULL_NAME` for values; for keys ksqlDB
//!   names the record after the source, `key_schema_name("OUTPUT")` (`...OutputKey`).
//! - `schema_id`: `VALUE_SCHEMA_ID` / `KEY_SCHEMA_ID`; the columns of a source declared without
//!   any come from `infer_columns` (registry's latest schema, names upper-cased) or
//!   `infer_columns_named(.., false)` (a schema chosen by id keeps its names).
//!
//! Formats: KAFKA (INTEGER, BIGINT, DOUBLE, STRING, BYTES; one column), JSON, DELIMITED
//! (primitive columns), AVRO (Confluent wire format, registry in `SerdeContext`), NONE (no
//! columns). PROTOBUF, PROTOBUF_NOSR and JSON_SR are refused with `unsupported format: ...`.

use std::sync::Arc;

use crate::types::SqlType;
use crate::value::Value;

mod avro;
pub(crate) mod decimal;
mod delimited;
mod json;
mod kafka;
mod registry;
mod test_data;

pub use avro::{
    infer_columns, infer_columns_named, key_schema_name, DEFAULT_KEY_SCHEMA_NAME,
    DEFAULT_VALUE_SCHEMA_NAME,
};
pub use registry::MemoryRegistry;
pub use test_data::{
    decode_test_value, encode_test_value, encode_test_value_with_schema, test_values_match,
};

/// A format name as written in `WITH (value_format='...')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Kafka,
    Json,
    Delimited,
    Avro,
    /// No columns on this side (`KEY_FORMAT='NONE'`).
    None,
    Protobuf,
    ProtobufNoSr,
    JsonSr,
}

impl Format {
    /// Parses a format name, case-insensitively.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name.to_ascii_uppercase().as_str() {
            "KAFKA" => Format::Kafka,
            "JSON" => Format::Json,
            "DELIMITED" => Format::Delimited,
            "AVRO" => Format::Avro,
            "NONE" => Format::None,
            "PROTOBUF" => Format::Protobuf,
            "PROTOBUF_NOSR" => Format::ProtobufNoSr,
            "JSON_SR" => Format::JsonSr,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Kafka => "KAFKA",
            Format::Json => "JSON",
            Format::Delimited => "DELIMITED",
            Format::Avro => "AVRO",
            Format::None => "NONE",
            Format::Protobuf => "PROTOBUF",
            Format::ProtobufNoSr => "PROTOBUF_NOSR",
            Format::JsonSr => "JSON_SR",
        }
    }
}

/// Which half of a record a serde reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

/// A format and the `WITH` options that shape it.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatSpec {
    pub format: Format,
    /// DELIMITED's field separator (`VALUE_DELIMITER`; default `,`).
    pub delimiter: char,
    /// `WRAP_SINGLE_VALUE`: `None` means the format's default (wrapped, except KAFKA).
    pub wrap_single_value: Option<bool>,
    /// `VALUE_SCHEMA_ID` / `KEY_SCHEMA_ID`: use this registered schema instead of one derived
    /// from the columns.
    pub schema_id: Option<i32>,
    /// `VALUE_AVRO_SCHEMA_FULL_NAME` (AVRO's record name; default `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema`).
    pub full_schema_name: Option<String>,
}

impl FormatSpec {
    pub fn new(format: Format) -> Self {
        FormatSpec {
            format,
            delimiter: ',',
            wrap_single_value: None,
            schema_id: None,
            full_schema_name: None,
        }
    }
}

/// The Schema Registry the AVRO format (and later PROTOBUF, JSON_SR) registers and looks up
/// schemas in: the embedded registry's core in-process, or a remote registry over HTTP.
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` (Avro JSON text) under `subject`; returns its id.
    fn register(&self, subject: &str, schema: &str) -> Result<i32, String>;
    /// The schema text registered with `id`.
    fn schema_by_id(&self, id: i32) -> Result<String, String>;
    /// The latest version's id and schema text under `subject`, if any.
    fn latest(&self, subject: &str) -> Result<Option<(i32, String)>, String>;
}

/// Why a record could not be read or written, or why columns do not suit a format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// What a serde needs to know besides the format: the columns of its side and where they go.
#[derive(Clone)]
pub struct SerdeContext {
    pub topic: String,
    pub side: Side,
    /// The side's columns, in order (key columns for the key side, value columns for the value).
    pub columns: Vec<(String, SqlType)>,
    pub registry: Option<Arc<dyn SchemaRegistry>>,
}

/// A `KEY_DELIMITER` / `VALUE_DELIMITER` option as ksqlDB reads it: one character, or the
/// names `TAB` and `SPACE` (`option` is the option's name, for the message).
pub fn parse_delimiter(option: &str, text: &str) -> Result<char, SerdeError> {
    let invalid = |reason: String| {
        Err(SerdeError(format!(
            "Failed to prepare statement: Configuration {option} is invalid: {reason}\nExample valid value: ';'"
        )))
    };
    match text {
        _ if text.eq_ignore_ascii_case("TAB") => Ok('\t'),
        _ if text.eq_ignore_ascii_case("SPACE") => Ok(' '),
        "" | " " | "\t" => invalid(
            "Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'".into(),
        ),
        _ => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => invalid(format!(
                    "Invalid delimiter value: '{text}'. Delimiter must be a single character or TAB,SPACE"
                )),
            }
        }
    }
}

impl Side {
    fn noun(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
        }
    }
}

/// How a side's columns are laid out in the format.
enum Layout {
    /// A key without columns, or NONE: bytes are ignored when read, nothing is written.
    Empty,
    Kafka,
    Json,
    Delimited,
    Avro(Box<avro::AvroSerde>),
}

/// Reads and writes one side (key or value) of a source's or sink's records.
pub struct RecordSerde {
    format: Format,
    side: Side,
    topic: String,
    columns: Vec<(String, SqlType)>,
    /// JSON and AVRO: the columns are the fields of an object / record. Otherwise the single
    /// column is the whole message (keys with one column, `WRAP_SINGLE_VALUE=false`).
    wrapped: bool,
    delimiter: char,
    layout: Layout,
}

impl std::fmt::Debug for RecordSerde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSerde")
            .field("format", &self.format)
            .field("side", &self.side)
            .field("topic", &self.topic)
            .field("columns", &self.columns)
            .field("wrapped", &self.wrapped)
            .finish()
    }
}

/// `[`A` INTEGER, `B` STRING KEY]`, as ksqlDB lists columns in its format errors.
fn column_list(columns: &[(String, SqlType)], side: Side) -> String {
    let suffix = if side == Side::Key { " KEY" } else { "" };
    let items: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("`{name}` {ty}{suffix}"))
        .collect();
    format!("[{}]", items.join(", "))
}

fn contains_map(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(..) => true,
        SqlType::Array(item) => contains_map(item),
        SqlType::Struct(fields) => fields.iter().any(|(_, t)| contains_map(t)),
        _ => false,
    }
}

fn non_string_map_key(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(key, value) => **key != SqlType::String || non_string_map_key(value),
        SqlType::Array(item) => non_string_map_key(item),
        SqlType::Struct(fields) => fields.iter().any(|(_, t)| non_string_map_key(t)),
        _ => false,
    }
}

fn base_type_name(ty: &SqlType) -> String {
    match ty {
        SqlType::Decimal { .. } => "DECIMAL".into(),
        SqlType::Array(_) => "ARRAY".into(),
        SqlType::Map(..) => "MAP".into(),
        SqlType::Struct(_) => "STRUCT".into(),
        other => other.to_string(),
    }
}

impl RecordSerde {
    /// Checks that the columns suit the format (ksqlDB's statement errors) and prepares the
    /// side: for AVRO, the writer schema (by `spec.schema_id`, else derived from the columns
    /// and registered under `<topic>-key` / `<topic>-value` now, as ksqlDB does when the
    /// statement runs).
    pub fn new(spec: &FormatSpec, context: SerdeContext) -> Result<RecordSerde, SerdeError> {
        let SerdeContext {
            topic,
            side,
            columns,
            registry,
        } = context;
        let format = spec.format;
        let error = |message: String| Err(SerdeError(message));
        if matches!(
            format,
            Format::Protobuf | Format::ProtobufNoSr | Format::JsonSr
        ) {
            return error(format!(
                "unsupported format: {} (kafkaml's engine reads and writes KAFKA, JSON, DELIMITED, AVRO and NONE)",
                format.name()
            ));
        }
        if side == Side::Key {
            if let Some((name, ty)) = columns.iter().find(|(_, ty)| contains_map(ty)) {
                return error(format!(
                    "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{name}`. Column type: {ty}. See https://github.com/confluentinc/ksql/issues/6621 for more."
                ));
            }
        }
        if format == Format::None && !columns.is_empty() {
            return error(format!(
                "The 'NONE' format can only be used when no columns are defined. Got: {}",
                column_list(&columns, side)
            ));
        }
        if let Some(wrap) = spec.wrap_single_value {
            if wrap && matches!(format, Format::Kafka | Format::Delimited) {
                return error(format!(
                    "Format '{}' does not support 'WRAP_SINGLE_VALUE' set to 'true'.",
                    format.name()
                ));
            }
            if side == Side::Value && columns.len() != 1 {
                return error(
                    "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas".into(),
                );
            }
        }
        if spec.schema_id.is_some() && !matches!(format, Format::Avro) {
            return error(format!(
                "{}_FORMAT should support schema inference when {}_SCHEMA_ID is provided. Current format is {}.",
                if side == Side::Key { "KEY" } else { "VALUE" },
                if side == Side::Key { "KEY" } else { "VALUE" },
                format.name()
            ));
        }
        if spec.full_schema_name.is_some() && format != Format::Avro {
            return error(format!(
                "{} does not support the following configs: [fullSchemaName]",
                format.name()
            ));
        }
        let unsupported = |ty: &SqlType, column: Option<&str>| {
            let features = if spec.wrap_single_value == Some(false) {
                "[UNWRAP_SINGLES]"
            } else {
                "[]"
            };
            let column = column
                .map(|c| format!(", column: `{c}`"))
                .unwrap_or_default();
            Err(SerdeError(format!(
                "{} format does not support schema.\nformat: {}\nschema: Persistence{{columns={}, features={features}}}\nreason: The '{}' format does not support type '{}'{column}",
                if side == Side::Key { "Key" } else { "Value" },
                format.name(),
                column_list(&columns, side),
                format.name(),
                base_type_name(ty),
            )))
        };
        let single = columns.len() == 1;
        let wrapped = match side {
            Side::Key => !single,
            Side::Value => !(single && spec.wrap_single_value == Some(false)),
        };
        // A value without columns is still written by JSON (`{}`), DELIMITED (``) and AVRO (an
        // empty record); a key without columns is no key at all.
        let layout = if columns.is_empty()
            && (side == Side::Key || matches!(format, Format::Kafka | Format::None))
        {
            Layout::Empty
        } else {
            match format {
                Format::Kafka => {
                    if !single {
                        let reason = format!(
                            "The 'KAFKA' format only supports a single field. Got: {}",
                            column_list(&columns, side)
                        );
                        return error(if side == Side::Key {
                            format!(
                                "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{{columns={}, features=[]}}\nreason: {reason}",
                                column_list(&columns, side)
                            )
                        } else {
                            reason
                        });
                    }
                    if !kafka::supports(&columns[0].1) {
                        return unsupported(&columns[0].1, None);
                    }
                    Layout::Kafka
                }
                Format::Delimited => {
                    if let Some((name, ty)) = columns.iter().find(|(_, ty)| !ty.is_primitive()) {
                        return unsupported(ty, Some(name));
                    }
                    Layout::Delimited
                }
                Format::Json => {
                    if columns.iter().any(|(_, ty)| non_string_map_key(ty)) {
                        return error("JSON only supports MAP types with STRING keys".into());
                    }
                    Layout::Json
                }
                Format::Avro => {
                    let full_name = match &spec.full_schema_name {
                        Some(name) if name.trim().is_empty() => {
                            return error(format!(
                                "fullSchemaName cannot be empty. Format configuration: {{fullSchemaName={}}}",
                                name.trim()
                            ))
                        }
                        Some(name) => name.trim().to_string(),
                        None => match side {
                            Side::Key => DEFAULT_KEY_SCHEMA_NAME.to_string(),
                            Side::Value => DEFAULT_VALUE_SCHEMA_NAME.to_string(),
                        },
                    };
                    let Some(registry) = registry else {
                        return error(
                            "AVRO needs a Schema Registry: set 'ksql.schema.registry.url' or give the engine a registry".into(),
                        );
                    };
                    let serde = avro::AvroSerde::new(
                        registry,
                        &topic,
                        side,
                        &columns,
                        wrapped,
                        spec.schema_id,
                        &full_name,
                    )
                    .map_err(SerdeError)?;
                    Layout::Avro(Box::new(serde))
                }
                Format::None | Format::Protobuf | Format::ProtobufNoSr | Format::JsonSr => {
                    Layout::Empty
                }
            }
        };
        Ok(RecordSerde {
            format,
            side,
            topic,
            columns,
            wrapped,
            delimiter: spec.delimiter,
            layout,
        })
    }

    /// The format this serde reads and writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The Schema Registry subject of an AVRO side.
    pub fn subject(&self) -> Option<&str> {
        match &self.layout {
            Layout::Avro(serde) => Some(serde.subject()),
            _ => None,
        }
    }

    /// A message's bytes as the side's columns, in `columns` order. `None` bytes (a tombstone
    /// or null key) and a JSON/AVRO value that is null are `Ok(None)`.
    pub fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        self.read(bytes).map_err(|detail| {
            SerdeError(format!(
                "Failed to deserialize {} from topic: {}. {detail}",
                self.side.noun(),
                self.topic
            ))
        })
    }

    fn read(&self, bytes: &[u8]) -> Result<Option<Vec<Value>>, String> {
        match &self.layout {
            Layout::Empty => Ok(Some(Vec::new())),
            Layout::Kafka => Ok(Some(vec![kafka::deserialize(bytes, &self.columns[0].1)?])),
            Layout::Delimited => {
                delimited::deserialize(bytes, self.delimiter, &self.columns).map(Some)
            }
            Layout::Json => {
                let node = json::parse(bytes)?;
                if !self.wrapped {
                    if node == json::Json::Null && self.side == Side::Value {
                        return Ok(None);
                    }
                    let (name, ty) = &self.columns[0];
                    let value =
                        json::to_value(&node, ty).map_err(|e| format!("{e} (column {name})"))?;
                    return Ok(Some(vec![value]));
                }
                match node {
                    json::Json::Null => Ok(None),
                    json::Json::Object(fields) => {
                        let mut row = Vec::with_capacity(self.columns.len());
                        for (name, ty) in &self.columns {
                            row.push(match json::find_field(&fields, name) {
                                Some(node) => json::to_value(node, ty)
                                    .map_err(|e| json::with_path(e, &format!(".{name}")))?,
                                None => Value::Null,
                            });
                        }
                        Ok(Some(row))
                    }
                    other => {
                        let ty = SqlType::Struct(self.columns.clone());
                        Err(json::to_value(&other, &ty)
                            .err()
                            .unwrap_or_else(|| "Expected a JSON object".into()))
                    }
                }
            }
            Layout::Avro(serde) => serde.deserialize(bytes, &self.columns),
        }
    }

    /// A row of the side's columns as message bytes; `None` when nothing is written (no
    /// columns, or a single unwrapped NULL in JSON, KAFKA or AVRO).
    pub fn serialize(&self, row: &[Value]) -> Result<Option<Vec<u8>>, SerdeError> {
        self.write(row).map_err(|detail| {
            SerdeError(format!(
                "Error serializing message to topic: {}. {detail}",
                self.topic
            ))
        })
    }

    fn write(&self, row: &[Value]) -> Result<Option<Vec<u8>>, String> {
        if let Layout::Empty = self.layout {
            return Ok(None);
        }
        if row.len() != self.columns.len() {
            return Err(format!(
                "expected {} {} columns, got {}",
                self.columns.len(),
                self.side.noun(),
                row.len()
            ));
        }
        match &self.layout {
            Layout::Empty => Ok(None),
            Layout::Kafka => kafka::serialize(&row[0]),
            Layout::Delimited => delimited::serialize(row, self.delimiter).map(Some),
            Layout::Json => {
                // Room for a typical row up front: growing from empty cost ~10 % of a sink's time.
                let mut out = String::with_capacity(64 + 32 * self.columns.len());
                if self.wrapped {
                    out.push('{');
                    for (i, ((name, ty), value)) in self.columns.iter().zip(row).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        json::write_string(&mut out, name);
                        out.push(':');
                        json::write_value(&mut out, value, ty)?;
                    }
                    out.push('}');
                } else {
                    if row[0].is_null() {
                        return Ok(None);
                    }
                    json::write_value(&mut out, &row[0], &self.columns[0].1)?;
                }
                Ok(Some(out.into_bytes()))
            }
            Layout::Avro(serde) => serde.serialize(row, &self.columns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(side: Side, columns: Vec<(&str, SqlType)>) -> SerdeContext {
        SerdeContext {
            topic: "t".into(),
            side,
            columns: columns
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
            registry: Some(Arc::new(MemoryRegistry::new())),
        }
    }

    fn serde(format: Format, side: Side, columns: Vec<(&str, SqlType)>) -> RecordSerde {
        RecordSerde::new(&FormatSpec::new(format), context(side, columns)).unwrap()
    }

    fn refusal(spec: FormatSpec, side: Side, columns: Vec<(&str, SqlType)>) -> String {
        RecordSerde::new(&spec, context(side, columns))
            .unwrap_err()
            .0
    }

    #[test]
    fn columns_are_checked_with_ksqldb_messages() {
        let kafka = FormatSpec::new(Format::Kafka);
        assert_eq!(
            refusal(
                kafka.clone(),
                Side::Value,
                vec![("V0", SqlType::Integer), ("V1", SqlType::String)]
            ),
            "The 'KAFKA' format only supports a single field. Got: [`V0` INTEGER, `V1` STRING]"
        );
        let message = refusal(
            kafka.clone(),
            Side::Key,
            vec![(
                "K",
                SqlType::Decimal {
                    precision: 21,
                    scale: 19,
                },
            )],
        );
        assert_eq!(
            message,
            "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`K` DECIMAL(21, 19) KEY], features=[]}\nreason: The 'KAFKA' format does not support type 'DECIMAL'"
        );
        assert!(refusal(kafka, Side::Value, vec![("B", SqlType::Boolean)])
            .contains("The 'KAFKA' format does not support type 'BOOLEAN'"));
        let message = refusal(
            FormatSpec::new(Format::Delimited),
            Side::Key,
            vec![("K", SqlType::Array(Box::new(SqlType::Double)))],
        );
        assert!(
            message.ends_with(
                "reason: The 'DELIMITED' format does not support type 'ARRAY', column: `K`"
            ),
            "{message}"
        );
        let map = SqlType::Map(Box::new(SqlType::Integer), Box::new(SqlType::Double));
        assert!(refusal(
            FormatSpec::new(Format::Json),
            Side::Key,
            vec![("K", map.clone())]
        )
        .starts_with("Map keys, including types that contain maps, are not supported"));
        assert_eq!(
            refusal(
                FormatSpec::new(Format::Json),
                Side::Value,
                vec![("M", map.clone())]
            ),
            "JSON only supports MAP types with STRING keys"
        );
        assert_eq!(
            refusal(FormatSpec::new(Format::Avro), Side::Value, vec![("M", map)]),
            "Avro only supports MAPs with STRING keys"
        );
        assert_eq!(
            refusal(
                FormatSpec::new(Format::Avro),
                Side::Value,
                vec![("1Avro", SqlType::Double)]
            ),
            "Schema is not compatible with Avro: Illegal initial character: 1Avro"
        );
        assert_eq!(
            refusal(
                FormatSpec::new(Format::None),
                Side::Key,
                vec![("K", SqlType::String)]
            ),
            "The 'NONE' format can only be used when no columns are defined. Got: [`K` STRING KEY]"
        );
        let mut wrapped = FormatSpec::new(Format::Kafka);
        wrapped.wrap_single_value = Some(true);
        assert_eq!(
            refusal(wrapped, Side::Value, vec![("F", SqlType::Integer)]),
            "Format 'KAFKA' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        );
        let mut unwrapped = FormatSpec::new(Format::Json);
        unwrapped.wrap_single_value = Some(false);
        assert_eq!(
            refusal(
                unwrapped,
                Side::Value,
                vec![("A", SqlType::Integer), ("B", SqlType::Integer)]
            ),
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas"
        );
        assert!(refusal(
            FormatSpec::new(Format::Protobuf),
            Side::Value,
            vec![("A", SqlType::Integer)]
        )
        .starts_with("unsupported format: PROTOBUF"));
        let mut named = FormatSpec::new(Format::Avro);
        named.full_schema_name = Some(" ".into());
        assert_eq!(
            refusal(named, Side::Value, vec![("A", SqlType::Integer)]),
            "fullSchemaName cannot be empty. Format configuration: {fullSchemaName=}"
        );
    }

    #[test]
    fn avro_key_records_are_named_after_the_source() {
        assert_eq!(
            key_schema_name("OUTPUT"),
            "io.confluent.ksql.avro_schemas.OutputKey"
        );
        let mut spec = FormatSpec::new(Format::Avro);
        spec.full_schema_name = Some(key_schema_name("OUTPUT"));
        let registry = Arc::new(MemoryRegistry::new());
        let context = SerdeContext {
            topic: "OUTPUT".into(),
            side: Side::Key,
            columns: vec![(
                "K".into(),
                SqlType::Struct(vec![("F1".into(), SqlType::String)]),
            )],
            registry: Some(registry.clone()),
        };
        RecordSerde::new(&spec, context).unwrap();
        let (_, schema) = registry.latest("OUTPUT-key").unwrap().unwrap();
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(
            schema,
            json!({"type": "record", "name": "OutputKey", "namespace": "io.confluent.ksql.avro_schemas",
                   "fields": [{"name": "F1", "type": ["null", "string"], "default": null}],
                   "connect.name": "io.confluent.ksql.avro_schemas.OutputKey"})
        );
    }

    #[test]
    fn serdes_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<RecordSerde>();
        shared::<MemoryRegistry>();
    }

    #[test]
    fn delimiters_and_schema_ids_are_checked() {
        assert_eq!(parse_delimiter("VALUE_DELIMITER", "|"), Ok('|'));
        assert_eq!(parse_delimiter("VALUE_DELIMITER", "tab"), Ok('\t'));
        assert_eq!(parse_delimiter("VALUE_DELIMITER", "SPACE"), Ok(' '));
        assert_eq!(
            parse_delimiter("VALUE_DELIMITER", "<~>").unwrap_err().0,
            "Failed to prepare statement: Configuration VALUE_DELIMITER is invalid: Invalid delimiter value: '<~>'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'"
        );
        assert!(parse_delimiter("VALUE_DELIMITER", "\t")
            .unwrap_err()
            .0
            .contains("Delimiter cannot be empty"));
        let mut spec = FormatSpec::new(Format::Kafka);
        spec.schema_id = Some(1);
        assert_eq!(
            refusal(spec, Side::Value, vec![("V", SqlType::Integer)]),
            "VALUE_FORMAT should support schema inference when VALUE_SCHEMA_ID is provided. Current format is KAFKA."
        );
    }

    #[test]
    fn json_values_read_case_insensitively_and_write_column_names() {
        let serde = serde(
            Format::Json,
            Side::Value,
            vec![
                ("ID", SqlType::BigInt),
                ("Name", SqlType::String),
                ("V", SqlType::Double),
            ],
        );
        let row = serde
            .deserialize(Some(br#"{"id": "7", "Name": 3, "extra": 1}"#))
            .unwrap()
            .unwrap();
        assert_eq!(
            row,
            vec![Value::BigInt(7), Value::String("3".into()), Value::Null]
        );
        assert_eq!(serde.deserialize(Some(b"null")).unwrap(), None);
        assert_eq!(serde.deserialize(None).unwrap(), None);
        let bytes = serde
            .serialize(&[Value::BigInt(1), Value::Null, Value::Double(0.5)])
            .unwrap()
            .unwrap();
        assert_eq!(bytes, br#"{"ID":1,"Name":null,"V":0.5}"#);
        let error = serde.deserialize(Some(br#"{"ID": true}"#)).unwrap_err().0;
        assert_eq!(
            error,
            "Failed to deserialize value from topic: t. Can't convert type. sourceType: BooleanNode, requiredType: BIGINT, path: $.ID"
        );
        assert!(serde
            .deserialize(Some(b"{oops"))
            .unwrap_err()
            .0
            .starts_with("Failed to deserialize value from topic: t. Invalid JSON"));
    }

    #[test]
    fn single_keys_and_unwrapped_values_are_bare() {
        let key = serde(Format::Json, Side::Key, vec![("K", SqlType::Integer)]);
        assert_eq!(
            key.deserialize(Some(b"33")).unwrap(),
            Some(vec![Value::Integer(33)])
        );
        assert_eq!(
            key.serialize(&[Value::Integer(33)]).unwrap(),
            Some(b"33".to_vec())
        );
        let keys = serde(
            Format::Json,
            Side::Key,
            vec![("K1", SqlType::String), ("K2", SqlType::String)],
        );
        assert_eq!(
            keys.serialize(&[Value::String("foo".into()), Value::String("bar".into())])
                .unwrap(),
            Some(br#"{"K1":"foo","K2":"bar"}"#.to_vec())
        );
        let mut spec = FormatSpec::new(Format::Json);
        spec.wrap_single_value = Some(false);
        let value = RecordSerde::new(
            &spec,
            context(
                Side::Value,
                vec![("V", SqlType::Array(Box::new(SqlType::String)))],
            ),
        )
        .unwrap();
        assert_eq!(
            value.deserialize(Some(b"[1, \"b\", null]")).unwrap(),
            Some(vec![Value::Array(vec![
                Value::String("1".into()),
                Value::String("b".into()),
                Value::Null
            ])])
        );
        assert_eq!(value.serialize(&[Value::Null]).unwrap(), None);
        let empty = serde(Format::Kafka, Side::Key, vec![]);
        assert_eq!(empty.deserialize(Some(b"anything")).unwrap(), Some(vec![]));
        assert_eq!(empty.serialize(&[]).unwrap(), None);
        for (format, bytes) in [
            (Format::Json, b"{}".to_vec()),
            (Format::Delimited, Vec::new()),
        ] {
            let no_value_columns = serde(format, Side::Value, vec![]);
            assert_eq!(
                no_value_columns.serialize(&[]).unwrap(),
                Some(bytes.clone())
            );
            assert_eq!(
                no_value_columns.deserialize(Some(&bytes)).unwrap(),
                Some(vec![])
            );
        }
        let avro = serde(Format::Avro, Side::Value, vec![]);
        let bytes = avro.serialize(&[]).unwrap().unwrap();
        assert_eq!(avro.deserialize(Some(&bytes)).unwrap(), Some(vec![]));
    }

    #[test]
    fn delimited_and_kafka_sides() {
        let mut spec = FormatSpec::new(Format::Delimited);
        spec.delimiter = '|';
        let serde = RecordSerde::new(
            &spec,
            context(
                Side::Value,
                vec![
                    ("ID", SqlType::BigInt),
                    ("NAME", SqlType::String),
                    ("VALUE", SqlType::Integer),
                ],
            ),
        )
        .unwrap();
        let row = serde.deserialize(Some(b"0|zero|")).unwrap().unwrap();
        assert_eq!(
            row,
            vec![Value::BigInt(0), Value::String("zero".into()), Value::Null]
        );
        assert_eq!(serde.serialize(&row).unwrap(), Some(b"0|zero|".to_vec()));
        let error = serde.deserialize(Some(b"1|2")).unwrap_err().0;
        assert_eq!(error, "Failed to deserialize value from topic: t. Column count mismatch on deserialization. expected: 3, got: 2");
        let kafka = serde_for_kafka();
        assert_eq!(
            kafka.deserialize(Some(&[0, 0, 0, 0, 0, 0, 0, 9])).unwrap(),
            Some(vec![Value::BigInt(9)])
        );
        assert!(kafka
            .deserialize(Some(&[1]))
            .unwrap_err()
            .0
            .contains("LongDeserializer"));
    }

    fn serde_for_kafka() -> RecordSerde {
        serde(Format::Kafka, Side::Key, vec![("K", SqlType::BigInt)])
    }

    #[test]
    fn avro_round_trips_through_the_registry_in_wire_format() {
        let registry = Arc::new(MemoryRegistry::new());
        let columns = vec![
            ("ID".to_string(), SqlType::BigInt),
            (
                "DEC".to_string(),
                SqlType::Decimal {
                    precision: 6,
                    scale: 4,
                },
            ),
            (
                "S".to_string(),
                SqlType::Struct(vec![("F1".into(), SqlType::String)]),
            ),
            ("A".to_string(), SqlType::Array(Box::new(SqlType::Integer))),
            (
                "M".to_string(),
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
            ),
            ("D".to_string(), SqlType::Date),
            ("TS".to_string(), SqlType::Timestamp),
        ];
        let context = SerdeContext {
            topic: "orders".into(),
            side: Side::Value,
            columns: columns.clone(),
            registry: Some(registry.clone()),
        };
        let serde = RecordSerde::new(&FormatSpec::new(Format::Avro), context.clone()).unwrap();
        assert_eq!(serde.subject(), Some("orders-value"));
        let row = vec![
            Value::BigInt(1),
            Value::Decimal {
                unscaled: 100000,
                scale: 4,
            },
            Value::Struct(vec![Value::String("x".into())]),
            Value::Array(vec![Value::Integer(1), Value::Null]),
            Value::Map(vec![(Value::String("a".into()), Value::Double(1.5))]),
            Value::Date(-10),
            Value::Null,
        ];
        let bytes = serde.serialize(&row).unwrap().unwrap();
        assert_eq!(bytes[0], 0);
        let (id, schema) = registry.latest("orders-value").unwrap().unwrap();
        assert_eq!(
            i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
            id
        );
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(schema["name"], "KsqlDataSourceSchema");
        assert_eq!(schema["namespace"], "io.confluent.ksql.avro_schemas");
        assert_eq!(
            schema["fields"][0],
            json!({"name": "ID", "type": ["null", "long"], "default": null})
        );
        assert_eq!(schema["fields"][1]["type"][1]["logicalType"], "decimal");
        assert_eq!(
            schema["fields"][2]["type"][1]["name"],
            "KsqlDataSourceSchema_S"
        );
        assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), Some(row));
        assert_eq!(
            decode_test_value(&FormatSpec::new(Format::Avro), &context, Some(&bytes)).unwrap(),
            json!({"ID": 1, "DEC": 10.0, "S": {"F1": "x"}, "A": [1, null], "M": {"a": 1.5}, "D": -10, "TS": null})
        );
    }

    #[test]
    fn avro_reads_other_writer_schemas_with_ksqldb_coercions() {
        let registry = Arc::new(MemoryRegistry::new());
        let declared = json!({"type": "record", "name": "blah", "fields": [
            {"name": "c1", "type": "int"},
            {"name": "c2", "type": {"type": "enum", "name": "Suit", "symbols": ["SPADES", "HEARTS"]}},
            {"name": "c3", "type": "long"}
        ]});
        let columns = vec![
            ("C1".to_string(), SqlType::BigInt),
            ("C2".to_string(), SqlType::String),
            ("C3".to_string(), SqlType::Integer),
        ];
        let context = SerdeContext {
            topic: "in".into(),
            side: Side::Value,
            columns,
            registry: Some(registry),
        };
        let spec = FormatSpec::new(Format::Avro);
        let bytes = encode_test_value_with_schema(
            &spec,
            &context,
            &json!({"c1": 5, "c2": "HEARTS", "c3": 1}),
            Some(&declared),
        )
        .unwrap()
        .unwrap();
        let serde = RecordSerde::new(&spec, context.clone()).unwrap();
        let error = serde.deserialize(Some(&bytes)).unwrap_err().0;
        assert_eq!(error, "Failed to deserialize value from topic: in. Cannot deserialize type int64 as type int32 for field C3");
        let mut context = context;
        context.columns[2].1 = SqlType::BigInt;
        let serde = RecordSerde::new(&spec, context.clone()).unwrap();
        assert_eq!(
            serde.deserialize(Some(&bytes)).unwrap(),
            Some(vec![
                Value::BigInt(5),
                Value::String("HEARTS".into()),
                Value::BigInt(1)
            ])
        );
        assert_eq!(
            infer_columns(&declared.to_string(), Side::Value, true).unwrap(),
            vec![
                ("C1".into(), SqlType::Integer),
                ("C2".into(), SqlType::String),
                ("C3".into(), SqlType::BigInt)
            ]
        );
        let kept = infer_columns_named(&declared.to_string(), Side::Value, true, false).unwrap();
        assert_eq!(kept[0], ("c1".into(), SqlType::Integer));
        assert_eq!(
            infer_columns("\"int\"", Side::Key, false).unwrap(),
            vec![("ROWKEY".into(), SqlType::Integer)]
        );
    }

    #[test]
    fn avro_unwrapped_single_values_and_schema_ids() {
        let registry = Arc::new(MemoryRegistry::new());
        registry
            .register_with_id("out-value", "\"string\"", 102)
            .unwrap();
        let mut spec = FormatSpec::new(Format::Avro);
        spec.wrap_single_value = Some(false);
        spec.schema_id = Some(102);
        let context = SerdeContext {
            topic: "out".into(),
            side: Side::Value,
            columns: vec![("FOO".into(), SqlType::String)],
            registry: Some(registry),
        };
        let serde = RecordSerde::new(&spec, context.clone()).unwrap();
        let bytes = serde
            .serialize(&[Value::String("bar".into())])
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 102]);
        assert_eq!(&bytes[5..], &[6, b'b', b'a', b'r']);
        assert_eq!(serde.serialize(&[Value::Null]).unwrap(), None);
        assert_eq!(
            decode_test_value(&spec, &context, Some(&bytes)).unwrap(),
            json!("bar")
        );
        assert!(serde
            .deserialize(Some(b"not avro"))
            .unwrap_err()
            .0
            .contains("Unknown magic byte"));
    }

    #[test]
    fn test_data_follows_the_harness() {
        let kafka_int = context(Side::Key, vec![("K", SqlType::Integer)]);
        let spec = FormatSpec::new(Format::Kafka);
        let bytes = encode_test_value(&spec, &kafka_int, &json!(1)).unwrap();
        assert_eq!(bytes, Some(vec![0, 0, 0, 1]));
        assert_eq!(
            decode_test_value(&spec, &kafka_int, bytes.as_deref()).unwrap(),
            json!(1)
        );
        let kafka_bytes = context(Side::Value, vec![("B", SqlType::Bytes)]);
        let bytes = encode_test_value(&spec, &kafka_bytes, &json!("dmFy")).unwrap();
        assert_eq!(bytes, Some(b"var".to_vec()));
        assert_eq!(
            decode_test_value(&spec, &kafka_bytes, bytes.as_deref()).unwrap(),
            json!("dmFy")
        );
        let delimited = FormatSpec::new(Format::Delimited);
        assert_eq!(
            encode_test_value(&delimited, &kafka_int, &json!("a,b")).unwrap(),
            Some(b"a,b".to_vec())
        );
        assert_eq!(
            encode_test_value(&delimited, &kafka_int, &json!(null)).unwrap(),
            None
        );
        assert!(test_values_match(
            &json!({"A": 1, "B": [10.0]}),
            &json!({"B": [10], "A": 1.0})
        ));
        assert!(test_values_match(
            &json!({"RESULT": "15.11"}),
            &json!({"RESULT": 15.11})
        ));
        assert!(!test_values_match(
            &json!({"A": 1}),
            &json!({"A": 1, "B": null})
        ));
        assert!(!test_values_match(&json!("1"), &json!("1.0")));
    }
}
