//! Runs ksqlDB's query-validation tests (its corpus of conformance cases, read from disk as
//! data) against this engine in-process, the way ksqlDB's own runner does: statements are
//! executed, input records are fed to the topologies one at a time in input order, and the
//! records the queries write are compared with the expected ones.
//!
//! The runner is a test driver, not a test double: the same topologies run on Kafka. What it
//! replaces is the Kafka cluster, with topics in memory (`MemoryCluster`), and the Schema
//! Registry, with the in-memory registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::engine::{Cluster, Engine, EngineConfig, ManualRuntime};
use crate::formats::{
    decode_test_value, encode_test_value_with_schema, test_values_match, FormatSpec,
    MemoryRegistry, SchemaRegistry, SerdeContext, Side,
};
use crate::functions::FunctionRegistry;
use crate::sql::ast::{ColumnConstraint, Statement};
use crate::topology::{InputRecord, OutputRecord};
use crate::types::ColumnKind;

/// The outcome of one case (one test, or one test in one format).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaseReport {
    /// The file's path as given.
    pub file: String,
    /// `<test name>` or `<test name> - <FORMAT>`.
    pub name: String,
    /// `passed` or `failed`.
    pub status: &'static str,
    /// Why it failed; `deferred: part 2 ...` and `unsupported: FORMAT` mark cases outside
    /// this engine's scope.
    pub reason: String,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }
    /// Needs tables, aggregates, windows or joins.
    pub fn deferred(&self) -> bool {
        self.reason.starts_with("deferred:")
    }
    /// Uses a format the engine does not support (PROTOBUF, JSON_SR).
    pub fn unsupported(&self) -> bool {
        self.reason.starts_with("unsupported:")
    }
}

/// Topics in memory: what the queries wrote, in order, per topic.
#[derive(Default)]
pub struct MemoryCluster {
    topics: Mutex<BTreeMap<String, (i32, Vec<OutputRecord>)>>,
}

impl MemoryCluster {
    /// Records appended to `topic`, in order.
    pub fn records(&self, topic: &str) -> Vec<OutputRecord> {
        self.topics
            .lock()
            .map(|t| t.get(topic).map(|(_, r)| r.clone()).unwrap_or_default())
            .unwrap_or_default()
    }

    fn append(&self, records: &[OutputRecord]) -> Vec<i64> {
        let mut topics = match self.topics.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        records
            .iter()
            .map(|record| {
                let entry = topics
                    .entry(record.topic.clone())
                    .or_insert((1, Vec::new()));
                entry.1.push(record.clone());
                entry.1.len() as i64 - 1
            })
            .collect()
    }
}

impl Cluster for MemoryCluster {
    fn partitions(&self, topic: &str) -> Result<Option<i32>, String> {
        Ok(self
            .topics
            .lock()
            .map_err(|e| e.to_string())?
            .get(topic)
            .map(|(p, _)| *p))
    }
    fn create_topic(&self, topic: &str, partitions: i32, _replicas: i16) -> Result<(), String> {
        self.topics
            .lock()
            .map_err(|e| e.to_string())?
            .entry(topic.to_string())
            .or_insert((partitions, Vec::new()));
        Ok(())
    }
    fn delete_topic(&self, topic: &str) -> Result<(), String> {
        self.topics.lock().map_err(|e| e.to_string())?.remove(topic);
        Ok(())
    }
    fn topics(&self) -> Result<Vec<(String, i32)>, String> {
        Ok(self
            .topics
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|(n, (p, _))| (n.clone(), *p))
            .collect())
    }
    fn produce(&self, records: Vec<OutputRecord>) -> Result<(), String> {
        self.append(&records);
        Ok(())
    }
}

/// The corpus files `paths` name: each file as given, each folder's `*.json` files sorted;
/// with the path each is shown as.
pub fn corpus_files(paths: &[String]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for given in paths {
        let path = PathBuf::from(given);
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            entries.sort();
            files.extend(entries.into_iter().map(|p| {
                let shown = p.display().to_string();
                (p, shown)
            }));
        } else {
            files.push((path, given.clone()));
        }
    }
    files
}

