//! A bridge from an MQTT broker (Mosquitto, HiveMQ, ...) into Kafka: the Kafka Connect MQTT
//! source's job without a Connect cluster. It subscribes to topic filters and writes each
//! message it receives as the proxy does (key = the MQTT topic, value = the payload, the Kafka
//! topic of the first matching rule).
//!
//! # Guarantees
//!
//! - The session is persistent (`clean session = 0`, a fixed client id): while the bridge is
//!   away or reconnecting, the broker keeps the QoS 1/2 messages for it.
//! - QoS 1 PUBACK and QoS 2 PUBREC go to the broker only after Kafka acknowledged the record,
//!   in the order the messages came (§4.6). QoS 2 packet ids are kept from PUBREC to PUBREL,
//!   across reconnections, so a retransmitted (DUP) message is answered without writing it
//!   again.
//! - A record Kafka fails (or librdkafka refuses) is never acknowledged: the bridge drops the
//!   connection and reconnects, and the broker delivers the message again (`kafka_errors`).
//! - Messages on topics no rule matches are acknowledged and counted (`unmatched`): left
//!   unacknowledged, the broker would send them again forever.
//! - It reconnects after 0.1 s, doubling up to 5 s, and after a keep-alive goes unanswered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::codec::{
    encode_client_control, ClientPacket, Connect, ConnectReturn, FixedHeader, ServerPacket,
    SplitError, SUBSCRIBE_FAILURE,
};
use super::{MqttError, TopicMap};
use crate::kafka::producer::{DeliveryNotice, DeliveryOutcome, QueueError, RecordProducer};

/// The first pause before reconnecting, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LONGEST_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting, CONNACK and SUBACK may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping bridge waits for the acknowledgements still owed to the broker.
const STOP_DRAIN: Duration = Duration::from_secs(5);
/// The pause before retrying a record librdkafka's full queue refused.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);
/// MQTT's largest remaining length (§2.2.3).
const MAX_PACKET: usize = 268_435_455;
/// The packet id of the bridge's one SUBSCRIBE per connection.
const SUBSCRIBE_ID: u16 = 1;

/// What a [`MqttBridge`] connects to and how.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// Kafka's bootstrap servers.
    pub bootstrap: String,
    /// The MQTT broker, `host:port`.
    pub broker: String,
    pub topics: TopicMap,
    /// Topic filters to subscribe to, with the QoS asked for each.
    pub subscriptions: Vec<(String, u8)>,
    /// The client id the broker keeps the bridge's session under.
    pub client_id: String,
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    /// librdkafka properties for the producer, over the bridge's defaults.
    pub producer_config: Vec<(String, String)>,
    /// How long Kafka may take to acknowledge a record before it counts as failed.
    pub timeout: Duration,
}

