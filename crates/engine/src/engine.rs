//! The engine: executes statements against its catalog, plans queries into topologies and
//! hands persistent queries to a runtime (the Kafka runtime in the main crate, or the
//! conformance runner's in-process driver).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::catalog::{Catalog, Source, TimestampColumn, PSEUDO_COLUMNS};
use crate::expr::{compile, CompileError, CompiledExpr, Scope};
use crate::formats::{Format, FormatSpec, RecordSerde, SchemaRegistry, SerdeContext, Side};
use crate::functions::FunctionRegistry;
use crate::sql::ast::{
    ColumnConstraint, ColumnDef, Emit, Expr, Properties, PropertyValue, Query, SelectItem,
    ShowWhat, SourceKind, Statement,
};
use crate::sql::{parse_statements, ParsedStatement};
use crate::topology::{
    InputTimestamp, KeyWindow, OutputRecord, OutputTimestamp, SourceReader, StreamTopology,
    TimestampFormat,
};
use crate::types::{Column, ColumnKind, SqlType};
use crate::value::Value;

/// The Kafka operations the engine needs besides reading and writing query data.
pub trait Cluster: Send + Sync {
    /// The topic's partition count, or `None` when it does not exist.
    fn partitions(&self, topic: &str) -> std::result::Result<Option<i32>, String>;
    fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i16,
    ) -> std::result::Result<(), String>;
    fn delete_topic(&self, topic: &str) -> std::result::Result<(), String>;
    /// Creates a topic that keeps the latest record of each key (a changelog).
    fn create_compacted_topic(
        &self,
        topic: &str,
        partitions: i32,
    ) -> std::result::Result<(), String> {
        self.create_topic(topic, partitions, 1)
    }
    /// Every topic with its partition count.
    fn topics(&self) -> std::result::Result<Vec<(String, i32)>, String>;
    /// Writes records and waits for their acknowledgement (INSERT INTO ... VALUES).
    fn produce(&self, records: Vec<OutputRecord>) -> std::result::Result<(), String>;
}

/// Runs persistent queries: started when a statement creates one, stopped on TERMINATE/DROP.
pub trait QueryRuntime: Send + Sync {
    fn start(&self, query: &PersistentQuery) -> std::result::Result<(), String>;
    fn stop(&self, query_id: &str);
}

/// A runtime that runs nothing by itself: its owner drives the topologies (the conformance
/// runner, tests).
pub struct ManualRuntime;

impl QueryRuntime for ManualRuntime {
    fn start(&self, _query: &PersistentQuery) -> std::result::Result<(), String> {
        Ok(())
    }
    fn stop(&self, _query_id: &str) {}
}

/// A statement the engine refused: ksqlDB's 40001 "statement error".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StatementError {
    pub message: String,
    /// The statement's text as sent.
    pub statement: String,
}

/// A persistent query (`CREATE ... AS SELECT`, `INSERT INTO ... SELECT`).
#[derive(Clone)]
pub struct PersistentQuery {
    pub id: String,
    pub sql: String,
    pub sink: String,
    pub sink_topic: String,
    pub sources: Vec<String>,
    /// Every topic the query reads (each source's of a join).
    pub source_topics: Vec<String>,
    /// An aggregation's compacted changelog topic (ksqlDB's name), where a runtime that
    /// restarts queries keeps their state.
    pub changelog_topic: Option<String>,
    /// The changelog topic did not exist and was created now: a query resuming an earlier run
    /// has lost its state and must read its sources again from their start.
    pub changelog_created: bool,
    pub topology: Arc<Mutex<StreamTopology>>,
}

/// A source as SHOW STREAMS lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSummary {
    pub kind: SourceKind,
    pub name: String,
    pub topic: String,
    pub key_format: String,
    pub value_format: String,
}

/// A query as SHOW QUERIES lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySummary {
    pub id: String,
    pub sql: String,
    pub sinks: Vec<String>,
    pub sink_topics: Vec<String>,
    pub state: String,
}

/// What a statement produced: one of ksqlDB's `/ksql` entities.
#[derive(Debug, Clone, PartialEq)]
// One result per statement: its size does not matter, a Box would only burden its users.
#[allow(clippy::large_enum_variant)]
pub enum StatementResult {
    /// DDL and DML: ksqlDB's `currentStatus` entity.
    Status {
        message: String,
        query_id: Option<String>,
    },
    Sources {
        kind: SourceKind,
        sources: Vec<SourceSummary>,
    },
    Topics(Vec<(String, i32)>),
    Queries(Vec<QuerySummary>),
    Properties {
        properties: BTreeMap<String, String>,
        overwritten: Vec<String>,
    },
    Functions(Vec<(String, String)>),
    FunctionDescription {
        name: String,
        category: String,
        description: String,
        signatures: Vec<String>,
    },
    Description {
        source: Source,
        extended: bool,
        readers: Vec<String>,
        writers: Vec<String>,
    },
    QueryDescription {
        query: QuerySummary,
        columns: Vec<Column>,
    },
    Variables(BTreeMap<String, String>),
    /// A statement the REST layer streams (SELECT ... EMIT CHANGES, PRINT): not run by execute.
    Streaming,
}

/// A push query ready to run: its topology, its result columns and where it reads from.
pub struct PushQuery {
    pub topology: StreamTopology,
    pub columns: Vec<Column>,
    pub source_topic: String,
    pub from_beginning: bool,
    pub limit: Option<u64>,
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub service_id: String,
    /// `ksql.*` properties in effect (SET adds to them per session).
    pub properties: BTreeMap<String, String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            service_id: "default_".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// The embedded KSQL engine.
pub struct Engine {
    pub config: EngineConfig,
    pub catalog: Catalog,
    pub queries: BTreeMap<String, PersistentQuery>,
    pub functions: FunctionRegistry,
    cluster: Arc<dyn Cluster>,
    registry: Option<Arc<dyn SchemaRegistry>>,
    runtime: Arc<dyn QueryRuntime>,
    variables: BTreeMap<String, String>,
    next_query: u64,
}

type Result<T> = std::result::Result<T, String>;

const SOURCE_PROPERTIES: &[&str] = &[
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_ID",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "KEY_AVRO_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "KEY_SCHEMA_FULL_NAME",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "RETENTION_MS",
    "CLEANUP_POLICY",
    "SOURCE_CONNECTOR",
];

impl Engine {
    pub fn new(
        config: EngineConfig,
        cluster: Arc<dyn Cluster>,
        registry: Option<Arc<dyn SchemaRegistry>>,
        runtime: Arc<dyn QueryRuntime>,
        functions: FunctionRegistry,
    ) -> Self {
        Engine {
            config,
            catalog: Catalog::default(),
            queries: BTreeMap::new(),
            functions,
            cluster,
            registry,
            runtime,
            variables: BTreeMap::new(),
            next_query: 0,
        }
    }

    /// Replaces `${name}` with DEFINEd variables.
    pub fn substitute(&self, text: &str) -> std::result::Result<String, StatementError> {
        if !text.contains("${") {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + end];
            match self.variables.get(name).or_else(|| {
                self.variables
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            }) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[start..start + end + 1]),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Parses `text` (one or more statements).
    pub fn parse(&self, text: &str) -> std::result::Result<Vec<ParsedStatement>, StatementError> {
        parse_statements(text).map_err(|e| StatementError {
            message: e.to_string(),
            statement: text.to_string(),
        })
    }

    /// Executes every statement of `text` in order; the first refused one stops the rest (the
    /// earlier ones stay applied, as in ksqlDB).
    pub fn execute(
        &mut self,
        text: &str,
    ) -> std::result::Result<Vec<StatementResult>, StatementError> {
        let mut results = Vec::new();
        // Statements are substituted one at a time, so a DEFINE applies to those after it.
        for (statement_text, line, column) in crate::sql::split_statements_located(text) {
            let substituted = self.substitute(&statement_text)?;
            // Positions in errors are the request's, as ksqlDB gives them.
            let parsed = parse_statements(&substituted).map_err(|e| StatementError {
                message: e.shifted(line, column).to_string(),
                statement: substituted.clone(),
            })?;
            for parsed in parsed {
                let result = self
                    .execute_statement(&parsed)
                    .map_err(|message| StatementError {
                        message,
                        statement: parsed.text.clone(),
                    })?;
                results.push(result);
            }
        }
        Ok(results)
    }

