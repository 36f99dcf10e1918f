//! ksqlDB's REST API on hyper: `/ksql` (statements, answered with ksqlDB's entities),
//! `/query` (push queries as ksqlDB's streamed JSON array), `/query-stream` (HTTP/1.1 or
//! HTTP/2 cleartext; delimited or JSON), `/inserts-stream`, `/close-query`, `/info`,
//! `/healthcheck`, `/clusterStatus`, `/status/<id>` and `/ksql/terminate`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value as Json};

use kafkaml_engine::catalog::Source;
use kafkaml_engine::engine::{StatementError, StatementResult};
use kafkaml_engine::rest::value_json;
use kafkaml_engine::sql::ast::{Expr, Literal, SourceKind};
use kafkaml_engine::types::{Column, ColumnKind, SqlType};

use super::kafka::PushReader;
use super::Shared;

type Body = UnsyncBoxBody<Bytes, Infallible>;

const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const KSQL_CONTENT_TYPE: &str = "application/vnd.ksql.v1+json";
const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";
const VERSION: &str = "0.29.0-kafkaml";

/// The HTTP side of a running server.
pub struct HttpServer {
    address: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpServer {
    pub fn start(shared: Arc<Shared>, listen: &str) -> Result<Self, String> {
        let crate::serve::Listening {
            runtime,
            listener,
            address,
        } = crate::serve::listen(listen, "ksql-http").map_err(|e| match e {
            crate::serve::ListenError::Bind(e) => format!("cannot listen on {listen:?}: {e}"),
            crate::serve::ListenError::Runtime(e) => format!("cannot start the HTTP server: {e}"),
        })?;
        runtime.spawn(accept_loop(listener, shared));
        Ok(HttpServer {
            address,
            runtime: Some(runtime),
        })
    }

    pub fn url(&self) -> String {
        crate::serve::url("http", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(request, shared).await) }
            });
            // HTTP/1.1, or HTTP/2 with prior knowledge (what ksqlDB's clients use for /query-stream).
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn full(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn json_response(status: StatusCode, value: &Json) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

/// ksqlDB's error body.
fn error_response(
    status: StatusCode,
    code: u32,
    message: &str,
    statement: Option<&str>,
    entities: Vec<Json>,
) -> Response<Body> {
    let mut body = json!({ "@type": if statement.is_some() { "statement_error" } else { "generic_error" }, "error_code": code, "message": message });
    if let Some(statement) = statement {
        body["statementText"] = json!(statement);
        body["entities"] = Json::Array(entities);
    }
    json_response(status, &body)
}

/// A query the engine refused: ksqlDB's 40001 statement error.
fn refused(error: &StatementError, sql: &str) -> Response<Body> {
    error_response(
        StatusCode::BAD_REQUEST,
        40001,
        &error.message,
        Some(sql),
        Vec::new(),
    )
}

async fn answer(request: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let accept = parts
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = parts.uri.path().to_string();
    let body = match crate::serve::read_body(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(crate::serve::BodyError::TooLarge(limit)) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                41300,
                &format!("the request body is larger than {limit} bytes"),
                None,
                Vec::new(),
            )
        }
        Err(crate::serve::BodyError::Read(e)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                40000,
                &format!("cannot read the request body: {e}"),
                None,
                Vec::new(),
            )
        }
    };
    let parsed = || -> Result<Json, Box<Response<Body>>> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Box::new(error_response(
                StatusCode::BAD_REQUEST,
                40000,
                &format!("the request body is not JSON: {e}"),
                None,
                Vec::new(),
            ))
        })
    };
    match (parts.method.clone(), path.as_str()) {
        (Method::GET, "/info") => json_response(
            StatusCode::OK,
            &json!({ "KsqlServerInfo": { "version": VERSION, "kafkaClusterId": "kafkaml", "ksqlServiceId": shared.service_id, "serverStatus": "RUNNING" } }),
        ),
        (Method::GET, "/healthcheck") => {
            let kafka = tokio::task::spawn_blocking({
                let shared = shared.clone();
                move || kafkaml_engine::engine::Cluster::topics(shared.cluster.as_ref()).is_ok()
            })
            .await
            .unwrap_or(false);
            let body = json!({ "isHealthy": kafka, "details": { "metastore": { "isHealthy": true }, "kafka": { "isHealthy": kafka }, "commandRunner": { "isHealthy": true } } });
            json_response(
                if kafka {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                &body,
            )
        }
        (Method::GET, "/clusterStatus") => json_response(
            StatusCode::OK,
            &json!({ "clusterStatus": { "localhost": { "hostAlive": true, "lastStatusUpdateMs": now_millis(), "activeStandbyPerQuery": {}, "hostStoreLags": { "stateStoreLags": {}, "updateTimeMs": now_millis() } } } }),
        ),
        (Method::GET, p) if p.starts_with("/status/") => json_response(
            StatusCode::OK,
            &json!({ "status": "SUCCESS", "message": "Executed" }),
        ),
        (Method::POST, "/ksql") => match parsed() {
            Ok(request) => ksql(&shared, &request).await,
            Err(response) => *response,
        },
        (Method::POST, "/ksql/terminate") => terminate_cluster(&shared).await,
        (Method::POST, "/query") => match parsed() {
            Ok(request) => {
                let sql = request
                    .get("ksql")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                let properties = string_map(request.get("streamsProperties"));
                select_query(&shared, &sql, &properties, Format::QueryArray)
            }
            Err(response) => *response,
        },
        (Method::POST, "/query-stream") => match parsed() {
            Ok(request) => {
                let sql = request
                    .get("sql")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                let properties = string_map(request.get("properties"));
                let format = if accept.contains("application/json") && !accept.contains(DELIMITED) {
                    Format::StreamJson
                } else {
                    Format::Delimited
                };
                select_query(&shared, &sql, &properties, format)
            }
            Err(response) => *response,
        },
        (Method::POST, "/close-query") => match parsed() {
            Ok(request) => {
                let id = request
                    .get("queryId")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                match shared
                    .push_stops
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
                {
                    Some(stop) => {
                        stop.store(true, Ordering::Relaxed);
                        json_response(StatusCode::OK, &json!({}))
                    }
                    None => error_response(
                        StatusCode::BAD_REQUEST,
                        40001,
                        &format!("No query with id {id}"),
                        None,
                        Vec::new(),
                    ),
                }
            }
            Err(response) => *response,
        },
        (Method::POST, "/inserts-stream") => inserts(&shared, &body).await,
        _ => error_response(
            StatusCode::NOT_FOUND,
            40400,
            &format!("no such endpoint: {} {path}", parts.method),
            None,
            Vec::new(),
        ),
    }
}

