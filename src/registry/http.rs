//! Confluent's Schema Registry REST API over a [`Registry`], on a hyper 1 HTTP/1.1 server.
//!
//! Each request is answered in a blocking task (the registry's calls wait on Kafka), with
//! Confluent's content type and error bodies (`{"error_code": ..., "message": ...}`). Bad
//! input is a 4xx with the registry's error code; a 500 means Kafka failed us.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::record::Reference;
use super::{Compatibility, Mode, Registry, RegistryError, VersionSpec};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Larger request bodies are refused (413); what is over is read and dropped, not kept.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

/// Request counters of a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub requests: u64,
    /// Answers with a 4xx status (bad input, unknown subject, ...).
    pub client_errors: u64,
    /// Answers with a 5xx status (Kafka failed).
    pub server_errors: u64,
}

/// A registry served over HTTP until [`RegistryServer::stop`] (or drop).
pub struct RegistryServer {
    registry: Arc<Registry>,
    address: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    counters: Arc<Counters>,
}

impl RegistryServer {
    /// Serves `registry` on `listen` (`host:port`; port 0 picks a free one).
    pub fn start(registry: Arc<Registry>, listen: &str) -> Result<Self, RegistryError> {
        let crate::serve::Listening {
            runtime,
            listener,
            address,
        } = crate::serve::listen(listen, "schema-registry-http").map_err(|e| match e {
            crate::serve::ListenError::Bind(e) => {
                RegistryError::Config(format!("cannot listen on {listen:?}: {e}"))
            }
            crate::serve::ListenError::Runtime(e) => {
                RegistryError::Config(format!("cannot start the HTTP server: {e}"))
            }
        })?;
        let counters = Arc::new(Counters::default());
        let (served, counted) = (registry.clone(), counters.clone());
        runtime.spawn(accept_loop(listener, served, counted));
        Ok(RegistryServer {
            registry,
            address,
            runtime: Some(runtime),
            counters,
        })
    }

