//! MQTT 3.1.1 packets (OASIS standard, 2014): what a publishing device sends and what the
//! proxy answers. Decoding is strict, since a malformed packet ends the connection (§4.8),
//! and bounded: a packet's remaining length is checked before its body is read.
//!
//! Servers only decode what clients send and encode what servers send; the client side
//! ([`Connect::encode`], [`Publish::encode`], ...) is here for tests, benchmarks and the
//! Rust load generator.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest remaining length the 4-byte variable-length encoding can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why bytes are not an MQTT 3.1.1 packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol { name: String, level: u8 },
}

fn malformed(what: impl Into<String>) -> CodecError {
    CodecError::Malformed(what.into())
}

/// The fixed header's first byte split into type and flags, and the body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub kind: u8,
    pub flags: u8,
    pub remaining_length: usize,
    /// Bytes the fixed header itself took (2 to 5).
    pub header_length: usize,
}

/// Reads a fixed header from the start of `bytes`: `Ok(None)` when more bytes are needed.
pub fn fixed_header(bytes: &[u8]) -> Result<Option<FixedHeader>, CodecError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let mut remaining_length = 0usize;
    for index in 0..4 {
        let Some(&byte) = bytes.get(1 + index) else {
            return Ok(None);
        };
        remaining_length |= ((byte & 0x7f) as usize) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some(FixedHeader {
                kind: first >> 4,
                flags: first & 0x0f,
                remaining_length,
                header_length: 2 + index,
            }));
        }
    }
    Err(malformed("the remaining length takes more than 4 bytes"))
}

/// The protocol a client connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolLevel {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V31,
    /// MQTT 3.1.1 ("MQTT", level 4).
    V311,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub level: ProtocolLevel,
    pub client_id: String,
    pub clean_session: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    /// Present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    pub payload: Bytes,
}

/// A packet a client sends to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    Connect(Connect),
    Publish(Publish),
    /// Acknowledgements of server-to-client publishes: a proxy sends none, so these are
    /// protocol errors here, but they are valid packets.
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        packet_id: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
}

/// CONNACK return codes (§3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectReturn {
    Accepted = 0,
    UnacceptableProtocol = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUsernameOrPassword = 4,
    NotAuthorized = 5,
}

/// SUBACK's failure code for a filter (§3.9.3).
pub const SUBSCRIBE_FAILURE: u8 = 0x80;

/// A packet a server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPacket {
    ConnAck {
        session_present: bool,
        code: ConnectReturn,
    },
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    UnsubAck(u16),
    PingResp,
}

/// Reads a length-prefixed field (a UTF-8 string or binary data).
fn take_prefixed(body: &mut Bytes, what: &str) -> Result<Bytes, CodecError> {
    if body.remaining() < 2 {
        return Err(malformed(format!("{what} is cut short")));
    }
    let length = body.get_u16() as usize;
    if body.remaining() < length {
        return Err(malformed(format!(
            "{what} says {length} bytes, {} remain",
            body.remaining()
        )));
    }
    Ok(body.split_to(length))
}

/// A UTF-8 string field; U+0000 is not allowed in MQTT strings (§1.5.3).
fn take_string(body: &mut Bytes, what: &str) -> Result<String, CodecError> {
    let bytes = take_prefixed(body, what)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| malformed(format!("{what} is not UTF-8")))?
        .to_string();
    if text.contains('\0') {
        return Err(malformed(format!("{what} contains U+0000")));
    }
    Ok(text)
}

fn take_u16(body: &mut Bytes, what: &str) -> Result<u16, CodecError> {
    if body.remaining() < 2 {
        return Err(malformed(format!("{what} is cut short")));
    }
    Ok(body.get_u16())
}

fn packet_id(body: &mut Bytes, what: &str) -> Result<u16, CodecError> {
    match take_u16(body, what)? {
        0 => Err(malformed(format!("{what}: packet identifier 0"))),
        id => Ok(id),
    }
}

fn expect_flags(header: &FixedHeader, flags: u8, name: &str) -> Result<(), CodecError> {
    if header.flags != flags {
        return Err(malformed(format!(
            "{name} with flags {:#06b} (must be {flags:#06b})",
            header.flags
        )));
    }
    Ok(())
}

fn expect_empty(body: &Bytes, name: &str) -> Result<(), CodecError> {
    if body.has_remaining() {
        return Err(malformed(format!(
            "{name} has {} unexpected bytes",
            body.remaining()
        )));
    }
    Ok(())
}

