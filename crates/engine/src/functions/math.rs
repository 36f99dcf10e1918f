//! Mathematical functions (ksqlDB's "MATHEMATICAL" category), with Java's arithmetic: integer
//! overflow wraps, ROUND of a double is `Math.round`, of a decimal or to n places HALF_UP above
//! zero and HALF_DOWN below (ties toward positive infinity), and
//! decimal results keep the precision and scale ksqlDB's schema providers give them.

use std::sync::Arc;

use super::{
    no_overload, overload, row_fn, BindError, BoundFunction, FunctionRegistry, GenericFunction,
    RowFn, ScalarFunction, SimpleFunction,
};
use crate::types::SqlType;
use crate::value::{java_double_to_string, Value};

use SqlType::{BigInt, Double, Integer};

const MATH: &str = "MATHEMATICAL";

/// How a decimal drops digits (Java's `RoundingMode`s that ksqlDB uses).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rounding {
    /// Ties toward positive infinity (ksqlDB's ROUND: HALF_UP above zero, HALF_DOWN below).
    HalfCeiling,
    Down,
    Floor,
    Ceiling,
}

/// `unscaled * 10^-scale` re-expressed with `new_scale` digits after the point.
pub fn rescale(unscaled: i128, scale: i32, new_scale: i32, mode: Rounding) -> i128 {
    if new_scale >= scale {
        return unscaled.saturating_mul(pow10((new_scale - scale) as u32));
    }
    let divisor = pow10((scale - new_scale) as u32);
    if divisor == 0 {
        return 0;
    }
    let quotient = unscaled / divisor;
    let remainder = unscaled % divisor;
    if remainder == 0 {
        return quotient;
    }
    let away = match mode {
        Rounding::Down => false,
        Rounding::Floor => unscaled < 0,
        Rounding::Ceiling => unscaled > 0,
        Rounding::HalfCeiling => {
            let twice = remainder.unsigned_abs() * 2;
            twice > divisor.unsigned_abs() || (twice == divisor.unsigned_abs() && unscaled > 0)
        }
    };
    if away {
        quotient + unscaled.signum()
    } else {
        quotient
    }
}

/// 10^n, or 0 past i128 (callers treat that as "all digits dropped").
fn pow10(n: u32) -> i128 {
    10i128.checked_pow(n).unwrap_or(0)
}

/// Rounds a decimal to `places` (negative: left of the point) and returns it with its own
/// `scale` again, as ksqlDB's `ROUND(DECIMAL, INT)` and `TRUNC(DECIMAL, INT)` do.
fn round_decimal_keep_scale(unscaled: i128, scale: u8, places: i64, mode: Rounding) -> Value {
    let places = places.clamp(-60, 60) as i32;
    let scale_i = scale as i32;
    if places >= scale_i {
        return Value::Decimal { unscaled, scale };
    }
    let rounded = rescale(unscaled, scale_i, places, mode);
    Value::Decimal {
        unscaled: rescale(rounded, places, scale_i, mode),
        scale,
    }
}

/// Java's `Math.round(double)`: floor(x + 1/2) computed exactly, saturating; NaN is 0.
pub fn java_math_round(x: f64) -> i64 {
    if x.is_nan() {
        return 0;
    }
    let floor = x.floor();
    let rounded = if x - floor >= 0.5 { floor + 1.0 } else { floor };
    rounded as i64
}

/// `BigDecimal.valueOf(x).setScale(places, mode).doubleValue()`: rounding the double's shortest
/// decimal text, as ksqlDB's ROUND(DOUBLE, INT) and TRUNC(DOUBLE, INT) do.
pub fn round_double_places(x: f64, places: i64, mode: Rounding) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let text = java_double_to_string(x);
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (mantissa, exponent) = match body.split_once('E') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (body, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    // value = 0.digits * 10^point
    let point = whole.len() as i32 + exponent;
    let keep = point + places.clamp(-400, 400) as i32;
    if keep >= digits.len() as i32 {
        return x;
    }
    let round_up = if keep < 0 {
        mode == Rounding::Ceiling && !negative || mode == Rounding::Floor && negative
    } else {
        let dropped = &digits[keep as usize..];
        let nonzero = dropped.iter().any(|&d| d != 0);
        match mode {
            Rounding::Down => false,
            Rounding::HalfCeiling => {
                let tie = dropped[0] == 5 && dropped[1..].iter().all(|&d| d == 0);
                dropped[0] > 5 || (dropped[0] == 5 && !tie) || (tie && !negative)
            }
            Rounding::Floor => negative && nonzero,
            Rounding::Ceiling => !negative && nonzero,
        }
    };
    let keep = keep.max(0) as usize;
    digits.truncate(keep);
    let mut point = point;
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                point += 1;
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    if digits.is_empty() {
        return if negative { -0.0 } else { 0.0 };
    }
    let text: String = digits.iter().map(|d| (d + b'0') as char).collect();
    let value: f64 = format!("0.{text}e{point}").parse().unwrap_or(f64::NAN);
    if negative {
        -value
    } else {
        value
    }
}

