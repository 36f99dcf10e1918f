//! URL functions (ksqlDB's "URL" category), reading URLs as Java's `java.net.URI` does:
//! `scheme:[//[userinfo@]host[:port]]path[?query][#fragment]`; a malformed URL is a processing
//! error.

use std::sync::Arc;

use super::{overload, FunctionRegistry, SimpleFunction};
use crate::types::SqlType;
use crate::value::Value;

use SqlType::{Integer, String as Str};

#[derive(Debug, Default, PartialEq)]
struct Uri {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<i32>,
    path: String,
    raw_query: Option<String>,
    raw_fragment: Option<String>,
}

fn parse_uri(text: &str) -> Result<Uri, String> {
    let bad = |why: &str| format!("Illegal character in URI '{text}': {why}");
    if text.chars().any(|c| c == ' ' || c.is_control()) {
        return Err(bad("whitespace"));
    }
    let mut uri = Uri::default();
    let mut rest = text;
    if let Some((before, fragment)) = rest.split_once('#') {
        uri.raw_fragment = Some(fragment.to_string());
        rest = before;
    }
    if let Some((before, query)) = rest.split_once('?') {
        uri.raw_query = Some(query.to_string());
        rest = before;
    }
    if let Some(colon) = rest.find(':') {
        let scheme = &rest[..colon];
        let valid = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            uri.scheme = Some(scheme.to_string());
            rest = &rest[colon + 1..];
        } else if !rest[..colon].contains('/') {
            return Err(bad("bad scheme"));
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        uri.path = after[end..].to_string();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || host_port.starts_with('[') => (h, Some(p)),
            _ => (host_port, None),
        };
        if let Some(port) = port {
            if !port.is_empty() {
                uri.port = Some(port.parse().map_err(|_| bad("bad port"))?);
            }
        }
        if !host.is_empty() {
            uri.host = Some(host.to_string());
        }
    } else {
        uri.path = rest.to_string();
    }
    Ok(uri)
}

/// `%XX` escapes decoded as UTF-8 (Java's `URI` getters); `plus_is_space` for form decoding.
fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "URLDecoder: Illegal hex characters in escape (%) pattern in '{text}'"
                        )
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Java's `URLEncoder.encode(s, UTF_8)`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn with_uri(args: &[Value], f: impl Fn(Uri) -> Result<Value, String>) -> Result<Value, String> {
    match args[0].as_str() {
        Some(text) => f(parse_uri(text)?),
        None => Ok(Value::Null),
    }
}

