//! `_native.KsqlConnection` and `_native.KsqlQueryStream`: the ksqlDB client behind
//! `kafkaml.ksql`, and the `KsqlError` exception family.
//!
//! Properties, variables and rows cross the boundary as JSON text (the wire format anyway);
//! results cross as Arrow record batches. All I/O runs with the GIL released.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::prelude::*;

use super::args::interrupt_check;
use super::arrow::{batch_to_py, schema_to_py};
use super::errors::{format_error, ConfigError, KafkaMLError};
use crate::ksql::{
    Auth, BatchPolicy, ClientOptions, ErrorKind, KsqlClient, KsqlError as CoreKsqlError,
    QueryEndpoint, QueryStream,
};

create_exception!(
    kafkaml._native,
    KsqlError,
    KafkaMLError,
    "ksqlDB refused or failed a request; `.error_code`, `.http_status`, `.kind`, `.message`, `.statement_text` and `.raw` say which and why.\n\n`KsqlError(message, error_code=None)` (ksql-python's `KSQLError` constructor) sets `.msg`/`.message` and `.error_code`."
);
create_exception!(
    kafkaml._native,
    KsqlStatementError,
    KsqlError,
    "The statement is invalid or failed (ksqlDB error code 40001)."
);
create_exception!(kafkaml._native, KsqlEndpointError, KsqlError, "The statement was sent to the wrong endpoint (error code 40002), e.g. a SELECT through `ksql()`.");
create_exception!(
    kafkaml._native,
    KsqlAuthError,
    KsqlError,
    "Authentication or authorization failed (HTTP 401/403, error codes 401xx/403xx)."
);
create_exception!(
    kafkaml._native,
    KsqlServerNotReadyError,
    KsqlError,
    "The server is not ready (HTTP 503, error codes 503xx), even after retries."
);
create_exception!(
    kafkaml._native,
    KsqlStreamError,
    KsqlError,
    "The server reported an error in the middle of a query's result stream."
);
create_exception!(
    kafkaml._native,
    KsqlConnectionError,
    KsqlError,
    "The server could not be reached or did not answer in time."
);

/// ksql-python's `KSQLError(e, error_code=None, stackTrace=None)` constructor, so that code
/// raising or building the error itself gets `.msg` and `.error_code`. A Python function:
/// only those bind as methods. Errors raised here get the same attributes set afterwards.
const KSQL_ERROR_INIT: &std::ffi::CStr = cr#"
def __init__(self, message="", error_code=None, stackTrace=None):
    """KsqlError(message, error_code=None): ksql-python's KSQLError constructor."""
    BaseException.__init__(self, message)
    self.message = self.msg = str(message)
    self.error_code = error_code
    self.stackTrace = stackTrace
    self.http_status = None
    self.kind = None
    self.statement_text = None
    self.raw = None
"#;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let init = PyModule::from_code(
        py,
        KSQL_ERROR_INIT,
        c"kafkaml/_native/ksql_error.py",
        c"kafkaml._native_ksql_error",
    )?
    .getattr("__init__")?;
    py.get_type::<KsqlError>().setattr("__init__", init)?;
    m.add("KsqlError", py.get_type::<KsqlError>())?;
    m.add("KsqlStatementError", py.get_type::<KsqlStatementError>())?;
    m.add("KsqlEndpointError", py.get_type::<KsqlEndpointError>())?;
    m.add("KsqlAuthError", py.get_type::<KsqlAuthError>())?;
    m.add(
        "KsqlServerNotReadyError",
        py.get_type::<KsqlServerNotReadyError>(),
    )?;
    m.add("KsqlStreamError", py.get_type::<KsqlStreamError>())?;
    m.add("KsqlConnectionError", py.get_type::<KsqlConnectionError>())?;
    m.add_class::<PyKsqlConnection>()?;
    m.add_class::<PyKsqlQueryStream>()?;
    Ok(())
}

/// The exception class for a kind of failure (the core classifies, see `ErrorKind`).
fn exception_for(kind: ErrorKind, text: String) -> PyErr {
    match kind {
        ErrorKind::Statement => KsqlStatementError::new_err(text),
        ErrorKind::WrongEndpoint => KsqlEndpointError::new_err(text),
        ErrorKind::Auth => KsqlAuthError::new_err(text),
        ErrorKind::NotReady => KsqlServerNotReadyError::new_err(text),
        ErrorKind::Stream => KsqlStreamError::new_err(text),
        ErrorKind::Connection | ErrorKind::Timeout => KsqlConnectionError::new_err(text),
        ErrorKind::Config => ConfigError::new_err(text),
        ErrorKind::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(text),
        _ => KsqlError::new_err(text),
    }
}

