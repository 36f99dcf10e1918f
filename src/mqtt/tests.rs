use bytes::{Bytes, BytesMut};

use super::codec::{
    encode_client_control, fixed_header, split_packet, ClientPacket, CodecError, Connect,
    ConnectReturn, LastWill, ProtocolLevel, Publish, ServerPacket, SplitError,
};
use super::config::{parse_properties, ProxyConfig};
use super::{MqttError, TopicMap, DEFAULT_MAX_MESSAGE_BYTES};

fn decode_client(bytes: &[u8]) -> Result<ClientPacket, CodecError> {
    let mut buffer = BytesMut::from(bytes);
    let (header, body) = split_packet(&mut buffer, usize::MAX)
        .map_err(|e| match e {
            SplitError::Codec(e) => e,
            SplitError::TooLarge(_) => unreachable!(),
        })?
        .expect("a whole packet");
    assert!(buffer.is_empty(), "one packet, nothing left over");
    ClientPacket::decode(&header, body)
}

fn encoded(packet: &ClientPacket) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_client_control(packet, &mut out);
    out.to_vec()
}

#[test]
fn client_packets_round_trip() {
    let packets = [
        ClientPacket::Connect(Connect::new("car-1", 60)),
        ClientPacket::Connect(Connect {
            level: ProtocolLevel::V31,
            client_id: "old".into(),
            clean_session: false,
            keep_alive: 0,
            will: Some(LastWill {
                topic: "car/status".into(),
                payload: Bytes::from_static(b"offline"),
                qos: 1,
                retain: false,
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"secret")),
        }),
        ClientPacket::Publish(Publish {
            topic: "car/engine/temperature".into(),
            qos: 2,
            dup: true,
            retain: false,
            packet_id: Some(7),
            payload: Bytes::from(vec![b'x'; 300]), // a two-byte remaining length
        }),
        ClientPacket::Publish(Publish {
            topic: "t".into(),
            qos: 0,
            dup: false,
            retain: true,
            packet_id: None,
            payload: Bytes::new(),
        }),
        ClientPacket::PubRel(7),
        ClientPacket::Subscribe {
            packet_id: 3,
            filters: vec![("car/#".into(), 1), ("+/x".into(), 0)],
        },
        ClientPacket::Unsubscribe {
            packet_id: 4,
            filters: vec!["car/#".into()],
        },
        ClientPacket::PingReq,
        ClientPacket::Disconnect,
    ];
    for packet in packets {
        assert_eq!(decode_client(&encoded(&packet)), Ok(packet));
    }
}

#[test]
fn server_packets_as_the_spec_writes_them() {
    let cases: [(ServerPacket, &[u8]); 6] = [
        (
            ServerPacket::ConnAck {
                session_present: true,
                code: ConnectReturn::Accepted,
            },
            &[0x20, 2, 1, 0],
        ),
        (ServerPacket::PubAck(0x0102), &[0x40, 2, 1, 2]),
        (ServerPacket::PubRec(5), &[0x50, 2, 0, 5]),
        (ServerPacket::PubComp(5), &[0x70, 2, 0, 5]),
        (
            ServerPacket::SubAck {
                packet_id: 9,
                codes: vec![0x80, 0x80],
            },
            &[0x90, 4, 0, 9, 0x80, 0x80],
        ),
        (ServerPacket::PingResp, &[0xd0, 0]),
    ];
    for (packet, bytes) in cases {
        let mut out = BytesMut::new();
        packet.encode(&mut out);
        assert_eq!(&out[..], bytes, "{packet:?}");
        let header = fixed_header(bytes).unwrap().unwrap();
        let body = Bytes::copy_from_slice(&bytes[header.header_length..]);
        assert_eq!(ServerPacket::decode(&header, body), Ok(packet));
    }
}

#[test]
fn malformed_packets_are_errors_not_panics() {
    let cases: &[&[u8]] = &[
        &[0x36, 3, 0, 1, b't'],                                // PUBLISH QoS 3
        &[0x38, 3, 0, 1, b't'],                                // DUP at QoS 0
        &[0x32, 3, 0, 1, b't'],                                // QoS 1 without a packet id
        &[0x32, 5, 0, 1, b't', 0, 0],                          // packet id 0
        &[0x30, 3, 0, 1, b'#'],                                // a wildcard in a topic name
        &[0x30, 2, 0, 0],                                      // an empty topic name
        &[0x30, 4, 0, 2, 0xff, 0xfe],                          // not UTF-8
        &[0x30, 4, 0, 5, b'a', b'b'], // the topic length runs past the packet
        &[0x60, 2, 0, 1],             // PUBREL with flags 0
        &[0x82, 2, 0, 1],             // SUBSCRIBE without filters
        &[0xc0, 1, 0],                // PINGREQ with a body
        &[0x10, 2, 0, 4],             // CONNECT cut short
        &[0xf0, 0],                   // packet type 15
        &[0x20, 2, 0, 0],             // CONNACK from a client
        &[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 4, 1, 0, 0], // reserved flag set
    ];
    for bytes in cases {
        assert!(
            matches!(decode_client(bytes), Err(CodecError::Malformed(_))),
            "{bytes:?} gave {:?}",
            decode_client(bytes)
        );
    }
    // MQTT 5 is a known protocol at an unsupported level (answered with CONNACK 0x01).
    let v5 = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0];
    assert!(matches!(
        decode_client(&v5[..]),
        Err(CodecError::UnsupportedProtocol { level: 5, .. })
    ));
    // A fifth length byte.
    let mut buffer = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
    assert!(matches!(
        split_packet(&mut buffer, usize::MAX),
        Err(SplitError::Codec(_))
    ));
}

