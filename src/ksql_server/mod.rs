//! The embedded KSQL server: kafkaml's KSQL engine (crates/engine) on a Kafka cluster, behind
//! ksqlDB's REST API, so `kafkaml.ksql.Client`, ksql-python's `KSQLAPI` and ksqlDB's own
//! clients talk to it as to a ksqlDB server.
//!
//! Statements that change what runs (CREATE, DROP, INSERT INTO ... SELECT, TERMINATE) are kept
//! on the service's command topic and replayed at start; persistent queries resume from their
//! consumer groups' committed offsets.

pub mod http;
pub mod kafka;
pub mod udf;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafkaml_engine::engine::{Engine, EngineConfig, StatementError, StatementResult};
use kafkaml_engine::formats::SchemaRegistry;
use kafkaml_engine::functions::{FunctionRegistry, ScalarFunction};
use kafkaml_engine::sql::ast::Statement;

use crate::registry::Registry;
use kafka::{CommandLog, KafkaCluster, KafkaRuntime};

/// Where AVRO schemas are registered and looked up.
#[derive(Clone)]
pub enum SchemaRegistryHandle {
    /// The embedded registry, in this process.
    InProcess(Arc<Registry>),
    /// A registry at this URL (Confluent's REST API).
    Url(String),
}

/// What a server needs to start.
#[derive(Clone)]
pub struct KsqlServerOptions {
    pub bootstrap: String,
    /// `host:port`; port 0 picks a free one.
    pub listen: String,
    /// The service id: names the command topic and the queries' consumer groups.
    pub service_id: String,
    /// librdkafka settings for every client the server makes.
    pub kafka_config: Vec<(String, String)>,
    pub schema_registry: Option<SchemaRegistryHandle>,
    /// Functions beyond the built-ins (model UDFs).
    pub udfs: Vec<Arc<dyn ScalarFunction>>,
}

/// Counters `LocalKsql.stats()` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    pub requests: u64,
    pub statements: u64,
    pub statement_errors: u64,
    pub push_queries: u64,
    /// Commands replayed from the command topic at start.
    pub replayed: u64,
    /// Per persistent query: records in and out, whether it has read its source to the end,
    /// the error it stopped on.
    pub queries: BTreeMap<String, kafka::QueryProgress>,
}

/// State shared by the HTTP layer and the Rust API.
pub struct Shared {
    pub engine: Mutex<Engine>,
    pub cluster: Arc<KafkaCluster>,
    pub runtime: Arc<KafkaRuntime>,
    pub commands: CommandLog,
    pub service_id: String,
    pub push_stops: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
    pub next_push: AtomicU64,
    pub requests: AtomicU64,
    pub statements: AtomicU64,
    pub statement_errors: AtomicU64,
    pub push_queries: AtomicU64,
    pub replayed: AtomicU64,
    pub command_sequence: AtomicU64,
}

/// A statement's text (as run, variables substituted) and its result.
pub type Executed = (String, StatementResult);

/// Statements that change what runs, and so go to the command topic.
fn is_command(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateSource { .. }
            | Statement::Alter { .. }
            | Statement::CreateAsSelect { .. }
            | Statement::InsertInto { .. }
            | Statement::Drop { .. }
            | Statement::Terminate(_)
    )
}

