//! What a consumer reads and how: the typed options a Rust caller builds (or the Python
//! bindings convert once), so that an invalid combination cannot be expressed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;

use crate::formats::registry::RegistryConfig;
use crate::formats::{parse_dates as parse_dates_in, FormatError};

/// How message values are decoded: the read side's mirror of `formats::encode::ValueFormat`.
#[derive(Debug, Clone)]
pub enum ReadFormat {
    /// One JSON object per message; the schema is inferred from the first messages when
    /// absent. `parse_dates` names text columns read as timestamps (pandas' `parse_dates`,
    /// see [`crate::formats::parse_dates`]), of the declared or the inferred schema.
    Json {
        schema: Option<SchemaRef>,
        parse_dates: Vec<String>,
    },
    /// One delimited line per message (the talk's DELIMITED), without a header.
    Csv { schema: SchemaRef, delimiter: u8 },
    /// Avro datums, decoded with the writer's schema; `reader` picks and orders columns.
    Avro {
        writer: AvroWriter,
        reader: Option<SchemaRef>,
    },
    /// Keys and values as bytes.
    Raw,
}

/// Where an Avro reader gets the writer's schema.
#[derive(Debug, Clone)]
pub enum AvroWriter {
    /// Bare datums written with this schema (its JSON text).
    Schema(String),
    /// The Confluent wire format: the schema id in each message, looked up in the registry.
    Registry(RegistryConfig),
}

impl ReadFormat {
    /// JSON with the schema inferred from the first messages.
    pub fn json() -> Self {
        ReadFormat::Json {
            schema: None,
            parse_dates: Vec::new(),
        }
    }

    /// JSON with `schema` (inferred when `None`) and the `parse_dates` columns read as
    /// timestamps. A declared schema gets them at once, so [`ConsumerOptions::declared_schema`]
    /// is what the reader decodes with; a column that is not text, or not in the schema, is
    /// refused here.
    pub fn json_parsing_dates(
        schema: Option<SchemaRef>,
        parse_dates: Vec<String>,
    ) -> Result<Self, FormatError> {
        let schema = match schema {
            Some(schema) if !parse_dates.is_empty() => {
                Some(Arc::new(parse_dates_in(&schema, &parse_dates)?))
            }
            other => other,
        };
        Ok(ReadFormat::Json {
            schema,
            parse_dates,
        })
    }

    /// The format's name as the Python API spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ReadFormat::Json { .. } => "json",
            ReadFormat::Csv { .. } => "csv",
            ReadFormat::Avro { .. } => "avro",
            ReadFormat::Raw => "raw",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// Explicit offsets per partition (of every subscribed topic).
    Offsets(HashMap<i32, i64>),
    /// The first message at or after this time (ms since the epoch), per partition.
    Time(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAt {
    /// Follow the topics until closed.
    Never,
    /// The high watermarks taken at start: a bounded, repeatable snapshot.
    End,
    /// Messages before this time (ms since the epoch).
    Time(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Raise,
    Skip,
}

/// Everything a consumer needs. [`ConsumerOptions::new`] fills in the defaults the Python
/// `Consumer` has; change the fields that differ.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub bootstrap: String,
    pub topics: Vec<String>,
    pub format: ReadFormat,
    pub group_id: Option<String>,
    pub start: StartAt,
    pub stop: StopAt,
    pub batch_size: usize,
    pub max_wait: Duration,
    pub on_error: OnError,
    pub include_metadata: bool,
    /// Read partitions one after another in (topic, partition) order, for a deterministic
    /// row order without sorting (only without a group, which assigns partitions itself).
    pub ordered: bool,
    /// librdkafka properties, passed through unchanged (they win over kafkaml's defaults).
    pub config: Vec<(String, String)>,
    /// For metadata, watermarks and commits: how long before the broker counts as unreachable.
    pub timeout: Duration,
}

impl ConsumerOptions {
    /// A reader of `topics` from the earliest offsets, following them until closed, without a
    /// group: batches of up to 10,000 messages or 500 ms, bad messages raise.
    pub fn new(
        bootstrap: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
        format: ReadFormat,
    ) -> Self {
        ConsumerOptions {
            bootstrap: bootstrap.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            format,
            group_id: None,
            start: StartAt::Earliest,
            stop: StopAt::Never,
            batch_size: 10_000,
            max_wait: Duration::from_millis(500),
            on_error: OnError::Raise,
            include_metadata: false,
            ordered: false,
            config: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The schema the values are decoded with, when it is known before reading.
    pub fn declared_schema(&self) -> Option<&SchemaRef> {
        match &self.format {
            ReadFormat::Json { schema, .. } => schema.as_ref(),
            ReadFormat::Csv { schema, .. } => Some(schema),
            ReadFormat::Avro { reader, .. } => reader.as_ref(),
            ReadFormat::Raw => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn new_has_the_python_defaults() {
        let options = ConsumerOptions::new("b:9092", ["t"], ReadFormat::Raw);
        assert_eq!(options.topics, vec!["t".to_string()]);
        assert_eq!(options.batch_size, 10_000);
        assert_eq!(options.max_wait, Duration::from_millis(500));
        assert_eq!(options.start, StartAt::Earliest);
        assert_eq!(options.stop, StopAt::Never);
        assert_eq!(options.on_error, OnError::Raise);
        assert!(options.group_id.is_none() && !options.include_metadata && !options.ordered);
    }

    #[test]
    fn the_declared_schema_comes_from_the_format() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
        let csv = ReadFormat::Csv {
            schema: schema.clone(),
            delimiter: b';',
        };
        assert_eq!(csv.name(), "csv");
        let options = ConsumerOptions::new("b:9092", ["t"], csv);
        assert_eq!(options.declared_schema(), Some(&schema));
        let json = ConsumerOptions::new("b:9092", ["t"], ReadFormat::json());
        assert!(json.declared_schema().is_none());
    }
}