fn string_map(value: Option<&Json>) -> BTreeMap<String, String> {
    value
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn ksql(shared: &Arc<Shared>, request: &Json) -> Response<Body> {
    let Some(text) = request.get("ksql").and_then(Json::as_str) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            40000,
            "the request has no \"ksql\" field",
            None,
            Vec::new(),
        );
    };
    let mut text = text.to_string();
    for (name, value) in string_map(request.get("sessionVariables")) {
        text = text.replace(&format!("${{{name}}}"), &value);
    }
    let properties = string_map(request.get("streamsProperties"));
    // Push queries and PRINT stream: they belong on /query.
    if let Ok(parsed) = kafkaml_engine::sql::parse_statements(&text) {
        if parsed.iter().any(|p| {
            matches!(
                p.statement,
                kafkaml_engine::sql::ast::Statement::Select(_)
                    | kafkaml_engine::sql::ast::Statement::Print { .. }
            )
        }) {
            return error_response(
                StatusCode::BAD_REQUEST,
                40002,
                "The following statement types should be issued to the websocket endpoint '/query':\n\t* PRINT\n\t* SELECT",
                Some(&text),
                Vec::new(),
            );
        }
    }
    let shared_for_task = shared.clone();
    let outcome =
        tokio::task::spawn_blocking(move || shared_for_task.execute(&text, &properties)).await;
    let sequence = shared.command_sequence.load(Ordering::Relaxed);
    let engine_entities = |done: Vec<(String, StatementResult)>, shared: &Shared| -> Vec<Json> {
        let engine = shared.engine.lock().unwrap_or_else(|e| e.into_inner());
        done.into_iter()
            .map(|(statement, result)| entity(&statement, &result, sequence, &engine))
            .collect()
    };
    match outcome {
        Ok(Ok(done)) => json_response(StatusCode::OK, &Json::Array(engine_entities(done, shared))),
        Ok(Err((StatementError { message, statement }, done))) => {
            let entities = engine_entities(done, shared);
            error_response(
                StatusCode::BAD_REQUEST,
                40001,
                &message,
                Some(&statement),
                entities,
            )
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            50000,
            &format!("the statement's task failed: {e}"),
            None,
            Vec::new(),
        ),
    }
}