/// Maps a core error to the exception family, with its details as attributes.
fn ksql_error(py: Python<'_>, error: CoreKsqlError, pending_interrupt: Option<PyErr>) -> PyErr {
    let text = error.to_string();
    let kind = error.kind();
    let (status, code, message, statement, raw) = match error {
        CoreKsqlError::Interrupted => {
            return pending_interrupt.unwrap_or_else(|| exception_for(kind, text));
        }
        CoreKsqlError::Config(_) => return exception_for(kind, text),
        CoreKsqlError::Format { source, .. } => return format_error(source),
        CoreKsqlError::Server {
            status,
            error_code,
            message,
            statement_text,
            raw,
            ..
        } => (Some(status), error_code, message, statement_text, Some(raw)),
        CoreKsqlError::Stream {
            error_code,
            message,
            statement_text,
            raw,
            ..
        } => (Some(200), error_code, message, statement_text, Some(raw)),
        CoreKsqlError::Insert {
            error_code,
            message,
            raw,
            ..
        } => (Some(200), error_code, message, None, Some(raw)),
        CoreKsqlError::Transport { message, .. } | CoreKsqlError::Protocol { message, .. } => {
            (None, None, message, None, None)
        }
    };
    let err = exception_for(kind, text);
    let value = err.value(py);
    // Attributes make the details usable without parsing the message.
    let _ = value.setattr("error_code", code);
    let _ = value.setattr("http_status", status);
    let _ = value.setattr("kind", kind.as_str());
    let _ = value.setattr("message", message.clone());
    let _ = value.setattr("msg", message); // ksql-python's KSQLError name for it
    let _ = value.setattr("statement_text", statement);
    let _ = value.setattr("raw", raw);
    err
}

fn json_map(text: &str, what: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(ConfigError::new_err(format!(
            "{what} must be a JSON object, got {text:?}"
        ))),
    }
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        ConfigError::new_err(format!(
            "{what} must be a non-negative number of seconds, got {value}"
        ))
    })
}

#[pyclass(module = "kafkaml._native", name = "KsqlConnection")]
pub struct PyKsqlConnection {
    client: KsqlClient,
}

