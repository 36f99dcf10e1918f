//! CAST with ksqlDB's rules, and values as text the way ksqlDB writes them.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::arith::{fit_decimal, to_decimal};
use crate::types::SqlType;
use crate::value::{decimal_to_string, java_double_to_string, Value};

const MILLIS_PER_DAY: i64 = 86_400_000;

/// A value as `CAST(... AS STRING)` writes it.
pub fn value_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(v) => v.to_string(),
        Value::BigInt(v) => v.to_string(),
        Value::Double(v) => java_double_to_string(*v),
        Value::Decimal { unscaled, scale } => decimal_to_string(*unscaled, *scale),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Date(days) => format_date(*days),
        Value::Time(millis) => format_time(*millis),
        Value::Timestamp(millis) => format_timestamp(*millis),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}={}", value_to_string(k), value_to_string(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Struct(fields) => {
            let parts: Vec<String> = fields.iter().map(value_to_string).collect();
            format!("Struct{{{}}}", parts.join(","))
        }
    }
}

pub fn format_date(days: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// ISO local time as Java's LocalTime.toString: seconds and fractions only when non-zero.
pub fn format_time(millis: i64) -> String {
    let total_seconds = millis.div_euclid(1000);
    let (h, m, s, ms) = (
        total_seconds / 3600,
        (total_seconds / 60) % 60,
        total_seconds % 60,
        millis.rem_euclid(1000),
    );
    if ms != 0 {
        format!("{h:02}:{m:02}:{s:02}.{ms:03}")
    } else if s != 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// ksqlDB's timestamp text: `yyyy-MM-ddTHH:mm:ss.SSS` in UTC.
pub fn format_timestamp(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
    )
}

/// Parses ksqlDB's date text (`yyyy-MM-dd`) to days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some(date.num_days_from_ce() - 719_163)
}

use chrono::Datelike;

/// Parses `HH:mm[:ss[.SSS]]` to milliseconds since midnight.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let time = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(text, f).ok())?;
    Some(time.num_seconds_from_midnight() as i64 * 1000 + (time.nanosecond() / 1_000_000) as i64)
}

/// Parses ISO timestamps (`2020-01-01T00:00:00.000`, with or without seconds, fractions, a
/// zone offset or `Z`) to epoch milliseconds (UTC when no zone is given).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_millis());
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    None
}

/// Whether ksqlDB allows `CAST(<from> AS <to>)`.
pub fn castable(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (_, String) => true,
        (String, _) if to.is_primitive() => !matches!(to, Bytes),
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Boolean, Integer | BigInt) => false,
        (Timestamp, Date | Time) | (Date, Timestamp) => true,
        (Array(a), Array(b)) => castable(a, b),
        (Map(ka, va), Map(kb, vb)) => castable(ka, kb) && castable(va, vb),
        (Struct(_), Struct(_)) => true,
        _ => false,
    }
}

