//! Planning a two-source join: the sides' kinds and windows checked as ksqlDB checks them, the
//! `ON` condition split into each side's join expression, and `WHERE` and `SELECT` compiled over
//! the joined row (left scope, right scope, then the join key as `ROWKEY`).

use super::{JoinStage, JoinWindow};
use crate::catalog::Source;
use crate::engine::{compile_clause, compile_filter, generated_name, item_name, Engine, QueryPlan};
use crate::expr::{compile, CompiledExpr, Scope};
use crate::sql::ast::{BinaryOp, Expr, JoinKind, Query, SelectItem, SourceKind};
use crate::types::{Column, ColumnKind, SqlType};

type Result<T> = std::result::Result<T, String>;

/// The synthetic key column of a join whose key is not one source column.
const ROWKEY: &str = "ROWKEY";

pub(crate) fn plan(
    engine: &Engine,
    query: &Query,
    push: bool,
    sink_name: &str,
) -> Result<QueryPlan> {
    let join = &query.joins[0];
    let source = |name: &str| {
        engine
            .catalog
            .sources
            .get(name)
            .ok_or_else(|| format!("{name} does not exist."))
    };
    let left = source(&query.from.name)?;
    let right = source(&join.relation.name)?;
    if left.name == right.name {
        return Err(format!(
            "Can not join '{}' to '{}': self joins are not yet supported.",
            left.name, right.name
        ));
    }
    let left_prefix = query
        .from
        .alias
        .clone()
        .unwrap_or_else(|| left.name.clone());
    let right_prefix = join
        .relation
        .alias
        .clone()
        .unwrap_or_else(|| right.name.clone());
    let mut left_names = vec![left.name.clone()];
    left_names.extend(query.from.alias.clone());
    let mut right_names = vec![right.name.clone()];
    right_names.extend(join.relation.alias.clone());

    // Each side's own scope, for its join expression.
    let left_columns = left.scope_columns();
    let right_columns = right.scope_columns();
    let side_scope = |columns, names| Scope {
        columns,
        qualifiers: names,
        functions: &engine.functions,
        column_sides: &[],
        sides: &[],
    };
    let (left_expr, right_expr) = match &join.on {
        Expr::Binary {
            op: BinaryOp::Eq,
            left: a,
            right: b,
        } => (a.as_ref(), b.as_ref()),
        Expr::Binary {
            op: BinaryOp::And, ..
        } => {
            return Err(format!(
            "Invalid join condition: joins on multiple conditions are not yet supported. Got {}.",
            join.on
        ))
        }
        other => return Err(format!("Unsupported join expression: {other}")),
    };
    let compiles = |expr: &Expr, columns, names| compile(expr, &side_scope(columns, names)).ok();
    // Both sides at once, only to name a column neither has.
    let mut both_columns = left_columns.clone();
    both_columns.extend(right_columns.iter().cloned());
    let both_sides: Vec<usize> = std::iter::repeat_n(0, left_columns.len())
        .chain(std::iter::repeat_n(1, right_columns.len()))
        .collect();
    let both_names = vec![left_names.clone(), right_names.clone()];
    let on_scope = Scope {
        columns: &both_columns,
        qualifiers: &[],
        functions: &engine.functions,
        column_sides: &both_sides,
        sides: &both_names,
    };
    let on_side = |expr: &Expr| {
        let refs = column_count(expr);
        let in_left = compiles(expr, &left_columns, &left_names);
        let in_right = compiles(expr, &right_columns, &right_names);
        (refs, in_left, in_right)
    };
    let ((left_key, left_type), (right_key, right_type), swapped) = {
        let (a_refs, a_left, a_right) = on_side(left_expr);
        let (b_refs, b_left, b_right) = on_side(right_expr);
        for (refs, expr) in [(a_refs, left_expr), (b_refs, right_expr)] {
            if refs == 0 {
                return Err(format!("Invalid comparison expression '{expr}' in join '{}'. Each side of the join comparision must contain references from exactly one source.", join.on));
            }
        }
        match (a_left, b_right, b_left, a_right) {
            (Some(l), Some(r), _, _) => (l, r, false),
            (_, _, Some(l), Some(r)) => (l, r, true),
            _ => {
                // A column neither side has is named as ksqlDB names it.
                for expr in [left_expr, right_expr] {
                    if let Err(crate::expr::CompileError(message)) = compile(expr, &on_scope) {
                        if let Some(rest) = message.strip_prefix("Column '") {
                            return Err(format!("JOIN ON column '{rest}"));
                        }
                    }
                }
                return Err(format!(
                    "Invalid join condition: each side must reference one source. Got {}.",
                    join.on
                ));
            }
        }
    };
    let (left_on, right_on) = if swapped {
        (right_expr, left_expr)
    } else {
        (left_expr, right_expr)
    };
    if let (Some(l), Some(r)) = (&left_type, &right_type) {
        if l != r {
            return Err(format!(
                "Invalid join condition: types don't match. Got {}{{{l}}} = {}{{{r}}}.",
                left_on, right_on
            ));
        }
    }
    let kafka_values: Vec<&str> = [left, right]
        .iter()
        .filter(|s| s.value_format.format == crate::formats::Format::Kafka)
        .map(|s| s.name.as_str())
        .collect();
    if !kafka_values.is_empty() {
        return Err(format!(
            "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
            kafka_values.join(", ")
        ));
    }
    check_sides(left, right, join.kind, join.within.is_some())?;
    let window = join.within.as_deref().map(JoinWindow::parse).transpose()?;
    let foreign_key = foreign_key_join(
        (left, &left_names, left_on),
        (right, &right_names, right_on),
        join.kind,
        (&left_prefix, &right_prefix),
        swapped,
    )?;
    let key_type = match foreign_key {
        true => left.key_columns().next().map(|c| c.sql_type.clone()),
        false => left_type.or(right_type),
    }
    .unwrap_or(SqlType::String);

    // The joined row's scope.
    let mut columns: Vec<(String, SqlType)> = left_columns.clone();
    columns.extend(right_columns.iter().cloned());
    columns.push((ROWKEY.to_string(), key_type.clone()));
    let mut column_sides = vec![0usize; left_columns.len()];
    column_sides.extend(std::iter::repeat_n(1, right_columns.len()));
    column_sides.push(2);
    let sides = vec![left_names.clone(), right_names.clone(), Vec::new()];
    let scope = Scope {
        columns: &columns,
        qualifiers: &[],
        functions: &engine.functions,
        column_sides: &column_sides,
        sides: &sides,
    };
    let filter = compile_filter(&scope, query.filter.as_ref())?;

    // A column reference as (side prefix, column), to compare projections with the join keys.
    let prefix_of = |qualifier: &str| {
        if left_names.iter().any(|n| n == qualifier) {
            Some(left_prefix.clone())
        } else if right_names.iter().any(|n| n == qualifier) {
            Some(right_prefix.clone())
        } else {
            None
        }
    };
    let resolve = |expr: &Expr| {
        expr.map_columns(&|qualifier, name| {
            let prefix = match qualifier {
                Some(q) => prefix_of(q),
                None if left.columns.iter().any(|c| c.name == name) => Some(left_prefix.clone()),
                None if right.columns.iter().any(|c| c.name == name) => Some(right_prefix.clone()),
                None => None,
            };
            Expr::Column {
                qualifier: prefix,
                name: name.to_string(),
            }
        })
    };
    struct Item {
        name: String,
        expr: CompiledExpr,
        sql_type: SqlType,
        resolved: Expr,
    }
    let mut items: Vec<Item> = Vec::new();
    let mut generated = 0usize;
    let star = |side: &Source, prefix: &str, offset: usize, items: &mut Vec<Item>| {
        for (index, column) in side.columns.iter().enumerate() {
            items.push(Item {
                name: format!("{prefix}_{}", column.name),
                expr: CompiledExpr::Column(offset + index),
                sql_type: column.sql_type.clone(),
                resolved: Expr::Column {
                    qualifier: Some(prefix.to_string()),
                    name: column.name.clone(),
                },
            });
        }
    };
    for select in &query.select {
        match select {
            SelectItem::All => {
                star(left, &left_prefix, 0, &mut items);
                star(right, &right_prefix, left_columns.len(), &mut items);
            }
            SelectItem::AllOf(q) => match prefix_of(q) {
                Some(p) if p == left_prefix => star(left, &left_prefix, 0, &mut items),
                Some(_) => star(right, &right_prefix, left_columns.len(), &mut items),
                None => return Err(format!("'{q}' is not a valid stream/table name or alias.")),
            },
            SelectItem::StructAll(_) => return Err("`->*` is not supported in joins yet".into()),
            SelectItem::Expr { expr, alias } => {
                let (compiled, sql_type) = compile_clause(&scope, "SELECT", expr)?;
                let Some(sql_type) = sql_type else {
                    return Err(format!("Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR). ({expr})"));
                };
                let resolved = resolve(expr);
                // A column both sides have is named by its side (`T_ID`); others by name only.
                let on_both_sides = |name: &str| {
                    left.columns.iter().any(|c| c.name == name)
                        && right.columns.iter().any(|c| c.name == name)
                };
                let name = match (alias, &resolved) {
                    (
                        None,
                        Expr::Column {
                            qualifier: Some(q),
                            name,
                        },
                    ) if on_both_sides(name) => format!("{q}_{name}"),
                    _ => item_name(alias.as_ref(), &resolved, || {
                        generated_name(&mut generated, |c| items.iter().any(|i| i.name == c))
                    }),
                };
                items.push(Item {
                    name,
                    expr: compiled,
                    sql_type,
                    resolved,
                });
            }
        }
    }

    // The key: the join expression as the projection names it.
    // The key is the join expression that is a plain column (either, when both are); a full
    // outer join's, or one on two computed expressions, is the synthetic ROWKEY.
    let column_sides_of_on: Vec<Expr> = [left_on, right_on]
        .into_iter()
        .filter(|e| matches!(e, Expr::Column { .. }))
        .map(resolve)
        .collect();
    let synthetic = !foreign_key && (join.kind == JoinKind::Full || column_sides_of_on.is_empty());
    let rowkey = Expr::Column {
        qualifier: None,
        name: ROWKEY.to_string(),
    };
    // A foreign-key join is keyed by the left table's key.
    let left_key_column = left.key_columns().next().map(|c| Expr::Column {
        qualifier: Some(left_prefix.clone()),
        name: c.name.clone(),
    });
    let candidates: Vec<Expr> = if synthetic {
        vec![rowkey.clone()]
    } else if foreign_key {
        left_key_column.into_iter().collect()
    } else {
        column_sides_of_on
    };
    let has_star = query
        .select
        .iter()
        .any(|i| matches!(i, SelectItem::All | SelectItem::AllOf(_)));
    let key_item = items.iter().position(|i| candidates.contains(&i.resolved));
    let mut key_columns = Vec::new();
    let mut key_projection = Vec::new();
    if !push {
        match key_item {
            Some(index) => {
                key_columns.push(Column::new(
                    items[index].name.clone(),
                    key_type.clone(),
                    ColumnKind::Key,
                ));
                key_projection.push(CompiledExpr::Column(columns.len() - 1));
            }
            // `*` gets the synthetic key without naming it.
            None if synthetic && has_star => {
                key_columns.push(Column::new(ROWKEY, key_type.clone(), ColumnKind::Key));
                key_projection.push(CompiledExpr::Column(columns.len() - 1));
            }
            None if synthetic => return Err(format!(
                "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build `{sink_name}` must include the join expression ROWKEY in its projection (eg, SELECT ROWKEY...).\nROWKEY was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased."
            )),
            None if foreign_key => {
                let missing: Vec<String> = left.key_columns().map(|c| format!("`{}`", c.name)).collect();
                return Err(format!(
                    "Primary key column missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{}`). Missing column: {}.",
                    left_prefix,
                    missing.join(", ")
                ));
            }
            None => {
                let shown: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
                let noun = if shown.len() == 1 { "expression" } else { "expressions" };
                return Err(format!(
                    "The query used to build `{sink_name}` must include the join {noun} {} in its projection (eg, SELECT {}...).",
                    shown.join(" or "),
                    shown[0]
                ));
            }
        }
    }
    let mut value_columns = Vec::new();
    let mut value_projection = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, item) in items.into_iter().enumerate() {
        if Some(index) == key_item && !push {
            continue;
        }
        if !seen.insert(item.name.clone())
            || key_columns.iter().any(|k: &Column| k.name == item.name)
        {
            return Err(format!(
                "Duplicate value columns found in schema: `{}` {}",
                item.name, item.sql_type
            ));
        }
        value_columns.push(Column::new(item.name, item.sql_type, ColumnKind::Value));
        value_projection.push(item.expr);
    }
    if value_columns.is_empty() && !push {
        return Err("The projection contains no value columns.".into());
    }
    let mut topology = engine.source_topology(left, filter, push, query.limit)?;
    topology.key_projection = key_projection;
    topology.value_projection = value_projection;
    topology.sink_window = None;
    // A new key: a left row without a key still has the join's.
    topology.rekeyed = true;
    let mut stage = JoinStage::new(
        join.kind,
        engine.source_reader(right)?,
        left.kind == SourceKind::Table,
        (left_key, right_key),
        window,
        left_columns.len(),
    );
    stage.foreign_key = foreign_key;
    topology.join = Some(stage);
    Ok(QueryPlan {
        topology,
        key_columns,
        value_columns,
        produces_table: left.kind == SourceKind::Table && right.kind == SourceKind::Table,
    })
}

