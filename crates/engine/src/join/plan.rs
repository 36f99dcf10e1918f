//! Planning a join of two or more sources, as ksqlDB plans it: a left-deep chain, where the
//! result of joining the first sources is the left side of the join with the next one. Each
//! step's sides are checked as ksqlDB checks them and its `ON` condition is split into each
//! side's join expression; `WHERE` and `SELECT` are compiled over the joined row: each source's
//! scope in `FROM` order, each step's join key after the source it joined (the last one is
//! `ROWKEY`).

use super::{JoinStage, JoinWindow};
use crate::catalog::{QueryScope, Source};
use crate::engine::{
    compile_clause, compile_filter, generated_name, item_name, or_list, Engine, QueryPlan,
};
use crate::expr::{compile, CompiledExpr, Scope};
use crate::sql::ast::{BinaryOp, Expr, Join, JoinKind, Query, SelectItem, SourceKind};
use crate::types::{Column, ColumnKind, SqlType};

type Result<T> = std::result::Result<T, String>;

/// The synthetic key column of a join whose key is not one source column.
const ROWKEY: &str = "ROWKEY";

/// The name of an earlier step's join key in the joined row: no SQL can name it (the key a
/// query sees is the last step's, `ROWKEY`).
const STEP_KEY: &str = "\u{0}STEP_KEY";

/// A source of the join, with the names its columns may be qualified with.
struct JoinSource<'a> {
    source: &'a Source,
    /// The name the projection qualifies its columns with: its alias, else its name.
    prefix: String,
    /// Its scope's columns (declared, then pseudo-columns) and the names that qualify them (its
    /// name, then its alias).
    scope: QueryScope,
}

impl JoinSource<'_> {
    fn has_column(&self, name: &str) -> bool {
        self.source.columns.iter().any(|c| c.name == name)
    }
}

/// The joined row's cells, built step by step: each source's scope, then that step's join key.
struct RowLayout {
    columns: Vec<(String, SqlType)>,
    /// The source each cell belongs to: an index into `sides` (`sides.len() - 1` for the keys,
    /// which no qualifier names).
    column_sides: Vec<usize>,
    sides: Vec<Vec<String>>,
    /// Where each source's cells start.
    offsets: Vec<usize>,
}

impl RowLayout {
    fn add_source(&mut self, index: usize, source: &JoinSource) {
        self.offsets.push(self.columns.len());
        self.columns.extend(source.scope.columns.iter().cloned());
        self.column_sides
            .extend(std::iter::repeat_n(index, source.scope.columns.len()));
    }

    fn add_key(&mut self, name: &str, sql_type: SqlType) {
        self.columns.push((name.to_string(), sql_type));
        self.column_sides.push(self.sides.len() - 1);
    }

    /// A scope over the first `width` cells.
    fn scope<'a>(&'a self, width: usize, engine: &'a Engine) -> Scope<'a> {
        Scope {
            columns: &self.columns[..width],
            qualifiers: &[],
            functions: &engine.functions,
            column_sides: &self.column_sides[..width],
            sides: &self.sides,
        }
    }
}

/// The expressions the key of the join so far equals, as the projection would name them (a
/// later join on one of them needs no repartition, and keeps the key), and those of them that
/// are source columns: the key columns the projection may name.
#[derive(Clone, Default)]
struct KeyExpressions {
    equal: Vec<Expr>,
    columns: Vec<Expr>,
}

/// One planned step of the chain.
struct Step {
    stage: JoinStage,
    key_type: SqlType,
    keys: KeyExpressions,
}