    fn execute_statement(&mut self, parsed: &ParsedStatement) -> Result<StatementResult> {
        match &parsed.statement {
            Statement::CreateSource {
                kind,
                or_replace,
                if_not_exists,
                read_only,
                name,
                columns,
                properties,
            } => self.create_source(
                *kind,
                *or_replace,
                *if_not_exists,
                *read_only,
                name,
                columns,
                properties,
                &parsed.text,
            ),
            Statement::CreateAsSelect {
                kind,
                or_replace,
                if_not_exists,
                name,
                properties,
                query,
            } => self.create_as_select(
                *kind,
                *or_replace,
                *if_not_exists,
                name,
                properties,
                query,
                &parsed.text,
            ),
            Statement::InsertInto { target, query, .. } => {
                self.insert_into(target, query, &parsed.text)
            }
            Statement::InsertValues {
                target,
                columns,
                values,
            } => self.insert_values(target, columns.as_deref(), values),
            Statement::Drop {
                kind,
                if_exists,
                name,
                delete_topic,
            } => self.drop_source(*kind, *if_exists, name, *delete_topic),
            Statement::Show(what) => self.show(*what),
            Statement::Describe { name, extended } => {
                let source = self.catalog.sources.get(name).cloned().ok_or_else(|| {
                    format!("Could not find STREAM/TABLE '{name}' in the Metastore")
                })?;
                let readers = self
                    .queries
                    .values()
                    .filter(|q| q.sources.contains(name))
                    .map(|q| q.id.clone())
                    .collect();
                let writers = self
                    .queries
                    .values()
                    .filter(|q| &q.sink == name)
                    .map(|q| q.id.clone())
                    .collect();
                Ok(StatementResult::Description {
                    source,
                    extended: *extended,
                    readers,
                    writers,
                })
            }
            Statement::DescribeAll { kind, .. } => Ok(StatementResult::Sources {
                kind: *kind,
                sources: self.source_summaries(*kind),
            }),
            Statement::DescribeFunction(name) => {
                let function = self
                    .functions
                    .get(name)
                    .ok_or_else(|| format!("Can't find any functions with the name '{name}'"))?;
                Ok(StatementResult::FunctionDescription {
                    name: function.name().to_string(),
                    category: function.category().to_string(),
                    description: function.description().to_string(),
                    signatures: function.signatures(),
                })
            }
            Statement::ExplainQuery(id) => {
                let query = self.queries.get(id).ok_or_else(|| format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of running queries."))?;
                let columns = self
                    .catalog
                    .sources
                    .get(&query.sink)
                    .map(|s| s.columns.clone())
                    .unwrap_or_default();
                Ok(StatementResult::QueryDescription {
                    query: summary(query),
                    columns,
                })
            }
            Statement::ExplainStatement(_) => Err(
                "EXPLAIN of a statement is not supported yet; EXPLAIN a running query's id".into(),
            ),
            Statement::Terminate(id) => {
                let ids: Vec<String> = match id {
                    Some(id) => {
                        if !self.queries.contains_key(id) {
                            return Err(format!("Unknown queryId: {id}"));
                        }
                        vec![id.clone()]
                    }
                    None => self.queries.keys().cloned().collect(),
                };
                for id in &ids {
                    self.terminate(id);
                }
                Ok(StatementResult::Status {
                    message: "Query terminated.".into(),
                    query_id: None,
                })
            }
            Statement::Set { name, value } => {
                self.config.properties.insert(name.clone(), value.clone());
                Ok(StatementResult::Status {
                    message: format!("Successfully set property '{name}' to '{value}'."),
                    query_id: None,
                })
            }
            Statement::Unset(name) => {
                self.config.properties.remove(name);
                Ok(StatementResult::Status {
                    message: format!("Successfully unset property '{name}'."),
                    query_id: None,
                })
            }
            Statement::Define { name, value } => {
                self.variables.insert(name.clone(), value.clone());
                Ok(StatementResult::Status {
                    message: format!("Defined variable {name}."),
                    query_id: None,
                })
            }
            Statement::Undefine(name) => {
                self.variables.remove(name);
                Ok(StatementResult::Status {
                    message: format!("Undefined variable {name}."),
                    query_id: None,
                })
            }
            Statement::Alter {
                kind,
                name,
                columns,
            } => self.alter(*kind, name, columns),
            Statement::Print { .. } | Statement::Select(_) => Ok(StatementResult::Streaming),
        }
    }

    /// `ALTER STREAM ... ADD COLUMN`: new value columns at the end of a declared stream.
    fn alter(
        &mut self,
        kind: SourceKind,
        name: &str,
        columns: &[(String, SqlType)],
    ) -> Result<StatementResult> {
        let noun = kind.name().to_lowercase();
        let source = self
            .catalog
            .sources
            .get_mut(name)
            .ok_or_else(|| format!("Source {name} does not exist."))?;
        if source.kind != kind {
            return Err(format!(
                "Incompatible data source type is {}, but statement was ALTER {}",
                source.kind.name(),
                kind.name()
            ));
        }
        if source.read_only {
            return Err(format!(
                "Cannot alter {noun} '{name}': ALTER operations are not supported on source {noun}s."
            ));
        }
        if source.writer.is_some() {
            return Err("ALTER command is not supported for CREATE ... AS statements.".into());
        }
        for (column, _) in columns {
            if source.columns.iter().any(|c| &c.name == column) {
                return Err(format!(
                    "Cannot add column `{column}` to schema. A column with the same name already exists."
                ));
            }
        }
        let mut altered = source.clone();
        altered.columns.extend(
            columns
                .iter()
                .map(|(n, t)| Column::new(n.clone(), t.clone(), ColumnKind::Value)),
        );
        let value_columns: Vec<Column> = altered.value_columns().cloned().collect();
        self.serde(
            &altered.value_format,
            &altered.topic,
            Side::Value,
            &value_columns,
        )?;
        self.catalog.sources.insert(name.to_string(), altered);
        Ok(StatementResult::Status {
            message: format!("{} altered.", title(kind)),
            query_id: None,
        })
    }

    fn show(&self, what: ShowWhat) -> Result<StatementResult> {
        Ok(match what {
            ShowWhat::Streams { .. } => StatementResult::Sources {
                kind: SourceKind::Stream,
                sources: self.source_summaries(SourceKind::Stream),
            },
            ShowWhat::Tables { .. } => StatementResult::Sources {
                kind: SourceKind::Table,
                sources: self.source_summaries(SourceKind::Table),
            },
            ShowWhat::Topics { all, .. } => {
                let mut topics = self.cluster.topics()?;
                if !all {
                    topics.retain(|(name, _)| !name.starts_with('_'));
                }
                StatementResult::Topics(topics)
            }
            ShowWhat::Queries { .. } => {
                StatementResult::Queries(self.queries.values().map(summary).collect())
            }
            ShowWhat::Functions => StatementResult::Functions(
                self.functions
                    .iter()
                    .map(|f| (f.name().to_string(), f.category().to_string()))
                    .collect(),
            ),
            ShowWhat::Properties => {
                let mut properties = default_properties(&self.config.service_id);
                properties.extend(self.config.properties.clone());
                StatementResult::Properties {
                    properties,
                    overwritten: self.config.properties.keys().cloned().collect(),
                }
            }
            ShowWhat::Variables => StatementResult::Variables(self.variables.clone()),
            ShowWhat::Types => StatementResult::Variables(BTreeMap::new()),
        })
    }

    fn source_summaries(&self, kind: SourceKind) -> Vec<SourceSummary> {
        self.catalog
            .sources
            .values()
            .filter(|s| s.kind == kind)
            .map(|s| SourceSummary {
                kind: s.kind,
                name: s.name.clone(),
                topic: s.topic.clone(),
                key_format: s.key_format.format.name().into(),
                value_format: s.value_format.format.name().into(),
            })
            .collect()
    }

    fn terminate(&mut self, id: &str) {
        if let Some(query) = self.queries.remove(id) {
            self.runtime.stop(id);
            if let Some(sink) = self.catalog.sources.get_mut(&query.sink) {
                if sink.writer.as_deref() == Some(id) {
                    sink.writer = None;
                }
            }
        }
    }

    fn next_query_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}_{}", self.next_query);
        self.next_query += 1;
        id
    }