async fn terminate_cluster(shared: &Arc<Shared>) -> Response<Body> {
    let shared = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let ids: Vec<String> = shared
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queries
            .keys()
            .cloned()
            .collect();
        for id in ids {
            shared
                .execute(&format!("TERMINATE {id};"), &BTreeMap::new())
                .map_err(|(e, _)| e.message)?;
        }
        let names: Vec<(SourceKind, String)> = shared
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .catalog
            .sources
            .values()
            .map(|s| (s.kind, s.name.clone()))
            .collect();
        for (kind, name) in names {
            shared
                .execute(
                    &format!("DROP {} IF EXISTS `{name}`;", kind.name()),
                    &BTreeMap::new(),
                )
                .map_err(|(e, _)| e.message)?;
        }
        Ok::<(), String>(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => json_response(StatusCode::OK, &json!({ "status": "TERMINATED" })),
        Ok(Err(message)) => {
            error_response(StatusCode::BAD_REQUEST, 40001, &message, None, Vec::new())
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            50000,
            &e.to_string(),
            None,
            Vec::new(),
        ),
    }
}

/// A SQL type as ksqlDB's REST entities describe it.
fn schema_json(sql_type: &SqlType) -> Json {
    match sql_type {
        SqlType::Array(inner) => {
            json!({ "type": "ARRAY", "fields": null, "memberSchema": schema_json(inner) })
        }
        SqlType::Map(_, value) => {
            json!({ "type": "MAP", "fields": null, "memberSchema": schema_json(value) })
        }
        SqlType::Struct(fields) => {
            json!({ "type": "STRUCT", "fields": fields.iter().map(|(n, t)| json!({ "name": n, "schema": schema_json(t) })).collect::<Vec<_>>(), "memberSchema": null })
        }
        SqlType::Decimal { precision, scale } => {
            json!({ "type": "DECIMAL", "fields": null, "memberSchema": null, "parameters": { "precision": precision, "scale": scale } })
        }
        other => json!({ "type": other.to_string(), "fields": null, "memberSchema": null }),
    }
}

fn fields_json(columns: &[Column]) -> Vec<Json> {
    columns
        .iter()
        .map(|c| {
            let mut field = json!({ "name": c.name, "schema": schema_json(&c.sql_type) });
            if c.kind == ColumnKind::Key {
                field["type"] = json!("KEY");
            }
            field
        })
        .collect()
}

fn query_json(query: &kafkaml_engine::engine::QuerySummary) -> Json {
    json!({
        "queryString": query.sql, "sinks": query.sinks, "sinkKafkaTopics": query.sink_topics, "id": query.id,
        "statusCount": { "RUNNING": 1 }, "queryType": "PERSISTENT", "state": query.state,
    })
}

