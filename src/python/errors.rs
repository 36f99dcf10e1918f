//! The Python exception hierarchy and the mapping from core errors to it.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::formats::FormatError;
use crate::kafka::KafkaError as CoreKafkaError;
use crate::matrix::MatrixError;
use crate::model::ModelError as CoreModelError;

create_exception!(
    kafkaml._native,
    KafkaMLError,
    PyException,
    "Base class of every error kafkaml raises."
);
create_exception!(
    kafkaml._native,
    KafkaError,
    KafkaMLError,
    "Kafka could not be reached, or refused or failed a request."
);
create_exception!(kafkaml._native, DecodeError, KafkaMLError, "A message could not be decoded; `.topic`, `.partition`, `.offset` and `.reason` say which and why.");
create_exception!(
    kafkaml._native,
    SchemaError,
    KafkaMLError,
    "A schema (pyarrow, KSQL declarations, Avro) is invalid or does not fit the data."
);
create_exception!(
    kafkaml._native,
    DeliveryError,
    KafkaError,
    "Messages could not be delivered to a topic."
);
create_exception!(
    kafkaml._native,
    ConfigError,
    KafkaMLError,
    "An argument or configuration property is invalid."
);
create_exception!(
    kafkaml._native,
    ClosedError,
    KafkaMLError,
    "The object was closed or stopped (a Consumer, Producer or LocalKafka): make a new one."
);
create_exception!(
    kafkaml._native,
    UnsupportedError,
    KafkaMLError,
    "The request cannot be served here (e.g. seeking by time on LocalKafka)."
);

create_exception!(
    kafkaml._native,
    ModelError,
    KafkaMLError,
    "A model file could not be loaded (malformed, unsupported op, unknown node) or run (shape or dtype mismatch)."
);

create_exception!(
    kafkaml._native,
    MqttError,
    KafkaMLError,
    "An MQTT broker could not be reached, or refused the connection or a subscription."
);

pub fn model_error(error: CoreModelError) -> PyErr {
    ModelError::new_err(error.to_string())
}

pub fn format_error(error: FormatError) -> PyErr {
    match error {
        FormatError::Registry(_) => KafkaError::new_err(error.to_string()),
        other => SchemaError::new_err(other.to_string()),
    }
}

pub fn matrix_error(error: MatrixError) -> PyErr {
    match error {
        MatrixError::UnknownColumn { .. }
        | MatrixError::NotNumeric { .. }
        | MatrixError::SchemaMismatch { .. } => SchemaError::new_err(error.to_string()),
        MatrixError::Null { .. } => SchemaError::new_err(error.to_string()),
        MatrixError::Arrow(_) | MatrixError::Internal(_) => {
            KafkaMLError::new_err(error.to_string())
        }
    }
}

/// A `DecodeError` naming the message at fault.
pub fn decode_error(
    py: Python<'_>,
    message: String,
    topic: String,
    partition: i32,
    offset: i64,
    reason: String,
) -> PyErr {
    let err = DecodeError::new_err(message);
    let value = err.value(py);
    // Attributes make the coordinates usable without parsing the message.
    let _ = value.setattr("topic", topic);
    let _ = value.setattr("partition", partition);
    let _ = value.setattr("offset", offset);
    let _ = value.setattr("reason", reason);
    err
}

pub fn kafka_error(py: Python<'_>, error: CoreKafkaError) -> PyErr {
    let message = error.to_string();
    match error {
        CoreKafkaError::Decode {
            topic,
            partition,
            offset,
            reason,
        } => decode_error(py, message, topic, partition, offset, reason),
        CoreKafkaError::Delivery { .. } => DeliveryError::new_err(message),
        CoreKafkaError::Config(_) => ConfigError::new_err(message),
        CoreKafkaError::Format(inner) => format_error(inner),
        CoreKafkaError::Matrix(inner) => matrix_error(inner),
        CoreKafkaError::Interrupted => {
            pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted")
        }
        CoreKafkaError::Unsupported(_) => UnsupportedError::new_err(message),
        _ => KafkaError::new_err(message),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KafkaMLError", py.get_type::<KafkaMLError>())?;
    m.add("KafkaError", py.get_type::<KafkaError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("DeliveryError", py.get_type::<DeliveryError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("MqttError", py.get_type::<MqttError>())?;
    Ok(())
}
