//! Scalar functions: ksqlDB's built-ins and functions registered at run time (model UDFs).
//!
//! A function is bound once per call site, at plan time, to its argument types: binding picks
//! the overload (with ksqlDB's implicit widening INTEGER -> BIGINT -> DECIMAL -> DOUBLE), fixes
//! the return type and may precompute anything that depends on types only. The bound function
//! then runs on whole columns; most implement `call` for one row and inherit the column loop,
//! while model UDFs override `call_columns` to score a batch in one go.
//!
//! An error from a call is a processing error, as in ksqlDB: the cell becomes NULL, the error is
//! counted and logged with its row, and the record is still emitted.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::types::SqlType;
use crate::value::{ColumnValues, Value};

mod collections;
/// Date/time helpers the evaluator and formats can share (Java patterns, ISO text).
pub mod datetime;
pub mod java_time_pattern;
/// JSON reading with numbers kept as written, and ksqlDB values as JSON text.
pub mod json;
/// Java rounding, decimal rescaling and value ordering.
pub mod math;
mod nulls;
mod string;
/// Table functions: EXPLODE and CUBE_EXPLODE, and how several in one SELECT combine.
pub mod table;
mod url;

/// Why a function cannot be bound to the given argument types (a statement error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BindError(pub String);

/// One failed call: the row (within the batch) and ksqlDB-style message.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub row: usize,
    pub message: String,
}

/// A family of overloads under one name, as `DESCRIBE FUNCTION` shows it.
pub trait ScalarFunction: Send + Sync {
    /// The name, upper case.
    fn name(&self) -> &str;
    /// `SHOW FUNCTIONS`' category: STRING, MATHEMATICAL, DATE / TIME, JSON, ARRAY, MAP, ...
    fn category(&self) -> &str;
    fn description(&self) -> &str;
    /// The overloads as `DESCRIBE FUNCTION` lists them, e.g. `UCASE(input VARCHAR) => VARCHAR`.
    fn signatures(&self) -> Vec<String>;
    /// Chooses the overload for these argument types, or says why none fits (the message names
    /// the function and the types, as ksqlDB's "Function 'X' does not accept parameters (...)").
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError>;

    /// Binds where some arguments are untyped NULL literals (`None`), as in
    /// `SUBSTRING(s, NULL)`: each NULL takes the type of the first typed argument, then each of
    /// the common types in turn, until an overload fits (ksqlDB lets a NULL fit any parameter).
    fn bind_with_null_literals(
        &self,
        arg_types: &[Option<SqlType>],
    ) -> Result<Arc<dyn BoundFunction>, BindError> {
        if arg_types.iter().all(Option::is_some) {
            let types: Vec<SqlType> = arg_types.iter().flatten().cloned().collect();
            return self.bind(&types);
        }
        let mut candidates: Vec<SqlType> = arg_types.iter().flatten().cloned().collect();
        candidates.extend([
            SqlType::String,
            SqlType::Integer,
            SqlType::BigInt,
            SqlType::Double,
            SqlType::Boolean,
            SqlType::Decimal {
                precision: 10,
                scale: 0,
            },
            SqlType::Bytes,
            SqlType::Timestamp,
            SqlType::Date,
            SqlType::Time,
        ]);
        // Positions of the NULLs get one candidate each, tried position by position so that
        // `f(NULL, 1, NULL)` may give the two NULLs different types.
        let mut types: Vec<SqlType> = arg_types
            .iter()
            .map(|t| t.clone().unwrap_or(SqlType::String))
            .collect();
        let null_positions: Vec<usize> = (0..arg_types.len())
            .filter(|&i| arg_types[i].is_none())
            .collect();
        for candidate in &candidates {
            for &i in &null_positions {
                types[i] = candidate.clone();
            }
            if let Ok(bound) = self.bind(&types) {
                return Ok(bound);
            }
        }
        // Mixed types: each NULL alone tries the candidates while the others stay STRING.
        for &position in &null_positions {
            for candidate in &candidates {
                types[position] = candidate.clone();
                if let Ok(bound) = self.bind(&types) {
                    return Ok(bound);
                }
            }
        }
        let shown: Vec<String> = arg_types
            .iter()
            .map(|t| t.as_ref().map_or("NULL".to_string(), ToString::to_string))
            .collect();
        Err(BindError(format!(
            "Function '{}' does not accept parameters ({}).",
            self.name(),
            shown.join(", ")
        )))
    }
}

