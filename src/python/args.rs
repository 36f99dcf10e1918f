//! Python arguments converted once into the core's typed options: start and stop positions,
//! the error policy, read formats with their schemas, registries, librdkafka properties.
//! Every wrapper takes these types, so each argument is checked (and its error worded) in
//! one place.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use super::arrow::schema_from_py;
use super::errors::{format_error, ConfigError};
use crate::formats::registry::RegistryConfig;
use crate::formats::{parse_column_declarations, parse_dates as parse_dates_in};
use crate::kafka::consumer::{AvroWriter, OnError, ReadFormat, StartAt, StopAt};

/// `start=`: "earliest", "latest", `{partition: offset}`, or a datetime/date.
pub struct StartArg(pub StartAt);

impl<'a, 'py> FromPyObject<'a, 'py> for StartArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let invalid = || {
            ConfigError::new_err(format!(
                "start must be 'earliest', 'latest', a dict of partition -> offset, or a datetime, got {}",
                repr(&obj)
            ))
        };
        if let Ok(text) = obj.extract::<String>() {
            return match text.as_str() {
                "earliest" => Ok(StartArg(StartAt::Earliest)),
                "latest" => Ok(StartArg(StartAt::Latest)),
                _ => Err(invalid()),
            };
        }
        if let Some(ms) = epoch_ms(&obj)? {
            return Ok(StartArg(StartAt::Time(ms)));
        }
        if let Ok(mapping) = obj.cast::<PyMapping>() {
            let mut offsets = HashMap::new();
            for item in mapping.items()?.iter() {
                let (partition, offset): (i32, i64) = item.extract().map_err(|_| invalid())?;
                offsets.insert(partition, offset);
            }
            return Ok(StartArg(StartAt::Offsets(offsets)));
        }
        Err(invalid())
    }
}

/// `stop=`: None (follow until closed), "end" (the end offsets taken at start), a datetime.
pub struct StopArg(pub StopAt);

impl<'a, 'py> FromPyObject<'a, 'py> for StopArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(StopArg(StopAt::Never));
        }
        if obj.extract::<String>().is_ok_and(|text| text == "end") {
            return Ok(StopArg(StopAt::End));
        }
        if let Some(ms) = epoch_ms(&obj)? {
            return Ok(StopArg(StopAt::Time(ms)));
        }
        Err(ConfigError::new_err(format!(
            "stop must be None, 'end' or a datetime, got {}",
            repr(&obj)
        )))
    }
}

/// `on_error=`: "raise" or "skip".
pub struct OnErrorArg(pub OnError);

impl<'a, 'py> FromPyObject<'a, 'py> for OnErrorArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<String>().as_deref() {
            Ok("raise") => Ok(OnErrorArg(OnError::Raise)),
            Ok("skip") => Ok(OnErrorArg(OnError::Skip)),
            _ => Err(ConfigError::new_err(format!(
                "on_error must be 'raise' or 'skip', got {}",
                repr(&obj)
            ))),
        }
    }
}

/// A field delimiter: one ASCII character.
pub struct DelimiterArg(pub u8);

impl<'a, 'py> FromPyObject<'a, 'py> for DelimiterArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let text: String = obj.extract().map_err(|_| {
            ConfigError::new_err(format!("delimiter must be a string, got {}", repr(&obj)))
        })?;
        match text.as_bytes() {
            [byte] => Ok(DelimiterArg(*byte)),
            _ => Err(ConfigError::new_err(format!(
                "delimiter must be one ASCII character, got {text:?}"
            ))),
        }
    }
}

/// `config=`: librdkafka properties; values become strings, booleans "true"/"false" as
/// confluent-kafka writes them. Sorted, so the same config is always passed the same way.
#[derive(Default)]
pub struct ConfigArg(pub Vec<(String, String)>);

impl<'a, 'py> FromPyObject<'a, 'py> for ConfigArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(ConfigArg::default());
        }
        let mapping = obj
            .cast::<PyMapping>()
            .map_err(|_| ConfigError::new_err("config must be a dict of librdkafka properties"))?;
        let mut pairs = Vec::new();
        for item in mapping.items()?.iter() {
            let (key, value): (String, Bound<'py, PyAny>) = item.extract()?;
            let text = match value.extract::<bool>() {
                Ok(flag) => flag.to_string(),
                Err(_) => value.str()?.to_string(),
            };
            pairs.push((key, text));
        }
        pairs.sort();
        Ok(ConfigArg(pairs))
    }
}

