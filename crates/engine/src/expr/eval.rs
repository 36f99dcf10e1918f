//! Runs compiled expressions on a batch. Calls to functions see whole columns (so a model UDF
//! scores a batch at once); CASE, AND/OR and lambdas run row by row, so a branch not taken
//! never raises an error.

use std::cmp::Ordering;

use super::arith::{arithmetic, compare, values_equal};
use super::cast::{cast_typed, cast_value};
use super::compile::{like_regex, CompiledExpr, LambdaKind, LikePattern};
use crate::functions::RowError;
use crate::sql::ast::BinaryOp;
use crate::value::{ColumnValues, Value};

/// The rows of a batch, one column per field in scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub columns: Vec<ColumnValues>,
    pub rows: usize,
}

impl Batch {
    /// Row `row`'s values, across all columns.
    pub fn row(&self, row: usize) -> Vec<Value> {
        self.columns
            .iter()
            .map(|column| column[row].clone())
            .collect()
    }
}

/// Evaluates `expr` for every row of `batch`. Failed cells are NULL and listed in `errors`.
pub fn eval_column(expr: &CompiledExpr, batch: &Batch, errors: &mut Vec<RowError>) -> ColumnValues {
    match expr {
        CompiledExpr::Literal(value) => vec![value.clone(); batch.rows],
        CompiledExpr::Column(index) => batch.columns[*index].clone(),
        CompiledExpr::Call { function, args } => {
            let columns: Vec<ColumnValues> = args
                .iter()
                .map(|arg| eval_column(arg, batch, errors))
                .collect();
            function.call_columns(&columns, batch.rows, errors)
        }
        _ if contains_call(expr) && !is_lazy(expr) => {
            // Evaluate children column-wise (their calls batched), then combine per row.
            let mut row_values = Vec::with_capacity(batch.rows);
            let children = children(expr);
            let child_columns: Vec<ColumnValues> = children
                .iter()
                .map(|c| eval_column(c, batch, errors))
                .collect();
            for row in 0..batch.rows {
                let values: Vec<Value> = child_columns.iter().map(|c| c[row].clone()).collect();
                row_values.push(combine(expr, &values).unwrap_or_else(|message| {
                    errors.push(RowError { row, message });
                    Value::Null
                }));
            }
            row_values
        }
        _ => {
            let mut lambda_values = Vec::new();
            (0..batch.rows)
                .map(|row| {
                    eval_row(expr, &|i| batch.columns[i][row].clone(), &mut lambda_values)
                        .unwrap_or_else(|message| {
                            errors.push(RowError { row, message });
                            Value::Null
                        })
                })
                .collect()
        }
    }
}

fn is_lazy(expr: &CompiledExpr) -> bool {
    matches!(
        expr,
        CompiledExpr::Case { .. }
            | CompiledExpr::And(..)
            | CompiledExpr::Or(..)
            | CompiledExpr::Lambda { .. }
    )
}

fn contains_call(expr: &CompiledExpr) -> bool {
    matches!(expr, CompiledExpr::Call { .. }) || children(expr).iter().any(|c| contains_call(c))
}

/// The batch columns an expression reads (lambda bodies included).
pub fn columns_used(expr: &CompiledExpr) -> Vec<usize> {
    let mut used = Vec::new();
    let mut stack = vec![expr];
    while let Some(next) = stack.pop() {
        match next {
            CompiledExpr::Column(index) => used.push(*index),
            CompiledExpr::Lambda { body, .. } => stack.push(body),
            _ => {}
        }
        stack.extend(children(next));
    }
    used
}

