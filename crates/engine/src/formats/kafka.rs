//! ksqlDB's KAFKA format: one primitive per message, as Kafka's own serializers write it —
//! INTEGER as 4 and BIGINT as 8 big-endian bytes, DOUBLE as the 8 big-endian bytes of its IEEE
//! value, STRING as UTF-8 and BYTES as they are.

use crate::types::SqlType;
use crate::value::Value;

/// The column types the KAFKA format can carry.
pub(crate) fn supports(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Integer | SqlType::BigInt | SqlType::Double | SqlType::String | SqlType::Bytes
    )
}

pub(crate) fn deserialize(bytes: &[u8], ty: &SqlType) -> Result<Value, String> {
    let fixed = |size: usize, deserializer: &str| -> Result<(), String> {
        if bytes.len() == size {
            Ok(())
        } else {
            Err(format!(
                "Size of data received by {deserializer} is not {size}"
            ))
        }
    };
    Ok(match ty {
        SqlType::Integer => {
            fixed(4, "IntegerDeserializer")?;
            Value::Integer(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        SqlType::BigInt => {
            fixed(8, "LongDeserializer")?;
            Value::BigInt(i64::from_be_bytes(eight(bytes)))
        }
        SqlType::Double => {
            fixed(8, "DoubleDeserializer")?;
            Value::Double(f64::from_be_bytes(eight(bytes)))
        }
        // Java's StringDeserializer replaces malformed input rather than failing.
        SqlType::String => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        SqlType::Bytes => Value::Bytes(bytes.to_vec()),
        other => {
            return Err(format!(
                "The 'KAFKA' format does not support type '{other}'"
            ))
        }
    })
}

fn eight(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// `None` for NULL: Kafka's serializers write no bytes for null.
pub(crate) fn serialize(value: &Value) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Integer(v) => v.to_be_bytes().to_vec(),
        Value::BigInt(v) => v.to_be_bytes().to_vec(),
        Value::Double(v) => v.to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => return Err(format!("The 'KAFKA' format cannot write {other:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_big_endian() {
        for (value, ty, bytes) in [
            (Value::Integer(2), SqlType::Integer, vec![0, 0, 0, 2]),
            (Value::BigInt(-1), SqlType::BigInt, vec![0xff; 8]),
            (
                Value::Double(2.0),
                SqlType::Double,
                2.0f64.to_be_bytes().to_vec(),
            ),
            (
                Value::String("é".into()),
                SqlType::String,
                "é".as_bytes().to_vec(),
            ),
            (Value::Bytes(vec![1, 2]), SqlType::Bytes, vec![1, 2]),
        ] {
            assert_eq!(serialize(&value).unwrap(), Some(bytes.clone()));
            assert_eq!(deserialize(&bytes, &ty).unwrap(), value);
        }
        assert_eq!(serialize(&Value::Null).unwrap(), None);
        let error = deserialize(&[0, 1], &SqlType::Integer).unwrap_err();
        assert_eq!(
            error,
            "Size of data received by IntegerDeserializer is not 4"
        );
    }
}
