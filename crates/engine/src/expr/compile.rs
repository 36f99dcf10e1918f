//! Types an expression against the columns in scope and resolves its functions: the plan-time
//! half of evaluation. Every statement error about an expression is raised here.

use std::sync::Arc;

use regex::Regex;

use super::arith::arithmetic_type;
use super::cast::castable;
use crate::functions::{BoundFunction, FunctionRegistry};
use crate::sql::ast::{BinaryOp, Expr, Literal};
use crate::types::SqlType;
use crate::value::Value;

/// A statement error in an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError(message.into()))
}

/// The columns an expression may name, and the functions it may call.
pub struct Scope<'a> {
    /// (name, type) in batch column order.
    pub columns: &'a [(String, SqlType)],
    /// Names a column may be qualified with (`s.col`): the source's name and alias.
    pub qualifiers: &'a [String],
    pub functions: &'a FunctionRegistry,
    /// A join's scope: the side each column comes from (an index into `sides`). Empty for a
    /// single source, whose columns `qualifiers` qualify.
    pub column_sides: &'a [usize],
    /// A join's sides: each one's names (source name and alias).
    pub sides: &'a [Vec<String>],
}

/// A typed expression, ready to run.
#[derive(Clone)]
pub enum CompiledExpr {
    Literal(Value),
    Column(usize),
    /// A lambda parameter, counted from the outermost lambda.
    LambdaVar(usize),
    Field {
        base: Box<CompiledExpr>,
        index: usize,
    },
    ArrayIndex {
        base: Box<CompiledExpr>,
        index: Box<CompiledExpr>,
    },
    MapLookup {
        base: Box<CompiledExpr>,
        key: Box<CompiledExpr>,
    },
    Call {
        function: Arc<dyn BoundFunction>,
        args: Vec<CompiledExpr>,
    },
    Cast {
        expr: Box<CompiledExpr>,
        /// The operand's type when it matters (structs are cast field by field by name).
        from: Option<SqlType>,
        to: SqlType,
    },
    Case {
        whens: Vec<(CompiledExpr, CompiledExpr)>,
        otherwise: Option<Box<CompiledExpr>>,
    },
    Arithmetic {
        op: BinaryOp,
        left: Box<CompiledExpr>,
        right: Box<CompiledExpr>,
        result: SqlType,
    },
    Concat(Box<CompiledExpr>, Box<CompiledExpr>),
    Compare {
        op: BinaryOp,
        left: Box<CompiledExpr>,
        right: Box<CompiledExpr>,
    },
    And(Box<CompiledExpr>, Box<CompiledExpr>),
    Or(Box<CompiledExpr>, Box<CompiledExpr>),
    Not(Box<CompiledExpr>),
    Negate(Box<CompiledExpr>),
    IsNull {
        expr: Box<CompiledExpr>,
        negated: bool,
    },
    IsDistinct {
        left: Box<CompiledExpr>,
        right: Box<CompiledExpr>,
        negated: bool,
    },
    Between {
        expr: Box<CompiledExpr>,
        low: Box<CompiledExpr>,
        high: Box<CompiledExpr>,
        negated: bool,
    },
    InList {
        expr: Box<CompiledExpr>,
        list: Vec<CompiledExpr>,
        negated: bool,
    },
    Like {
        expr: Box<CompiledExpr>,
        pattern: LikePattern,
        negated: bool,
    },
    /// TRANSFORM, FILTER, REDUCE over arrays and maps with a lambda.
    Lambda {
        kind: LambdaKind,
        input: Box<CompiledExpr>,
        initial: Option<Box<CompiledExpr>>,
        body: Box<CompiledExpr>,
        params: usize,
    },
    MakeArray(Vec<CompiledExpr>),
    MakeMap(Vec<(CompiledExpr, CompiledExpr)>),
    MakeStruct(Vec<CompiledExpr>),
}

#[derive(Clone)]
pub enum LikePattern {
    Fixed(Regex),
    Dynamic {
        pattern: Box<CompiledExpr>,
        escape: Option<char>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaKind {
    TransformArray,
    TransformMap,
    FilterArray,
    FilterMap,
    ReduceArray,
    ReduceMap,
}

/// ksqlDB's LIKE: `%` any run, `_` one character, optional escape; the whole string matches.
pub fn like_regex(pattern: &str, escape: Option<char>) -> Result<Regex, String> {
    let mut out = String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => out.push_str(&regex::escape(&next.to_string())),
                None => {
                    return Err(format!(
                        "LIKE pattern must not end with escape character '{c}'"
                    ))
                }
            }
        } else if c == '%' {
            out.push_str(".*");
        } else if c == '_' {
            out.push('.');
        } else {
            out.push_str(&regex::escape(&c.to_string()));
        }
    }
    out.push('$');
    Regex::new(&out).map_err(|e| e.to_string())
}

/// Types `expr`; `None` as the type means the NULL literal (it fits any type).
pub fn compile(
    expr: &Expr,
    scope: &Scope,
) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
    Compiler {
        scope,
        lambda_vars: Vec::new(),
    }
    .compile(expr)
}

struct Compiler<'a, 'b> {
    scope: &'a Scope<'b>,
    lambda_vars: Vec<(String, SqlType)>,
}

fn literal(value: Value, sql_type: SqlType) -> (CompiledExpr, Option<SqlType>) {
    (CompiledExpr::Literal(value), Some(sql_type))
}

impl Compiler<'_, '_> {
    fn typed(&mut self, expr: &Expr) -> Result<(CompiledExpr, SqlType), CompileError> {
        let (compiled, sql_type) = self.compile(expr)?;
        // A bare NULL where a type is needed: treated as a STRING null (it only ever meets
        // operators that return NULL for it).
        Ok((compiled, sql_type.unwrap_or(SqlType::String)))
    }

