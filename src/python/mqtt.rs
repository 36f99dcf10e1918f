//! `_native.MqttProxyServer` and `_native.mqtt_proxy_properties`: the MQTT proxy, behind
//! `kafkaml.MqttProxy`; `_native.MqttBridgeRunner`: the bridge from an MQTT broker, behind
//! `kafkaml.MqttBridge`; `_native.mqtt_publish`, a small publisher, behind `kafkaml.mqtt_publish`.

use std::collections::BTreeMap;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::args::{seconds_argument, ConfigArg};
use super::errors::{kafka_error, ConfigError, MqttError as PyMqttError};
use crate::mqtt::{
    broker_address, publish, BridgeOptions, MqttBridge, MqttError, MqttProxy, ProxyConfig,
    ProxyOptions, PublishOptions, TopicMap,
};

fn mqtt_error(py: Python<'_>, error: MqttError) -> PyErr {
    match error {
        MqttError::Kafka(inner) => kafka_error(py, inner),
        MqttError::Broker { .. } => PyMqttError::new_err(error.to_string()),
        other => ConfigError::new_err(other.to_string()),
    }
}

#[pyclass(module = "kafkaml._native", name = "MqttProxyServer")]
pub struct PyMqttProxyServer {
    proxy: Option<MqttProxy>,
    url: String,
    port: u16,
}

#[pymethods]
impl PyMqttProxyServer {
    #[new]
    #[pyo3(signature = (bootstrap, topics, listen="127.0.0.1:0", *, max_message_bytes=8092, config=ConfigArg::default(), timeout=30.0, users=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: &str,
        topics: Vec<(String, String)>,
        listen: &str,
        max_message_bytes: usize,
        config: ConfigArg,
        timeout: f64,
        users: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let topics = TopicMap::new(&topics).map_err(|e| mqtt_error(py, e))?;
        let mut options = ProxyOptions::new(bootstrap, topics);
        options.users = users.unwrap_or_default();
        options.listen = listen.to_string();
        options.max_message_bytes = max_message_bytes;
        options.producer_config = config.0;
        options.timeout = seconds_argument(timeout)?;
        let proxy = py
            .detach(move || MqttProxy::start(options))
            .map_err(|e| mqtt_error(py, e))?;
        Ok(PyMqttProxyServer {
            url: proxy.url(),
            port: proxy.port(),
            proxy: Some(proxy),
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
        self.proxy.is_some()
    }

    /// Counters as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("running", self.proxy.is_some())?;
        dict.set_item("url", &self.url)?;
        if let Some(proxy) = &self.proxy {
            let s = proxy.stats();
            for (key, value) in [
                ("connections", s.connections),
                ("connected", s.connected),
                ("received", s.received),
                ("received_qos0", s.received_qos0),
                ("received_qos1", s.received_qos1),
                ("received_qos2", s.received_qos2),
                ("written", s.written),
                ("duplicates", s.duplicates),
                ("refused", s.refused),
                ("refused_unmatched", s.refused_unmatched),
                ("refused_too_large", s.refused_too_large),
                ("refused_retained", s.refused_retained),
                ("refused_connections", s.refused_connections),
                ("refused_credentials", s.refused_credentials),
                ("subscriptions_refused", s.subscriptions_refused),
                ("kafka_errors", s.kafka_errors),
                ("closed_on_kafka_error", s.closed_on_kafka_error),
                ("protocol_errors", s.protocol_errors),
                ("keepalive_timeouts", s.keepalive_timeouts),
                ("wills", s.wills),
                ("in_flight", s.in_flight),
            ] {
                dict.set_item(key, value)?;
            }
        }
        Ok(dict)
    }

    fn stop(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(mut proxy) = self.proxy.take() {
            // Joins the server's runtime and flushes the producer: let other threads run.
            py.detach(move || proxy.stop())
                .map_err(|e| mqtt_error(py, e))?;
        }
        Ok(())
    }
}

#[pyclass(module = "kafkaml._native", name = "MqttBridgeRunner")]
pub struct PyMqttBridge {
    bridge: Option<MqttBridge>,
    broker: String,
}

