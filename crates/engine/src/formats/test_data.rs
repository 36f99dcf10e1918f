//! Conversions for the conformance runner. ksqlDB's corpus writes record keys and values as
//! JSON; its test harness turns them into bytes per format, and the bytes a query writes back
//! into JSON that is compared with the expected record:
//!
//! - JSON: the JSON text itself.
//! - DELIMITED: the JSON string's text (a number or boolean: its JSON text).
//! - KAFKA: by the side's single column type — INTEGER 4 and BIGINT 8 big-endian bytes, DOUBLE
//!   the IEEE bits, STRING UTF-8, BYTES base64-decoded; with no column, a string's UTF-8.
//! - AVRO: encoded through the registry with the topic's declared schema when the case gives
//!   one (`encode_test_value_with_schema`; the runner passes `topics[].valueSchema` /
//!   `keySchema`), else the subject's latest registered schema, else the schema ksqlDB derives
//!   from the columns (registered then). Field names match ignoring case, as ksqlDB's harness
//!   does (`{"date": 10}` fills `DATE`).
//! - NONE: nothing.
//!
//! `test_values_match` compares as loosely as ksqlDB's harness: numbers by value (`1` matches
//! `1.0`, a DECIMAL `10.0000` matches `10.0`), a number matches a string holding the same number
//! (the corpus writes some decimals as strings), objects by their fields in any order.

use base64::Engine as _;

use super::avro;
use super::{Format, FormatSpec, SerdeContext, SerdeError, Side};
use crate::types::SqlType;

fn unsupported(format: Format) -> SerdeError {
    SerdeError(format!("unsupported format: {}", format.name()))
}

fn single_type(context: &SerdeContext) -> Option<&SqlType> {
    match context.columns.as_slice() {
        [(_, ty)] => Some(ty),
        _ => None,
    }
}

fn wrapped(spec: &FormatSpec, context: &SerdeContext) -> bool {
    let single = context.columns.len() == 1;
    match context.side {
        Side::Key => !single,
        Side::Value => !(single && spec.wrap_single_value == Some(false)),
    }
}

/// The bytes ksqlDB's test harness produces for a record's key or value given as JSON
/// (`None` for JSON null: a null key or a tombstone).
pub fn encode_test_value(
    spec: &FormatSpec,
    context: &SerdeContext,
    value: &serde_json::Value,
) -> Result<Option<Vec<u8>>, SerdeError> {
    encode_test_value_with_schema(spec, context, value, None)
}