#[pymethods]
impl PyKsqlConnection {
    #[new]
    #[pyo3(signature = (url, *, username=None, password=None, bearer_token=None, verify=true, ca_pem=None,
        client_cert_pem=None, client_key_pem=None, connect_timeout=10.0, timeout=60.0, http2=false, retries=3))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: String,
        username: Option<String>,
        password: Option<String>,
        bearer_token: Option<String>,
        verify: bool,
        ca_pem: Option<Vec<u8>>,
        client_cert_pem: Option<Vec<u8>>,
        client_key_pem: Option<Vec<u8>>,
        connect_timeout: f64,
        timeout: f64,
        http2: bool,
        retries: u32,
    ) -> PyResult<Self> {
        let mut options = ClientOptions::new(url);
        options.auth = match (username, password, bearer_token) {
            (_, _, Some(token)) => Auth::Bearer(token),
            (Some(username), password, None) => Auth::Basic {
                username,
                password: password.unwrap_or_default(),
            },
            (None, Some(_), None) => {
                return Err(ConfigError::new_err("a password needs a username"))
            }
            (None, None, None) => Auth::None,
        };
        options.verify = verify;
        options.ca_pem = ca_pem;
        options.client_cert_pem = match (client_cert_pem, client_key_pem) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::new_err(
                    "a client certificate needs its private key, and vice versa",
                ))
            }
        };
        options.connect_timeout = seconds(connect_timeout, "connect_timeout")?;
        options.timeout = seconds(timeout, "timeout")?;
        options.http2 = http2;
        options.retries = retries;
        let client =
            KsqlClient::new(options).map_err(|e| Python::attach(|py| ksql_error(py, e, None)))?;
        Ok(PyKsqlConnection { client })
    }

    #[getter]
    fn url(&self) -> String {
        self.client.url().to_string()
    }

    /// `POST /ksql`; returns the entity list as JSON text.
    #[pyo3(signature = (statements, streams_properties="{}", session_variables="{}", command_sequence_number=None))]
    fn ksql(
        &self,
        py: Python<'_>,
        statements: &str,
        streams_properties: &str,
        session_variables: &str,
        command_sequence_number: Option<i64>,
    ) -> PyResult<String> {
        let properties = json_map(streams_properties, "streams_properties")?;
        let variables = json_map(session_variables, "session_variables")?;
        let mut pending = None;
        let result = py.detach(|| {
            self.client.ksql(
                statements,
                &properties,
                &variables,
                command_sequence_number,
                &mut interrupt_check(&mut pending),
            )
        });
        result.map_err(|e| ksql_error(py, e, pending))
    }

    /// `GET <path>`; returns the JSON text.
    fn get(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        let mut pending = None;
        let result = py.detach(|| self.client.get(path, &mut interrupt_check(&mut pending)));
        result.map_err(|e| ksql_error(py, e, pending))
    }

    /// `POST /ksql/terminate`; returns the JSON text.
    #[pyo3(signature = (delete_topics=Vec::new()))]
    fn terminate(&self, py: Python<'_>, delete_topics: Vec<String>) -> PyResult<String> {
        let mut pending = None;
        let result = py.detach(|| {
            self.client
                .terminate(&delete_topics, &mut interrupt_check(&mut pending))
        });
        result.map_err(|e| ksql_error(py, e, pending))
    }

    /// `POST /close-query`.
    fn close_query(&self, py: Python<'_>, query_id: &str) -> PyResult<()> {
        let mut pending = None;
        let result = py.detach(|| {
            self.client
                .close_query(query_id, &mut interrupt_check(&mut pending))
        });
        result.map_err(|e| ksql_error(py, e, pending))
    }

    /// `POST /inserts-stream`; rows are JSON object texts; returns the acks' JSON texts in
    /// row order.
    #[pyo3(signature = (target, rows, fail_on_rejected=true))]
    fn insert(
        &self,
        py: Python<'_>,
        target: &str,
        rows: Vec<String>,
        fail_on_rejected: bool,
    ) -> PyResult<Vec<String>> {
        let mut pending = None;
        let result = py.detach(|| {
            self.client.insert(
                target,
                &rows,
                fail_on_rejected,
                &mut interrupt_check(&mut pending),
            )
        });
        result
            .map(|acks| acks.into_iter().map(|a| a.raw).collect())
            .map_err(|e| ksql_error(py, e, pending))
    }

    /// Starts a streaming query and waits for its header (`header_timeout` seconds).
    /// `raw_lines=True` reads the response as lines (`next_lines`), without waiting.
    #[pyo3(signature = (sql, properties="{}", session_variables="{}", endpoint="query", limit=None, header_timeout=60.0, wait_for_header=true, raw_lines=false))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        py: Python<'_>,
        sql: &str,
        properties: &str,
        session_variables: &str,
        endpoint: &str,
        limit: Option<u64>,
        header_timeout: f64,
        wait_for_header: bool,
        raw_lines: bool,
    ) -> PyResult<PyKsqlQueryStream> {
        let endpoint = match endpoint {
            "query" => QueryEndpoint::Query,
            "query-stream" => QueryEndpoint::QueryStream,
            "query-stream-json" => QueryEndpoint::QueryStreamJson,
            other => {
                return Err(ConfigError::new_err(format!(
                    "endpoint must be 'query', 'query-stream' or 'query-stream-json', got {other:?}"
                )))
            }
        };
        let properties = json_map(properties, "properties")?;
        let variables = json_map(session_variables, "session_variables")?;
        let header_timeout = seconds(header_timeout, "header_timeout")?;
        let mut pending = None;
        let result = py.detach(|| -> Result<QueryStream, CoreKsqlError> {
            let mut interrupt = interrupt_check(&mut pending);
            let mut stream =
                self.client
                    .query(sql, &properties, &variables, endpoint, &mut interrupt)?;
            stream.set_limit(limit);
            if raw_lines {
                stream.use_raw_lines()?;
            } else if wait_for_header {
                if let Err(error) = stream.wait_for_header(header_timeout, &mut interrupt) {
                    stream.close(&mut || false);
                    return Err(error);
                }
            }
            Ok(stream)
        });
        let stream = result.map_err(|e| ksql_error(py, e, pending))?;
        Ok(PyKsqlQueryStream {
            inner: Mutex::new(Some(stream)),
            done: Mutex::new(None),
        })
    }
}

#[pyclass(module = "kafkaml._native", name = "KsqlQueryStream")]
pub struct PyKsqlQueryStream {
    // The HTTP body stream is Send but not Sync; a pyclass must be both.
    inner: Mutex<Option<QueryStream>>,
    /// What is still worth knowing once the stream ended or was closed: the stream itself
    /// is dropped then, so that it stops holding the client's connection pool.
    done: Mutex<Option<Ended>>,
}

/// A finished stream's facts.
struct Ended {
    query_id: Option<String>,
    schema: Option<arrow_schema::SchemaRef>,
    final_message: Option<String>,
    rows_read: u64,
    tombstones: u64,
}