/// A function bound to argument types.
pub trait BoundFunction: Send + Sync {
    fn return_type(&self) -> SqlType;

    /// One row. `Err` is a processing error: the cell becomes NULL.
    fn call(&self, args: &[Value]) -> Result<Value, String>;

    /// A whole batch: `args[i]` is the i-th argument's column, `rows` the batch length (a
    /// function with no arguments still produces `rows` cells).
    fn call_columns(
        &self,
        args: &[ColumnValues],
        rows: usize,
        errors: &mut Vec<RowError>,
    ) -> ColumnValues {
        let mut row_args = Vec::with_capacity(args.len());
        (0..rows)
            .map(|row| {
                row_args.clear();
                row_args.extend(args.iter().map(|column| column[row].clone()));
                self.call(&row_args).unwrap_or_else(|message| {
                    errors.push(RowError { row, message });
                    Value::Null
                })
            })
            .collect()
    }
}

/// The functions a statement can call, by upper-case name.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    functions: BTreeMap<String, Arc<dyn ScalarFunction>>,
    /// Table functions (EXPLODE, CUBE_EXPLODE): one input row, many output rows.
    table_functions: BTreeMap<String, Arc<dyn table::TableFunction>>,
}

impl FunctionRegistry {
    /// ksqlDB's built-in scalar functions.
    pub fn builtin() -> Self {
        let mut registry = FunctionRegistry::default();
        string::register(&mut registry);
        math::register(&mut registry);
        nulls::register(&mut registry);
        json::register(&mut registry);
        datetime::register(&mut registry);
        collections::register(&mut registry);
        url::register(&mut registry);
        table::register(&mut registry);
        registry
    }

    /// Adds or replaces a table function (names are case-insensitive).
    pub fn register_table(&mut self, function: Arc<dyn table::TableFunction>) {
        self.table_functions
            .insert(function.name().to_ascii_uppercase(), function);
    }

    /// A table function by name; scalar functions are looked up with `get`.
    pub fn get_table(&self, name: &str) -> Option<&Arc<dyn table::TableFunction>> {
        self.table_functions.get(&name.to_ascii_uppercase())
    }

    /// Every table function, by name.
    pub fn iter_table(&self) -> impl Iterator<Item = &Arc<dyn table::TableFunction>> {
        self.table_functions.values()
    }

    /// Adds or replaces a function (names are case-insensitive).
    pub fn register(&mut self, function: Arc<dyn ScalarFunction>) {
        self.functions
            .insert(function.name().to_ascii_uppercase(), function);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ScalarFunction>> {
        self.functions.get(&name.to_ascii_uppercase())
    }

    /// Every function, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ScalarFunction>> {
        self.functions.values()
    }
}

/// A function with fixed overloads, each a plain Rust closure over one row: what most
/// built-ins are. Overloads are tried in order; the first whose parameter types accept the
/// argument types (exactly, or by widening) wins.
pub struct SimpleFunction {
    pub name: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    pub overloads: Vec<Overload>,
}

/// One overload of a `SimpleFunction`.
pub struct Overload {
    pub params: Vec<SqlType>,
    /// The last parameter repeats (`CONCAT(VARCHAR...)`).
    pub variadic: bool,
    pub returns: SqlType,
    /// Called with arguments already widened to `params`. NULL handling is the function's.
    pub call: fn(&[Value]) -> Result<Value, String>,
}

impl ScalarFunction for SimpleFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        self.category
    }
    fn description(&self) -> &str {
        self.description
    }
    fn signatures(&self) -> Vec<String> {
        self.overloads
            .iter()
            .map(|overload| {
                let params: Vec<String> = overload.params.iter().map(ToString::to_string).collect();
                let dots = if overload.variadic { "..." } else { "" };
                format!(
                    "{}({}{dots}) => {}",
                    self.name,
                    params.join(", "),
                    overload.returns
                )
            })
            .collect()
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        for overload in &self.overloads {
            if accepts(&overload.params, overload.variadic, arg_types) {
                return Ok(Arc::new(BoundSimple {
                    returns: overload.returns.clone(),
                    call: overload.call,
                    params: overload.params.clone(),
                }));
            }
        }
        Err(no_overload(self.name, arg_types))
    }
}

struct BoundSimple {
    returns: SqlType,
    /// For a variadic overload the last parameter type repeats.
    params: Vec<SqlType>,
    call: fn(&[Value]) -> Result<Value, String>,
}

