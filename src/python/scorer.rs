//! `_native.StreamScorer`: the Rust stream scorer behind `kafkaml.StreamScorer`.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::{read_format, ConfigArg, DelimiterArg, OnErrorArg};
use super::errors::{
    decode_error, kafka_error, ConfigError, KafkaMLError, ModelError, SchemaError,
};
use super::model::PyModel;
use crate::formats::encode::ValueFormat;
use crate::kafka::consumer::{ConsumerOptions, StartAt, StopAt};
use crate::pipeline::{FeatureSpec, PipelineError, RowScorer, ScorerOptions, StreamScorer};

#[pyclass(module = "kafkaml._native", name = "StreamScorer")]
pub struct PyStreamScorer {
    inner: StreamScorer,
}

#[pymethods]
impl PyStreamScorer {
    /// Connects to the source and the sink and starts scoring in a Rust thread.
    #[new]
    #[pyo3(signature = (bootstrap, source_topic, sink_topic, model, *, group_id, feature_columns=None,
        feature_text_column=None, separator="#", format="json", schema=None, id_columns=Vec::new(),
        scaling=None, threshold=None, sink_format="json", batch_size=10_000, max_wait_ms=100,
        on_error=OnErrorArg(crate::kafka::consumer::OnError::Raise), delimiter=DelimiterArg(b','),
        config=ConfigArg::default(), sink_config=ConfigArg::default(), timeout_s=20.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        source_topic: String,
        sink_topic: String,
        model: PyRef<'_, PyModel>,
        group_id: String,
        feature_columns: Option<Vec<String>>,
        feature_text_column: Option<String>,
        separator: &str,
        format: &str,
        schema: Option<&Bound<'_, PyAny>>,
        id_columns: Vec<String>,
        scaling: Option<(Vec<f32>, Vec<f32>)>,
        threshold: Option<f32>,
        sink_format: &str,
        batch_size: usize,
        max_wait_ms: u64,
        on_error: OnErrorArg,
        delimiter: DelimiterArg,
        config: ConfigArg,
        sink_config: ConfigArg,
        timeout_s: f64,
    ) -> PyResult<Self> {
        let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
        let features = match (feature_columns, feature_text_column) {
            (Some(columns), None) => FeatureSpec::Columns(columns),
            (None, Some(column)) => {
                let mut chars = separator.chars();
                let (Some(separator), None) = (chars.next(), chars.next()) else {
                    return Err(ConfigError::new_err(format!(
                        "separator must be one character, got {separator:?}"
                    )));
                };
                FeatureSpec::Delimited { column, separator }
            }
            _ => {
                return Err(ConfigError::new_err(
                    "give either feature columns or one text column of readings",
                ))
            }
        };
        let delimiter = delimiter.0;
        let sink_format = match sink_format {
            "json" => ValueFormat::Json,
            "csv" | "delimited" => ValueFormat::Csv { delimiter },
            other => {
                return Err(ConfigError::new_err(format!(
                    "sink_format must be 'json' or 'csv', got {other:?}"
                )))
            }
        };
        let on_error = on_error.0;
        let options = ScorerOptions {
            consumer: ConsumerOptions {
                group_id: Some(group_id),
                // A new group starts at the beginning; an existing one resumes where it committed.
                start: StartAt::Earliest,
                stop: StopAt::Never,
                batch_size,
                max_wait: Duration::from_millis(max_wait_ms),
                on_error,
                include_metadata: true,
                config: config.0,
                timeout,
                ..ConsumerOptions::new(
                    bootstrap,
                    [source_topic],
                    read_format(format, schema, None, delimiter, Vec::new(), timeout)?,
                )
            },
            sink_topic,
            sink_format,
            producer_config: sink_config.0,
            features,
            id_columns,
            scaling,
            threshold,
            on_bad_row: on_error,
            timeout,
        };
        let model: Arc<dyn RowScorer> = model.model();
        let inner = py
            .detach(|| StreamScorer::start(options, model))
            .map_err(|e| pipeline_error(py, e))?;
        Ok(PyStreamScorer { inner })
    }

    /// Progress counters as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.inner.stats();
        let dict = PyDict::new(py);
        dict.set_item("consumed", stats.consumed)?;
        dict.set_item("produced", stats.produced)?;
        dict.set_item("anomalies", stats.anomalies)?;
        dict.set_item("skipped", stats.skipped)?;
        dict.set_item("batches", stats.batches)?;
        dict.set_item("commits", stats.commits)?;
        dict.set_item("lag", stats.lag)?;
        dict.set_item("lag_checks", stats.lag_checks)?;
        dict.set_item("msgs_per_s", stats.rate)?;
        dict.set_item("elapsed_s", stats.elapsed.as_secs_f64())?;
        dict.set_item("running", stats.running)?;
        dict.set_item("error", stats.error)?;
        Ok(dict)
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    /// (skipped count, [(topic, partition, offset, reason), ...] of the latest failures).
    fn errors(&self) -> (u64, Vec<(String, i32, i64, String)>) {
        let log = self.inner.failures();
        let recent = log
            .recent
            .iter()
            .map(|f| (f.topic.clone(), f.partition, f.offset, f.reason.clone()))
            .collect();
        (log.skipped, recent)
    }

    /// Finishes the batch in hand, commits, and ends the thread (abandoning the batch after
    /// `timeout_s`); raises the error that ended the thread, if one did.
    fn stop(&mut self, py: Python<'_>, timeout_s: f64) -> PyResult<()> {
        let timeout = Duration::from_secs_f64(timeout_s.max(0.0));
        let inner = &mut self.inner;
        py.detach(|| inner.stop(timeout))
            .map_err(|e| pipeline_error(py, e))
    }
}

fn pipeline_error(py: Python<'_>, error: PipelineError) -> PyErr {
    let message = error.to_string();
    match error {
        PipelineError::Kafka(inner) => kafka_error(py, inner),
        PipelineError::BadRow {
            topic,
            partition,
            offset,
            reason,
        } => decode_error(py, message, topic, partition, offset, reason),
        PipelineError::Features(..) => SchemaError::new_err(message),
        PipelineError::Model { .. } => ModelError::new_err(message),
        PipelineError::Config(_) => ConfigError::new_err(message),
        PipelineError::Internal(_) => KafkaMLError::new_err(message),
    }
}