/// The sub-expressions `combine` takes, in its order.
fn children(expr: &CompiledExpr) -> Vec<&CompiledExpr> {
    match expr {
        CompiledExpr::Literal(_) | CompiledExpr::Column(_) | CompiledExpr::LambdaVar(_) => vec![],
        CompiledExpr::Field { base, .. } => vec![base],
        CompiledExpr::ArrayIndex { base, index } => vec![base, index],
        CompiledExpr::MapLookup { base, key } => vec![base, key],
        CompiledExpr::Call { args, .. } => args.iter().collect(),
        CompiledExpr::Cast { expr, .. }
        | CompiledExpr::Not(expr)
        | CompiledExpr::Negate(expr)
        | CompiledExpr::IsNull { expr, .. } => vec![expr],
        CompiledExpr::Case { whens, otherwise } => whens
            .iter()
            .flat_map(|(c, r)| [c, r])
            .chain(otherwise.as_deref())
            .collect(),
        CompiledExpr::Arithmetic { left, right, .. }
        | CompiledExpr::Compare { left, right, .. }
        | CompiledExpr::IsDistinct { left, right, .. } => vec![left, right],
        CompiledExpr::Concat(l, r) | CompiledExpr::And(l, r) | CompiledExpr::Or(l, r) => vec![l, r],
        CompiledExpr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        CompiledExpr::InList { expr, list, .. } => {
            std::iter::once(expr.as_ref()).chain(list.iter()).collect()
        }
        CompiledExpr::Like { expr, pattern, .. } => match pattern {
            LikePattern::Fixed(_) => vec![expr],
            LikePattern::Dynamic { pattern, .. } => vec![expr, pattern],
        },
        CompiledExpr::Lambda { input, initial, .. } => std::iter::once(input.as_ref())
            .chain(initial.as_deref())
            .collect(),
        CompiledExpr::MakeArray(items) | CompiledExpr::MakeStruct(items) => items.iter().collect(),
        CompiledExpr::MakeMap(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
    }
}

/// Evaluates `expr` for one row; `column(i)` gives the row's i-th column, `lambda_values` the
/// values of enclosing lambdas' parameters.
pub fn eval_row(
    expr: &CompiledExpr,
    column: &dyn Fn(usize) -> Value,
    lambda_values: &mut Vec<Value>,
) -> Result<Value, String> {
    match expr {
        CompiledExpr::Literal(value) => Ok(value.clone()),
        CompiledExpr::Column(index) => Ok(column(*index)),
        CompiledExpr::LambdaVar(index) => {
            Ok(lambda_values.get(*index).cloned().unwrap_or(Value::Null))
        }
        CompiledExpr::Case { whens, otherwise } => {
            for (condition, result) in whens {
                if eval_row(condition, column, lambda_values)? == Value::Boolean(true) {
                    return eval_row(result, column, lambda_values);
                }
            }
            match otherwise {
                Some(otherwise) => eval_row(otherwise, column, lambda_values),
                None => Ok(Value::Null),
            }
        }
        CompiledExpr::And(l, r) => {
            let left = eval_row(l, column, lambda_values)?;
            if left == Value::Boolean(false) {
                return Ok(left);
            }
            let right = eval_row(r, column, lambda_values)?;
            Ok(match (left, right) {
                (_, Value::Boolean(false)) => Value::Boolean(false),
                (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                _ => Value::Null,
            })
        }
        CompiledExpr::Or(l, r) => {
            let left = eval_row(l, column, lambda_values)?;
            if left == Value::Boolean(true) {
                return Ok(left);
            }
            let right = eval_row(r, column, lambda_values)?;
            Ok(match (left, right) {
                (_, Value::Boolean(true)) => Value::Boolean(true),
                (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                _ => Value::Null,
            })
        }
        CompiledExpr::Lambda {
            kind,
            input,
            initial,
            body,
            params,
        } => {
            let input = eval_row(input, column, lambda_values)?;
            let initial = match initial {
                Some(initial) => Some(eval_row(initial, column, lambda_values)?),
                None => None,
            };
            run_lambda(*kind, input, initial, body, *params, column, lambda_values)
        }
        CompiledExpr::Call { function, args } => {
            let values = args
                .iter()
                .map(|a| eval_row(a, column, lambda_values))
                .collect::<Result<Vec<_>, _>>()?;
            function.call(&values)
        }
        _ => {
            let values = children(expr)
                .into_iter()
                .map(|c| eval_row(c, column, lambda_values))
                .collect::<Result<Vec<_>, _>>()?;
            // A lambda's body is Java code in ksqlDB: arithmetic on a NULL there throws, and
            // the whole lambda function's result is NULL.
            if matches!(expr, CompiledExpr::Arithmetic { .. })
                && !lambda_values.is_empty()
                && values.iter().any(Value::is_null)
            {
                return Err("arithmetic on NULL in a lambda".into());
            }
            combine(expr, &values)
        }
    }
}

fn run_lambda(
    kind: LambdaKind,
    input: Value,
    initial: Option<Value>,
    body: &CompiledExpr,
    base: usize,
    column: &dyn Fn(usize) -> Value,
    lambda_values: &mut Vec<Value>,
) -> Result<Value, String> {
    let apply = |args: Vec<Value>, lambda_values: &mut Vec<Value>| -> Result<Value, String> {
        lambda_values.truncate(base);
        lambda_values.extend(args);
        let result = eval_row(body, column, lambda_values);
        lambda_values.truncate(base);
        result
    };
    Ok(match (kind, input) {
        // REDUCE of a NULL collection is its initial state; the others are NULL.
        (LambdaKind::ReduceArray | LambdaKind::ReduceMap, Value::Null) => {
            initial.unwrap_or(Value::Null)
        }
        (_, Value::Null) => Value::Null,
        (LambdaKind::TransformArray, Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|v| apply(vec![v], lambda_values))
                .collect::<Result<_, _>>()?,
        ),
        (LambdaKind::FilterArray, Value::Array(items)) => {
            let mut kept = Vec::new();
            for item in items {
                if apply(vec![item.clone()], lambda_values)? == Value::Boolean(true) {
                    kept.push(item);
                }
            }
            Value::Array(kept)
        }
        (LambdaKind::TransformMap, Value::Map(entries)) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                if let Value::Array(pair) = apply(vec![k, v], lambda_values)? {
                    let mut pair = pair.into_iter();
                    let key = pair.next().unwrap_or(Value::Null);
                    if out.iter().any(|(existing, _)| values_equal(existing, &key)) {
                        return Err(format!("Duplicate key {key:?} in the transformed map"));
                    }
                    out.push((key, pair.next().unwrap_or(Value::Null)));
                }
            }
            Value::Map(out)
        }
        (LambdaKind::FilterMap, Value::Map(entries)) => {
            let mut kept = Vec::new();
            for (k, v) in entries {
                if apply(vec![k.clone(), v.clone()], lambda_values)? == Value::Boolean(true) {
                    kept.push((k, v));
                }
            }
            Value::Map(kept)
        }
        (LambdaKind::ReduceArray, Value::Array(items)) => {
            let mut state = initial.unwrap_or(Value::Null);
            for item in items {
                state = apply(vec![state, item], lambda_values)?;
            }
            state
        }
        (LambdaKind::ReduceMap, Value::Map(entries)) => {
            let mut state = initial.unwrap_or(Value::Null);
            for (k, v) in entries {
                state = apply(vec![state, k, v], lambda_values)?;
            }
            state
        }
        (_, other) => return Err(format!("cannot apply a lambda to {other:?}")),
    })
}

