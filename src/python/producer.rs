//! `_native.ArrowProducer`: the core producer behind `kafkaml.Producer` and `write_topic`.

use std::time::Duration;

use pyo3::prelude::*;

use super::args::{interrupt_check, registry_argument, ConfigArg, DelimiterArg};
use super::arrow::batches_from_py;
use super::errors::{kafka_error, ConfigError};
use crate::formats::encode::ValueFormat;
use crate::formats::Format;
use crate::kafka::producer::{ArrowProducer, ProducerOptions};

#[pyclass(module = "kafkaml._native", name = "ArrowProducer")]
pub struct PyProducer {
    inner: Option<ArrowProducer>,
}

#[pymethods]
impl PyProducer {
    #[new]
    #[pyo3(signature = (bootstrap, topic, format="json", *, key=None, avro_schema=None, schema_registry=None,
        delimiter=DelimiterArg(b','), config=ConfigArg::default(), timeout_s=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        topic: String,
        format: &str,
        key: Option<String>,
        avro_schema: Option<String>,
        schema_registry: Option<&Bound<'_, PyAny>>,
        delimiter: DelimiterArg,
        config: ConfigArg,
        timeout_s: f64,
    ) -> PyResult<Self> {
        let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
        let format = match format
            .parse::<Format>()
            .map_err(|e| ConfigError::new_err(e.to_string()))?
        {
            Format::Json => ValueFormat::Json,
            Format::Csv => ValueFormat::Csv {
                delimiter: delimiter.0,
            },
            Format::Raw => ValueFormat::Raw,
            Format::Avro => ValueFormat::Avro {
                schema: avro_schema,
                registry: registry_argument(schema_registry, timeout)?,
            },
        };
        let options = ProducerOptions {
            bootstrap,
            topic,
            format,
            key_column: key,
            config: config.0,
            timeout,
        };
        let producer = py
            .detach(|| ArrowProducer::new(options))
            .map_err(|e| kafka_error(py, e))?;
        Ok(PyProducer {
            inner: Some(producer),
        })
    }

    /// Encodes and queues every row of `data` (a pyarrow Table/RecordBatch or any Arrow
    /// stream); returns the rows queued. Call `flush()` to wait for delivery.
    fn send(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let (_, batches) = batches_from_py(data)?;
        let producer = self.inner.as_mut().ok_or_else(closed)?;
        let mut pending = None;
        let result = py.detach(|| {
            let mut interrupt = interrupt_check(&mut pending);
            let mut rows = 0;
            for batch in &batches {
                rows += producer.send_batch(batch, &mut interrupt)?;
            }
            Ok(rows)
        });
        if let Some(err) = pending {
            return Err(err);
        }
        result.map_err(|e| kafka_error(py, e))
    }

    /// Waits for every queued message; raises DeliveryError if any failed. Returns the
    /// number delivered since the producer was made.
    fn flush(&mut self, py: Python<'_>) -> PyResult<u64> {
        let producer = self.inner.as_mut().ok_or_else(closed)?;
        let mut pending = None;
        let result = py.detach(|| producer.flush(&mut interrupt_check(&mut pending)));
        if let Some(err) = pending {
            return Err(err);
        }
        result.map_err(|e| kafka_error(py, e))
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.inner.is_some() {
            self.flush(py)?;
        }
        self.inner = None;
        Ok(())
    }

    #[getter]
    fn topic(&self) -> PyResult<String> {
        Ok(self.inner.as_ref().ok_or_else(closed)?.topic().to_string())
    }
}

fn closed() -> PyErr {
    super::errors::ClosedError::new_err("the producer is closed")
}