impl BoundFunction for BoundSimple {
    fn return_type(&self) -> SqlType {
        self.returns.clone()
    }
    fn call(&self, args: &[Value]) -> Result<Value, String> {
        let widened: Vec<Value> = args
            .iter()
            .enumerate()
            .map(
                |(i, value)| match self.params.get(i).or(self.params.last()) {
                    Some(param) => widen(value, param),
                    None => value.clone(),
                },
            )
            .collect();
        (self.call)(&widened)
    }
}

/// ksqlDB's message when no overload fits.
pub fn no_overload(name: &str, arg_types: &[SqlType]) -> BindError {
    let types: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
    BindError(format!(
        "Function '{}' does not accept parameters ({}).",
        declared_name(name),
        types.join(", ")
    ))
}

/// The name ksqlDB's messages use: its built-ins are declared in lower case (`'geo_distance'`,
/// `'dateadd'`), except the conditional functions declared in upper case.
pub fn declared_name(name: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        upper @ ("COALESCE" | "IFNULL" | "NULLIF") => upper.to_string(),
        _ => name.to_ascii_lowercase(),
    }
}

/// Whether arguments of `arg_types` may be passed to parameters `params`.
pub fn accepts(params: &[SqlType], variadic: bool, arg_types: &[SqlType]) -> bool {
    if variadic {
        if arg_types.len() + 1 < params.len() {
            return false;
        }
    } else if arg_types.len() != params.len() {
        return false;
    }
    arg_types.iter().enumerate().all(|(i, arg)| {
        let param = params.get(i).or(params.last());
        param.is_some_and(|param| widens_to(arg, param))
    })
}

/// ksqlDB's implicit conversions for function arguments: the same type, or a number to a wider
/// number (INTEGER -> BIGINT -> DECIMAL -> DOUBLE). A NULL literal's type is `None` upstream and
/// never reaches here.
pub fn widens_to(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (Decimal { .. }, Decimal { .. }) => true,
        (Integer, BigInt | Decimal { .. } | Double) => true,
        (BigInt, Decimal { .. } | Double) => true,
        (Decimal { .. }, Double) => true,
        (Array(a), Array(b)) => widens_to(a, b),
        (Map(ka, va), Map(kb, vb)) => widens_to(ka, kb) && widens_to(va, vb),
        _ => false,
    }
}

/// Converts a value to a wider parameter type (see `widens_to`); other values pass unchanged.
pub fn widen(value: &Value, to: &SqlType) -> Value {
    match (value, to) {
        (Value::Integer(v), SqlType::BigInt) => Value::BigInt(*v as i64),
        (Value::Integer(v), SqlType::Double) => Value::Double(*v as f64),
        (Value::BigInt(v), SqlType::Double) => Value::Double(*v as f64),
        (Value::Decimal { .. }, SqlType::Double) => {
            Value::Double(value.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Integer(v), SqlType::Decimal { .. }) => Value::Decimal {
            unscaled: *v as i128,
            scale: 0,
        },
        (Value::BigInt(v), SqlType::Decimal { .. }) => Value::Decimal {
            unscaled: *v as i128,
            scale: 0,
        },
        (Value::Array(items), SqlType::Array(inner)) => {
            Value::Array(items.iter().map(|v| widen(v, inner)).collect())
        }
        _ => value.clone(),
    }
}

/// One row's work of a generically typed function, decided at bind time.
pub type RowFn = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// A function whose return type or behaviour depends on its argument types beyond what fixed
/// overloads say (`ARRAY_CONTAINS(ARRAY<T>, T)`, `ABS(DECIMAL(p, s))`, `COALESCE(T...)`): `bind`
/// looks at the types and returns the result type and the row function, or `None` when they do
/// not fit (the caller then reports ksqlDB's "does not accept parameters").
pub struct GenericFunction {
    pub name: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    pub signatures: &'static [&'static str],
    pub bind: fn(&[SqlType]) -> Option<(SqlType, RowFn)>,
}

impl ScalarFunction for GenericFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        self.category
    }
    fn description(&self) -> &str {
        self.description
    }
    fn signatures(&self) -> Vec<String> {
        self.signatures.iter().map(|s| s.to_string()).collect()
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        match (self.bind)(arg_types) {
            Some((returns, call)) => Ok(Arc::new(BoundGeneric { returns, call })),
            None => Err(no_overload(self.name, arg_types)),
        }
    }
}

