//! ksqlDB's serialisation formats: a record's key or value bytes to a row of values and back,
//! with ksqlDB's rules for each format (DELIMITED quoting, JSON's case-insensitive field names
//! and number coercions, KAFKA's big-endian primitives, AVRO through a Schema Registry).
//!
//! A `RecordSerde` is made per source or sink side (key or value) when a statement is planned:
//! making it checks that the columns suit the format (the statement error ksqlDB gives), and
//! every record then goes through `deserialize` / `serialize`. A failure on one record is a
//! processing error (the record is skipped and counted, as ksqlDB does), never a panic.

use std::sync::Arc;

use crate::types::SqlType;

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