fn text_or_null(value: Option<String>) -> Value {
    value.map_or(Value::Null, Value::String)
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    let mut add = |name: &'static str,
                   description: &'static str,
                   params: Vec<SqlType>,
                   returns: SqlType,
                   call: fn(&[Value]) -> Result<Value, String>| {
        registry.register(Arc::new(SimpleFunction {
            name,
            category: "URL",
            description,
            overloads: vec![overload(params, returns, call)],
        }));
    };
    add(
        "URL_ENCODE_PARAM",
        "Returns a version of the input with all URL sensitive characters encoded using the \
         application/x-www-form-urlencoded standard.",
        vec![Str],
        Str,
        |a| {
            Ok(a[0]
                .as_str()
                .map_or(Value::Null, |s| Value::String(form_encode(s))))
        },
    );
    add(
        "URL_DECODE_PARAM",
        "Returns a version of the input with all URL encoded characters decoded.",
        vec![Str],
        Str,
        |a| match a[0].as_str() {
            Some(s) => percent_decode(s, true).map(Value::String),
            None => Ok(Value::Null),
        },
    );
    add(
        "URL_EXTRACT_FRAGMENT",
        "Extracts the fragment portion of the specified value. Returns NULL if the URI has no \
         fragment.",
        vec![Str],
        Str,
        |a| {
            with_uri(a, |u| {
                u.raw_fragment
                    .map(|f| percent_decode(&f, false))
                    .transpose()
                    .map(text_or_null)
            })
        },
    );
    add(
        "URL_EXTRACT_HOST",
        "Extracts the host-name portion of the specified value. Returns NULL if the URI has no \
         host.",
        vec![Str],
        Str,
        |a| with_uri(a, |u| Ok(text_or_null(u.host))),
    );
    add(
        "URL_EXTRACT_PARAMETER",
        "Extracts the value of the query parameter (decoded) from the URL, or NULL if it is \
         absent.",
        vec![Str, Str],
        Str,
        |a| {
            let Some(name) = a[1].as_str() else {
                return Ok(Value::Null);
            };
            let name = name.to_string();
            with_uri(a, move |u| {
                let Some(query) = u.raw_query else {
                    return Ok(Value::Null);
                };
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if percent_decode(key, false)? == name {
                        return percent_decode(value, false).map(Value::String);
                    }
                }
                Ok(Value::Null)
            })
        },
    );
    add(
        "URL_EXTRACT_PATH",
        "Extracts the path from the URL (empty when it has none).",
        vec![Str],
        Str,
        |a| with_uri(a, |u| percent_decode(&u.path, false).map(Value::String)),
    );
    add(
        "URL_EXTRACT_PORT",
        "Extracts the port number from the URL, or NULL if it has none.",
        vec![Str],
        Integer,
        |a| with_uri(a, |u| Ok(u.port.map_or(Value::Null, Value::Integer))),
    );
    add(
        "URL_EXTRACT_PROTOCOL",
        "Extracts the protocol (scheme) from the URL, or NULL if it has none.",
        vec![Str],
        Str,
        |a| with_uri(a, |u| Ok(text_or_null(u.scheme))),
    );
    add(
        "URL_EXTRACT_QUERY",
        "Extracts the decoded query-string portion of the URL, or NULL if it has none.",
        vec![Str],
        Str,
        |a| {
            with_uri(a, |u| {
                u.raw_query
                    .map(|q| percent_decode(&q, false))
                    .transpose()
                    .map(text_or_null)
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::FunctionRegistry;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        let types: Vec<SqlType> = args.iter().map(|_| Str).collect();
        let registry = FunctionRegistry::builtin();
        registry.get(name).unwrap().bind(&types).unwrap().call(args)
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn uris_split_as_java_reads_them() {
        let url = s("https://me@example.org:8443/a%20b/c?x=1&y=two%21#top");
        assert_eq!(
            call("URL_EXTRACT_PROTOCOL", std::slice::from_ref(&url)),
            Ok(s("https"))
        );
        assert_eq!(
            call("URL_EXTRACT_HOST", std::slice::from_ref(&url)),
            Ok(s("example.org"))
        );
        assert_eq!(
            call("URL_EXTRACT_PORT", std::slice::from_ref(&url)),
            Ok(Value::Integer(8443))
        );
        assert_eq!(
            call("URL_EXTRACT_PATH", std::slice::from_ref(&url)),
            Ok(s("/a b/c"))
        );
        assert_eq!(
            call("URL_EXTRACT_QUERY", std::slice::from_ref(&url)),
            Ok(s("x=1&y=two!"))
        );
        assert_eq!(
            call("URL_EXTRACT_FRAGMENT", std::slice::from_ref(&url)),
            Ok(s("top"))
        );
        assert_eq!(
            call("URL_EXTRACT_PARAMETER", &[url.clone(), s("y")]),
            Ok(s("two!"))
        );
        assert_eq!(
            call("URL_EXTRACT_PARAMETER", &[url, s("z")]),
            Ok(Value::Null)
        );
        assert_eq!(
            call("URL_EXTRACT_PROTOCOL", &[s("example.org")]),
            Ok(Value::Null)
        );
        assert_eq!(call("URL_EXTRACT_PORT", &[s("http://h")]), Ok(Value::Null));
        assert!(call("URL_EXTRACT_HOST", &[s("http://bad host")]).is_err());
    }

    #[test]
    fn params_encode_as_forms() {
        assert_eq!(
            call("URL_ENCODE_PARAM", &[s("a b&c/é")]),
            Ok(s("a+b%26c%2F%C3%A9"))
        );
        assert_eq!(
            call("URL_DECODE_PARAM", &[s("a+b%26c%2F%C3%A9")]),
            Ok(s("a b&c/é"))
        );
        assert!(call("URL_DECODE_PARAM", &[s("%zz")]).is_err());
    }
}