/// ksqlDB's rules on what may join what.
fn check_sides(left: &Source, right: &Source, kind: JoinKind, within: bool) -> Result<()> {
    match (left.kind, right.kind) {
        (SourceKind::Table, SourceKind::Stream) => Err(format!(
            "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {} [TABLE] {} JOIN {} [STREAM].",
            left.name,
            kind_name(kind),
            right.name
        )),
        (SourceKind::Stream, SourceKind::Stream) if !within => Err(
            "Stream-Stream joins must have a WITHIN clause specified. None was provided. To learn about how to specify a WITHIN clause with a stream-stream join, please visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html#create-stream-as-select".into(),
        ),
        (SourceKind::Stream, SourceKind::Table) | (SourceKind::Table, SourceKind::Table) if within => Err(
            "A window definition was provided for a Stream-Table join. These joins are not windowed. Please drop the window definition (ie. the WITHIN clause) and try to execute your join again.".into(),
        ),
        (SourceKind::Stream, SourceKind::Table) if matches!(kind, JoinKind::Right | JoinKind::Full) => Err(format!(
            "Invalid join type: {} join between a stream and a table is not supported: only inner and left joins are.",
            kind_name(kind)
        )),
        _ => match (&left.window_type, &right.window_type) {
            (Some(l), None) => Err(format!("Can not join windowed source to non-windowed source.\n`{}` is {l} windowed\n`{}` is not windowed", left.name, right.name)),
            (None, Some(r)) => Err(format!("Can not join windowed source to non-windowed source.\n`{}` is {r} windowed\n`{}` is not windowed", right.name, left.name)),
            (Some(_), Some(_)) => Err("Joins of windowed sources are not supported by this engine yet".into()),
            (None, None) => Ok(()),
        },
    }
}