/// Runs every case of one corpus file. `display` is the path as the user gave it.
pub fn run_file(path: &Path, display: &str) -> Vec<CaseReport> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return vec![failed(display, "<file>", format!("cannot read: {e}"))],
    };
    // ksqlDB reads its corpus with comments allowed.
    let document: Json = match serde_json::from_str(&without_line_comments(&text)) {
        Ok(document) => document,
        Err(e) => return vec![failed(display, "<file>", format!("not valid JSON: {e}"))],
    };
    let mut reports = Vec::new();
    for case in document
        .get("tests")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if case.get("enabled") == Some(&Json::Bool(false)) {
            continue;
        }
        let name = case
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        match case.get("format").and_then(Json::as_array) {
            Some(formats) => {
                for format in formats.iter().filter_map(Json::as_str) {
                    let case_name = format!("{name} - {format}");
                    reports.push(report(display, &case_name, run_case(case, Some(format))));
                }
            }
            None => reports.push(report(display, &name, run_case(case, None))),
        }
    }
    reports
}

/// The text with `//` comments outside strings removed.
fn without_line_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut cut = line.len();
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if in_string => escaped = true,
                b'"' => in_string = !in_string,
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn failed(file: &str, name: &str, reason: String) -> CaseReport {
    CaseReport {
        file: file.to_string(),
        name: name.to_string(),
        status: "failed",
        reason,
    }
}

fn report(file: &str, name: &str, outcome: Result<(), String>) -> CaseReport {
    match outcome {
        Ok(()) => CaseReport {
            file: file.to_string(),
            name: name.to_string(),
            status: "passed",
            reason: String::new(),
        },
        Err(reason) => failed(file, name, reason),
    }
}

/// Why a case is outside part 1's scope, from its statements.
fn out_of_scope(statements: &[String]) -> Option<String> {
    let text = statements.join("\n").to_ascii_uppercase();
    for format in ["PROTOBUF", "JSON_SR"] {
        if text.contains(&format!("'{format}'")) || text.contains(&format!("{format}_NOSR")) {
            return Some(format!("unsupported: {format}"));
        }
    }
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    let has = |word: &str| words.contains(&word);
    let has_pair = |a: &str, b: &str| {
        words.windows(2).any(|w| w[0] == a && w[1] == b) || text.contains(&format!("{a}  {b}"))
    };
    // An aggregate function call aggregates even without GROUP BY.
    let aggregate = crate::expr::AGGREGATES.iter().any(|f| {
        text.match_indices(f).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + f.len()..].trim_start();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after.starts_with('(')
        })
    });
    let part_two = if has_pair("CREATE", "TABLE")
        || text.contains("CREATE OR REPLACE TABLE")
        || text.contains("CREATE SOURCE TABLE")
        || text.contains("CREATE OR REPLACE SOURCE TABLE")
    {
        Some("a table")
    } else if has_pair("GROUP", "BY") || aggregate {
        Some("an aggregation")
    } else if has("WINDOW") {
        Some("a window")
    } else if has("JOIN") {
        Some("a join")
    } else {
        None
    };
    part_two.map(|what| format!("deferred: part 2 (needs {what})"))
}

/// Runs one case; `format` substitutes `{FORMAT}` in its statements.
pub fn run_case(case: &Json, format: Option<&str>) -> Result<(), String> {
    let substitute = |text: &str| match format {
        Some(format) => text.replace("{FORMAT}", format),
        None => text.to_string(),
    };
    let statements: Vec<String> = case
        .get("statements")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(substitute)
        .collect();
    if let Some(format) = format {
        if ["PROTOBUF", "PROTOBUF_NOSR", "JSON_SR"].contains(&format) {
            return Err(format!("unsupported: {}", format.trim_end_matches("_NOSR")));
        }
    }
    // A case needing part 2 runs all the same: it passes when the engine can run it, and a
    // failure is reported as deferred (with why it failed), outside part 1's rates.
    match out_of_scope(&statements) {
        Some(reason) if reason.starts_with("unsupported:") => return Err(reason),
        Some(deferred) => {
            return run_statements(case, &statements)
                .map_err(|reason| format!("{deferred}: {reason}"))
        }
        None => {}
    }
    run_statements(case, &statements)
}