#[test]
fn packets_split_across_reads_and_oversized_ones_refused_early() {
    let bytes = encoded(&ClientPacket::Publish(Publish {
        topic: "a/b".into(),
        qos: 1,
        dup: false,
        retain: false,
        packet_id: Some(1),
        payload: Bytes::from(vec![1u8; 200]),
    }));
    let mut buffer = BytesMut::new();
    for (index, byte) in bytes.iter().enumerate() {
        buffer.extend_from_slice(&[*byte]);
        let split = split_packet(&mut buffer, 1000).unwrap();
        assert_eq!(split.is_some(), index == bytes.len() - 1);
    }
    // Refused from the header alone, before 200 bytes of body arrive.
    let mut buffer = BytesMut::from(&bytes[..3]);
    assert!(matches!(
        split_packet(&mut buffer, 100),
        Err(SplitError::TooLarge(h)) if h.remaining_length == 2 + 3 + 2 + 200
    ));
}

#[test]
fn topic_rules_match_whole_topics_first_rule_wins() {
    let map = TopicMap::parse("temperature:.*temperature, brightness:car/.*,all:.*").unwrap();
    assert_eq!(map.find("car/engine/temperature"), Some(0));
    assert_eq!(map.find("car/light"), Some(1));
    // Java's matches(): the whole topic, so "temperature2" is not a temperature topic.
    assert_eq!(map.find("car/engine/temperature2"), Some(1));
    assert_eq!(map.find("house/temperature/x"), Some(2));
    assert_eq!(map.kafka_topics(), vec!["temperature", "brightness", "all"]);

    let only = TopicMap::new(&[("t", "a/+")]);
    assert!(
        only.is_ok(),
        "'+' is a regex quantifier here, not a wildcard"
    );
    for bad in ["temperature", "bad topic:x", ":x", "t:(unclosed"] {
        assert!(
            matches!(TopicMap::parse(bad), Err(MqttError::TopicRule { .. })),
            "{bad}"
        );
    }
}

/// The live demo's `kafka-mqtt-quickstart.properties`, as written in the talk.
const QUICKSTART: &str = "topic.regex.list=temperature:.*temperature
listeners=0.0.0.0:1883
bootstrap.servers=PLAINTEXT://localhost:9092
confluent.topic.replication.factor=1
";

#[test]
fn the_talks_properties_file() {
    let config = ProxyConfig::from_text(QUICKSTART).unwrap();
    assert_eq!(config.options.bootstrap, "localhost:9092");
    assert_eq!(config.options.listen, "0.0.0.0:1883");
    assert_eq!(config.options.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    assert_eq!(config.options.topics.rules()[0].kafka_topic, "temperature");
    assert_eq!(config.ignored, vec!["confluent.topic.replication.factor"]);
}

#[test]
fn properties_syntax_and_producer_keys() {
    let text = "# comment\n! also a comment\n  topic.regex.list = a:x/.*,\\\n    b:y/.*\n\
                bootstrap.servers: k1:9092, SASL_SSL://k2:9093\nlisteners MQTT://127.0.0.1:0\n\
                producer.acks=1\nproducer.compression.type=lz4\nmqtt.message.max.bytes=100\n\
                key\\ with\\ space=\\u0041\nmqtt.message.max.bytes=200\n";
    let pairs = parse_properties(text);
    assert!(pairs.contains(&("key with space".into(), "A".into())));
    let config = ProxyConfig::from_properties(&pairs).unwrap();
    assert_eq!(config.options.topics.kafka_topics(), vec!["a", "b"]);
    assert_eq!(config.options.bootstrap, "k1:9092,k2:9093");
    assert_eq!(config.options.listen, "127.0.0.1:0");
    assert_eq!(config.options.max_message_bytes, 200, "the later key wins");
    assert_eq!(
        config.options.producer_config,
        vec![
            ("acks".to_string(), "1".to_string()),
            ("compression.type".to_string(), "lz4".to_string())
        ]
    );
    assert_eq!(config.ignored, vec!["key with space"]);

    for (bad, says) in [
        ("bootstrap.servers=k:9092\n", "topic.regex.list"),
        ("topic.regex.list=a:.*\n", "bootstrap.servers"),
        (
            "topic.regex.list=a:.*\nbootstrap.servers=k:1\nmqtt.message.max.bytes=lots\n",
            "mqtt.message.max.bytes",
        ),
        (
            "topic.regex.list=a:.*\nbootstrap.servers=k:1\nlisteners=a:1,b:2\n",
            "one listener",
        ),
    ] {
        let error = ProxyConfig::from_text(bad).unwrap_err().to_string();
        assert!(error.contains(says), "{bad:?}: {error}");
    }
}