    fn compile(&mut self, expr: &Expr) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        Ok(match expr {
            Expr::Literal(lit) => match lit {
                Literal::Null => (CompiledExpr::Literal(Value::Null), None),
                Literal::Boolean(b) => literal(Value::Boolean(*b), SqlType::Boolean),
                Literal::String(s) => literal(Value::String(s.clone()), SqlType::String),
                Literal::Integer(text) => match text.parse::<i32>() {
                    Ok(v) => literal(Value::Integer(v), SqlType::Integer),
                    Err(_) => match text.parse::<i64>() {
                        Ok(v) => literal(Value::BigInt(v), SqlType::BigInt),
                        Err(_) => {
                            let (unscaled, _) =
                                super::cast::parse_decimal(text).ok_or_else(|| {
                                    CompileError(format!("Invalid numeric literal: {text}"))
                                })?;
                            let precision = unscaled.unsigned_abs().to_string().len() as u8;
                            literal(
                                Value::Decimal { unscaled, scale: 0 },
                                SqlType::Decimal {
                                    precision,
                                    scale: 0,
                                },
                            )
                        }
                    },
                },
                Literal::Decimal(text) => {
                    let (unscaled, scale) = super::cast::parse_decimal(text)
                        .ok_or_else(|| CompileError(format!("Invalid decimal literal: {text}")))?;
                    let digits = unscaled.unsigned_abs().to_string().len() as u8;
                    let precision = digits.max(scale).max(1);
                    literal(
                        Value::Decimal { unscaled, scale },
                        SqlType::Decimal { precision, scale },
                    )
                }
                Literal::Double(text) => {
                    let value: f64 = text
                        .parse()
                        .map_err(|_| CompileError(format!("Invalid double literal: {text}")))?;
                    literal(Value::Double(value), SqlType::Double)
                }
            },
            Expr::TimeUnit(unit) => literal(Value::String(unit.clone()), SqlType::String),
            Expr::Column { qualifier, name } => self.column(qualifier.as_deref(), name)?,
            Expr::Field { base, field } => {
                let (base, base_type) = self.typed(base)?;
                let SqlType::Struct(fields) = &base_type else {
                    return err(format!("Expected STRUCT type, got: {base_type}"));
                };
                let Some(index) = fields
                    .iter()
                    .position(|(name, _)| name == field)
                    .or_else(|| {
                        fields
                            .iter()
                            .position(|(name, _)| name.eq_ignore_ascii_case(field))
                    })
                else {
                    return err(format!("Could not find field '{field}' in '{base_type}'."));
                };
                (
                    CompiledExpr::Field {
                        base: Box::new(base),
                        index,
                    },
                    Some(fields[index].1.clone()),
                )
            }
            Expr::Subscript { base, index } => {
                let (base, base_type) = self.typed(base)?;
                let (index, index_type) = self.typed(index)?;
                match base_type {
                    SqlType::Array(inner) => {
                        if !matches!(index_type, SqlType::Integer | SqlType::BigInt) {
                            return err(format!("array index must be INTEGER, got {index_type}"));
                        }
                        (
                            CompiledExpr::ArrayIndex {
                                base: Box::new(base),
                                index: Box::new(index),
                            },
                            Some(*inner),
                        )
                    }
                    SqlType::Map(_, value) => (
                        CompiledExpr::MapLookup {
                            base: Box::new(base),
                            key: Box::new(index),
                        },
                        Some(*value),
                    ),
                    other => return err(format!("Type {other} does not support subscript access")),
                }
            }
            Expr::Function {
                name, args, star, ..
            } => self.function(name, args, *star)?,
            Expr::Cast { expr, to } => {
                let (inner, from) = self.compile(expr)?;
                if let Some(from) = &from {
                    if !castable(from, to) {
                        return err(format!(
                            "Invalid Select: Cast of {from} to {to} is not supported"
                        ));
                    }
                }
                (
                    CompiledExpr::Cast {
                        expr: Box::new(inner),
                        from: from.filter(super::cast::has_struct),
                        to: to.clone(),
                    },
                    Some(to.clone()),
                )
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let mut compiled_whens = Vec::new();
                let mut result_type: Option<SqlType> = None;
                for (condition, result) in whens {
                    let condition = match operand {
                        Some(operand) => Expr::Binary {
                            op: BinaryOp::Eq,
                            left: operand.clone(),
                            right: Box::new(condition.clone()),
                        },
                        None => condition.clone(),
                    };
                    let (condition, condition_type) = self.compile(&condition)?;
                    if condition_type
                        .as_ref()
                        .is_some_and(|t| *t != SqlType::Boolean)
                    {
                        return err(format!(
                            "WHEN operand type should be boolean. Type for '{}' is {}",
                            "condition",
                            condition_type.unwrap_or(SqlType::Boolean)
                        ));
                    }
                    let (result, this_type) = self.compile(result)?;
                    result_type = merge_result_type(result_type, this_type, "THEN")?;
                    compiled_whens.push((condition, result));
                }
                let otherwise = match otherwise {
                    Some(otherwise) => {
                        let (compiled, this_type) = self.compile(otherwise)?;
                        result_type = merge_result_type(result_type, this_type, "ELSE")?;
                        Some(Box::new(compiled))
                    }
                    None => None,
                };
                (
                    CompiledExpr::Case {
                        whens: compiled_whens,
                        otherwise,
                    },
                    result_type,
                )
            }
            Expr::Binary { op, left, right } => self.binary(*op, left, right)?,
            Expr::Negate(inner) => {
                let (compiled, sql_type) = self.compile(inner)?;
                if sql_type.as_ref().is_some_and(|t| !t.is_numeric()) {
                    return err(format!(
                        "Unary minus is not supported for {}",
                        sql_type.unwrap_or(SqlType::String)
                    ));
                }
                (CompiledExpr::Negate(Box::new(compiled)), sql_type)
            }
            Expr::Not(inner) => {
                let (compiled, sql_type) = self.compile(inner)?;
                expect_boolean(&sql_type, "NOT")?;
                (
                    CompiledExpr::Not(Box::new(compiled)),
                    Some(SqlType::Boolean),
                )
            }
            Expr::IsNull { expr, negated } => {
                let (compiled, _) = self.compile(expr)?;
                (
                    CompiledExpr::IsNull {
                        expr: Box::new(compiled),
                        negated: *negated,
                    },
                    Some(SqlType::Boolean),
                )
            }
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => {
                let (l, lt) = self.compile(left)?;
                let (r, rt) = self.compile(right)?;
                check_comparable(BinaryOp::Eq, &lt, &rt, (left, right))?;
                (
                    CompiledExpr::IsDistinct {
                        left: Box::new(l),
                        right: Box::new(r),
                        negated: *negated,
                    },
                    Some(SqlType::Boolean),
                )
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let low = magic_timestamp(expr, low)?.unwrap_or_else(|| low.as_ref().clone());
                let high = magic_timestamp(expr, high)?.unwrap_or_else(|| high.as_ref().clone());
                let (low, high) = (&low, &high);
                let (e, et) = self.compile(expr)?;
                let (l, lt) = self.compile(low)?;
                let (h, ht) = self.compile(high)?;
                check_comparable(BinaryOp::GtEq, &et, &lt, (expr, low))?;
                check_comparable(BinaryOp::LtEq, &et, &ht, (expr, high))?;
                // Text bounds of a DATE/TIME/TIMESTAMP are parsed as one (and the reverse).
                let (e, l) = coerce_comparison(e, &et, l, &lt);
                let (e, h) = coerce_comparison(e, &et, h, &ht);
                (
                    CompiledExpr::Between {
                        expr: Box::new(e),
                        low: Box::new(l),
                        high: Box::new(h),
                        negated: *negated,
                    },
                    Some(SqlType::Boolean),
                )
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let (e, et) = self.compile(expr)?;
                let mut common = et;
                let mut items = Vec::new();
                for item in list {
                    items.extend(self.in_item(item, &mut common)?);
                }
                (
                    CompiledExpr::InList {
                        expr: Box::new(e),
                        list: items,
                        negated: *negated,
                    },
                    Some(SqlType::Boolean),
                )
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let (e, et) = self.compile(expr)?;
                if et.as_ref().is_some_and(|t| *t != SqlType::String) {
                    return err(format!(
                        "LIKE can only be used with STRING values, got {}",
                        et.unwrap_or(SqlType::String)
                    ));
                }
                let pattern = match pattern.as_ref() {
                    Expr::Literal(Literal::String(text)) => {
                        LikePattern::Fixed(like_regex(text, *escape).map_err(CompileError)?)
                    }
                    other => {
                        let (compiled, _) = self.compile(other)?;
                        LikePattern::Dynamic {
                            pattern: Box::new(compiled),
                            escape: *escape,
                        }
                    }
                };
                (
                    CompiledExpr::Like {
                        expr: Box::new(e),
                        pattern,
                        negated: *negated,
                    },
                    Some(SqlType::Boolean),
                )
            }
            Expr::Lambda { .. } => return err(
                "Lambda expressions are only allowed as arguments of TRANSFORM, FILTER and REDUCE",
            ),
            Expr::Array(items) => {
                if items.is_empty() {
                    return err("Array constructor cannot be empty. Please supply at least one element (see https://github.com/confluentinc/ksql/issues/4239).");
                }
                let (compiled, element) = self.coerce_list(items)?;
                let Some(element) = element else {
                    return err("Cannot construct an array with all NULL elements (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type.");
                };
                (
                    CompiledExpr::MakeArray(compiled),
                    Some(SqlType::Array(Box::new(element))),
                )
            }
            Expr::Map(entries) => {
                if entries.is_empty() {
                    return err("Map constructor cannot be empty. Please supply at least one key value pair (see https://github.com/confluentinc/ksql/issues/4239).");
                }
                let keys: Vec<Expr> = entries.iter().map(|(k, _)| k.clone()).collect();
                let values: Vec<Expr> = entries.iter().map(|(_, v)| v.clone()).collect();
                let (keys, key_type) = self.coerce_list(&keys)?;
                let (values, value_type) = self.coerce_list(&values)?;
                let Some(key_type) = key_type else {
                    return err("Cannot construct a map with all NULL keys (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL key to the desired type.");
                };
                let Some(value_type) = value_type else {
                    return err("Cannot construct a map with all NULL values (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type.");
                };
                (
                    CompiledExpr::MakeMap(keys.into_iter().zip(values).collect()),
                    Some(SqlType::Map(Box::new(key_type), Box::new(value_type))),
                )
            }
            Expr::Struct(fields) => {
                for (i, (name, _)) in fields.iter().enumerate() {
                    if fields[..i].iter().any(|(other, _)| other == name) {
                        return err("Duplicate field names found in STRUCT");
                    }
                }
                let mut compiled = Vec::new();
                let mut types = Vec::new();
                for (name, value) in fields {
                    let (c, t) = self.compile(value)?;
                    compiled.push(c);
                    types.push((name.clone(), t.unwrap_or(SqlType::String)));
                }
                (
                    CompiledExpr::MakeStruct(compiled),
                    Some(SqlType::Struct(types)),
                )
            }
        })
    }

    /// The elements of an ARRAY (or the keys, or the values, of a MAP) brought to their
    /// common type as ksqlDB's CoercionUtil does: the first typed element's type, widened by
    /// numbers; text parsed as that type; other literals as text for STRING; structs merged
    /// into one struct type with every field any of them has. `None`: all NULL.
    fn coerce_list(
        &mut self,
        items: &[Expr],
    ) -> Result<(Vec<CompiledExpr>, Option<SqlType>), CompileError> {
        let typed: Vec<(CompiledExpr, Option<SqlType>)> = items
            .iter()
            .map(|item| self.compile(item))
            .collect::<Result<_, _>>()?;
        let known: Vec<&SqlType> = typed.iter().filter_map(|(_, t)| t.as_ref()).collect();
        if known.is_empty() {
            return Ok((typed.into_iter().map(|(c, _)| c).collect(), None));
        }
        if known.iter().all(|t| matches!(t, SqlType::Struct(_))) {
            let mut merged: Vec<(String, SqlType)> = Vec::new();
            for t in &known {
                let SqlType::Struct(fields) = t else { continue };
                for (name, field_type) in fields {
                    match merged.iter_mut().find(|(n, _)| n == name) {
                        Some((_, existing)) if existing.is_numeric() && field_type.is_numeric() => {
                            *existing = wider(existing, field_type);
                        }
                        Some(_) => {}
                        None => merged.push((name.clone(), field_type.clone())),
                    }
                }
            }
            let target = SqlType::Struct(merged);
            let compiled = typed
                .into_iter()
                .map(|(c, t)| match t {
                    Some(t) if t != target => CompiledExpr::Cast {
                        expr: Box::new(c),
                        from: Some(t),
                        to: target.clone(),
                    },
                    _ => c,
                })
                .collect();
            return Ok((compiled, Some(target)));
        }
        let first_typed = items
            .iter()
            .zip(&typed)
            .find(|(item, (_, t))| {
                t.is_some() && !matches!(item, Expr::Literal(Literal::String(_)))
            })
            .and_then(|(_, (_, t))| t.clone());
        let mut common = first_typed.or(Some(SqlType::String));
        let mut compiled = Vec::new();
        for item in items {
            let coerced = self.in_item(item, &mut common).map_err(|CompileError(m)| {
                CompileError(
                    m.strip_prefix("Invalid Predicate: ")
                        .map(str::to_string)
                        .unwrap_or(m),
                )
            })?;
            compiled.push(coerced.unwrap_or(CompiledExpr::Literal(Value::Null)));
        }
        let common = common.unwrap_or(SqlType::String);
        let compiled = compiled
            .into_iter()
            .map(|c| widen_expr(c, &common))
            .collect();
        Ok((compiled, Some(common)))
    }

    /// One item of `x IN (...)`, as ksqlDB's CoercionUtil treats it: the tested value's type
    /// is the common type, widened by numeric items as they come; string literals are parsed
    /// as that type (refusing text that is not of it), other literals become text when the
    /// common type is STRING, and constructors are coerced element by element. `None` for an
    /// item that can never equal the value (a struct naming fields the type does not have).
    fn in_item(
        &mut self,
        item: &Expr,
        common: &mut Option<SqlType>,
    ) -> Result<Option<CompiledExpr>, CompileError> {
        let Some(target) = common.clone() else {
            let (compiled, sql_type) = self.compile(item)?;
            *common = sql_type;
            return Ok(Some(compiled));
        };
        if let Expr::Literal(Literal::String(text)) = item {
            if target.is_numeric() {
                let (value, sql_type) =
                    parse_number_text(text).ok_or_else(|| invalid_input_syntax(&target, text))?;
                *common = Some(wider(&target, &sql_type));
                return Ok(Some(CompiledExpr::Literal(value)));
            }
        }
        match self.coerce_in(item, &target)? {
            Coerced::To(compiled, sql_type) => {
                if target.is_numeric() && sql_type.is_numeric() {
                    *common = Some(wider(&target, &sql_type));
                }
                Ok(Some(compiled))
            }
            Coerced::Never => Ok(None),
            Coerced::Mismatch => {
                let (_, item_type) = self.compile(item)?;
                let item_type = item_type.map_or("NULL".to_string(), |t| t.to_string());
                err(format!(
                    "Invalid Predicate: operator does not exist: {target} = {item_type} ({item})\nHint: You might need to add explicit type casts."
                ))
            }
        }
    }

    /// Coerces an IN item (or an element of a constructor in one) to `target`. Text that is
    /// not a valid `target` is a statement error at once; other mismatches are reported by
    /// the caller for the whole item.
    fn coerce_in(&mut self, item: &Expr, target: &SqlType) -> Result<Coerced, CompileError> {
        match (item, target) {
            (Expr::Literal(Literal::Null), _) => {
                return Ok(Coerced::To(
                    CompiledExpr::Literal(Value::Null),
                    target.clone(),
                ))
            }
            (Expr::Literal(Literal::String(text)), t)
                if t.is_primitive() && *t != SqlType::String =>
            {
                let value = if t.is_numeric() {
                    let (value, _) =
                        parse_number_text(text).ok_or_else(|| invalid_input_syntax(t, text))?;
                    super::cast::cast_value(&value, t).map_err(|_| invalid_input_syntax(t, text))?
                } else if *t == SqlType::Boolean {
                    Value::Boolean(
                        parse_boolean_text(text).ok_or_else(|| invalid_input_syntax(t, text))?,
                    )
                } else {
                    super::cast::cast_value(&Value::String(text.clone()), t)
                        .map_err(|_| invalid_input_syntax(t, text))?
                };
                return Ok(Coerced::To(CompiledExpr::Literal(value), t.clone()));
            }
            (literal, SqlType::String) => {
                if let Some(text) = literal_text(literal) {
                    return Ok(Coerced::To(
                        CompiledExpr::Literal(Value::String(text)),
                        SqlType::String,
                    ));
                }
            }
            (Expr::Array(elements), SqlType::Array(element_type)) => {
                let mut compiled = Vec::new();
                for element in elements {
                    match self.coerce_in(element, element_type)? {
                        Coerced::To(c, _) => compiled.push(c),
                        other => return Ok(other),
                    }
                }
                return Ok(Coerced::To(
                    CompiledExpr::MakeArray(compiled),
                    target.clone(),
                ));
            }
            (Expr::Map(entries), SqlType::Map(key_type, value_type)) => {
                let mut compiled = Vec::new();
                for (key, value) in entries {
                    let key = match self.coerce_in(key, key_type)? {
                        Coerced::To(c, _) => c,
                        other => return Ok(other),
                    };
                    let value = match self.coerce_in(value, value_type)? {
                        Coerced::To(c, _) => c,
                        other => return Ok(other),
                    };
                    compiled.push((key, value));
                }
                return Ok(Coerced::To(CompiledExpr::MakeMap(compiled), target.clone()));
            }
            (Expr::Struct(fields), SqlType::Struct(target_fields)) => {
                let mut values: Vec<CompiledExpr> = target_fields
                    .iter()
                    .map(|_| CompiledExpr::Literal(Value::Null))
                    .collect();
                let mut never = false;
                for (name, value) in fields {
                    match target_fields.iter().position(|(f, _)| f == name) {
                        Some(index) => match self.coerce_in(value, &target_fields[index].1)? {
                            Coerced::To(c, _) => values[index] = c,
                            Coerced::Never => never = true,
                            Coerced::Mismatch => return Ok(Coerced::Mismatch),
                        },
                        // A field the type lacks: the struct is of another type, never equal.
                        None => {
                            self.compile(value)?;
                            never = true;
                        }
                    }
                }
                if never {
                    return Ok(Coerced::Never);
                }
                return Ok(Coerced::To(
                    CompiledExpr::MakeStruct(values),
                    target.clone(),
                ));
            }
            _ => {}
        }
        let (compiled, item_type) = self.compile(item)?;
        Ok(match item_type {
            None => Coerced::To(compiled, target.clone()),
            Some(item_type) if in_types_compatible(target, &item_type) => {
                Coerced::To(compiled, item_type)
            }
            Some(_) => Coerced::Mismatch,
        })
    }

    fn column(
        &mut self,
        qualifier: Option<&str>,
        name: &str,
    ) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        if qualifier.is_none() {
            if let Some(index) = self.lambda_vars.iter().rposition(|(var, _)| var == name) {
                return Ok((
                    CompiledExpr::LambdaVar(index),
                    Some(self.lambda_vars[index].1.clone()),
                ));
            }
        }
        if !self.scope.column_sides.is_empty() {
            return self.join_column(qualifier, name);
        }
        if let Some(qualifier) = qualifier {
            if !self.scope.qualifiers.iter().any(|q| q == qualifier) {
                // `a.b` where `a` is a struct column is ksqlDB's old dereference syntax.
                if let Some(index) = self.scope.columns.iter().position(|(c, _)| c == qualifier) {
                    if let SqlType::Struct(fields) = &self.scope.columns[index].1 {
                        if let Some(field) = fields.iter().position(|(f, _)| f == name) {
                            return Ok((
                                CompiledExpr::Field {
                                    base: Box::new(CompiledExpr::Column(index)),
                                    index: field,
                                },
                                Some(fields[field].1.clone()),
                            ));
                        }
                    }
                }
                return err(format!(
                    "'{qualifier}' is not a valid stream/table name or alias."
                ));
            }
        }
        match self
            .scope
            .columns
            .iter()
            .position(|(column, _)| column == name)
        {
            Some(index) => Ok((
                CompiledExpr::Column(index),
                Some(self.scope.columns[index].1.clone()),
            )),
            None => {
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                err(format!("Column '{shown}' cannot be resolved."))
            }
        }
    }

    /// A column of a join's scope: `side.column`, or a column only one side has.
    fn join_column(
        &mut self,
        qualifier: Option<&str>,
        name: &str,
    ) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        let side = match qualifier {
            Some(q) => match self
                .scope
                .sides
                .iter()
                .position(|names| names.iter().any(|n| n == q))
            {
                Some(side) => Some(side),
                None => return err(format!("'{q}' is not a valid stream/table name or alias.")),
            },
            None => None,
        };
        let matching: Vec<usize> = (0..self.scope.columns.len())
            .filter(|&i| {
                self.scope.columns[i].0 == name
                    && side.is_none_or(|side| self.scope.column_sides[i] == side)
            })
            .collect();
        match matching.as_slice() {
            [index] => Ok((
                CompiledExpr::Column(*index),
                Some(self.scope.columns[*index].1.clone()),
            )),
            [] => {
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                err(format!("Column '{shown}' cannot be resolved."))
            }
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|&i| {
                        let side = &self.scope.sides[self.scope.column_sides[i]];
                        format!("{}.{name}", side.last().cloned().unwrap_or_default())
                    })
                    .collect();
                err(format!(
                    "Column '{name}' is ambiguous. Could be any of: {}",
                    names.join(", ")
                ))
            }
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
    ) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        let (left, right) = if op.is_comparison() {
            (
                magic_timestamp(right, left)?.unwrap_or_else(|| left.clone()),
                magic_timestamp(left, right)?.unwrap_or_else(|| right.clone()),
            )
        } else {
            (left.clone(), right.clone())
        };
        let (left, right) = (&left, &right);
        let (l, lt) = self.compile(left)?;
        let (r, rt) = self.compile(right)?;
        Ok(match op {
            BinaryOp::And | BinaryOp::Or => {
                expect_boolean(&lt, op.symbol())?;
                expect_boolean(&rt, op.symbol())?;
                let (l, r) = (Box::new(l), Box::new(r));
                (
                    if op == BinaryOp::And {
                        CompiledExpr::And(l, r)
                    } else {
                        CompiledExpr::Or(l, r)
                    },
                    Some(SqlType::Boolean),
                )
            }
            BinaryOp::Concat => {
                for t in [&lt, &rt].into_iter().flatten() {
                    if *t != SqlType::String {
                        return err(format!("Error processing expression: the || operator only accepts STRING operands, got {t}"));
                    }
                }
                (
                    CompiledExpr::Concat(Box::new(l), Box::new(r)),
                    Some(SqlType::String),
                )
            }
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => {
                check_comparable(op, &lt, &rt, (left, right))?;
                let (l, r) = coerce_comparison(l, &lt, r, &rt);
                (
                    CompiledExpr::Compare {
                        op,
                        left: Box::new(l),
                        right: Box::new(r),
                    },
                    Some(SqlType::Boolean),
                )
            }
            _ => {
                if op == BinaryOp::Add
                    && (lt == Some(SqlType::String) || rt == Some(SqlType::String))
                    && lt.as_ref().is_none_or(|t| *t == SqlType::String)
                    && rt.as_ref().is_none_or(|t| *t == SqlType::String)
                {
                    return Ok((
                        CompiledExpr::Concat(Box::new(l), Box::new(r)),
                        Some(SqlType::String),
                    ));
                }
                // A bare NULL has no type to do arithmetic in.
                if lt.is_none() || rt.is_none() {
                    let name = |t: &Option<SqlType>| {
                        t.as_ref().map_or("null".to_string(), |t| t.to_string())
                    };
                    return err(format!(
                        "Error processing expression: ({} {} {}). Arithmetic on types {} and {} are not supported.",
                        describe_literal(left),
                        op.symbol(),
                        describe_literal(right),
                        name(&lt),
                        name(&rt)
                    ));
                }
                let (lt2, rt2) = (lt.clone().or(rt.clone()), rt.clone().or(lt.clone()));
                let result = match (&lt2, &rt2) {
                    (None, None) => SqlType::Integer,
                    (Some(a), Some(b)) => arithmetic_type(op, a, b).ok_or_else(|| {
                        CompileError(format!("Error processing expression: ({} {} {}). Unsupported arithmetic types. {} {}", describe_literal(left), op.symbol(), describe_literal(right), lt.clone().map_or("NULL".into(), |t| t.to_string()), rt.clone().map_or("NULL".into(), |t| t.to_string())))
                    })?,
                    _ => unreachable!("either both types are known or both are absent"),
                };
                (
                    CompiledExpr::Arithmetic {
                        op,
                        left: Box::new(l),
                        right: Box::new(r),
                        result: result.clone(),
                    },
                    Some(result),
                )
            }
        })
    }

    fn function(
        &mut self,
        name: &str,
        args: &[Expr],
        star: bool,
    ) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        let upper = name.to_ascii_uppercase();
        if star {
            return err(format!("Function '{upper}' is an aggregate function: it goes in the SELECT or HAVING of an aggregate query (GROUP BY), not here"));
        }
        if let Some(kind) = lambda_function(&upper, args) {
            return self.lambda_call(&upper, kind, args);
        }
        let Some(function) = self.scope.functions.get(&upper) else {
            if AGGREGATES.contains(&upper.as_str()) {
                return err(format!("Aggregate function '{upper}' cannot be used here: aggregate functions go in the SELECT or HAVING of an aggregate query (GROUP BY)"));
            }
            return err(format!("Can't find any functions with the name '{upper}'"));
        };
        let function = function.clone();
        let mut compiled = Vec::new();
        let mut types = Vec::new();
        for arg in args {
            let (c, t) = self.compile(arg)?;
            compiled.push(c);
            types.push(t);
        }
        let bound = bind_with_nulls(function.as_ref(), &types).map_err(|e| CompileError(e.0))?;
        let returns = bound.return_type();
        Ok((
            CompiledExpr::Call {
                function: bound,
                args: compiled,
            },
            Some(returns),
        ))
    }

    fn lambda_call(
        &mut self,
        name: &str,
        kind: LambdaKind,
        args: &[Expr],
    ) -> Result<(CompiledExpr, Option<SqlType>), CompileError> {
        let (input, input_type) = self.typed(&args[0])?;
        let (lambda, initial) = if matches!(kind, LambdaKind::ReduceArray) {
            (&args[2], Some(&args[1]))
        } else {
            (&args[1], None)
        };
        let Expr::Lambda { params, body } = lambda else {
            return err(format!("{name} requires a lambda as its last argument"));
        };
        let (kind, element_types): (LambdaKind, Vec<SqlType>) = match (&input_type, kind) {
            (SqlType::Array(inner), LambdaKind::TransformArray | LambdaKind::FilterArray) => {
                (kind, vec![*inner.clone()])
            }
            (SqlType::Map(k, v), LambdaKind::TransformArray) => {
                (LambdaKind::TransformMap, vec![*k.clone(), *v.clone()])
            }
            (SqlType::Map(k, v), LambdaKind::FilterArray) => {
                (LambdaKind::FilterMap, vec![*k.clone(), *v.clone()])
            }
            (SqlType::Array(inner), LambdaKind::ReduceArray) => (kind, vec![*inner.clone()]),
            (SqlType::Map(k, v), LambdaKind::ReduceArray) => {
                (LambdaKind::ReduceMap, vec![*k.clone(), *v.clone()])
            }
            _ => {
                return err(format!(
                    "Function '{name}' does not accept parameters ({input_type}, LAMBDA)."
                ))
            }
        };
        let initial = match initial {
            Some(expr) => Some(self.typed(expr)?),
            None => None,
        };
        let mut lambda_types = Vec::new();
        if let Some((_, state)) = &initial {
            lambda_types.push(state.clone());
        }
        lambda_types.extend(element_types.iter().cloned());
        if params.len() != lambda_types.len() {
            return err(format!(
                "Function '{name}' expects a lambda with {} parameter(s), got {}",
                lambda_types.len(),
                params.len()
            ));
        }
        let base = self.lambda_vars.len();
        for (param, param_type) in params.iter().zip(&lambda_types) {
            self.lambda_vars.push((param.clone(), param_type.clone()));
        }
        let body_result = self.compile(body);
        self.lambda_vars.truncate(base);
        let (body, body_type) = body_result?;
        let body_type = body_type.unwrap_or(SqlType::String);
        let result = match kind {
            LambdaKind::TransformArray => SqlType::Array(Box::new(body_type)),
            LambdaKind::TransformMap => {
                // TRANSFORM(map, (k, v) => k', (k, v) => v'): two lambdas.
                let Some(Expr::Lambda {
                    params: value_params,
                    body: value_body,
                }) = args.get(2)
                else {
                    return err("TRANSFORM of a MAP needs a key lambda and a value lambda");
                };
                for (param, param_type) in value_params.iter().zip(&lambda_types) {
                    self.lambda_vars.push((param.clone(), param_type.clone()));
                }
                let value_result = self.compile(value_body);
                self.lambda_vars.truncate(base);
                let (value_body, value_type) = value_result?;
                let result = SqlType::Map(
                    Box::new(body_type),
                    Box::new(value_type.unwrap_or(SqlType::String)),
                );
                let pair = CompiledExpr::MakeArray(vec![body, value_body]);
                return Ok((
                    CompiledExpr::Lambda {
                        kind,
                        input: Box::new(input),
                        initial: None,
                        body: Box::new(pair),
                        params: base,
                    },
                    Some(result),
                ));
            }
            LambdaKind::FilterArray | LambdaKind::FilterMap => {
                if body_type != SqlType::Boolean {
                    return err(format!(
                        "FILTER's lambda must return BOOLEAN, got {body_type}"
                    ));
                }
                input_type.clone()
            }
            LambdaKind::ReduceArray | LambdaKind::ReduceMap => initial
                .as_ref()
                .map(|(_, t)| t.clone())
                .unwrap_or(body_type),
        };
        Ok((
            CompiledExpr::Lambda {
                kind,
                input: Box::new(input),
                initial: initial.map(|(c, _)| Box::new(c)),
                body: Box::new(body),
                params: base,
            },
            Some(result),
        ))
    }
}

