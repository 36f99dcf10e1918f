//! Planning an aggregate query: the grouping expressions and aggregate calls are computed over
//! the source's rows; `SELECT` and `HAVING` are rewritten to read the aggregate's row (grouping
//! values, call results, window bounds), as ksqlDB's aggregate analysis does.

use std::cell::RefCell;
use std::sync::Arc;

use super::stage::{AggregateCall, AggregationPlan, AggregationStage};
use super::udaf;
use super::window::WindowSpec;
use crate::catalog::WINDOW_COLUMNS;
use crate::engine::{
    and_list, compile_clause, compile_filter, generated_name, item_name, Engine, QueryPlan,
};
use crate::expr::{CompileError, CompiledExpr, Scope};
use crate::sql::ast::{Emit, Expr, Query, SelectItem};
use crate::types::{Column, ColumnKind, SqlType};
use crate::value::Value;

type Result<T> = std::result::Result<T, String>;

/// Whether the query aggregates: GROUP BY, HAVING, WINDOW or an aggregate call in SELECT.
pub fn aggregates(query: &Query) -> bool {
    !query.group_by.is_empty()
        || query.having.is_some()
        || query.window.is_some()
        || query.select.iter().any(|item| match item {
            SelectItem::Expr { expr, .. } => contains_aggregate(expr),
            _ => false,
        })
}

fn is_aggregate_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Function { name, .. } if udaf::NAMES.contains(&name.to_ascii_uppercase().as_str()))
}

fn contains_aggregate(expr: &Expr) -> bool {
    let found = RefCell::new(false);
    expr.rewrite(&|e| {
        if is_aggregate_call(e) {
            *found.borrow_mut() = true;
        }
        None
    });
    found.into_inner()
}

/// The aggregate row's column names: grouping values, call results, window bounds.
fn group_column(index: usize) -> String {
    format!("KSQL_GROUP_{index}")
}

fn call_column(index: usize) -> String {
    format!("KSQL_AGG_VARIABLE_{index}")
}