/// Seconds as a `Duration` (at least a millisecond, so that zero does not mean "forever").
pub fn seconds_argument(seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ConfigError::new_err(format!(
            "a timeout must be a non-negative number of seconds, got {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds.max(0.001)))
}

/// The read format, from the `format=` name and the arguments that belong to it.
pub fn read_format(
    format: &str,
    schema: Option<&Bound<'_, PyAny>>,
    registry: Option<&Bound<'_, PyAny>>,
    delimiter: u8,
    parse_dates: Vec<String>,
    timeout: Duration,
) -> PyResult<ReadFormat> {
    if !parse_dates.is_empty() && !matches!(format, "json" | "csv" | "delimited") {
        return Err(ConfigError::new_err(format!(
            "parse_dates= reads JSON or CSV text as timestamps; format {format:?} carries its \
             own types (declare timestamp columns in the schema instead)"
        )));
    }
    Ok(match format {
        "json" => ReadFormat::json_parsing_dates(schema_argument(schema)?, parse_dates)
            .map_err(format_error)?,
        "csv" | "delimited" => {
            let schema = schema_argument(schema)?.ok_or_else(|| {
                ConfigError::new_err(
                    "format 'csv' needs schema= (a pyarrow.Schema or KSQL column declarations)",
                )
            })?;
            let schema = if parse_dates.is_empty() {
                schema
            } else {
                Arc::new(parse_dates_in(&schema, &parse_dates).map_err(format_error)?)
            };
            ReadFormat::Csv { schema, delimiter }
        }
        "avro" => {
            let (writer_text, reader) = match schema.filter(|s| !s.is_none()) {
                Some(schema) => match avro_schema_text(schema)? {
                    Some(text) => (Some(text), None),
                    None => (None, schema_argument(Some(schema))?),
                },
                None => (None, None),
            };
            let writer =
                match (writer_text, registry_argument(registry, timeout)?) {
                    (Some(text), _) => AvroWriter::Schema(text),
                    (None, Some(registry)) => AvroWriter::Registry(registry),
                    (None, None) => return Err(ConfigError::new_err(
                        "format 'avro' needs schema_registry= (Confluent wire format) or an Avro \
                         schema as schema= (bare datums)",
                    )),
                };
            ReadFormat::Avro { writer, reader }
        }
        "raw" => ReadFormat::Raw,
        other => {
            return Err(ConfigError::new_err(format!(
                "unknown format {other:?}: use 'json', 'csv' (or 'delimited'), 'avro' or 'raw'"
            )))
        }
    })
}

/// An Avro schema given as a dict, or as JSON text, as its JSON text; `None` for anything
/// else (KSQL declarations, a pyarrow schema).
fn avro_schema_text(schema: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if schema.cast::<PyDict>().is_ok() {
        let json = schema.py().import("json")?;
        return Ok(Some(json.call_method1("dumps", (schema,))?.extract()?));
    }
    if let Ok(text) = schema.extract::<String>() {
        if text.trim_start().starts_with(['{', '[']) {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// Turns a `schema=` argument into an Arrow schema: a pyarrow schema, or KSQL declarations.
pub fn schema_argument(
    schema: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<arrow_schema::SchemaRef>> {
    let Some(schema) = schema.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    if schema.hasattr("__arrow_c_schema__")? {
        return schema_from_py(schema).map(Some);
    }
    let declarations: Vec<String> = if let Ok(text) = schema.extract::<String>() {
        vec![text]
    } else {
        schema.extract::<Vec<String>>().map_err(|_| {
            ConfigError::new_err(
                "schema must be a pyarrow.Schema, a string of KSQL column declarations, or a list of them",
            )
        })?
    };
    Ok(Some(Arc::new(
        parse_column_declarations(&declarations).map_err(format_error)?,
    )))
}

/// A `schema_registry=` argument: a URL, `{"url": ..., "basic.auth.user.info": ...}`, or an
/// object with a `.url` (a `LocalSchemaRegistry`).
pub fn registry_argument(
    registry: Option<&Bound<'_, PyAny>>,
    timeout: Duration,
) -> PyResult<Option<RegistryConfig>> {
    let Some(registry) = registry.filter(|r| !r.is_none()) else {
        return Ok(None);
    };
    if let Ok(url) = registry.extract::<String>() {
        return Ok(Some(RegistryConfig {
            url,
            basic_auth: None,
            timeout,
        }));
    }
    // A kafkaml.LocalSchemaRegistry (or anything else with a string `.url`).
    if let Ok(url) = registry
        .getattr("url")
        .and_then(|url| url.extract::<String>())
    {
        return Ok(Some(RegistryConfig {
            url,
            basic_auth: None,
            timeout,
        }));
    }
    let dict = registry.cast::<PyDict>().map_err(|_| {
        ConfigError::new_err(
            "schema_registry must be a URL, a dict with 'url' or a LocalSchemaRegistry",
        )
    })?;
    let url: String = dict
        .get_item("url")?
        .ok_or_else(|| ConfigError::new_err("schema_registry dict needs 'url'"))?
        .extract()?;
    let basic_auth = dict
        .get_item("basic.auth.user.info")?
        .map(|v| v.extract())
        .transpose()?;
    Ok(Some(RegistryConfig {
        url,
        basic_auth,
        timeout,
    }))
}

/// Calls Python's signal handlers; true when one raised (Ctrl-C), keeping its error.
pub fn interrupt_check(pending: &mut Option<PyErr>) -> impl FnMut() -> bool + '_ {
    move || {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(err) => {
                *pending = Some(err);
                true
            }
        })
    }
}

/// Milliseconds since the epoch of a datetime (a naive one is local time, as Python takes
/// it) or a date (its local midnight); `None` for anything else.
fn epoch_ms(obj: &Borrowed<'_, '_, PyAny>) -> PyResult<Option<i64>> {
    let datetime = obj.py().import("datetime")?;
    let moment = if obj.is_instance(&datetime.getattr("datetime")?)? {
        (**obj).clone()
    } else if obj.is_instance(&datetime.getattr("date")?)? {
        let midnight = datetime.getattr("time")?.call0()?;
        datetime
            .getattr("datetime")?
            .call_method1("combine", ((**obj).clone(), midnight))?
    } else {
        return Ok(None);
    };
    let seconds: f64 = moment.call_method0("timestamp")?.extract()?;
    Ok(Some((seconds * 1000.0) as i64))
}

fn repr(obj: &Borrowed<'_, '_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into())
}
