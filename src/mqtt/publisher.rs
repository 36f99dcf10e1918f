//! A small blocking MQTT 3.1.1 publisher on the project's codec: the devices of the IoT demo,
//! the notebook and the benchmark, with no MQTT client to install.
//!
//! Publishes keep up to `in_flight` QoS 1/2 messages unacknowledged (QoS 2 goes through
//! PUBREC → PUBREL → PUBCOMP); a QoS 0 run ends with DISCONNECT and waits for the server to
//! close (which QoS 0 cannot tell from a server that refused a message and closed). A failure says how many
//! payloads were acknowledged: the ones before them in order are delivered, so a caller knows
//! where to resume.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::bridge::broker_address;
use super::codec::{
    check_topic_name, encode_client_control, split_packet, ClientPacket, Connect, ConnectReturn,
    Publish, ServerPacket, SplitError,
};
use super::MqttError;

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// 0, 1 or 2.
    pub qos: u8,
    pub client_id: String,
    /// QoS 1/2 messages sent and not yet acknowledged. Mosquitto's default
    /// `max_inflight_messages` is 20, and it drops a 3.1.1 client that sends more.
    pub in_flight: usize,
    /// How long the server may take to answer (CONNACK, an acknowledgement, the close after
    /// DISCONNECT) before the publish fails.
    pub timeout: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl PublishOptions {
    pub fn new(qos: u8) -> Self {
        PublishOptions {
            qos,
            client_id: format!("kafkaml-publisher-{}", std::process::id()),
            in_flight: 16,
            timeout: Duration::from_secs(30),
            username: None,
            password: None,
        }
    }
}

/// Seconds of keep-alive announced in CONNECT; a PINGREQ goes out when half of it passed
/// without a packet sent.
const KEEP_ALIVE: u16 = 60;
/// Writes are gathered up to this size (QoS 0 sends nothing else).
const WRITE_CHUNK: usize = 64 * 1024;
/// The longest packet a server may send us (acknowledgements are 4 bytes).
const MAX_SERVER_PACKET: usize = 64 * 1024;

/// The server's packet a QoS 1/2 message waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    /// QoS 1: PUBACK.
    Ack,
    /// QoS 2: PUBREC, then (after our PUBREL) PUBCOMP.
    Received,
    Completed,
}

impl Awaited {
    fn packet(self) -> &'static str {
        match self {
            Awaited::Ack => "PUBACK",
            Awaited::Received => "PUBREC",
            Awaited::Completed => "PUBCOMP",
        }
    }
}

struct Session {
    stream: TcpStream,
    broker: String,
    read_buffer: BytesMut,
    write_buffer: BytesMut,
    last_sent: Instant,
    timeout: Duration,
}

impl Session {
    fn fail(&self, reason: impl std::fmt::Display) -> MqttError {
        MqttError::Broker {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }

    fn flush(&mut self) -> Result<(), MqttError> {
        if self.write_buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.write_buffer);
        self.stream
            .write_all(&buffer)
            .map_err(|e| self.fail(format!("writing failed: {e}")))?;
        self.write_buffer = buffer;
        self.write_buffer.clear();
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet from the server; `Ok(None)` when it closed the connection. Sends a
    /// PINGREQ when keep-alive asks for one while waiting.
    fn next_packet(&mut self) -> Result<Option<ServerPacket>, MqttError> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 4096];
        loop {
            match split_packet(&mut self.read_buffer, MAX_SERVER_PACKET) {
                Ok(Some((header, body))) => {
                    return ServerPacket::decode(&header, body)
                        .map(Some)
                        .map_err(|e| self.fail(format!("sent a malformed packet: {e}")))
                }
                Ok(None) => {}
                Err(SplitError::Codec(e)) => {
                    return Err(self.fail(format!("sent a malformed packet: {e}")))
                }
                Err(SplitError::TooLarge(header)) => {
                    return Err(self.fail(format!(
                        "sent a packet of {} bytes (type {})",
                        header.remaining_length, header.kind
                    )))
                }
            }
            if Instant::now() >= deadline {
                return Err(self.fail(format!(
                    "no answer within {:.1} s",
                    self.timeout.as_secs_f64()
                )));
            }
            if self.last_sent.elapsed() >= Duration::from_secs(u64::from(KEEP_ALIVE / 2)) {
                encode_client_control(&ClientPacket::PingReq, &mut self.write_buffer);
                self.flush()?;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                // A server that closes with our bytes unread resets the connection: closed.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(None)
                }
                Ok(n) => self.read_buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("reading failed: {e}"))),
            }
        }
    }
}

/// Publishes every payload to `topic` on the MQTT server at `url` (`mqtt://host:port` or
/// `host:port`), in order; returns how many were published (for QoS 1/2: acknowledged).
pub fn publish<P: AsRef<[u8]>>(
    url: &str,
    topic: &str,
    payloads: &[P],
    options: &PublishOptions,
) -> Result<u64, MqttError> {
    if options.qos > 2 {
        return Err(MqttError::Config(format!(
            "QoS must be 0, 1 or 2, got {}",
            options.qos
        )));
    }
    check_topic_name(topic).map_err(|_| {
        MqttError::Config(format!(
            "cannot publish to MQTT topic {topic:?}: a topic name is not empty and has no wildcard (+ or #)"
        ))
    })?;
    let broker = broker_address(url)?;
    let mut session = connect(&broker, options)?;
    let outcome = if options.qos == 0 {
        publish_at_most_once(&mut session, topic, payloads)
    } else {
        publish_acknowledged(&mut session, topic, payloads, options)
    };
    let published = outcome?;
    disconnect(&mut session)?;
    Ok(published)
}

