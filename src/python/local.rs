//! `_native.LocalCluster` (librdkafka's in-process mock cluster) and `_native.LocalBroker`
//! (kafkaml's own broker): the two engines behind `kafkaml.LocalKafka`.

use kafkaml_broker::{Broker, BrokerConfig, BrokerError};
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

/// `_native.LocalBroker`: the project's in-process Kafka broker (crates/broker), behind
/// `kafkaml.LocalKafka`'s default engine.
#[pyclass(module = "kafkaml._native", name = "LocalBroker")]
pub struct PyLocalBroker {
    inner: std::sync::Mutex<Option<Broker>>,
    bootstrap: String,
}

fn broker_error(error: BrokerError) -> PyErr {
    let message = error.to_string();
    match error {
        BrokerError::InvalidTopic(_) | BrokerError::InvalidPartitions { .. } => {
            super::errors::ConfigError::new_err(message)
        }
        BrokerError::Stopped => super::errors::ClosedError::new_err("this LocalKafka is stopped"),
        BrokerError::TopicExists(_) | BrokerError::UnknownTopic(_) | BrokerError::Io { .. } => {
            super::errors::KafkaError::new_err(message)
        }
    }
}

#[pymethods]
impl PyLocalBroker {
    #[new]
    #[pyo3(signature = (path=None, partitions=1, port=0, host="127.0.0.1"))]
    fn new(
        py: Python<'_>,
        path: Option<std::path::PathBuf>,
        partitions: i32,
        port: u16,
        host: &str,
    ) -> PyResult<Self> {
        let config = BrokerConfig {
            host: host.to_string(),
            port,
            path,
            default_partitions: partitions,
            ..BrokerConfig::default()
        };
        let broker = py.detach(|| Broker::start(config)).map_err(broker_error)?;
        Ok(PyLocalBroker {
            bootstrap: broker.bootstrap().to_string(),
            inner: std::sync::Mutex::new(Some(broker)),
        })
    }

    #[getter]
    fn bootstrap_servers(&self) -> PyResult<String> {
        self.with_broker(|_| Ok(self.bootstrap.clone()))
    }

    /// Creates `name`; an existing topic with as many partitions is left as it is.
    #[pyo3(signature = (name, partitions=1))]
    fn create_topic(&self, name: &str, partitions: i32) -> PyResult<()> {
        self.with_broker(|broker| match broker.create_topic(name, partitions) {
            Err(BrokerError::TopicExists(_)) => {
                let existing = broker
                    .topics()
                    .into_iter()
                    .find(|t| t.name == name)
                    .map_or(0, |t| t.partitions.len());
                if existing == partitions as usize {
                    Ok(())
                } else {
                    Err(super::errors::KafkaError::new_err(format!(
                        "topic {name:?} already exists with {existing} partition(s), not {partitions}"
                    )))
                }
            }
            other => other.map_err(broker_error),
        })
    }

    fn delete_topic(&self, name: &str) -> PyResult<()> {
        self.with_broker(|broker| broker.delete_topic(name).map_err(broker_error))
    }

    /// (name, partitions, messages, stored bytes) of each topic, sorted by name.
    fn topics(&self) -> PyResult<Vec<(String, usize, i64, usize)>> {
        self.with_broker(|broker| {
            Ok(broker
                .topics()
                .into_iter()
                .map(|t| {
                    let messages = t.partitions.iter().map(|(start, end)| end - start).sum();
                    (t.name, t.partitions.len(), messages, t.stored_bytes)
                })
                .collect())
        })
    }

    fn stop(&self, py: Python<'_>) {
        let broker = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(broker) = broker {
            py.detach(|| broker.stop());
        }
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl PyLocalBroker {
    fn with_broker<T>(&self, f: impl FnOnce(&Broker) -> PyResult<T>) -> PyResult<T> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(broker) => f(broker),
            None => Err(super::errors::ClosedError::new_err(
                "this LocalKafka is stopped",
            )),
        }
    }
}