/// Runs the case's statements, inputs and checks.
fn run_statements(case: &Json, statements: &[String]) -> Result<(), String> {
    let cluster = Arc::new(MemoryCluster::default());
    let registry = Arc::new(MemoryRegistry::new());
    let mut config = EngineConfig::default();
    for key in ["properties", "config"] {
        if let Some(properties) = case.get(key).and_then(Json::as_object) {
            for (k, v) in properties {
                config.properties.insert(k.clone(), json_text(v));
            }
        }
    }
    let mut engine = Engine::new(
        config,
        cluster.clone(),
        Some(registry.clone() as Arc<dyn SchemaRegistry>),
        Arc::new(ManualRuntime),
        FunctionRegistry::builtin(),
    );

    // Topics the case names exist before its statements run, as in ksqlDB's harness.
    let mut declared_schemas: BTreeMap<(String, bool), Json> = BTreeMap::new();
    let mut pending_schemas: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    // ksqlDB's REST harness runs on a broker whose topics get 4 partitions unless told (its
    // pull queries' answers come in partition order); its topology harness has one.
    let default_partitions = if case.get("responses").is_some() {
        4
    } else {
        1
    };
    // Topics a statement sizes first, so that the inputs' topics do not pre-empt them.
    for statement in statements {
        if let Ok(parsed) = crate::sql::parse_statements(statement) {
            for parsed in parsed {
                if let Statement::CreateSource { properties, .. } = &parsed.statement {
                    if let Some(topic) = properties.get("KAFKA_TOPIC") {
                        let partitions = properties
                            .get("PARTITIONS")
                            .and_then(|p| p.text().parse().ok())
                            .unwrap_or(default_partitions);
                        cluster.create_topic(&topic.text(), partitions, 1)?;
                    }
                }
            }
        }
    }

    for topic in case
        .get("topics")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = topic.get("name").and_then(Json::as_str) else {
            continue;
        };
        let partitions = topic.get("partitions").and_then(Json::as_i64).unwrap_or(1) as i32;
        cluster.create_topic(name, partitions, 1)?;
        // Keys first: the corpus's ids (KEY_SCHEMA_ID=1, VALUE_SCHEMA_ID=2) follow that order.
        for (field, side, suffix) in [
            ("keySchema", Side::Key, "key"),
            ("valueSchema", Side::Value, "value"),
        ] {
            if let Some(schema) = topic.get(field).filter(|s| !s.is_null()) {
                let format = topic
                    .get(if side == Side::Value {
                        "valueFormat"
                    } else {
                        "keyFormat"
                    })
                    .and_then(Json::as_str)
                    .unwrap_or("AVRO");
                if format.eq_ignore_ascii_case("AVRO") {
                    // A string is a schema's JSON text, or a primitive's name (`"int"`).
                    let text = match schema {
                        Json::String(s) if serde_json::from_str::<Json>(s).is_ok() => s.clone(),
                        other => other.to_string(),
                    };
                    let subject = format!("{name}-{suffix}");
                    let id_field = if side == Side::Value {
                        "valueSchemaId"
                    } else {
                        "keySchemaId"
                    };
                    // A chosen id is the case's; otherwise ids follow the order schemas reach
                    // the registry, as in ksqlDB's harness: when a statement first uses the topic.
                    match topic.get(id_field).and_then(Json::as_i64) {
                        Some(id) => registry
                            .register_with_id(&subject, &text, id as i32)
                            .map_err(|e| format!("cannot register the case's schema: {e}"))?,
                        None => pending_schemas
                            .entry(name.to_string())
                            .or_default()
                            .push((subject, text)),
                    }
                    declared_schemas
                        .insert((name.to_string(), side == Side::Value), schema.clone());
                }
            }
        }
    }
    for record in ["inputs", "outputs"]
        .iter()
        .flat_map(|k| case.get(*k).and_then(Json::as_array).into_iter().flatten())
    {
        if let Some(topic) = record.get("topic").and_then(Json::as_str) {
            cluster.create_topic(topic, default_partitions, 1)?;
        }
    }
    // Query-validation cases say `expectedException`, REST cases `expectedError`.
    let expected_error = case
        .get("expectedException")
        .or_else(|| case.get("expectedError"));
    // ksqlDB's harness parses the statements joined by newlines: positions in its messages
    // count the lines of the statements before.
    let mut lines_before = 0;
    for statement in statements {
        let located = format!("{}{statement}", "\n".repeat(lines_before));
        lines_before += statement.matches('\n').count() + 1;
        for topic in statement_topics(&engine, statement) {
            for (subject, text) in pending_schemas.remove(&topic).unwrap_or_default() {
                registry
                    .register(&subject, &text)
                    .map_err(|e| format!("cannot register the case's schema: {e}"))?;
            }
        }
        // A push query (REST cases) is planned here, so that its errors are the statement's;
        // it runs once the inputs are in (`rest::check_push_responses`).
        let is_select = crate::sql::parse_statements(statement).is_ok_and(|parsed| {
            matches!(
                parsed.first().map(|p| &p.statement),
                Some(Statement::Select(_))
            )
        });
        let is_pull = crate::sql::parse_statements(statement).is_ok_and(|parsed| {
            matches!(parsed.first().map(|p| &p.statement), Some(Statement::Select(q)) if q.emit.is_none())
        });
        let outcome = if is_pull {
            engine.pull_query(&located).map(|_| ())
        } else if is_select {
            engine
                .plan_push_query(&located, &BTreeMap::new())
                .map(|_| ())
        } else {
            engine.execute(&located).map(|_| ())
        };
        if let Err(error) = outcome {
            return match expected_error {
                Some(expected) => {
                    let message = expected.get("message").and_then(Json::as_str).unwrap_or("");
                    if error.message.contains(message) {
                        Ok(())
                    } else {
                        Err(format!(
                            "refused with a different message: expected '{message}', got '{}'",
                            error.message
                        ))
                    }
                }
                None => Err(format!(
                    "statement refused: {} ({})",
                    error.message,
                    statement.trim()
                )),
            };
        }
    }

    for (subject, text) in pending_schemas.into_values().flatten() {
        registry
            .register(&subject, &text)
            .map_err(|e| format!("cannot register the case's schema: {e}"))?;
    }

    // Feed the inputs one at a time; what a query writes goes on to the queries reading it.
    let empty = Vec::new();
    let inputs = case
        .get("inputs")
        .and_then(Json::as_array)
        .unwrap_or(&empty);
    let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
    for input in inputs {
        let topic = input
            .get("topic")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let timestamp = input.get("timestamp").and_then(Json::as_i64).unwrap_or(0);
        let source = engine
            .catalog
            .sources
            .values()
            .find(|s| s.topic == topic)
            .cloned();
        let (key, value) = match &source {
            Some(source) => {
                let key_columns: Vec<_> = source
                    .key_columns()
                    .map(|c| (c.name.clone(), c.sql_type.clone()))
                    .collect();
                let value_columns: Vec<_> = source
                    .value_columns()
                    .map(|c| (c.name.clone(), c.sql_type.clone()))
                    .collect();
                let key = encode(
                    &source.key_format,
                    &topic,
                    Side::Key,
                    key_columns,
                    &registry,
                    input.get("key"),
                    declared_schemas.get(&(topic.clone(), false)),
                )?;
                // A windowed source's keys carry the record's window.
                let key = match (source.key_window, key, input.get("window")) {
                    (Some(kind), Some(bytes), Some(window)) => {
                        let bound =
                            |name: &str| window.get(name).and_then(Json::as_i64).unwrap_or(0);
                        Some(kind.join(bytes, (bound("start"), bound("end"))))
                    }
                    (_, key, _) => key,
                };
                let value = encode(
                    &source.value_format,
                    &topic,
                    Side::Value,
                    value_columns,
                    &registry,
                    input.get("value"),
                    declared_schemas.get(&(topic.clone(), true)),
                )?;
                (key, value)
            }
            None => (
                input
                    .get("key")
                    .filter(|k| !k.is_null())
                    .map(|k| json_text(k).into_bytes()),
                input
                    .get("value")
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string().into_bytes()),
            ),
        };
        let offset = offsets.entry(topic.clone()).or_insert(0);
        let record = InputRecord {
            topic: topic.clone(),
            partition: 0,
            offset: *offset,
            timestamp,
            key: key.clone(),
            value: value.clone(),
        };
        *offset += 1;
        cluster.append(&[OutputRecord {
            topic: topic.clone(),
            timestamp,
            key,
            value,
        }]);
        deliver(&engine, &cluster, record, &mut offsets, 0);
    }

    if let Some(expected) = expected_error {
        let message = expected.get("message").and_then(Json::as_str).unwrap_or("");
        // A query that stopped while processing is ksqlDB's exception at run time.
        let failure = engine
            .queries
            .values()
            .find_map(|q| q.topology.lock().ok().and_then(|t| t.failed.clone()));
        return match failure {
            Some(failure) if failure.contains(message) => Ok(()),
            Some(failure) => Err(format!(
                "failed with a different message: expected '{message}', got '{failure}'"
            )),
            None => Err(format!(
                "expected the statements to be refused with '{message}', but they were accepted"
            )),
        };
    }
    check_outputs(case, &engine, &cluster, &registry)?;
    crate::rest::check_push_responses(case, &mut engine, statements, &|topic| {
        cluster.records(topic)
    })?;
    check_post(case, &engine)
}