fn connect(broker: &str, options: &PublishOptions) -> Result<Session, MqttError> {
    let fail = |reason: String| MqttError::Broker {
        broker: broker.to_string(),
        reason,
    };
    let addresses: Vec<_> = broker
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, options.timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let stream = stream.ok_or_else(|| {
        fail(match last_error {
            Some(e) => format!("cannot connect: {e}"),
            None => "resolves to no address".into(),
        })
    })?;
    let _ = stream.set_nodelay(true);
    // Reads wake up once a second to send keep-alive pings and check the deadline.
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .and_then(|_| stream.set_write_timeout(Some(options.timeout)))
        .map_err(|e| fail(e.to_string()))?;
    let mut session = Session {
        stream,
        broker: broker.to_string(),
        read_buffer: BytesMut::with_capacity(4096),
        write_buffer: BytesMut::with_capacity(WRITE_CHUNK + 4096),
        last_sent: Instant::now(),
        timeout: options.timeout,
    };
    let mut hello = Connect::new(&options.client_id, KEEP_ALIVE);
    hello.username = options.username.clone();
    hello.password = options.password.clone().map(Bytes::from);
    hello.encode(&mut session.write_buffer);
    session.flush()?;
    match session.next_packet()? {
        Some(ServerPacket::ConnAck {
            code: ConnectReturn::Accepted,
            ..
        }) => Ok(session),
        Some(ServerPacket::ConnAck { code, .. }) => {
            Err(session.fail(format!("refused the connection ({code:?})")))
        }
        Some(other) => Err(session.fail(format!("answered CONNECT with {other:?}"))),
        None => Err(session.fail("closed the connection before CONNACK")),
    }
}

fn publish_at_most_once<P: AsRef<[u8]>>(
    session: &mut Session,
    topic: &str,
    payloads: &[P],
) -> Result<u64, MqttError> {
    for payload in payloads {
        message(topic, 0, None, payload.as_ref()).encode(&mut session.write_buffer);
        if session.write_buffer.len() >= WRITE_CHUNK {
            session.flush()?;
        }
    }
    session.flush()?;
    Ok(payloads.len() as u64)
}

fn publish_acknowledged<P: AsRef<[u8]>>(
    session: &mut Session,
    topic: &str,
    payloads: &[P],
    options: &PublishOptions,
) -> Result<u64, MqttError> {
    let window = options.in_flight.clamp(1, 65_535);
    // Packet id -> (index of its payload, what it waits for).
    let mut pending: HashMap<u16, (usize, Awaited)> = HashMap::with_capacity(window);
    let mut next_id: u16 = 1;
    let mut sent = 0usize;
    // Payloads below `acknowledged_below` are all acknowledged; later ones may be too.
    let mut done = vec![false; payloads.len()];
    let mut acknowledged_below = 0usize;
    let progress = |below: usize| format!("{below} of {} acknowledged", payloads.len());
    while acknowledged_below < payloads.len() {
        while pending.len() < window && sent < payloads.len() {
            while pending.contains_key(&next_id) {
                next_id = next_id.wrapping_add(1).max(1);
            }
            let id = next_id;
            next_id = next_id.wrapping_add(1).max(1);
            message(topic, options.qos, Some(id), payloads[sent].as_ref())
                .encode(&mut session.write_buffer);
            let waiting = if options.qos == 1 {
                Awaited::Ack
            } else {
                Awaited::Received
            };
            pending.insert(id, (sent, waiting));
            sent += 1;
        }
        session.flush()?;
        let packet = session.next_packet().map_err(|e| match e {
            MqttError::Broker { broker, reason } => MqttError::Broker {
                broker,
                reason: format!("{reason} ({})", progress(acknowledged_below)),
            },
            other => other,
        })?;
        let Some(packet) = packet else {
            return Err(session.fail(format!(
                "closed the connection ({})",
                progress(acknowledged_below)
            )));
        };
        let (id, answer) = match packet {
            ServerPacket::PubAck(id) => (id, Awaited::Ack),
            ServerPacket::PubRec(id) => (id, Awaited::Received),
            ServerPacket::PubComp(id) => (id, Awaited::Completed),
            ServerPacket::PingResp => continue,
            other => return Err(session.fail(format!("sent {other:?} to a publisher"))),
        };
        match pending.get(&id).copied() {
            Some((index, waiting)) if waiting == answer => {
                if answer == Awaited::Received {
                    encode_client_control(&ClientPacket::PubRel(id), &mut session.write_buffer);
                    pending.insert(id, (index, Awaited::Completed));
                } else {
                    pending.remove(&id);
                    done[index] = true;
                    while acknowledged_below < done.len() && done[acknowledged_below] {
                        acknowledged_below += 1;
                    }
                }
            }
            _ => {
                return Err(session.fail(format!(
                    "sent {} for packet id {id}, which was not waiting for it ({})",
                    answer.packet(),
                    progress(acknowledged_below)
                )))
            }
        }
    }
    Ok(payloads.len() as u64)
}

fn message(topic: &str, qos: u8, packet_id: Option<u16>, payload: &[u8]) -> Publish {
    Publish {
        topic: topic.to_string(),
        qos,
        dup: false,
        retain: false,
        packet_id,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Sends DISCONNECT and waits for the server to close: it has read everything sent before.
fn disconnect(session: &mut Session) -> Result<(), MqttError> {
    encode_client_control(&ClientPacket::Disconnect, &mut session.write_buffer);
    session.flush()?;
    let _ = session.stream.shutdown(std::net::Shutdown::Write);
    while session.next_packet()?.is_some() {}
    Ok(())
}
