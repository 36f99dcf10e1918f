//! Table functions (ksqlDB's "TABLE" category): each input row gives zero or more output rows.
//!
//! ksqlDB's semantics for a SELECT with table functions: every table function is evaluated on
//! the input row; the number of output rows is the longest of their results, shorter results
//! are padded with NULL, and the other (scalar) columns repeat on every output row. A row whose
//! table functions all produce nothing (NULL or empty input) produces no output. See
//! `zip_table_function_results`.

use std::sync::Arc;

use super::{declared_name, BindError, FunctionRegistry};
use crate::types::SqlType;
use crate::value::Value;

/// A family of table-function overloads under one name.
pub trait TableFunction: Send + Sync {
    /// The name, upper case.
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The overloads as `DESCRIBE FUNCTION` lists them.
    fn signatures(&self) -> Vec<String>;
    /// Chooses the overload for these argument types.
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundTableFunction>, BindError>;
}

/// A table function bound to argument types.
pub trait BoundTableFunction: Send + Sync {
    /// The type of each value it produces (the output column's type).
    fn return_type(&self) -> SqlType;
    /// The values for one input row; `Err` is a processing error (the row produces nothing).
    fn call(&self, args: &[Value]) -> Result<Vec<Value>, String>;
}

/// Combines the results of a row's table functions into output rows: row `i` holds the `i`-th
/// value of each result, NULL where a result is shorter.
pub fn zip_table_function_results(results: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let rows = results.iter().map(Vec::len).max().unwrap_or(0);
    (0..rows)
        .map(|i| {
            results
                .iter()
                .map(|values| values.get(i).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    registry.register_table(Arc::new(Explode));
    registry.register_table(Arc::new(CubeExplode));
}

struct Bound {
    returns: SqlType,
    call: fn(&[Value]) -> Vec<Value>,
}

impl BoundTableFunction for Bound {
    fn return_type(&self) -> SqlType {
        self.returns.clone()
    }
    fn call(&self, args: &[Value]) -> Result<Vec<Value>, String> {
        Ok((self.call)(args))
    }
}

fn refused(name: &str, arg_types: &[SqlType], alternatives: &[&str]) -> BindError {
    let shown: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
    BindError(format!(
        "Function '{}' does not accept parameters ({}).\nValid alternatives are:\n{}",
        declared_name(name),
        shown.join(", "),
        alternatives.join("\n")
    ))
}

struct Explode;

const EXPLODE_ALTERNATIVES: [&str; 2] = ["explode(ARRAY<DECIMAL> input)", "explode(ARRAY<T> list)"];

impl TableFunction for Explode {
    fn name(&self) -> &str {
        "EXPLODE"
    }
    fn description(&self) -> &str {
        "Explodes an array. This function outputs one value for each element of the array."
    }
    fn signatures(&self) -> Vec<String> {
        EXPLODE_ALTERNATIVES.iter().map(|s| s.to_string()).collect()
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundTableFunction>, BindError> {
        match arg_types {
            [SqlType::Array(inner)] => Ok(Arc::new(Bound {
                returns: inner.as_ref().clone(),
                call: |args| match &args[0] {
                    Value::Array(items) => items.clone(),
                    _ => Vec::new(),
                },
            })),
            _ => Err(refused("EXPLODE", arg_types, &EXPLODE_ALTERNATIVES)),
        }
    }
}

struct CubeExplode;

const CUBE_ALTERNATIVES: [&str; 1] = ["cube_explode(ARRAY<T> columns)"];

impl TableFunction for CubeExplode {
    fn name(&self) -> &str {
        "CUBE_EXPLODE"
    }
    fn description(&self) -> &str {
        "Takes as argument a list of columns and outputs all possible combinations of them. \
         It produces 2^d new rows where d is the number of columns given as parameter. \
         Duplicate entries for columns with null value are skipped."
    }
    fn signatures(&self) -> Vec<String> {
        CUBE_ALTERNATIVES.iter().map(|s| s.to_string()).collect()
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundTableFunction>, BindError> {
        match arg_types {
            [t @ SqlType::Array(_)] => Ok(Arc::new(Bound {
                returns: t.clone(),
                call: |args| match &args[0] {
                    Value::Array(columns) => cube(columns),
                    _ => Vec::new(),
                },
            })),
            _ => Err(refused("CUBE_EXPLODE", arg_types, &CUBE_ALTERNATIVES)),
        }
    }
}

/// Every combination of keeping or nulling each column, the all-NULL one first and the
/// first column changing slowest; combinations repeated because a column is already NULL are
/// skipped.
fn cube(columns: &[Value]) -> Vec<Value> {
    let n = columns.len().min(20);
    let mut out: Vec<Value> = Vec::with_capacity(1 << n);
    for mask in 0..(1u32 << n) {
        let row: Vec<Value> = (0..n)
            .map(|j| {
                if mask & (1 << (n - 1 - j)) != 0 {
                    columns[j].clone()
                } else {
                    Value::Null
                }
            })
            .collect();
        let row = Value::Array(row);
        if !out.contains(&row) {
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i32) -> Value {
        Value::Integer(v)
    }

    #[test]
    fn explode_yields_elements_and_nothing_for_null() {
        let registry = FunctionRegistry::builtin();
        let explode = registry.get_table("explode").unwrap();
        let bound = explode
            .bind(&[SqlType::Array(Box::new(SqlType::Integer))])
            .unwrap();
        assert_eq!(bound.return_type(), SqlType::Integer);
        assert_eq!(
            bound.call(&[Value::Array(vec![int(1), int(2)])]).unwrap(),
            vec![int(1), int(2)]
        );
        assert!(bound.call(&[Value::Null]).unwrap().is_empty());
        let refused = explode
            .bind(&[SqlType::Map(
                Box::new(SqlType::String),
                Box::new(SqlType::Integer),
            )])
            .err()
            .unwrap();
        assert_eq!(
            refused.0,
            "Function 'explode' does not accept parameters (MAP<STRING, INTEGER>).\nValid \
             alternatives are:\nexplode(ARRAY<DECIMAL> input)\nexplode(ARRAY<T> list)"
        );
        assert!(registry.get("EXPLODE").is_none());
    }

    #[test]
    fn cube_explode_lists_combinations_once() {
        let registry = FunctionRegistry::builtin();
        let bound = registry
            .get_table("CUBE_EXPLODE")
            .unwrap()
            .bind(&[SqlType::Array(Box::new(SqlType::Integer))])
            .unwrap();
        let arr = |v: Vec<Value>| Value::Array(v);
        assert_eq!(
            bound.call(&[arr(vec![int(1), int(2)])]).unwrap(),
            vec![
                arr(vec![Value::Null, Value::Null]),
                arr(vec![Value::Null, int(2)]),
                arr(vec![int(1), Value::Null]),
                arr(vec![int(1), int(2)]),
            ]
        );
        assert_eq!(
            bound.call(&[arr(vec![int(1), Value::Null])]).unwrap(),
            vec![
                arr(vec![Value::Null, Value::Null]),
                arr(vec![int(1), Value::Null])
            ]
        );
    }

    #[test]
    fn results_zip_with_null_padding() {
        let rows = zip_table_function_results(&[vec![int(1), int(2)], vec![int(9)], vec![]]);
        assert_eq!(
            rows,
            vec![
                vec![int(1), int(9), Value::Null],
                vec![int(2), Value::Null, Value::Null]
            ]
        );
        assert!(zip_table_function_results(&[vec![], vec![]]).is_empty());
    }
}