fn source_description(
    source: &Source,
    extended: bool,
    readers: &[String],
    writers: &[String],
    engine: &kafkaml_engine::engine::Engine,
) -> Json {
    let summaries = |ids: &[String]| -> Vec<Json> {
        ids.iter()
            .filter_map(|id| engine.queries.get(id))
            .map(|q| {
                query_json(&kafkaml_engine::engine::QuerySummary {
                    id: q.id.clone(),
                    sql: q.sql.clone(),
                    sinks: vec![q.sink.clone()],
                    sink_topics: vec![q.sink_topic.clone()],
                    state: "RUNNING".into(),
                })
            })
            .collect()
    };
    json!({
        "name": source.name, "windowType": null, "readQueries": summaries(readers), "writeQueries": summaries(writers),
        "fields": fields_json(&source.columns), "type": source.kind.name(), "timestamp": source.timestamp.as_ref().map(|t| t.column.clone()).unwrap_or_default(),
        "statistics": "", "errorStats": "", "extended": extended, "keyFormat": source.key_format.format.name(), "valueFormat": source.value_format.format.name(),
        "topic": source.topic, "partitions": source.partitions, "replication": source.replicas, "statement": source.sql,
        "queryOffsetSummaries": [], "sourceConstraints": [], "clusterStatistics": [], "clusterErrorStats": [],
    })
}

/// One `/ksql` entity in ksqlDB's shape.
fn entity(
    statement: &str,
    result: &StatementResult,
    sequence: u64,
    engine: &kafkaml_engine::engine::Engine,
) -> Json {
    match result {
        StatementResult::Status { message, query_id } => json!({
            "@type": "currentStatus", "statementText": statement, "commandId": command_id(statement),
            "commandStatus": { "status": "SUCCESS", "message": message, "queryId": query_id }, "commandSequenceNumber": sequence, "warnings": [],
        }),
        StatementResult::Sources { kind, sources } => {
            let list: Vec<Json> = sources
                .iter()
                .map(|s| json!({ "type": s.kind.name(), "name": s.name, "topic": s.topic, "keyFormat": s.key_format, "valueFormat": s.value_format, "format": s.value_format, "isWindowed": false }))
                .collect();
            let (tag, field) = match kind {
                SourceKind::Stream => ("streams", "streams"),
                SourceKind::Table => ("tables", "tables"),
            };
            json!({ "@type": tag, "statementText": statement, field: list, "warnings": [] })
        }
        StatementResult::Topics(topics) => json!({
            "@type": "kafka_topics", "statementText": statement,
            "topics": topics.iter().map(|(name, partitions)| json!({ "name": name, "replicaInfo": vec![1; (*partitions).max(0) as usize] })).collect::<Vec<_>>(), "warnings": [],
        }),
        StatementResult::Queries(queries) => {
            json!({ "@type": "queries", "statementText": statement, "queries": queries.iter().map(query_json).collect::<Vec<_>>(), "warnings": [] })
        }
        StatementResult::Properties {
            properties,
            overwritten,
        } => json!({
            "@type": "properties", "statementText": statement,
            "properties": properties.iter().map(|(k, v)| json!({ "name": k, "scope": "KSQL", "value": v })).collect::<Vec<_>>(),
            "overwrittenProperties": overwritten, "defaultProperties": [], "warnings": [],
        }),
        StatementResult::Functions(functions) => json!({
            "@type": "function_names", "statementText": statement,
            "functions": functions.iter().map(|(name, category)| json!({ "name": name, "type": "SCALAR", "category": category })).collect::<Vec<_>>(), "warnings": [],
        }),
        StatementResult::FunctionDescription {
            name,
            category,
            description,
            signatures,
        } => json!({
            "@type": "describe_function", "statementText": statement, "name": name, "description": description, "author": "kafkaml", "version": "", "path": "internal",
            "functions": signatures.iter().map(|s| json!({ "arguments": [], "returnType": "", "description": s, "argumentTypes": [] })).collect::<Vec<_>>(),
            "type": "SCALAR", "category": category, "warnings": [],
        }),
        StatementResult::Description {
            source,
            extended,
            readers,
            writers,
        } => json!({
            "@type": "sourceDescription", "statementText": statement, "sourceDescription": source_description(source, *extended, readers, writers, engine), "warnings": [],
        }),
        StatementResult::QueryDescription { query, columns } => json!({
            "@type": "queryDescription", "statementText": statement,
            "queryDescription": { "id": query.id, "statementText": query.sql, "fields": fields_json(columns), "sources": [], "sinks": query.sinks, "topology": "", "executionPlan": "", "overriddenProperties": {}, "state": query.state, "queryType": "PERSISTENT" },
            "warnings": [],
        }),
        StatementResult::Variables(variables) => json!({
            "@type": "variables", "statementText": statement, "variables": variables.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect::<Vec<_>>(),
        }),
        StatementResult::Streaming => {
            json!({ "@type": "currentStatus", "statementText": statement, "commandStatus": { "status": "SUCCESS", "message": "" } })
        }
    }
}

