//! An embedded Confluent-compatible Schema Registry: a Rust core ([`Registry`]) that keeps
//! its state in a compacted Kafka topic, and a thin HTTP layer ([`http::RegistryServer`]) that
//! speaks Confluent's REST API to confluent-kafka's `SchemaRegistryClient` and friends.
//!
//! # Where state lives, and how two registries agree
//!
//! State lives only in the `_schemas` topic (one partition, `cleanup.policy=compact`), as
//! Confluent's registry keeps it. Each registry reads the topic to its end before serving and
//! then follows it, applying every record to a [`state::State`] in log order. The state is a
//! deterministic function of the log, so every registry on the cluster, and every restart,
//! arrives at the same ids.
//!
//! Writes need no leader. A registry that registers a schema reads the log to its end, decides
//! the version and id on that state and appends a *claim* ("version 3 of subject s is id 7,
//! this schema"). Claims can race: two registries may claim version 3 at once. The log's
//! order settles it: a claim is accepted only if it still fits the state built from the
//! claims before it (its version is the subject's next, its id is unused or already this
//! schema's, the schema has no other id), so the first claim wins, the others are rejected
//! identically by every reader, and their writers, which wait until their own claim comes
//! back through the log, see the verdict and decide again on the newer state. A registry
//! serialises its own writes, so it never races itself.
//!
//! Compaction cannot change a verdict: claims have unique keys (writer instance + sequence),
//! so they are never compacted away or reordered; deletions and configuration have keys of
//! their own and never influence whether a claim is accepted. Versions and ids are never
//! reused, not even after a permanent deletion (which hides the version for good but keeps
//! the schema readable by id, so old data stays decodable).

pub mod avro;
pub mod http;
mod log;
pub mod record;
pub mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

pub use record::{Record, Reference};
pub use state::{State, VersionInfo, VersionSpec};

use log::KafkaLog;
use state::Registration;

/// How often a registration is decided again after losing a race to another registry before
/// the client gets an error (each lost race means another write went through).
const MAX_REGISTRATION_ATTEMPTS: usize = 100;

/// Everything that can go wrong, with Confluent's error codes (`error_code`) and HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        subject: String,
        version: VersionSpec,
    },
    #[error("Schema not found: {0}")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Version {version} of subject '{subject}' was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error("Version {version} of subject '{subject}' was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotFound(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level {0:?}. Valid values are NONE, BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE and FULL_TRANSITIVE")]
    InvalidCompatibility(String),
    #[error(
        "Invalid mode {0:?}. Valid values are READWRITE and READONLY (IMPORT is not supported)"
    )]
    InvalidMode(String),
    #[error("Operation not permitted: {0}")]
    NotPermitted(String),
    #[error("One or more references exist to the schema: {0}")]
    ReferenceExists(String),
    /// A request the API cannot take (malformed JSON, a missing field, a bad query value).
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("no such endpoint: {0}")]
    NoSuchEndpoint(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The `_schemas` topic could not be read or written.
    #[error("Error in the backend data store: {0}")]
    Store(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A version as it appears in error messages ("latest" or a number).
impl std::fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Number(n) => write!(f, "{n}"),
        }
    }
}

impl RegistryError {
    /// Confluent's `error_code` for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectLevelNotFound(_) => 40408,
            RegistryError::Incompatible(_) => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibility(_) => 42203,
            RegistryError::InvalidMode(_) => 42204,
            RegistryError::NotPermitted(_) => 42205,
            RegistryError::ReferenceExists(_) => 42206,
            RegistryError::BadRequest(_) => 400,
            RegistryError::TooLarge(_) => 413,
            RegistryError::NoSuchEndpoint(_) => 404,
            RegistryError::MethodNotAllowed(_) => 405,
            RegistryError::Store(_) | RegistryError::Config(_) => 50001,
        }
    }

    /// The HTTP status that carries it.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            code if code >= 10_000 => (code / 100) as u16,
            code => code as u16,
        }
    }
}

/// Compatibility levels, as Avro's schema-resolution rules check them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibility(text.to_string())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// New schemas must read data written with earlier ones.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Earlier schemas must read data written with new ones.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Checked against every live version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