fn double_fn(
    registry: &mut FunctionRegistry,
    name: &'static str,
    description: &'static str,
    call: fn(&[Value]) -> Result<Value, String>,
) {
    registry.register(Arc::new(SimpleFunction {
        name,
        category: MATH,
        description,
        overloads: vec![overload(vec![Double], Double, call)],
    }));
}

/// NULL in, NULL out; otherwise `f` of the double.
fn unary(args: &[Value], f: impl Fn(f64) -> f64) -> Result<Value, String> {
    Ok(match args[0] {
        Value::Double(x) => Value::Double(f(x)),
        _ => Value::Null,
    })
}

fn binary(args: &[Value], f: impl Fn(f64, f64) -> f64) -> Result<Value, String> {
    Ok(match (&args[0], &args[1]) {
        (Value::Double(a), Value::Double(b)) => Value::Double(f(*a, *b)),
        _ => Value::Null,
    })
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    double_fn(
        registry,
        "SQRT",
        "Returns the correctly rounded positive square root of a DOUBLE value",
        |a| unary(a, f64::sqrt),
    );
    double_fn(
        registry,
        "CBRT",
        "Returns the cube root of an INT, BIGINT or DOUBLE value",
        |a| unary(a, f64::cbrt),
    );
    double_fn(registry, "EXP", "The exponential of a value.", |a| {
        unary(a, f64::exp)
    });
    double_fn(registry, "LN", "The natural logarithm of a value.", |a| {
        unary(a, f64::ln)
    });
    registry.register(Arc::new(SimpleFunction {
        name: "LOG",
        category: MATH,
        description: "Returns the natural logarithm of a value, or the logarithm of the value \
                      in the given base.",
        overloads: vec![
            overload(vec![Double], Double, |a| unary(a, f64::ln)),
            overload(vec![Double, Double], Double, |a| {
                binary(a, |base, value| {
                    if base <= 0.0 || base == 1.0 {
                        f64::NAN
                    } else {
                        value.ln() / base.ln()
                    }
                })
            }),
        ],
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "POWER",
        category: MATH,
        description: "Returns the value of the first argument raised to the power of the \
                      second argument.",
        overloads: vec![overload(vec![Double, Double], Double, |a| {
            binary(a, f64::powf)
        })],
    }));
    for (name, description, f) in [
        (
            "SIN",
            "Returns the sine of an INT, BIGINT, or DOUBLE value",
            f64::sin as fn(f64) -> f64,
        ),
        (
            "COS",
            "Returns the cosine of an INT, BIGINT, or DOUBLE value",
            f64::cos,
        ),
        (
            "TAN",
            "Returns the tangent of an INT, BIGINT, or DOUBLE value",
            f64::tan,
        ),
        (
            "ASIN",
            "Returns the inverse (arc) sine of an INT, BIGINT, or DOUBLE value",
            f64::asin,
        ),
        (
            "ACOS",
            "Returns the inverse (arc) cosine of an INT, BIGINT, or DOUBLE value",
            f64::acos,
        ),
        (
            "ATAN",
            "Returns the inverse (arc) tangent of an INT, BIGINT, or DOUBLE value",
            f64::atan,
        ),
        (
            "SINH",
            "Returns the hyperbolic sine of an INT, BIGINT, or DOUBLE value",
            f64::sinh,
        ),
        (
            "COSH",
            "Returns the hyperbolic cosine of an INT, BIGINT, or DOUBLE value",
            f64::cosh,
        ),
        (
            "TANH",
            "Returns the hyperbolic tangent of an INT, BIGINT, or DOUBLE value",
            f64::tanh,
        ),
        (
            "DEGREES",
            "Converts a BIGINT, INT, or DOUBLE value in radians to a value in degrees",
            f64::to_degrees,
        ),
        (
            "RADIANS",
            "Converts a BIGINT, INT, or DOUBLE value in degrees to a value in radians",
            f64::to_radians,
        ),
        (
            "COT",
            "Returns the cotangent of an INT, BIGINT, or DOUBLE value",
            |x: f64| 1.0 / x.tan(),
        ),
    ] {
        registry.register(Arc::new(UnaryDouble {
            name,
            description,
            f,
        }));
    }
    registry.register(Arc::new(SimpleFunction {
        name: "ATAN2",
        category: MATH,
        description: "Returns the inverse (arc) tangent of y / x",
        overloads: vec![overload(vec![Double, Double], Double, |a| {
            binary(a, f64::atan2)
        })],
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "PI",
        category: MATH,
        description: "Returns an approximate value of PI.",
        overloads: vec![overload(vec![], Double, |_| {
            Ok(Value::Double(std::f64::consts::PI))
        })],
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "RANDOM",
        category: MATH,
        description: "return a random DOUBLE value between 0.0 and 1.0",
        overloads: vec![overload(vec![], Double, |_| {
            let bits = super::string::random_u64() >> 11;
            Ok(Value::Double(bits as f64 / (1u64 << 53) as f64))
        })],
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "SIGN",
        category: MATH,
        description: "The sign of a numeric value as an INTEGER: -1 for negative values, 0 for \
                      zero and 1 for positive values",
        overloads: vec![
            overload(vec![Integer], Integer, |a| {
                Ok(a[0]
                    .as_i64()
                    .map_or(Value::Null, |v| Value::Integer(v.signum() as i32)))
            }),
            overload(vec![BigInt], Integer, |a| {
                Ok(a[0]
                    .as_i64()
                    .map_or(Value::Null, |v| Value::Integer(v.signum() as i32)))
            }),
            overload(
                vec![SqlType::Decimal {
                    precision: 38,
                    scale: 0,
                }],
                Integer,
                |a| {
                    Ok(match a[0] {
                        Value::Decimal { unscaled, .. } => Value::Integer(unscaled.signum() as i32),
                        _ => Value::Null,
                    })
                },
            ),
            overload(vec![Double], Integer, |a| {
                Ok(match a[0] {
                    Value::Double(x) if x.is_nan() => Value::Integer(0),
                    Value::Double(x) => Value::Integer(if x > 0.0 {
                        1
                    } else if x < 0.0 {
                        -1
                    } else {
                        0
                    }),
                    _ => Value::Null,
                })
            }),
        ],
    }));
    registry.register(Arc::new(GenericFunction {
        name: "ABS",
        category: MATH,
        description: "Returns the absolute value of its argument. If the argument is not \
                      negative, the argument is returned. If the argument is negative, the \
                      negation of the argument is returned.",
        signatures: &[
            "ABS(INTEGER) => INTEGER",
            "ABS(BIGINT) => BIGINT",
            "ABS(DOUBLE) => DOUBLE",
            "ABS(DECIMAL) => DECIMAL",
        ],
        bind: |types| {
            integral_or_same(types, |v| match v {
                Value::Integer(i) => Value::Integer(i.wrapping_abs()),
                Value::BigInt(i) => Value::BigInt(i.wrapping_abs()),
                Value::Double(x) => Value::Double(x.abs()),
                Value::Decimal { unscaled, scale } => Value::Decimal {
                    unscaled: unscaled.abs(),
                    scale: *scale,
                },
                _ => Value::Null,
            })
        },
    }));
    registry.register(Arc::new(GenericFunction {
        name: "CEIL",
        category: MATH,
        description: "Returns the smallest integer value that is greater than or equal to the \
                      argument.",
        signatures: &[
            "CEIL(INTEGER) => INTEGER",
            "CEIL(BIGINT) => BIGINT",
            "CEIL(DOUBLE) => DOUBLE",
            "CEIL(DECIMAL) => DECIMAL",
        ],
        bind: |types| integral_or_same(types, |v| round_whole(v, Rounding::Ceiling)),
    }));
    registry.register(Arc::new(GenericFunction {
        name: "FLOOR",
        category: MATH,
        description: "Returns the largest integer value that is less than or equal to the \
                      argument.",
        signatures: &[
            "FLOOR(INTEGER) => INTEGER",
            "FLOOR(BIGINT) => BIGINT",
            "FLOOR(DOUBLE) => DOUBLE",
            "FLOOR(DECIMAL) => DECIMAL",
        ],
        bind: |types| integral_or_same(types, |v| round_whole(v, Rounding::Floor)),
    }));
    registry.register(Arc::new(GenericFunction {
        name: "ROUND",
        category: MATH,
        description: "Round a value to the number of decimal places as specified by scale to \
                      the right of the decimal point. If scale is negative then value is \
                      rounded to the right of the decimal point. Numbers equidistant to the \
                      nearest value are rounded up (in the positive direction). If the number \
                      of decimal places is not provided it defaults to zero.",
        signatures: &[
            "ROUND(INTEGER) => INTEGER",
            "ROUND(BIGINT) => BIGINT",
            "ROUND(DOUBLE) => BIGINT",
            "ROUND(DOUBLE, INTEGER) => DOUBLE",
            "ROUND(DECIMAL) => DECIMAL",
            "ROUND(DECIMAL, INTEGER) => DECIMAL",
        ],
        bind: |types| bind_round(types, Rounding::HalfCeiling),
    }));
    registry.register(Arc::new(GenericFunction {
        name: "TRUNC",
        category: MATH,
        description: "Truncates a value to the number of decimal places as specified by scale \
                      to the right of the decimal point. If scale is negative then value is \
                      truncated to the right of the decimal point. If the number of decimal \
                      places is not provided it defaults to zero.",
        signatures: &[
            "TRUNC(INTEGER) => INTEGER",
            "TRUNC(BIGINT) => BIGINT",
            "TRUNC(DOUBLE) => BIGINT",
            "TRUNC(DOUBLE, INTEGER) => DOUBLE",
            "TRUNC(DECIMAL) => DECIMAL",
            "TRUNC(DECIMAL, INTEGER) => DECIMAL",
        ],
        bind: |types| bind_round(types, Rounding::Down),
    }));
    registry.register(Arc::new(SimpleFunction {
        name: "GEO_DISTANCE",
        category: MATH,
        description: "Compute the distance between two points on the surface of the earth, \
                      according to the Haversine formula for \"great circle distance\". The \
                      2 input points should be specified as (lat, lon) pairs, measured in \
                      decimal degrees. An optional fifth parameter allows to specify either \
                      \"MI\" (miles) or \"KM\" (kilometers) as the desired unit for the output \
                      measurement. Default is KM.",
        overloads: vec![
            overload(vec![Double, Double, Double, Double], Double, geo_distance),
            overload(
                vec![Double, Double, Double, Double, SqlType::String],
                Double,
                geo_distance,
            ),
        ],
    }));
    registry.register(Arc::new(Extreme {
        name: "GREATEST",
        greatest: true,
    }));
    registry.register(Arc::new(Extreme {
        name: "LEAST",
        greatest: false,
    }));
}