impl Shared {
    /// Executes `text` statement by statement: one result (with its statement text) per
    /// statement; the first refused statement ends the request.
    pub fn execute(
        &self,
        text: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Vec<Executed>, (StatementError, Vec<Executed>)> {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged = engine.config.properties.clone();
        merged.extend(properties.clone());
        self.runtime.set_properties(merged.clone());
        let mut done = Vec::new();
        for raw in kafkaml_engine::sql::split_statements(text) {
            self.statements.fetch_add(1, Ordering::Relaxed);
            let outcome = (|| {
                let substituted = engine.substitute(&raw)?;
                let parsed = engine.parse(&substituted)?;
                let results = engine.execute(&substituted)?;
                Ok::<_, StatementError>((substituted, parsed, results))
            })();
            match outcome {
                Ok((substituted, parsed, results)) => {
                    if parsed.iter().any(|p| is_command(&p.statement)) {
                        if let Err(message) = self.commands.append(&substituted, &merged) {
                            self.statement_errors.fetch_add(1, Ordering::Relaxed);
                            return Err((StatementError { message: format!("the statement ran but could not be kept on the command topic, so a restart would lose it: {message}"), statement: substituted }, done));
                        }
                        self.command_sequence.fetch_add(1, Ordering::Relaxed);
                    }
                    for result in results {
                        done.push((format!("{substituted};"), result));
                    }
                }
                Err(error) => {
                    self.statement_errors.fetch_add(1, Ordering::Relaxed);
                    return Err((error, done));
                }
            }
        }
        Ok(done)
    }
}

/// A running embedded KSQL server.
pub struct KsqlServer {
    shared: Arc<Shared>,
    http: Option<http::HttpServer>,
}

impl KsqlServer {
    /// Connects to Kafka, replays the service's command topic and serves the REST API.
    pub fn start(options: KsqlServerOptions) -> Result<Self, String> {
        let cluster = Arc::new(KafkaCluster::connect(
            &options.bootstrap,
            &options.kafka_config,
        )?);
        let runtime = Arc::new(KafkaRuntime::new(
            &options.bootstrap,
            &options.kafka_config,
            &options.service_id,
        ));
        let commands = CommandLog::open(&cluster, &options.service_id)?;
        let registry: Option<Arc<dyn SchemaRegistry>> =
            options.schema_registry.as_ref().map(|handle| {
                Arc::new(registry_adapter::Adapter::new(handle.clone())) as Arc<dyn SchemaRegistry>
            });
        let mut functions = FunctionRegistry::builtin();
        for udf in &options.udfs {
            functions.register(udf.clone());
        }
        let config = EngineConfig {
            service_id: options.service_id.clone(),
            properties: BTreeMap::new(),
        };
        let engine = Engine::new(
            config,
            cluster.clone(),
            registry,
            runtime.clone(),
            functions,
        );
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            cluster,
            runtime,
            commands,
            service_id: options.service_id.clone(),
            push_stops: Mutex::new(BTreeMap::new()),
            next_push: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            statement_errors: AtomicU64::new(0),
            push_queries: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            command_sequence: AtomicU64::new(0),
        });
        shared.replay()?;
        let http = http::HttpServer::start(shared.clone(), &options.listen)?;
        Ok(KsqlServer {
            shared,
            http: Some(http),
        })
    }

    pub fn url(&self) -> String {
        self.http
            .as_ref()
            .map(http::HttpServer::url)
            .unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.http.as_ref().map_or(0, http::HttpServer::port)
    }

    pub fn service_id(&self) -> &str {
        &self.shared.service_id
    }

    pub fn command_topic(&self) -> &str {
        self.shared.commands.topic()
    }

    pub fn is_running(&self) -> bool {
        self.http.is_some()
    }

    /// Runs statements as `/ksql` would (the Rust API for tests and embedders).
    pub fn execute(&self, text: &str) -> Result<Vec<StatementResult>, StatementError> {
        self.shared
            .execute(text, &BTreeMap::new())
            .map(|done| done.into_iter().map(|(_, r)| r).collect())
            .map_err(|(e, _)| e)
    }

    pub fn stats(&self) -> ServerStats {
        let s = &self.shared;
        ServerStats {
            requests: s.requests.load(Ordering::Relaxed),
            statements: s.statements.load(Ordering::Relaxed),
            statement_errors: s.statement_errors.load(Ordering::Relaxed),
            push_queries: s.push_queries.load(Ordering::Relaxed),
            replayed: s.replayed.load(Ordering::Relaxed),
            queries: s.runtime.stats(),
        }
    }

    /// Stops serving, ends push queries and stops the persistent queries' threads (their
    /// statements stay on the command topic).
    pub fn stop(&mut self) {
        if let Some(mut http) = self.http.take() {
            for stop in self
                .shared
                .push_stops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                stop.store(true, Ordering::Relaxed);
            }
            http.stop();
            self.shared.runtime.stop_all();
        }
    }
}