/// ksqlDB's command ids: `stream/NAME/create`, `stream/NAME/drop`, ...
fn command_id(statement: &str) -> String {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(6)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    let kind = if words.iter().any(|w| w == "TABLE") {
        "table"
    } else {
        "stream"
    };
    let action = words.first().map(String::as_str).unwrap_or("");
    let name = words
        .iter()
        .skip_while(|w| !(*w == "STREAM" || *w == "TABLE"))
        .nth(1)
        .cloned()
        .unwrap_or_default();
    match action {
        "CREATE" => format!("{kind}/{name}/create"),
        "DROP" => format!("{kind}/{name}/drop"),
        "TERMINATE" => format!(
            "terminate/{}/execute",
            words.get(1).cloned().unwrap_or_default()
        ),
        _ => format!("{}/execute", action.to_ascii_lowercase()),
    }
}

/// The three streamed shapes of push query results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `/query`: one JSON array, `{"header":...}`, `{"row":{"columns":[...]}}`, ...
    QueryArray,
    /// `/query-stream` delimited: a header object line, then one JSON array line per row.
    Delimited,
    /// `/query-stream` with `application/json`: one JSON array of header and rows.
    StreamJson,
}

/// A SELECT: a pull query (no `EMIT CHANGES`) is answered at once from the table's rows; a push
/// query streams.
fn select_query(
    shared: &Arc<Shared>,
    sql: &str,
    properties: &BTreeMap<String, String>,
    format: Format,
) -> Response<Body> {
    let is_pull = kafkaml_engine::sql::parse_statements(sql).is_ok_and(|parsed| {
        matches!(
            parsed.as_slice(),
            [only] if matches!(&only.statement, kafkaml_engine::sql::ast::Statement::Select(q) if q.emit.is_none())
        )
    });
    if is_pull {
        pull_query(shared, sql, format)
    } else {
        push_query(shared, sql, properties, format)
    }
}

fn pull_query(shared: &Arc<Shared>, sql: &str, format: Format) -> Response<Body> {
    let result = shared
        .engine
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pull_query(sql);
    let result = match result {
        Ok(result) => result,
        Err(error) => return refused(&error, sql),
    };
    let query_id = format!(
        "query_{}_{}",
        shared.service_id,
        shared.next_push.fetch_add(1, Ordering::Relaxed)
    );
    let rows: Vec<Json> = result
        .rows
        .iter()
        .map(|row| {
            Json::Array(
                row.iter()
                    .zip(&result.columns)
                    .map(|(v, c)| value_json(v, &c.sql_type))
                    .collect(),
            )
        })
        .collect();
    let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    let types: Vec<String> = result
        .columns
        .iter()
        .map(|c| c.sql_type.to_string())
        .collect();
    let header = json!({ "queryId": query_id, "columnNames": names, "columnTypes": types });
    match format {
        Format::QueryArray => {
            let mut body =
                vec![json!({ "header": { "queryId": query_id, "schema": result.schema() } })];
            body.extend(
                rows.into_iter()
                    .map(|row| json!({ "row": { "columns": row } })),
            );
            json_response(StatusCode::OK, &Json::Array(body))
        }
        Format::StreamJson => {
            let mut body = vec![header];
            body.extend(rows);
            json_response(StatusCode::OK, &Json::Array(body))
        }
        Format::Delimited => {
            let mut body = format!("{header}\n");
            for row in rows {
                body.push_str(&format!("{row}\n"));
            }
            full(StatusCode::OK, DELIMITED, body)
        }
    }
}

