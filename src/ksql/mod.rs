//! A ksqlDB (and KSQL 5.x) REST client: statements, streaming queries into Arrow, inserts.
//!
//! One async reqwest client runs on a small tokio runtime owned by [`KsqlClient`]; callers
//! use blocking methods that wake every [`POLL`] to ask an `interrupt` callback whether to
//! give up (the Python layer checks for Ctrl-C there), so no call can hang past its timeout.

pub mod parse;
pub mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use self::parse::{classify, Element, LineSplitter, ValueSplitter};
use self::types::{header_schema, infer_schema, RowDecoder};
use crate::formats::FormatError;

/// How often blocking calls wake to check for an interrupt.
pub const POLL: Duration = Duration::from_millis(200);

/// How many already-received bytes one read takes at most.
const READ_AHEAD_BYTES: usize = 1 << 20;

/// How many body chunks the reader task may receive ahead of the parser.
const READ_AHEAD_CHUNKS: usize = 256;

/// Everything that can go wrong talking to ksqlDB. Each variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum KsqlError {
    /// The server answered with an error status (or a `currentStatus` of ERROR).
    #[error("{endpoint} answered HTTP {status}{}: {message}{}", code_text(*.error_code), statement_suffix(.statement_text))]
    Server {
        endpoint: String,
        status: u16,
        error_code: Option<i64>,
        message: String,
        statement_text: Option<String>,
        raw: String,
    },
    /// The server reported an error inside a result stream that had started fine.
    #[error("{endpoint}: the server ended the result stream with an error{}: {message}", code_text(*.error_code))]
    Stream {
        endpoint: String,
        error_code: Option<i64>,
        message: String,
        statement_text: Option<String>,
        raw: String,
    },
    /// Inserted rows the server rejected (by their position in the request).
    #[error("{endpoint}: {} of {total} rows were rejected; first: row {first_seq}{}: {message}", .failed, code_text(*.error_code))]
    Insert {
        endpoint: String,
        total: usize,
        failed: usize,
        first_seq: i64,
        error_code: Option<i64>,
        message: String,
        raw: String,
    },
    /// The server could not be reached, or did not answer in time.
    #[error("{endpoint}: {message}")]
    Transport {
        endpoint: String,
        message: String,
        timed_out: bool,
    },
    /// The server answered with something that is not the ksqlDB protocol.
    #[error("{endpoint}: unexpected response: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("invalid ksqlDB client configuration: {0}")]
    Config(String),
    #[error("{endpoint}: {source}")]
    Format {
        endpoint: String,
        #[source]
        source: FormatError,
    },
    #[error("interrupted")]
    Interrupted,
}

fn code_text(code: Option<i64>) -> String {
    code.map(|c| format!(" (error code {c})"))
        .unwrap_or_default()
}

fn statement_suffix(statement: &Option<String>) -> String {
    statement
        .as_ref()
        .map(|s| format!(" [statement: {}]", s.trim()))
        .unwrap_or_default()
}

impl KsqlError {
    /// The ksqlDB error code, when the server gave one.
    pub fn error_code(&self) -> Option<i64> {
        match self {
            KsqlError::Server { error_code, .. }
            | KsqlError::Stream { error_code, .. }
            | KsqlError::Insert { error_code, .. } => *error_code,
            _ => None,
        }
    }

    /// What kind of failure this is, from the HTTP status and ksqlDB's error code (its
    /// `Errors` class: the code is the HTTP status times 100, plus a detail).
    pub fn kind(&self) -> ErrorKind {
        match self {
            KsqlError::Server {
                status, error_code, ..
            } => ErrorKind::from_status_and_code(*status, *error_code),
            KsqlError::Stream { .. } => ErrorKind::Stream,
            KsqlError::Insert { .. } => ErrorKind::Rejected,
            KsqlError::Transport {
                timed_out: true, ..
            } => ErrorKind::Timeout,
            KsqlError::Transport { .. } => ErrorKind::Connection,
            KsqlError::Protocol { .. } => ErrorKind::Protocol,
            KsqlError::Config(_) => ErrorKind::Config,
            KsqlError::Format { .. } => ErrorKind::Format,
            KsqlError::Interrupted => ErrorKind::Interrupted,
        }
    }
}

/// The classes of ksqlDB failures callers handle differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The statement is invalid or failed (error code 40001): a user's mistake to fix.
    Statement,
    /// A statement sent to the wrong endpoint (40002), e.g. a SELECT through `/ksql`.
    WrongEndpoint,
    /// Any other rejected request (HTTP 400/4xx, codes 400xx, e.g. too many push queries).
    BadRequest,
    /// Authentication or authorization failed (HTTP 401/403, codes 401xx/403xx).
    Auth,
    /// No such resource (HTTP 404, codes 404xx), e.g. a path the server does not serve.
    NotFound,
    /// Too many requests (HTTP 429, codes 429xx): retry later.
    RateLimited,
    /// The server is not ready, catching up or shutting down (HTTP 503, codes 503xx).
    NotReady,
    /// The server failed (HTTP 5xx, codes 500xx), or answered an unexpected status.
    Server,
    /// An error reported inside a result stream that had started fine.
    Stream,
    /// Inserted rows the server rejected.
    Rejected,
    /// The server could not be reached, or the connection broke.
    Connection,
    /// The server did not answer in time.
    Timeout,
    /// The answer is not the ksqlDB protocol.
    Protocol,
    /// The client's configuration or arguments are invalid.
    Config,
    /// Result rows could not be decoded into the result's schema.
    Format,
    /// The caller asked to stop (Ctrl-C).
    Interrupted,
}