impl Drop for KsqlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Re-runs the command topic's statements, in order.
    fn replay(&self) -> Result<(), String> {
        let commands = self.commands.read_all()?;
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        self.runtime.set_resuming(true);
        for (statement, properties) in commands {
            let mut merged = engine.config.properties.clone();
            merged.extend(properties);
            self.runtime.set_properties(merged);
            // A statement that no longer applies (its topic deleted meanwhile, say) is skipped,
            // as ksqlDB skips it; the rest still come back.
            if engine.execute(&statement).is_ok() {
                self.replayed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.runtime.set_resuming(false);
        Ok(())
    }
}

mod registry_adapter {
    //! The engine's view of a Schema Registry over the embedded one or a remote one.

    use super::SchemaRegistryHandle;
    use kafkaml_engine::formats::SchemaRegistry;

    pub struct Adapter {
        handle: SchemaRegistryHandle,
        http: reqwest::blocking::Client,
    }

    impl Adapter {
        pub fn new(handle: SchemaRegistryHandle) -> Self {
            Adapter {
                handle,
                http: reqwest::blocking::Client::new(),
            }
        }

        fn get(&self, url: &str, path: &str) -> Result<Option<serde_json::Value>, String> {
            let response = self
                .http
                .get(format!("{url}{path}"))
                .send()
                .map_err(|e| format!("Schema Registry at {url}: {e}"))?;
            if response.status().as_u16() == 404 {
                return Ok(None);
            }
            let status = response.status();
            let body: serde_json::Value = response
                .json()
                .map_err(|e| format!("Schema Registry at {url}: {e}"))?;
            if !status.is_success() {
                return Err(format!(
                    "Schema Registry at {url} answered {status}: {body}"
                ));
            }
            Ok(Some(body))
        }
    }

    impl SchemaRegistry for Adapter {
        fn register(&self, subject: &str, schema: &str) -> Result<i32, String> {
            match &self.handle {
                SchemaRegistryHandle::InProcess(registry) => registry
                    .register(subject, schema, &[], false)
                    .map(|(id, _)| id as i32)
                    .map_err(|e| e.to_string()),
                SchemaRegistryHandle::Url(url) => {
                    let body = serde_json::json!({ "schema": schema });
                    let response = self
                        .http
                        .post(format!("{url}/subjects/{subject}/versions"))
                        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                        .body(body.to_string())
                        .send()
                        .map_err(|e| format!("Schema Registry at {url}: {e}"))?;
                    let status = response.status();
                    let answer: serde_json::Value = response
                        .json()
                        .map_err(|e| format!("Schema Registry at {url}: {e}"))?;
                    answer
                        .get("id")
                        .and_then(|id| id.as_i64())
                        .map(|id| id as i32)
                        .ok_or_else(|| {
                            format!(
                                "Schema Registry at {url} refused the schema ({status}): {answer}"
                            )
                        })
                }
            }
        }

        fn schema_by_id(&self, id: i32) -> Result<String, String> {
            match &self.handle {
                SchemaRegistryHandle::InProcess(registry) => registry
                    .read(|state| state.schema(id as u32).map(|stored| stored.text.clone()))
                    .map_err(|e| e.to_string()),
                SchemaRegistryHandle::Url(url) => {
                    let body = self
                        .get(url, &format!("/schemas/ids/{id}"))?
                        .ok_or_else(|| format!("Schema {id} not found"))?;
                    body.get("schema")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| format!("Schema {id}: unexpected answer {body}"))
                }
            }
        }

        fn latest(&self, subject: &str) -> Result<Option<(i32, String)>, String> {
            match &self.handle {
                SchemaRegistryHandle::InProcess(registry) => registry
                    .read(|state| {
                        match state.version(subject, crate::registry::VersionSpec::Latest, false) {
                            Ok(version) => Ok(Some((version.id as i32, version.schema.clone()))),
                            Err(_) => Ok(None),
                        }
                    })
                    .map_err(|e| e.to_string()),
                SchemaRegistryHandle::Url(url) => {
                    let Some(body) =
                        self.get(url, &format!("/subjects/{subject}/versions/latest"))?
                    else {
                        return Ok(None);
                    };
                    let id = body.get("id").and_then(|i| i.as_i64()).unwrap_or_default() as i32;
                    let schema = body
                        .get("schema")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default()
                        .to_string();
                    Ok(Some((id, schema)))
                }
            }
        }
    }
}