pub(crate) fn plan(
    engine: &Engine,
    query: &Query,
    push: bool,
    sink_name: &str,
) -> Result<QueryPlan> {
    let sources = join_sources(engine, query)?;
    let n_way = sources.len() > 2;
    if n_way {
        for (index, join) in query.joins.iter().enumerate() {
            check_n_way_criteria(&sources, index + 1, join)?;
        }
    }
    let mut layout = RowLayout {
        columns: Vec::new(),
        column_sides: Vec::new(),
        sides: sources
            .iter()
            .map(|s| s.scope.qualifiers.clone())
            .chain([Vec::new()])
            .collect(),
        offsets: Vec::new(),
    };
    layout.add_source(0, &sources[0]);
    let mut stages = Vec::new();
    let mut previous: Option<(KeyExpressions, SqlType)> = None;
    let mut foreign_key = false;
    for (index, join) in query.joins.iter().enumerate() {
        let right = index + 1;
        let left_width = layout.columns.len();
        layout.add_source(right, &sources[right]);
        let step = plan_step(
            engine,
            &sources,
            &layout,
            (right, join),
            left_width,
            previous.as_ref(),
        )?;
        foreign_key = step.stage.foreign_key;
        let last = right == sources.len() - 1;
        layout.add_key(if last { ROWKEY } else { STEP_KEY }, step.key_type.clone());
        stages.push(step.stage);
        previous = Some((step.keys, step.key_type));
    }
    let (keys, key_type) = previous.expect("a join has a step");

    // The joined row's scope.
    let scope = layout.scope(layout.columns.len(), engine);
    let filter = compile_filter(&scope, query.filter.as_ref())?;

    // A column reference as (source prefix, column), to compare projections with the join keys.
    let resolve = |expr: &Expr| resolve(&sources, expr);
    struct Item {
        name: String,
        expr: CompiledExpr,
        sql_type: SqlType,
        resolved: Expr,
    }
    let mut items: Vec<Item> = Vec::new();
    let mut generated = 0usize;
    let star = |index: usize, items: &mut Vec<Item>| {
        let side = &sources[index];
        for (at, column) in side.source.columns.iter().enumerate() {
            items.push(Item {
                name: format!("{}_{}", side.prefix, column.name),
                expr: CompiledExpr::Column(layout.offsets[index] + at),
                sql_type: column.sql_type.clone(),
                resolved: Expr::Column {
                    qualifier: Some(side.prefix.clone()),
                    name: column.name.clone(),
                },
            });
        }
    };
    for select in &query.select {
        match select {
            SelectItem::All => (0..sources.len()).for_each(|index| star(index, &mut items)),
            SelectItem::AllOf(q) => match source_named(&sources, q) {
                Some(index) => star(index, &mut items),
                None => return Err(format!("'{q}' is not a valid stream/table name or alias.")),
            },
            SelectItem::StructAll(_) => return Err("`->*` is not supported in joins yet".into()),
            SelectItem::Expr { expr, alias } => {
                let (compiled, sql_type) = compile_clause(&scope, "SELECT", expr)?;
                let Some(sql_type) = sql_type else {
                    return Err(format!("Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR). ({expr})"));
                };
                let resolved = resolve(expr);
                // A column more than one source has (pseudo-columns too) is named by its
                // source (`T_ID`, `T_ROWTIME`); others by name only.
                let on_several_sources = |name: &str| {
                    let has = |s: &&JoinSource| s.scope.columns.iter().any(|(c, _)| c == name);
                    sources.iter().filter(has).count() > 1
                };
                let name = match (alias, &resolved) {
                    (
                        None,
                        Expr::Column {
                            qualifier: Some(q),
                            name,
                        },
                    ) if on_several_sources(name) => format!("{q}_{name}"),
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

    // The key: a join expression that is a plain column, as the projection names it; a full
    // outer join's, or one on computed expressions only, is the synthetic ROWKEY.
    let synthetic = !foreign_key && keys.columns.is_empty();
    let rowkey = Expr::Column {
        qualifier: None,
        name: ROWKEY.to_string(),
    };
    let candidates: Vec<Expr> = if synthetic {
        vec![rowkey.clone()]
    } else {
        keys.columns
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
                key_projection.push(CompiledExpr::Column(layout.columns.len() - 1));
            }
            // `*` gets the synthetic key without naming it.
            None if synthetic && has_star => {
                key_columns.push(Column::new(ROWKEY, key_type.clone(), ColumnKind::Key));
                key_projection.push(CompiledExpr::Column(layout.columns.len() - 1));
            }
            None if synthetic => return Err(format!(
                "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build `{sink_name}` must include the join expression ROWKEY in its projection (eg, SELECT ROWKEY...).\nROWKEY was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased."
            )),
            None if foreign_key => {
                let left = &sources[0];
                let missing: Vec<String> = left.source.key_columns().map(|c| format!("`{}`", c.name)).collect();
                return Err(format!(
                    "Primary key column missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{}`). Missing column: {}.",
                    left.prefix,
                    missing.join(", ")
                ));
            }
            None => {
                let shown: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
                let noun = if shown.len() == 1 { "expression" } else { "expressions" };
                return Err(format!(
                    "The query used to build `{sink_name}` must include the join {noun} {} in its projection (eg, SELECT {}...).",
                    or_list(&shown),
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
    let mut topology = engine.source_topology(sources[0].source, filter, push, query.limit)?;
    topology.key_projection = key_projection;
    topology.value_projection = value_projection;
    topology.sink_window = None;
    // A new key: a left row without a key still has the join's.
    topology.rekeyed = true;
    topology.joins = stages;
    Ok(QueryPlan {
        topology,
        key_columns,
        value_columns,
        produces_table: sources.iter().all(|s| s.source.kind == SourceKind::Table),
    })
}

/// The sources of `FROM` and each `JOIN`, in order.
fn join_sources<'a>(engine: &'a Engine, query: &Query) -> Result<Vec<JoinSource<'a>>> {
    let relations: Vec<_> = std::iter::once(&query.from)
        .chain(query.joins.iter().map(|j| &j.relation))
        .collect();
    let mut sources = Vec::with_capacity(relations.len());
    for relation in relations {
        let source = engine
            .catalog
            .sources
            .get(&relation.name)
            .ok_or_else(|| format!("{} does not exist.", relation.name))?;
        sources.push(JoinSource {
            source,
            prefix: relation
                .alias
                .clone()
                .unwrap_or_else(|| source.name.clone()),
            scope: source.query_scope(relation.alias.as_ref()),
        });
    }
    let seen = |at: usize| {
        sources[..at]
            .iter()
            .any(|s| s.source.name == sources[at].source.name)
    };
    match sources.len() {
        2 if seen(1) => Err(format!(
            "Can not join '{}' to '{}': self joins are not yet supported.",
            sources[0].source.name, sources[1].source.name
        )),
        2 => Ok(sources),
        _ => match (1..sources.len()).find(|&at| seen(at)) {
            Some(at) => Err(format!(
                "N-way joins do not support multiple occurrences of the same source. Source: '{}'",
                sources[at].source.name
            )),
            None => Ok(sources),
        },
    }
}

/// Plans the join of the sources before `right` (the cells of `layout` before `left_width`)
/// with source `right`, on `join`'s condition. `previous` is the key of the steps before.
fn plan_step(
    engine: &Engine,
    sources: &[JoinSource],
    layout: &RowLayout,
    (right, join): (usize, &Join),
    left_width: usize,
    previous: Option<&(KeyExpressions, SqlType)>,
) -> Result<Step> {
    let n_way = sources.len() > 2;
    let right_source = &sources[right];
    // The left side's scope: the first source's own, or the joined row so far.
    let left_scope = match previous {
        None => sources[0].scope.scope(&engine.functions),
        Some(_) => layout.scope(left_width, engine),
    };
    let right_scope = right_source.scope.scope(&engine.functions);
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
    // Both sides at once, only to name a column neither has.
    let on_scope = layout.scope(layout.columns.len(), engine);
    let on_side = |expr: &Expr| {
        let refs = column_count(expr);
        let in_left = compile(expr, &left_scope).ok();
        let in_right = compile(expr, &right_scope).ok();
        (refs, in_left, in_right)
    };
    let ((left_key, left_type), (right_key, right_type), swapped) = {
        let (a_refs, a_left, a_right) = on_side(left_expr);
        let (b_refs, b_left, b_right) = on_side(right_expr);
        for (refs, expr) in [(a_refs, left_expr), (b_refs, right_expr)] {
            if refs == 0 {
                return Err(literal_side(expr, &join.on));
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
    if previous.is_none() {
        check_value_formats(sources)?;
    }
    let left_sources = &sources[..right];
    let left = LeftSide {
        name: &sources[0].source.name,
        kind: if left_sources
            .iter()
            .all(|s| s.source.kind == SourceKind::Table)
        {
            SourceKind::Table
        } else {
            SourceKind::Stream
        },
        window_type: sources[0].source.window_type.as_ref(),
    };
    check_sides(
        &left,
        right_source.source,
        join.kind,
        join.within.is_some(),
        n_way,
    )?;
    // ksqlDB checks co-partitioning on every join; a two-source join is left as it was (its
    // sources' partitions are not checked), N-way joins refuse as ksqlDB does.
    if n_way && sources[0].source.partitions != right_source.source.partitions {
        return Err(format!(
            "Can't join `{}` with `{}` since the number of partitions don't match. `{}` partitions = {}; `{}` partitions = {}. Please repartition either one so that the number of partitions match.",
            sources[0].source.name, right_source.source.name,
            sources[0].source.name, sources[0].source.partitions,
            right_source.source.name, right_source.source.partitions
        ));
    }
    let window = join.within.as_deref().map(JoinWindow::parse).transpose()?;

    // A later step joining on what the key already is keeps it (ksqlDB does not repartition);
    // on anything else, the left rows are re-keyed by the left join expression.
    let resolved_left = resolve(sources, left_on);
    let keeps_key = previous.filter(|(keys, _)| keys.equal.contains(&resolved_left));
    let left_is_key = match previous {
        None => is_primary_key(left_on, &sources[0]),
        Some(_) => keeps_key.is_some(),
    };
    // The condition as written, for messages: each side's unqualified columns are its
    // source's (a later step's left side's, the source that has them).
    let shown_left = if previous.is_some() {
        &resolved_left
    } else {
        left_on
    };
    let left_text = qualified_text(shown_left, &sources[0].prefix);
    let right_text = qualified_text(right_on, &right_source.prefix);
    let condition = if swapped {
        format!("{right_text} = {left_text}")
    } else {
        format!("{left_text} = {right_text}")
    };
    let foreign_key = foreign_key_join(
        left.kind == SourceKind::Table,
        left_is_key,
        (right_source, right_on),
        join.kind,
        &condition,
    )?;
    if foreign_key && previous.is_some() {
        return Err(format!(
            "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {condition}."
        ));
    }
    let (left_key, key_type) = match keeps_key {
        // The key is the last cell of the joined row so far.
        Some((_, previous_type)) => (CompiledExpr::Column(left_width - 1), previous_type.clone()),
        None if foreign_key => {
            let primary = sources[0].source.key_columns().next();
            (
                left_key,
                primary
                    .map(|c| c.sql_type.clone())
                    .unwrap_or(SqlType::String),
            )
        }
        None => (
            left_key,
            left_type.or(right_type).unwrap_or(SqlType::String),
        ),
    };

    // What the key equals after this step.
    let keys = if foreign_key {
        // A foreign-key join is keyed by the left table's key.
        let primary: Vec<Expr> = sources[0]
            .source
            .key_columns()
            .take(1)
            .map(|c| Expr::Column {
                qualifier: Some(sources[0].prefix.clone()),
                name: c.name.clone(),
            })
            .collect();
        KeyExpressions {
            equal: primary.clone(),
            columns: primary,
        }
    } else if join.kind == JoinKind::Full {
        KeyExpressions::default()
    } else {
        let mut keys = keeps_key.map(|(kept, _)| kept.clone()).unwrap_or_default();
        for expr in [resolved_left, resolve(sources, right_on)] {
            if matches!(expr, Expr::Column { .. }) && !keys.columns.contains(&expr) {
                keys.columns.push(expr.clone());
            }
            if !keys.equal.contains(&expr) {
                keys.equal.push(expr);
            }
        }
        keys
    };
    let mut stage = JoinStage::new(
        join.kind,
        engine.source_reader(right_source.source)?,
        left.kind == SourceKind::Table,
        (left_key, right_key),
        window,
        left_width,
    );
    stage.foreign_key = foreign_key;
    Ok(Step {
        stage,
        key_type,
        keys,
    })
}

/// ksqlDB's checks of an N-way join's condition: each side names exactly one source, one of
/// them the source it joins.
fn check_n_way_criteria(sources: &[JoinSource], right: usize, join: &Join) -> Result<()> {
    let Expr::Binary {
        op: BinaryOp::Eq,
        left,
        right: other,
    } = &join.on
    else {
        return Ok(());
    };
    let referenced = |expr: &Expr| referenced_sources(sources, expr);
    for expr in [left.as_ref(), other.as_ref()] {
        if column_count(expr) == 0 {
            return Err(literal_side(expr, &join.on));
        }
    }
    let (on_left, on_right) = (referenced(left), referenced(other));
    let named = |found: &[usize]| {
        found
            .iter()
            .map(|&i| sources[i].prefix.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if on_left.len() != 1 || on_right.len() != 1 || on_left == on_right {
        return Err(format!(
            "Each side of the join must reference exactly one source and not the same source. Left side references `{}` and right references `{}`",
            named(&on_left),
            named(&on_right)
        ));
    }
    if on_left != [right] && on_right != [right] {
        return Err(format!(
            "A join criteria is expected to reference the source (`{}`) in the FROM clause, instead the right source references `{}` and the left source references `{}`",
            sources[right].prefix,
            named(&on_right),
            named(&on_left)
        ));
    }
    Ok(())
}

/// The sources an expression's columns belong to (an unqualified column, to each source that
/// has it), in `FROM` order.
fn referenced_sources(sources: &[JoinSource], expr: &Expr) -> Vec<usize> {
    let mut found = Vec::new();
    for_each_column(expr, |qualifier, name| match qualifier {
        Some(q) => found.extend(source_named(sources, q)),
        None => found.extend(
            sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.scope.columns.iter().any(|(c, _)| c == name))
                .map(|(i, _)| i),
        ),
    });
    found.sort_unstable();
    found.dedup();
    found
}

/// ksqlDB's refusal of a join condition side without columns (`ON a.id = 0`).
fn literal_side(expr: &Expr, on: &Expr) -> String {
    format!("Invalid comparison expression '{expr}' in join '{on}'. Each side of the join comparision must contain references from exactly one source.")
}

/// The index of the source a qualifier names.
fn source_named(sources: &[JoinSource], qualifier: &str) -> Option<usize> {
    sources
        .iter()
        .position(|s| s.scope.qualifiers.iter().any(|n| n == qualifier))
}

/// An expression with each column qualified by its source's prefix (an unqualified column is
/// the first source's that has it), as the projection's columns are compared with join keys.
fn resolve(sources: &[JoinSource], expr: &Expr) -> Expr {
    expr.map_columns(&|qualifier, name| {
        let prefix = match qualifier {
            Some(q) => source_named(sources, q).map(|i| sources[i].prefix.clone()),
            None => sources
                .iter()
                .find(|s| s.has_column(name))
                .map(|s| s.prefix.clone()),
        };
        Expr::Column {
            qualifier: prefix,
            name: name.to_string(),
        }
    })
}

/// An expression as ksqlDB shows a join condition: unqualified columns qualified by `prefix`.
fn qualified_text(expr: &Expr, prefix: &str) -> String {
    expr.map_columns(&|qualifier, name| Expr::Column {
        qualifier: Some(qualifier.unwrap_or(prefix).to_string()),
        name: name.to_string(),
    })
    .to_string()
}

/// Whether an expression is a source's one primary key column.
fn is_primary_key(expr: &Expr, side: &JoinSource) -> bool {
    match expr {
        Expr::Column { qualifier, name } => {
            qualifier
                .as_ref()
                .is_none_or(|q| side.scope.qualifiers.contains(q))
                && side.source.key_columns().count() == 1
                && side.source.key_columns().any(|c| &c.name == name)
        }
        _ => false,
    }
}

/// The sources' value formats must be able to join.
fn check_value_formats(sources: &[JoinSource]) -> Result<()> {
    let kafka_values: Vec<&str> = sources
        .iter()
        .filter(|s| s.source.value_format.format == crate::formats::Format::Kafka)
        .map(|s| s.source.name.as_str())
        .collect();
    if kafka_values.is_empty() {
        return Ok(());
    }
    Err(format!(
        "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
        kafka_values.join(", ")
    ))
}

/// The left side of a join step: the first source, or the result of the steps before (a
/// table when every source so far is one), named by the first source.
struct LeftSide<'a> {
    name: &'a str,
    kind: SourceKind,
    window_type: Option<&'a String>,
}

/// ksqlDB's rules on what may join what.
fn check_sides(
    left: &LeftSide,
    right: &Source,
    kind: JoinKind,
    within: bool,
    n_way: bool,
) -> Result<()> {
    match (left.kind, right.kind) {
        // ksqlDB words this one differently for joins of more than two sources.
        (SourceKind::Table, SourceKind::Stream) if n_way => Err(format!(
            "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {} [{}] JOIN {}.",
            left.name,
            kind_word(kind),
            right.name
        )),
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
        _ => match (left.window_type, &right.window_type) {
            (Some(l), None) => Err(format!("Can not join windowed source to non-windowed source.\n`{}` is {l} windowed\n`{}` is not windowed", left.name, right.name)),
            (None, Some(r)) => Err(format!("Can not join windowed source to non-windowed source.\n`{}` is {r} windowed\n`{}` is not windowed", right.name, left.name)),
            (Some(_), Some(_)) => Err("Joins of windowed sources are not supported by this engine yet".into()),
            (None, None) => Ok(()),
        },
    }
}

/// Whether a table-table join is on a foreign key: the right side's expression must be its
/// primary key; the left side's may be its own key (a primary-key join) or any expression.
/// `condition` is the join condition as ksqlDB shows it.
fn foreign_key_join(
    left_table: bool,
    left_is_key: bool,
    (right, right_on): (&JoinSource, &Expr),
    kind: JoinKind,
    condition: &str,
) -> Result<bool> {
    if !left_table || right.source.kind != SourceKind::Table {
        return Ok(false);
    }
    match (left_is_key, is_primary_key(right_on, right)) {
        (true, true) => Ok(false),
        (_, false) => Err(format!(
            "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {condition}."
        )),
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

/// A join type as ksqlDB's plan names it.
fn kind_word(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "INNER",
        JoinKind::Left => "LEFT",
        JoinKind::Right => "RIGHT",
        JoinKind::Full => "OUTER",
    }
}

/// How many column references an expression has.
fn column_count(expr: &Expr) -> usize {
    let mut count = 0;
    for_each_column(expr, |_, _| count += 1);
    count
}

/// Calls `visit` with each column reference of an expression (qualifier, name).
fn for_each_column(expr: &Expr, mut visit: impl FnMut(Option<&str>, &str)) {
    let visit = std::cell::RefCell::new(&mut visit);
    expr.map_columns(&|qualifier, name| {
        (visit.borrow_mut())(qualifier, name);
        Expr::Column {
            qualifier: qualifier.map(str::to_string),
            name: name.to_string(),
        }
    });
}