/// Haversine distance, in km (radius 6371) or miles (3959), as ksqlDB computes it.
fn geo_distance(args: &[Value]) -> Result<Value, String> {
    let coordinates: Option<Vec<f64>> = args[..4].iter().map(Value::as_f64).collect();
    let Some(c) = coordinates else {
        return Ok(Value::Null);
    };
    let radius = match args.get(4) {
        None => 6371.0,
        Some(Value::String(unit)) => match unit.to_ascii_uppercase().as_str() {
            "KM" | "KMS" | "KILOMETER" | "KILOMETERS" | "KILOMETRE" | "KILOMETRES" => 6371.0,
            "MI" | "MILES" | "MILE" => 3959.0,
            other => {
                return Err(format!(
                    "GeoDistance function units parameter must be one of (MI, KM), got {other}"
                ))
            }
        },
        Some(_) => 6371.0,
    };
    for (lat, lon) in [(c[0], c[1]), (c[2], c[3])] {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(
                "valid latitude values for GeoDistance function are in the range of -90 to 90 \
                 decimal degrees, and valid longitude values are in the range of -180 to 180 \
                 decimal degrees"
                    .into(),
            );
        }
    }
    let delta_lat = (c[2] - c[0]).to_radians();
    let delta_lon = (c[3] - c[1]).to_radians();
    let a = (delta_lat / 2.0).sin().powi(2)
        + (delta_lon / 2.0).sin().powi(2) * c[0].to_radians().cos() * c[2].to_radians().cos();
    Ok(Value::Double(2.0 * radius * a.sqrt().asin()))
}

