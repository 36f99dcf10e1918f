//! `_native.SchemaRegistryServer`: the embedded Schema Registry, behind
//! `kafkaml.LocalSchemaRegistry`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::{seconds_argument, ConfigArg};
use super::errors::{ConfigError, KafkaError, SchemaError};
use crate::registry::http::RegistryServer;
use crate::registry::{Registry, RegistryError, RegistryOptions};

pub fn registry_error(error: RegistryError) -> PyErr {
    match error {
        RegistryError::Config(_) => ConfigError::new_err(error.to_string()),
        RegistryError::Store(_) => KafkaError::new_err(error.to_string()),
        other => SchemaError::new_err(other.to_string()),
    }
}

#[pyclass(module = "kafkaml._native", name = "SchemaRegistryServer")]
pub struct PySchemaRegistryServer {
    server: Option<RegistryServer>,
    url: String,
    port: u16,
}

#[pymethods]
impl PySchemaRegistryServer {
    #[new]
    #[pyo3(signature = (bootstrap, listen="127.0.0.1:0", *, topic="_schemas", config=ConfigArg::default(), timeout=30.0))]
    fn new(
        py: Python<'_>,
        bootstrap: &str,
        listen: &str,
        topic: &str,
        config: ConfigArg,
        timeout: f64,
    ) -> PyResult<Self> {
        let options = RegistryOptions {
            topic: topic.to_string(),
            config: config.0,
            timeout: seconds_argument(timeout)?,
        };
        let (bootstrap, listen) = (bootstrap.to_string(), listen.to_string());
        let server = py
            .detach(move || {
                let registry = Arc::new(Registry::on_kafka(&bootstrap, options)?);
                RegistryServer::start(registry, &listen)
            })
            .map_err(registry_error)?;
        Ok(PySchemaRegistryServer {
            url: server.url(),
            port: server.port(),
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
    fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Counters and state sizes as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("running", self.server.is_some())?;
        dict.set_item("url", &self.url)?;
        if let Some(server) = &self.server {
            let http = server.stats();
            let core = server.registry().stats();
            dict.set_item("requests", http.requests)?;
            dict.set_item("client_errors", http.client_errors)?;
            dict.set_item("server_errors", http.server_errors)?;
            dict.set_item("schemas", core.schemas)?;
            dict.set_item("subjects", core.subjects)?;
            dict.set_item("max_id", core.max_id)?;
            dict.set_item("registered", core.registered)?;
            dict.set_item("claims_rejected", core.claims_rejected)?;
            dict.set_item("log_position", core.log_position)?;
            dict.set_item("topic", core.topic)?;
            dict.set_item("bootstrap", core.bootstrap)?;
        }
        Ok(dict)
    }

    fn stop(&mut self, py: Python<'_>) {
        if let Some(server) = self.server.take() {
            // Joins the HTTP runtime and the log follower: let other Python threads run.
            py.detach(move || drop(server));
        }
    }
}