struct BoundGeneric {
    returns: SqlType,
    call: RowFn,
}

/// A bound function made of a return type and a row closure (for hand-written `bind`s).
pub(crate) struct BoundGenericPublic(BoundGeneric);

impl BoundGenericPublic {
    pub(crate) fn new(returns: SqlType, call: RowFn) -> Self {
        BoundGenericPublic(BoundGeneric { returns, call })
    }
}

impl BoundFunction for BoundGenericPublic {
    fn return_type(&self) -> SqlType {
        self.0.returns.clone()
    }
    fn call(&self, args: &[Value]) -> Result<Value, String> {
        (self.0.call)(args)
    }
}

impl BoundFunction for BoundGeneric {
    fn return_type(&self) -> SqlType {
        self.returns.clone()
    }
    fn call(&self, args: &[Value]) -> Result<Value, String> {
        (self.call)(args)
    }
}

/// Shorthand for a fixed overload.
pub(crate) fn overload(
    params: Vec<SqlType>,
    returns: SqlType,
    call: fn(&[Value]) -> Result<Value, String>,
) -> Overload {
    Overload {
        params,
        variadic: false,
        returns,
        call,
    }
}

/// Shorthand for a variadic overload (the last parameter repeats).
pub(crate) fn variadic(
    params: Vec<SqlType>,
    returns: SqlType,
    call: fn(&[Value]) -> Result<Value, String>,
) -> Overload {
    Overload {
        params,
        variadic: true,
        returns,
        call,
    }
}

/// Wraps a row closure for `GenericFunction::bind`.
pub(crate) fn row_fn(
    f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
) -> RowFn {
    Arc::new(f)
}

/// The narrowest type every argument type widens to (ksqlDB's common type for GREATEST,
/// COALESCE, ARRAY_UNION ...): numbers widen INTEGER -> BIGINT -> DECIMAL -> DOUBLE, decimals
/// to a decimal holding both; other types must be equal.
pub fn common_type(types: &[SqlType]) -> Option<SqlType> {
    let mut iter = types.iter();
    let mut result = iter.next()?.clone();
    for next in iter {
        result = common_of_two(&result, next)?;
    }
    Some(result)
}

fn common_of_two(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    use SqlType::*;
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (Double, x) | (x, Double) if x.is_numeric() => Some(Double),
        (Decimal { .. }, _) | (_, Decimal { .. }) if a.is_numeric() && b.is_numeric() => {
            let (pa, sa) = a.as_decimal()?;
            let (pb, sb) = b.as_decimal()?;
            let scale = sa.max(sb);
            let whole = (pa - sa).max(pb - sb);
            Some(Decimal {
                precision: (whole + scale).min(38),
                scale,
            })
        }
        (Integer, BigInt) | (BigInt, Integer) => Some(BigInt),
        (Array(x), Array(y)) => Some(Array(Box::new(common_of_two(x, y)?))),
        (Map(ka, va), Map(kb, vb)) => Some(Map(
            Box::new(common_of_two(ka, kb)?),
            Box::new(common_of_two(va, vb)?),
        )),
        _ => None,
    }
}