/// A DOUBLE -> DOUBLE function listed by `DESCRIBE FUNCTION` with its INT and BIGINT forms.
struct UnaryDouble {
    name: &'static str,
    description: &'static str,
    f: fn(f64) -> f64,
}

impl ScalarFunction for UnaryDouble {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        MATH
    }
    fn description(&self) -> &str {
        self.description
    }
    fn signatures(&self) -> Vec<String> {
        ["INTEGER", "BIGINT", "DOUBLE"]
            .iter()
            .map(|t| format!("{}({t}) => DOUBLE", self.name))
            .collect()
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        match arg_types {
            [Integer | BigInt | Double | SqlType::Decimal { .. }] => {
                let f = self.f;
                Ok(Arc::new(super::BoundGenericPublic::new(
                    Double,
                    row_fn(move |args| {
                        Ok(args[0]
                            .as_f64()
                            .map_or(Value::Null, |x| Value::Double(f(x))))
                    }),
                )))
            }
            _ => Err(no_overload(self.name, arg_types)),
        }
    }
}

/// One numeric argument; the result has the argument's type.
fn integral_or_same(types: &[SqlType], f: fn(&Value) -> Value) -> Option<(SqlType, RowFn)> {
    match types {
        [t @ (Integer | BigInt | Double | SqlType::Decimal { .. })] => {
            Some((t.clone(), row_fn(move |args| Ok(f(&args[0])))))
        }
        _ => None,
    }
}