    /// `http://host:port` (127.0.0.1 when listening on all addresses).
    pub fn url(&self) -> String {
        crate::serve::url("http", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    pub fn stats(&self) -> ServerStats {
        ServerStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            client_errors: self.counters.client_errors.load(Ordering::Relaxed),
            server_errors: self.counters.server_errors.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and closes open connections (requests in flight get a second).
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (registry, counters) = (registry.clone(), counters.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (registry, counters) = (registry.clone(), counters.clone());
                async move { Ok::<_, Infallible>(answer(request, registry, &counters).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One parsed request, ready for the blocking part.
struct Call {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Bytes,
}

/// A successful answer: JSON, or the raw schema text of the `/schema` endpoints.
enum Answer {
    Json(Value),
    Raw(String),
}

async fn answer(
    request: Request<Incoming>,
    registry: Arc<Registry>,
    counters: &Counters,
) -> Response<Full<Bytes>> {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let result = match crate::serve::read_body(body, MAX_BODY_BYTES).await {
        Err(crate::serve::BodyError::TooLarge(limit)) => Err(RegistryError::TooLarge(limit)),
        Err(crate::serve::BodyError::Read(error)) => Err(RegistryError::BadRequest(format!(
            "cannot read the request body: {error}"
        ))),
        Ok(body) => {
            let call = Call {
                method: parts.method,
                segments: parts
                    .uri
                    .path()
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(percent_decode)
                    .collect(),
                query: parts.uri.query().map(parse_query).unwrap_or_default(),
                body,
            };
            tokio::task::spawn_blocking(move || route(&registry, &call))
                .await
                .unwrap_or_else(|_| {
                    Err(RegistryError::Store("the request handler panicked".into()))
                })
        }
    };
    let (status, body) = match result {
        Ok(Answer::Json(value)) => (200, value.to_string()),
        Ok(Answer::Raw(text)) => (200, text),
        Err(error) => {
            let status = error.http_status();
            if status >= 500 {
                counters.server_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            let body = json!({"error_code": error.error_code(), "message": error.to_string()});
            (status, body.to_string())
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&key.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A boolean query parameter (`true`/`false` in any case: Python sends `True`).
    fn flag(&self, name: &str) -> Result<bool, RegistryError> {
        match self.param(name) {
            None | Some("") => Ok(false),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
            Some(value) => Err(RegistryError::BadRequest(format!(
                "query parameter {name}={value:?} is not true or false"
            ))),
        }
    }

    fn json(&self) -> Result<Value, RegistryError> {
        if self.body.is_empty() {
            return Err(RegistryError::BadRequest(
                "the request body is empty".into(),
            ));
        }
        let value: Value = serde_json::from_slice(&self.body)
            .map_err(|e| RegistryError::BadRequest(format!("the request body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(RegistryError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        Ok(value)
    }

    /// The `{"schema": ..., "schemaType": ..., "references": [...]}` of a request.
    fn schema(&self) -> Result<(String, Vec<Reference>), RegistryError> {
        let body = self.json()?;
        let schema_type = body
            .get("schemaType")
            .and_then(Value::as_str)
            .unwrap_or("AVRO");
        if !schema_type.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {schema_type} is not supported: this registry takes AVRO schemas only"
            )));
        }
        let schema = match body.get("schema") {
            Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(RegistryError::InvalidSchema("Empty schema".into()))
            }
            Some(_) => {
                return Err(RegistryError::InvalidSchema(
                    "\"schema\" must be the schema as a JSON string".into(),
                ))
            }
        };
        let references = match body.get("references") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
                RegistryError::InvalidSchema(format!(
                    "references must be [{{\"name\", \"subject\", \"version\"}}, ...]: {e}"
                ))
            })?,
        };
        Ok((schema, references))
    }
}

fn version_json(info: &super::VersionInfo) -> Value {
    let mut value = json!({"subject": info.subject, "version": info.version, "id": info.id,
                           "schema": info.schema});
    if !info.references.is_empty() {
        value["references"] = json!(info.references);
    }
    value
}

fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse::<u32>()
        .map_err(|_| RegistryError::SchemaNotFound(format!("id {text:?} is not a schema id")))
}

/// The blocking part: routes a request to the registry and builds the answer.
fn route(registry: &Registry, call: &Call) -> Result<Answer, RegistryError> {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let method = &call.method;
    let deleted = || call.flag("deleted");
    let wrong_method = || Err(RegistryError::MethodNotAllowed(method.to_string()));
    match segments.as_slice() {
        [] => Ok(Answer::Json(json!({}))),
        ["schemas", "types"] => match *method {
            Method::GET => Ok(Answer::Json(json!(["AVRO"]))),
            _ => wrong_method(),
        },
        ["schemas", "ids", id, rest @ ..] => {
            if *method != Method::GET {
                return wrong_method();
            }
            let id = parse_id(id)?;
            match rest {
                [] => registry.read(|state| {
                    let schema = state.schema(id)?;
                    let mut value = json!({"schema": schema.text});
                    if !schema.references.is_empty() {
                        value["references"] = json!(schema.references);
                    }
                    Ok(Answer::Json(value))
                }),
                ["schema"] => {
                    registry.read(|state| Ok(Answer::Raw(state.schema(id)?.text.clone())))
                }
                ["subjects"] => {
                    let deleted = deleted()?;
                    registry.read(|state| {
                        let mut subjects: Vec<String> = state
                            .usages(id, deleted)?
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect();
                        subjects.dedup();
                        Ok(Answer::Json(json!(subjects)))
                    })
                }
                ["versions"] => {
                    let deleted = deleted()?;
                    registry.read(|state| {
                        let usages: Vec<Value> = state
                            .usages(id, deleted)?
                            .into_iter()
                            .map(|(subject, version)| json!({"subject": subject, "version": version}))
                            .collect();
                        Ok(Answer::Json(json!(usages)))
                    })
                }
                _ => Err(RegistryError::NoSuchEndpoint(call.segments.join("/"))),
            }
        }
        ["subjects"] => match *method {
            Method::GET => {
                let (deleted, prefix) = (deleted()?, call.param("subjectPrefix").unwrap_or(""));
                let deleted_only = call.flag("deleted_only")?;
                let state = registry.state();
                let mut subjects = state.subjects(deleted || deleted_only, prefix);
                if deleted_only {
                    let live = state.subjects(false, prefix);
                    subjects.retain(|s| !live.contains(s));
                }
                Ok(Answer::Json(json!(subjects)))
            }
            _ => wrong_method(),
        },
        ["subjects", subject] => match *method {
            Method::POST => {
                let (schema, references) = call.schema()?;
                let (normalize, deleted) = (call.flag("normalize")?, deleted()?);
                registry.read(|state| {
                    let info = state.lookup(subject, &schema, &references, normalize, deleted)?;
                    Ok(Answer::Json(version_json(&info)))
                })
            }
            Method::DELETE => {
                let versions = registry.delete_subject(subject, call.flag("permanent")?)?;
                Ok(Answer::Json(json!(versions)))
            }
            _ => wrong_method(),
        },
        ["subjects", subject, "versions"] => match *method {
            Method::GET => {
                let deleted = deleted()?;
                registry.read(|state| Ok(Answer::Json(json!(state.versions(subject, deleted)?))))
            }
            Method::POST => {
                let (schema, references) = call.schema()?;
                let normalize = call.flag("normalize")?;
                let (id, version) = registry.register(subject, &schema, &references, normalize)?;
                Ok(Answer::Json(
                    json!({"id": id, "subject": subject, "version": version}),
                ))
            }
            _ => wrong_method(),
        },
        ["subjects", subject, "versions", version, rest @ ..] => {
            let spec = VersionSpec::parse(version)?;
            match (method.clone(), rest) {
                (Method::GET, []) => {
                    let deleted = deleted()?;
                    registry.read(|state| {
                        Ok(Answer::Json(version_json(
                            &state.version(subject, spec, deleted)?,
                        )))
                    })
                }
                (Method::GET, ["schema"]) => {
                    let deleted = deleted()?;
                    registry.read(|state| {
                        Ok(Answer::Raw(state.version(subject, spec, deleted)?.schema))
                    })
                }
                (Method::DELETE, []) => {
                    let version =
                        registry.delete_version(subject, spec, call.flag("permanent")?)?;
                    Ok(Answer::Json(json!(version)))
                }
                (_, [] | ["schema"]) => wrong_method(),
                _ => Err(RegistryError::NoSuchEndpoint(call.segments.join("/"))),
            }
        }
        ["compatibility", "subjects", subject, "versions", rest @ ..] => {
            if *method != Method::POST {
                return wrong_method();
            }
            let version = match rest {
                [] => None,
                [version] => Some(VersionSpec::parse(version)?),
                _ => return Err(RegistryError::NoSuchEndpoint(call.segments.join("/"))),
            };
            let (schema, references) = call.schema()?;
            let (normalize, verbose) = (call.flag("normalize")?, call.flag("verbose")?);
            registry.read(|state| {
                let problems =
                    state.check_compatibility(subject, version, &schema, &references, normalize)?;
                let mut value = json!({"is_compatible": problems.is_empty()});
                if verbose {
                    value["messages"] = json!(problems);
                }
                Ok(Answer::Json(value))
            })
        }
        ["config"] | ["config", _] => {
            let subject = segments.get(1).copied();
            match *method {
                Method::GET => {
                    let default_to_global = call.flag("defaultToGlobal")?;
                    let level = registry.state().level(subject, default_to_global)?;
                    Ok(Answer::Json(json!({"compatibilityLevel": level.as_str()})))
                }
                Method::PUT => {
                    let body = call.json()?;
                    let text = body
                        .get("compatibility")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            RegistryError::InvalidCompatibility(
                                body.get("compatibility")
                                    .map_or("missing".into(), Value::to_string),
                            )
                        })?;
                    let level = Compatibility::parse(text)?;
                    registry.set_level(subject, level)?;
                    Ok(Answer::Json(json!({"compatibility": level.as_str()})))
                }
                Method::DELETE => {
                    let previous = registry.clear_level(subject)?;
                    Ok(Answer::Json(
                        json!({"compatibilityLevel": previous.as_str()}),
                    ))
                }
                _ => wrong_method(),
            }
        }
        ["mode"] | ["mode", _] => {
            let subject = segments.get(1).copied();
            match *method {
                Method::GET => Ok(Answer::Json(
                    json!({"mode": registry.state().mode(subject).as_str()}),
                )),
                Method::PUT => {
                    let body = call.json()?;
                    let text = body.get("mode").and_then(Value::as_str).ok_or_else(|| {
                        RegistryError::InvalidMode(
                            body.get("mode").map_or("missing".into(), Value::to_string),
                        )
                    })?;
                    let mode = Mode::parse(text)?;
                    registry.set_mode(subject, mode)?;
                    Ok(Answer::Json(json!({"mode": mode.as_str()})))
                }
                _ => wrong_method(),
            }
        }
        // confluent-kafka >= 2.13 asks for a topic's associations before falling back to
        // the <topic>-value subject; this registry has none.
        ["associations", "resources", ..] => match *method {
            Method::GET => Ok(Answer::Json(json!([]))),
            _ => wrong_method(),
        },
        _ => Err(RegistryError::NoSuchEndpoint(format!(
            "{method} /{}",
            call.segments.join("/")
        ))),
    }
}

#[cfg(test)]
mod tests;