/// A PUBLISH topic name: no wildcards (§3.3.2.1), not empty (§4.7.3).
pub fn check_topic_name(topic: &str) -> Result<(), CodecError> {
    if topic.is_empty() {
        return Err(malformed("PUBLISH with an empty topic name"));
    }
    if topic.contains(['+', '#']) {
        return Err(malformed(format!(
            "PUBLISH topic {topic:?} contains a wildcard"
        )));
    }
    Ok(())
}

impl ClientPacket {
    /// Decodes one packet from its fixed header and its whole body.
    pub fn decode(header: &FixedHeader, mut body: Bytes) -> Result<ClientPacket, CodecError> {
        match header.kind {
            1 => {
                expect_flags(header, 0, "CONNECT")?;
                decode_connect(&mut body).map(ClientPacket::Connect)
            }
            3 => decode_publish(header, body).map(ClientPacket::Publish),
            4..=7 => {
                let (name, flags) = match header.kind {
                    4 => ("PUBACK", 0),
                    5 => ("PUBREC", 0),
                    6 => ("PUBREL", 0b0010),
                    _ => ("PUBCOMP", 0),
                };
                expect_flags(header, flags, name)?;
                let id = packet_id(&mut body, name)?;
                expect_empty(&body, name)?;
                Ok(match header.kind {
                    4 => ClientPacket::PubAck(id),
                    5 => ClientPacket::PubRec(id),
                    6 => ClientPacket::PubRel(id),
                    _ => ClientPacket::PubComp(id),
                })
            }
            8 => {
                expect_flags(header, 0b0010, "SUBSCRIBE")?;
                let packet_id = packet_id(&mut body, "SUBSCRIBE")?;
                let mut filters = Vec::new();
                while body.has_remaining() {
                    let filter = take_string(&mut body, "SUBSCRIBE's topic filter")?;
                    if !body.has_remaining() {
                        return Err(malformed("SUBSCRIBE's requested QoS is missing"));
                    }
                    let qos = body.get_u8();
                    if qos > 2 {
                        return Err(malformed(format!("SUBSCRIBE with requested QoS {qos}")));
                    }
                    filters.push((filter, qos));
                }
                if filters.is_empty() {
                    return Err(malformed("SUBSCRIBE without a topic filter"));
                }
                Ok(ClientPacket::Subscribe { packet_id, filters })
            }
            10 => {
                expect_flags(header, 0b0010, "UNSUBSCRIBE")?;
                let packet_id = packet_id(&mut body, "UNSUBSCRIBE")?;
                let mut filters = Vec::new();
                while body.has_remaining() {
                    filters.push(take_string(&mut body, "UNSUBSCRIBE's topic filter")?);
                }
                if filters.is_empty() {
                    return Err(malformed("UNSUBSCRIBE without a topic filter"));
                }
                Ok(ClientPacket::Unsubscribe { packet_id, filters })
            }
            12 => {
                expect_flags(header, 0, "PINGREQ")?;
                expect_empty(&body, "PINGREQ")?;
                Ok(ClientPacket::PingReq)
            }
            14 => {
                expect_flags(header, 0, "DISCONNECT")?;
                expect_empty(&body, "DISCONNECT")?;
                Ok(ClientPacket::Disconnect)
            }
            kind => Err(malformed(format!(
                "packet type {kind} is not one a client sends"
            ))),
        }
    }

    /// The packet's name, for messages and counters.
    pub fn name(&self) -> &'static str {
        match self {
            ClientPacket::Connect(_) => "CONNECT",
            ClientPacket::Publish(_) => "PUBLISH",
            ClientPacket::PubAck(_) => "PUBACK",
            ClientPacket::PubRec(_) => "PUBREC",
            ClientPacket::PubRel(_) => "PUBREL",
            ClientPacket::PubComp(_) => "PUBCOMP",
            ClientPacket::Subscribe { .. } => "SUBSCRIBE",
            ClientPacket::Unsubscribe { .. } => "UNSUBSCRIBE",
            ClientPacket::PingReq => "PINGREQ",
            ClientPacket::Disconnect => "DISCONNECT",
        }
    }
}