/// CEIL and FLOOR: integers pass, doubles and decimals lose their fraction (decimals keep
/// their scale).
fn round_whole(value: &Value, mode: Rounding) -> Value {
    match value {
        Value::Double(x) => Value::Double(if mode == Rounding::Floor {
            x.floor()
        } else {
            x.ceil()
        }),
        Value::Decimal { unscaled, scale } => round_decimal_keep_scale(*unscaled, *scale, 0, mode),
        other => other.clone(),
    }
}

fn bind_round(types: &[SqlType], mode: Rounding) -> Option<(SqlType, RowFn)> {
    let places_ok = |t: Option<&SqlType>| matches!(t, None | Some(Integer));
    if types.is_empty() || types.len() > 2 || !places_ok(types.get(1)) {
        return None;
    }
    let with_places = types.len() == 2;
    let places = move |args: &[Value]| -> Option<i64> {
        if with_places {
            args[1].as_i64()
        } else {
            Some(0)
        }
    };
    match &types[0] {
        t @ (Integer | BigInt) if !with_places => {
            Some((t.clone(), row_fn(|args| Ok(args[0].clone()))))
        }
        Integer | BigInt | Double if with_places => Some((
            Double,
            row_fn(move |args| {
                Ok(match (args[0].as_f64(), places(args)) {
                    (Some(x), Some(n)) => Value::Double(round_double_places(x, n, mode)),
                    _ => Value::Null,
                })
            }),
        )),
        Double => Some((
            BigInt,
            row_fn(move |args| {
                Ok(match args[0] {
                    Value::Double(x) => Value::BigInt(if mode == Rounding::HalfCeiling {
                        java_math_round(x)
                    } else {
                        x.trunc() as i64
                    }),
                    _ => Value::Null,
                })
            }),
        )),
        SqlType::Decimal { precision, scale } => {
            let returns = if with_places {
                types[0].clone()
            } else {
                SqlType::Decimal {
                    precision: precision.saturating_sub(*scale).max(1),
                    scale: 0,
                }
            };
            Some((
                returns,
                row_fn(move |args| {
                    Ok(match (&args[0], places(args)) {
                        (Value::Decimal { unscaled, scale }, Some(n)) => {
                            if with_places {
                                round_decimal_keep_scale(*unscaled, *scale, n, mode)
                            } else {
                                Value::Decimal {
                                    unscaled: rescale(*unscaled, *scale as i32, 0, mode),
                                    scale: 0,
                                }
                            }
                        }
                        _ => Value::Null,
                    })
                }),
            ))
        }
        _ => None,
    }
}

/// GREATEST and LEAST: NULLs are skipped (all NULL gives NULL); arguments share one of
/// ksqlDB's overload types, numbers of different kinds only through DOUBLE, and STRING
/// literals stand for DATE, TIME or TIMESTAMP values among those.
struct Extreme {
    name: &'static str,
    greatest: bool,
}