/// ksqlDB's aggregate functions: compiled by `aggregate::plan`, refused anywhere else.
pub const AGGREGATES: &[&str] = &[
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "COUNT_DISTINCT",
    "COLLECT_LIST",
    "COLLECT_SET",
    "EARLIEST_BY_OFFSET",
    "LATEST_BY_OFFSET",
    "TOPK",
    "TOPKDISTINCT",
    "HISTOGRAM",
    "STDDEV_SAMP",
    "STDDEV_SAMPLE",
    "CORRELATION",
    "ATTR",
];

fn lambda_function(name: &str, args: &[Expr]) -> Option<LambdaKind> {
    let has_lambda = args.iter().any(|a| matches!(a, Expr::Lambda { .. }));
    if !has_lambda {
        return None;
    }
    match name {
        "TRANSFORM" => Some(LambdaKind::TransformArray),
        "FILTER" => Some(LambdaKind::FilterArray),
        "REDUCE" if args.len() == 3 => Some(LambdaKind::ReduceArray),
        _ => None,
    }
}

/// Binds a function whose arguments may include untyped NULLs by trying the common types for
/// them in turn (ksqlDB lets NULL match any parameter).
fn bind_with_nulls(
    function: &dyn crate::functions::ScalarFunction,
    types: &[Option<SqlType>],
) -> Result<Arc<dyn BoundFunction>, crate::functions::BindError> {
    let known: Vec<SqlType> = types
        .iter()
        .map(|t| t.clone().unwrap_or(SqlType::String))
        .collect();
    if types.iter().all(Option::is_some) {
        return function.bind(&known);
    }
    let first = function.bind(&known);
    if first.is_ok() {
        return first;
    }
    let nulls: Vec<usize> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_none())
        .map(|(i, _)| i)
        .collect();
    // A NULL next to typed arguments most likely shares their type.
    let mut candidates: Vec<SqlType> = types.iter().flatten().cloned().collect();
    candidates.extend([
        SqlType::Integer,
        SqlType::BigInt,
        SqlType::Double,
        SqlType::Boolean,
        SqlType::Timestamp,
        SqlType::Date,
        SqlType::Time,
        SqlType::Bytes,
    ]);
    for candidate in candidates {
        let mut attempt = known.clone();
        for &i in &nulls {
            attempt[i] = candidate.clone();
        }
        if let Ok(bound) = function.bind(&attempt) {
            return Ok(bound);
        }
    }
    first
}

