//! ksqlDB values, one per cell, and the columns that hold a batch's cells of one field.

use std::fmt::Write as _;

/// One ksqlDB value. The variant follows the column's `SqlType`; `Null` fits every type.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Boolean(bool),
    Integer(i32),
    BigInt(i64),
    Double(f64),
    /// `unscaled * 10^-scale`, as Java's BigDecimal (38 digits fit an i128).
    Decimal {
        unscaled: i128,
        scale: u8,
    },
    String(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i64),
    /// Milliseconds since the epoch, UTC.
    Timestamp(i64),
    Array(Vec<Value>),
    /// Entries in insertion order (ksqlDB's maps keep it in JSON and print it).
    Map(Vec<(Value, Value)>),
    /// Field values in the order of the struct type's fields.
    Struct(Vec<Value>),
}

/// The cells of one field across the records of a batch.
pub type ColumnValues = Vec<Value>;

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64 for INTEGER and BIGINT; `None` otherwise.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(v) => Some(*v as i64),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as an f64 for every numeric variant (decimals rounded); `None` otherwise.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(v) => Some(*v as f64),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal { unscaled, scale } => Some(decimal_to_f64(*unscaled, *scale)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A decimal's value as the nearest f64 (through its decimal text, so it rounds once).
pub fn decimal_to_f64(unscaled: i128, scale: u8) -> f64 {
    decimal_to_string(unscaled, scale)
        .parse()
        .unwrap_or(f64::NAN)
}

/// A decimal as Java's `BigDecimal.toPlainString()` writes it: `12.30`, `-0.05`, `7`.
pub fn decimal_to_string(unscaled: i128, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 3);
    if unscaled < 0 {
        out.push('-');
    }
    let scale = scale as usize;
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    out
}

/// A double as Java's `Double.toString` writes it (ksqlDB's casts to STRING and its DELIMITED
/// and KAFKA-to-text output): `1.0`, `0.001`, `1.0E7`, `1.234E-5`, `NaN`, `Infinity`.
/// Appends `value` as [`java_double_to_string`] writes it, without a String of its own in
/// the common range (a JSON sink writes millions of these).
pub fn write_java_double(out: &mut String, value: f64) {
    if value.is_finite() && (1e-3..1e7).contains(&value.abs()) {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str(&java_double_to_string(value));
    }
}

pub fn java_double_to_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let magnitude = value.abs();
    // Java prints the smallest subnormal with two digits, not the shortest one.
    if magnitude == f64::from_bits(1) {
        return if value > 0.0 {
            "4.9E-324".into()
        } else {
            "-4.9E-324".into()
        };
    }
    if (1e-3..1e7).contains(&magnitude) {
        // zmij writes this range as plain decimals with ".0" on whole numbers, as Java does.
        return zmij::Buffer::new().format_finite(value).to_string();
    }
    // Shortest digits that round-trip, then Java's "d.dddE±n" layout.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mut out = String::with_capacity(scientific.len() + 2);
    out.push_str(mantissa);
    if !mantissa.contains('.') {
        out.push_str(".0");
    }
    let _ = write!(out, "E{exponent}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_java_writes_them() {
        assert_eq!(java_double_to_string(1.0), "1.0");
        assert_eq!(java_double_to_string(0.001), "0.001");
        assert_eq!(java_double_to_string(1e7), "1.0E7");
        assert_eq!(java_double_to_string(-1.234e-5), "-1.234E-5");
        assert_eq!(java_double_to_string(123456.789), "123456.789");
        assert_eq!(java_double_to_string(9999999.0), "9999999.0");
        assert_eq!(java_double_to_string(0.1 + 0.2), "0.30000000000000004");
        let mut out = String::new();
        write_java_double(&mut out, -2.5);
        write_java_double(&mut out, 1e-4);
        assert_eq!(out, "-2.51.0E-4");
        assert_eq!(java_double_to_string(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn decimals_are_written_plain() {
        assert_eq!(decimal_to_string(1230, 2), "12.30");
        assert_eq!(decimal_to_string(-5, 2), "-0.05");
        assert_eq!(decimal_to_string(7, 0), "7");
        assert_eq!(decimal_to_f64(-5, 2), -0.05);
    }
}
