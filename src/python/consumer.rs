//! `_native.ArrowConsumer`: the core consumer behind `kafkaml.Consumer`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::arrow::{batch_to_py, schema_from_py, schema_to_py};
use super::errors::{format_error, kafka_error, matrix_error, ConfigError};
use super::matrix::{element_type, matrix_to_py, ElementType};
use crate::formats::registry::RegistryConfig;
use crate::formats::{parse_column_declarations, Format};
use crate::kafka::consumer::{ArrowConsumer, ConsumerOptions, OnError, StartAt, StopAt};
use crate::kafka::KafkaError as CoreKafkaError;
use crate::matrix::{MatrixElement, MatrixRows};

/// A skipped message as Python sees it: (topic, partition, offset, reason).
type FailureAt = (String, i32, i64, String);

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
            ConfigError::new_err("schema must be a pyarrow.Schema, a string of KSQL column declarations, or a list of them")
        })?
    };
    Ok(Some(Arc::new(
        parse_column_declarations(&declarations).map_err(format_error)?,
    )))
}

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
    let dict = registry
        .cast::<PyDict>()
        .map_err(|_| ConfigError::new_err("schema_registry must be a URL or a dict with 'url'"))?;
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

pub fn config_argument(
    config: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in config.unwrap_or_default() {
        // librdkafka takes strings; booleans as "true"/"false" like confluent-kafka does.
        let text = if let Ok(b) = value.extract::<bool>() {
            b.to_string()
        } else {
            value.str()?.to_string()
        };
        pairs.push((key, text));
    }
    pairs.sort();
    Ok(pairs)
}

pub fn delimiter_argument(delimiter: &str) -> PyResult<u8> {
    match delimiter.as_bytes() {
        [b] => Ok(*b),
        _ => Err(ConfigError::new_err(format!(
            "delimiter must be one ASCII character, got {delimiter:?}"
        ))),
    }
}