/// Converts a value to `to` for a common type (see `common_type`): numbers widen, decimals take
/// the target scale, containers convert their elements.
pub fn coerce(value: &Value, to: &SqlType) -> Value {
    match (value, to) {
        (Value::Decimal { unscaled, scale }, SqlType::Decimal { scale: target, .. })
            if scale < target =>
        {
            Value::Decimal {
                unscaled: unscaled * 10i128.pow((target - scale) as u32),
                scale: *target,
            }
        }
        (Value::Integer(_) | Value::BigInt(_), SqlType::Decimal { scale, .. }) => {
            let v = value.as_i64().unwrap_or(0) as i128;
            Value::Decimal {
                unscaled: v * 10i128.pow(*scale as u32),
                scale: *scale,
            }
        }
        (Value::Array(items), SqlType::Array(inner)) => {
            Value::Array(items.iter().map(|v| coerce(v, inner)).collect())
        }
        (Value::Map(entries), SqlType::Map(k, v)) => Value::Map(
            entries
                .iter()
                .map(|(key, value)| (coerce(key, k), coerce(value, v)))
                .collect(),
        ),
        _ => widen(value, to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_describes_itself() {
        let registry = FunctionRegistry::builtin();
        let functions: Vec<_> = registry.iter().collect();
        assert!(functions.len() >= 128, "{} functions", functions.len());
        for function in functions {
            assert!(!function.category().is_empty(), "{}", function.name());
            assert!(!function.description().is_empty(), "{}", function.name());
            assert!(!function.signatures().is_empty(), "{}", function.name());
            assert_eq!(function.name(), function.name().to_ascii_uppercase());
        }
    }

    /// Extreme values never panic a built-in: a bad cell is a processing error or a value.
    #[test]
    fn builtins_survive_extreme_arguments() {
        use SqlType::*;
        let samples: Vec<(SqlType, Vec<Value>)> = vec![
            (
                String,
                vec![
                    Value::String("".into()),
                    Value::String("a\u{1F600}%zz'[$".into()),
                    Value::String("-1".into()),
                    Value::Null,
                ],
            ),
            (
                Integer,
                vec![
                    Value::Integer(i32::MIN),
                    Value::Integer(0),
                    Value::Integer(i32::MAX),
                    Value::Integer(-1),
                ],
            ),
            (
                BigInt,
                vec![Value::BigInt(i64::MIN), Value::BigInt(i64::MAX)],
            ),
            (
                Double,
                vec![
                    Value::Double(f64::NAN),
                    Value::Double(f64::NEG_INFINITY),
                    Value::Double(1e308),
                ],
            ),
            (
                Decimal {
                    precision: 38,
                    scale: 2,
                },
                vec![Value::Decimal {
                    unscaled: -(10i128.pow(38) - 1),
                    scale: 2,
                }],
            ),
            (Boolean, vec![Value::Boolean(true)]),
            (
                Bytes,
                vec![Value::Bytes(vec![]), Value::Bytes(vec![0xff; 9])],
            ),
            (Date, vec![Value::Date(i32::MIN), Value::Date(i32::MAX)]),
            (Time, vec![Value::Time(-1), Value::Time(i64::MAX)]),
            (
                Timestamp,
                vec![Value::Timestamp(i64::MIN), Value::Timestamp(i64::MAX)],
            ),
            (
                Array(Box::new(Integer)),
                vec![
                    Value::Array(vec![Value::Null, Value::Integer(i32::MAX)]),
                    Value::Array(vec![]),
                ],
            ),
            (
                Map(Box::new(String), Box::new(Integer)),
                vec![Value::Map(vec![(Value::String("k".into()), Value::Null)])],
            ),
        ];
        let registry = FunctionRegistry::builtin();
        let mut calls = 0;
        for function in registry.iter() {
            let mut shapes: Vec<Vec<usize>> = vec![vec![]];
            for _ in 0..3 {
                let longer: Vec<Vec<usize>> = shapes
                    .iter()
                    .filter(|s| s.len() == shapes.last().map_or(0, Vec::len))
                    .flat_map(|s| {
                        (0..samples.len()).map(move |t| {
                            let mut next = s.clone();
                            next.push(t);
                            next
                        })
                    })
                    .collect();
                shapes.extend(longer);
            }
            for shape in shapes {
                let types: Vec<SqlType> = shape.iter().map(|&t| samples[t].0.clone()).collect();
                let Ok(bound) = function.bind(&types) else {
                    continue;
                };
                // Every argument takes each of its samples in turn, the others their first.
                for (position, &t) in shape.iter().enumerate() {
                    for value in &samples[t].1 {
                        let mut args: Vec<Value> =
                            shape.iter().map(|&u| samples[u].1[0].clone()).collect();
                        args[position] = value.clone();
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                let _ = bound.call(&args);
                            }));
                        assert!(outcome.is_ok(), "{} panicked on {args:?}", function.name());
                        calls += 1;
                    }
                }
            }
        }
        assert!(calls > 1000, "{calls} calls");
    }

    #[test]
    fn common_types_widen_numbers_and_decimals() {
        use SqlType::*;
        assert_eq!(common_type(&[Integer, BigInt]), Some(BigInt));
        assert_eq!(common_type(&[BigInt, Double]), Some(Double));
        assert_eq!(
            common_type(&[
                Decimal {
                    precision: 4,
                    scale: 2
                },
                Integer
            ]),
            Some(Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(common_type(&[String, Integer]), None);
        assert_eq!(
            coerce(
                &Value::Integer(3),
                &Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            Value::Decimal {
                unscaled: 300,
                scale: 2
            }
        );
    }
}