/// `CAST(value AS to)`; NULL stays NULL. An Err is a processing error (the cell becomes NULL).
pub fn cast_value(value: &Value, to: &SqlType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (value, to) {
        (_, SqlType::String) => Value::String(value_to_string(value)),
        (Value::String(s), _) => return parse_string(s, to),
        (Value::Integer(v), SqlType::Integer) => Value::Integer(*v),
        (Value::BigInt(v), SqlType::Integer) => Value::Integer(*v as i32),
        (Value::Double(v), SqlType::Integer) => Value::Integer(*v as i32),
        (Value::Decimal { unscaled, scale }, SqlType::Integer) => {
            Value::Integer(truncate_decimal(*unscaled, *scale) as i32)
        }
        (Value::Integer(v), SqlType::BigInt) => Value::BigInt(*v as i64),
        (Value::BigInt(v), SqlType::BigInt) => Value::BigInt(*v),
        (Value::Double(v), SqlType::BigInt) => Value::BigInt(*v as i64),
        (Value::Decimal { unscaled, scale }, SqlType::BigInt) => {
            Value::BigInt(truncate_decimal(*unscaled, *scale) as i64)
        }
        (_, SqlType::Double) if value.as_f64().is_some() => {
            Value::Double(value.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Double(v), SqlType::Decimal { precision, scale }) => {
            if !v.is_finite() {
                return Err(format!(
                    "Cannot convert {} to DECIMAL",
                    java_double_to_string(*v)
                ));
            }
            let (unscaled, from_scale) =
                parse_decimal(&java_double_to_string(*v)).ok_or("bad double")?;
            fit_decimal(unscaled, from_scale, *precision, *scale)?
        }
        (_, SqlType::Decimal { precision, scale }) => {
            let (unscaled, from_scale) =
                to_decimal(value).ok_or_else(|| format!("Cannot cast {value:?} to DECIMAL"))?;
            fit_decimal(unscaled, from_scale, *precision, *scale)?
        }
        (Value::Boolean(b), SqlType::Boolean) => Value::Boolean(*b),
        (Value::Timestamp(t), SqlType::Date) => Value::Date(t.div_euclid(MILLIS_PER_DAY) as i32),
        (Value::Timestamp(t), SqlType::Time) => Value::Time(t.rem_euclid(MILLIS_PER_DAY)),
        (Value::Timestamp(t), SqlType::Timestamp) => Value::Timestamp(*t),
        (Value::Date(d), SqlType::Timestamp) => Value::Timestamp(*d as i64 * MILLIS_PER_DAY),
        (Value::Date(d), SqlType::Date) => Value::Date(*d),
        (Value::Time(t), SqlType::Time) => Value::Time(*t),
        (Value::Bytes(b), SqlType::Bytes) => Value::Bytes(b.clone()),
        (Value::Array(items), SqlType::Array(inner)) => Value::Array(
            items
                .iter()
                .map(|v| cast_value(v, inner))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Map(entries), SqlType::Map(k, v)) => Value::Map(
            entries
                .iter()
                .map(|(key, val)| Ok((cast_value(key, k)?, cast_value(val, v)?)))
                .collect::<Result<_, String>>()?,
        ),
        (Value::Struct(fields), SqlType::Struct(_)) => Value::Struct(fields.clone()),
        _ => return Err(format!("Cannot cast {value:?} to {to}")),
    })
}

/// Whether a type is or holds a STRUCT (whose casts need the field names).
pub fn has_struct(sql_type: &SqlType) -> bool {
    match sql_type {
        SqlType::Struct(_) => true,
        SqlType::Array(inner) => has_struct(inner),
        SqlType::Map(k, v) => has_struct(k) || has_struct(v),
        _ => false,
    }
}

