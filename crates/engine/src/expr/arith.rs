//! Arithmetic and comparison with Java's semantics: INTEGER and BIGINT wrap on overflow,
//! integer division truncates and fails on zero, DOUBLE follows IEEE, DECIMAL follows
//! BigDecimal with ksqlDB's result precision and scale.

use std::cmp::Ordering;

use crate::formats::decimal::unscaled_digits;
use crate::sql::ast::BinaryOp;
use crate::types::SqlType;
use crate::value::{decimal_to_f64, Value};

/// The type of `left op right` for + - * / %, or `None` when the operands are not numbers.
pub fn arithmetic_type(op: BinaryOp, left: &SqlType, right: &SqlType) -> Option<SqlType> {
    use SqlType::*;
    match (left, right) {
        (Double, l) | (l, Double) if l.is_numeric() => Some(Double),
        (Decimal { .. }, _) | (_, Decimal { .. }) => {
            let (p1, s1) = left.as_decimal()?;
            let (p2, s2) = right.as_decimal()?;
            let (p1, s1, p2, s2) = (p1 as i32, s1 as i32, p2 as i32, s2 as i32);
            let (precision, scale) = match op {
                BinaryOp::Add | BinaryOp::Subtract => {
                    let scale = s1.max(s2);
                    ((p1 - s1).max(p2 - s2) + scale + 1, scale)
                }
                BinaryOp::Multiply => (p1 + p2 + 1, s1 + s2),
                BinaryOp::Divide => {
                    let scale = 6.max(s1 + p2 + 1);
                    (p1 - s1 + s2 + scale, scale)
                }
                BinaryOp::Modulo => {
                    let scale = s1.max(s2);
                    ((p1 - s1).min(p2 - s2) + scale, scale)
                }
                _ => return None,
            };
            let precision = precision.clamp(1, 38);
            Some(Decimal {
                precision: precision as u8,
                scale: scale.min(precision) as u8,
            })
        }
        (BigInt, Integer | BigInt) | (Integer, BigInt) => Some(BigInt),
        (Integer, Integer) => Some(Integer),
        _ => None,
    }
}

/// `left op right` for numbers already known to have `result` type; NULL when either is NULL.
pub fn arithmetic(
    op: BinaryOp,
    left: &Value,
    right: &Value,
    result: &SqlType,
) -> Result<Value, String> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    match result {
        SqlType::Integer => {
            let (a, b) = (
                left.as_i64().unwrap_or(0) as i32,
                right.as_i64().unwrap_or(0) as i32,
            );
            Ok(Value::Integer(match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Subtract => a.wrapping_sub(b),
                BinaryOp::Multiply => a.wrapping_mul(b),
                BinaryOp::Divide => {
                    checked_divisor(b)?;
                    a.wrapping_div(b)
                }
                BinaryOp::Modulo => {
                    checked_divisor(b)?;
                    a.wrapping_rem(b)
                }
                _ => return Err(format!("'{}' is not arithmetic", op.symbol())),
            }))
        }
        SqlType::BigInt => {
            let (a, b) = (left.as_i64().unwrap_or(0), right.as_i64().unwrap_or(0));
            Ok(Value::BigInt(match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Subtract => a.wrapping_sub(b),
                BinaryOp::Multiply => a.wrapping_mul(b),
                BinaryOp::Divide => {
                    checked_divisor(b)?;
                    a.wrapping_div(b)
                }
                BinaryOp::Modulo => {
                    checked_divisor(b)?;
                    a.wrapping_rem(b)
                }
                _ => return Err(format!("'{}' is not arithmetic", op.symbol())),
            }))
        }
        SqlType::Double => {
            let (a, b) = (
                left.as_f64().unwrap_or(f64::NAN),
                right.as_f64().unwrap_or(f64::NAN),
            );
            Ok(Value::Double(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Subtract => a - b,
                BinaryOp::Multiply => a * b,
                BinaryOp::Divide => a / b,
                BinaryOp::Modulo => a % b,
                _ => return Err(format!("'{}' is not arithmetic", op.symbol())),
            }))
        }
        SqlType::Decimal { precision, scale } => {
            decimal_arithmetic(op, left, right, *precision, *scale)
        }
        other => Err(format!("cannot do arithmetic in {other}")),
    }
}