pub(crate) fn plan(
    engine: &Engine,
    query: &Query,
    push: bool,
    sink_name: &str,
) -> Result<QueryPlan> {
    let source = engine
        .catalog
        .sources
        .get(&query.from.name)
        .ok_or_else(|| format!("{} does not exist.", query.from.name))?;
    if source.value_format.format == crate::formats::Format::Kafka {
        return Err(format!("Source(s) {} are using the 'KAFKA' value format. This format does not yet support GROUP BY.", source.name));
    }
    let query_scope = source.query_scope(query.from.alias.as_ref());
    let scope = query_scope.scope(&engine.functions);
    let unqualified = |expr: &Expr| query_scope.unqualified(expr);
    let window = match query.window.as_deref() {
        Some(text) => {
            let spec = WindowSpec::parse(text)?;
            Some(match query.emit {
                Some(Emit::Final) => spec.with_grace_for_final(WindowSpec::declares_grace(text)),
                _ => spec,
            })
        }
        None => None,
    };
    if query.emit == Some(Emit::Final) && window.is_none() {
        return Err("EMIT FINAL is only supported for windowed aggregations.".into());
    }
    // Window bounds exist in an unwindowed source's rows only after a windowed aggregation.
    let bounds_misplaced = |exprs: &mut dyn Iterator<Item = &Expr>| -> Result<()> {
        match exprs.map(window_bound_name).find(|name| !name.is_empty()) {
            Some(name) if source.window_type.is_none() => Err(format!(
                "Window bounds column {name} can only be used in the SELECT clause of windowed aggregations"
            )),
            _ => Ok(()),
        }
    };
    if source.window_type.is_none() {
        if let Some(name) = query
            .filter
            .iter()
            .map(window_bound_name)
            .find(|n| !n.is_empty())
        {
            return Err(format!("Error in WHERE expression: Unknown column {name}."));
        }
    }
    bounds_misplaced(&mut query.group_by.iter())?;
    bounds_misplaced(&mut query.having.iter())?;
    let call_args = RefCell::new(Vec::new());
    for item in &query.select {
        if let SelectItem::Expr { expr, .. } = item {
            expr.rewrite(&|e| {
                if let Expr::Function { args, .. } = e {
                    if is_aggregate_call(e) {
                        call_args.borrow_mut().extend(args.iter().cloned());
                    }
                }
                None
            });
        }
    }
    bounds_misplaced(&mut call_args.into_inner().iter())?;
    let filter = compile_filter(&scope, query.filter.as_ref())?;

    // GROUP BY: compiled over the source's rows.
    let mut group_asts: Vec<Expr> = Vec::new();
    let mut group_by = Vec::new();
    let mut group_types = Vec::new();
    for expr in &query.group_by {
        if contains_aggregate(expr) {
            let name = first_aggregate_name(expr).unwrap_or_default();
            return Err(format!(
                "GROUP BY does not support aggregate functions: {name} is an aggregate function."
            ));
        }
        let wanted = unqualified(expr);
        if group_asts.contains(&wanted) {
            return Err(format!(
                "Duplicate GROUP BY expression: {}",
                qualified_text(expr, &source.name)
            ));
        }
        let (compiled, sql_type) = compile_clause(&scope, "GROUP BY", expr)?;
        group_by.push(compiled);
        group_types.push(sql_type.unwrap_or(SqlType::String));
        group_asts.push(wanted);
    }

    // Aggregate calls, found in SELECT and HAVING and replaced by their result's column.
    let calls: RefCell<Vec<(Expr, AggregateCall, SqlType)>> = RefCell::new(Vec::new());
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let rewrite = |expr: &Expr| -> Expr {
        unqualified(expr).rewrite(&|e| {
            if let Some(index) = group_asts.iter().position(|g| g == e) {
                return Some(column(group_column(index)));
            }
            if !is_aggregate_call(e) {
                return None;
            }
            if let Some(index) = calls.borrow().iter().position(|(ast, _, _)| ast == e) {
                return Some(column(call_column(index)));
            }
            match plan_call(e, &scope, engine) {
                Ok((call, sql_type)) => {
                    let mut calls = calls.borrow_mut();
                    calls.push((e.clone(), call, sql_type));
                    Some(column(call_column(calls.len() - 1)))
                }
                Err(message) => {
                    failure.borrow_mut().get_or_insert(message);
                    Some(Expr::Literal(crate::sql::ast::Literal::Null))
                }
            }
        })
    };
    struct Item {
        name: String,
        ast: Expr,
        original: Expr,
    }
    let mut items: Vec<Item> = Vec::new();
    let mut generated = 0usize;
    for select in &query.select {
        match select {
            SelectItem::Expr { expr, alias } => {
                if alias.is_none() && !push && window_bound_name(expr) == expr.to_string() {
                    return Err(format!("Reserved column name in select: `{expr}`. Please remove or alias the column."));
                }
                let name = item_name(alias.as_ref(), expr, || {
                    generated_name(&mut generated, |c| items.iter().any(|i| i.name == c))
                });
                items.push(Item {
                    name,
                    ast: rewrite(expr),
                    original: expr.clone(),
                });
            }
            SelectItem::All | SelectItem::AllOf(_) => {
                // `*` in an aggregate: every source column, each of which must be grouped.
                for column_def in &source.columns {
                    let expr = column(column_def.name.clone());
                    items.push(Item {
                        name: column_def.name.clone(),
                        ast: rewrite(&expr),
                        original: expr,
                    });
                }
            }
            SelectItem::StructAll(_) => {
                return Err("`->*` is not supported in aggregate queries".into());
            }
        }
    }
    let having_ast = query.having.as_ref().map(rewrite);
    if let Some(message) = failure.into_inner() {
        return Err(message);
    }
    let calls = calls.into_inner();
    // A table's updates take the old row back out of its group: every function must undo.
    let table_source = source.kind == crate::sql::ast::SourceKind::Table;
    if table_source {
        let mut refused: Vec<String> = Vec::new();
        for (_, call, _) in &calls {
            let name = call.function.name.to_ascii_uppercase();
            if !call.function.undoable() && !refused.contains(&name) {
                refused.push(name);
            }
        }
        if !refused.is_empty() {
            return Err(format!(
                "The aggregation functions {} cannot be applied to a table source, only to a stream source.",
                and_list(&refused)
            ));
        }
    }
    // ksqlDB keeps the aggregates' state in the source's value format: DELIMITED holds no
    // structured intermediate (AVG's sum and count, TOPK's list).
    if source.value_format.format == crate::formats::Format::Delimited
        && calls.iter().any(|(_, call, _)| {
            matches!(
                call.function.intermediate_type,
                SqlType::Struct(_) | SqlType::Array(_) | SqlType::Map(..)
            )
        })
    {
        return Err("One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.".into());
    }

    // The aggregate's row.
    let mut row_columns: Vec<(String, SqlType)> = group_types
        .iter()
        .enumerate()
        .map(|(i, t)| (group_column(i), t.clone()))
        .collect();
    row_columns.extend(
        calls
            .iter()
            .enumerate()
            .map(|(i, (_, _, t))| (call_column(i), t.clone())),
    );
    let windowed = window.is_some();
    row_columns.extend(
        WINDOW_COLUMNS
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone())),
    );
    let no_qualifiers: Vec<String> = Vec::new();
    let row_scope = Scope {
        columns: &row_columns,
        qualifiers: &no_qualifiers,
        functions: &engine.functions,
        column_sides: &[],
        sides: &[],
    };
    // Messages name the aggregate row's columns as the query wrote them.
    let named = |message: &str| {
        let mut text = message.to_string();
        for (index, (ast, _, _)) in calls.iter().enumerate().rev() {
            text = text.replace(&call_column(index), &ast.to_string());
        }
        for (index, ast) in group_asts.iter().enumerate().rev() {
            text = text.replace(&group_column(index), &ast.to_string());
        }
        text
    };
    let mut not_grouped = Vec::new();
    let mut compiled_items = Vec::new();
    for item in &items {
        if !windowed && mentions_window_bounds(&item.ast) && !push {
            return Err(format!(
                "SELECT column '{}' cannot be resolved.",
                window_bound_name(&item.ast)
            ));
        }
        match crate::expr::compile(&item.ast, &row_scope) {
            Ok((compiled, sql_type)) => {
                compiled_items.push((compiled, sql_type.unwrap_or(SqlType::String)))
            }
            Err(CompileError(message)) if unresolved_column(&message).is_some() => {
                not_grouped.push(unqualified(&item.original).to_string());
                compiled_items.push((CompiledExpr::Literal(Value::Null), SqlType::String));
            }
            Err(CompileError(message)) => return Err(named(&message)),
        }
    }
    if calls.is_empty() && !group_asts.is_empty() {
        return Err(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.".into(),
        );
    }
    if !not_grouped.is_empty() {
        return Err(format!(
            "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
            not_grouped.join(", ")
        ));
    }
    let having = match (&having_ast, &query.having) {
        (Some(ast), Some(_)) => match crate::expr::compile(ast, &row_scope) {
            Ok((compiled, _)) => Some(compiled),
            Err(CompileError(message)) => {
                return Err(match unresolved_column(&message) {
                    Some(column) => {
                        format!("Non-aggregate HAVING expression not part of GROUP BY: {column}")
                    }
                    None => format!("Error in HAVING expression: {}", named(&message)),
                })
            }
        },
        _ => None,
    };

    // Key columns: the projection's items that are exactly a grouping expression.
    let mut key_columns = Vec::new();
    let mut key_projection = Vec::new();
    let mut key_items = Vec::new();
    if !push {
        let mut missing = Vec::new();
        for (index, group_ast) in group_asts.iter().enumerate() {
            let matching: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].ast == column(group_column(index)))
                .collect();
            match matching.as_slice() {
                [] => missing.push(group_ast.to_string()),
                [one] => {
                    key_items.push(*one);
                    key_columns.push(Column::new(
                        items[*one].name.clone(),
                        group_types[index].clone(),
                        ColumnKind::Key,
                    ));
                    key_projection.push(compiled_items[*one].0.clone());
                }
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|&i| format!("`{}`", items[i].name))
                        .collect();
                    return Err(format!(
                        "The projection contains a key column more than once: {}.",
                        names.join(" and ")
                    ));
                }
            }
        }
        if !missing.is_empty() {
            let noun = if missing.len() == 1 {
                "expression"
            } else {
                "expressions"
            };
            return Err(format!(
                "The query used to build `{sink_name}` must include the grouping {noun} {} in its projection (eg, SELECT {}...).",
                and_list(&missing),
                missing.join(", ")
            ));
        }
        if group_asts.is_empty() {
            // ksqlDB counts rows of `COUNT(*)` by their ROWTIME.
            let call = calls
                .first()
                .map(|(ast, _, _)| ast.to_string().replace("(*)", "(ROWTIME)"))
                .unwrap_or_default();
            return Err(format!("CREATE TABLE AS SELECT statement does not support aggregate function [{call}] without a GROUP BY clause."));
        }
    }
    let mut value_columns = Vec::new();
    let mut value_projection = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, (item, (compiled, sql_type))) in items.iter().zip(compiled_items).enumerate() {
        if key_items.contains(&index) {
            continue;
        }
        if !seen.insert(item.name.clone()) || key_columns.iter().any(|k| k.name == item.name) {
            return Err(format!(
                "Duplicate value columns found in schema: `{}` {sql_type}",
                item.name
            ));
        }
        value_columns.push(Column::new(item.name.clone(), sql_type, ColumnKind::Value));
        value_projection.push(compiled);
    }
    if value_columns.is_empty() && !push {
        return Err("The projection contains no value columns.".into());
    }
    let mut topology = engine.source_topology(source, filter, push, query.limit)?;
    topology.sink_window = window.map(|w| w.key_window());
    topology.aggregation = Some(AggregationStage::new(AggregationPlan {
        group_by,
        calls: calls.into_iter().map(|(_, call, _)| call).collect(),
        window,
        having,
        key_projection,
        value_projection,
        emit_final: query.emit == Some(Emit::Final),
        table_key_count: table_source.then_some(source.key_columns().count()),
    }));
    Ok(QueryPlan {
        topology,
        key_columns,
        value_columns,
        produces_table: true,
    })
}