/// The registry's mode. IMPORT (registering with given ids) is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    ReadWrite,
    ReadOnly,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        match text.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            _ => Err(RegistryError::InvalidMode(text.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
        }
    }
}

/// How to run a registry on Kafka.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The topic holding the registry's state (Confluent's `kafkastore.topic`).
    pub topic: String,
    /// librdkafka properties for the registry's producer and consumer, passed through.
    pub config: Vec<(String, String)>,
    /// How long a Kafka request may take before the registry reports an error.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            topic: "_schemas".to_string(),
            config: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Counters for `stats()`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryStats {
    pub schemas: usize,
    pub subjects: usize,
    pub max_id: u32,
    /// Claims of any registry that lost a race (each was decided again).
    pub claims_rejected: u64,
    /// Registrations this registry wrote (new versions).
    pub registered: u64,
    /// Records of the log applied so far (the next offset to read), None in memory.
    pub log_position: Option<i64>,
    pub topic: Option<String>,
    pub bootstrap: Option<String>,
}

enum Backend {
    /// State only in this process: for tests and in-process users without Kafka.
    Memory,
    Kafka(KafkaLog),
}

/// The registry's core: state, the log it comes from, and the write protocol. Thread-safe;
/// every method blocks (the HTTP layer calls them from blocking tasks).
pub struct Registry {
    state: Arc<RwLock<State>>,
    backend: Backend,
    /// Serialises this registry's writes (it never races itself); holds the claim sequence.
    writer: Mutex<u64>,
    /// Makes this registry's claim keys unique on the cluster.
    instance: String,
    registered: AtomicU64,
}

/// A process-unique, run-unique instance name, without a random-number crate: std's hasher
/// keys are random per process.
fn instance_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

impl Registry {
    /// A registry whose state lives only in this process.
    pub fn in_memory() -> Self {
        Registry {
            state: Arc::new(RwLock::new(State::default())),
            backend: Backend::Memory,
            writer: Mutex::new(0),
            instance: instance_name(),
            registered: AtomicU64::new(0),
        }
    }

    /// A registry on the Kafka cluster at `bootstrap`: creates the topic if needed (through
    /// the admin API, or by producing to it where the cluster cannot create topics on
    /// request, like librdkafka's mock cluster), reads it to its end, then follows it.
    pub fn on_kafka(bootstrap: &str, options: RegistryOptions) -> Result<Self, RegistryError> {
        if options.topic.is_empty() {
            return Err(RegistryError::Config("the topic name is empty".into()));
        }
        let state = Arc::new(RwLock::new(State::default()));
        let log = KafkaLog::open(bootstrap, &options, state.clone())?;
        log.catch_up()?;
        Ok(Registry {
            state,
            backend: Backend::Kafka(log),
            writer: Mutex::new(0),
            instance: instance_name(),
            registered: AtomicU64::new(0),
        })
    }

    /// The current state, for reading (hold it briefly: the log follower waits for it).
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the log up to its current end (a no-op in memory).
    pub fn catch_up(&self) -> Result<(), RegistryError> {
        match &self.backend {
            Backend::Memory => Ok(()),
            Backend::Kafka(log) => log.catch_up(),
        }
    }

    /// Answers from the state; if the answer is "not found", reads the log to its end and
    /// asks again, so a client that wrote through another registry a moment ago is answered.
    pub fn read<T>(
        &self,
        query: impl Fn(&State) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        // The first answer is taken in a statement of its own: a guard made in a `match`
        // scrutinee lives to the end of the match, and the follower, waiting for the write
        // lock behind it, could not apply what `catch_up` waits for.
        let first = query(&self.state());
        match first {
            Err(
                RegistryError::SubjectNotFound(_)
                | RegistryError::VersionNotFound { .. }
                | RegistryError::SchemaNotFound(_),
            ) if matches!(self.backend, Backend::Kafka(_)) => {
                self.catch_up()?;
                query(&self.state())
            }
            other => other,
        }
    }

