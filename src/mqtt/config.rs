//! Confluent MQTT Proxy's properties file (`kafka-mqtt-quickstart.properties` and friends):
//! Java's `.properties` syntax, the keys the proxy uses, and the ones it ignores.

use super::{MqttError, ProxyOptions, TopicMap};

/// Keys with a `producer.` prefix go to the producer without it.
const PRODUCER_PREFIX: &str = "producer.";

/// A proxy configuration read from properties, and the keys it does not use (to warn about).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub options: ProxyOptions,
    /// Keys present in the file that this proxy does not use (Confluent's licensing
    /// `confluent.topic.*`, thread counts, ...), in file order.
    pub ignored: Vec<String>,
}

impl ProxyConfig {
    /// Reads `topic.regex.list`, `listeners`, `bootstrap.servers`, `mqtt.message.max.bytes`
    /// and `producer.*`; other keys are listed in [`ProxyConfig::ignored`].
    pub fn from_properties(pairs: &[(String, String)]) -> Result<Self, MqttError> {
        let mut topics = None;
        let mut bootstrap = None;
        let mut listen = None;
        let mut max_bytes = None;
        let mut producer_config = Vec::new();
        let mut ignored = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "topic.regex.list" => topics = Some(TopicMap::parse(value)?),
                "bootstrap.servers" => bootstrap = Some(bootstrap_servers(value)),
                "listeners" => listen = Some(listener(value)?),
                "mqtt.message.max.bytes" => {
                    max_bytes = Some(value.trim().parse::<usize>().map_err(|_| {
                        MqttError::Config(format!(
                            "mqtt.message.max.bytes={value:?} is not a byte count"
                        ))
                    })?)
                }
                key if key.starts_with(PRODUCER_PREFIX) => producer_config.push((
                    key[PRODUCER_PREFIX.len()..].to_string(),
                    value.trim().to_string(),
                )),
                key => ignored.push(key.to_string()),
            }
        }
        let topics = topics
            .filter(|t| !t.is_empty())
            .ok_or_else(|| MqttError::Config("topic.regex.list is missing or empty".into()))?;
        let bootstrap =
            bootstrap.ok_or_else(|| MqttError::Config("bootstrap.servers is missing".into()))?;
        let mut options = ProxyOptions::new(&bootstrap, topics);
        if let Some(listen) = listen {
            options.listen = listen;
        }
        if let Some(max_bytes) = max_bytes {
            options.max_message_bytes = max_bytes;
        }
        options.producer_config = producer_config;
        Ok(ProxyConfig { options, ignored })
    }

    /// [`parse_properties`] then [`ProxyConfig::from_properties`].
    pub fn from_text(text: &str) -> Result<Self, MqttError> {
        Self::from_properties(&parse_properties(text))
    }
}

/// `PLAINTEXT://localhost:9092,SSL://b:9093` as librdkafka takes it: Java's clients ignore a
/// listener-name prefix in `bootstrap.servers`, so it is dropped here too.
fn bootstrap_servers(value: &str) -> String {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|server| {
            server
                .split_once("://")
                .map_or(server, |(_, address)| address)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One `host:port` from `listeners` (an `mqtt://`-style prefix is dropped).
fn listener(value: &str) -> Result<String, MqttError> {
    let listeners: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match listeners.as_slice() {
        [one] => Ok(one
            .split_once("://")
            .map_or(*one, |(_, address)| address)
            .to_string()),
        [] => Err(MqttError::Config("listeners is empty".into())),
        _ => Err(MqttError::Config(format!(
            "listeners={value:?}: this proxy serves one listener"
        ))),
    }
}

/// Java's `.properties` syntax: `key=value`, `key: value` or `key value`; `#` and `!`
/// comment lines; a trailing backslash continues a line; `\t`, `\n`, `\uXXXX` escapes.
/// Later keys replace earlier ones, as `Properties.load` does; file order is kept.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let (key, value) = (unescape(key), unescape(value));
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key, value)),
        }
    }
    pairs
}

/// An odd number of trailing backslashes continues the line.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                let key = &line[..index];
                let mut rest = line[index..].trim_start_matches([' ', '\t', '\x0c']);
                if c.is_whitespace() || c == '\x0c' {
                    if let Some(after) = rest.strip_prefix(['=', ':']) {
                        rest = after;
                    }
                } else {
                    rest = &rest[1..];
                }
                return (key, rest.trim_start_matches([' ', '\t', '\x0c']));
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