impl ErrorKind {
    /// Classifies an error answer. The error code is more specific than the status when
    /// the server gave one; old servers answered some failures with 200 and no code.
    pub fn from_status_and_code(status: u16, error_code: Option<i64>) -> ErrorKind {
        // ksqlDB's codes are the HTTP status times 100 plus a detail (40001 is a 400).
        let code_status = error_code
            .filter(|c| (10_000..60_000).contains(c))
            .map(|c| (c / 100) as u16);
        match (error_code, code_status.unwrap_or(status)) {
            (Some(40001), _) => ErrorKind::Statement,
            (Some(40002), _) => ErrorKind::WrongEndpoint,
            (_, 401 | 403) => ErrorKind::Auth,
            (_, 404) => ErrorKind::NotFound,
            (_, 429) => ErrorKind::RateLimited,
            (_, 503) => ErrorKind::NotReady,
            (_, 400..=499) => ErrorKind::BadRequest,
            // 200 with a failed command status: the statement failed.
            (_, 200..=299) => ErrorKind::Statement,
            _ => ErrorKind::Server,
        }
    }

    /// A short snake_case name, e.g. `"not_found"` (the Python exception's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Statement => "statement",
            ErrorKind::WrongEndpoint => "wrong_endpoint",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::NotReady => "not_ready",
            ErrorKind::Server => "server",
            ErrorKind::Stream => "stream",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Config => "config",
            ErrorKind::Format => "format",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

/// How to authenticate.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// HTTP basic auth, e.g. a Confluent Cloud API key and secret.
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's base URL, e.g. `http://localhost:8088`.
    pub url: String,
    pub auth: Auth,
    /// Verify the server's TLS certificate (turn off only for tests).
    pub verify: bool,
    /// Extra trusted CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its PKCS#8 private key (PEM).
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub connect_timeout: Duration,
    /// Whole-request timeout for non-streaming calls; for streams, the time to the headers.
    pub timeout: Duration,
    /// Speak HTTP/2 with prior knowledge on `http://` to `/query-stream` and `/inserts-stream`.
    pub http2: bool,
    /// Retries of requests the server answers with 503 ("not ready").
    pub retries: u32,
    pub retry_backoff: Duration,
}

impl ClientOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            auth: Auth::None,
            verify: true,
            ca_pem: None,
            client_cert_pem: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            http2: false,
            retries: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// Which streaming query endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryEndpoint {
    /// `POST /query` (HTTP/1.1 chunked; works with KSQL 5.x and ksqlDB).
    Query,
    /// `POST /query-stream` with the delimited content type.
    QueryStream,
    /// `POST /query-stream` with `application/json`.
    QueryStreamJson,
}

impl QueryEndpoint {
    fn path(self) -> &'static str {
        match self {
            QueryEndpoint::Query => "/query",
            QueryEndpoint::QueryStream | QueryEndpoint::QueryStreamJson => "/query-stream",
        }
    }
}

/// One acknowledgement of an inserted row.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertAck {
    pub seq: i64,
    pub ok: bool,
    pub error_code: Option<i64>,
    pub message: Option<String>,
    /// The ack's JSON text as received.
    pub raw: String,
}

type Interrupt<'a> = &'a mut dyn FnMut() -> bool;

/// A ksqlDB REST client. Cheap to clone (shares connections and the runtime).
#[derive(Clone)]
pub struct KsqlClient {
    base: String,
    options: Arc<ClientOptions>,
    runtime: Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
    /// HTTP/2 prior-knowledge client for the streaming endpoints (when asked for).
    http2: Option<reqwest::Client>,
    /// Marks the shared HTTP clients as in use; the last clone to go releases them.
    _pool_users: Arc<PoolUsers>,
}

const KSQL_CONTENT_TYPE: &str = "application/vnd.ksql.v1+json; charset=utf-8";
const KSQL_ACCEPT: &str = "application/vnd.ksql.v1+json, application/json;q=0.9";
const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