    fn append(&self, records: &[Record]) -> Result<(), RegistryError> {
        match &self.backend {
            Backend::Memory => {
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                for record in records {
                    state.apply(record);
                }
                Ok(())
            }
            Backend::Kafka(log) => log.append(records),
        }
    }

    /// Registers `schema` (Avro JSON) under `subject`; returns `(id, version)`. The same
    /// schema gets the same id in every subject.
    pub fn register(
        &self,
        subject: &str,
        schema: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<(u32, u32), RegistryError> {
        let mut sequence = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..MAX_REGISTRATION_ATTEMPTS {
            self.catch_up()?;
            *sequence += 1;
            let claim = format!("{}-{}", self.instance, *sequence);
            let registration = self
                .state()
                .prepare_registration(claim, subject, schema, references, normalize)?;
            let record = match registration {
                Registration::Existing { id, version } => return Ok((id, version)),
                Registration::Claim(record) => record,
            };
            let Record::Claim { schema: text, .. } = &record else {
                unreachable!("prepare_registration only makes claims")
            };
            let text = text.clone();
            self.append(std::slice::from_ref(&record))?;
            if let Some((version, id)) = self.state().registered(subject, &text, references) {
                self.registered.fetch_add(1, Ordering::Relaxed);
                return Ok((id, version));
            }
            // Another registry's claim came first: decide again on the newer state.
        }
        Err(RegistryError::Store(format!(
            "could not register under subject {subject:?}: {MAX_REGISTRATION_ATTEMPTS} attempts \
             lost to concurrent writes"
        )))
    }

    /// Writes the records `prepare` decides on the state read to its end; returns its answer.
    fn write<T>(
        &self,
        prepare: impl Fn(&State) -> Result<(Vec<Record>, T), RegistryError>,
    ) -> Result<T, RegistryError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.catch_up()?;
        let (records, answer) = prepare(&self.state())?;
        if !records.is_empty() {
            self.append(&records)?;
        }
        Ok(answer)
    }

    /// Deletes a subject's versions (soft, or permanently after a soft delete); returns them.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        self.write(|state| state.prepare_subject_deletion(subject, permanent))
    }

    /// Deletes one version (soft, or permanently after a soft delete); returns its number.
    pub fn delete_version(
        &self,
        subject: &str,
        version: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.write(|state| {
            state
                .prepare_version_deletion(subject, version, permanent)
                .map(|(record, n)| (vec![record], n))
        })
    }

    /// Sets the compatibility level of `subject`, or the global one.
    pub fn set_level(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        self.write(|_| {
            let record = Record::Config {
                subject: subject.map(str::to_string),
                level: Some(level),
            };
            Ok((vec![record], ()))
        })
    }

    /// Clears a subject's level (back to the global one) or resets the global level to
    /// BACKWARD; returns the level that was in force.
    pub fn clear_level(&self, subject: Option<&str>) -> Result<Compatibility, RegistryError> {
        self.write(|state| {
            let previous = state.level(subject, false)?;
            let record = Record::Config {
                subject: subject.map(str::to_string),
                level: None,
            };
            Ok((vec![record], previous))
        })
    }

    /// Sets the mode of `subject`, or the global one.
    pub fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<(), RegistryError> {
        self.write(|_| {
            let record = Record::Mode {
                subject: subject.map(str::to_string),
                mode: Some(mode),
            };
            Ok((vec![record], ()))
        })
    }

    pub fn stats(&self) -> RegistryStats {
        let (log_position, topic, bootstrap) = match &self.backend {
            Backend::Memory => (None, None, None),
            Backend::Kafka(log) => (
                Some(log.position()),
                Some(log.topic().to_string()),
                Some(log.bootstrap().to_string()),
            ),
        };
        let state = self.state();
        RegistryStats {
            schemas: state.schema_count(),
            subjects: state.subject_count(),
            max_id: state.max_id(),
            claims_rejected: state.claims_rejected(),
            registered: self.registered.load(Ordering::Relaxed),
            log_position,
            topic,
            bootstrap,
        }
    }
}

#[cfg(test)]
mod tests;
