//! `_native.ArrowConsumer`: the core consumer behind `kafkaml.Consumer`.

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;

use super::args::{
    interrupt_check, read_format, seconds_argument, ConfigArg, DelimiterArg, OnErrorArg, StartArg,
    StopArg,
};
use super::arrow::{batch_to_py, schema_to_py};
use super::errors::{kafka_error, matrix_error};
use super::matrix::{element_type, matrix_to_py, ElementType};
use crate::kafka::consumer::{ArrowConsumer, ConsumerOptions};
use crate::matrix::{MatrixElement, MatrixRows};

/// A skipped message as Python sees it: (topic, partition, offset, reason).
type FailureAt = (String, i32, i64, String);

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
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let consumer = self.inner.as_mut().ok_or_else(closed)?;
        let expected_rows = consumer.snapshot_size().unwrap_or(0).max(0) as usize;
        let mut rows = MatrixRows::<T>::new(columns, fill, expected_rows);
        loop {
            let mut pending = None;
            let more =
                py.detach(|| consumer.next_rows(&mut interrupt_check(&mut pending), &mut rows));
            if let Some(err) = pending {
                return Err(err);
            }
            if !more.map_err(|e| kafka_error(py, e))? {
                break;
            }
            // Between rounds (up to a batch of messages each), with the GIL held anyway.
            if let Some(progress) = progress {
                progress.call1((consumer.messages_read(),))?;
            }
        }
        let schema = consumer.schema();
        self.emit_warnings(py)?;
        let (values, rows, width) = rows.finish(schema.as_ref()).map_err(matrix_error)?;
        Ok(matrix_to_py(py, values, rows, width))
    }
}

#[pymethods]
impl PyConsumer {
    #[new]
    #[pyo3(signature = (bootstrap, topics, *, format="json", schema=None, schema_registry=None,
        group_id=None, start=StartArg(crate::kafka::consumer::StartAt::Earliest),
        stop=StopArg(crate::kafka::consumer::StopAt::Never), batch_size=10_000, max_wait_ms=500,
        on_error=OnErrorArg(crate::kafka::consumer::OnError::Raise), include_metadata=false,
        delimiter=DelimiterArg(b','), parse_dates=Vec::new(), ordered=false, config=ConfigArg::default(),
        timeout=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        topics: Vec<String>,
        format: &str,
        schema: Option<&Bound<'_, PyAny>>,
        schema_registry: Option<&Bound<'_, PyAny>>,
        group_id: Option<String>,
        start: StartArg,
        stop: StopArg,
        batch_size: usize,
        max_wait_ms: u64,
        on_error: OnErrorArg,
        include_metadata: bool,
        delimiter: DelimiterArg,
        parse_dates: Vec<String>,
        ordered: bool,
        config: ConfigArg,
        timeout: f64,
    ) -> PyResult<Self> {
        let timeout = seconds_argument(timeout)?;
        let format = read_format(
            format,
            schema,
            schema_registry,
            delimiter.0,
            parse_dates,
            timeout,
        )?;
        let options = ConsumerOptions {
            group_id,
            start: start.0,
            stop: stop.0,
            batch_size,
            max_wait: std::time::Duration::from_millis(max_wait_ms),
            on_error: on_error.0,
            include_metadata,
            ordered,
            config: config.0,
            timeout,
            ..ConsumerOptions::new(bootstrap, topics, format)
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

    /// Reads to the stop straight into a C-contiguous (rows, columns) numpy matrix;
    /// `progress(messages_read)` is called after each round of messages.
    #[pyo3(signature = (columns=None, dtype="float32", fill=None, progress=None))]
    fn read_matrix(
        &mut self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        dtype: &str,
        fill: Option<f64>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match element_type(dtype)? {
            ElementType::Float32 => self.read_rows::<f32>(py, columns, fill, progress),
            ElementType::Float64 => self.read_rows::<f64>(py, columns, fill, progress),
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

    /// Messages between the positions and the partitions' ends; None while unknown.
    #[getter]
    fn lag(&self) -> PyResult<Option<i64>> {
        Ok(self.inner.as_ref().ok_or_else(closed)?.lag())
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
    super::errors::ClosedError::new_err("the consumer is closed")
}