fn expect_boolean(sql_type: &Option<SqlType>, operator: &str) -> Result<(), CompileError> {
    match sql_type {
        Some(t) if *t != SqlType::Boolean => {
            err(format!("{operator} operands must be BOOLEAN, got {t}"))
        }
        _ => Ok(()),
    }
}

/// ksqlDB compares numbers with numbers, strings with strings, and dates/times/timestamps with
/// each other or with strings (parsed); arrays, maps and structs only for (in)equality.
fn check_comparable(
    op: BinaryOp,
    left: &Option<SqlType>,
    right: &Option<SqlType>,
    exprs: (&Expr, &Expr),
) -> Result<(), CompileError> {
    let (Some(l), Some(r)) = (left, right) else {
        if matches!(exprs.0, Expr::Literal(Literal::Null))
            && matches!(exprs.1, Expr::Literal(Literal::Null))
        {
            return err(format!(
                "Comparison with NULL not supported: NULL {} NULL",
                op.symbol()
            ));
        }
        return Ok(());
    };
    use SqlType::*;
    let temporal = |t: &SqlType| matches!(t, Date | Time | Timestamp);
    let ok = match (l, r) {
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (String, String) | (Boolean, Boolean) | (Bytes, Bytes) => true,
        (a, String) | (String, a) if temporal(a) => true,
        (Date | Timestamp, Date | Timestamp) => true,
        (Time, Time) => true,
        (Array(_), Array(_)) | (Map(..), Map(..)) | (Struct(_), Struct(_)) => {
            matches!(op, BinaryOp::Eq | BinaryOp::NotEq) && l == r
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        err(format!(
            "Cannot compare {} ({l}) to {} ({r}) with {}.",
            exprs.0,
            exprs.1,
            comparison_name(op)
        ))
    }
}

fn comparison_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Eq => "EQUAL",
        BinaryOp::NotEq => "NOT_EQUAL",
        BinaryOp::Lt => "LESS_THAN",
        BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
        BinaryOp::Gt => "GREATER_THAN",
        BinaryOp::GtEq => "GREATER_THAN_OR_EQUAL",
        other => other.symbol(),
    }
}