fn push_query(
    shared: &Arc<Shared>,
    sql: &str,
    properties: &BTreeMap<String, String>,
    format: Format,
) -> Response<Body> {
    let plan = shared
        .engine
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .plan_push_query(sql, properties);
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => return refused(&error, sql),
    };
    let reader = match PushReader::open(&shared.cluster, &plan.source_topic, plan.from_beginning) {
        Ok(reader) => reader,
        Err(message) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                40001,
                &message,
                Some(sql),
                Vec::new(),
            )
        }
    };
    shared.push_queries.fetch_add(1, Ordering::Relaxed);
    let query_id = format!(
        "transient_{}_{}",
        shared.service_id,
        shared.next_push.fetch_add(1, Ordering::Relaxed)
    );
    let stop = Arc::new(AtomicBool::new(false));
    shared
        .push_stops
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(query_id.clone(), stop.clone());
    let columns = plan.columns.clone();
    let schema = columns
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.sql_type))
        .collect::<Vec<_>>()
        .join(", ");
    let header = match format {
        Format::QueryArray => format!(
            "[{{\"header\":{{\"queryId\":\"{query_id}\",\"schema\":{}}}}},\n",
            json!(schema)
        ),
        Format::Delimited => format!(
            "{}\n",
            json!({ "queryId": query_id, "columnNames": columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), "columnTypes": columns.iter().map(|c| c.sql_type.to_string()).collect::<Vec<_>>() })
        ),
        Format::StreamJson => format!(
            "[{},\n",
            json!({ "queryId": query_id, "columnNames": columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), "columnTypes": columns.iter().map(|c| c.sql_type.to_string()).collect::<Vec<_>>() })
        ),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let _ = sender.try_send(Bytes::from(header));
    let cleanup = shared.clone();
    let id_for_thread = query_id.clone();
    let mut topology = plan.topology;
    let limit = plan.limit;
    std::thread::Builder::new()
        .name(format!("ksql-push-{query_id}"))
        .spawn(move || {
            let mut sent = 0u64;
            let send = |text: String| sender.blocking_send(Bytes::from(text)).is_ok();
            let ending = |reason: Option<&str>| -> String {
                match (format, reason) {
                    (Format::QueryArray, Some(reason)) => format!("{{\"finalMessage\":{}}}]\n", json!(reason)),
                    (Format::QueryArray, None) => "]\n".into(),
                    (Format::StreamJson, _) => "]\n".into(),
                    (Format::Delimited, _) => String::new(),
                }
            };
            let mut finished: Option<String> = None;
            'outer: while !stop.load(Ordering::Relaxed) && !sender.is_closed() {
                let records = match reader.poll() {
                    Ok(records) => records,
                    Err(message) => {
                        let error = match format {
                            Format::QueryArray => format!("{{\"errorMessage\":{}}}]\n", json!({ "@type": "generic_error", "error_code": 50000, "message": message })),
                            _ => format!("{}\n", json!({ "@type": "generic_error", "error_code": 50000, "message": message })),
                        };
                        send(error);
                        break;
                    }
                };
                if records.is_empty() {
                    continue;
                }
                for row in topology.process_rows(&records) {
                    let values: Vec<Json> = row.key.iter().chain(row.value.iter()).zip(&columns).map(|(v, c)| value_json(v, &c.sql_type)).collect();
                    let line = match format {
                        // ksqlDB marks a table's deleted row; the other shapes cannot.
                        Format::QueryArray if row.tombstone => format!("{{\"row\":{{\"columns\":{},\"tombstone\":true}}}},\n", Json::Array(values)),
                        Format::QueryArray => format!("{{\"row\":{{\"columns\":{}}}}},\n", Json::Array(values)),
                        Format::Delimited => format!("{}\n", Json::Array(values)),
                        Format::StreamJson => format!("{},\n", Json::Array(values)),
                    };
                    if !send(line) {
                        break 'outer;
                    }
                    sent += 1;
                    if limit.is_some_and(|limit| sent >= limit) {
                        finished = Some("Limit Reached".into());
                        break 'outer;
                    }
                }
            }
            let reason = finished.as_deref().or(if stop.load(Ordering::Relaxed) { Some("Query Terminated") } else { None });
            let tail = ending(reason);
            if !tail.is_empty() {
                send(tail);
            }
            cleanup.push_stops.lock().unwrap_or_else(|e| e.into_inner()).remove(&id_for_thread);
        })
        .ok();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), receiver))
    });
    let content_type = match format {
        Format::QueryArray => "application/json",
        Format::Delimited => DELIMITED,
        Format::StreamJson => "application/json",
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", content_type)
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| {
            full(
                StatusCode::INTERNAL_SERVER_ERROR,
                KSQL_CONTENT_TYPE,
                String::new(),
            )
        })
}

