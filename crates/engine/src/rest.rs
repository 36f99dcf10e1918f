//! Values as ksqlDB's REST API writes them in query rows, and the check of ksqlDB's REST
//! conformance cases' push query responses (header schema, rows, final message).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use crate::engine::Engine;
use crate::sql::ast::Statement;
use crate::topology::{InputRecord, OutputRecord};
use crate::types::SqlType;
use crate::value::{decimal_to_f64, java_double_to_string, Value};

/// A value as a row cell of `/query` and `/query-stream`: numbers as JSON numbers, dates and
/// times as ISO text, bytes as base64, structs as objects by field name, maps by key text.
pub fn value_json(value: &Value, sql_type: &SqlType) -> Json {
    match (value, sql_type) {
        (Value::Null, _) => Json::Null,
        (Value::Boolean(b), _) => json!(b),
        (Value::Integer(v), _) => json!(v),
        (Value::BigInt(v), _) => json!(v),
        (Value::Double(v), _) => serde_json::Number::from_f64(*v)
            .map(Json::Number)
            .unwrap_or_else(|| json!(java_double_to_string(*v))),
        (Value::Decimal { unscaled, scale }, _) => {
            serde_json::Number::from_f64(decimal_to_f64(*unscaled, *scale))
                .map(Json::Number)
                .unwrap_or(Json::Null)
        }
        (Value::Array(items), SqlType::Array(inner)) => {
            Json::Array(items.iter().map(|v| value_json(v, inner)).collect())
        }
        (Value::Map(entries), SqlType::Map(key, inner)) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key_text = match value_json(k, key) {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key_text, value_json(v, inner));
            }
            Json::Object(map)
        }
        (Value::Struct(values), SqlType::Struct(fields)) => {
            let mut map = Map::new();
            for ((name, field_type), v) in fields.iter().zip(values) {
                map.insert(name.clone(), value_json(v, field_type));
            }
            Json::Object(map)
        }
        (other, _) => json!(crate::expr::value_to_string(other)),
    }
}

/// For each `SELECT` statement whose expected response is a `query`, runs the push query over
/// every record its source topic holds (`records`: inputs and what queries wrote) and compares
/// the header's schema, the rows and the final message with the expected ones.
pub fn check_push_responses(
    case: &Json,
    engine: &mut Engine,
    statements: &[String],
    records: &dyn Fn(&str) -> Vec<OutputRecord>,
) -> Result<(), String> {
    let Some(responses) = case.get("responses").and_then(Json::as_array) else {
        return Ok(());
    };
    for (index, statement) in statements.iter().enumerate() {
        let is_select = crate::sql::parse_statements(statement).is_ok_and(|parsed| {
            parsed
                .iter()
                .any(|p| matches!(p.statement, Statement::Select(_)))
        });
        let Some(expected) = responses
            .get(index)
            .and_then(|r| r.get("query"))
            .and_then(Json::as_array)
        else {
            if is_select {
                return Err(format!(
                    "statement {index} is a query without an expected query response"
                ));
            }
            continue;
        };
        let is_pull = crate::sql::parse_statements(statement).is_ok_and(|parsed| {
            parsed
                .iter()
                .any(|p| matches!(&p.statement, Statement::Select(q) if q.emit.is_none()))
        });
        if is_pull {
            let result = engine
                .pull_query(statement)
                .map_err(|e| format!("pull query refused: {}", e.message))?;
            let rows: Vec<(Json, bool)> = result
                .rows
                .iter()
                .map(|row| {
                    let cells = row
                        .iter()
                        .zip(&result.columns)
                        .map(|(v, c)| value_json(v, &c.sql_type))
                        .collect();
                    (Json::Array(cells), false)
                })
                .collect();
            compare_query_response(index, expected, &result.schema(), &rows, false)?;
            continue;
        }
        let earliest = BTreeMap::from([("auto.offset.reset".to_string(), "earliest".to_string())]);
        let mut plan = engine
            .plan_push_query(statement, &earliest)
            .map_err(|e| format!("push query refused: {}", e.message))?;
        let schema = plan
            .columns
            .iter()
            .map(|c| format!("`{}` {}", c.name, c.sql_type))
            .collect::<Vec<_>>()
            .join(", ");
        // Each row's cells, and whether it is a table's tombstone.
        let mut rows: Vec<(Json, bool)> = Vec::new();
        for (offset, record) in records(&plan.source_topic).into_iter().enumerate() {
            let input = InputRecord {
                topic: record.topic,
                partition: 0,
                offset: offset as i64,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
            };
            for row in plan.topology.process_rows(std::slice::from_ref(&input)) {
                let cells: Vec<Json> = row
                    .key
                    .iter()
                    .chain(row.value.iter())
                    .zip(&plan.columns)
                    .map(|(v, c)| value_json(v, &c.sql_type))
                    .collect();
                rows.push((Json::Array(cells), row.tombstone));
            }
            if plan.topology.is_done() {
                break;
            }
        }
        let limit_reached = plan.limit.is_some_and(|limit| rows.len() as u64 >= limit);
        compare_query_response(index, expected, &schema, &rows, limit_reached)?;
    }
    Ok(())
}

/// Compares a query's header schema and rows (cells and tombstone flags) with the case's
/// expected response.
fn compare_query_response(
    index: usize,
    expected: &[Json],
    schema: &str,
    rows: &[(Json, bool)],
    limit_reached: bool,
) -> Result<(), String> {
    for element in expected {
        if let Some(header) = element.get("header") {
            if let Some(want) = header.get("schema").and_then(Json::as_str) {
                if want != schema {
                    return Err(format!(
                        "query {index}: header schema {schema}, expected {want}"
                    ));
                }
            }
        }
    }
    let expected_rows: Vec<(&Json, bool)> = expected
        .iter()
        .filter_map(|e| e.get("row"))
        .filter_map(|r| {
            let tombstone = r.get("tombstone") == Some(&Json::Bool(true));
            r.get("columns").map(|c| (c, tombstone))
        })
        .collect();
    if expected_rows.len() != rows.len() {
        return Err(format!(
            "query {index}: {} rows, expected {}",
            rows.len(),
            expected_rows.len()
        ));
    }
    for (i, ((want, want_tombstone), (got, tombstone))) in
        expected_rows.iter().zip(rows).enumerate()
    {
        if !crate::formats::test_values_match(want, got) || want_tombstone != tombstone {
            let shown = |tombstone: bool| if tombstone { " (tombstone)" } else { "" };
            return Err(format!(
                "query {index} row {i}: {got}{}, expected {want}{}",
                shown(*tombstone),
                shown(*want_tombstone)
            ));
        }
    }
    let wants_final = expected
        .iter()
        .find_map(|e| e.get("finalMessage").and_then(Json::as_str));
    if wants_final == Some("Limit Reached") && !limit_reached {
        return Err(format!("query {index}: the limit was not reached"));
    }
    Ok(())
}