/// A string compared with a date/time is parsed as one.
fn coerce_comparison(
    l: CompiledExpr,
    lt: &Option<SqlType>,
    r: CompiledExpr,
    rt: &Option<SqlType>,
) -> (CompiledExpr, CompiledExpr) {
    let temporal =
        |t: &Option<SqlType>| matches!(t, Some(SqlType::Date | SqlType::Time | SqlType::Timestamp));
    match (lt, rt) {
        (Some(SqlType::String), t) if temporal(t) => (
            CompiledExpr::Cast {
                expr: Box::new(l),
                from: None,
                to: t.clone().unwrap_or(SqlType::Timestamp),
            },
            r,
        ),
        (t, Some(SqlType::String)) if temporal(t) => (
            l,
            CompiledExpr::Cast {
                expr: Box::new(r),
                from: None,
                to: t.clone().unwrap_or(SqlType::Timestamp),
            },
        ),
        _ => (l, r),
    }
}

/// Types `=` can compare in IN: the same type, numbers, or collections of such.
fn in_types_compatible(a: &SqlType, b: &SqlType) -> bool {
    use SqlType::*;
    match (a, b) {
        (a, b) if a == b => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Date | Timestamp, Date | Timestamp) => true,
        (Array(x), Array(y)) => in_types_compatible(x, y),
        (Map(k1, v1), Map(k2, v2)) => in_types_compatible(k1, k2) && in_types_compatible(v1, v2),
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((n1, t1), (n2, t2))| n1 == n2 && in_types_compatible(t1, t2))
        }
        _ => false,
    }
}

