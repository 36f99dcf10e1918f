//! `_native.KsqlServer` and `_native.ModelUdf`: the embedded KSQL server, behind
//! `kafkaml.ksql.LocalKsql` and `kafkaml.ksql.model_udf`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::ConfigArg;
use super::errors::{ConfigError, KafkaError};
use super::model::PyModel;
use crate::ksql_server::udf::{ModelUdf, UdfInput, UdfOutput};
use crate::ksql_server::{KsqlServer, KsqlServerOptions, SchemaRegistryHandle};

/// A model packaged as a KSQL scalar function (made by `kafkaml.ksql.model_udf`).
#[pyclass(module = "kafkaml._native", name = "ModelUdf", frozen)]
pub struct PyModelUdf {
    model: Arc<crate::model::Model>,
    input: UdfInput,
    output: UdfOutput,
}

#[pymethods]
impl PyModelUdf {
    #[new]
    #[pyo3(signature = (model, *, separator=None, columns=None, output="reconstruction_error"))]
    fn new(
        model: PyRef<'_, PyModel>,
        separator: Option<String>,
        columns: Option<Vec<String>>,
        output: &str,
    ) -> PyResult<Self> {
        let input = match (separator, columns) {
            (Some(separator), None) => UdfInput::Separated(separator),
            (None, Some(columns)) => UdfInput::Columns(columns),
            _ => return Err(ConfigError::new_err("give either separator= (one text argument of separated numbers) or columns= (one numeric argument per model input)")),
        };
        let output = match output {
            "reconstruction_error" => UdfOutput::ReconstructionError,
            "prediction" => UdfOutput::Prediction,
            other => {
                return Err(ConfigError::new_err(format!(
                    "output must be \"reconstruction_error\" or \"prediction\", not {other:?}"
                )))
            }
        };
        let model = model.model();
        // Checked here, so a mismatch is reported where the UDF is made.
        ModelUdf::new("UDF", model.clone(), input.clone(), output).map_err(ConfigError::new_err)?;
        Ok(PyModelUdf {
            model,
            input,
            output,
        })
    }
}

#[pyclass(module = "kafkaml._native", name = "KsqlServer")]
pub struct PyKsqlServer {
    server: Option<KsqlServer>,
    url: String,
    port: u16,
    service_id: String,
    command_topic: String,
}

#[pymethods]
impl PyKsqlServer {
    #[new]
    #[pyo3(signature = (bootstrap, listen="127.0.0.1:0", *, service_id="default_", udfs=Vec::new(), schema_registry=None, config=ConfigArg::default()))]
    fn new(
        py: Python<'_>,
        bootstrap: &str,
        listen: &str,
        service_id: &str,
        udfs: Vec<(String, PyRef<'_, PyModelUdf>)>,
        schema_registry: Option<String>,
        config: ConfigArg,
    ) -> PyResult<Self> {
        let mut functions: Vec<Arc<dyn kafkaml_engine::functions::ScalarFunction>> = Vec::new();
        for (name, udf) in &udfs {
            let function = ModelUdf::new(name, udf.model.clone(), udf.input.clone(), udf.output)
                .map_err(ConfigError::new_err)?;
            functions.push(Arc::new(function));
        }
        let options = KsqlServerOptions {
            bootstrap: bootstrap.to_string(),
            listen: listen.to_string(),
            service_id: service_id.to_string(),
            kafka_config: config.0,
            schema_registry: schema_registry.map(SchemaRegistryHandle::Url),
            udfs: functions,
        };
        let server = py
            .detach(move || KsqlServer::start(options))
            .map_err(|message| {
                if message.starts_with("cannot listen") {
                    ConfigError::new_err(message)
                } else {
                    KafkaError::new_err(message)
                }
            })?;
        Ok(PyKsqlServer {
            url: server.url(),
            port: server.port(),
            service_id: server.service_id().to_string(),
            command_topic: server.command_topic().to_string(),
            server: Some(server),
        })
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    #[getter]
    fn service_id(&self) -> &str {
        &self.service_id
    }

    #[getter]
    fn command_topic(&self) -> &str {
        &self.command_topic
    }

    #[getter]
    fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Counters as a dict; `queries` maps each persistent query to its records in and out,
    /// whether it has read its source to the end (`caught_up`, found by a check made
    /// `caught_up_checked_ago` seconds ago) and the error it stopped on.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("running", self.server.is_some())?;
        dict.set_item("url", &self.url)?;
        if let Some(server) = &self.server {
            let stats = server.stats();
            dict.set_item("requests", stats.requests)?;
            dict.set_item("statements", stats.statements)?;
            dict.set_item("statement_errors", stats.statement_errors)?;
            dict.set_item("push_queries", stats.push_queries)?;
            dict.set_item("replayed", stats.replayed)?;
            let queries = PyDict::new(py);
            for (id, progress) in stats.queries {
                let query = PyDict::new(py);
                query.set_item("records_in", progress.records_in)?;
                query.set_item("records_out", progress.records_out)?;
                query.set_item("caught_up", progress.caught_up)?;
                query.set_item(
                    "caught_up_checked_ago",
                    progress.caught_up_checked.map(|ago| ago.as_secs_f64()),
                )?;
                query.set_item("error", progress.error)?;
                queries.set_item(id, query)?;
            }
            dict.set_item("queries", queries)?;
        }
        Ok(dict)
    }

    fn stop(&mut self, py: Python<'_>) {
        if let Some(server) = self.server.take() {
            // Joins the query threads and the HTTP runtime: let other Python threads run.
            py.detach(move || drop(server));
        }
    }
}

/// Runs ksqlDB's conformance cases in `paths` (files or folders of `*.json`) against the
/// engine; one dict per case: file, name, status ("passed"/"failed"), reason.
#[pyfunction]
pub fn ksql_conformance<'py>(
    py: Python<'py>,
    paths: Vec<String>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let reports = py.detach(move || {
        let files = kafkaml_engine::conformance::corpus_files(&paths);
        files
            .iter()
            .flat_map(|(path, shown)| kafkaml_engine::conformance::run_file(path, shown))
            .collect::<Vec<_>>()
    });
    reports
        .into_iter()
        .map(|report| {
            let dict = PyDict::new(py);
            dict.set_item("file", report.file)?;
            dict.set_item("name", report.name)?;
            dict.set_item("status", report.status)?;
            dict.set_item("reason", report.reason)?;
            Ok(dict)
        })
        .collect()
}
