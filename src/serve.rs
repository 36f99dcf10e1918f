//! What the embedded services (Schema Registry, KSQL server, MQTT proxy) share to listen: a
//! bound socket handed to a small tokio runtime of their own, and the URL clients are given.

use std::net::SocketAddr;

/// A socket bound and ready for a service's accept loop.
pub struct Listening {
    pub runtime: tokio::runtime::Runtime,
    pub listener: tokio::net::TcpListener,
    pub address: SocketAddr,
}

/// Why a service could not listen.
#[derive(Debug)]
pub enum ListenError {
    /// The address could not be bound (in use, not local, malformed).
    Bind(std::io::Error),
    /// The service's runtime could not start.
    Runtime(std::io::Error),
}

/// Binds `listen` (`host:port`; port 0 picks a free one) and starts a two-thread runtime
/// named `thread_name` that owns the listener.
pub fn listen(listen: &str, thread_name: &str) -> Result<Listening, ListenError> {
    let listener = std::net::TcpListener::bind(listen).map_err(ListenError::Bind)?;
    let address = listener.local_addr().map_err(ListenError::Bind)?;
    listener.set_nonblocking(true).map_err(ListenError::Bind)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(thread_name)
        .enable_io()
        .enable_time()
        .build()
        .map_err(ListenError::Runtime)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(ListenError::Bind)?
    };
    Ok(Listening {
        runtime,
        listener,
        address,
    })
}

/// `scheme://host:port` for clients: 127.0.0.1 when listening on all addresses, IPv6 hosts
/// in brackets.
pub fn url(scheme: &str, address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}", address.port())
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit. The rest of it was read and dropped (up to [`DRAIN_LIMIT`] bytes
    /// or [`DRAIN_TIME`]) so the client, still sending, reads the answer instead of a reset.
    TooLarge(usize),
    /// The connection failed while the body was being read.
    Read(String),
}

/// How much of an oversized body is read and dropped before the connection is given up.
pub const DRAIN_LIMIT: usize = 256 * 1024 * 1024;
/// How long an oversized body is drained before the connection is given up.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a request body of at most `limit` bytes. An answer sent while the client is still
/// writing (and the socket closed under it) reaches clients such as urllib as a broken
/// pipe, not as the 413, so a body over the limit is read to its end without being kept.
pub async fn read_body<B>(mut body: B, limit: usize) -> Result<bytes::Bytes, BodyError>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let started = std::time::Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if !kept.is_empty() {
            kept = bytes::BytesMut::new(); // the part read so far is not needed any more
        } else if seen > DRAIN_LIMIT || started.elapsed() > DRAIN_TIME {
            break;
        }
    }
    if seen > limit {
        Err(BodyError::TooLarge(limit))
    } else {
        Ok(kept.freeze())
    }
}