/// ksqlDB compares ROWTIME, WINDOWSTART and WINDOWEND with timestamp text by reading the
/// text as epoch milliseconds: `other`, as the literal to compare `column` with.
fn magic_timestamp(column: &Expr, other: &Expr) -> Result<Option<Expr>, CompileError> {
    let (Expr::Column { name, .. }, Expr::Literal(Literal::String(text))) = (column, other) else {
        return Ok(None);
    };
    if !["ROWTIME", "WINDOWSTART", "WINDOWEND"].contains(&name.as_str()) {
        return Ok(None);
    }
    match crate::functions::datetime::parse_temporal_literal(text, &SqlType::Timestamp) {
        Ok(Value::Timestamp(millis)) => {
            Ok(Some(Expr::Literal(Literal::Integer(millis.to_string()))))
        }
        _ => err(format!(
            "Failed to parse timestamp '{text}' to compare with {name}"
        )),
    }
}

/// What coercing an IN item to the common type gave.
enum Coerced {
    To(CompiledExpr, SqlType),
    /// Of a type that can never be equal (a struct with fields the type lacks).
    Never,
    /// Not coercible: the caller names the whole item in its error.
    Mismatch,
}

fn invalid_input_syntax(target: &SqlType, text: &str) -> CompileError {
    CompileError(format!(
        "Invalid Predicate: invalid input syntax for type {}: \"{text}\".",
        type_name_for_message(target)
    ))
}