/// The topics a statement reads or writes: its WITH clause's, its sink's, its sources'.
fn statement_topics(engine: &Engine, statement: &str) -> Vec<String> {
    let Ok(parsed) = crate::sql::parse_statements(statement) else {
        return Vec::new();
    };
    let topic_of = |name: &str| engine.catalog.sources.get(name).map(|s| s.topic.clone());
    let mut topics = Vec::new();
    for parsed in parsed {
        match &parsed.statement {
            Statement::CreateSource { properties, .. } => {
                topics.extend(properties.get("KAFKA_TOPIC").map(|t| t.text()));
            }
            Statement::CreateAsSelect {
                name,
                properties,
                query,
                ..
            } => {
                topics.extend(topic_of(&query.from.name));
                topics.push(
                    properties
                        .get("KAFKA_TOPIC")
                        .map(|t| t.text())
                        .unwrap_or_else(|| name.clone()),
                );
            }
            Statement::InsertInto { target, query, .. } => {
                topics.extend(topic_of(&query.from.name));
                topics.extend(topic_of(target));
            }
            _ => {}
        }
    }
    topics
}

#[allow(clippy::too_many_arguments)]
fn encode(
    spec: &FormatSpec,
    topic: &str,
    side: Side,
    columns: Vec<(String, crate::types::SqlType)>,
    registry: &Arc<MemoryRegistry>,
    value: Option<&Json>,
    declared: Option<&Json>,
) -> Result<Option<Vec<u8>>, String> {
    let context = SerdeContext {
        topic: topic.to_string(),
        side,
        columns,
        registry: Some(registry.clone() as Arc<dyn SchemaRegistry>),
    };
    encode_test_value_with_schema(spec, &context, value.unwrap_or(&Json::Null), declared)
        .map_err(|e| format!("cannot encode the case's input: {}", e.0))
}