    pub(crate) fn serde(
        &self,
        spec: &FormatSpec,
        topic: &str,
        side: Side,
        columns: &[Column],
    ) -> Result<RecordSerde> {
        let columns = columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type.clone()))
            .collect();
        RecordSerde::new(
            spec,
            SerdeContext {
                topic: topic.to_string(),
                side,
                columns,
                registry: self.registry.clone(),
            },
        )
        .map_err(|e| e.0)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_source(
        &mut self,
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        read_only: bool,
        name: &str,
        columns: &[ColumnDef],
        properties: &Properties,
        sql: &str,
    ) -> Result<StatementResult> {
        if let Some(existing) = self.catalog.sources.get(name) {
            if if_not_exists {
                return Ok(StatementResult::Status {
                    message: format!(
                        "Cannot add {} '{name}': A {} with the same name already exists.",
                        kind.name().to_lowercase(),
                        existing.kind.name().to_lowercase()
                    ),
                    query_id: None,
                });
            }
            if !or_replace {
                return Err(format!(
                    "Cannot add {} '{name}': A {} with the same name already exists",
                    kind.name().to_lowercase(),
                    existing.kind.name().to_lowercase()
                ));
            }
            if existing.read_only {
                return Err(format!(
                    "Cannot add {} '{name}': CREATE OR REPLACE is not supported on source {}s.",
                    kind.name().to_lowercase(),
                    existing.kind.name().to_lowercase()
                ));
            }
        }
        if or_replace && read_only {
            return Err(format!(
                "Cannot add {} '{name}': CREATE OR REPLACE is not supported on source {}s.",
                kind.name().to_lowercase(),
                kind.name().to_lowercase()
            ));
        }
        check_property_names(properties)?;
        let topic = properties
            .get("KAFKA_TOPIC")
            .map(PropertyValue::text)
            .ok_or("Missing required property \"KAFKA_TOPIC\" which has no default value.")?;
        let (key_format, value_format) = self.formats(properties, None)?;
        let mut key_columns = Vec::new();
        let mut value_columns = Vec::new();
        for column in columns {
            if PSEUDO_COLUMNS.iter().any(|(n, _)| *n == column.name)
                || column.name == "WINDOWSTART"
                || column.name == "WINDOWEND"
            {
                return Err(format!(
                    "'{}' is a reserved column name. You cannot use it as a name for a column.",
                    column.name
                ));
            }
            if key_columns
                .iter()
                .chain(value_columns.iter())
                .any(|c: &Column| c.name == column.name)
            {
                return Err(format!("Duplicate column names:\n\t{}", column.name));
            }
            match (column.constraint, kind) {
                (ColumnConstraint::Key, SourceKind::Stream) | (ColumnConstraint::PrimaryKey, SourceKind::Table) => key_columns.push(Column::new(column.name.clone(), column.sql_type.clone(), ColumnKind::Key)),
                (ColumnConstraint::PrimaryKey, SourceKind::Stream) => {
                    return Err(format!(
                        "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs which have no uniqueness or NULL constraints.",
                        column.name
                    ))
                }
                (ColumnConstraint::Key, SourceKind::Table) => {
                    return Err(format!(
                        "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs which have no uniqueness or NULL constraints.",
                        column.name
                    ))
                }
                (ColumnConstraint::Headers, _) => return Err(format!("Header columns (`{}`) are not supported by this engine yet", column.name)),
                (ColumnConstraint::None, _) => value_columns.push(Column::new(column.name.clone(), column.sql_type.clone(), ColumnKind::Value)),
            }
        }
        // AVRO sources may leave their columns to the registry's schema.
        if value_columns.is_empty() && value_format.format == Format::Avro {
            let wrapped = value_format.wrap_single_value != Some(false);
            value_columns = self
                .infer_columns(&topic, Side::Value, value_format.schema_id, wrapped)?
                .into_iter()
                .map(|(name, ty)| Column::new(name, ty, ColumnKind::Value))
                .collect();
        }
        if key_columns.is_empty()
            && key_format.format == Format::Avro
            && (properties.contains_key("KEY_FORMAT") || properties.contains_key("FORMAT"))
        {
            key_columns = self
                .infer_columns(&topic, Side::Key, key_format.schema_id, false)?
                .into_iter()
                .map(|(name, ty)| Column::new(name, ty, ColumnKind::Key))
                .collect();
        }
        if key_columns.is_empty() && value_columns.is_empty() {
            return Err("No columns supplied.".into());
        }
        if kind == SourceKind::Table && key_columns.is_empty() {
            return Err("Tables require a PRIMARY KEY. Please define the PRIMARY KEY.".into());
        }
        let key_format = if key_columns.is_empty()
            && !properties.contains_key("KEY_FORMAT")
            && !properties.contains_key("FORMAT")
        {
            FormatSpec::new(Format::None)
        } else {
            key_format
        };
        self.serde(&key_format, &topic, Side::Key, &key_columns)?;
        // The configured default wrapping applies to single-column values only.
        let mut value_format = value_format;
        if !properties.contains_key("WRAP_SINGLE_VALUE") && value_columns.len() != 1 {
            value_format.wrap_single_value = None;
        }
        self.serde(&value_format, &topic, Side::Value, &value_columns)?;
        let timestamp = timestamp_property(
            properties,
            &value_columns
                .iter()
                .chain(key_columns.iter())
                .cloned()
                .collect::<Vec<_>>(),
        )?;
        let replicas = int_property(properties, "REPLICAS")?.map_or(1, |r| r as i16);
        let partitions = match self.cluster.partitions(&topic)? {
            Some(existing) => {
                if let Some(asked) = int_property(properties, "PARTITIONS")? {
                    if asked as i32 != existing {
                        return Err(format!(
                            "A Kafka topic with the name '{topic}' already exists, with different partition/replica configuration than required. KSQL expects {asked} partitions (topic has {existing}), 1 replication factor (topic has 1)."
                        ));
                    }
                }
                existing
            }
            None => match int_property(properties, "PARTITIONS")? {
                Some(partitions) if !read_only => {
                    self.cluster.create_topic(&topic, partitions as i32, replicas)?;
                    partitions as i32
                }
                _ => {
                    return Err(format!(
                        "Topic '{topic}' does not exist. If you want to create a new topic for the {} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE {} {name} (ID INT) WITH (KAFKA_TOPIC='{topic}', PARTITIONS=2, REPLICAS=1, FORMAT='JSON');",
                        kind.name().to_lowercase(),
                        kind.name()
                    ))
                }
            },
        };
        let window_type = properties
            .get("WINDOW_TYPE")
            .map(|w| w.text().to_uppercase());
        if window_type.as_deref() == Some("SESSION") && properties.contains_key("WINDOW_SIZE") {
            return Err("'WINDOW_SIZE' should not be set for SESSION windows.".into());
        }
        if window_type.is_some() && key_columns.is_empty() {
            return Err("Windowed sources require a key column.".into());
        }
        let key_window = match window_type.as_deref() {
            None => None,
            Some("SESSION") => Some(KeyWindow::Session),
            Some("TUMBLING" | "HOPPING") => {
                let size = properties.get("WINDOW_SIZE").map(|p| p.text()).ok_or(
                    "Tumbling and Hopping window types should set WINDOW_SIZE in the WITH clause.",
                )?;
                Some(KeyWindow::Time {
                    size_ms: window_size_millis(&size)?,
                })
            }
            Some(other) => {
                return Err(format!(
                    "Invalid value for property WINDOW_TYPE: {other}. Valid values are SESSION, HOPPING, TUMBLING"
                ))
            }
        };
        let source = Source {
            key_format_declared: properties.contains_key("KEY_FORMAT")
                || properties.contains_key("FORMAT"),
            window_type,
            key_window,
            kind,
            name: name.to_string(),
            topic,
            key_format,
            value_format,
            columns: key_columns.into_iter().chain(value_columns).collect(),
            timestamp,
            partitions,
            replicas,
            read_only,
            sql: sql.to_string(),
            writer: None,
        };
        self.catalog.sources.insert(name.to_string(), source);
        Ok(StatementResult::Status {
            message: format!("{} created", title(kind)),
            query_id: None,
        })
    }

    /// A side's columns from the Schema Registry: the schema `schema_id` names (its field
    /// names kept), else the latest under the topic's subject (names upper-cased).
    fn infer_columns(
        &self,
        topic: &str,
        side: Side,
        schema_id: Option<i32>,
        wrapped: bool,
    ) -> Result<Vec<(String, SqlType)>> {
        let registry = self
            .registry
            .as_ref()
            .ok_or("AVRO needs a Schema Registry: set 'ksql.schema.registry.url'")?;
        let noun = if side == Side::Key { "keys" } else { "values" };
        let suffix = if side == Side::Key { "key" } else { "value" };
        let subject = format!("{topic}-{suffix}");
        let (text, upper_case) = match schema_id {
            Some(id) => (registry.schema_by_id(id)?, false),
            None => match registry.latest(&subject)? {
                Some((_, text)) => (text, true),
                None => return Err(format!(
                    "Schema for message {noun} on topic '{topic}' does not exist in the Schema Registry.\nSubject: {subject}\n\nPossible causes include:\n- The topic itself does not exist\n\t-> Use SHOW TOPICS; to check\n- Messages on the topic are not serialized using a format Schema Registry supports\n\t-> Use PRINT '{topic}' FROM BEGINNING; to verify\n- Messages on the topic have not been serialized using a Confluent Schema Registry supported serializer\n\t-> See https://docs.confluent.io/current/schema-registry/docs/serializer-formatter.html\n- The schema is registered on a different instance of the Schema Registry\n\t-> Use the REST API to list available subjects\thttps://docs.confluent.io/current/schema-registry/docs/api.html#get--subjects\n- You do not have permissions to access the Schema Registry.\n\t-> See https://docs.confluent.io/current/schema-registry/docs/security.html"
                )),
            },
        };
        crate::formats::infer_columns_named(&text, side, wrapped, upper_case)
    }

    /// A sink given a registry schema by id must produce its columns, in its order (the
    /// schema may have more, which it fills with defaults).
    fn check_schema_columns(
        &self,
        id: i32,
        side: Side,
        spec: &FormatSpec,
        produced: &[Column],
    ) -> Result<()> {
        let registry = self
            .registry
            .as_ref()
            .ok_or("AVRO needs a Schema Registry: set 'ksql.schema.registry.url'")?;
        let text = registry.schema_by_id(id)?;
        let wrapped = match side {
            Side::Key => produced.len() != 1,
            Side::Value => !(produced.len() == 1 && spec.wrap_single_value == Some(false)),
        };
        let expected = crate::formats::infer_columns_named(&text, side, wrapped, false)?;
        let changed: Vec<String> = produced
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                expected
                    .get(*i)
                    .is_none_or(|(name, ty)| *name != c.name || *ty != c.sql_type)
            })
            .map(|(_, c)| format!("`{}` {}", c.name, c.sql_type))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let registry_columns: Vec<String> = expected
            .iter()
            .map(|(name, ty)| format!("`{name}` {ty}"))
            .collect();
        Err(format!(
            "The following {} columns are changed, missing or reordered: [{}]. Schema from schema registry is [{}]",
            if side == Side::Key { "key" } else { "value" },
            changed.join(", "),
            registry_columns.join(", ")
        ))
    }

    /// The key and value formats a statement's WITH clause gives, falling back to `inherit`
    /// (the source's, for CREATE ... AS SELECT) or to ksqlDB's defaults (KAFKA keys).
    fn formats(
        &self,
        properties: &Properties,
        inherit: Option<(&FormatSpec, &FormatSpec)>,
    ) -> Result<(FormatSpec, FormatSpec)> {
        let parse = |key: &str| -> Result<Option<Format>> {
            match properties.get(key) {
                Some(value) => Format::parse(&value.text()).map(Some).ok_or_else(|| {
                    format!("Unknown format: {}", value.text().to_ascii_uppercase())
                }),
                None => Ok(None),
            }
        };
        let format = parse("FORMAT")?;
        let key = parse("KEY_FORMAT")?;
        let value = parse("VALUE_FORMAT")?;
        if format.is_some() && (key.is_some() || value.is_some()) {
            let other = if key.is_some() {
                "KEY_FORMAT"
            } else {
                "VALUE_FORMAT"
            };
            return Err(format!("Cannot supply both '{other}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."));
        }
        let default_value = self
            .config
            .properties
            .get("ksql.persistence.default.format.value")
            .and_then(|f| Format::parse(f));
        let default_key = self
            .config
            .properties
            .get("ksql.persistence.default.format.key")
            .and_then(|f| Format::parse(f))
            .unwrap_or(Format::Kafka);
        let value_format = match format.or(value) {
            Some(f) => f,
            None => match inherit {
                Some((_, v)) => v.format,
                None => default_value.ok_or("Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.")?,
            },
        };
        let key_format = match format.or(key) {
            Some(f) => f,
            None => match inherit {
                Some((k, _)) => k.format,
                None => default_key,
            },
        };
        let mut key_spec = match inherit {
            Some((k, _)) if k.format == key_format => FormatSpec {
                schema_id: None,
                ..k.clone()
            },
            _ => FormatSpec::new(key_format),
        };
        let mut value_spec = match inherit {
            // A sink keeps the source's delimiter and schema naming, not its single-value wrapping.
            Some((_, v)) if v.format == value_format && format.or(value).is_none() => FormatSpec {
                wrap_single_value: None,
                schema_id: None,
                ..v.clone()
            },
            _ => FormatSpec::new(value_format),
        };
        for (option, spec) in [
            ("VALUE_DELIMITER", &mut value_spec),
            ("KEY_DELIMITER", &mut key_spec),
        ] {
            if let Some(delimiter) = properties.get(option) {
                spec.delimiter =
                    crate::formats::parse_delimiter(option, &delimiter.text()).map_err(|e| e.0)?;
                if spec.format != Format::Delimited {
                    return Err(format!(
                        "{} does not support the following configs: [delimiter]",
                        spec.format.name()
                    ));
                }
            }
        }
        if let Some(wrap) = properties.get("WRAP_SINGLE_VALUE") {
            value_spec.wrap_single_value = Some(match wrap {
                PropertyValue::Bool(b) => *b,
                other => other.text().eq_ignore_ascii_case("true"),
            });
        } else if let Some(wrap) = self
            .config
            .properties
            .get("ksql.persistence.wrap.single.values")
        {
            if inherit.is_none() || value_spec.wrap_single_value.is_none() {
                value_spec.wrap_single_value = Some(wrap.eq_ignore_ascii_case("true"));
            }
        }
        if let Some(id) = int_property(properties, "VALUE_SCHEMA_ID")? {
            value_spec.schema_id = Some(id as i32);
        }
        if let Some(id) = int_property(properties, "KEY_SCHEMA_ID")? {
            key_spec.schema_id = Some(id as i32);
        }
        if let Some(name) = properties
            .get("VALUE_AVRO_SCHEMA_FULL_NAME")
            .or(properties.get("VALUE_SCHEMA_FULL_NAME"))
        {
            value_spec.full_schema_name = Some(name.text());
        }
        if let Some(name) = properties
            .get("KEY_AVRO_SCHEMA_FULL_NAME")
            .or(properties.get("KEY_SCHEMA_FULL_NAME"))
        {
            key_spec.full_schema_name = Some(name.text());
        }
        Ok((key_spec, value_spec))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_as_select(
        &mut self,
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        name: &str,
        properties: &Properties,
        query: &Query,
        sql: &str,
    ) -> Result<StatementResult> {
        if let Some(existing) = self.catalog.sources.get(name) {
            if if_not_exists {
                return Ok(StatementResult::Status {
                    message: format!(
                        "Cannot add stream '{name}': A {} with the same name already exists.",
                        existing.kind.name().to_lowercase()
                    ),
                    query_id: None,
                });
            }
            if !or_replace || existing.kind != kind {
                return Err(format!(
                    "Cannot add stream '{name}': A {} with the same name already exists",
                    existing.kind.name().to_lowercase()
                ));
            }
        }
        check_property_names(properties)?;
        // ksqlDB checks the sink's TIMESTAMP column before the projection's keys.
        if properties.contains_key("TIMESTAMP") {
            if let Ok(projected) = self.plan_query(query, true, name) {
                timestamp_property(properties, &projected.value_columns)?;
            }
        }
        let plan = self.plan_query(query, false, name)?;
        match (kind, plan.produces_table) {
            (SourceKind::Stream, true) => return Err("Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.".into()),
            (SourceKind::Table, false) => return Err("Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.".into()),
            _ => {}
        }
        let source = self
            .catalog
            .sources
            .get(&query.from.name)
            .cloned()
            .ok_or("source vanished")?;
        let topic = properties
            .get("KAFKA_TOPIC")
            .map(PropertyValue::text)
            .unwrap_or_else(|| name.to_string());
        let (key_format, value_format) =
            self.formats(properties, Some((&source.key_format, &source.value_format)))?;
        if plan.key_columns.is_empty()
            && properties.contains_key("KEY_FORMAT")
            && key_format.format != Format::None
        {
            return Err("Key format specified for stream without key columns.".into());
        }
        let explicit_key_format =
            properties.contains_key("KEY_FORMAT") || properties.contains_key("FORMAT");
        let key_format = if plan.key_columns.is_empty() {
            FormatSpec::new(Format::None)
        } else if key_format.format == Format::None {
            if explicit_key_format {
                return Err(format!(
                    "The 'NONE' format can only be used when no columns are defined. Got: [{}]",
                    plan.key_columns
                        .iter()
                        .map(|c| format!("`{}` {} KEY", c.name, c.sql_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            // A stream declared keyless with KEY_FORMAT='NONE' gives a new key the value's
            // format where it can; an implicit NONE is ksqlDB's default KAFKA.
            match value_format.format {
                Format::Json | Format::Delimited | Format::Avro if source.key_format_declared => {
                    FormatSpec::new(value_format.format)
                }
                _ => FormatSpec::new(Format::Kafka),
            }
        } else {
            key_format
        };
        for (spec, side, produced) in [
            (&key_format, Side::Key, &plan.key_columns),
            (&value_format, Side::Value, &plan.value_columns),
        ] {
            if let (Format::Avro, Some(id)) = (spec.format, spec.schema_id) {
                self.check_schema_columns(id, side, spec, produced)?;
            }
        }
        let mut columns: Vec<Column> = plan.key_columns.clone();
        columns.extend(plan.value_columns.iter().cloned());
        let sink_key = self.serde(&key_format, &topic, Side::Key, &plan.key_columns)?;
        let mut value_format = value_format;
        if !properties.contains_key("WRAP_SINGLE_VALUE") && plan.value_columns.len() != 1 {
            value_format.wrap_single_value = None;
        }
        let sink_value = self.serde(&value_format, &topic, Side::Value, &plan.value_columns)?;
        let output_timestamp = match timestamp_property(properties, &columns)? {
            Some(ts) => {
                let in_value = plan.value_columns.iter().position(|c| c.name == ts.column);
                let in_key = plan.key_columns.iter().position(|c| c.name == ts.column);
                let (index, key) = match (in_value, in_key) {
                    (Some(index), _) => (index, false),
                    (None, Some(index)) => (index, true),
                    (None, None) => return Err(format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{}'", ts.column)),
                };
                OutputTimestamp::Column {
                    index,
                    key,
                    format: self.timestamp_format(ts.format.as_deref())?,
                }
            }
            None => OutputTimestamp::Input,
        };
        let replicas = int_property(properties, "REPLICAS")?.map_or(1, |r| r as i16);
        let partitions = match int_property(properties, "PARTITIONS")? {
            Some(p) => p as i32,
            None => source.partitions,
        };
        match self.cluster.partitions(&topic)? {
            Some(_) => {}
            None => self.cluster.create_topic(&topic, partitions, replicas)?,
        }
        let query_id = match self
            .catalog
            .sources
            .get(name)
            .and_then(|s| s.writer.clone())
        {
            Some(existing) if or_replace => existing,
            _ => self.next_query_id(&format!(
                "{}_{name}",
                if kind == SourceKind::Table {
                    "CTAS"
                } else {
                    "CSAS"
                }
            )),
        };
        // A windowed aggregate's table is windowed by its own window.
        let (window_type, key_window) = match plan.topology.aggregation.as_ref() {
            Some(stage) => (
                stage.plan.window.map(|w| w.kind.name().to_string()),
                stage.plan.window.map(|w| w.key_window()),
            ),
            None => (source.window_type.clone(), source.key_window),
        };
        let sink = Source {
            key_format_declared: true,
            window_type,
            key_window,
            kind,
            name: name.to_string(),
            topic: topic.clone(),
            key_format,
            value_format,
            timestamp: timestamp_property(properties, &columns)?,
            columns,
            partitions,
            replicas,
            read_only: false,
            sql: sql.to_string(),
            writer: Some(query_id.clone()),
        };
        let mut topology = plan.topology;
        // A table's rows are kept for pull queries.
        if kind == SourceKind::Table {
            topology.materialized = Some(crate::topology::Materialized {
                partitions,
                rows: Default::default(),
            });
        }
        topology.sink_topic = Some(topic.clone());
        topology.sink_key = Some(sink_key);
        topology.sink_value = Some(sink_value);
        topology.output_timestamp = output_timestamp;
        if or_replace {
            self.runtime.stop(&query_id);
        }
        let (changelog_topic, changelog_created) =
            self.changelog_topic(&topology, &query_id, partitions)?;
        let persistent = PersistentQuery {
            id: query_id.clone(),
            sql: sql.to_string(),
            changelog_topic,
            changelog_created,
            sink: name.to_string(),
            sink_topic: topic,
            sources: query_sources(query),
            source_topics: topology.topics(),
            topology: Arc::new(Mutex::new(topology)),
        };
        self.runtime.start(&persistent)?;
        self.catalog.sources.insert(name.to_string(), sink);
        self.queries.insert(query_id.clone(), persistent);
        Ok(StatementResult::Status {
            message: format!("Created query with ID {query_id}"),
            query_id: Some(query_id),
        })
    }

    fn insert_into(&mut self, target: &str, query: &Query, sql: &str) -> Result<StatementResult> {
        let sink = self
            .catalog
            .sources
            .get(target)
            .cloned()
            .ok_or_else(|| format!("{target} does not exist."))?;
        if sink.read_only {
            return Err(format!("Cannot insert into read-only stream: {target}"));
        }
        if sink.kind == SourceKind::Table {
            return Err(format!(
                "INSERT INTO can only be used to insert into a stream. {target} is a table."
            ));
        }
        let plan = self.plan_query(query, false, target)?;
        let produced: Vec<Column> = plan
            .key_columns
            .iter()
            .chain(plan.value_columns.iter())
            .cloned()
            .collect();
        // Results may widen to the sink's types (INTEGER into DECIMAL), cast on the way.
        let compatible = produced.len() == sink.columns.len()
            && produced.iter().zip(&sink.columns).all(|(a, b)| {
                crate::functions::widens_to(&a.sql_type, &b.sql_type)
                    && a.kind == b.kind
                    && a.name == b.name
            });
        if !compatible {
            return Err(format!(
                "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                schema_of(&produced),
                schema_of(&sink.columns)
            ));
        }
        let query_id = self.next_query_id("INSERTQUERY");
        let mut topology = plan.topology;
        let sink_keys: Vec<&Column> = sink.key_columns().collect();
        let sink_values: Vec<&Column> = sink.value_columns().collect();
        for (projection, produced, wanted) in [
            (&mut topology.key_projection, &plan.key_columns, &sink_keys),
            (
                &mut topology.value_projection,
                &plan.value_columns,
                &sink_values,
            ),
        ] {
            for ((expr, column), target) in projection.iter_mut().zip(produced).zip(wanted) {
                if column.sql_type != target.sql_type {
                    *expr = CompiledExpr::Cast {
                        expr: Box::new(expr.clone()),
                        from: None,
                        to: target.sql_type.clone(),
                    };
                }
            }
        }
        topology.sink_topic = Some(sink.topic.clone());
        let sink_key_columns: Vec<Column> = sink.key_columns().cloned().collect();
        let sink_value_columns: Vec<Column> = sink.value_columns().cloned().collect();
        topology.sink_key =
            Some(self.serde(&sink.key_format, &sink.topic, Side::Key, &sink_key_columns)?);
        topology.sink_value = Some(self.serde(
            &sink.value_format,
            &sink.topic,
            Side::Value,
            &sink_value_columns,
        )?);
        let (changelog_topic, changelog_created) =
            self.changelog_topic(&topology, &query_id, sink.partitions)?;
        let persistent = PersistentQuery {
            id: query_id.clone(),
            sql: sql.to_string(),
            changelog_topic,
            changelog_created,
            sink: target.to_string(),
            sink_topic: sink.topic.clone(),
            sources: query_sources(query),
            source_topics: topology.topics(),
            topology: Arc::new(Mutex::new(topology)),
        };
        self.runtime.start(&persistent)?;
        self.queries.insert(query_id.clone(), persistent);
        Ok(StatementResult::Status {
            message: format!("Created query with ID {query_id}"),
            query_id: Some(query_id),
        })
    }

    fn insert_values(
        &mut self,
        target: &str,
        names: Option<&[String]>,
        values: &[Expr],
    ) -> Result<StatementResult> {
        let sink = self.catalog.sources.get(target).cloned().ok_or_else(|| {
            let mut message =
                format!("Cannot insert values into an unknown stream/table: `{target}`");
            // A name differing only in case: the quoting is likely what went wrong.
            if let Some(near) = self
                .catalog
                .sources
                .keys()
                .find(|name| name.eq_ignore_ascii_case(target))
            {
                if *near == near.to_ascii_uppercase() {
                    message.push_str(&format!(
                        "\nDid you mean {near}? Hint: try removing double quotes from the source name."
                    ));
                } else {
                    message.push_str(&format!(
                        "\nDid you mean \"{near}\"? Hint: wrap the source name in double quotes to make it case-sensitive."
                    ));
                }
            }
            message
        })?;
        if sink.read_only {
            return Err(format!(
                "Cannot insert values into read-only stream: {target}"
            ));
        }
        let record = self.values_record(&sink, names, values)?;
        self.cluster.produce(vec![record])?;
        Ok(StatementResult::Status {
            message: String::new(),
            query_id: None,
        })
    }

    /// The record `INSERT INTO target [(names)] VALUES (values)` writes.
    pub fn values_record(
        &self,
        sink: &Source,
        names: Option<&[String]>,
        values: &[Expr],
    ) -> Result<OutputRecord> {
        let all_names: Vec<String> = sink.columns.iter().map(|c| c.name.clone()).collect();
        let names: Vec<String> = match names {
            Some(names) => names.to_vec(),
            None => all_names.clone(),
        };
        if names.len() != values.len() {
            return Err(format!(
                "Failed to prepare statement: Expected number columns and values to match: {}, {}",
                names.len(),
                values.len()
            ));
        }
        if let Some(pseudo) = names
            .iter()
            .find(|n| *n != "ROWTIME" && PSEUDO_COLUMNS.iter().any(|(p, _)| p == n))
        {
            return Err(format!("Inserting into column `{pseudo}` is not allowed."));
        }
        let scope = Scope {
            columns: &[],
            qualifiers: &[],
            functions: &self.functions,
            column_sides: &[],
            sides: &[],
        };
        let mut row: BTreeMap<String, Value> = BTreeMap::new();
        let mut timestamp: Option<i64> = None;
        for (name, expr) in names.iter().zip(values) {
            let (compiled, value_type) = compile(expr, &scope)
                .map_err(|e| format!("Failed to prepare statement: {}", e.0))?;
            let value = crate::expr::eval_row(&compiled, &|_| Value::Null, &mut Vec::new())?;
            if name == "ROWTIME" {
                timestamp = value.as_i64();
                continue;
            }
            let column = sink
                .columns
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| format!("Column name {name} does not exist."))?;
            // Structs (also inside arrays and maps) take the column's fields by name.
            let value = match &value_type {
                Some(from) if crate::expr::has_struct(from) => {
                    crate::expr::cast_typed(&value, from, &column.sql_type)?
                }
                _ => value,
            };
            let coerced = crate::functions::widen(&value, &column.sql_type);
            let coerced = if coerced.is_null() || value_matches(&coerced, &column.sql_type) {
                coerced
            } else {
                crate::expr::cast_value(&coerced, &column.sql_type)?
            };
            row.insert(name.clone(), coerced);
        }
        let key_columns: Vec<Column> = sink.key_columns().cloned().collect();
        let value_columns: Vec<Column> = sink.value_columns().cloned().collect();
        let key: Vec<Value> = key_columns
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or(Value::Null))
            .collect();
        let value: Vec<Value> = value_columns
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or(Value::Null))
            .collect();
        let key_bytes = self
            .serde(&sink.key_format, &sink.topic, Side::Key, &key_columns)?
            .serialize(&key)
            .map_err(|e| e.0)?;
        let value_bytes = self
            .serde(&sink.value_format, &sink.topic, Side::Value, &value_columns)?
            .serialize(&value)
            .map_err(|e| e.0)?;
        let timestamp = timestamp.unwrap_or_else(now_millis);
        Ok(OutputRecord {
            topic: sink.topic.clone(),
            timestamp,
            key: key_bytes,
            value: value_bytes,
        })
    }

    fn drop_source(
        &mut self,
        kind: SourceKind,
        if_exists: bool,
        name: &str,
        delete_topic: bool,
    ) -> Result<StatementResult> {
        let Some(source) = self.catalog.sources.get(name).cloned() else {
            if if_exists {
                return Ok(StatementResult::Status {
                    message: format!("Source `{name}` does not exist."),
                    query_id: None,
                });
            }
            return Err(format!("{} {name} does not exist.", title(kind)));
        };
        if source.kind != kind {
            return Err(format!(
                "Incompatible data source type is {}, but statement was DROP {}",
                source.kind.name(),
                kind.name()
            ));
        }
        let readers: Vec<String> = self
            .queries
            .values()
            .filter(|q| {
                q.sources.iter().any(|s| s == name)
                    || (q.sink == name && source.writer.as_deref() != Some(q.id.as_str()))
            })
            .map(|q| q.id.clone())
            .collect();
        if !readers.is_empty() {
            return Err(format!(
                "Cannot drop {name}.\nThe following queries read from this source: [{}].\nThe following queries write into this source: [].\nYou need to terminate them before dropping {name}.",
                readers.join(", ")
            ));
        }
        if let Some(writer) = &source.writer {
            self.terminate(writer);
        }
        self.catalog.sources.remove(name);
        if delete_topic {
            if source.read_only {
                return Err(format!("Cannot delete topic for read-only source: {name}"));
            }
            self.cluster.delete_topic(&source.topic)?;
        }
        Ok(StatementResult::Status {
            message: format!("Source `{name}` (topic: {}) was dropped.", source.topic),
            query_id: None,
        })
    }

    /// The one SELECT statement `text` holds (variables substituted).
    pub(crate) fn parse_select(&self, text: &str) -> std::result::Result<Query, StatementError> {
        let mut parsed = self.parse(&self.substitute(text)?)?;
        if parsed.len() == 1 {
            if let Statement::Select(query) = parsed.remove(0).statement {
                return Ok(*query);
            }
        }
        Err(StatementError {
            message: "Expected a single SELECT statement".into(),
            statement: text.to_string(),
        })
    }

    /// Plans `SELECT ... EMIT CHANGES` for a client; `properties` (the request's) override the
    /// engine's for this query (`auto.offset.reset`).
    pub fn plan_push_query(
        &mut self,
        text: &str,
        properties: &BTreeMap<String, String>,
    ) -> std::result::Result<PushQuery, StatementError> {
        let fail = |message: String| StatementError {
            message,
            statement: text.to_string(),
        };
        let query = &self.parse_select(text)?;
        if !query.joins.is_empty() {
            return Err(fail("Push queries over joins are not supported by this engine yet: create a stream or table AS SELECT the join, and push-query that.".into()));
        }
        if query.emit.is_none() {
            return Err(fail("A pull query (a SELECT without EMIT CHANGES) is answered at once: use Engine::pull_query.".into()));
        }
        let plan = self.plan_query(query, true, "").map_err(fail)?;
        let source = self
            .catalog
            .sources
            .get(&query.from.name)
            .cloned()
            .ok_or_else(|| fail("source vanished".into()))?;
        let columns = plan
            .key_columns
            .iter()
            .chain(plan.value_columns.iter())
            .cloned()
            .collect();
        let setting = |key: &str| properties.get(key).or(self.config.properties.get(key));
        let from_beginning = setting("auto.offset.reset")
            .or(setting("ksql.streams.auto.offset.reset"))
            .is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
        Ok(PushQuery {
            topology: plan.topology,
            columns,
            source_topic: source.topic,
            from_beginning,
            limit: query.limit,
        })
    }

    fn timestamp_format(&self, pattern: Option<&str>) -> Result<Option<TimestampFormat>> {
        let Some(pattern) = pattern else {
            return Ok(None);
        };
        let function = self
            .functions
            .get("STRINGTOTIMESTAMP")
            .ok_or("STRINGTOTIMESTAMP is not available to parse timestamp_format")?;
        let parser = function
            .bind(&[SqlType::String, SqlType::String])
            .map_err(|e| e.0)?;
        Ok(Some(TimestampFormat {
            pattern: pattern.to_string(),
            parser,
        }))
    }

    fn plan_query(&self, query: &Query, push: bool, sink_name: &str) -> Result<QueryPlan> {
        match query.joins.len() {
            0 => {}
            _ if !crate::aggregate::plan::aggregates(query) => {
                return crate::join::plan::plan(self, query, push, sink_name)
            }
            _ => return Err("Aggregations over joins are not supported by this engine yet: create a stream AS SELECT the join, and aggregate that.".into()),
        }
        if crate::aggregate::plan::aggregates(query) {
            return crate::aggregate::plan::plan(self, query, push, sink_name);
        }
        if !push && query.emit == Some(Emit::Final) {
            return Err("EMIT FINAL is only available for windowed aggregations".into());
        }
        let source = self
            .catalog
            .sources
            .get(&query.from.name)
            .ok_or_else(|| format!("{} does not exist.", query.from.name))?;
        let query_scope = source.query_scope(query.from.alias.as_ref());
        let scope = query_scope.scope(&self.functions);
        let qualifiers = &query_scope.qualifiers;
        let compile_in = |clause: &str, expr: &Expr| compile_clause(&scope, clause, expr);
        let filter = compile_filter(&scope, query.filter.as_ref())?;
        let unqualified = |expr: &Expr| query_scope.unqualified(expr);
        // The projection, with names.
        struct Item {
            name: String,
            expr: CompiledExpr,
            sql_type: SqlType,
            /// The source key column this item passes through unchanged.
            source_key: Option<String>,
            ast: Option<Expr>,
        }
        let mut items: Vec<Item> = Vec::new();
        let mut generated = 0usize;
        let source_names: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
        // ksqlDB's generated names skip those the source or the projection already has.
        let mut next_generated = |items: &[Item]| {
            generated_name(&mut generated, |candidate| {
                items.iter().any(|i| i.name == candidate) || source_names.contains(&candidate)
            })
        };
        // A struct field's name, `_1`, `_2`... added while the source or the projection has it.
        let unique_name = |field: &str, items: &[Item]| {
            let taken =
                |name: &str| source_names.contains(&name) || items.iter().any(|i| i.name == name);
            if !taken(field) {
                return field.to_string();
            }
            (1..)
                .map(|n| format!("{field}_{n}"))
                .find(|candidate| !taken(candidate))
                .unwrap_or_default()
        };
        let key_names: Vec<String> = source.key_columns().map(|c| c.name.clone()).collect();
        let partitioned = !query.partition_by.is_empty();
        let mut has_star = false;
        for select in &query.select {
            match select {
                SelectItem::All | SelectItem::AllOf(_) => {
                    if let SelectItem::AllOf(q) = select {
                        if !qualifiers.contains(q) {
                            return Err(format!(
                                "'{q}' is not a valid stream/table name or alias."
                            ));
                        }
                    }
                    has_star = true;
                    // After PARTITION BY the old key columns follow the value columns, as in
                    // ksqlDB's repartitioned schema.
                    let mut order: Vec<usize> = (0..source.columns.len()).collect();
                    if partitioned {
                        order.sort_by_key(|&i| source.columns[i].kind == ColumnKind::Key);
                    }
                    // A push query's `*` over a windowed source shows the window after the keys.
                    let key_count = source.key_columns().count();
                    if push && source.key_window.is_some() {
                        let first_window = source.columns.len() + PSEUDO_COLUMNS.len();
                        let at = order
                            .iter()
                            .position(|&i| source.columns[i].kind != ColumnKind::Key)
                            .unwrap_or(order.len())
                            .min(key_count);
                        order.splice(at..at, [first_window, first_window + 1]);
                    }
                    for index in order {
                        if index >= source.columns.len() {
                            let (name, sql_type) = &crate::catalog::WINDOW_COLUMNS
                                [index - source.columns.len() - PSEUDO_COLUMNS.len()];
                            items.push(Item {
                                name: name.to_string(),
                                expr: CompiledExpr::Column(index),
                                sql_type: sql_type.clone(),
                                source_key: None,
                                ast: Some(Expr::Column {
                                    qualifier: None,
                                    name: name.to_string(),
                                }),
                            });
                            continue;
                        }
                        let column = &source.columns[index];
                        items.push(Item {
                            name: column.name.clone(),
                            expr: CompiledExpr::Column(index),
                            sql_type: column.sql_type.clone(),
                            source_key: (column.kind == ColumnKind::Key)
                                .then(|| column.name.clone()),
                            ast: Some(Expr::Column {
                                qualifier: None,
                                name: column.name.clone(),
                            }),
                        });
                    }
                }
                SelectItem::StructAll(expr) => {
                    let (compiled, sql_type) = compile_in("SELECT", expr)?;
                    let Some(SqlType::Struct(fields)) = sql_type else {
                        return Err(format!(
                            "Expected STRUCT type for {}->*, got: {}",
                            expr_text(expr),
                            sql_type.map_or("NULL".to_string(), |t| t.to_string())
                        ));
                    };
                    for (index, (field, field_type)) in fields.into_iter().enumerate() {
                        items.push(Item {
                            ast: Some(unqualified(&Expr::Field {
                                base: Box::new(expr.clone()),
                                field: field.clone(),
                            })),
                            name: field,
                            expr: CompiledExpr::Field {
                                base: Box::new(compiled.clone()),
                                index,
                            },
                            sql_type: field_type,
                            source_key: None,
                        });
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let (compiled, sql_type) = compile_in("SELECT", expr)?;
                    let Some(sql_type) = sql_type else {
                        return Err(format!("Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR). ({})", expr_text(expr)));
                    };
                    let name = match (alias, expr) {
                        (Some(alias), _) => alias.clone(),
                        (None, Expr::Column { name, .. }) => name.clone(),
                        (None, Expr::Field { field, .. }) => unique_name(field, &items),
                        (None, _) => next_generated(&items),
                    };
                    let reserved = PSEUDO_COLUMNS.iter().any(|(n, _)| *n == name)
                        || name == "WINDOWSTART"
                        || name == "WINDOWEND";
                    if !push && alias.is_none() && reserved {
                        return Err(format!("Reserved column name in select: `{name}`. Please remove or alias the column."));
                    }
                    if alias.is_some() && reserved {
                        return Err(format!("`{name}` is a reserved column name. You cannot use it as an alias for a column."));
                    }
                    let source_key = match expr {
                        Expr::Column { name, .. } if key_names.contains(name) => Some(name.clone()),
                        _ => None,
                    };
                    items.push(Item {
                        name,
                        expr: compiled,
                        sql_type,
                        source_key,
                        ast: Some(unqualified(expr)),
                    });
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for item in &items {
            if !seen.insert(item.name.clone()) {
                return Err(format!(
                    "Duplicate value columns found in schema: `{}` {}",
                    item.name, item.sql_type
                ));
            }
        }
        let mut key_columns = Vec::new();
        let mut key_projection = Vec::new();
        let mut key_items = std::collections::BTreeSet::new();
        if partitioned {
            let is_null = |e: &Expr| matches!(e, Expr::Literal(crate::sql::ast::Literal::Null));
            if query.partition_by.len() > 1 && query.partition_by.iter().any(is_null) {
                return Err("Cannot PARTITION BY multiple columns including NULL".into());
            }
            if !is_null(&query.partition_by[0]) {
                let mut missing = false;
                for partition_expr in &query.partition_by {
                    let (compiled, sql_type) = compile_in("PARTITION BY", partition_expr)
                        .map_err(|message| {
                            // A name the projection gives is not known before it.
                            match partition_expr {
                                Expr::Column { qualifier: None, name }
                                    if message.starts_with("PARTITION BY column")
                                        && items.iter().any(|i| &i.name == name) =>
                                {
                                    format!("{message} '{name}' must be a column in the source schema since PARTITION BY is applied on the input.")
                                }
                                _ => message,
                            }
                        })?;
                    let sql_type =
                        sql_type.ok_or("Cannot PARTITION BY multiple columns including NULL")?;
                    let wanted = unqualified(partition_expr);
                    let matching: Vec<usize> = (0..items.len())
                        .filter(|&i| items[i].ast.as_ref() == Some(&wanted))
                        .collect();
                    if matching.len() > 1 && !push {
                        let key_name = match &wanted {
                            Expr::Column { name, .. } => name.clone(),
                            _ => items[matching[0]].name.clone(),
                        };
                        let names: Vec<&str> =
                            matching.iter().map(|&i| items[i].name.as_str()).collect();
                        return Err(format!("The projection contains a key column (`{key_name}`) more than once, aliased as: {}.", names.join(" and ")));
                    }
                    let name = match (matching.first(), &wanted) {
                        (Some(&index), _) => items[index].name.clone(),
                        (None, _) if !has_star => {
                            missing = true;
                            continue;
                        }
                        (None, Expr::Column { name, .. }) => name.clone(),
                        (None, Expr::Field { field, .. }) => unique_name(field, &items),
                        (None, _) => next_generated(&items),
                    };
                    if let Some(&index) = matching.first() {
                        key_items.insert(index);
                    }
                    key_columns.push(Column::new(name, sql_type, ColumnKind::Key));
                    key_projection.push(compiled);
                }
                if missing && !push {
                    let qualifier = query
                        .from
                        .alias
                        .clone()
                        .unwrap_or_else(|| source.name.clone());
                    let shown: Vec<String> = query
                        .partition_by
                        .iter()
                        .map(|e| {
                            unqualified(e)
                                .map_columns(&|q, n| Expr::Column {
                                    qualifier: match q {
                                        Some(q) => Some(q.to_string()),
                                        None if source_names.contains(&n) => {
                                            Some(qualifier.clone())
                                        }
                                        None => None,
                                    },
                                    name: n.to_string(),
                                })
                                .to_string()
                        })
                        .collect();
                    let noun = if shown.len() == 1 {
                        "expression"
                    } else {
                        "expressions"
                    };
                    return Err(format!("The query used to build `{sink_name}` must include the partitioning {noun} {} in its projection (eg, SELECT {}...).", and_list(&shown), shown.join(", ")));
                }
            }
        } else {
            let mut missing = Vec::new();
            for key in &key_names {
                let uses: Vec<usize> = (0..items.len())
                    .filter(|&i| items[i].source_key.as_deref() == Some(key.as_str()))
                    .collect();
                if uses.len() > 1 && !push {
                    let names: Vec<&str> = uses.iter().map(|&i| items[i].name.as_str()).collect();
                    return Err(format!("The projection contains a key column (`{key}`) more than once, aliased as: {}.", names.join(" and ")));
                }
                if let Some(&index) = uses.first() {
                    key_items.insert(index);
                    key_columns.push(Column::new(
                        items[index].name.clone(),
                        items[index].sql_type.clone(),
                        ColumnKind::Key,
                    ));
                    key_projection.push(items[index].expr.clone());
                } else {
                    missing.push(key.clone());
                }
            }
            // ksqlDB names every key column when any is missing.
            if !missing.is_empty() && !push {
                let noun = if key_names.len() == 1 {
                    "column"
                } else {
                    "columns"
                };
                return Err(format!("The query used to build `{sink_name}` must include the key {noun} {} in its projection (eg, SELECT {}...).", and_list(&key_names), key_names.join(", ")));
            }
        }
        // A push query's rows are its projection, in order: no separate key.
        if push {
            key_columns.clear();
            key_projection.clear();
        }
        let mut value_columns = Vec::new();
        let mut value_projection = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            if key_items.contains(&index) && !push {
                continue;
            }
            value_columns.push(Column::new(item.name, item.sql_type, ColumnKind::Value));
            value_projection.push(item.expr);
        }
        if value_columns.is_empty() && !push {
            return Err("The projection contains no value columns.".into());
        }
        let mut topology = self.source_topology(source, filter, push, query.limit)?;
        topology.key_projection = key_projection;
        topology.value_projection = value_projection;
        topology.rekeyed = partitioned;
        Ok(QueryPlan {
            topology,
            key_columns,
            value_columns,
            produces_table: source.kind == SourceKind::Table,
        })
    }

    /// A topology reading `source` through `filter`, with no projection or sink yet.
    pub(crate) fn source_topology(
        &self,
        source: &Source,
        filter: Option<CompiledExpr>,
        push: bool,
        limit: Option<u64>,
    ) -> Result<StreamTopology> {
        let topology = StreamTopology {
            source: self.source_reader(source)?,
            sink_topic: None,
            filter,
            key_projection: Vec::new(),
            rekeyed: false,
            push,
            aggregation: None,
            joins: Vec::new(),
            passing: Default::default(),
            changelog_topic: None,
            materialized: None,
            sink_window: source.key_window,
            fail_on_invalid_timestamp: self
                .config
                .properties
                .get("ksql.timestamp.throw.on.invalid")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            failed: None,
            value_projection: Vec::new(),
            sink_key: None,
            sink_value: None,
            output_timestamp: OutputTimestamp::Input,
            limit,
            stats: Default::default(),
            errors: Vec::new(),
            changelog_deferred: false,
            changelog_timestamp: 0,
            spare_columns: Vec::new(),
        };
        Ok(topology)
    }
}

impl Engine {
    /// An aggregating query's changelog topic, created (compacted) when missing, and whether it
    /// was.
    fn changelog_topic(
        &self,
        topology: &StreamTopology,
        query_id: &str,
        partitions: i32,
    ) -> Result<(Option<String>, bool)> {
        if topology.aggregation.is_none() {
            return Ok((None, false));
        }
        let topic = format!(
            "_confluent-ksql-{}query_{query_id}-Aggregate-Aggregate-Materialize-changelog",
            self.config.service_id
        );
        let created = self.cluster.partitions(&topic)?.is_none();
        if created {
            self.cluster.create_compacted_topic(&topic, partitions)?;
        }
        Ok((Some(topic), created))
    }

    /// How a query reads `source`: its formats, columns and timestamps.
    pub(crate) fn source_reader(&self, source: &Source) -> Result<SourceReader> {
        let key_columns: Vec<Column> = source.key_columns().cloned().collect();
        let value_columns: Vec<Column> = source.value_columns().cloned().collect();
        let input_timestamp = match &source.timestamp {
            Some(ts) => InputTimestamp::Column {
                index: source
                    .columns
                    .iter()
                    .position(|c| c.name == ts.column)
                    .ok_or("timestamp column vanished")?,
                format: self.timestamp_format(ts.format.as_deref())?,
            },
            None => InputTimestamp::Record,
        };
        Ok(SourceReader {
            topic: source.topic.clone(),
            key: self.serde(&source.key_format, &source.topic, Side::Key, &key_columns)?,
            value: self.serde(
                &source.value_format,
                &source.topic,
                Side::Value,
                &value_columns,
            )?,
            key_count: key_columns.len(),
            value_count: value_columns.len(),
            input_timestamp,
            key_window: source.key_window,
            table: source.kind == SourceKind::Table,
        })
    }
}

/// The name of a projection item: its alias, a column's name, a struct field's name, or else
/// `generated()` (aggregate, join and pull queries).
pub(crate) fn item_name(
    alias: Option<&String>,
    expr: &Expr,
    generated: impl FnOnce() -> String,
) -> String {
    match (alias, expr) {
        (Some(alias), _) => alias.clone(),
        (None, Expr::Column { name, .. }) => name.clone(),
        (None, Expr::Field { field, .. }) => field.clone(),
        (None, _) => generated(),
    }
}

/// The next of ksqlDB's generated column names (`KSQL_COL_0`, `KSQL_COL_1`, ...) that is not
/// `taken`; `counter` counts the names tried.
pub(crate) fn generated_name(counter: &mut usize, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let candidate = format!("KSQL_COL_{counter}");
        *counter += 1;
        if !taken(&candidate) {
            return candidate;
        }
    }
}

/// Compiles an expression of a clause; ksqlDB names the clause an unknown column was met in.
pub(crate) fn compile_clause(
    scope: &Scope,
    clause: &str,
    expr: &Expr,
) -> Result<(CompiledExpr, Option<SqlType>)> {
    compile(expr, scope).map_err(|CompileError(m)| match m.strip_prefix("Column '") {
        Some(rest) => format!("{clause} column '{rest}"),
        // ksqlDB names the clause of other errors in WHERE.
        None if clause == "WHERE" => format!("Error in WHERE expression: {m}"),
        None => m,
    })
}

/// A query's WHERE clause, which must be boolean.
pub(crate) fn compile_filter(scope: &Scope, filter: Option<&Expr>) -> Result<Option<CompiledExpr>> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let (compiled, sql_type) = compile_clause(scope, "WHERE", filter)?;
    if let Some(t) = sql_type.filter(|t| *t != SqlType::Boolean) {
        return Err(format!(
            "Type error in WHERE expression: Should evaluate to boolean but is {} ({t}) instead.",
            expr_text(filter)
        ));
    }
    Ok(Some(compiled))
}

pub(crate) struct QueryPlan {
    pub topology: StreamTopology,
    pub key_columns: Vec<Column>,
    pub value_columns: Vec<Column>,
    /// The query aggregates or reads a table: its result is a table.
    pub produces_table: bool,
}

fn value_matches(value: &Value, sql_type: &SqlType) -> bool {
    matches!(
        (value, sql_type),
        (Value::Boolean(_), SqlType::Boolean)
            | (Value::Integer(_), SqlType::Integer)
            | (Value::BigInt(_), SqlType::BigInt)
            | (Value::Double(_), SqlType::Double)
            | (Value::Decimal { .. }, SqlType::Decimal { .. })
            | (Value::String(_), SqlType::String)
            | (Value::Bytes(_), SqlType::Bytes)
            | (Value::Date(_), SqlType::Date)
            | (Value::Time(_), SqlType::Time)
            | (Value::Timestamp(_), SqlType::Timestamp)
            | (Value::Array(_), SqlType::Array(_))
            | (Value::Map(_), SqlType::Map(..))
            | (Value::Struct(_), SqlType::Struct(_))
    )
}

fn schema_of(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                crate::catalog::quote_if_needed(&c.name),
                c.sql_type,
                if c.kind == ColumnKind::Key {
                    " KEY"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of the sources a query reads: FROM, then each JOIN.
fn query_sources(query: &Query) -> Vec<String> {
    std::iter::once(query.from.name.clone())
        .chain(query.joins.iter().map(|j| j.relation.name.clone()))
        .collect()
}

fn summary(query: &PersistentQuery) -> QuerySummary {
    QuerySummary {
        id: query.id.clone(),
        sql: query.sql.clone(),
        sinks: vec![query.sink.clone()],
        sink_topics: vec![query.sink_topic.clone()],
        state: "RUNNING".into(),
    }
}

fn title(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "Stream",
        SourceKind::Table => "Table",
    }
}

/// `WINDOW_SIZE` text (`10 SECONDS`, `1 minute`) in milliseconds.
fn window_size_millis(text: &str) -> Result<i64> {
    let invalid = || format!("Invalid WINDOW_SIZE property : {text}");
    let mut parts = text.split_whitespace();
    let amount: i64 = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    let unit = parts.next().ok_or_else(invalid)?.to_ascii_uppercase();
    let millis = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(invalid()),
    };
    Ok(amount.saturating_mul(millis))
}

/// `A`, `A and B`, `A, B and C`.
pub(crate) fn and_list(items: &[String]) -> String {
    word_list(items, "and")
}

/// `A`, `A or B`, `A, B or C`.
pub(crate) fn or_list(items: &[String]) -> String {
    word_list(items, "or")
}

/// Items as a sentence lists them: commas, then `conjunction` before the last.
fn word_list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

fn expr_text(expr: &Expr) -> String {
    expr.to_string()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn check_property_names(properties: &Properties) -> Result<()> {
    let unknown: Vec<&str> = properties
        .keys()
        .filter(|k| !SOURCE_PROPERTIES.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Invalid config variable(s) in the WITH clause: {}",
            unknown.join(",")
        ))
    }
}

fn int_property(properties: &Properties, key: &str) -> Result<Option<i64>> {
    match properties.get(key) {
        None => Ok(None),
        Some(value) => value
            .text()
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("Invalid value for property {key}: {}", value.text())),
    }
}

fn timestamp_property(
    properties: &Properties,
    columns: &[Column],
) -> Result<Option<TimestampColumn>> {
    let Some(column) = properties.get("TIMESTAMP") else {
        return Ok(None);
    };
    let name = column.text().trim_matches('`').to_string();
    let resolved = columns
        .iter()
        .find(|c| c.name == name)
        .or_else(|| columns.iter().find(|c| c.name.eq_ignore_ascii_case(&name)));
    let Some(found) = resolved else {
        return Err(format!(
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{}'",
            name.to_ascii_uppercase()
        ));
    };
    let format = properties.get("TIMESTAMP_FORMAT").map(PropertyValue::text);
    match (&found.sql_type, &format) {
        (SqlType::BigInt | SqlType::Timestamp, _) | (SqlType::String, Some(_)) => {}
        (SqlType::String, None) => return Err(format!("Timestamp column, {}, of type STRING requires a timestamp_format in the WITH clause", found.name)),
        (other, _) => return Err(format!("Timestamp column, `{}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. Got {other}", found.name)),
    }
    Ok(Some(TimestampColumn {
        column: found.name.clone(),
        format,
    }))
}

/// The properties SHOW PROPERTIES lists before any SET.
fn default_properties(service_id: &str) -> BTreeMap<String, String> {
    [
        ("ksql.service.id", service_id),
        ("ksql.persistence.default.format.key", "KAFKA"),
        ("ksql.persistence.wrap.single.values", "true"),
        ("ksql.streams.auto.offset.reset", "latest"),
        ("ksql.variable.substitution.enable", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