fn decode_connect(body: &mut Bytes) -> Result<Connect, CodecError> {
    let name = take_string(body, "CONNECT's protocol name")?;
    if !body.has_remaining() {
        return Err(malformed("CONNECT's protocol level is missing"));
    }
    let level = match (name.as_str(), body.get_u8()) {
        ("MQTT", 4) => ProtocolLevel::V311,
        ("MQIsdp", 3) => ProtocolLevel::V31,
        (_, level) => return Err(CodecError::UnsupportedProtocol { name, level }),
    };
    if !body.has_remaining() {
        return Err(malformed("CONNECT's flags are missing"));
    }
    let flags = body.get_u8();
    if flags & 0x01 != 0 {
        return Err(malformed("CONNECT's reserved flag is set"));
    }
    let keep_alive = take_u16(body, "CONNECT's keep-alive")?;
    let client_id = take_string(body, "CONNECT's client identifier")?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(malformed("CONNECT has will QoS or retain without a will"));
    }
    if will_qos > 2 {
        return Err(malformed("CONNECT's will QoS is 3"));
    }
    let will = if will_flag {
        let topic = take_string(body, "CONNECT's will topic")?;
        check_topic_name(&topic)?;
        let payload = take_prefixed(body, "CONNECT's will message")?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let has_username = flags & 0x80 != 0;
    let has_password = flags & 0x40 != 0;
    if has_password && !has_username {
        return Err(malformed("CONNECT has a password without a user name"));
    }
    let username = if has_username {
        Some(take_string(body, "CONNECT's user name")?)
    } else {
        None
    };
    let password = if has_password {
        Some(take_prefixed(body, "CONNECT's password")?)
    } else {
        None
    };
    expect_empty(body, "CONNECT")?;
    Ok(Connect {
        level,
        client_id,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        will,
        username,
        password,
    })
}

fn decode_publish(header: &FixedHeader, mut body: Bytes) -> Result<Publish, CodecError> {
    let qos = (header.flags >> 1) & 0x03;
    if qos == 3 {
        return Err(malformed("PUBLISH with QoS 3"));
    }
    let dup = header.flags & 0x08 != 0;
    if dup && qos == 0 {
        return Err(malformed("PUBLISH with DUP set at QoS 0"));
    }
    let topic = take_string(&mut body, "PUBLISH's topic name")?;
    check_topic_name(&topic)?;
    let packet_id = if qos > 0 {
        Some(packet_id(&mut body, "PUBLISH")?)
    } else {
        None
    };
    Ok(Publish {
        topic,
        qos,
        dup,
        retain: header.flags & 0x01 != 0,
        packet_id,
        payload: body,
    })
}

/// Appends the fixed header for a body of `remaining` bytes.
fn put_fixed_header(out: &mut BytesMut, first: u8, mut remaining: usize) {
    out.put_u8(first);
    loop {
        let mut byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if remaining == 0 {
            break;
        }
    }
}

fn put_prefixed(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

impl ServerPacket {
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            ServerPacket::ConnAck {
                session_present,
                code,
            } => out.put_slice(&[0x20, 2, u8::from(*session_present), *code as u8]),
            ServerPacket::PubAck(id) => put_ack(out, 0x40, *id),
            ServerPacket::PubRec(id) => put_ack(out, 0x50, *id),
            ServerPacket::PubComp(id) => put_ack(out, 0x70, *id),
            ServerPacket::SubAck { packet_id, codes } => {
                put_fixed_header(out, 0x90, 2 + codes.len());
                out.put_u16(*packet_id);
                out.put_slice(codes);
            }
            ServerPacket::UnsubAck(id) => put_ack(out, 0xb0, *id),
            ServerPacket::PingResp => out.put_slice(&[0xd0, 0]),
        }
    }

    /// Decodes a server's packet (the client side, for tests and the load generator).
    pub fn decode(header: &FixedHeader, mut body: Bytes) -> Result<ServerPacket, CodecError> {
        let id = |body: &mut Bytes| take_u16(body, "acknowledgement");
        Ok(match header.kind {
            2 => {
                if body.remaining() != 2 {
                    return Err(malformed("CONNACK is not 2 bytes"));
                }
                let session_present = body.get_u8() & 1 == 1;
                let code = match body.get_u8() {
                    0 => ConnectReturn::Accepted,
                    1 => ConnectReturn::UnacceptableProtocol,
                    2 => ConnectReturn::IdentifierRejected,
                    3 => ConnectReturn::ServerUnavailable,
                    4 => ConnectReturn::BadUsernameOrPassword,
                    5 => ConnectReturn::NotAuthorized,
                    other => return Err(malformed(format!("CONNACK return code {other}"))),
                };
                ServerPacket::ConnAck {
                    session_present,
                    code,
                }
            }
            4 => ServerPacket::PubAck(id(&mut body)?),
            5 => ServerPacket::PubRec(id(&mut body)?),
            7 => ServerPacket::PubComp(id(&mut body)?),
            9 => {
                let packet_id = id(&mut body)?;
                ServerPacket::SubAck {
                    packet_id,
                    codes: body.to_vec(),
                }
            }
            11 => ServerPacket::UnsubAck(id(&mut body)?),
            13 => ServerPacket::PingResp,
            kind => {
                return Err(malformed(format!(
                    "packet type {kind} is not one a server sends"
                )))
            }
        })
    }
}