/// Hands a record to every query reading its topic, and their outputs downstream.
fn deliver(
    engine: &Engine,
    cluster: &MemoryCluster,
    record: InputRecord,
    offsets: &mut BTreeMap<String, i64>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let readers: Vec<_> = engine
        .queries
        .values()
        .filter(|q| q.source_topics.contains(&record.topic))
        .map(|q| q.topology.clone())
        .collect();
    for topology in readers {
        let outputs = match topology.lock() {
            Ok(mut topology) => topology.process(std::slice::from_ref(&record)),
            Err(_) => continue,
        };
        for output in outputs {
            cluster.append(std::slice::from_ref(&output));
            let offset = offsets.entry(output.topic.clone()).or_insert(0);
            let next = InputRecord {
                topic: output.topic.clone(),
                partition: 0,
                offset: *offset,
                timestamp: output.timestamp,
                key: output.key,
                value: output.value,
            };
            *offset += 1;
            deliver(engine, cluster, next, offsets, depth + 1);
        }
    }
}

fn check_outputs(
    case: &Json,
    engine: &Engine,
    cluster: &MemoryCluster,
    registry: &Arc<MemoryRegistry>,
) -> Result<(), String> {
    let empty = Vec::new();
    let expected = case
        .get("outputs")
        .and_then(Json::as_array)
        .unwrap_or(&empty);
    let mut by_topic: BTreeMap<String, Vec<&Json>> = BTreeMap::new();
    for record in expected {
        by_topic
            .entry(
                record
                    .get("topic")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default()
            .push(record);
    }
    for (topic, expected) in by_topic {
        // Only what queries wrote counts (inputs to the same topic are the case's own).
        let written: Vec<OutputRecord> = cluster
            .records(&topic)
            .into_iter()
            .skip(input_count(case, &topic))
            .collect();
        let sink = engine
            .catalog
            .sources
            .values()
            .find(|s| s.topic == topic && s.writer.is_some())
            .or_else(|| engine.catalog.sources.values().find(|s| s.topic == topic));
        let Some(sink) = sink else {
            return Err(format!("no source writes the expected topic {topic}"));
        };
        let key_columns: Vec<_> = sink
            .key_columns()
            .map(|c| (c.name.clone(), c.sql_type.clone()))
            .collect();
        let value_columns: Vec<_> = sink
            .value_columns()
            .map(|c| (c.name.clone(), c.sql_type.clone()))
            .collect();
        let key_context = SerdeContext {
            topic: topic.clone(),
            side: Side::Key,
            columns: key_columns,
            registry: Some(registry.clone() as Arc<dyn SchemaRegistry>),
        };
        let value_context = SerdeContext {
            topic: topic.clone(),
            side: Side::Value,
            columns: value_columns,
            registry: Some(registry.clone() as Arc<dyn SchemaRegistry>),
        };
        for (index, expected_record) in expected.iter().enumerate() {
            let Some(actual) = written.get(index) else {
                return Err(format!(
                    "topic {topic}: expected {} records, got {}{}",
                    expected.len(),
                    written.len(),
                    first_processing_error(engine)
                ));
            };
            let (key_bytes, window) = match (sink.key_window, actual.key.as_deref()) {
                (Some(kind), Some(bytes)) => {
                    let (key, window) = kind
                        .split(bytes)
                        .map_err(|e| format!("topic {topic} record {index}: {e}"))?;
                    (Some(key), Some(window))
                }
                (_, bytes) => (bytes, None),
            };
            if let (Some(expected), Some((start, end))) = (expected_record.get("window"), window) {
                let bound = |name: &str| expected.get(name).and_then(Json::as_i64);
                if bound("start").is_some_and(|s| s != start)
                    || bound("end").is_some_and(|e| e != end)
                {
                    return Err(format!(
                        "topic {topic} record {index}: window [{start}, {end}], expected {expected}"
                    ));
                }
            }
            let actual_key = decode_test_value(&sink.key_format, &key_context, key_bytes)
                .map_err(|e| format!("topic {topic} record {index}: {}", e.0))?;
            let actual_value =
                decode_test_value(&sink.value_format, &value_context, actual.value.as_deref())
                    .map_err(|e| format!("topic {topic} record {index}: {}", e.0))?;
            let expected_key = &align_names(
                expected_record.get("key").unwrap_or(&Json::Null),
                &actual_key,
            );
            let expected_value = &align_names(
                expected_record.get("value").unwrap_or(&Json::Null),
                &actual_value,
            );
            if !test_values_match(expected_key, &actual_key) {
                return Err(format!(
                    "topic {topic} record {index}: key {actual_key}, expected {expected_key}"
                ));
            }
            if !test_values_match(expected_value, &actual_value) {
                return Err(format!(
                    "topic {topic} record {index}: value {actual_value}, expected {expected_value}"
                ));
            }
            if let Some(timestamp) = expected_record.get("timestamp").and_then(Json::as_i64) {
                if timestamp != actual.timestamp {
                    return Err(format!(
                        "topic {topic} record {index}: timestamp {}, expected {timestamp}",
                        actual.timestamp
                    ));
                }
            }
        }
        if written.len() > expected.len() {
            return Err(format!(
                "topic {topic}: expected {} records, got {}",
                expected.len(),
                written.len()
            ));
        }
    }
    Ok(())
}

/// The first record a query could not process, to explain missing output.
fn first_processing_error(engine: &Engine) -> String {
    engine
        .queries
        .values()
        .find_map(|q| {
            q.topology
                .lock()
                .ok()
                .and_then(|t| t.errors.first().map(|e| e.message.clone()))
        })
        .map(|message| format!(" (processing error: {message})"))
        .unwrap_or_default()
}

/// The expected record with its field names spelt as in the actual one where they differ
/// only in case: ksqlDB's harness reads expected records through the sink's schema, whose
/// field lookup ignores case.
fn align_names(expected: &Json, actual: &Json) -> Json {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => Json::Object(
            e.iter()
                .map(|(key, value)| {
                    let (name, inner) = match a.get_key_value(key) {
                        Some((name, inner)) => (name, inner),
                        None => a
                            .iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(key))
                            .unwrap_or((key, &Json::Null)),
                    };
                    (name.clone(), align_names(value, inner))
                })
                .collect(),
        ),
        (Json::Array(e), Json::Array(a)) => Json::Array(
            e.iter()
                .enumerate()
                .map(|(i, value)| align_names(value, a.get(i).unwrap_or(&Json::Null)))
                .collect(),
        ),
        _ => expected.clone(),
    }
}