impl KsqlClient {
    pub fn new(options: ClientOptions) -> Result<Self, KsqlError> {
        let base = options.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(KsqlError::Config(format!(
                "the server URL must start with http:// or https://, got {:?}",
                options.url
            )));
        }
        let mut users = Vec::new();
        let (http, user) = shared_http(&options, false)?;
        users.push(user);
        let http2 = if options.http2 {
            let (http2, user) = shared_http(&options, true)?;
            users.push(user);
            Some(http2)
        } else {
            None
        };
        Ok(KsqlClient {
            base,
            options: Arc::new(options),
            runtime: shared_runtime()?,
            http,
            http2,
            _pool_users: Arc::new(PoolUsers(users)),
        })
    }

    pub(crate) fn build_http(
        options: &ClientOptions,
        prior_knowledge: bool,
    ) -> Result<reqwest::Client, KsqlError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tls_danger_accept_invalid_certs(!options.verify);
        builder = if prior_knowledge {
            builder.http2_prior_knowledge()
        } else if options.url.starts_with("http://") {
            builder.http1_only()
        } else {
            builder // https: ALPN picks HTTP/2 where the server offers it.
        };
        if let Some(pem) = &options.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                KsqlError::Config(format!("the CA file is not PEM certificates: {e}"))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &options.client_cert_pem {
            let identity = reqwest::Identity::from_pkcs8_pem(cert, key).map_err(|e| {
                KsqlError::Config(format!(
                    "the client certificate and key must be PEM (the key PKCS#8): {e}"
                ))
            })?;
            builder = builder.identity(identity);
        }
        builder
            .build()
            .map_err(|e| KsqlError::Config(format!("cannot build the HTTP client: {e}")))
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Runs a future to completion, waking every [`POLL`] to check `interrupt`. Futures that
    /// touch tokio's timer must be created inside it (`async { ... }` defers that).
    fn block_on<F: Future>(
        &self,
        future: F,
        interrupt: Interrupt<'_>,
    ) -> Result<F::Output, KsqlError> {
        let mut future = Box::pin(future);
        loop {
            match self
                .runtime
                .block_on(async { tokio::time::timeout(POLL, future.as_mut()).await })
            {
                Ok(output) => return Ok(output),
                Err(_) if interrupt() => return Err(KsqlError::Interrupted),
                Err(_) => {}
            }
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        accept: &str,
        use_http2: bool,
    ) -> reqwest::RequestBuilder {
        let http = match (&self.http2, use_http2) {
            (Some(h2), true) => h2,
            _ => &self.http,
        };
        let mut request = http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, accept);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, KSQL_CONTENT_TYPE)
                .body(body);
        }
        match &self.options.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }

    /// Sends a request; retries 503 answers; returns the response once its headers arrived
    /// (its status may be an error: callers read the body to report it).
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        accept: &str,
        use_http2: bool,
        interrupt: Interrupt<'_>,
    ) -> Result<reqwest::Response, KsqlError> {
        let mut attempt = 0;
        loop {
            let request = self.request(method.clone(), path, body.clone(), accept, use_http2);
            let timeout = self.options.timeout;
            let sent = self.block_on(
                async { tokio::time::timeout(timeout, request.send()).await },
                interrupt,
            )?;
            let response = match sent {
                Err(_) => {
                    return Err(KsqlError::Transport {
                        endpoint: self.endpoint(path),
                        message: format!("no answer within {:.1} s", timeout.as_secs_f64()),
                        timed_out: true,
                    })
                }
                Ok(Err(e)) => return Err(self.transport_error(path, e)),
                Ok(Ok(response)) => response,
            };
            if response.status().as_u16() == 503 && attempt < self.options.retries {
                attempt += 1;
                let backoff = self.options.retry_backoff * attempt;
                self.block_on(async { tokio::time::sleep(backoff).await }, interrupt)?;
                continue;
            }
            return Ok(response);
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn transport_error(&self, path: &str, error: reqwest::Error) -> KsqlError {
        // The innermost cause (e.g. "Connection refused") is what users can act on.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        KsqlError::Transport {
            endpoint: self.endpoint(path),
            timed_out: error.is_timeout(),
            message,
        }
    }

    /// Reads a whole (non-streaming) body within the request timeout.
    fn read_body(
        &self,
        path: &str,
        response: reqwest::Response,
        interrupt: Interrupt<'_>,
    ) -> Result<String, KsqlError> {
        let timeout = self.options.timeout;
        match self.block_on(
            async { tokio::time::timeout(timeout, response.text()).await },
            interrupt,
        )? {
            Err(_) => Err(KsqlError::Transport {
                endpoint: self.endpoint(path),
                message: format!(
                    "the response body did not arrive within {:.1} s",
                    timeout.as_secs_f64()
                ),
                timed_out: true,
            }),
            Ok(Err(e)) => Err(self.transport_error(path, e)),
            Ok(Ok(text)) => Ok(text),
        }
    }

    /// The error a non-2xx answer stands for.
    fn server_error(&self, path: &str, status: u16, body: String) -> KsqlError {
        #[derive(Deserialize)]
        struct ErrorBody {
            #[serde(default)]
            error_code: Option<i64>,
            #[serde(default)]
            message: Option<String>,
            #[serde(rename = "statementText", default)]
            statement_text: Option<String>,
        }
        let parsed = serde_json::from_str::<ErrorBody>(&body).ok();
        let (error_code, message, statement_text) = match parsed {
            Some(e) => (
                e.error_code,
                e.message.unwrap_or_else(|| body.clone()),
                e.statement_text,
            ),
            None => (None, truncate(&body, 500), None),
        };
        KsqlError::Server {
            endpoint: self.endpoint(path),
            status,
            error_code,
            message,
            statement_text,
            raw: body,
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        interrupt: Interrupt<'_>,
    ) -> Result<String, KsqlError> {
        let response = self.send(method, path, body, KSQL_ACCEPT, false, interrupt)?;
        let status = response.status().as_u16();
        let text = self.read_body(path, response, interrupt)?;
        if !(200..300).contains(&status) {
            return Err(self.server_error(path, status, text));
        }
        Ok(text)
    }

    /// `POST /ksql`: runs statements; returns the entity list's JSON text.
    pub fn ksql(
        &self,
        statements: &str,
        streams_properties: &Map<String, Value>,
        session_variables: &Map<String, Value>,
        command_sequence_number: Option<i64>,
        interrupt: Interrupt<'_>,
    ) -> Result<String, KsqlError> {
        let mut body = Map::new();
        body.insert("ksql".into(), Value::String(statements.to_string()));
        if !streams_properties.is_empty() {
            body.insert(
                "streamsProperties".into(),
                Value::Object(streams_properties.clone()),
            );
        }
        if !session_variables.is_empty() {
            body.insert(
                "sessionVariables".into(),
                Value::Object(session_variables.clone()),
            );
        }
        if let Some(n) = command_sequence_number {
            body.insert("commandSequenceNumber".into(), Value::from(n));
        }
        let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON map serializes");
        let text = self.call(reqwest::Method::POST, "/ksql", Some(body), interrupt)?;
        // Old servers answered some failures with 200 and a currentStatus of ERROR.
        if let Ok(Value::Array(entities)) = serde_json::from_str::<Value>(&text) {
            for entity in &entities {
                let failed = entity.get("@type").and_then(Value::as_str) == Some("currentStatus")
                    && entity
                        .pointer("/commandStatus/status")
                        .and_then(Value::as_str)
                        == Some("ERROR");
                if failed {
                    let message = entity
                        .pointer("/commandStatus/message")
                        .and_then(Value::as_str)
                        .unwrap_or("the command failed")
                        .to_string();
                    return Err(KsqlError::Server {
                        endpoint: self.endpoint("/ksql"),
                        status: 200,
                        error_code: None,
                        message,
                        statement_text: entity
                            .get("statementText")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        raw: text,
                    });
                }
            }
        } else {
            return Err(KsqlError::Protocol {
                endpoint: self.endpoint("/ksql"),
                message: format!(
                    "expected a JSON array of entities, got {}",
                    truncate(&text, 200)
                ),
            });
        }
        Ok(text)
    }

    /// `GET <path>` (`/info`, `/healthcheck`, `/clusterStatus`, `/status/<id>`): JSON text.
    pub fn get(&self, path: &str, interrupt: Interrupt<'_>) -> Result<String, KsqlError> {
        self.call(reqwest::Method::GET, path, None, interrupt)
    }

    /// `POST /ksql/terminate`: terminates the cluster, deleting the listed topics too.
    pub fn terminate(
        &self,
        delete_topics: &[String],
        interrupt: Interrupt<'_>,
    ) -> Result<String, KsqlError> {
        let body = serde_json::to_vec(&serde_json::json!({ "deleteTopicList": delete_topics }))
            .expect("JSON serializes");
        self.call(
            reqwest::Method::POST,
            "/ksql/terminate",
            Some(body),
            interrupt,
        )
    }

    /// `POST /close-query`: stops a push query on the server.
    pub fn close_query(&self, query_id: &str, interrupt: Interrupt<'_>) -> Result<(), KsqlError> {
        let body = serde_json::to_vec(&serde_json::json!({ "queryId": query_id }))
            .expect("JSON serializes");
        let use_http2 = self.http2.is_some();
        let response = self.send(
            reqwest::Method::POST,
            "/close-query",
            Some(body),
            KSQL_ACCEPT,
            use_http2,
            interrupt,
        )?;
        let status = response.status().as_u16();
        let text = self.read_body("/close-query", response, interrupt)?;
        if !(200..300).contains(&status) {
            return Err(self.server_error("/close-query", status, text));
        }
        Ok(())
    }

    /// Starts a streaming query. The returned stream has not read anything yet.
    pub fn query(
        &self,
        sql: &str,
        properties: &Map<String, Value>,
        session_variables: &Map<String, Value>,
        endpoint: QueryEndpoint,
        interrupt: Interrupt<'_>,
    ) -> Result<QueryStream, KsqlError> {
        let mut body = Map::new();
        let (accept, use_http2) = match endpoint {
            QueryEndpoint::Query => {
                body.insert("ksql".into(), Value::String(sql.to_string()));
                body.insert(
                    "streamsProperties".into(),
                    Value::Object(properties.clone()),
                );
                (KSQL_ACCEPT, false)
            }
            QueryEndpoint::QueryStream | QueryEndpoint::QueryStreamJson => {
                body.insert("sql".into(), Value::String(sql.to_string()));
                body.insert("properties".into(), Value::Object(properties.clone()));
                let accept = if endpoint == QueryEndpoint::QueryStream {
                    DELIMITED
                } else {
                    "application/json"
                };
                (accept, true)
            }
        };
        if !session_variables.is_empty() {
            body.insert(
                "sessionVariables".into(),
                Value::Object(session_variables.clone()),
            );
        }
        let body = serde_json::to_vec(&Value::Object(body)).expect("a JSON map serializes");
        let path = endpoint.path();
        let response = self.send(
            reqwest::Method::POST,
            path,
            Some(body),
            accept,
            use_http2,
            interrupt,
        )?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = self.read_body(path, response, interrupt)?;
            let mut error = self.server_error(path, status, text);
            if let KsqlError::Server { statement_text, .. } = &mut error {
                statement_text.get_or_insert_with(|| sql.to_string());
            }
            return Err(error);
        }
        Ok(QueryStream {
            client: self.clone(),
            endpoint,
            sql: sql.to_string(),
            body: Some(BodyReader::spawn(&self.runtime, response)),
            splitter: ValueSplitter::new(),
            lines: None,
            query_id: None,
            decoder: None,
            headerless_rows: Vec::new(),
            header_seen: false,
            final_message: None,
            pending_error: None,
            ended: false,
            body_complete: false,
            rows: 0,
            tombstones: 0,
            limit: None,
            last_row_at: Instant::now(),
        })
    }

    /// `POST /inserts-stream`: inserts rows (JSON object texts) into a stream; returns the
    /// acks in row order (the server may send them out of order). With `fail_on_rejected`,
    /// rows the server rejected make this an [`KsqlError::Insert`].
    pub fn insert(
        &self,
        target: &str,
        rows: &[String],
        fail_on_rejected: bool,
        interrupt: Interrupt<'_>,
    ) -> Result<Vec<InsertAck>, KsqlError> {
        let path = "/inserts-stream";
        let mut body =
            serde_json::to_vec(&serde_json::json!({ "target": target })).expect("JSON serializes");
        for row in rows {
            body.push(b'\n');
            body.extend_from_slice(row.as_bytes());
        }
        body.push(b'\n');
        let response = self.send(
            reqwest::Method::POST,
            path,
            Some(body),
            DELIMITED,
            true,
            interrupt,
        )?;
        let status = response.status().as_u16();
        let text = self.read_body(path, response, interrupt)?;
        if !(200..300).contains(&status) {
            return Err(self.server_error(path, status, text));
        }
        #[derive(Deserialize)]
        struct Ack {
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            seq: Option<i64>,
            #[serde(default)]
            error_code: Option<i64>,
            #[serde(default)]
            message: Option<String>,
        }
        let mut splitter = ValueSplitter::new();
        splitter.push(text.as_bytes());
        let mut acks = Vec::with_capacity(rows.len());
        let protocol = |message: String| KsqlError::Protocol {
            endpoint: self.endpoint(path),
            message,
        };
        while let Some(value) = splitter.next_value().map_err(|e| protocol(e.to_string()))? {
            let raw = String::from_utf8_lossy(value).into_owned();
            let ack: Ack = serde_json::from_slice(value)
                .map_err(|e| protocol(format!("bad ack {raw}: {e}")))?;
            match ack.seq {
                Some(seq) => acks.push(InsertAck {
                    seq,
                    ok: ack.status.as_deref() == Some("ok"),
                    error_code: ack.error_code,
                    message: ack.message,
                    raw,
                }),
                // An error without a sequence number concerns the whole request.
                None => {
                    return Err(KsqlError::Insert {
                        endpoint: self.endpoint(path),
                        total: rows.len(),
                        failed: rows.len(),
                        first_seq: 0,
                        error_code: ack.error_code,
                        message: ack.message.unwrap_or_else(|| raw.clone()),
                        raw,
                    })
                }
            }
        }
        acks.sort_by_key(|a| a.seq);
        let expected: Vec<i64> = (0..rows.len() as i64).collect();
        let got: Vec<i64> = acks.iter().map(|a| a.seq).collect();
        if got != expected {
            return Err(protocol(format!(
                "expected one ack for each of {} rows (seq 0..{}), got seqs {:?}",
                rows.len(),
                rows.len(),
                got
            )));
        }
        let failed: Vec<&InsertAck> = acks.iter().filter(|a| !a.ok).collect();
        if let Some(first) = failed.first().filter(|_| fail_on_rejected) {
            return Err(KsqlError::Insert {
                endpoint: self.endpoint(path),
                total: rows.len(),
                failed: failed.len(),
                first_seq: first.seq,
                error_code: first.error_code,
                message: first.message.clone().unwrap_or_else(|| first.raw.clone()),
                raw: text,
            });
        }
        Ok(acks)
    }
}

