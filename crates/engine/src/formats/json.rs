//! ksqlDB's JSON format: its own small parser (numbers keep their text, so DECIMAL(38, x) and
//! BIGINT read exactly, and objects keep their field order), ksqlDB's coercions from JSON nodes
//! to column types, and the writer that produces ksqlDB's output text.

use base64::Engine as _;

use super::decimal::decimal_from_text;
use crate::types::SqlType;
use crate::value::{decimal_to_string, java_double_to_string, write_java_double, Value};

/// A parsed JSON document; numbers as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Deeper documents are refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

pub(crate) fn parse(bytes: &[u8]) -> Result<Json, String> {
    let mut parser = Parser { bytes, pos: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != bytes.len() {
        return Err(parser.error("unexpected trailing content"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("Invalid JSON at byte {}: {what}", self.pos)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, text: &[u8], value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(text) {
            self.pos += text.len();
            Ok(value)
        } else {
            Err(self.error("unexpected token"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("document nested too deeply"));
        }
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        let digits = |parser: &mut Self| {
            let from = parser.pos;
            while let Some(b'0'..=b'9') = parser.bytes.get(parser.pos) {
                parser.pos += 1;
            }
            parser.pos > from
        };
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let leading_zero = self.bytes.get(self.pos) == Some(&b'0');
        if !digits(self)
            || (leading_zero && self.pos - start > 1 + usize::from(self.bytes[start] == b'-'))
        {
            return Err(self.error("invalid number"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        // Only ASCII was consumed.
        let text = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
        Ok(Json::Number(text))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let chunk = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let text = std::str::from_utf8(chunk).map_err(|_| self.error("invalid \\u escape"))?;
        let code = u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let start = self.pos;
            while let Some(&byte) = self.bytes.get(self.pos) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.extend_from_slice(&self.bytes[start..self.pos]);
            match self.bytes.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = *self
                        .bytes
                        .get(self.pos)
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    let decoded = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high)
                                && self.bytes[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                let low = self.hex4()?;
                                0x10000
                                    + ((high - 0xd800) << 10)
                                    + (low.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                high
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(decoded.encode_utf8(&mut buffer).as_bytes());
                }
                Some(_) => return Err(self.error("control character in string")),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in string"))
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut fields = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a field name"));
            }
            let name = self.string()?;
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            fields.push((name, value));
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }
}

impl Json {
    /// Jackson's node class names, which ksqlDB's coercion errors quote.
    fn node_type(&self) -> &'static str {
        match self {
            Json::Null => "NullNode",
            Json::Bool(_) => "BooleanNode",
            Json::Number(text) => {
                if text.contains(['.', 'e', 'E']) {
                    "DecimalNode"
                } else if text.parse::<i32>().is_ok() {
                    "IntNode"
                } else if text.parse::<i64>().is_ok() {
                    "LongNode"
                } else {
                    "BigIntegerNode"
                }
            }
            Json::String(_) => "TextNode",
            Json::Array(_) => "ArrayNode",
            Json::Object(_) => "ObjectNode",
        }
    }

    /// Compact JSON text, as Jackson writes a node (`{"a":1}`).
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, name);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A field of an object by name: exactly, else ignoring case (ksqlDB matches JSON field names
/// to columns case-insensitively).
pub(crate) fn find_field<'a, T>(fields: &'a [(String, T)], name: &str) -> Option<&'a T> {
    fields
        .iter()
        .find(|(field, _)| field == name)
        .or_else(|| {
            fields
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
        })
        .map(|(_, value)| value)
}

fn cannot_convert(node: &Json, ty: &SqlType) -> String {
    format!(
        "Can't convert type. sourceType: {}, requiredType: {ty}",
        node.node_type()
    )
}

fn integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// A JSON node as a value of `ty`, with ksqlDB's coercions; the error names the path.
pub(crate) fn to_value(node: &Json, ty: &SqlType) -> Result<Value, String> {
    if let Json::Null = node {
        return Ok(Value::Null);
    }
    let value =
        match (ty, node) {
            (SqlType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
            (SqlType::Boolean, Json::String(s)) => {
                if s.eq_ignore_ascii_case("true") {
                    Value::Boolean(true)
                } else if s.eq_ignore_ascii_case("false") {
                    Value::Boolean(false)
                } else {
                    return Err(format!(
                        "Can't coerce string to type. targetType: BOOLEAN, value: {s}"
                    ));
                }
            }
            (SqlType::Integer, Json::Number(text)) => Value::Integer(java_long(text)? as i32),
            (SqlType::BigInt, Json::Number(text)) => Value::BigInt(java_long(text)?),
            (SqlType::Integer, Json::String(s)) => Value::Integer(s.parse().map_err(|_| {
                format!("Can't coerce string to type. targetType: INTEGER, value: {s}")
            })?),
            (SqlType::BigInt, Json::String(s)) => Value::BigInt(s.parse().map_err(|_| {
                format!("Can't coerce string to type. targetType: BIGINT, value: {s}")
            })?),
            (SqlType::Double, Json::Number(text)) => {
                Value::Double(text.parse().map_err(|_| cannot_convert(node, ty))?)
            }
            (SqlType::Double, Json::String(s)) => {
                Value::Double(parse_java_double(s).ok_or_else(|| {
                    format!("Can't coerce string to type. targetType: DOUBLE, value: {s}")
                })?)
            }
            (SqlType::Decimal { precision, scale }, Json::Number(text) | Json::String(text)) => {
                decimal_from_text(text, *precision, *scale)?
            }
            (SqlType::String, Json::String(s)) => Value::String(s.clone()),
            (SqlType::String, Json::Number(text)) => Value::String(text.clone()),
            (SqlType::String, Json::Bool(b)) => Value::String(b.to_string()),
            (SqlType::String, Json::Array(_) | Json::Object(_)) => {
                let mut text = String::new();
                node.write(&mut text);
                Value::String(text)
            }
            (SqlType::Bytes, Json::String(s)) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| format!("Value is not a valid Base64 encoded string: {s}"))?,
            ),
            (SqlType::Date, Json::Number(text)) if integer_text(text) => {
                Value::Date(java_long(text)? as i32)
            }
            (SqlType::Time, Json::Number(text)) if integer_text(text) => {
                Value::Time(java_long(text)?)
            }
            (SqlType::Timestamp, Json::Number(text)) if integer_text(text) => {
                Value::Timestamp(java_long(text)?)
            }
            (SqlType::Date, Json::String(s)) => Value::Date(s.parse().map_err(|_| {
                format!("Can't coerce string to type. targetType: DATE, value: {s}")
            })?),
            (SqlType::Time, Json::String(s)) => Value::Time(s.parse().map_err(|_| {
                format!("Can't coerce string to type. targetType: TIME, value: {s}")
            })?),
            (SqlType::Timestamp, Json::String(s)) => Value::Timestamp(s.parse().map_err(|_| {
                format!("Can't coerce string to type. targetType: TIMESTAMP, value: {s}")
            })?),
            (SqlType::Array(item_type), Json::Array(items)) => {
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    values.push(
                        to_value(item, item_type).map_err(|e| with_path(e, &format!("[{i}]")))?,
                    );
                }
                Value::Array(values)
            }
            (SqlType::Map(_, value_type), Json::Object(fields)) => {
                let mut entries = Vec::with_capacity(fields.len());
                for (name, item) in fields {
                    let value = to_value(item, value_type)
                        .map_err(|e| with_path(e, &format!(".{name}")))?;
                    entries.push((Value::String(name.clone()), value));
                }
                Value::Map(entries)
            }
            (SqlType::Struct(struct_fields), Json::Object(fields)) => {
                let mut values = Vec::with_capacity(struct_fields.len());
                for (name, field_type) in struct_fields {
                    let value = match find_field(fields, name) {
                        Some(node) => to_value(node, field_type)
                            .map_err(|e| with_path(e, &format!(".{name}")))?,
                        None => Value::Null,
                    };
                    values.push(value);
                }
                Value::Struct(values)
            }
            _ => return Err(cannot_convert(node, ty)),
        };
    Ok(value)
}

/// Prefixes a path step to an error, which ends with `path: $...` once at the top.
pub(crate) fn with_path(error: String, step: &str) -> String {
    match error.split_once(", path: $") {
        Some((message, rest)) => format!("{message}, path: ${step}{rest}"),
        None => format!("{error}, path: ${step}"),
    }
}

/// A JSON number as Java's `JsonNode.longValue()`: integers exactly (wrapping past 64 bits
/// is refused), fractions truncated toward zero.
fn java_long(text: &str) -> Result<i64, String> {
    if integer_text(text) {
        if let Ok(v) = text.parse::<i64>() {
            return Ok(v);
        }
        return Err(format!("Numeric value ({text}) out of range of long"));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| format!("Invalid number: {text}"))?;
    Ok(value as i64)
}

/// `Double.parseDouble`: also `NaN`, `Infinity`, surrounding spaces.
pub(crate) fn parse_java_double(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    // A finite number is one both languages read alike (Rust's parser takes no letters but an
    // exponent's, besides inf/nan words): one pass instead of a scan for letters first.
    match trimmed.parse::<f64>() {
        Ok(value) if value.is_finite() => return Some(value),
        _ => {}
    }
    match trimmed {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if trimmed.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') => None,
        _ => trimmed.parse().ok(),
    }
}

/// Writes a string with Jackson's escapes (control characters as `\uXXXX` except the short
/// forms; non-ASCII kept).
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a number's text without a String of its own.
fn push_display(out: &mut String, value: impl std::fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// Writes a value as ksqlDB's JSON serializer does: DOUBLE as Java prints it (NaN and the
/// infinities quoted), DECIMAL as a plain number keeping its scale, BYTES in base64, DATE as
/// days, TIME and TIMESTAMP as milliseconds, STRUCT with its declared field names.
pub(crate) fn write_value(out: &mut String, value: &Value, ty: &SqlType) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(v) => push_display(out, v),
        Value::BigInt(v) => push_display(out, v),
        Value::Double(v) => {
            if v.is_finite() {
                write_java_double(out, *v);
            } else {
                write_string(out, &java_double_to_string(*v));
            }
        }
        Value::Decimal { unscaled, scale } => out.push_str(&decimal_to_string(*unscaled, *scale)),
        Value::String(s) => write_string(out, s),
        Value::Bytes(b) => write_string(out, &base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Date(days) => push_display(out, days),
        Value::Time(ms) | Value::Timestamp(ms) => push_display(out, ms),
        Value::Array(items) => {
            let item_type = match ty {
                SqlType::Array(item) => item.as_ref(),
                _ => return Err(format!("ARRAY value for a column of type {ty}")),
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, item_type)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let value_type = match ty {
                SqlType::Map(_, value) => value.as_ref(),
                _ => return Err(format!("MAP value for a column of type {ty}")),
            };
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A NULL key is written as Jackson writes it: "null".
                if key.is_null() {
                    write_string(out, "null");
                } else {
                    write_string(out, &scalar_text(key));
                }
                out.push(':');
                write_value(out, item, value_type)?;
            }
            out.push('}');
        }
        Value::Struct(values) => {
            let fields = match ty {
                SqlType::Struct(fields) if fields.len() == values.len() => fields,
                _ => return Err(format!("STRUCT value does not match the column type {ty}")),
            };
            out.push('{');
            for (i, ((name, field_type), item)) in fields.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, item, field_type)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A primitive value as text, as ksqlDB writes it in DELIMITED fields and map keys.
pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(v) => v.to_string(),
        Value::BigInt(v) => v.to_string(),
        Value::Double(v) => java_double_to_string(*v),
        Value::Decimal { unscaled, scale } => decimal_to_string(*unscaled, *scale),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Date(days) => days.to_string(),
        Value::Time(ms) | Value::Timestamp(ms) => ms.to_string(),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_keeps_number_text_and_field_order() {
        let json = parse(br#" {"b": 12345678987654321.2345678987654321, "a": [1, -2.5e3, "x\u00e9\n"], "c": null} "#)
            .unwrap();
        let Json::Object(fields) = json else { panic!() };
        assert_eq!(fields[0].0, "b");
        assert_eq!(
            fields[0].1,
            Json::Number("12345678987654321.2345678987654321".into())
        );
        assert_eq!(
            fields[1].1,
            Json::Array(vec![
                Json::Number("1".into()),
                Json::Number("-2.5e3".into()),
                Json::String("x\u{e9}\n".into())
            ])
        );
        assert!(parse(b"{\"a\":1,}").is_err());
        assert!(parse(b"[1 2]").is_err());
        assert!(parse(b"01").is_err());
        assert!(parse(&[b'['; 1000]).is_err());
    }

    #[test]
    fn coercions_follow_ksqldb() {
        let node = |text: &str| parse(text.as_bytes()).unwrap();
        assert_eq!(
            to_value(&node("\"42\""), &SqlType::Integer),
            Ok(Value::Integer(42))
        );
        assert_eq!(
            to_value(&node("4.9"), &SqlType::Integer),
            Ok(Value::Integer(4))
        );
        assert_eq!(
            to_value(&node("7"), &SqlType::String),
            Ok(Value::String("7".into()))
        );
        assert_eq!(
            to_value(&node("{\"a\": [1]}"), &SqlType::String),
            Ok(Value::String("{\"a\":[1]}".into()))
        );
        assert_eq!(
            to_value(&node("\"TRUE\""), &SqlType::Boolean),
            Ok(Value::Boolean(true))
        );
        let error = to_value(&node("true"), &SqlType::Integer).unwrap_err();
        assert!(
            error.contains("sourceType: BooleanNode, requiredType: INTEGER"),
            "{error}"
        );
        let nested = SqlType::Struct(vec![(
            "A".into(),
            SqlType::Array(Box::new(SqlType::Integer)),
        )]);
        let error = to_value(&node("{\"a\": [1, \"x\"]}"), &nested).unwrap_err();
        assert!(error.ends_with("path: $.A[1]"), "{error}");
        assert_eq!(
            to_value(&node("{\"a\": [1, null]}"), &nested),
            Ok(Value::Struct(vec![Value::Array(vec![
                Value::Integer(1),
                Value::Null
            ])]))
        );
    }

    #[test]
    fn values_are_written_as_ksqldb_writes_them() {
        let ty = SqlType::Struct(vec![
            ("D".into(), SqlType::Double),
            (
                "M".into(),
                SqlType::Map(
                    Box::new(SqlType::String),
                    Box::new(SqlType::Decimal {
                        precision: 4,
                        scale: 2,
                    }),
                ),
            ),
            ("B".into(), SqlType::Bytes),
        ]);
        let value = Value::Struct(vec![
            Value::Double(1e7),
            Value::Map(vec![(
                Value::String("k".into()),
                Value::Decimal {
                    unscaled: 1000,
                    scale: 2,
                },
            )]),
            Value::Bytes(b"{".to_vec()),
        ]);
        let mut out = String::new();
        write_value(&mut out, &value, &ty).unwrap();
        assert_eq!(out, r#"{"D":1.0E7,"M":{"k":10.00},"B":"ew=="}"#);
        let mut out = String::new();
        write_value(&mut out, &Value::Double(f64::NAN), &SqlType::Double).unwrap();
        assert_eq!(out, "\"NaN\"");
    }
}