/// `CAST(value AS to)` knowing the operand's type: a struct becomes the target struct field by
/// field, by name (fields the operand lacks are NULL), and its text is Kafka Connect's
/// `Struct{F0=1,f1=3}` (NULL fields left out).
pub fn cast_typed(value: &Value, from: &SqlType, to: &SqlType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (value, from, to) {
        (_, _, SqlType::String) => Value::String(typed_to_string(value, from)),
        (Value::Struct(values), SqlType::Struct(from_fields), SqlType::Struct(to_fields)) => {
            Value::Struct(
                to_fields
                    .iter()
                    .map(
                        |(name, to_type)| match from_fields.iter().position(|(f, _)| f == name) {
                            Some(i) => cast_typed(
                                values.get(i).unwrap_or(&Value::Null),
                                &from_fields[i].1,
                                to_type,
                            ),
                            None => Ok(Value::Null),
                        },
                    )
                    .collect::<Result<_, _>>()?,
            )
        }
        (Value::Array(items), SqlType::Array(from_inner), SqlType::Array(to_inner)) => {
            Value::Array(
                items
                    .iter()
                    .map(|v| cast_typed(v, from_inner, to_inner))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Value::Map(entries), SqlType::Map(fk, fv), SqlType::Map(tk, tv)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((cast_typed(k, fk, tk)?, cast_typed(v, fv, tv)?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => cast_value(value, to)?,
    })
}

/// A value as text, with its struct fields named.
fn typed_to_string(value: &Value, sql_type: &SqlType) -> String {
    match (value, sql_type) {
        (Value::Struct(values), SqlType::Struct(fields)) => {
            let parts: Vec<String> = fields
                .iter()
                .zip(values)
                .filter(|(_, v)| !v.is_null())
                .map(|((name, ty), v)| format!("{name}={}", typed_to_string(v, ty)))
                .collect();
            format!("Struct{{{}}}", parts.join(","))
        }
        (Value::Array(items), SqlType::Array(inner)) => {
            let parts: Vec<String> = items.iter().map(|v| typed_to_string(v, inner)).collect();
            format!("[{}]", parts.join(", "))
        }
        (Value::Map(entries), SqlType::Map(k, v)) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(key, val)| {
                    format!("{}={}", typed_to_string(key, k), typed_to_string(val, v))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => value_to_string(value),
    }
}

fn truncate_decimal(unscaled: i128, scale: u8) -> i128 {
    unscaled / super::arith::pow10(scale as u32)
}

/// `-12.340` -> (-12340, 3); exponents (`1.5E3`) are expanded.
pub fn parse_decimal(text: &str) -> Option<(i128, u8)> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches(['-', '+']);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut unscaled: i128 = format!("{whole}{fraction}")
        .trim_start_matches('0')
        .parse()
        .unwrap_or(0);
    let mut scale = fraction.len() as i32 - exponent;
    while scale < 0 {
        unscaled = unscaled.checked_mul(10)?;
        scale += 1;
    }
    if scale > 38 {
        return None;
    }
    Some((if negative { -unscaled } else { unscaled }, scale as u8))
}

fn parse_string(text: &str, to: &SqlType) -> Result<Value, String> {
    let trimmed = text.trim();
    let invalid = || format!("Cannot convert '{text}' to {to}");
    Ok(match to {
        SqlType::Integer => Value::Integer(trimmed.parse().map_err(|_| invalid())?),
        SqlType::BigInt => Value::BigInt(trimmed.parse().map_err(|_| invalid())?),
        SqlType::Double => Value::Double(parse_java_double(trimmed).ok_or_else(invalid)?),
        SqlType::Decimal { precision, scale } => {
            let (unscaled, from_scale) = parse_decimal(trimmed).ok_or_else(invalid)?;
            fit_decimal(unscaled, from_scale, *precision, *scale)?
        }
        SqlType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" => Value::Boolean(true),
            "false" | "f" | "no" | "n" => Value::Boolean(false),
            _ => return Err(invalid()),
        },
        // Partial text (`1970-01`) is the start of its period, as ksqlDB reads it.
        SqlType::Date => match parse_date(trimmed) {
            Some(days) => Value::Date(days),
            None => crate::functions::datetime::parse_temporal_literal(trimmed, to)
                .map_err(|_| invalid())?,
        },
        SqlType::Time => match parse_time(trimmed) {
            Some(millis) => Value::Time(millis),
            None => crate::functions::datetime::parse_temporal_literal(trimmed, to)
                .map_err(|_| invalid())?,
        },
        SqlType::Timestamp => match parse_timestamp(trimmed) {
            Some(millis) => Value::Timestamp(millis),
            None => crate::functions::datetime::parse_temporal_literal(trimmed, to)
                .map_err(|_| invalid())?,
        },
        _ => return Err(invalid()),
    })
}

/// Java's Double.parseDouble: also `NaN`, `Infinity`, a trailing `d`/`f`.
pub fn parse_java_double(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches(['d', 'D', 'f', 'F']);
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}
