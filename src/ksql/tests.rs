//! The client against a protocol-faithful ksqlDB test double (hyper, HTTP/1.1 or HTTP/2):
//! a stand-in, because no ksqlDB server can run here. Its responses follow the ksqlDB REST
//! documentation; the streamed ones are synthesized, served in odd-sized chunks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::*;

/// A request the test double answered: path, body, auth, HTTP version.
type RecordedRequest = (String, String, Option<String>, String);

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<RecordedRequest>>,
    closed_queries: Mutex<Vec<String>>,
    not_ready_answers: AtomicUsize,
    /// TCP connections the double holds open right now.
    open_connections: AtomicUsize,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: u16, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text.to_string())).boxed())
        .unwrap()
}

/// A body sent as the given chunks with a pause before each, then (optionally) keep-alive
/// newlines every 20 ms until the client goes away.
fn chunked(chunks: Vec<Bytes>, keep_alive_forever: bool) -> Response<Body> {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), keep_alive_forever),
        |(mut it, forever)| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            match it.next() {
                Some(chunk) => Some((Ok::<_, Infallible>(Frame::data(chunk)), (it, forever))),
                None if forever => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok(Frame::data(Bytes::from_static(b"\n"))), (it, forever)))
                }
                None => None,
            }
        },
    );
    Response::builder()
        .status(200)
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

fn split_every(text: &str, n: usize) -> Vec<Bytes> {
    text.as_bytes()
        .chunks(n)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn ksqldb_query_response(rows: usize) -> String {
    let mut text = String::from(
        "[{\"header\":{\"queryId\":\"transient_SENSORS_42\",\"schema\":\"`ID` BIGINT KEY, `NAME` STRING, `V` DOUBLE\"}},\n",
    );
    for i in 0..rows {
        text.push_str(&format!(
            "{{\"row\":{{\"columns\":[{i},\"sensor \\\"{i}\\\" é\",{}.5]}}}},\n",
            i
        ));
        if i % 3 == 0 {
            text.push('\n'); // keep-alive
        }
    }
    text.push_str("{\"finalMessage\":\"Limit Reached\"}]\n");
    text
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Recorded>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    let version = format!("{:?}", request.version());
    let auth = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    state
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), body.clone(), auth.clone(), version));
    if path != "/healthcheck"
        && auth
            .as_deref()
            .is_some_and(|a| a != "Basic a2V5OnNlY3JldA==")
    {
        return Ok(full(
            401,
            "{\"@type\":\"generic_error\",\"error_code\":40100,\"message\":\"Unauthorized\"}",
        ));
    }
    let response = match path.as_str() {
        "/ksql" => {
            if state.not_ready_answers.load(Ordering::SeqCst) > 0 {
                state.not_ready_answers.fetch_sub(1, Ordering::SeqCst);
                return Ok(full(
                    503,
                    "{\"@type\":\"generic_error\",\"error_code\":50301,\"message\":\"Server not ready\"}",
                ));
            }
            full(200, "[{\"@type\":\"tables\",\"statementText\":\"show tables;\",\"tables\":[],\"warnings\":[]}]")
        }
        "/query" => {
            let sql: Value = serde_json::from_str(&body).unwrap();
            let text = ksqldb_query_response(if sql["ksql"].as_str().unwrap().contains("BIG") {
                50_000
            } else {
                10
            });
            chunked(split_every(&text, 7.max(text.len() / 500)), false)
        }
        "/query-stream" => {
            let sql: Value = serde_json::from_str(&body).unwrap();
            let sql = sql["sql"].as_str().unwrap().to_string();
            let mut text = String::from(
                "{\"queryId\":\"push-1\",\"columnNames\":[\"ID\",\"V\"],\"columnTypes\":[\"BIGINT\",\"DOUBLE\"]}\n",
            );
            for i in 0..5 {
                text.push_str(&format!("[{i},{i}.25]\n"));
            }
            if sql.contains("FAIL") {
                text.push_str("{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"deserialization failed\"}\n");
                chunked(split_every(&text, 5), false)
            } else {
                // A push query: rows, then keep-alives until closed.
                chunked(split_every(&text, 5), true)
            }
        }
        "/close-query" => {
            let id: Value = serde_json::from_str(&body).unwrap();
            state
                .closed_queries
                .lock()
                .unwrap()
                .push(id["queryId"].as_str().unwrap().to_string());
            full(200, "")
        }
        "/inserts-stream" => {
            let mut lines = body.lines().filter(|l| !l.trim().is_empty());
            let target: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            assert_eq!(target["target"], "READINGS");
            let rows: Vec<&str> = lines.collect();
            // Acks in reverse order: the protocol does not promise any order.
            let mut acks = String::new();
            for (seq, row) in rows.iter().enumerate().rev() {
                if row.contains("bad") {
                    acks.push_str(&format!(
                        "{{\"status\":\"error\",\"seq\":{seq},\"error_code\":40000,\"message\":\"Failed to deserialise\"}}\n"
                    ));
                } else {
                    acks.push_str(&format!("{{\"status\":\"ok\",\"seq\":{seq}}}\n"));
                }
            }
            chunked(split_every(&acks, 9), false)
        }
        "/info" => full(200, "{\"KsqlServerInfo\":{\"version\":\"0.29.0\"}}"),
        _ => full(404, "{\"error_code\":40400,\"message\":\"not found\"}"),
    };
    Ok(response)
}