/// One row of a non-lazy expression, from its children's values (in `children` order).
fn combine(expr: &CompiledExpr, values: &[Value]) -> Result<Value, String> {
    let value = |i: usize| values.get(i).cloned().unwrap_or(Value::Null);
    Ok(match expr {
        CompiledExpr::Field { index, .. } => match &values[0] {
            Value::Struct(fields) => fields.get(*index).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        CompiledExpr::ArrayIndex { .. } => match (&values[0], values[1].as_i64()) {
            (Value::Array(items), Some(index)) => {
                let len = items.len() as i64;
                let position = if index > 0 { index - 1 } else { len + index };
                if (0..len).contains(&position) && index != 0 {
                    items[position as usize].clone()
                } else {
                    Value::Null
                }
            }
            _ => Value::Null,
        },
        CompiledExpr::MapLookup { .. } => match &values[0] {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| values_equal(k, &values[1]))
                .map_or(Value::Null, |(_, v)| v.clone()),
            _ => Value::Null,
        },
        CompiledExpr::Call { function, .. } => function.call(values)?,
        CompiledExpr::Cast { from, to, .. } => match from {
            Some(from) => cast_typed(&values[0], from, to)?,
            None => cast_value(&values[0], to)?,
        },
        CompiledExpr::Arithmetic { op, result, .. } => {
            arithmetic(*op, &values[0], &values[1], result)?
        }
        CompiledExpr::Concat(..) => match (&values[0], &values[1]) {
            (Value::String(a), Value::String(b)) => Value::String(format!("{a}{b}")),
            _ => Value::Null,
        },
        CompiledExpr::Compare { op, .. } => Value::Boolean(compare_op(*op, &values[0], &values[1])),
        CompiledExpr::Not(_) => match &values[0] {
            Value::Boolean(b) => Value::Boolean(!b),
            _ => Value::Null,
        },
        CompiledExpr::Negate(_) => match &values[0] {
            Value::Integer(v) => Value::Integer(v.wrapping_neg()),
            Value::BigInt(v) => Value::BigInt(v.wrapping_neg()),
            Value::Double(v) => Value::Double(-v),
            Value::Decimal { unscaled, scale } => Value::Decimal {
                unscaled: -unscaled,
                scale: *scale,
            },
            _ => Value::Null,
        },
        CompiledExpr::IsNull { negated, .. } => Value::Boolean(values[0].is_null() != *negated),
        CompiledExpr::IsDistinct { negated, .. } => {
            Value::Boolean(values_equal(&values[0], &values[1]) == *negated)
        }
        CompiledExpr::Between { negated, .. } => {
            if values.iter().any(Value::is_null) {
                Value::Boolean(false)
            } else {
                let inside = compare_op(BinaryOp::GtEq, &values[0], &values[1])
                    && compare_op(BinaryOp::LtEq, &values[0], &values[2]);
                Value::Boolean(inside != *negated)
            }
        }
        CompiledExpr::InList { negated, .. } => {
            if values[0].is_null() {
                Value::Boolean(false)
            } else {
                let found = values[1..]
                    .iter()
                    .any(|item| values_equal(&values[0], item));
                Value::Boolean(found != *negated)
            }
        }
        CompiledExpr::Like {
            pattern, negated, ..
        } => {
            let Value::String(text) = &values[0] else {
                return Ok(Value::Boolean(false));
            };
            let matched = match pattern {
                LikePattern::Fixed(regex) => regex.is_match(text),
                LikePattern::Dynamic { escape, .. } => match &values[1] {
                    Value::String(p) => like_regex(p, *escape)?.is_match(text),
                    _ => return Ok(Value::Boolean(false)),
                },
            };
            Value::Boolean(matched != *negated)
        }
        CompiledExpr::MakeArray(_) => Value::Array(values.to_vec()),
        CompiledExpr::MakeStruct(_) => Value::Struct(values.to_vec()),
        CompiledExpr::MakeMap(_) => Value::Map(
            values
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or(Value::Null)))
                .collect(),
        ),
        CompiledExpr::Literal(v) => v.clone(),
        CompiledExpr::Column(_) | CompiledExpr::LambdaVar(_) => value(0),
        CompiledExpr::Case { .. }
        | CompiledExpr::And(..)
        | CompiledExpr::Or(..)
        | CompiledExpr::Lambda { .. } => {
            return Err("lazy expression evaluated eagerly".into());
        }
    })
}

/// ksqlDB's comparisons: false when either side is NULL.
fn compare_op(op: BinaryOp, left: &Value, right: &Value) -> bool {
    if left.is_null() || right.is_null() {
        return false;
    }
    let ordering = compare(left, right);
    match op {
        BinaryOp::Eq => ordering == Some(Ordering::Equal),
        BinaryOp::NotEq => ordering.is_some_and(|o| o != Ordering::Equal),
        BinaryOp::Lt => ordering == Some(Ordering::Less),
        BinaryOp::LtEq => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        BinaryOp::Gt => ordering == Some(Ordering::Greater),
        BinaryOp::GtEq => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}