#[pymethods]
impl PyMqttBridge {
    #[new]
    #[pyo3(signature = (bootstrap, broker, topics, subscriptions, *, client_id="kafkaml-bridge", keep_alive=30.0, username=None, password=None, config=ConfigArg::default(), timeout=30.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: &str,
        broker: &str,
        topics: Vec<(String, String)>,
        subscriptions: Vec<(String, u8)>,
        client_id: &str,
        keep_alive: f64,
        username: Option<String>,
        password: Option<String>,
        config: ConfigArg,
        timeout: f64,
    ) -> PyResult<Self> {
        let topics = TopicMap::new(&topics).map_err(|e| mqtt_error(py, e))?;
        let broker = broker_address(broker).map_err(|e| mqtt_error(py, e))?;
        let mut options = BridgeOptions::new(bootstrap, &broker, topics);
        options.subscriptions = subscriptions;
        options.client_id = client_id.to_string();
        options.keep_alive = seconds_argument(keep_alive)?;
        options.username = username;
        options.password = password;
        options.producer_config = config.0;
        options.timeout = seconds_argument(timeout)?;
        let bridge = py
            .detach(move || MqttBridge::start(options))
            .map_err(|e| mqtt_error(py, e))?;
        Ok(PyMqttBridge {
            bridge: Some(bridge),
            broker,
        })
    }

    /// The broker's `host:port`.
    #[getter]
    fn broker(&self) -> &str {
        &self.broker
    }

    #[getter]
    fn running(&self) -> bool {
        self.bridge.is_some()
    }

    /// Counters as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("running", self.bridge.is_some())?;
        dict.set_item("broker", &self.broker)?;
        if let Some(bridge) = &self.bridge {
            let s = bridge.stats();
            dict.set_item("connected", s.connected)?;
            for (key, value) in [
                ("connections", s.connections),
                ("received", s.received),
                ("received_qos0", s.received_qos0),
                ("received_qos1", s.received_qos1),
                ("received_qos2", s.received_qos2),
                ("written", s.written),
                ("unmatched", s.unmatched),
                ("duplicates", s.duplicates),
                ("kafka_errors", s.kafka_errors),
                ("protocol_errors", s.protocol_errors),
                ("keepalive_timeouts", s.keepalive_timeouts),
                ("in_flight", s.in_flight),
            ] {
                dict.set_item(key, value)?;
            }
            dict.set_item("last_error", s.last_error)?;
        }
        Ok(dict)
    }

    fn stop(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(mut bridge) = self.bridge.take() {
            py.detach(move || bridge.stop())
                .map_err(|e| mqtt_error(py, e))?;
        }
        Ok(())
    }
}

/// Reads Confluent MQTT Proxy properties text into the proxy's arguments (and the keys it
/// ignores).
#[pyfunction]
pub fn mqtt_proxy_properties<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let config = ProxyConfig::from_text(text).map_err(|e| mqtt_error(py, e))?;
    let options = config.options;
    let dict = PyDict::new(py);
    dict.set_item("bootstrap", options.bootstrap)?;
    dict.set_item("listen", options.listen)?;
    let topics: Vec<(String, String)> = options
        .topics
        .rules()
        .iter()
        .map(|r| (r.kafka_topic.clone(), r.pattern.clone()))
        .collect();
    dict.set_item("topics", topics)?;
    dict.set_item("max_message_bytes", options.max_message_bytes)?;
    let producer = PyDict::new(py);
    for (key, value) in options.producer_config {
        producer.set_item(key, value)?;
    }
    dict.set_item("config", producer)?;
    dict.set_item("ignored", config.ignored)?;
    Ok(dict)
}

/// Publishes `payloads` (bytes or str, in order) to `topic` on an MQTT server; returns how
/// many were published. The GIL is released while publishing.
#[pyfunction]
#[pyo3(signature = (url, topic, payloads, *, qos=0, client_id=None, in_flight=16, username=None, password=None, timeout=30.0))]
#[allow(clippy::too_many_arguments)]
pub fn mqtt_publish(
    py: Python<'_>,
    url: &str,
    topic: &str,
    payloads: &Bound<'_, PyAny>,
    qos: u8,
    client_id: Option<String>,
    in_flight: usize,
    username: Option<String>,
    password: Option<String>,
    timeout: f64,
) -> PyResult<u64> {
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for (index, item) in payloads.try_iter()?.enumerate() {
        let item = item?;
        let bytes = if let Ok(text) = item.cast::<PyString>() {
            text.to_str()?.as_bytes().to_vec()
        } else if let Ok(bytes) = item.cast::<PyBytes>() {
            bytes.as_bytes().to_vec()
        } else {
            return Err(PyTypeError::new_err(format!(
                "payload {index} is {}, expected bytes or str",
                item.get_type().name()?
            )));
        };
        messages.push(bytes);
    }
    let mut options = PublishOptions::new(qos);
    if let Some(client_id) = client_id {
        options.client_id = client_id;
    }
    if in_flight == 0 {
        return Err(ConfigError::new_err("in_flight must be at least 1"));
    }
    options.in_flight = in_flight;
    options.username = username;
    options.password = password;
    options.timeout = seconds_argument(timeout)?;
    let (url, topic) = (url.to_string(), topic.to_string());
    py.detach(move || publish(&url, &topic, &messages, &options))
        .map_err(|e| mqtt_error(py, e))
}
