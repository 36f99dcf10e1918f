//! Pull queries: `SELECT ... FROM table [WHERE ...] [LIMIT n]` without `EMIT CHANGES`, answered
//! at once from the rows a table's query keeps (ksqlDB's state stores), in key order.

use crate::catalog::{Source, WINDOW_COLUMNS};
use crate::engine::{
    compile_clause, compile_filter, generated_name, item_name, Engine, StatementError,
};
use crate::expr::{eval_column, Batch, CompiledExpr, Scope};
use crate::sql::ast::{Expr, Query, SelectItem, SourceKind};
use crate::types::{Column, ColumnKind, SqlType};
use crate::value::Value;

/// A pull query's answer: its columns (key columns marked, as ksqlDB's header shows them) and
/// its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PullResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl PullResult {
    /// The header's schema as ksqlDB writes it: "`ID` STRING KEY, `COUNT` BIGINT".
    pub fn schema(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                let key = if c.kind == ColumnKind::Key {
                    " KEY"
                } else {
                    ""
                };
                format!("`{}` {}{key}", c.name, c.sql_type)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const DOCS: &str = "See https://cnfl.io/queries for more info.";

impl Engine {
    /// Runs a pull query over the current state of the table it names.
    pub fn pull_query(&mut self, text: &str) -> Result<PullResult, StatementError> {
        let query = self.parse_select(text)?;
        self.answer_pull(&query).map_err(|message| StatementError {
            message,
            statement: text.to_string(),
        })
    }

    fn answer_pull(&self, query: &Query) -> Result<PullResult, String> {
        for (present, clause) in [
            (!query.group_by.is_empty(), "GROUP BY"),
            (query.window.is_some(), "WINDOW"),
            (!query.partition_by.is_empty(), "PARTITION BY"),
            (query.having.is_some(), "HAVING"),
        ] {
            if present {
                return Err(format!(
                    "Pull queries don't support {clause} clauses. {DOCS}"
                ));
            }
        }
        if !query.joins.is_empty() {
            return Err(format!("Pull queries don't support JOIN clauses. {DOCS}"));
        }
        let source = self
            .catalog
            .sources
            .get(&query.from.name)
            .ok_or_else(|| format!("{} does not exist.", query.from.name))?;
        if source.kind == SourceKind::Stream {
            return Err(format!(
                "Pull queries over streams are not supported by this engine yet: `{}` is a stream. Add EMIT CHANGES for a push query.",
                source.name
            ));
        }
        let rows = self.materialized_rows(source)?;
        let query_scope = source.query_scope(query.from.alias.as_ref());
        let scope = query_scope.scope(&self.functions);
        let scope_columns = &query_scope.columns;
        let filter = compile_filter(&scope, query.filter.as_ref())?;
        let (columns, projection) = projection(query, source, &scope)?;

        // The rows in scope order: keys, values, ROWTIME, ROWPARTITION, ROWOFFSET, window.
        let windowed = source.window_type.is_some();
        let mut batch = Batch {
            columns: vec![Vec::with_capacity(rows.len()); scope_columns.len()],
            rows: rows.len(),
        };
        for row in &rows {
            let (start, end) = row.window.map_or((Value::Null, Value::Null), |(s, e)| {
                (Value::BigInt(s), Value::BigInt(e))
            });
            let mut cells: Vec<Value> = row.key.iter().chain(&row.value).cloned().collect();
            cells.resize(source.columns.len(), Value::Null);
            cells.extend([Value::BigInt(row.timestamp), Value::Null, Value::Null]);
            if windowed {
                cells.extend([start, end]);
            }
            for (column, cell) in batch.columns.iter_mut().zip(cells) {
                column.push(cell);
            }
        }
        let mut errors = Vec::new();
        let selected: Vec<usize> = match &filter {
            Some(filter) => eval_column(filter, &batch, &mut errors)
                .iter()
                .enumerate()
                .filter(|(_, keep)| **keep == Value::Boolean(true))
                .map(|(row, _)| row)
                .collect(),
            None => (0..batch.rows).collect(),
        };
        // Keys looked up with IN come back in the list's order.
        let mut selected = selected;
        if let Some(keys) = key_in_list(query.filter.as_ref(), source, &scope) {
            let key_cells = &batch.columns[0];
            let position = |row: usize| {
                keys.iter()
                    .position(|k| crate::expr::values_equal(k, &key_cells[row]))
                    .unwrap_or(usize::MAX)
            };
            selected.sort_by_key(|&row| position(row));
        }
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let selected: Vec<usize> = selected.into_iter().take(limit).collect();
        let batch = Batch {
            columns: batch
                .columns
                .into_iter()
                .map(|c| selected.iter().map(|&i| c[i].clone()).collect())
                .collect(),
            rows: selected.len(),
        };
        let projected: Vec<Vec<Value>> = projection
            .iter()
            .map(|e| eval_column(e, &batch, &mut errors))
            .collect();
        let rows = (0..batch.rows)
            .map(|row| projected.iter().map(|c| c[row].clone()).collect())
            .collect();
        Ok(PullResult { columns, rows })
    }

    /// The current rows of a table kept by the query that writes it.
    fn materialized_rows(
        &self,
        source: &Source,
    ) -> Result<Vec<crate::topology::MaterializedRow>, String> {
        let not_queryable = || {
            format!(
                "The `{name}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{name} AS SELECT * FROM {name}'. {DOCS}",
                name = source.name
            )
        };
        let query = source
            .writer
            .as_ref()
            .and_then(|id| self.queries.get(id))
            .ok_or_else(not_queryable)?;
        let topology = query
            .topology
            .lock()
            .map_err(|_| "the table's query failed".to_string())?;
        let materialized = topology.materialized.as_ref().ok_or_else(not_queryable)?;
        Ok(materialized.rows_in_store_order())
    }
}

/// The projection's columns and expressions: `*` is the keys, the window bounds of a windowed
/// table (as keys), then the values.
fn projection(
    query: &Query,
    source: &Source,
    scope: &Scope,
) -> Result<(Vec<Column>, Vec<CompiledExpr>), String> {
    let index_of = |name: &str| {
        scope
            .columns
            .iter()
            .position(|(n, _)| n == name)
            .expect("scope column")
    };
    let mut columns = Vec::new();
    let mut exprs = Vec::new();
    let mut generated = 0;
    for item in &query.select {
        match item {
            SelectItem::All | SelectItem::AllOf(_) => {
                for column in source.key_columns() {
                    columns.push(column.clone());
                    exprs.push(CompiledExpr::Column(index_of(&column.name)));
                }
                if source.window_type.is_some() {
                    for (name, sql_type) in &WINDOW_COLUMNS {
                        columns.push(Column::new(*name, sql_type.clone(), ColumnKind::Key));
                        exprs.push(CompiledExpr::Column(index_of(name)));
                    }
                }
                for column in source.value_columns() {
                    columns.push(column.clone());
                    exprs.push(CompiledExpr::Column(index_of(&column.name)));
                }
            }
            SelectItem::StructAll(_) => {
                return Err("`->*` is not supported in pull queries".into());
            }
            SelectItem::Expr { expr, alias } => {
                let (compiled, sql_type) = compile_clause(scope, "SELECT", expr)?;
                let key_column = match expr {
                    Expr::Column { name, .. } => {
                        source.key_columns().any(|c| &c.name == name)
                            || (source.window_type.is_some()
                                && WINDOW_COLUMNS.iter().any(|(n, _)| n == name))
                    }
                    _ => false,
                };
                let name = item_name(alias.as_ref(), expr, || {
                    generated_name(&mut generated, |_| false)
                });
                let kind = if key_column {
                    ColumnKind::Key
                } else {
                    ColumnKind::Value
                };
                columns.push(Column::new(name, sql_type.unwrap_or(SqlType::String), kind));
                exprs.push(compiled);
            }
        }
    }
    Ok((columns, exprs))
}

/// The values of a top-level `KEY IN (...)` condition on a single-column key, if there is one.
fn key_in_list(filter: Option<&Expr>, source: &Source, scope: &Scope) -> Option<Vec<Value>> {
    let mut keys = source.key_columns();
    let key = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    let mut pending = vec![filter?];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::Binary {
                op: crate::sql::ast::BinaryOp::And,
                left,
                right,
            } => pending.extend([left.as_ref(), right.as_ref()]),
            Expr::InList {
                expr,
                list,
                negated: false,
            } if matches!(expr.as_ref(), Expr::Column { name, .. } if *name == key.name) => {
                return list
                    .iter()
                    .map(|item| match crate::expr::compile(item, scope) {
                        Ok((CompiledExpr::Literal(value), _)) => Some(value),
                        _ => None,
                    })
                    .collect();
            }
            _ => {}
        }
    }
    None
}