/// Resolves one aggregate call: its column arguments compiled over the source, its trailing
/// literal arguments as values.
fn plan_call(expr: &Expr, scope: &Scope, engine: &Engine) -> Result<(AggregateCall, SqlType)> {
    let Expr::Function {
        name, args, star, ..
    } = expr
    else {
        return Err("not an aggregate call".into());
    };
    let name = name.to_ascii_uppercase();
    for arg in args {
        if contains_aggregate(arg) {
            let inner = first_aggregate_name(arg).unwrap_or_default();
            return Err(format!(
                "Aggregate functions can not be nested: {name}({inner}())"
            ));
        }
    }
    let args: &[Expr] = if *star { &[] } else { args };
    let literal_count = udaf::literal_argument_count(&name, args.len());
    let (columns, literals) = args.split_at(args.len() - literal_count.min(args.len()));
    let mut compiled = Vec::new();
    let mut types = Vec::new();
    for arg in columns {
        let (c, t) = compile_clause(scope, "SELECT", arg)?;
        compiled.push(c);
        types.push(t.unwrap_or(SqlType::String));
    }
    let mut literal_values = Vec::new();
    for (position, arg) in literals.iter().enumerate() {
        match crate::expr::compile(arg, scope) {
            Ok((CompiledExpr::Literal(value), _)) => literal_values.push(value),
            _ => return Err(format!(
                "Parameter {} passed to function {name} must be a literal constant, but was expression: '{arg}'",
                columns.len() + position + 1
            )),
        }
    }
    let function = udaf::resolve(&name, &types, &literal_values, &engine.config.properties)?;
    let return_type = function.return_type.clone();
    Ok((
        AggregateCall {
            function: Arc::new(function),
            args: compiled,
        },
        return_type,
    ))
}