/// A JSON value as the literal expression `INSERT INTO ... VALUES` would write.
fn literal_of(value: &Json) -> Expr {
    match value {
        Json::Null => Expr::Literal(Literal::Null),
        Json::Bool(b) => Expr::Literal(Literal::Boolean(*b)),
        Json::Number(n) => {
            let text = n.to_string();
            Expr::Literal(if text.contains(['e', 'E']) {
                Literal::Double(text)
            } else if text.contains('.') {
                Literal::Decimal(text)
            } else {
                Literal::Integer(text)
            })
        }
        Json::String(s) => Expr::Literal(Literal::String(s.clone())),
        Json::Array(items) => Expr::Array(items.iter().map(literal_of).collect()),
        Json::Object(map) => Expr::Map(
            map.iter()
                .map(|(k, v)| (Expr::Literal(Literal::String(k.clone())), literal_of(v)))
                .collect(),
        ),
    }
}

/// `/inserts-stream`: a first line `{"target": "S"}`, then one JSON object per row; one ack
/// line per row (`{"status":"ok","seq":n}` or an error with the row's seq).
async fn inserts(shared: &Arc<Shared>, body: &Bytes) -> Response<Body> {
    let text = String::from_utf8_lossy(body).to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let target = lines
        .next()
        .and_then(|l| serde_json::from_str::<Json>(l).ok())
        .and_then(|v| {
            v.get("target")
                .and_then(Json::as_str)
                .map(|s| s.to_ascii_uppercase())
        });
    let Some(target) = target else {
        return error_response(
            StatusCode::BAD_REQUEST,
            40000,
            "the first line must be {\"target\": \"<stream>\"}",
            None,
            Vec::new(),
        );
    };
    let rows: Vec<String> = lines.map(str::to_string).collect();
    let shared = shared.clone();
    let acks = tokio::task::spawn_blocking(move || {
        let engine = shared.engine.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = engine.catalog.sources.get(&target).cloned() else {
            return Err(format!("Cannot insert values into an unknown stream/table: {target}"));
        };
        let mut acks = Vec::new();
        let mut records = Vec::new();
        for (seq, line) in rows.iter().enumerate() {
            let row: Result<Json, _> = serde_json::from_str(line);
            let outcome = match row {
                Ok(Json::Object(map)) => {
                    let names: Vec<String> = map.keys().map(|k| sink.columns.iter().find(|c| c.name.eq_ignore_ascii_case(k)).map(|c| c.name.clone()).unwrap_or_else(|| k.to_ascii_uppercase())).collect();
                    let values: Vec<Expr> = map.values().map(literal_of).collect();
                    engine.values_record(&sink, Some(&names), &values)
                }
                Ok(_) => Err("each row must be a JSON object".to_string()),
                Err(e) => Err(format!("the row is not JSON: {e}")),
            };
            match outcome {
                Ok(record) => {
                    records.push(record);
                    acks.push(json!({ "status": "ok", "seq": seq }));
                }
                Err(message) => acks.push(json!({ "status": "error", "seq": seq, "error_code": 40000, "message": message })),
            }
        }
        drop(engine);
        kafkaml_engine::engine::Cluster::produce(shared.cluster.as_ref(), records)?;
        Ok(acks)
    })
    .await;
    match acks {
        Ok(Ok(acks)) => full(
            StatusCode::OK,
            "application/json",
            acks.iter().map(|a| format!("{a}\n")).collect(),
        ),
        Ok(Err(message)) => {
            error_response(StatusCode::BAD_REQUEST, 40001, &message, None, Vec::new())
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            50000,
            &e.to_string(),
            None,
            Vec::new(),
        ),
    }
}