/// Text as the narrowest number it writes: INTEGER, BIGINT, DECIMAL, else DOUBLE.
pub(crate) fn parse_number_text(text: &str) -> Option<(Value, SqlType)> {
    let trimmed = text.trim();
    if let Ok(v) = trimmed.parse::<i32>() {
        return Some((Value::Integer(v), SqlType::Integer));
    }
    if let Ok(v) = trimmed.parse::<i64>() {
        return Some((Value::BigInt(v), SqlType::BigInt));
    }
    // Other numbers as BigDecimal reads them (`2e1` is DECIMAL(2, 0)).
    if let Some((unscaled, scale)) = super::cast::parse_decimal(trimmed) {
        let digits = unscaled.unsigned_abs().to_string().len() as u8;
        let precision = digits.max(scale).max(1);
        if precision <= 38 {
            return Some((
                Value::Decimal { unscaled, scale },
                SqlType::Decimal { precision, scale },
            ));
        }
    }
    let value: f64 = trimmed.parse().ok()?;
    value
        .is_finite()
        .then_some((Value::Double(value), SqlType::Double))
}

/// ksqlDB's SqlBooleans: any prefix of true/yes or false/no, in any case.
pub(crate) fn parse_boolean_text(text: &str) -> Option<bool> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if "true".starts_with(&lower) || "yes".starts_with(&lower) {
        Some(true)
    } else if "false".starts_with(&lower) || "no".starts_with(&lower) {
        Some(false)
    } else {
        None
    }
}