impl ScalarFunction for Extreme {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        MATH
    }
    fn description(&self) -> &str {
        if self.greatest {
            "Returns the highest non-null value among a variable number of comparable columns. \
             If comparing columns of different numerical types, use CAST to first cast them to \
             be of the same type."
        } else {
            "Returns the lowest non-null value among a variable number of comparable columns. \
             If comparing columns of different numerical types, use CAST to first cast them to \
             be of the same type."
        }
    }
    fn signatures(&self) -> Vec<String> {
        [
            "INTEGER",
            "BIGINT",
            "DOUBLE",
            "DECIMAL",
            "STRING",
            "BYTES",
            "DATE",
            "TIME",
            "TIMESTAMP",
        ]
        .iter()
        .map(|t| format!("{}({t}, {t}...) => {t}", self.name))
        .collect()
    }
    fn bind_with_null_literals(
        &self,
        arg_types: &[Option<SqlType>],
    ) -> Result<Arc<dyn BoundFunction>, BindError> {
        // NULLs take the type of the typed arguments; all NULL is ambiguous, as in ksqlDB.
        let Some(known) = arg_types.iter().flatten().next().cloned() else {
            let nulls = vec!["null"; arg_types.len()].join(", ");
            return Err(BindError(if arg_types.is_empty() {
                format!(
                    "Function '{}' does not accept parameters ().",
                    self.name.to_ascii_lowercase()
                )
            } else {
                format!(
                    "Function '{}' cannot be resolved due to ambiguous method parameters ({nulls}).",
                    self.name.to_ascii_lowercase()
                )
            }));
        };
        let types: Vec<SqlType> = arg_types
            .iter()
            .map(|t| t.clone().unwrap_or_else(|| known.clone()))
            .collect();
        self.bind(&types)
    }

    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        let lower = self.name.to_ascii_lowercase();
        if arg_types.is_empty() {
            return Err(BindError(format!(
                "Function '{lower}' does not accept parameters ()."
            )));
        }
        let ambiguous = || {
            let shown: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
            BindError(format!(
                "Function '{lower}' cannot be resolved due to ambiguous method parameters ({}).",
                shown.join(", ")
            ))
        };
        let refused = || {
            let shown: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
            BindError(format!(
                "Function '{lower}' does not accept parameters ({}).",
                shown.join(", ")
            ))
        };
        let temporal = arg_types
            .iter()
            .find(|t| matches!(t, SqlType::Date | SqlType::Time | SqlType::Timestamp));
        let returns = if let Some(temporal) = temporal {
            if !arg_types
                .iter()
                .all(|t| t == temporal || *t == SqlType::String)
            {
                return Err(refused());
            }
            temporal.clone()
        } else if arg_types.iter().all(SqlType::is_numeric) {
            if arg_types.windows(2).all(|w| w[0] == w[1])
                || arg_types
                    .iter()
                    .all(|t| matches!(t, SqlType::Decimal { .. }))
            {
                super::common_type(arg_types).ok_or_else(refused)?
            } else if arg_types.contains(&Double) {
                Double
            } else {
                return Err(ambiguous());
            }
        } else if arg_types.windows(2).all(|w| w[0] == w[1])
            && matches!(arg_types[0], SqlType::String | SqlType::Bytes)
        {
            arg_types[0].clone()
        } else {
            return Err(refused());
        };
        let greatest = self.greatest;
        let target = returns.clone();
        Ok(Arc::new(super::BoundGenericPublic::new(
            returns,
            row_fn(move |args| {
                let mut best: Option<Value> = None;
                for arg in args {
                    let value = match (arg, &target) {
                        (Value::Null, _) => continue,
                        (Value::String(s), SqlType::Date | SqlType::Time | SqlType::Timestamp) => {
                            super::datetime::parse_temporal_literal(s, &target)?
                        }
                        _ => super::coerce(arg, &target),
                    };
                    let better = match &best {
                        None => true,
                        Some(current) => {
                            let ordering = compare_values(&value, current);
                            if greatest {
                                ordering == std::cmp::Ordering::Greater
                            } else {
                                ordering == std::cmp::Ordering::Less
                            }
                        }
                    };
                    if better {
                        best = Some(value);
                    }
                }
                Ok(best.unwrap_or(Value::Null))
            }),
        )))
    }
}