impl PyKsqlQueryStream {
    /// Drops the stream, keeping its facts (after the end, or a close).
    fn retire(&mut self) {
        let taken = self
            .inner
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(stream) = taken {
            *self
                .done
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Ended {
                query_id: stream.query_id().map(str::to_string),
                schema: stream.schema(),
                final_message: stream.final_message().map(str::to_string),
                rows_read: stream.rows_read(),
                tombstones: stream.tombstones(),
            });
        }
    }

    /// Reads a fact from the stream, or from what it left once retired.
    fn fact<T>(
        &self,
        live: impl FnOnce(&QueryStream) -> T,
        ended: impl FnOnce(&Ended) -> T,
    ) -> Option<T> {
        if let Some(value) = self.with_stream(live) {
            return Some(value);
        }
        let done = self
            .done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        done.as_ref().map(ended)
    }

    fn stream_mut(&mut self) -> Option<&mut QueryStream> {
        self.inner
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_mut()
    }

    fn with_stream<T>(&self, read: impl FnOnce(&QueryStream) -> T) -> Option<T> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().map(read)
    }
}

#[pymethods]
impl PyKsqlQueryStream {
    /// The next `pyarrow.RecordBatch`, or None at the end of the results.
    #[pyo3(signature = (max_rows=10_000, max_wait=0.5, idle_timeout=None))]
    fn next_batch(
        &mut self,
        py: Python<'_>,
        max_rows: usize,
        max_wait: f64,
        idle_timeout: Option<f64>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let policy = BatchPolicy {
            max_rows,
            max_wait: seconds(max_wait, "max_wait")?,
            idle_timeout: idle_timeout
                .map(|t| seconds(t, "idle_timeout"))
                .transpose()?,
        };
        let Some(stream) = self.stream_mut() else {
            return Ok(None);
        };
        let mut pending = None;
        let result = py.detach(|| stream.next_batch(policy, &mut interrupt_check(&mut pending)));
        match result {
            Ok(Some(batch)) => Ok(Some(batch_to_py(py, batch)?)),
            Ok(None) => {
                self.retire();
                Ok(None)
            }
            Err(e) => Err(ksql_error(py, e, pending)),
        }
    }

    /// The next complete response elements as JSON texts, or None at the end.
    #[pyo3(signature = (idle_timeout=None))]
    fn next_texts(
        &mut self,
        py: Python<'_>,
        idle_timeout: Option<f64>,
    ) -> PyResult<Option<Vec<String>>> {
        let idle_timeout = idle_timeout
            .map(|t| seconds(t, "idle_timeout"))
            .transpose()?;
        let Some(stream) = self.stream_mut() else {
            return Ok(None);
        };
        let mut pending = None;
        let result =
            py.detach(|| stream.next_texts(idle_timeout, &mut interrupt_check(&mut pending)));
        let texts = result.map_err(|e| ksql_error(py, e, pending))?;
        if texts.is_none() {
            self.retire();
        }
        Ok(texts)
    }

    /// The next whole lines of the response, exactly as received (with their newlines and
    /// framing; blank keep-alive lines ride with the next line), or None at the end. Needs
    /// `query(..., raw_lines=True)`.
    #[pyo3(signature = (idle_timeout=None))]
    fn next_lines(
        &mut self,
        py: Python<'_>,
        idle_timeout: Option<f64>,
    ) -> PyResult<Option<Vec<String>>> {
        let idle_timeout = idle_timeout
            .map(|t| seconds(t, "idle_timeout"))
            .transpose()?;
        let Some(stream) = self.stream_mut() else {
            return Ok(None);
        };
        let mut pending = None;
        let result =
            py.detach(|| stream.next_lines(idle_timeout, &mut interrupt_check(&mut pending)));
        let lines = result.map_err(|e| ksql_error(py, e, pending))?;
        if lines.is_none() {
            self.retire();
        }
        Ok(lines)
    }

    /// Stops reading and closes the query on the server if it may still run; returns
    /// whether the server confirmed a close.
    fn close(&mut self, py: Python<'_>) -> bool {
        let confirmed = match self.stream_mut() {
            Some(stream) if !stream.is_finished() => py.detach(|| stream.close(&mut || false)),
            _ => false,
        };
        self.retire();
        confirmed
    }

    #[getter]
    fn query_id(&self) -> Option<String> {
        self.fact(|s| s.query_id().map(str::to_string), |e| e.query_id.clone())
            .flatten()
    }

    #[getter]
    fn schema(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.fact(|s| s.schema(), |e| e.schema.clone()).flatten() {
            Some(schema) => Ok(Some(schema_to_py(py, &schema)?)),
            None => Ok(None),
        }
    }

    #[getter]
    fn final_message(&self) -> Option<String> {
        self.fact(
            |s| s.final_message().map(str::to_string),
            |e| e.final_message.clone(),
        )
        .flatten()
    }

    #[getter]
    fn finished(&self) -> bool {
        self.with_stream(|s| s.is_finished()).unwrap_or(true)
    }

    #[getter]
    fn rows_read(&self) -> u64 {
        self.fact(|s| s.rows_read(), |e| e.rows_read).unwrap_or(0)
    }

    #[getter]
    fn tombstones(&self) -> u64 {
        self.fact(|s| s.tombstones(), |e| e.tombstones).unwrap_or(0)
    }
}