/// Java throws ArithmeticException("/ by zero") for integer division by zero.
fn checked_divisor<T: PartialEq + Default>(divisor: T) -> Result<(), String> {
    if divisor == T::default() {
        Err("/ by zero".into())
    } else {
        Ok(())
    }
}

/// A number as a decimal (unscaled, scale); doubles are refused (the caller widened already).
pub fn to_decimal(value: &Value) -> Option<(i128, u8)> {
    match value {
        Value::Integer(v) => Some((*v as i128, 0)),
        Value::BigInt(v) => Some((*v as i128, 0)),
        Value::Decimal { unscaled, scale } => Some((*unscaled, *scale)),
        _ => None,
    }
}

pub fn pow10(exponent: u32) -> i128 {
    10i128.pow(exponent.min(38))
}

/// `unscaled * 10^-from` at scale `to`, rounding HALF_UP when digits are dropped.
pub fn rescale(unscaled: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        unscaled.checked_mul(pow10((to - from) as u32))
    } else {
        let divisor = pow10((from - to) as u32);
        let quotient = unscaled / divisor;
        let remainder = unscaled % divisor;
        Some(if remainder.abs() * 2 >= divisor {
            quotient + unscaled.signum()
        } else {
            quotient
        })
    }
}

/// A decimal that must fit DECIMAL(precision, scale), rounded HALF_UP to the scale.
pub fn fit_decimal(
    unscaled: i128,
    from_scale: u8,
    precision: u8,
    scale: u8,
) -> Result<Value, String> {
    let rescaled = rescale(unscaled, from_scale, scale).ok_or("Numeric field overflow")?;
    if unscaled_digits(rescaled) > precision as u32 {
        return Err(format!(
            "Cannot fit decimal '{}' into DECIMAL({precision}, {scale}) without rounding. (Requires {},{})",
            crate::value::decimal_to_string(unscaled, from_scale),
            unscaled_digits(unscaled).max(from_scale as u32 + 1),
            from_scale
        ));
    }
    Ok(Value::Decimal {
        unscaled: rescaled,
        scale,
    })
}

fn decimal_arithmetic(
    op: BinaryOp,
    left: &Value,
    right: &Value,
    precision: u8,
    scale: u8,
) -> Result<Value, String> {
    let (a, sa) = to_decimal(left).ok_or("not a decimal")?;
    let (b, sb) = to_decimal(right).ok_or("not a decimal")?;
    let common = sa.max(sb);
    let a = rescale(a, sa, common).ok_or("Numeric field overflow")?;
    let b = rescale(b, sb, common).ok_or("Numeric field overflow")?;
    let (unscaled, result_scale) = match op {
        BinaryOp::Add => (a.checked_add(b).ok_or("Numeric field overflow")?, common),
        BinaryOp::Subtract => (a.checked_sub(b).ok_or("Numeric field overflow")?, common),
        BinaryOp::Multiply => (
            a.checked_mul(b).ok_or("Numeric field overflow")?,
            common * 2,
        ),
        BinaryOp::Divide => {
            if b == 0 {
                return Err("Division by zero".into());
            }
            // a/b at `scale` digits: (a * 10^scale) / b, HALF_UP.
            let numerator = a
                .checked_mul(pow10(scale as u32))
                .ok_or("Numeric field overflow")?;
            let quotient = numerator / b;
            let remainder = numerator % b;
            let rounded = if remainder.abs() * 2 >= b.abs() {
                quotient + (numerator.signum() * b.signum())
            } else {
                quotient
            };
            (rounded, scale)
        }
        BinaryOp::Modulo => {
            if b == 0 {
                return Err("Division by zero".into());
            }
            (a % b, common)
        }
        _ => return Err(format!("'{}' is not arithmetic", op.symbol())),
    };
    fit_decimal(unscaled, result_scale, precision, scale)
}

