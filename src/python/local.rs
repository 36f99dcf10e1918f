//! `_native.LocalCluster`: librdkafka's in-process mock cluster, behind `kafkaml.LocalKafka`.

use pyo3::prelude::*;

use super::errors::kafka_error;
use crate::kafka::local::LocalCluster;

// The mock cluster's handle is a raw librdkafka pointer: keep it on the thread that made it.
#[pyclass(module = "kafkaml._native", name = "LocalCluster", unsendable)]
pub struct PyLocalCluster {
    inner: Option<LocalCluster>,
}

#[pymethods]
impl PyLocalCluster {
    #[new]
    #[pyo3(signature = (brokers=1))]
    fn new(py: Python<'_>, brokers: i32) -> PyResult<Self> {
        let cluster = LocalCluster::start(brokers).map_err(|e| kafka_error(py, e))?;
        Ok(PyLocalCluster {
            inner: Some(cluster),
        })
    }

    #[getter]
    fn bootstrap_servers(&self) -> PyResult<String> {
        Ok(self.cluster()?.bootstrap_servers().to_string())
    }

    #[pyo3(signature = (name, partitions=1))]
    fn create_topic(&self, py: Python<'_>, name: &str, partitions: i32) -> PyResult<()> {
        self.cluster()?
            .create_topic(name, partitions)
            .map_err(|e| kafka_error(py, e))
    }

    fn broker_down(&self, py: Python<'_>, broker_id: i32) -> PyResult<()> {
        self.cluster()?
            .set_broker_up(broker_id, false)
            .map_err(|e| kafka_error(py, e))
    }

    fn broker_up(&self, py: Python<'_>, broker_id: i32) -> PyResult<()> {
        self.cluster()?
            .set_broker_up(broker_id, true)
            .map_err(|e| kafka_error(py, e))
    }

    fn stop(&mut self) {
        self.inner = None;
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.is_some()
    }
}

impl PyLocalCluster {
    fn cluster(&self) -> PyResult<&LocalCluster> {
        self.inner
            .as_ref()
            .ok_or_else(|| super::errors::ClosedError::new_err("this LocalKafka is stopped"))
    }
}