/// Starts the double on a free port; `http2` selects HTTP/2 (prior knowledge) over HTTP/1.1.
fn start_server(runtime: &tokio::runtime::Runtime, http2: bool) -> (SocketAddr, Arc<Recorded>) {
    let state = Arc::new(Recorded::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let served = state.clone();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = served.clone();
            state.open_connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let counter = state.clone();
                let service = hyper::service::service_fn(move |r| handle(r, state.clone()));
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
                counter.open_connections.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (address, state)
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn never() -> impl FnMut() -> bool {
    || false
}

const POLICY: BatchPolicy = BatchPolicy {
    max_rows: 4,
    max_wait: Duration::from_millis(500),
    idle_timeout: None,
};

#[test]
fn query_over_http1_in_odd_chunks_with_keep_alives() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, false);
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM SENSORS EMIT CHANGES LIMIT 10;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::Query,
            &mut never(),
        )
        .unwrap();
    stream
        .wait_for_header(Duration::from_secs(5), &mut never())
        .unwrap();
    assert_eq!(stream.query_id(), Some("transient_SENSORS_42"));
    let schema = stream.schema().unwrap();
    assert_eq!(schema.field(1).name(), "NAME");
    let mut ids = Vec::new();
    let mut names = Vec::new();
    while let Some(batch) = stream.next_batch(POLICY, &mut never()).unwrap() {
        assert!(batch.num_rows() <= 4);
        ids.extend_from_slice(batch.column(0).as_primitive::<Int64Type>().values());
        names.extend(
            batch
                .column(1)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string()),
        );
    }
    assert_eq!(ids, (0..10).collect::<Vec<i64>>());
    assert_eq!(names[3], "sensor \"3\" é");
    assert_eq!(stream.final_message(), Some("Limit Reached"));
    assert!(stream.is_finished());
    let requests = state.requests.lock().unwrap();
    let body: Value = serde_json::from_str(&requests[0].1).unwrap();
    assert_eq!(body["ksql"], "SELECT * FROM SENSORS EMIT CHANGES LIMIT 10;");
    assert_eq!(requests[0].3, "HTTP/1.1");
    // A finished query is not closed again.
    assert!(!stream.close(&mut never()));
    assert!(state.closed_queries.lock().unwrap().is_empty());
}

#[test]
fn push_query_over_http2_prior_knowledge_limit_closes_it() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, true);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.http2 = true;
    let client = KsqlClient::new(options).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM READINGS EMIT CHANGES;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    stream.set_limit(Some(3));
    stream
        .wait_for_header(Duration::from_secs(5), &mut never())
        .unwrap();
    assert_eq!(stream.query_id(), Some("push-1"));
    let mut values = Vec::new();
    while let Some(batch) = stream.next_batch(POLICY, &mut never()).unwrap() {
        values.extend_from_slice(batch.column(1).as_primitive::<Float64Type>().values());
    }
    assert_eq!(values, [0.25, 1.25, 2.25]);
    assert_eq!(*state.closed_queries.lock().unwrap(), ["push-1"]);
    let requests = state.requests.lock().unwrap();
    assert_eq!(requests[0].3, "HTTP/2.0");
    let body: Value = serde_json::from_str(&requests[0].1).unwrap();
    assert_eq!(body["sql"], "SELECT * FROM READINGS EMIT CHANGES;");
}