/// As `encode_test_value`, with the Avro schema the case declares for the topic (the JSON of
/// `topics[].valueSchema` or `keySchema`), registered under the side's subject.
pub fn encode_test_value_with_schema(
    spec: &FormatSpec,
    context: &SerdeContext,
    value: &serde_json::Value,
    declared_schema: Option<&serde_json::Value>,
) -> Result<Option<Vec<u8>>, SerdeError> {
    use serde_json::Value as J;
    if value.is_null() {
        return Ok(None);
    }
    let text_of = |value: &J| match value {
        J::String(s) => s.clone(),
        other => other.to_string(),
    };
    let fail = |message: String| SerdeError(format!("Cannot encode test value {value}: {message}"));
    let bytes = match spec.format {
        Format::None => return Ok(None),
        Format::Json => serde_json::to_vec(value).map_err(|e| fail(e.to_string()))?,
        Format::Delimited => text_of(value).into_bytes(),
        Format::Kafka => match single_type(context) {
            Some(SqlType::Integer) => {
                let number = match value {
                    J::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                    J::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                let number = number.ok_or_else(|| fail("not an INTEGER".into()))?;
                (number as i32).to_be_bytes().to_vec()
            }
            Some(SqlType::BigInt) => {
                let number = match value {
                    J::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                    J::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                number
                    .ok_or_else(|| fail("not a BIGINT".into()))?
                    .to_be_bytes()
                    .to_vec()
            }
            Some(SqlType::Double) => {
                let number = match value {
                    J::Number(n) => n.as_f64(),
                    J::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                number
                    .ok_or_else(|| fail("not a DOUBLE".into()))?
                    .to_be_bytes()
                    .to_vec()
            }
            Some(SqlType::Bytes) => base64::engine::general_purpose::STANDARD
                .decode(text_of(value))
                .map_err(|_| fail("not base64".into()))?,
            _ => text_of(value).into_bytes(),
        },
        Format::Avro => {
            let registry = context
                .registry
                .as_ref()
                .ok_or_else(|| fail("AVRO needs a Schema Registry".into()))?;
            let subject = format!(
                "{}-{}",
                context.topic,
                if context.side == Side::Key {
                    "key"
                } else {
                    "value"
                }
            );
            let schema_text = match declared_schema {
                Some(schema) => schema.to_string(),
                None => match registry.latest(&subject).map_err(fail)? {
                    Some((_, text)) => text,
                    None => {
                        let full_name =
                            spec.full_schema_name
                                .clone()
                                .unwrap_or_else(|| match context.side {
                                    Side::Key => avro::DEFAULT_KEY_SCHEMA_NAME.to_string(),
                                    Side::Value => avro::DEFAULT_VALUE_SCHEMA_NAME.to_string(),
                                });
                        avro::derive_schema(&context.columns, wrapped(spec, context), &full_name)
                            .to_string()
                    }
                },
            };
            let id = match spec.schema_id {
                Some(id) if declared_schema.is_none() => id,
                _ => registry.register(&subject, &schema_text).map_err(fail)?,
            };
            avro::encode_json(value, &schema_text, id).map_err(fail)?
        }
        Format::Protobuf | Format::ProtobufNoSr | Format::JsonSr => {
            return Err(unsupported(spec.format))
        }
    };
    Ok(Some(bytes))
}

/// A record's key or value bytes as the JSON the corpus's expected records are written in.
pub fn decode_test_value(
    spec: &FormatSpec,
    context: &SerdeContext,
    bytes: Option<&[u8]>,
) -> Result<serde_json::Value, SerdeError> {
    use serde_json::Value as J;
    let Some(bytes) = bytes else {
        return Ok(J::Null);
    };
    let fail = |message: String| SerdeError(format!("Cannot decode test value: {message}"));
    let number = |value: f64| {
        serde_json::Number::from_f64(value)
            .map(J::Number)
            .unwrap_or_else(|| J::String(crate::value::java_double_to_string(value)))
    };
    Ok(match spec.format {
        Format::None => J::Null,
        Format::Json => serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?,
        Format::Delimited => J::String(String::from_utf8_lossy(bytes).into_owned()),
        Format::Kafka => match single_type(context) {
            Some(SqlType::Integer) => {
                let array: [u8; 4] = bytes.try_into().map_err(|_| fail("not 4 bytes".into()))?;
                J::from(i32::from_be_bytes(array))
            }
            Some(SqlType::BigInt) => {
                let array: [u8; 8] = bytes.try_into().map_err(|_| fail("not 8 bytes".into()))?;
                J::from(i64::from_be_bytes(array))
            }
            Some(SqlType::Double) => {
                let array: [u8; 8] = bytes.try_into().map_err(|_| fail("not 8 bytes".into()))?;
                number(f64::from_be_bytes(array))
            }
            Some(SqlType::Bytes) => {
                J::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            _ => J::String(String::from_utf8_lossy(bytes).into_owned()),
        },
        Format::Avro => {
            let registry = context
                .registry
                .as_ref()
                .ok_or_else(|| fail("AVRO needs a Schema Registry".into()))?;
            avro::decode_json(bytes, registry.as_ref()).map_err(fail)?
        }
        Format::Protobuf | Format::ProtobufNoSr | Format::JsonSr => {
            return Err(unsupported(spec.format))
        }
    })
}

/// Whether an actual record part matches the expected one, as loosely as ksqlDB's harness.
pub fn test_values_match(expected: &serde_json::Value, actual: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (expected, actual) {
        (J::Number(e), J::Number(a)) => numbers_equal(e, a),
        (J::String(e), J::Number(a)) | (J::Number(a), J::String(e)) => e
            .trim()
            .parse::<f64>()
            .ok()
            .zip(a.as_f64())
            .is_some_and(|(e, a)| e == a),
        (J::Array(e), J::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| test_values_match(e, a))
        }
        (J::Object(e), J::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(key, e)| a.get(key).is_some_and(|a| test_values_match(e, a)))
        }
        (e, a) => e == a,
    }
}

fn numbers_equal(expected: &serde_json::Number, actual: &serde_json::Number) -> bool {
    if let (Some(e), Some(a)) = (expected.as_i64(), actual.as_i64()) {
        return e == a;
    }
    if let (Some(e), Some(a)) = (expected.as_u64(), actual.as_u64()) {
        return e == a;
    }
    match (expected.as_f64(), actual.as_f64()) {
        (Some(e), Some(a)) => e == a,
        _ => false,
    }
}