pub fn on_error_argument(on_error: &str) -> PyResult<OnError> {
    match on_error {
        "raise" => Ok(OnError::Raise),
        "skip" => Ok(OnError::Skip),
        other => Err(ConfigError::new_err(format!(
            "on_error must be 'raise' or 'skip', got {other:?}"
        ))),
    }
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

#[pyclass(module = "kafkaml._native", name = "ArrowConsumer")]
pub struct PyConsumer {
    inner: Option<ArrowConsumer>,
}

impl PyConsumer {
    fn read_rows<T: MatrixElement + numpy::Element>(
        &mut self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        fill: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let consumer = self.inner.as_mut().ok_or_else(closed)?;
        let expected_rows = consumer.snapshot_size().unwrap_or(0).max(0) as usize;
        let mut rows = MatrixRows::<T>::new(columns, fill, expected_rows);
        let mut pending = None;
        let result = py.detach(|| {
            let mut interrupt = interrupt_check(&mut pending);
            while consumer.next_rows(&mut interrupt, &mut rows)? {}
            Ok::<(), CoreKafkaError>(())
        });
        if let Some(err) = pending {
            return Err(err);
        }
        result.map_err(|e| kafka_error(py, e))?;
        let schema = consumer.schema();
        self.emit_warnings(py)?;
        let (values, rows, width) = rows.finish(schema.as_ref()).map_err(matrix_error)?;
        Ok(matrix_to_py(py, values, rows, width))
    }
}

#[pymethods]
impl PyConsumer {
    #[new]
    #[pyo3(signature = (bootstrap, topics, format, *, schema=None, avro_schema=None, schema_registry=None,
        group_id=None, start_kind="earliest", start_offsets=None, start_time_ms=None, stop_kind="never",
        stop_time_ms=None, batch_size=10_000, max_wait_ms=500, on_error="raise", include_metadata=false,
        delimiter=",", ordered=false, config=None, timeout_s=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        topics: Vec<String>,
        format: &str,
        schema: Option<&Bound<'_, PyAny>>,
        avro_schema: Option<String>,
        schema_registry: Option<&Bound<'_, PyAny>>,
        group_id: Option<String>,
        start_kind: &str,
        start_offsets: Option<HashMap<i32, i64>>,
        start_time_ms: Option<i64>,
        stop_kind: &str,
        stop_time_ms: Option<i64>,
        batch_size: usize,
        max_wait_ms: u64,
        on_error: &str,
        include_metadata: bool,
        delimiter: &str,
        ordered: bool,
        config: Option<HashMap<String, Bound<'_, PyAny>>>,
        timeout_s: f64,
    ) -> PyResult<Self> {
        let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
        let start = match (start_kind, start_offsets, start_time_ms) {
            ("earliest", _, _) => StartAt::Earliest,
            ("latest", _, _) => StartAt::Latest,
            ("offsets", Some(offsets), _) => StartAt::Offsets(offsets),
            ("time", _, Some(ms)) => StartAt::Time(ms),
            (other, _, _) => return Err(ConfigError::new_err(format!("invalid start {other:?}"))),
        };
        let stop = match (stop_kind, stop_time_ms) {
            ("never", _) => StopAt::Never,
            ("end", _) => StopAt::End,
            ("time", Some(ms)) => StopAt::Time(ms),
            (other, _) => return Err(ConfigError::new_err(format!("invalid stop {other:?}"))),
        };
        let on_error = on_error_argument(on_error)?;
        let options = ConsumerOptions {
            bootstrap,
            topics,
            format: format
                .parse::<Format>()
                .map_err(|e| ConfigError::new_err(e.to_string()))?,
            schema: schema_argument(schema)?,
            avro_schema,
            schema_registry: registry_argument(schema_registry, timeout)?,
            group_id,
            start,
            stop,
            batch_size,
            max_wait: Duration::from_millis(max_wait_ms),
            on_error,
            include_metadata,
            csv_delimiter: delimiter_argument(delimiter)?,
            ordered,
            config: config_argument(config)?,
            timeout,
        };
        let consumer = py
            .detach(|| ArrowConsumer::new(options))
            .map_err(|e| kafka_error(py, e))?;
        let mut this = PyConsumer {
            inner: Some(consumer),
        };
        this.emit_warnings(py)?;
        Ok(this)
    }

    /// The next `pyarrow.RecordBatch`, or None once the stop is reached.
    fn next_batch(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let consumer = self.inner.as_mut().ok_or_else(closed)?;
        let mut pending = None;
        let result = py.detach(|| consumer.next_batch(&mut interrupt_check(&mut pending)));
        if let Some(err) = pending {
            return Err(err);
        }
        let batch = result.map_err(|e| kafka_error(py, e))?;
        self.emit_warnings(py)?;
        batch.map(|b| batch_to_py(py, b)).transpose()
    }

    /// Reads to the stop straight into a C-contiguous (rows, columns) numpy matrix.
    #[pyo3(signature = (columns=None, dtype="float32", fill=None))]
    fn read_matrix(
        &mut self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        dtype: &str,
        fill: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        match element_type(dtype)? {
            ElementType::Float32 => self.read_rows::<f32>(py, columns, fill),
            ElementType::Float64 => self.read_rows::<f64>(py, columns, fill),
        }
    }

    /// Commits the offsets after every batch handed out; returns the partitions committed.
    fn commit(&mut self, py: Python<'_>) -> PyResult<usize> {
        let consumer = self.inner.as_mut().ok_or_else(closed)?;
        py.detach(|| consumer.commit())
            .map_err(|e| kafka_error(py, e))
    }

    fn close(&mut self, py: Python<'_>) {
        if let Some(mut consumer) = self.inner.take() {
            py.detach(move || {
                consumer.close();
                drop(consumer);
                crate::kafka::release_freed_memory();
            });
        }
    }

    /// The batches' schema, or None while a json schema is not inferred yet.
    fn schema(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let consumer = self.inner.as_ref().ok_or_else(closed)?;
        consumer.schema().map(|s| schema_to_py(py, &s)).transpose()
    }

    /// (skipped count, [(topic, partition, offset, reason), ...] of the latest failures).
    fn errors(&self) -> PyResult<(u64, Vec<FailureAt>)> {
        let consumer = self.inner.as_ref().ok_or_else(closed)?;
        let log = consumer.errors();
        let recent = log
            .recent
            .iter()
            .map(|f| (f.topic.clone(), f.partition, f.offset, f.reason.clone()))
            .collect();
        Ok((log.skipped, recent))
    }

    /// Offsets between the start and the end of a `stop="end"` read without a group, else None.
    #[getter]
    fn snapshot_size(&self) -> PyResult<Option<i64>> {
        Ok(self.inner.as_ref().ok_or_else(closed)?.snapshot_size())
    }

    #[getter]
    fn messages_read(&self) -> PyResult<u64> {
        Ok(self.inner.as_ref().ok_or_else(closed)?.messages_read())
    }

    #[getter]
    fn finished(&self) -> bool {
        self.inner.as_ref().is_none_or(|c| c.is_finished())
    }
}

impl PyConsumer {
    fn emit_warnings(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(consumer) = self.inner.as_mut() {
            for warning in consumer.take_warnings() {
                let category = py.get_type::<PyUserWarning>();
                PyErr::warn(
                    py,
                    &category,
                    &std::ffi::CString::new(warning).unwrap_or_default(),
                    2,
                )?;
            }
        }
        Ok(())
    }
}

fn closed() -> PyErr {
    ConfigError::new_err("the consumer is closed")
}