fn column(name: String) -> Expr {
    Expr::Column {
        qualifier: None,
        name,
    }
}

fn first_aggregate_name(expr: &Expr) -> Option<String> {
    let found = RefCell::new(None);
    expr.rewrite(&|e| {
        if let Expr::Function { name, .. } = e {
            if is_aggregate_call(e) && found.borrow().is_none() {
                *found.borrow_mut() = Some(name.to_ascii_uppercase());
            }
        }
        None
    });
    found.into_inner()
}

fn mentions_window_bounds(expr: &Expr) -> bool {
    !window_bound_name(expr).is_empty()
}

fn window_bound_name(expr: &Expr) -> String {
    let found = RefCell::new(String::new());
    expr.map_columns(&|qualifier, name| {
        if (name == "WINDOWSTART" || name == "WINDOWEND") && found.borrow().is_empty() {
            *found.borrow_mut() = name.to_string();
        }
        Expr::Column {
            qualifier: qualifier.map(str::to_string),
            name: name.to_string(),
        }
    });
    found.into_inner()
}

/// An expression as ksqlDB prints it in these messages: columns qualified by the source.
fn qualified_text(expr: &Expr, source: &str) -> String {
    expr.map_columns(&|qualifier, name| Expr::Column {
        qualifier: Some(qualifier.unwrap_or(source).to_string()),
        name: name.to_string(),
    })
    .to_string()
}

/// The column named by a compile error about an unknown column (`Column 'X' cannot be
/// resolved.`), if it is one.
fn unresolved_column(message: &str) -> Option<&str> {
    message.strip_prefix("Column '")?.split('\'').next()
}