/// Orders two values of one type (numbers across kinds by value); NULL sorts first.
pub fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::BigInt(x), Value::BigInt(y)) => x.cmp(y),
        (Value::Integer(_) | Value::BigInt(_), Value::Integer(_) | Value::BigInt(_)) => {
            a.as_i64().cmp(&b.as_i64())
        }
        (
            Value::Decimal {
                unscaled: ua,
                scale: sa,
            },
            Value::Decimal {
                unscaled: ub,
                scale: sb,
            },
        ) => {
            let scale = (*sa).max(*sb) as i32;
            rescale(*ua, *sa as i32, scale, Rounding::Down).cmp(&rescale(
                *ub,
                *sb as i32,
                scale,
                Rounding::Down,
            ))
        }
        (Value::String(x), Value::String(y)) => {
            // Java compares UTF-16 code units.
            x.encode_utf16().cmp(y.encode_utf16())
        }
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let ordering = compare_values(p, q);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::FunctionRegistry;

    fn call(name: &str, types: &[SqlType], args: &[Value]) -> Value {
        let registry = FunctionRegistry::builtin();
        registry
            .get(name)
            .unwrap()
            .bind(types)
            .unwrap()
            .call(args)
            .unwrap()
    }

    fn dec(unscaled: i128, scale: u8) -> Value {
        Value::Decimal { unscaled, scale }
    }

    #[test]
    fn java_rounding_of_doubles() {
        assert_eq!(java_math_round(2.5), 3);
        assert_eq!(java_math_round(-2.5), -2);
        assert_eq!(java_math_round(-2.6), -3);
        assert_eq!(java_math_round(0.49999999999999994), 0);
        assert_eq!(round_double_places(2.345, 2, Rounding::HalfCeiling), 2.35);
        assert_eq!(round_double_places(-2.345, 2, Rounding::HalfCeiling), -2.34);
        assert_eq!(
            round_double_places(-2.3451, 2, Rounding::HalfCeiling),
            -2.35
        );
        assert_eq!(round_double_places(-1.5, 0, Rounding::HalfCeiling), -1.0);
        assert_eq!(rescale(-15, 1, 0, Rounding::HalfCeiling), -1);
        assert_eq!(rescale(-16, 1, 0, Rounding::HalfCeiling), -2);
        assert_eq!(rescale(15, 1, 0, Rounding::HalfCeiling), 2);
        assert_eq!(
            round_double_places(1234.5, -2, Rounding::HalfCeiling),
            1200.0
        );
        assert_eq!(
            round_double_places(1250.0, -2, Rounding::HalfCeiling),
            1300.0
        );
        assert_eq!(round_double_places(9.99, 1, Rounding::HalfCeiling), 10.0);
        assert_eq!(round_double_places(3.7, -1, Rounding::Down), 0.0);
        assert_eq!(
            round_double_places(1.0e20, 2, Rounding::HalfCeiling),
            1.0e20
        );
    }

    #[test]
    fn round_and_trunc_types_follow_ksqldb() {
        let registry = FunctionRegistry::builtin();
        let round = registry.get("ROUND").unwrap();
        assert_eq!(round.bind(&[Double]).unwrap().return_type(), BigInt);
        assert_eq!(
            round.bind(&[Double, Integer]).unwrap().return_type(),
            Double
        );
        let d = SqlType::Decimal {
            precision: 33,
            scale: 16,
        };
        assert_eq!(
            round.bind(std::slice::from_ref(&d)).unwrap().return_type(),
            SqlType::Decimal {
                precision: 17,
                scale: 0
            }
        );
        assert_eq!(round.bind(&[d.clone(), Integer]).unwrap().return_type(), d);
        let d21 = SqlType::Decimal {
            precision: 2,
            scale: 1,
        };
        assert_eq!(
            call("ROUND", std::slice::from_ref(&d21), &[dec(-15, 1)]),
            dec(-1, 0)
        );
        assert_eq!(
            call("ROUND", std::slice::from_ref(&d21), &[dec(-16, 1)]),
            dec(-2, 0)
        );
        assert_eq!(
            call(
                "ROUND",
                &[d21.clone(), Integer],
                &[dec(1234, 3), Value::Integer(1)]
            ),
            dec(1200, 3)
        );
        assert_eq!(
            call(
                "ROUND",
                &[d21.clone(), Integer],
                &[dec(1255, 2), Value::Integer(-1)]
            ),
            dec(1000, 2)
        );
        assert_eq!(
            call("TRUNC", &[Double], &[Value::Double(-1.7)]),
            Value::BigInt(-1)
        );
        assert_eq!(
            call("ROUND", &[Double], &[Value::Double(-1.5)]),
            Value::BigInt(-1)
        );
        assert_eq!(
            call("FLOOR", std::slice::from_ref(&d21), &[dec(-11, 1)]),
            dec(-20, 1)
        );
        assert_eq!(call("CEIL", &[d21], &[dec(11, 1)]), dec(20, 1));
        assert_eq!(
            call("ABS", &[Integer], &[Value::Integer(i32::MIN)]),
            Value::Integer(i32::MIN)
        );
    }

    #[test]
    fn logs_powers_and_signs() {
        assert!(call(
            "LOG",
            &[Integer, Integer],
            &[Value::Integer(1), Value::Integer(8)]
        )
        .as_f64()
        .unwrap()
        .is_nan());
        assert_eq!(
            call(
                "LOG",
                &[Double, Double],
                &[Value::Double(2.0), Value::Double(8.0)]
            ),
            Value::Double(3.0)
        );
        assert_eq!(
            call("SIGN", &[Double], &[Value::Double(-0.5)]),
            Value::Integer(-1)
        );
        assert_eq!(
            call("COT", &[Integer], &[Value::Integer(0)]),
            Value::Double(f64::INFINITY)
        );
        assert_eq!(call("SQRT", &[Integer], &[Value::Null]), Value::Null);
        let Value::Double(r) = call("RANDOM", &[], &[]) else {
            panic!()
        };
        assert!((0.0..1.0).contains(&r));
    }

    #[test]
    fn geo_distance_is_haversine_in_km_or_miles() {
        let d = |unit: Option<&str>| {
            let mut args = vec![
                Value::Double(51.5257),
                Value::Double(-0.1122),
                Value::Double(-33.9323),
                Value::Double(18.4197),
            ];
            let mut types = vec![Double; 4];
            if let Some(unit) = unit {
                args.push(Value::String(unit.into()));
                types.push(SqlType::String);
            }
            call("GEO_DISTANCE", &types, &args).as_f64().unwrap()
        };
        assert!((d(None) - 9673.40421197142).abs() < 1e-9);
        assert!((d(Some("MI")) - 6011.1453892944355).abs() < 1e-9);
    }

    #[test]
    fn greatest_and_least_skip_nulls_and_refuse_ambiguity() {
        let registry = FunctionRegistry::builtin();
        let greatest = registry.get("GREATEST").unwrap();
        let err = greatest.bind(&[Integer, BigInt]).err().unwrap();
        assert_eq!(
            err.0,
            "Function 'greatest' cannot be resolved due to ambiguous method parameters \
             (INTEGER, BIGINT)."
        );
        assert_eq!(
            greatest
                .bind_with_null_literals(&[None, None])
                .err()
                .unwrap()
                .0,
            "Function 'greatest' cannot be resolved due to ambiguous method parameters \
             (null, null)."
        );
        let with_null = greatest
            .bind_with_null_literals(&[Some(Integer), None, Some(Integer)])
            .unwrap();
        assert_eq!(
            with_null
                .call(&[Value::Integer(1), Value::Null, Value::Integer(5)])
                .unwrap(),
            Value::Integer(5)
        );
        let bound = greatest.bind(&[Integer, BigInt, Double]).unwrap();
        assert_eq!(bound.return_type(), Double);
        assert_eq!(
            bound
                .call(&[Value::Integer(7), Value::Null, Value::Double(2.5)])
                .unwrap(),
            Value::Double(7.0)
        );
        let decimals = greatest
            .bind(&[
                SqlType::Decimal {
                    precision: 9,
                    scale: 2,
                },
                SqlType::Decimal {
                    precision: 7,
                    scale: 6,
                },
            ])
            .unwrap();
        assert_eq!(
            decimals.return_type(),
            SqlType::Decimal {
                precision: 13,
                scale: 6
            }
        );
        assert_eq!(
            decimals.call(&[dec(100, 2), dec(1_500_000, 6)]).unwrap(),
            dec(1_500_000, 6)
        );
        assert_eq!(
            call(
                "LEAST",
                &[SqlType::String, SqlType::String],
                &[Value::String("b".into()), Value::String("a".into())]
            ),
            Value::String("a".into())
        );
        assert_eq!(
            call(
                "GREATEST",
                &[SqlType::Date, SqlType::String],
                &[Value::Date(3), Value::String("1970-01-11".into())]
            ),
            Value::Date(10)
        );
    }
}
