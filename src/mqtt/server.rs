//! The proxy's tokio server: one task reads a connection's packets and queues records to
//! Kafka; a second task writes its answers in order, each acknowledgement only once Kafka's
//! delivery report for its record is in.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::{self, Either, FutureExt, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::codec::{
    ClientPacket, CodecError, Connect, ConnectReturn, Publish, ServerPacket, SplitError,
    SUBSCRIBE_FAILURE,
};
use super::{MqttError, ProxyOptions, TopicMap};
use crate::kafka::producer::{DeliveryNotice, DeliveryOutcome, QueueError, RecordProducer};

/// Answers queued per connection before its reader waits (backpressure on a fast device).
const REPLY_QUEUE: usize = 4096;
/// MQTT topics whose rule is remembered per connection (devices repeat their topics).
const TOPIC_CACHE: usize = 256;
/// The pause before retrying a record librdkafka's full queue refused.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);
/// A PUBLISH's bytes besides its payload: topic length prefix, topic, packet id.
const PUBLISH_OVERHEAD: usize = 2 + 65_535 + 2;

/// A record's delivery, awaitable by its acknowledgement and by retransmissions of it.
type Delivery = Shared<oneshot::Receiver<DeliveryOutcome>>;

/// What the proxy remembers of a client between PUBREC and PUBREL: the QoS 2 packet ids it
/// produced, so retransmissions are not produced again.
#[derive(Default)]
struct Session {
    received: Mutex<HashMap<u16, Delivery>>,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Delivery>> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets `id` if it still stands for `delivery` (after that delivery failed).
    fn forget(&self, id: u16, delivery: &Delivery) {
        let mut received = self.lock();
        if received.get(&id).is_some_and(|d| d.ptr_eq(delivery)) {
            received.remove(&id);
        }
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    connected: AtomicU64,
    received: AtomicU64,
    received_by_qos: [AtomicU64; 3],
    duplicates: AtomicU64,
    refused_unmatched: AtomicU64,
    refused_too_large: AtomicU64,
    refused_retained: AtomicU64,
    refused_connections: AtomicU64,
    refused_credentials: AtomicU64,
    subscriptions_refused: AtomicU64,
    send_errors: AtomicU64,
    closed_on_kafka_error: AtomicU64,
    protocol_errors: AtomicU64,
    keepalive_timeouts: AtomicU64,
    wills: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A proxy's counters (`stats()` in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted, and open now.
    pub connections: u64,
    pub connected: u64,
    /// PUBLISH packets received, in all and by QoS.
    pub received: u64,
    pub received_qos0: u64,
    pub received_qos1: u64,
    pub received_qos2: u64,
    /// Records Kafka acknowledged.
    pub written: u64,
    /// QoS 2 retransmissions answered without producing again.
    pub duplicates: u64,
    /// PUBLISHes refused (each closed its connection): the sum of the three below.
    pub refused: u64,
    pub refused_unmatched: u64,
    pub refused_too_large: u64,
    pub refused_retained: u64,
    /// CONNECTs answered with a refusal (protocol version, client id, retained will).
    pub refused_connections: u64,
    /// Of those, CONNECTs without the credentials `users` asks for.
    pub refused_credentials: u64,
    /// Topic filters of SUBSCRIBE packets, each answered with failure 0x80.
    pub subscriptions_refused: u64,
    /// Records Kafka failed or librdkafka would not queue.
    pub kafka_errors: u64,
    /// Connections closed because a record they waited on failed (no PUBACK/PUBREC sent).
    pub closed_on_kafka_error: u64,
    /// Connections closed for a malformed or unexpected packet.
    pub protocol_errors: u64,
    pub keepalive_timeouts: u64,
    /// Last-will messages written after a connection ended without DISCONNECT.
    pub wills: u64,
    /// Records queued and not yet acknowledged.
    pub in_flight: u64,
}

/// What the connections share.
struct Proxy {
    producer: RecordProducer,
    topics: TopicMap,
    max_message_bytes: usize,
    connect_timeout: Duration,
    drain_timeout: Duration,
    users: BTreeMap<String, String>,
    counters: Counters,
    /// Sessions of clients that connected with `clean session = 0`, by client id.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

/// An MQTT proxy serving until [`MqttProxy::stop`] (or drop).
pub struct MqttProxy {
    proxy: Arc<Proxy>,
    address: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MqttProxy {
    /// Connects the producer to Kafka (checking the rules' topics), then accepts connections.
    pub fn start(options: ProxyOptions) -> Result<Self, MqttError> {
        if options.topics.is_empty() {
            return Err(MqttError::Config(
                "no topic rules: nothing could be written".into(),
            ));
        }
        if options.max_message_bytes == 0 {
            return Err(MqttError::Config(
                "mqtt.message.max.bytes must be at least 1".into(),
            ));
        }
        let defaults = super::producer_defaults(options.timeout);
        let producer = RecordProducer::new(
            &options.bootstrap,
            &defaults,
            &options.producer_config,
            &options.topics.kafka_topics(),
            options.timeout,
        )?;
        let crate::serve::Listening {
            runtime,
            listener,
            address,
        } = crate::serve::listen(&options.listen, "mqtt-proxy").map_err(|e| match e {
            crate::serve::ListenError::Bind(e) => MqttError::Listen {
                listen: options.listen.clone(),
                reason: e.to_string(),
            },
            crate::serve::ListenError::Runtime(e) => {
                MqttError::Config(format!("cannot start the MQTT server: {e}"))
            }
        })?;
        let proxy = Arc::new(Proxy {
            producer,
            topics: options.topics,
            max_message_bytes: options.max_message_bytes,
            connect_timeout: options.connect_timeout,
            users: options.users.clone(),
            drain_timeout: options.timeout + Duration::from_secs(1),
            counters: Counters::default(),
            sessions: Mutex::new(HashMap::new()),
        });
        runtime.spawn(accept_loop(listener, proxy.clone()));
        Ok(MqttProxy {
            proxy,
            address,
            runtime: Some(runtime),
        })
    }

    /// `mqtt://host:port` (127.0.0.1 when listening on all addresses).
    pub fn url(&self) -> String {
        crate::serve::url("mqtt", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    pub fn topics(&self) -> &TopicMap {
        &self.proxy.topics
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.proxy.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (written, failed) = self.proxy.producer.counts();
        let refused_unmatched = load(&c.refused_unmatched);
        let refused_too_large = load(&c.refused_too_large);
        let refused_retained = load(&c.refused_retained);
        ProxyStats {
            connections: load(&c.connections),
            connected: load(&c.connected),
            received: load(&c.received),
            received_qos0: load(&c.received_by_qos[0]),
            received_qos1: load(&c.received_by_qos[1]),
            received_qos2: load(&c.received_by_qos[2]),
            written,
            duplicates: load(&c.duplicates),
            refused: refused_unmatched + refused_too_large + refused_retained,
            refused_unmatched,
            refused_too_large,
            refused_retained,
            refused_connections: load(&c.refused_connections),
            refused_credentials: load(&c.refused_credentials),
            subscriptions_refused: load(&c.subscriptions_refused),
            kafka_errors: failed + load(&c.send_errors),
            closed_on_kafka_error: load(&c.closed_on_kafka_error),
            protocol_errors: load(&c.protocol_errors),
            keepalive_timeouts: load(&c.keepalive_timeouts),
            wills: load(&c.wills),
            in_flight: self.proxy.producer.in_flight().max(0) as u64,
        }
    }

    /// Closes every connection (answers not yet sent are not sent), then waits up to the
    /// timeout for the records already queued to reach Kafka.
    pub fn stop(&mut self) -> Result<(), MqttError> {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
            self.proxy.producer.flush()?;
        }
        Ok(())
    }
}

impl Drop for MqttProxy {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, proxy: Arc<Proxy>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, proxy.clone()));
    }
}

/// Reads whole packets off a connection, refusing oversized ones before their bodies arrive.
struct PacketReader {
    stream: OwnedReadHalf,
    buffer: BytesMut,
    max_remaining: usize,
}

enum ReadError {
    /// The connection closed (or failed) between packets or inside one.
    Closed,
    Codec(CodecError),
    TooLarge,
}

impl PacketReader {
    /// The next packet; cancel-safe (a partial packet stays in the buffer).
    async fn next(&mut self) -> Result<ClientPacket, ReadError> {
        loop {
            match super::codec::split_packet(&mut self.buffer, self.max_remaining) {
                Ok(Some((header, body))) => {
                    return ClientPacket::decode(&header, body).map_err(ReadError::Codec)
                }
                Ok(None) => {}
                Err(SplitError::Codec(error)) => return Err(ReadError::Codec(error)),
                Err(SplitError::TooLarge(_)) => return Err(ReadError::TooLarge),
            }
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
    }
}

/// An answer for the writer task, in the order the packets came in.
enum Reply {
    Now(ServerPacket),
    /// Sent once `delivery` succeeded; if it failed the connection closes instead (and a
    /// QoS 2 id is forgotten, so a retransmission is produced again).
    AfterDelivery {
        packet: ServerPacket,
        delivery: Delivery,
        qos2: Option<(Arc<Session>, u16)>,
    },
}

/// How a connection's reading ended.
enum End {
    /// DISCONNECT: the will is discarded.
    Clean,
    /// Anything else: the will, if any, is written.
    Unclean,
}

/// Serves one connection from CONNECT to close.
async fn serve(stream: TcpStream, proxy: Arc<Proxy>) {
    let counters = &proxy.counters;
    bump(&counters.connections);
    bump(&counters.connected);
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = PacketReader {
        stream: read_half,
        buffer: BytesMut::with_capacity(4096),
        max_remaining: proxy.max_message_bytes + PUBLISH_OVERHEAD,
    };
    if let Some((connect, session)) = handshake(&mut reader, &mut write_half, &proxy).await {
        let (replies, queued) = mpsc::channel(REPLY_QUEUE);
        let writer = tokio::spawn(write_replies(write_half, queued, proxy.clone()));
        let end = read_packets(&mut reader, &connect, &session, replies, writer, &proxy).await;
        if let (End::Unclean, Some(will)) = (end, &connect.will) {
            write_will(&proxy, will);
        }
        if !connect.clean_session {
            let mut sessions = proxy.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let stored = sessions.get(&connect.client_id);
            if session.lock().is_empty() && stored.is_some_and(|s| Arc::ptr_eq(s, &session)) {
                sessions.remove(&connect.client_id);
            }
        }
    }
    counters.connected.fetch_sub(1, Ordering::Relaxed);
}

/// Reads CONNECT, answers CONNACK; `None` when the connection ends here.
async fn handshake(
    reader: &mut PacketReader,
    write_half: &mut OwnedWriteHalf,
    proxy: &Proxy,
) -> Option<(Connect, Arc<Session>)> {
    let counters = &proxy.counters;
    let connect = match tokio::time::timeout(proxy.connect_timeout, reader.next()).await {
        Ok(Ok(ClientPacket::Connect(connect))) => connect,
        // §3.1.4: a server that does not support the level answers 0x01 and closes.
        Ok(Err(ReadError::Codec(CodecError::UnsupportedProtocol { .. }))) => {
            refuse(write_half, proxy, ConnectReturn::UnacceptableProtocol).await;
            return None;
        }
        Ok(Err(ReadError::Closed)) => return None,
        Err(_) | Ok(_) => {
            bump(&counters.protocol_errors);
            return None;
        }
    };
    if connect.client_id.is_empty() && !connect.clean_session {
        refuse(write_half, proxy, ConnectReturn::IdentifierRejected).await;
        return None;
    }
    if connect.will.as_ref().is_some_and(|w| w.retain) {
        // A retained will asks for broker storage this proxy does not have.
        bump(&counters.refused_retained);
        refuse(write_half, proxy, ConnectReturn::NotAuthorized).await;
        return None;
    }
    if !proxy.users.is_empty() {
        let expected = connect
            .username
            .as_ref()
            .and_then(|name| proxy.users.get(name));
        let matches = match (expected, &connect.password) {
            (Some(expected), Some(given)) => same_secret(expected.as_bytes(), given),
            _ => false,
        };
        if !matches {
            bump(&counters.refused_credentials);
            let code = if connect.username.is_none() {
                ConnectReturn::NotAuthorized
            } else {
                ConnectReturn::BadUsernameOrPassword
            };
            refuse(write_half, proxy, code).await;
            return None;
        }
    }
    let (session, session_present) = {
        let mut sessions = proxy.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if connect.clean_session {
            sessions.remove(&connect.client_id);
            (Arc::new(Session::default()), false)
        } else {
            let present = sessions.contains_key(&connect.client_id);
            let session = sessions.entry(connect.client_id.clone()).or_default();
            (session.clone(), present)
        }
    };
    let mut out = BytesMut::new();
    ServerPacket::ConnAck {
        session_present,
        code: ConnectReturn::Accepted,
    }
    .encode(&mut out);
    write_half.write_all(&out).await.ok()?;
    Some((connect, session))
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Answers CONNECT with a refusal and closes.
async fn refuse(write_half: &mut OwnedWriteHalf, proxy: &Proxy, code: ConnectReturn) {
    bump(&proxy.counters.refused_connections);
    let mut out = BytesMut::new();
    ServerPacket::ConnAck {
        session_present: false,
        code,
    }
    .encode(&mut out);
    let _ = write_half.write_all(&out).await;
    let _ = write_half.shutdown().await;
}

/// Reads packets until the connection ends; queues records and answers.
async fn read_packets(
    reader: &mut PacketReader,
    connect: &Connect,
    session: &Arc<Session>,
    replies: mpsc::Sender<Reply>,
    mut writer: tokio::task::JoinHandle<()>,
    proxy: &Proxy,
) -> End {
    let counters = &proxy.counters;
    // §3.1.2.10: one and a half keep-alive periods without a packet close the connection.
    let keep_alive = (connect.keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    let mut rules: HashMap<String, Option<usize>> = HashMap::new();
    let end = loop {
        let read = async {
            match keep_alive {
                Some(period) => tokio::time::timeout(period, reader.next()).await.ok(),
                None => Some(reader.next().await),
            }
        };
        // The writer ends first when a delivery failed or the socket broke.
        let packet = match future::select(&mut writer, std::pin::pin!(read)).await {
            Either::Left(_) => return End::Unclean,
            Either::Right((read, _)) => read,
        };
        let packet = match packet {
            None => {
                bump(&counters.keepalive_timeouts);
                break End::Unclean;
            }
            Some(Err(ReadError::Closed)) => break End::Unclean,
            Some(Err(ReadError::Codec(_))) => {
                bump(&counters.protocol_errors);
                break End::Unclean;
            }
            Some(Err(ReadError::TooLarge)) => {
                bump(&counters.received);
                bump(&counters.refused_too_large);
                break End::Unclean;
            }
            Some(Ok(packet)) => packet,
        };
        let reply = match packet {
            ClientPacket::Publish(publish) => {
                match publish_to_kafka(publish, session, &mut rules, proxy).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => continue,
                    Err(()) => break End::Unclean,
                }
            }
            ClientPacket::PubRel(id) => {
                session.lock().remove(&id);
                Reply::Now(ServerPacket::PubComp(id))
            }
            ClientPacket::Subscribe { packet_id, filters } => {
                counters
                    .subscriptions_refused
                    .fetch_add(filters.len() as u64, Ordering::Relaxed);
                Reply::Now(ServerPacket::SubAck {
                    packet_id,
                    codes: vec![SUBSCRIBE_FAILURE; filters.len()],
                })
            }
            ClientPacket::Unsubscribe { packet_id, .. } => {
                Reply::Now(ServerPacket::UnsubAck(packet_id))
            }
            ClientPacket::PingReq => Reply::Now(ServerPacket::PingResp),
            ClientPacket::Disconnect => break End::Clean,
            // A second CONNECT (§3.1.0-2), or acknowledgements of publishes never sent.
            ClientPacket::Connect(_)
            | ClientPacket::PubAck(_)
            | ClientPacket::PubRec(_)
            | ClientPacket::PubComp(_) => {
                bump(&counters.protocol_errors);
                break End::Unclean;
            }
        };
        if replies.send(reply).await.is_err() {
            break End::Unclean;
        }
    };
    // Answers already queued (PUBACKs of records Kafka is still acknowledging) still go out
    // before the connection closes.
    drop(replies);
    if tokio::time::timeout(proxy.drain_timeout, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    end
}

/// Queues one PUBLISH as a record; the answer to send for it, or `Err` to close.
async fn publish_to_kafka(
    publish: Publish,
    session: &Arc<Session>,
    rules: &mut HashMap<String, Option<usize>>,
    proxy: &Proxy,
) -> Result<Option<Reply>, ()> {
    let counters = &proxy.counters;
    bump(&counters.received);
    bump(&counters.received_by_qos[usize::from(publish.qos.min(2))]);
    if publish.payload.len() > proxy.max_message_bytes {
        bump(&counters.refused_too_large);
        return Err(());
    }
    if publish.retain {
        bump(&counters.refused_retained);
        return Err(());
    }
    let rule = match rules.get(&publish.topic) {
        Some(rule) => *rule,
        None => {
            let rule = proxy.topics.find(&publish.topic);
            if rules.len() >= TOPIC_CACHE {
                rules.clear();
            }
            rules.insert(publish.topic.clone(), rule);
            rule
        }
    };
    let Some(rule) = rule else {
        bump(&counters.refused_unmatched);
        return Err(());
    };
    let kafka_topic = proxy.topics.rules()[rule].kafka_topic.as_str();
    let id = publish.packet_id.unwrap_or(0);
    if publish.qos == 2 {
        let mut received = session.lock();
        if let Some(earlier) = received.get(&id) {
            // The same id before PUBREL is a retransmission (§4.3.3), DUP flag or not;
            // unless its record failed, in which case it is produced again below.
            let failed = matches!(earlier.clone().now_or_never(), Some(Ok(Err(_)) | Err(_)));
            if !failed {
                bump(&counters.duplicates);
                return Ok(Some(Reply::AfterDelivery {
                    packet: ServerPacket::PubRec(id),
                    delivery: earlier.clone(),
                    qos2: Some((session.clone(), id)),
                }));
            }
            received.remove(&id);
        }
    }
    let (notice, delivery) = if publish.qos == 0 {
        (DeliveryNotice::Count, None)
    } else {
        let (sender, receiver) = oneshot::channel();
        (DeliveryNotice::Notify(sender), Some(receiver.shared()))
    };
    let key = publish.topic.as_bytes();
    let mut notice = notice;
    loop {
        match proxy
            .producer
            .send(kafka_topic, key, &publish.payload, notice)
        {
            Ok(()) => break,
            Err((QueueError::Full, returned)) => {
                notice = returned;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((QueueError::Failed(_), _)) => {
                bump(&counters.send_errors);
                return Err(());
            }
        }
    }
    Ok(match (publish.qos, delivery) {
        (1, Some(delivery)) => Some(Reply::AfterDelivery {
            packet: ServerPacket::PubAck(id),
            delivery,
            qos2: None,
        }),
        (2, Some(delivery)) => {
            session.lock().insert(id, delivery.clone());
            Some(Reply::AfterDelivery {
                packet: ServerPacket::PubRec(id),
                delivery,
                qos2: Some((session.clone(), id)),
            })
        }
        _ => None,
    })
}

/// A will is written like a QoS 0 publish when its topic maps (counted as refused if not).
fn write_will(proxy: &Proxy, will: &super::codec::LastWill) {
    let Some(rule) = proxy.topics.find(&will.topic) else {
        bump(&proxy.counters.refused_unmatched);
        return;
    };
    if will.payload.len() > proxy.max_message_bytes {
        bump(&proxy.counters.refused_too_large);
        return;
    }
    let topic = &proxy.topics.rules()[rule].kafka_topic;
    match proxy.producer.send(
        topic,
        will.topic.as_bytes(),
        &will.payload,
        DeliveryNotice::Count,
    ) {
        Ok(()) => bump(&proxy.counters.wills),
        Err(_) => bump(&proxy.counters.send_errors),
    }
}

/// Writes the answers in order; returns when the channel closes, a delivery fails or the
/// socket breaks.
async fn write_replies(
    mut stream: OwnedWriteHalf,
    mut replies: mpsc::Receiver<Reply>,
    proxy: Arc<Proxy>,
) {
    let mut out = BytesMut::with_capacity(4096);
    while let Some(reply) = replies.recv().await {
        let packet = match reply {
            Reply::Now(packet) => packet,
            Reply::AfterDelivery {
                packet,
                delivery,
                qos2,
            } => {
                let outcome = match delivery.clone().now_or_never() {
                    Some(outcome) => outcome,
                    None => {
                        // Send what is ready before waiting for Kafka.
                        if !out.is_empty() && stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                        delivery.clone().await
                    }
                };
                if !matches!(outcome, Ok(Ok(()))) {
                    // No PUBACK/PUBREC for a record Kafka does not have: close, so the
                    // device retransmits on its next connection.
                    bump(&proxy.counters.closed_on_kafka_error);
                    if let Some((session, id)) = qos2 {
                        session.forget(id, &delivery);
                    }
                    break;
                }
                packet
            }
        };
        packet.encode(&mut out);
        if replies.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
    if !out.is_empty() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.shutdown().await;
}