/// One I/O runtime for every client of the process: pooled connections live on the runtime
/// that opened them, so clients that share connections must share it.
fn shared_runtime() -> Result<Arc<tokio::runtime::Runtime>, KsqlError> {
    static RUNTIME: std::sync::OnceLock<Arc<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kafkaml-ksql")
        .enable_all()
        .build()
        .map_err(|e| KsqlError::Config(format!("cannot start the I/O runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| Arc::new(runtime)).clone())
}

/// HTTP clients shared by server and configuration: building one loads the system's CA
/// certificates (about 0.1 s), and sharing also shares the connection pool. An entry lives
/// while a [`KsqlClient`] uses it; when the last one is dropped, the entry goes and with it
/// the pool, which closes its idle connections (instead of keeping them for the idle timeout).
fn shared_http(
    options: &ClientOptions,
    prior_knowledge: bool,
) -> Result<(reqwest::Client, Arc<()>), KsqlError> {
    // The URL is in the key so that closing the clients of one server frees its connections
    // whatever clients of other servers still do.
    let mut key = format!(
        "{}|{}|{}|{}|",
        options.url.trim_end_matches('/'),
        options.verify,
        prior_knowledge,
        options.connect_timeout.as_nanos()
    )
    .into_bytes();
    for pem in [
        options.ca_pem.as_deref(),
        options.client_cert_pem.as_ref().map(|c| c.0.as_slice()),
        options.client_cert_pem.as_ref().map(|c| c.1.as_slice()),
    ] {
        key.extend_from_slice(format!("{}:", pem.map_or(0, |p| p.len() + 1)).as_bytes());
        key.extend_from_slice(pem.unwrap_or_default());
    }
    let mut cache = http_cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(entry) = cache.get_mut(&key) {
        let user = entry.users.upgrade().unwrap_or_else(|| {
            let user = Arc::new(());
            entry.users = Arc::downgrade(&user);
            user
        });
        return Ok((entry.client.clone(), user));
    }
    let client = KsqlClient::build_http(options, prior_knowledge)?;
    let user = Arc::new(());
    cache.insert(
        key,
        SharedHttp {
            client: client.clone(),
            users: Arc::downgrade(&user),
        },
    );
    Ok((client, user))
}

struct SharedHttp {
    client: reqwest::Client,
    /// Alive while some [`KsqlClient`] uses the entry.
    users: std::sync::Weak<()>,
}

type HttpCache = std::sync::Mutex<std::collections::HashMap<Vec<u8>, SharedHttp>>;

fn http_cache() -> &'static HttpCache {
    static CLIENTS: std::sync::OnceLock<HttpCache> = std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// One [`KsqlClient`]'s (and its clones') claim on the shared HTTP clients it uses.
struct PoolUsers(Vec<Arc<()>>);

impl Drop for PoolUsers {
    fn drop(&mut self) {
        self.0.clear();
        // Forget every entry nobody uses any more: the last handle on its pool goes with it.
        http_cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, entry| entry.users.strong_count() > 0);
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Chunks of a response body, read ahead by a task on the runtime (so that receiving
/// overlaps with parsing); dropping the receiver or aborting the task closes the body.
struct BodyReader {
    chunks: tokio::sync::mpsc::Receiver<reqwest::Result<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl BodyReader {
    fn spawn(runtime: &tokio::runtime::Runtime, response: reqwest::Response) -> Self {
        let (sender, chunks) = tokio::sync::mpsc::channel(READ_AHEAD_CHUNKS);
        let task = runtime.spawn(async move {
            let mut body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>> =
                Box::pin(response.bytes_stream());
            while let Some(item) = body.next().await {
                let failed = item.is_err();
                if sender.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader { chunks, task }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rows of one streaming query, read on demand into Arrow record batches.
pub struct QueryStream {
    client: KsqlClient,
    endpoint: QueryEndpoint,
    sql: String,
    body: Option<BodyReader>,
    splitter: ValueSplitter,
    /// Set in raw-lines mode ([`QueryStream::use_raw_lines`]): the body goes here instead.
    lines: Option<LineSplitter>,
    query_id: Option<String>,
    decoder: Option<RowDecoder>,
    /// KSQL 5.x sends no header: rows wait here until their types are inferred.
    headerless_rows: Vec<String>,
    header_seen: bool,
    final_message: Option<String>,
    /// An error element, reported after the rows that preceded it.
    pending_error: Option<KsqlError>,
    /// No more bytes will be read (the body ended, was dropped, or a final message came).
    ended: bool,
    /// The server finished the body (as opposed to us dropping it).
    body_complete: bool,
    rows: u64,
    tombstones: u64,
    limit: Option<u64>,
    last_row_at: Instant,
}

/// How to cut the stream into batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Return a batch once this many rows are buffered.
    pub max_rows: usize,
    /// Return what is buffered once the first buffered row is this old.
    pub max_wait: Duration,
    /// End the query when no row arrived for this long (keep-alives do not count).
    pub idle_timeout: Option<Duration>,
}

impl QueryStream {
    pub fn query_id(&self) -> Option<&str> {
        self.query_id.as_deref()
    }

    pub fn schema(&self) -> Option<SchemaRef> {
        self.decoder.as_ref().map(|d| d.schema().clone())
    }

    pub fn final_message(&self) -> Option<&str> {
        self.final_message.as_deref()
    }

    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    pub fn tombstones(&self) -> u64 {
        self.tombstones
    }

    /// True when no more rows will come.
    pub fn is_finished(&self) -> bool {
        self.ended && self.pending_error.is_none() && self.buffered_rows() == 0
    }

    /// Stop after this many rows (then the server-side query is closed).
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    fn path(&self) -> &'static str {
        self.endpoint.path()
    }

    fn buffered_rows(&self) -> usize {
        self.headerless_rows.len() + self.decoder.as_ref().map_or(0, |d| d.pending_rows())
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|limit| self.rows >= limit)
    }

    /// Reads until the header (query id and schema) arrived, the first row arrived (KSQL 5.x
    /// sends no header), or the stream ended.
    pub fn wait_for_header(
        &mut self,
        timeout: Duration,
        interrupt: Interrupt<'_>,
    ) -> Result<(), KsqlError> {
        let deadline = Instant::now() + timeout;
        let mut checked_at = Instant::now();
        while !self.header_seen
            && self.headerless_rows.is_empty()
            && !self.ended
            && self.pending_error.is_none()
        {
            let now = Instant::now();
            if now >= deadline {
                return Err(KsqlError::Transport {
                    endpoint: self.client.endpoint(self.path()),
                    message: format!("no result header within {:.1} s", timeout.as_secs_f64()),
                    timed_out: true,
                });
            }
            if checked_at.elapsed() >= POLL {
                checked_at = now;
                if interrupt() {
                    return Err(KsqlError::Interrupted);
                }
            }
            self.read_some(deadline - now, interrupt)?;
            self.drain_elements(1)?;
        }
        if !self.header_seen && !self.headerless_rows.is_empty() {
            self.infer_headerless_schema()?;
        }
        Ok(())
    }

    /// The next batch of rows, or `None` at the end. Errors the server sent mid-stream are
    /// raised after the rows before them were returned.
    pub fn next_batch(
        &mut self,
        policy: BatchPolicy,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<RecordBatch>, KsqlError> {
        let mut first_buffered_at: Option<Instant> = None;
        let mut checked_at = Instant::now();
        loop {
            // Reads return at least every POLL, so this is the place to honour interrupts.
            if checked_at.elapsed() >= POLL {
                checked_at = Instant::now();
                if interrupt() {
                    return Err(KsqlError::Interrupted);
                }
            }
            self.drain_elements(policy.max_rows.max(1))?;
            if self.buffered_rows() > 0 && first_buffered_at.is_none() {
                first_buffered_at = Some(Instant::now());
            }
            let buffered = self.buffered_rows();
            let full = buffered >= policy.max_rows.max(1);
            let stale = first_buffered_at.is_some_and(|t| t.elapsed() >= policy.max_wait);
            let stopping = self.ended || self.pending_error.is_some() || self.limit_reached();
            if buffered > 0 && (full || stale || stopping) {
                return self.flush();
            }
            if let Some(error) = self.pending_error.take() {
                self.ended = true;
                self.body = None;
                return Err(error);
            }
            if self.ended {
                return Ok(None);
            }
            if self.limit_reached() {
                self.close(interrupt);
                return Ok(None);
            }
            if let Some(idle) = policy.idle_timeout {
                if self.last_row_at.elapsed() >= idle {
                    self.close(interrupt);
                    continue;
                }
            }
            let mut wait = POLL;
            if let Some(t) = first_buffered_at {
                wait = wait.min(policy.max_wait.saturating_sub(t.elapsed()));
            }
            if let Some(idle) = policy.idle_timeout {
                wait = wait.min(idle.saturating_sub(self.last_row_at.elapsed()));
            }
            self.read_some(wait.max(Duration::from_millis(1)), interrupt)?;
        }
    }

    /// The next complete elements as JSON texts, undecoded (for ksql-python's text mode);
    /// `None` at the end. Do not mix with [`QueryStream::next_batch`] on one stream.
    pub fn next_texts(
        &mut self,
        idle_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Vec<String>>, KsqlError> {
        let endpoint = self.client.endpoint(self.path());
        let mut checked_at = Instant::now();
        loop {
            let mut texts = Vec::new();
            while let Some(value) = self
                .splitter
                .next_value()
                .map_err(|e| KsqlError::Protocol {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                })?
            {
                if !self.header_seen {
                    // Remember the query id, so that closing can stop the query.
                    if let Ok(Element::Header { query_id, .. }) = classify(value) {
                        self.query_id = query_id;
                        self.header_seen = true;
                    }
                }
                texts.push(String::from_utf8_lossy(value).into_owned());
            }
            if !texts.is_empty() {
                self.last_row_at = Instant::now();
                return Ok(Some(texts));
            }
            if self.ended || self.splitter.is_closed() {
                if self.body_complete && self.splitter.has_partial_value() {
                    return Err(KsqlError::Protocol {
                        endpoint,
                        message: "the response ended in the middle of a JSON value".into(),
                    });
                }
                self.ended = true;
                self.body = None;
                return Ok(None);
            }
            if idle_timeout.is_some_and(|idle| self.last_row_at.elapsed() >= idle) {
                self.close(interrupt);
                return Ok(None);
            }
            if checked_at.elapsed() >= POLL {
                checked_at = Instant::now();
                if interrupt() {
                    return Err(KsqlError::Interrupted);
                }
            }
            self.read_some(POLL, interrupt)?;
        }
    }

    /// Switches to raw-lines mode: [`QueryStream::next_lines`] then hands out the response's
    /// lines unchanged. Only before anything was read (see `KsqlClient::query`'s callers);
    /// the other reading methods do not work in this mode.
    pub fn use_raw_lines(&mut self) -> Result<(), KsqlError> {
        if self.lines.is_some() {
            return Ok(());
        }
        if self.header_seen || self.rows > 0 || self.splitter.has_partial_value() || self.ended {
            return Err(KsqlError::Config(
                "raw lines can only be read from a query stream nothing was read from".into(),
            ));
        }
        self.lines = Some(LineSplitter::new());
        Ok(())
    }

    /// The next whole lines of the response as received (framing and keep-alive newlines
    /// included, see [`LineSplitter`]), or `None` at the end: joined, they are the body.
    /// Server errors inside the stream are lines like any other here. Needs
    /// [`QueryStream::use_raw_lines`] first.
    pub fn next_lines(
        &mut self,
        idle_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Vec<String>>, KsqlError> {
        if self.lines.is_none() {
            return Err(KsqlError::Config(
                "next_lines needs use_raw_lines() before the first read".into(),
            ));
        }
        let mut checked_at = Instant::now();
        loop {
            let lines = self.lines.as_mut().expect("raw-lines mode");
            let mut texts = Vec::new();
            while let Some(line) = lines.next_line() {
                texts.push(String::from_utf8_lossy(line).into_owned());
            }
            if self.body_complete && lines.has_rest() {
                texts.push(String::from_utf8_lossy(&lines.take_rest()).into_owned());
            }
            if !texts.is_empty() {
                if !self.header_seen {
                    self.probe_query_id(&texts);
                }
                self.last_row_at = Instant::now();
                return Ok(Some(texts));
            }
            if self.ended {
                self.body = None;
                return Ok(None);
            }
            if idle_timeout.is_some_and(|idle| self.last_row_at.elapsed() >= idle) {
                self.close(interrupt);
                return Ok(None);
            }
            if checked_at.elapsed() >= POLL {
                checked_at = Instant::now();
                if interrupt() {
                    return Err(KsqlError::Interrupted);
                }
            }
            self.read_some(POLL, interrupt)?;
        }
    }

    /// Learns the query id from the first element, so that closing can stop the query (the
    /// lines themselves are handed out unparsed).
    fn probe_query_id(&mut self, lines: &[String]) {
        let mut probe = ValueSplitter::new();
        for line in lines {
            probe.push(line.as_bytes());
            if let Ok(Some(value)) = probe.next_value() {
                if let Ok(Element::Header { query_id, .. }) = classify(value) {
                    self.query_id = query_id;
                }
                // Only the first element can be the header; KSQL 5.x sends none.
                self.header_seen = true;
                return;
            }
        }
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, KsqlError> {
        if self.decoder.is_none() {
            self.infer_headerless_schema()?;
        }
        let endpoint = self.client.endpoint(self.path());
        let decoder = self
            .decoder
            .as_mut()
            .expect("a schema exists once rows are buffered");
        for row in self.headerless_rows.drain(..) {
            decoder.push(&row).map_err(|source| KsqlError::Format {
                endpoint: endpoint.clone(),
                source,
            })?;
        }
        decoder
            .flush()
            .map_err(|source| KsqlError::Format { endpoint, source })
    }

    fn infer_headerless_schema(&mut self) -> Result<(), KsqlError> {
        let sample: Vec<&str> = self
            .headerless_rows
            .iter()
            .take(100)
            .map(String::as_str)
            .collect();
        let endpoint = self.client.endpoint(self.path());
        let schema = infer_schema(&sample).map_err(|source| KsqlError::Format {
            endpoint: endpoint.clone(),
            source,
        })?;
        let mut decoder =
            RowDecoder::new(Arc::new(schema)).map_err(|source| KsqlError::Format {
                endpoint: endpoint.clone(),
                source,
            })?;
        // The waiting rows go first, before any row that arrives from now on.
        for row in self.headerless_rows.drain(..) {
            decoder.push(&row).map_err(|source| KsqlError::Format {
                endpoint: endpoint.clone(),
                source,
            })?;
        }
        self.decoder = Some(decoder);
        Ok(())
    }

    /// Waits up to `wait` for the next chunk and parses what it completes.
    fn read_some(&mut self, wait: Duration, interrupt: Interrupt<'_>) -> Result<(), KsqlError> {
        let Some(body) = self.body.as_mut() else {
            self.ended = true;
            return Ok(());
        };
        let first = self.client.block_on(
            async { tokio::time::timeout(wait.min(POLL), body.chunks.recv()).await },
            interrupt,
        )?;
        let Ok(first) = first else {
            return Ok(()); // nothing yet
        };
        // Take every chunk that is already there too (up to READ_AHEAD_BYTES).
        let mut ready = Vec::new();
        if let Some(Ok(chunk)) = &first {
            let mut bytes = chunk.len();
            while bytes < READ_AHEAD_BYTES {
                match body.chunks.try_recv() {
                    Ok(item) => {
                        let more = item.is_ok();
                        if let Ok(chunk) = &item {
                            bytes += chunk.len();
                        }
                        ready.push(Some(item));
                        if !more {
                            break;
                        }
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        ready.push(None);
                        break;
                    }
                }
            }
        }
        for item in std::iter::once(first).chain(ready) {
            self.accept(item)?;
        }
        Ok(())
    }

    fn accept(&mut self, item: Option<reqwest::Result<Bytes>>) -> Result<(), KsqlError> {
        match item {
            None => {
                self.ended = true;
                self.body = None;
                self.body_complete = true;
                Ok(())
            }
            Some(Err(e)) => {
                self.ended = true;
                self.body = None;
                Err(self.client.transport_error(self.path(), e))
            }
            Some(Ok(bytes)) => {
                match self.lines.as_mut() {
                    Some(lines) => lines.push(&bytes),
                    None => self.splitter.push(&bytes),
                }
                Ok(())
            }
        }
    }

    /// Parses buffered elements until `max_rows` rows are buffered (or the bytes run out).
    fn drain_elements(&mut self, max_rows: usize) -> Result<(), KsqlError> {
        let endpoint = self.client.endpoint(self.endpoint.path());
        let protocol = |message: String| KsqlError::Protocol {
            endpoint: endpoint.clone(),
            message,
        };
        let mut saw_row = false;
        while !self.limit_reached()
            && self.pending_error.is_none()
            && self.buffered_rows() < max_rows
        {
            let Some(value) = self
                .splitter
                .next_value()
                .map_err(|e| protocol(e.to_string()))?
            else {
                if self.body_complete && self.splitter.has_partial_value() {
                    return Err(protocol(
                        "the response ended in the middle of a JSON value".into(),
                    ));
                }
                break;
            };
            match classify(value).map_err(protocol)? {
                Element::Header { query_id, columns } => {
                    let schema = header_schema(&columns).map_err(|source| KsqlError::Format {
                        endpoint: endpoint.clone(),
                        source,
                    })?;
                    self.decoder = Some(RowDecoder::new(Arc::new(schema)).map_err(|source| {
                        KsqlError::Format {
                            endpoint: endpoint.clone(),
                            source,
                        }
                    })?);
                    self.query_id = query_id;
                    self.header_seen = true;
                }
                Element::Row { values, tombstone } => {
                    self.rows += 1;
                    self.tombstones += tombstone as u64;
                    saw_row = true;
                    match self.decoder.as_mut() {
                        Some(decoder) => {
                            decoder.push(values).map_err(|source| KsqlError::Format {
                                endpoint: endpoint.clone(),
                                source,
                            })?
                        }
                        None => self.headerless_rows.push(values.to_string()),
                    }
                }
                Element::Final(message) => {
                    self.final_message = Some(message);
                    self.ended = true;
                    self.body = None;
                }
                Element::Error(error) => {
                    self.pending_error = Some(KsqlError::Stream {
                        endpoint: endpoint.clone(),
                        error_code: error.error_code,
                        message: error.message,
                        statement_text: Some(self.sql.clone()),
                        raw: error.raw,
                    });
                }
                Element::Other => {}
            }
        }
        if saw_row {
            self.last_row_at = Instant::now();
        }
        if self.splitter.is_closed() {
            self.ended = true;
            self.body = None;
        }
        Ok(())
    }

    /// Stops reading; closes the push query on the server if it may still run. Returns
    /// whether the server confirmed the close (false when there was nothing to close).
    pub fn close(&mut self, interrupt: Interrupt<'_>) -> bool {
        let was_running = !self.ended;
        self.ended = true;
        // Dropping the body closes the HTTP/1.1 connection (or resets the HTTP/2 stream),
        // which is how `/query` queries end; `/close-query` ends `/query-stream` ones.
        self.body = None;
        self.headerless_rows.clear();
        match (&self.query_id, was_running) {
            (Some(id), true) => {
                let id = id.clone();
                self.client.close_query(&id, interrupt).is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