impl BridgeOptions {
    /// Every topic (`#`) at QoS 1, client id `kafkaml-bridge`, keep-alive 30 s.
    pub fn new(bootstrap: &str, broker: &str, topics: TopicMap) -> Self {
        BridgeOptions {
            bootstrap: bootstrap.to_string(),
            broker: broker.to_string(),
            topics,
            subscriptions: vec![("#".to_string(), 1)],
            client_id: "kafkaml-bridge".to_string(),
            keep_alive: Duration::from_secs(30),
            username: None,
            password: None,
            producer_config: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `host:port` of an MQTT broker given as `mqtt://host:port`, `tcp://host:port`, `host:port`
/// or `host` (port 1883).
pub fn broker_address(url: &str) -> Result<String, MqttError> {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(MqttError::Config(format!(
                "MQTT broker {url:?}: scheme {scheme:?} is not supported (mqtt:// or tcp://; TLS is not supported yet)"
            )))
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(MqttError::Config(format!(
            "MQTT broker {url:?}: expected mqtt://host:port"
        )));
    }
    let has_port = match rest.rsplit_once(':') {
        // An IPv6 address without brackets has colons but no port.
        Some((host, port)) => !host.contains(':') || host.ends_with(']') && !port.is_empty(),
        None => false,
    };
    Ok(if has_port {
        rest.to_string()
    } else {
        format!("{rest}:1883")
    })
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    received: AtomicU64,
    received_by_qos: [AtomicU64; 3],
    unmatched: AtomicU64,
    duplicates: AtomicU64,
    kafka_errors: AtomicU64,
    protocol_errors: AtomicU64,
    keepalive_timeouts: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A bridge's counters (`stats()` in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeStats {
    /// Sessions established with the broker (the first and each reconnection).
    pub connections: u64,
    /// Connected to the broker now.
    pub connected: bool,
    /// PUBLISH packets received, in all and by QoS (a redelivery counts again).
    pub received: u64,
    pub received_qos0: u64,
    pub received_qos1: u64,
    pub received_qos2: u64,
    /// Records Kafka acknowledged.
    pub written: u64,
    /// Messages on topics no rule matches (acknowledged, not written).
    pub unmatched: u64,
    /// QoS 2 redeliveries answered without writing again.
    pub duplicates: u64,
    /// Records Kafka failed (the producer's count) or librdkafka refused: a QoS 1/2 one dropped
    /// the connection unacknowledged.
    pub kafka_errors: u64,
    /// Connections dropped for a packet the bridge could not read.
    pub protocol_errors: u64,
    /// Connections dropped because the broker stopped answering.
    pub keepalive_timeouts: u64,
    /// Records queued and not yet acknowledged.
    pub in_flight: u64,
    /// Why the last connection ended or the last attempt failed.
    pub last_error: Option<String>,
}

/// A record's delivery, awaitable by its acknowledgement and by redeliveries of its message.
type Delivery = Shared<oneshot::Receiver<DeliveryOutcome>>;

/// What the connections of one bridge share.
struct Bridge {
    options: BridgeOptions,
    producer: RecordProducer,
    counters: Counters,
    /// QoS 2 packet ids between PUBREC and PUBREL, with their record's delivery (the broker's
    /// session outlives a connection, so this does too).
    qos2: Mutex<HashMap<u16, Delivery>>,
}

impl Bridge {
    fn note_error(&self, reason: impl Into<String>) {
        *self
            .counters
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    fn qos2(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Delivery>> {
        self.qos2.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bridge running until [`MqttBridge::stop`] (or drop).
pub struct MqttBridge {
    bridge: Arc<Bridge>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MqttBridge {
    /// Connects the producer to Kafka (checking the rules' topics), then connects to the
    /// broker and subscribes: an unreachable broker, a refused CONNECT or a refused filter is
    /// an error here, later losses are retried.
    pub fn start(options: BridgeOptions) -> Result<Self, MqttError> {
        if options.topics.is_empty() {
            return Err(MqttError::Config(
                "no topic rules: give at least one <kafka topic>:<regex>".into(),
            ));
        }
        if options.subscriptions.is_empty() {
            return Err(MqttError::Config("no topic filters to subscribe to".into()));
        }
        for (filter, qos) in &options.subscriptions {
            check_filter(filter)?;
            if *qos > 2 {
                return Err(MqttError::Config(format!(
                    "topic filter {filter:?}: QoS {qos} (0, 1 or 2)"
                )));
            }
        }
        if options.client_id.is_empty() || options.client_id.len() > 65_535 {
            return Err(MqttError::Config(
                "the client id must be 1 to 65,535 bytes (the broker keeps the session under it)"
                    .into(),
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mqtt-bridge")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| MqttError::Config(format!("cannot start the bridge's runtime: {e}")))?;
        let bridge = Arc::new(Bridge {
            options,
            producer,
            counters: Counters::default(),
            qos2: Mutex::new(HashMap::new()),
        });
        let first = runtime
            .block_on(connect(&bridge))
            .map_err(|reason| MqttError::Broker {
                broker: bridge.options.broker.clone(),
                reason,
            })?;
        bump(&bridge.counters.connections);
        bridge.counters.connected.store(true, Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(bridge.clone(), first, stopped));
        Ok(MqttBridge {
            bridge,
            stop,
            task: Some(task),
            runtime: Some(runtime),
        })
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    pub fn topics(&self) -> &TopicMap {
        &self.bridge.options.topics
    }

    pub fn stats(&self) -> BridgeStats {
        let c = &self.bridge.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BridgeStats {
            connections: load(&c.connections),
            connected: c.connected.load(Ordering::Relaxed),
            received: load(&c.received),
            received_qos0: load(&c.received_by_qos[0]),
            received_qos1: load(&c.received_by_qos[1]),
            received_qos2: load(&c.received_by_qos[2]),
            written: self.bridge.producer.counts().0,
            unmatched: load(&c.unmatched),
            duplicates: load(&c.duplicates),
            kafka_errors: load(&c.kafka_errors) + self.bridge.producer.counts().1,
            protocol_errors: load(&c.protocol_errors),
            keepalive_timeouts: load(&c.keepalive_timeouts),
            in_flight: self.bridge.producer.in_flight().max(0) as u64,
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Sends the acknowledgements still owed (waiting up to 5 s for Kafka), disconnects, then
    /// waits up to the timeout for queued records.
    pub fn stop(&mut self) -> Result<(), MqttError> {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = runtime.block_on(async {
                tokio::time::timeout(STOP_DRAIN + Duration::from_secs(1), task).await
            });
        }
        runtime.shutdown_timeout(Duration::from_secs(1));
        self.bridge
            .counters
            .connected
            .store(false, Ordering::Relaxed);
        self.bridge.producer.flush().map_err(MqttError::Kafka)
    }
}

impl Drop for MqttBridge {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A topic filter as MQTT 3.1.1 allows it (§4.7.1): `#` only last and alone in its level,
/// `+` alone in its level.
fn check_filter(filter: &str) -> Result<(), MqttError> {
    let bad = |why: &str| MqttError::Config(format!("topic filter {filter:?}: {why}"));
    if filter.is_empty() || filter.len() > 65_535 {
        return Err(bad("must be 1 to 65,535 bytes"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
            return Err(bad("'#' must be a whole level, the last one"));
        }
        if level.contains('+') && *level != "+" {
            return Err(bad("'+' must be a whole level"));
        }
    }
    Ok(())
}

/// A connection with the session set up: CONNACK and SUBACK received.
struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// Bytes read and not yet a whole packet.
    buffer: BytesMut,
    /// Packets the broker sent before the SUBACK (a resumed session's messages).
    early: Vec<ClientPacket>,
}

/// Reads the next whole packet from the broker.
async fn read_packet(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
) -> Result<(FixedHeader, bytes::Bytes), String> {
    loop {
        match super::codec::split_packet(buffer, MAX_PACKET) {
            Ok(Some(packet)) => return Ok(packet),
            Ok(None) => {}
            Err(SplitError::Codec(e)) => return Err(format!("malformed packet: {e}")),
            Err(SplitError::TooLarge(_)) => return Err("packet larger than MQTT allows".into()),
        }
        match reader.read_buf(buffer).await {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading from the broker failed: {e}")),
        }
    }
}

/// A server-to-client packet: PUBLISH and PUBREL have the client's layout, the rest the
/// server's own.
enum Incoming {
    Client(ClientPacket),
    Server(ServerPacket),
}

fn decode(header: &FixedHeader, body: bytes::Bytes) -> Result<Incoming, String> {
    match header.kind {
        3 | 6 => ClientPacket::decode(header, body).map(Incoming::Client),
        _ => ServerPacket::decode(header, body).map(Incoming::Server),
    }
    .map_err(|e| format!("malformed packet from the broker: {e}"))
}

/// Connects, sends CONNECT (persistent session) and SUBSCRIBE, and waits for their answers.
async fn connect(bridge: &Bridge) -> Result<Connection, String> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(bridge))
        .await
        .unwrap_or_else(|_| Err(format!("no CONNACK/SUBACK within {HANDSHAKE_TIMEOUT:?}")))
}

async fn handshake(bridge: &Bridge) -> Result<Connection, String> {
    let options = &bridge.options;
    let stream = TcpStream::connect(&options.broker)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut connect = Connect::new(
        &options.client_id,
        options.keep_alive.as_secs().min(u16::MAX as u64) as u16,
    );
    connect.clean_session = false;
    connect.username = options.username.clone();
    connect.password = options.password.clone().map(bytes::Bytes::from);
    let mut out = BytesMut::new();
    connect.encode(&mut out);
    encode_client_control(
        &ClientPacket::Subscribe {
            packet_id: SUBSCRIBE_ID,
            filters: options.subscriptions.clone(),
        },
        &mut out,
    );
    writer
        .write_all(&out)
        .await
        .map_err(|e| format!("cannot send CONNECT: {e}"))?;
    let mut buffer = BytesMut::with_capacity(8192);
    let mut early = Vec::new();
    let mut accepted = false;
    loop {
        let (header, body) = read_packet(&mut reader, &mut buffer).await?;
        match decode(&header, body)? {
            Incoming::Server(ServerPacket::ConnAck { code, .. }) => {
                if code != ConnectReturn::Accepted {
                    return Err(format!("the broker refused the connection: {code:?}"));
                }
                accepted = true;
            }
            Incoming::Server(ServerPacket::SubAck { packet_id, codes }) if accepted => {
                if packet_id != SUBSCRIBE_ID {
                    return Err(format!(
                        "SUBACK for packet {packet_id}, expected {SUBSCRIBE_ID}"
                    ));
                }
                let refused: Vec<&str> = options
                    .subscriptions
                    .iter()
                    .zip(&codes)
                    .filter(|(_, code)| **code == SUBSCRIBE_FAILURE)
                    .map(|((filter, _), _)| filter.as_str())
                    .collect();
                if !refused.is_empty() || codes.len() != options.subscriptions.len() {
                    return Err(format!(
                        "the broker refused the subscription to {refused:?}"
                    ));
                }
                return Ok(Connection {
                    reader,
                    writer,
                    buffer,
                    early,
                });
            }
            Incoming::Client(packet) if accepted => early.push(packet),
            _ => return Err("unexpected packet before CONNACK/SUBACK".into()),
        }
    }
}

/// Connections until stopped: the first one given (counted by `start`), then reconnections
/// with back-off.
async fn run(bridge: Arc<Bridge>, first: Connection, mut stop: watch::Receiver<bool>) {
    let mut next = Some(first);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connection = match next.take() {
            Some(connection) => connection,
            None => {
                let attempt = tokio::select! {
                    _ = stop.changed() => return,
                    attempt = connect(&bridge) => attempt,
                };
                match attempt {
                    Ok(connection) => {
                        bump(&bridge.counters.connections);
                        bridge.counters.connected.store(true, Ordering::Relaxed);
                        connection
                    }
                    Err(reason) => {
                        bridge.note_error(reason);
                        if wait_or_stop(&mut stop, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(LONGEST_BACKOFF);
                        continue;
                    }
                }
            }
        };
        backoff = FIRST_BACKOFF;
        let ended = serve(&bridge, connection, &mut stop).await;
        bridge.counters.connected.store(false, Ordering::Relaxed);
        match ended {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                bridge.note_error(reason);
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps for `pause`; true when the bridge was stopped meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(pause) => *stop.borrow(),
    }
}

enum Ended {
    Stopped,
    Lost(String),
}

/// An answer owed to the broker, ready once its record's delivery is in.
type Owed = BoxFuture<'static, Result<ClientPacket, String>>;

/// One connection's life: messages in, records out, answers back in order.
async fn serve(
    bridge: &Arc<Bridge>,
    connection: Connection,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let Connection {
        mut reader,
        mut writer,
        mut buffer,
        early,
    } = connection;
    let mut owed: FuturesOrdered<Owed> = FuturesOrdered::new();
    for packet in early {
        if let Err(reason) = receive(bridge, packet, &mut owed).await {
            return Ended::Lost(reason);
        }
    }
    let keep_alive = bridge.options.keep_alive.max(Duration::from_secs(1));
    let mut ping = tokio::time::interval(keep_alive / 2);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut out = BytesMut::with_capacity(4096);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                drain(&mut owed, &mut writer).await;
                let _ = writer.write_all(&[0xe0, 0]).await; // DISCONNECT
                return Ended::Stopped;
            }
            read = reader.read_buf(&mut buffer) => {
                match read {
                    Ok(0) => return Ended::Lost("the broker closed the connection".into()),
                    Err(e) => return Ended::Lost(format!("reading from the broker failed: {e}")),
                    Ok(_) => last_heard = Instant::now(),
                }
                loop {
                    let (header, body) = match super::codec::split_packet(&mut buffer, MAX_PACKET) {
                        Ok(Some(packet)) => packet,
                        Ok(None) => break,
                        Err(_) => {
                            bump(&bridge.counters.protocol_errors);
                            return Ended::Lost("malformed packet from the broker".into());
                        }
                    };
                    match decode(&header, body) {
                        Ok(Incoming::Client(packet)) => {
                            if let Err(reason) = receive(bridge, packet, &mut owed).await {
                                return Ended::Lost(reason);
                            }
                        }
                        Ok(Incoming::Server(ServerPacket::PingResp | ServerPacket::SubAck { .. })) => {}
                        Ok(Incoming::Server(other)) => {
                            bump(&bridge.counters.protocol_errors);
                            return Ended::Lost(format!("unexpected packet from the broker: {other:?}"));
                        }
                        Err(reason) => {
                            bump(&bridge.counters.protocol_errors);
                            return Ended::Lost(reason);
                        }
                    }
                }
            }
            Some(answer) = owed.next(), if !owed.is_empty() => {
                match answer {
                    Ok(packet) => {
                        out.clear();
                        encode_client_control(&packet, &mut out);
                        // Answers that are ready already go out in the same write.
                        while let Some(Some(Ok(packet))) = owed.next().now_or_never() {
                            encode_client_control(&packet, &mut out);
                        }
                        if let Err(e) = writer.write_all(&out).await {
                            return Ended::Lost(format!("writing to the broker failed: {e}"));
                        }
                    }
                    // Counted by the producer already (`stats().kafka_errors` adds its failures).
                    Err(reason) => return Ended::Lost(reason),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > keep_alive * 3 / 2 {
                    bump(&bridge.counters.keepalive_timeouts);
                    return Ended::Lost(format!("the broker did not answer for {:?}", last_heard.elapsed()));
                }
                if let Err(e) = writer.write_all(&[0xc0, 0]).await { // PINGREQ
                    return Ended::Lost(format!("writing to the broker failed: {e}"));
                }
            }
        }
    }
}

/// Sends what is owed as deliveries come in, for up to `STOP_DRAIN`.
async fn drain(owed: &mut FuturesOrdered<Owed>, writer: &mut OwnedWriteHalf) {
    let deadline = tokio::time::Instant::now() + STOP_DRAIN;
    while let Ok(Some(Ok(packet))) = tokio::time::timeout_at(deadline, owed.next()).await {
        let mut out = BytesMut::new();
        encode_client_control(&packet, &mut out);
        if writer.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Handles a PUBLISH or PUBREL: queues the record and what is owed for it.
async fn receive(
    bridge: &Arc<Bridge>,
    packet: ClientPacket,
    owed: &mut FuturesOrdered<Owed>,
) -> Result<(), String> {
    let publish = match packet {
        ClientPacket::Publish(publish) => publish,
        ClientPacket::PubRel(id) => {
            bridge.qos2().remove(&id);
            owed.push_back(async move { Ok(ClientPacket::PubComp(id)) }.boxed());
            return Ok(());
        }
        other => {
            bump(&bridge.counters.protocol_errors);
            return Err(format!("unexpected {} from the broker", other.name()));
        }
    };
    let counters = &bridge.counters;
    bump(&counters.received);
    bump(&counters.received_by_qos[usize::from(publish.qos.min(2))]);
    let id = publish.packet_id.unwrap_or(0);
    let answer = move |qos: u8| match qos {
        1 => Some(ClientPacket::PubAck(id)),
        2 => Some(ClientPacket::PubRec(id)),
        _ => None,
    };
    if publish.qos == 2 {
        let earlier = bridge.qos2().get(&id).cloned();
        if let (true, Some(delivery)) = (publish.dup, earlier) {
            bump(&counters.duplicates);
            owed.push_back(owed_after(
                bridge.clone(),
                delivery,
                ClientPacket::PubRec(id),
            ));
            return Ok(());
        }
    }
    let Some(rule) = bridge.options.topics.find(&publish.topic) else {
        bump(&counters.unmatched);
        if let Some(packet) = answer(publish.qos) {
            owed.push_back(async move { Ok(packet) }.boxed());
        }
        return Ok(());
    };
    let kafka_topic = &bridge.options.topics.rules()[rule].kafka_topic;
    let (mut notice, delivery) = if publish.qos == 0 {
        (DeliveryNotice::Count, None)
    } else {
        let (sender, receiver) = oneshot::channel();
        (DeliveryNotice::Notify(sender), Some(receiver.shared()))
    };
    loop {
        match bridge.producer.send(
            kafka_topic,
            publish.topic.as_bytes(),
            &publish.payload,
            notice,
        ) {
            Ok(()) => break,
            Err((QueueError::Full, returned)) => {
                notice = returned;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((QueueError::Failed(error), _)) => {
                bump(&counters.kafka_errors);
                return Err(format!(
                    "cannot write the message on {:?} to {kafka_topic}: {error}",
                    publish.topic
                ));
            }
        }
    }
    if let (Some(delivery), Some(packet)) = (delivery, answer(publish.qos)) {
        if publish.qos == 2 {
            bridge.qos2().insert(id, delivery.clone());
        }
        owed.push_back(owed_after(bridge.clone(), delivery, packet));
    }
    Ok(())
}

/// `packet`, once `delivery` succeeded; a failed QoS 2 delivery's id is forgotten, so the
/// broker's redelivery is written again.
fn owed_after(bridge: Arc<Bridge>, delivery: Delivery, packet: ClientPacket) -> Owed {
    async move {
        let outcome = delivery
            .clone()
            .await
            .unwrap_or_else(|_| Err("the producer dropped the record".into()));
        match outcome {
            Ok(()) => Ok(packet),
            Err(reason) => {
                if let ClientPacket::PubRec(id) = packet {
                    let mut qos2 = bridge.qos2();
                    if qos2.get(&id).is_some_and(|d| d.ptr_eq(&delivery)) {
                        qos2.remove(&id);
                    }
                }
                Err(format!("Kafka did not take a record: {reason}"))
            }
        }
    }
    .boxed()
}
