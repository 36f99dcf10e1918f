//! The only place that knows about Python: `#[pyclass]` wrappers, error mapping, and Arrow
//! and numpy conversion. Everything here copies what it needs out of Python objects, then
//! releases the GIL for I/O, decoding and inference.

/// Rust's allocations in the extension (not librdkafka's, not Python's) go to mimalloc: glibc's
/// malloc was a third of a stateful query's CPU. See Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod arrow;
mod consumer;
mod errors;
mod ksql;
mod ksql_server;
mod local;
mod matrix;
mod model;
mod mqtt;
mod producer;
mod registry;
mod scorer;

use pyo3::prelude::*;

#[pyfunction]
#[pyo3(signature = (declarations,))]
/// Parses KSQL column declarations into a `pyarrow.Schema`.
fn parse_columns(py: Python<'_>, declarations: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let schema = args::schema_argument(Some(declarations))?.ok_or_else(|| {
        errors::ConfigError::new_err("parse_columns needs column declarations, got None")
    })?;
    arrow::schema_to_py(py, &schema)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<consumer::PyConsumer>()?;
    m.add_class::<producer::PyProducer>()?;
    m.add_class::<local::PyLocalCluster>()?;
    m.add_class::<local::PyLocalBroker>()?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<scorer::PyStreamScorer>()?;
    m.add_class::<registry::PySchemaRegistryServer>()?;
    m.add_class::<ksql_server::PyKsqlServer>()?;
    m.add_class::<ksql_server::PyModelUdf>()?;
    m.add_function(wrap_pyfunction!(ksql_server::ksql_conformance, m)?)?;
    m.add_class::<mqtt::PyMqttProxyServer>()?;
    m.add_class::<mqtt::PyMqttBridge>()?;
    m.add_function(wrap_pyfunction!(mqtt::mqtt_proxy_properties, m)?)?;
    m.add_function(wrap_pyfunction!(mqtt::mqtt_publish, m)?)?;
    m.add_function(wrap_pyfunction!(matrix::to_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(parse_columns, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // ksqlDB REST client (kafkaml.ksql)
    ksql::register(m)?;
    Ok(())
}