fn input_count(case: &Json, topic: &str) -> usize {
    case.get("inputs")
        .and_then(Json::as_array)
        .map_or(0, |inputs| {
            inputs
                .iter()
                .filter(|i| i.get("topic").and_then(Json::as_str) == Some(topic))
                .count()
        })
}

/// The case's `post.sources`: each named source exists, of the right type, with the schema.
fn check_post(case: &Json, engine: &Engine) -> Result<(), String> {
    let Some(sources) = case
        .get("post")
        .and_then(|p| p.get("sources"))
        .and_then(Json::as_array)
    else {
        return Ok(());
    };
    for expected in sources {
        let name = expected
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let Some(source) = engine.catalog.sources.get(name) else {
            return Err(format!("post: source {name} does not exist"));
        };
        if let Some(kind) = expected.get("type").and_then(Json::as_str) {
            if !kind.eq_ignore_ascii_case(source.kind.name()) {
                return Err(format!(
                    "post: {name} is a {}, expected a {kind}",
                    source.kind.name()
                ));
            }
        }
        if let Some(schema) = expected.get("schema").and_then(Json::as_str) {
            let statement = format!(
                "CREATE {} X ({schema}) WITH (kafka_topic='x', value_format='JSON');",
                source.kind.name()
            );
            let parsed = crate::sql::parse_statements(&statement)
                .map_err(|e| format!("post: cannot parse the expected schema '{schema}': {e}"))?;
            let Some(Statement::CreateSource { columns, .. }) =
                parsed.first().map(|p| &p.statement)
            else {
                return Err("post: unexpected schema".into());
            };
            let expected_columns: Vec<(String, String, bool)> = columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.sql_type.to_string(),
                        c.constraint != ColumnConstraint::None,
                    )
                })
                .collect();
            let actual_columns: Vec<(String, String, bool)> = source
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.sql_type.to_string(),
                        c.kind == ColumnKind::Key,
                    )
                })
                .collect();
            if expected_columns != actual_columns {
                return Err(format!(
                    "post: {name} has schema {}, expected {schema}",
                    source.schema_text()
                ));
            }
        }
        for (field, actual) in [
            ("keyFormat", &source.key_format),
            ("valueFormat", &source.value_format),
        ] {
            if let Some(format) = expected
                .get(field)
                .and_then(|f| f.get("format"))
                .and_then(Json::as_str)
            {
                if !format.eq_ignore_ascii_case(actual.format.name()) {
                    return Err(format!(
                        "post: {name} has {field} {}, expected {format}",
                        actual.format.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn json_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A pass rate summary per file, as the runner prints it.
pub fn summarise(reports: &[CaseReport]) -> BTreeMap<String, (usize, usize, usize)> {
    let mut summary: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for report in reports {
        let entry = summary.entry(report.file.clone()).or_default();
        if report.deferred() || report.unsupported() {
            entry.2 += 1;
        } else if report.passed() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    summary
}