#[test]
fn push_query_idle_timeout_ends_and_closes_it() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, true);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.http2 = true;
    let client = KsqlClient::new(options).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM READINGS EMIT CHANGES;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    let started = Instant::now();
    let policy = BatchPolicy {
        idle_timeout: Some(Duration::from_millis(300)),
        ..POLICY
    };
    let mut rows = 0;
    while let Some(batch) = stream.next_batch(policy, &mut never()).unwrap() {
        rows += batch.num_rows();
    }
    // Keep-alives keep coming, but they are not rows: the idle timeout ends the query.
    assert_eq!(rows, 5);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*state.closed_queries.lock().unwrap(), ["push-1"]);
}

#[test]
fn interrupt_stops_a_push_query_promptly() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, true);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.http2 = true;
    let client = KsqlClient::new(options).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM READINGS EMIT CHANGES;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    let started = Instant::now();
    let mut interrupt = || started.elapsed() > Duration::from_millis(400);
    let policy = BatchPolicy {
        max_rows: 1000,
        max_wait: Duration::from_secs(60),
        idle_timeout: None,
    };
    let error = stream.next_batch(policy, &mut interrupt).unwrap_err();
    assert!(matches!(error, KsqlError::Interrupted), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(stream.close(&mut never()));
    assert_eq!(*state.closed_queries.lock().unwrap(), ["push-1"]);
}