/// Whether a table-table join is on a foreign key: the right side's expression must be its
/// primary key; the left side's may be its own key (a primary-key join) or any expression.
fn foreign_key_join(
    (left, left_names, left_on): (&Source, &[String], &Expr),
    (right, right_names, right_on): (&Source, &[String], &Expr),
    kind: JoinKind,
    (left_prefix, right_prefix): (&str, &str),
    swapped: bool,
) -> Result<bool> {
    if left.kind != SourceKind::Table || right.kind != SourceKind::Table {
        return Ok(false);
    }
    let is_key = |expr: &Expr, source: &Source, names: &[String]| match expr {
        Expr::Column { qualifier, name } => {
            qualifier.as_ref().is_none_or(|q| names.contains(q))
                && source.key_columns().count() == 1
                && source.key_columns().any(|c| &c.name == name)
        }
        _ => false,
    };
    let shown = |expr: &Expr, prefix: &str| {
        expr.map_columns(&|qualifier, name| Expr::Column {
            qualifier: Some(qualifier.unwrap_or(prefix).to_string()),
            name: name.to_string(),
        })
        .to_string()
    };
    match (
        is_key(left_on, left, left_names),
        is_key(right_on, right, right_names),
    ) {
        (true, true) => Ok(false),
        (_, false) => {
            // The condition as written.
            let (left_text, right_text) =
                (shown(left_on, left_prefix), shown(right_on, right_prefix));
            let (first, second) = if swapped {
                (right_text, left_text)
            } else {
                (left_text, right_text)
            };
            Err(format!(
                "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {first} = {second}."
            ))
        }
        (false, true) => match kind {
            JoinKind::Right | JoinKind::Full => Err(format!(
                "{} JOIN on a foreign key is not supported",
                kind_name(kind)
            )),
            _ => Ok(true),
        },
    }
}

fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "INNER",
        JoinKind::Left => "LEFT OUTER",
        JoinKind::Right => "RIGHT OUTER",
        JoinKind::Full => "FULL OUTER",
    }
}

/// How many column references an expression has.
fn column_count(expr: &Expr) -> usize {
    let count = std::cell::Cell::new(0);
    expr.map_columns(&|qualifier, name| {
        count.set(count.get() + 1);
        Expr::Column {
            qualifier: qualifier.map(str::to_string),
            name: name.to_string(),
        }
    });
    count.get()
}