/// A non-string literal's text, as ksqlDB turns it into a STRING in an IN list.
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(Literal::Boolean(b)) => Some(b.to_string()),
        Expr::Literal(Literal::Integer(t) | Literal::Decimal(t)) => Some(t.clone()),
        Expr::Literal(Literal::Double(t)) => t
            .parse::<f64>()
            .ok()
            .map(crate::value::java_double_to_string),
        Expr::Negate(inner) => literal_text(inner)
            .filter(|t| !t.starts_with('-'))
            .map(|t| format!("-{t}")),
        _ => None,
    }
}

/// ksqlDB names DECIMAL without its precision in "invalid input syntax" messages.
fn type_name_for_message(sql_type: &SqlType) -> String {
    match sql_type {
        SqlType::Decimal { .. } => "DECIMAL".into(),
        other => other.to_string(),
    }
}

fn describe_literal(expr: &Expr) -> String {
    expr.to_string()
}

/// The common type of CASE branches or ARRAY elements: the same type, or numbers widened.
fn merge_result_type(
    current: Option<SqlType>,
    next: Option<SqlType>,
    what: &str,
) -> Result<Option<SqlType>, CompileError> {
    Ok(match (current, next) {
        (None, t) | (t, None) => t,
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), Some(b)) if a.is_numeric() && b.is_numeric() => Some(wider(&a, &b)),
        (Some(a), Some(b)) => {
            return err(format!(
                "Invalid {what} type: {b}, expected {a}: all must be of the same type"
            ))
        }
    })
}

fn wider(a: &SqlType, b: &SqlType) -> SqlType {
    use SqlType::*;
    match (a, b) {
        (Double, _) | (_, Double) => Double,
        (Decimal { .. }, _) | (_, Decimal { .. }) => {
            let (p1, s1) = a.as_decimal().unwrap_or((38, 0));
            let (p2, s2) = b.as_decimal().unwrap_or((38, 0));
            let scale = s1.max(s2);
            let whole = (p1 - s1).max(p2 - s2);
            Decimal {
                precision: (whole + scale).min(38),
                scale,
            }
        }
        (BigInt, _) | (_, BigInt) => BigInt,
        _ => Integer,
    }
}

/// Wraps an expression so its values have `to`'s representation (numbers only).
fn widen_expr(expr: CompiledExpr, to: &SqlType) -> CompiledExpr {
    if to.is_numeric() {
        CompiledExpr::Cast {
            expr: Box::new(expr),
            from: None,
            to: to.clone(),
        }
    } else {
        expr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::ast::{SelectItem, Statement};
    use crate::sql::parse_statements;

    /// Compiles the first projection of `SELECT <expr> FROM S` over columns `columns`.
    fn compile_select(expr: &str, columns: &[(&str, SqlType)]) -> Result<SqlType, String> {
        let parsed = parse_statements(&format!("SELECT {expr} FROM S EMIT CHANGES;"))
            .map_err(|e| e.to_string())?;
        let Statement::Select(query) = &parsed[0].statement else {
            return Err("not a query".into());
        };
        let SelectItem::Expr { expr, .. } = &query.select[0] else {
            return Err("not an expression".into());
        };
        let columns: Vec<(String, SqlType)> = columns
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let functions = crate::functions::FunctionRegistry::builtin();
        let scope = Scope {
            columns: &columns,
            qualifiers: &["S".to_string()],
            functions: &functions,
            column_sides: &[],
            sides: &[],
        };
        compile(expr, &scope)
            .map(|(_, t)| t.unwrap_or(SqlType::String))
            .map_err(|e| e.0)
    }

    #[test]
    fn booleans_in_text_are_prefixes_of_true_yes_false_no() {
        for text in ["t", "TrUe", "y", "yes", " Y "] {
            assert_eq!(parse_boolean_text(text), Some(true), "{text}");
        }
        for text in ["f", "no", "N", "fals"] {
            assert_eq!(parse_boolean_text(text), Some(false), "{text}");
        }
        for text in ["", "truth", "nope", "1"] {
            assert_eq!(parse_boolean_text(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_in_text_take_the_narrowest_type() {
        assert_eq!(
            parse_number_text("7").map(|(_, t)| t),
            Some(SqlType::Integer)
        );
        assert_eq!(
            parse_number_text("2147483648").map(|(_, t)| t),
            Some(SqlType::BigInt)
        );
        assert_eq!(
            parse_number_text("2e1").map(|(_, t)| t),
            Some(SqlType::Decimal {
                precision: 2,
                scale: 0
            })
        );
        assert_eq!(parse_number_text("ten"), None);
    }

    #[test]
    fn in_lists_widen_their_common_type_and_name_it_in_errors() {
        let decimal = SqlType::Decimal {
            precision: 4,
            scale: 2,
        };
        let error = compile_select("ID IN (10, true)", &[("ID", decimal.clone())]).unwrap_err();
        assert!(
            error.contains("operator does not exist: DECIMAL(12, 2) = BOOLEAN (true)"),
            "{error}"
        );
        let error = compile_select("ID IN (1, 'x')", &[("ID", SqlType::Integer)]).unwrap_err();
        assert!(
            error.contains("invalid input syntax for type INTEGER: \"x\""),
            "{error}"
        );
        assert_eq!(
            compile_select("ID IN (true, 'tr', 'N')", &[("ID", SqlType::Boolean)]),
            Ok(SqlType::Boolean)
        );
        assert_eq!(
            compile_select("ID IN (true, 10, 1.50)", &[("ID", SqlType::String)]),
            Ok(SqlType::Boolean)
        );
    }

    #[test]
    fn constructors_coerce_elements_and_merge_structs() {
        let columns = [("A", SqlType::Integer), ("B", SqlType::BigInt)];
        assert_eq!(
            compile_select("ARRAY[NULL, 10, '2e1', A, B]", &columns),
            Ok(SqlType::Array(Box::new(SqlType::Decimal {
                precision: 19,
                scale: 0
            })))
        );
        assert_eq!(
            compile_select("ARRAY[STRUCT(X := A), STRUCT(Y := B)]", &columns),
            Ok(SqlType::Array(Box::new(SqlType::Struct(vec![
                ("X".into(), SqlType::Integer),
                ("Y".into(), SqlType::BigInt),
            ]))))
        );
        let error = compile_select("ARRAY[1, 'one']", &columns).unwrap_err();
        assert!(
            error.contains("invalid input syntax for type INTEGER"),
            "{error}"
        );
        let error = compile_select("1 + NULL", &columns).unwrap_err();
        assert!(
            error.contains("Arithmetic on types INTEGER and null are not supported."),
            "{error}"
        );
    }
}