#[test]
fn error_mid_stream_comes_after_the_rows_before_it() {
    let runtime = server_runtime();
    let (address, _state) = start_server(&runtime, false);
    // HTTP/1.1 to /query-stream (the server allows it here).
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM FAIL;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    let batch = stream
        .next_batch(
            BatchPolicy {
                max_rows: 100,
                ..POLICY
            },
            &mut never(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(batch.num_rows(), 5);
    let error = stream.next_batch(POLICY, &mut never()).unwrap_err();
    assert_eq!(error.error_code(), Some(50000));
    let text = error.to_string();
    assert!(
        text.contains("/query-stream") && text.contains("deserialization failed"),
        "{text}"
    );
    assert!(stream.next_batch(POLICY, &mut never()).unwrap().is_none());
}

#[test]
fn inserts_acks_out_of_order_are_put_in_row_order() {
    let runtime = server_runtime();
    let (address, _state) = start_server(&runtime, true);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.http2 = true;
    let client = KsqlClient::new(options).unwrap();
    let rows: Vec<String> = (0..5).map(|i| format!("{{\"ID\":{i}}}")).collect();
    let acks = client
        .insert("READINGS", &rows, true, &mut never())
        .unwrap();
    assert_eq!(
        acks.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(acks.iter().all(|a| a.ok));
    let rows = vec!["{\"ID\":1}".to_string(), "{\"ID\":\"bad\"}".to_string()];
    let acks = client
        .insert("READINGS", &rows, false, &mut never())
        .unwrap();
    assert_eq!(acks.iter().map(|a| a.ok).collect::<Vec<_>>(), [true, false]);
    match client
        .insert("READINGS", &rows, true, &mut never())
        .unwrap_err()
    {
        KsqlError::Insert {
            failed,
            first_seq,
            error_code,
            ..
        } => {
            assert_eq!((failed, first_seq, error_code), (1, 1, Some(40000)));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn basic_auth_and_not_ready_retries() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, false);
    let mut options = ClientOptions::new(format!("http://{address}/"));
    options.auth = Auth::Basic {
        username: "key".into(),
        password: "secret".into(),
    };
    options.retry_backoff = Duration::from_millis(10);
    let client = KsqlClient::new(options.clone()).unwrap();
    state.not_ready_answers.store(2, Ordering::SeqCst);
    let text = client
        .ksql("show tables;", &Map::new(), &Map::new(), None, &mut never())
        .unwrap();
    assert!(text.contains("\"tables\""));
    assert_eq!(state.requests.lock().unwrap().len(), 3);
    assert!(state
        .requests
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.2.as_deref() == Some("Basic a2V5OnNlY3JldA==")));

    // More 503s than retries: the error says so.
    state.not_ready_answers.store(10, Ordering::SeqCst);
    let error = client
        .ksql("show tables;", &Map::new(), &Map::new(), None, &mut never())
        .unwrap_err();
    assert!(
        matches!(
            error,
            KsqlError::Server {
                status: 503,
                error_code: Some(50301),
                ..
            }
        ),
        "{error}"
    );
    state.not_ready_answers.store(0, Ordering::SeqCst);

    options.auth = Auth::Basic {
        username: "key".into(),
        password: "wrong".into(),
    };
    let client = KsqlClient::new(options).unwrap();
    let error = client.get("/info", &mut never()).unwrap_err();
    assert!(
        matches!(
            error,
            KsqlError::Server {
                status: 401,
                error_code: Some(40100),
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn unreachable_server_is_a_transport_error_naming_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.connect_timeout = Duration::from_secs(2);
    let client = KsqlClient::new(options).unwrap();
    let error = client.get("/info", &mut never()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, KsqlError::Transport { .. }), "{text}");
    assert!(text.contains(&format!("http://{address}/info")), "{text}");
    assert!(KsqlClient::new(ClientOptions::new("localhost:8088")).is_err());
}

#[test]
fn a_big_query_streams_in_bounded_batches() {
    let runtime = server_runtime();
    let (address, _state) = start_server(&runtime, false);
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM BIG;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::Query,
            &mut never(),
        )
        .unwrap();
    let policy = BatchPolicy {
        max_rows: 10_000,
        max_wait: Duration::from_secs(5),
        idle_timeout: None,
    };
    let mut total = 0;
    let mut next_id = 0;
    while let Some(batch) = stream.next_batch(policy, &mut never()).unwrap() {
        assert!(batch.num_rows() <= 10_000);
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            assert_eq!(*id, next_id);
            next_id += 1;
        }
        total += batch.num_rows();
    }
    assert_eq!(total, 50_000);
}

/// Reads a whole stream in raw-lines mode.
fn all_lines(stream: &mut QueryStream, idle_timeout: Option<Duration>) -> Vec<String> {
    stream.use_raw_lines().unwrap();
    let mut lines = Vec::new();
    while let Some(more) = stream.next_lines(idle_timeout, &mut never()).unwrap() {
        lines.extend(more);
    }
    lines
}

#[test]
fn raw_lines_join_back_to_the_body_whatever_the_chunks() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, false);
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM SENSORS;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::Query,
            &mut never(),
        )
        .unwrap();
    let lines = all_lines(&mut stream, None);
    // The double sends the body in 7-byte chunks: the lines are whole all the same.
    assert_eq!(lines.concat(), ksqldb_query_response(10));
    assert_eq!(lines.len(), 12, "header, 10 rows, final message");
    assert!(lines[0].starts_with("[{\"header\""));
    assert!(lines
        .iter()
        .all(|l| l.ends_with('\n') && !l.trim().is_empty()));
    // Row 9 is followed by a keep-alive, which rides with the final message.
    assert_eq!(lines[11], "\n{\"finalMessage\":\"Limit Reached\"}]\n");
    assert_eq!(stream.query_id(), Some("transient_SENSORS_42"));
    assert!(stream.is_finished());
    assert!(!stream.close(&mut never()));
    assert!(state.closed_queries.lock().unwrap().is_empty());
}

#[test]
fn raw_lines_of_a_push_query_end_on_idle_and_close_it() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, true);
    let mut options = ClientOptions::new(format!("http://{address}"));
    options.http2 = true;
    let client = KsqlClient::new(options).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM READINGS EMIT CHANGES;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    let lines = all_lines(&mut stream, Some(Duration::from_millis(300)));
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(lines[0].starts_with("{\"queryId\":\"push-1\""));
    assert_eq!(lines[1], "[0,0.25]\n");
    // The id came from the header line, so ending the stream closed the query.
    assert_eq!(*state.closed_queries.lock().unwrap(), ["push-1"]);
}