/// Orders two non-null values of comparable types (numbers across types, strings, booleans,
/// dates and times, and arrays/structs element-wise); `None` when they cannot be compared.
pub fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Integer(_) | Value::BigInt(_), Value::Integer(_) | Value::BigInt(_)) => {
            left.as_i64()?.partial_cmp(&right.as_i64()?)
        }
        (Value::Decimal { .. }, Value::Decimal { .. } | Value::Integer(_) | Value::BigInt(_))
        | (Value::Integer(_) | Value::BigInt(_), Value::Decimal { .. }) => {
            let (a, sa) = to_decimal(left)?;
            let (b, sb) = to_decimal(right)?;
            let common = sa.max(sb);
            match (rescale(a, sa, common), rescale(b, sb, common)) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => decimal_to_f64(a, sa).partial_cmp(&decimal_to_f64(b, sb)),
            }
        }
        (Value::Double(_), _) | (_, Value::Double(_)) => {
            left.as_f64()?.partial_cmp(&right.as_f64()?)
        }
        (Value::String(a), Value::String(b)) => a.partial_cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => a.partial_cmp(b),
        (Value::Bytes(a), Value::Bytes(b)) => a.partial_cmp(b),
        (Value::Date(a), Value::Date(b)) => a.partial_cmp(b),
        (Value::Time(a), Value::Time(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => {
            a.partial_cmp(b)
        }
        (Value::Date(d), Value::Timestamp(t)) => (*d as i64 * 86_400_000).partial_cmp(t),
        (Value::Timestamp(t), Value::Date(d)) => t.partial_cmp(&(*d as i64 * 86_400_000)),
        (Value::Array(a), Value::Array(b)) | (Value::Struct(a), Value::Struct(b)) => {
            for (x, y) in a.iter().zip(b) {
                // Inside a collection NULL equals NULL and sorts first.
                match (x.is_null(), y.is_null()) {
                    (true, true) => continue,
                    (true, false) => return Some(Ordering::Less),
                    (false, true) => return Some(Ordering::Greater),
                    _ => {}
                }
                match compare(x, y)? {
                    Ordering::Equal => continue,
                    other => return Some(other),
                }
            }
            a.len().partial_cmp(&b.len())
        }
        (Value::Map(a), Value::Map(b)) => {
            // Maps have no order: unequal maps compare as "less" so that <> sees them differ.
            let equal = a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    b.iter()
                        .any(|(k2, v2)| values_equal(k, k2) && values_equal(v, v2))
                });
            Some(if equal {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        _ => None,
    }
}

/// Equality as `=` sees it for non-null values.
pub fn values_equal(left: &Value, right: &Value) -> bool {
    if left.is_null() || right.is_null() {
        return left.is_null() && right.is_null();
    }
    compare(left, right) == Some(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_behave_as_java_ints() {
        let int = SqlType::Integer;
        assert_eq!(
            arithmetic(
                BinaryOp::Add,
                &Value::Integer(i32::MAX),
                &Value::Integer(1),
                &int
            )
            .unwrap(),
            Value::Integer(i32::MIN)
        );
        assert_eq!(
            arithmetic(
                BinaryOp::Divide,
                &Value::Integer(-7),
                &Value::Integer(2),
                &int
            )
            .unwrap(),
            Value::Integer(-3)
        );
        assert_eq!(
            arithmetic(
                BinaryOp::Modulo,
                &Value::Integer(-7),
                &Value::Integer(2),
                &int
            )
            .unwrap(),
            Value::Integer(-1)
        );
        assert_eq!(
            arithmetic(
                BinaryOp::Divide,
                &Value::Integer(1),
                &Value::Integer(0),
                &int
            )
            .unwrap_err(),
            "/ by zero"
        );
    }

    #[test]
    fn decimals_take_ksqldb_precision_and_scale() {
        let two = SqlType::Decimal {
            precision: 3,
            scale: 2,
        };
        let sum_type = arithmetic_type(BinaryOp::Add, &two, &SqlType::Integer).unwrap();
        assert_eq!(
            sum_type,
            SqlType::Decimal {
                precision: 13,
                scale: 2
            }
        );
        let sum = arithmetic(
            BinaryOp::Add,
            &Value::Decimal {
                unscaled: 150,
                scale: 2,
            },
            &Value::Integer(2),
            &sum_type,
        )
        .unwrap();
        assert_eq!(
            sum,
            Value::Decimal {
                unscaled: 350,
                scale: 2
            }
        );
        let quotient_type = arithmetic_type(BinaryOp::Divide, &two, &two).unwrap();
        let quotient = arithmetic(
            BinaryOp::Divide,
            &Value::Decimal {
                unscaled: 100,
                scale: 2,
            },
            &Value::Decimal {
                unscaled: 300,
                scale: 2,
            },
            &quotient_type,
        )
        .unwrap();
        assert_eq!(
            quotient,
            Value::Decimal {
                unscaled: 333_333,
                scale: 6
            }
        );
    }
}