fn put_ack(out: &mut BytesMut, first: u8, id: u16) {
    out.put_slice(&[first, 2]);
    out.put_u16(id);
}

impl Connect {
    /// A clean-session 3.1.1 CONNECT without will or credentials.
    pub fn new(client_id: &str, keep_alive: u16) -> Self {
        Connect {
            level: ProtocolLevel::V311,
            client_id: client_id.to_string(),
            clean_session: true,
            keep_alive,
            will: None,
            username: None,
            password: None,
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let mut body = BytesMut::new();
        match self.level {
            ProtocolLevel::V311 => {
                put_prefixed(&mut body, b"MQTT");
                body.put_u8(4);
            }
            ProtocolLevel::V31 => {
                put_prefixed(&mut body, b"MQIsdp");
                body.put_u8(3);
            }
        }
        let mut flags = u8::from(self.clean_session) << 1;
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos << 3) | (u8::from(will.retain) << 5);
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        body.put_u8(flags);
        body.put_u16(self.keep_alive);
        put_prefixed(&mut body, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            put_prefixed(&mut body, will.topic.as_bytes());
            put_prefixed(&mut body, &will.payload);
        }
        if let Some(username) = &self.username {
            put_prefixed(&mut body, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_prefixed(&mut body, password);
        }
        put_fixed_header(out, 0x10, body.len());
        out.put_slice(&body);
    }
}

impl Publish {
    pub fn encode(&self, out: &mut BytesMut) {
        let first = 0x30 | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain);
        let id_length = if self.packet_id.is_some() { 2 } else { 0 };
        put_fixed_header(
            out,
            first,
            2 + self.topic.len() + id_length + self.payload.len(),
        );
        put_prefixed(out, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            out.put_u16(id);
        }
        out.put_slice(&self.payload);
    }
}

/// Encodes the client's packets that carry only a packet id, or nothing.
pub fn encode_client_control(packet: &ClientPacket, out: &mut BytesMut) {
    match packet {
        ClientPacket::Connect(connect) => connect.encode(out),
        ClientPacket::Publish(publish) => publish.encode(out),
        ClientPacket::PubAck(id) => put_ack(out, 0x40, *id),
        ClientPacket::PubRec(id) => put_ack(out, 0x50, *id),
        ClientPacket::PubRel(id) => put_ack(out, 0x62, *id),
        ClientPacket::PubComp(id) => put_ack(out, 0x70, *id),
        ClientPacket::Subscribe { packet_id, filters } => {
            let length: usize = filters.iter().map(|(f, _)| 3 + f.len()).sum();
            put_fixed_header(out, 0x82, 2 + length);
            out.put_u16(*packet_id);
            for (filter, qos) in filters {
                put_prefixed(out, filter.as_bytes());
                out.put_u8(*qos);
            }
        }
        ClientPacket::Unsubscribe { packet_id, filters } => {
            let length: usize = filters.iter().map(|f| 2 + f.len()).sum();
            put_fixed_header(out, 0xa2, 2 + length);
            out.put_u16(*packet_id);
            for filter in filters {
                put_prefixed(out, filter.as_bytes());
            }
        }
        ClientPacket::PingReq => out.put_slice(&[0xc0, 0]),
        ClientPacket::Disconnect => out.put_slice(&[0xe0, 0]),
    }
}

/// Splits one whole packet off the front of `buffer`: `Ok(None)` when more bytes are needed.
/// A remaining length above `max_remaining` is refused before its body arrives.
pub fn split_packet(
    buffer: &mut BytesMut,
    max_remaining: usize,
) -> Result<Option<(FixedHeader, Bytes)>, SplitError> {
    let Some(header) = fixed_header(buffer).map_err(SplitError::Codec)? else {
        return Ok(None);
    };
    if header.remaining_length > max_remaining {
        return Err(SplitError::TooLarge(header));
    }
    let total = header.header_length + header.remaining_length;
    if buffer.len() < total {
        buffer.reserve(total - buffer.len());
        return Ok(None);
    }
    let mut packet = buffer.split_to(total);
    let body = packet.split_off(header.header_length).freeze();
    Ok(Some((header, body)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    Codec(CodecError),
    /// The packet announces a body longer than allowed.
    TooLarge(FixedHeader),
}