#[test]
fn raw_lines_mode_only_before_reading_and_errors_are_lines() {
    let runtime = server_runtime();
    let (address, _state) = start_server(&runtime, false);
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let mut stream = client
        .query(
            "SELECT * FROM SENSORS;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::Query,
            &mut never(),
        )
        .unwrap();
    let error = stream.next_lines(None, &mut never()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    stream
        .wait_for_header(Duration::from_secs(5), &mut never())
        .unwrap();
    assert_eq!(
        stream.use_raw_lines().unwrap_err().kind(),
        ErrorKind::Config
    );
    // In raw-lines mode a mid-stream error is handed out as the line it is.
    let mut stream = client
        .query(
            "SELECT * FROM FAIL;",
            &Map::new(),
            &Map::new(),
            QueryEndpoint::QueryStream,
            &mut never(),
        )
        .unwrap();
    let lines = all_lines(&mut stream, None);
    assert_eq!(lines.len(), 7);
    assert!(lines[6].contains("\"error_code\":50000"));
}

#[test]
fn dropping_the_last_client_closes_its_connections() {
    let runtime = server_runtime();
    let (address, state) = start_server(&runtime, false);
    let client = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    let clone = client.clone();
    let other = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    client.get("/info", &mut never()).unwrap();
    other.get("/info", &mut never()).unwrap();
    let open = || state.open_connections.load(Ordering::SeqCst);
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while open() != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        open()
    };
    // Pooled keep-alive connections (usually one), shared by both clients.
    std::thread::sleep(Duration::from_millis(100));
    let pooled = open();
    assert!(pooled >= 1);
    drop(client);
    drop(other);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(open(), pooled, "a clone still uses the pool");
    clone.get("/info", &mut never()).unwrap();
    drop(clone);
    assert_eq!(wait_for(0), 0, "the idle connection was closed");
    // A new client to the same server builds a new pool and works.
    let again = KsqlClient::new(ClientOptions::new(format!("http://{address}"))).unwrap();
    again.get("/info", &mut never()).unwrap();
    assert_eq!(wait_for(1), 1);
}

#[test]
fn error_kinds_from_status_and_code() {
    use ErrorKind::*;
    let cases: [(u16, Option<i64>, ErrorKind); 16] = [
        (400, Some(40001), Statement),
        (400, Some(40002), WrongEndpoint),
        (400, Some(40000), BadRequest),
        (400, Some(40003), BadRequest),
        (401, Some(40100), Auth),
        (403, Some(40301), Auth),
        (401, None, Auth),
        (404, Some(40400), NotFound),
        (429, Some(42900), RateLimited),
        (503, Some(50301), NotReady),
        (503, None, NotReady),
        (500, Some(50000), Server),
        (500, None, Server),
        (599, None, Server),
        // The code wins over the status: it is the more specific.
        (400, Some(50302), NotReady),
        // Old servers: 200 with a failed command status.
        (200, None, Statement),
    ];
    for (status, code, kind) in cases {
        assert_eq!(
            ErrorKind::from_status_and_code(status, code),
            kind,
            "{status} {code:?}"
        );
    }
    let server = |status, error_code| KsqlError::Server {
        endpoint: "http://h/ksql".into(),
        status,
        error_code,
        message: "m".into(),
        statement_text: None,
        raw: String::new(),
    };
    assert_eq!(server(400, Some(40001)).kind(), Statement);
    assert_eq!(server(400, Some(40001)).kind().as_str(), "statement");
    let transport = |timed_out| KsqlError::Transport {
        endpoint: "e".into(),
        message: "m".into(),
        timed_out,
    };
    assert_eq!(transport(true).kind(), Timeout);
    assert_eq!(transport(false).kind(), Connection);
    assert_eq!(KsqlError::Interrupted.kind(), Interrupted);
    assert_eq!(KsqlError::Config("x".into()).kind().as_str(), "config");
    let stream = KsqlError::Stream {
        endpoint: "e".into(),
        error_code: Some(50000),
        message: "m".into(),
        statement_text: None,
        raw: String::new(),
    };
    assert_eq!(stream.kind(), Stream);
}
