//! JSON functions (ksqlDB's "JSON" category). JSON text is read by a small parser that keeps
//! numbers as written (ksqlDB's Jackson reads floats as BigDecimal, so `1.50` stays `1.50`)
//! and reads the first value of the text, ignoring what follows, as Jackson's `readTree` does.

use std::sync::Arc;

use super::{overload, row_fn, variadic, FunctionRegistry, GenericFunction, SimpleFunction};
use crate::types::SqlType;
use crate::value::{decimal_to_string, java_double_to_string, Value};

use SqlType::{Boolean, Integer, String as Str};

const JSON: &str = "JSON";

/// A parsed JSON value; numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Reads the first JSON value in `text` (`None` if there is none or it is malformed).
    pub fn parse(text: &str) -> Option<Json> {
        let mut reader = Reader {
            bytes: text.as_bytes(),
            pos: 0,
        };
        reader.value(0)
    }

    /// Compact JSON, as Jackson's `toString` writes it.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_json_string(s, out),
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
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Text for a string node, compact JSON for the rest, NULL for JSON null (what
    /// EXTRACTJSONFIELD and JSON_RECORDS return).
    fn as_text_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_compact()),
        }
    }
}

/// A JSON number as ksqlDB's Jackson prints it back: integers as written (`-0` is `0`), others
/// as `BigDecimal.toString()` (`1.50`, `1E+5`, `1.5E-7`).
fn java_number_text(raw: &str) -> String {
    let (negative, body) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (body, 0),
    };
    if !body.contains(['.', 'e', 'E']) {
        let trimmed = body.trim_start_matches('0');
        let digits = if trimmed.is_empty() { "0" } else { trimmed };
        return if negative && digits != "0" {
            format!("-{digits}")
        } else {
            digits.to_string()
        };
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{whole}{fraction}");
    let significant = all.trim_start_matches('0');
    let digits = if significant.is_empty() {
        "0"
    } else {
        significant
    };
    let scale = fraction.len() as i64 - exponent;
    let adjusted = -scale + digits.len() as i64 - 1;
    // BigDecimal has no negative zero.
    let sign = if negative && digits != "0" { "-" } else { "" };
    if scale >= 0 && adjusted >= -6 {
        if digits.len() > 38 || scale > 255 {
            // Beyond i128: keep the written digits.
            return raw.to_string();
        }
        let unscaled = digits.parse::<i128>().unwrap_or(0);
        return format!(
            "{sign}{}",
            crate::value::decimal_to_string(unscaled, scale as u8)
        );
    }
    let mut out = String::from(sign);
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('E');
    if adjusted >= 0 {
        out.push('+');
    }
    out.push_str(&adjusted.to_string());
    out
}

/// A JSON string literal with Jackson's escapes.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 512 {
            return None;
        }
        self.skip_space();
        match *self.bytes.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.skip_space();
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Some(Json::Object(fields));
                }
                loop {
                    self.skip_space();
                    let key = self.string()?;
                    self.skip_space();
                    if self.bytes.get(self.pos) != Some(&b':') {
                        return None;
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    // Jackson keeps the last of duplicate keys.
                    if let Some(existing) = fields.iter_mut().find(|(k, _)| *k == key) {
                        existing.1 = value;
                    } else {
                        fields.push((key, value));
                    }
                    self.skip_space();
                    match self.bytes.get(self.pos)? {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            return Some(Json::Object(fields));
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_space();
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_space();
                    match self.bytes.get(self.pos)? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(Json::Array(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(Json::String),
            b't' => self.keyword("true", Json::Bool(true)),
            b'f' => self.keyword("false", Json::Bool(false)),
            b'n' => self.keyword("null", Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn keyword(&mut self, word: &str, value: Json) -> Option<Json> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let digits = |r: &mut Self| {
            let s = r.pos;
            while r.bytes.get(r.pos).is_some_and(u8::is_ascii_digit) {
                r.pos += 1;
            }
            r.pos > s
        };
        if !digits(self) {
            return None;
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
        Some(Json::Number(java_number_text(text)))
    }

    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escape = *self.bytes.get(self.pos)?;
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4()?;
                            if (0xD800..0xDC00).contains(&first)
                                && self.bytes[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                let second = self.hex4()?;
                                char::decode_utf16([first, second])
                                    .next()?
                                    .unwrap_or('\u{fffd}')
                            } else {
                                char::from_u32(first as u32).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let text = std::str::from_utf8(self.bytes.get(self.pos..self.pos + 4)?).ok()?;
        self.pos += 4;
        u16::from_str_radix(text, 16).ok()
    }
}

/// One step of ksqlDB's JSONPath subset.
#[derive(Debug, PartialEq)]
enum PathStep {
    Field(String),
    Index(i64),
}

/// `$`, `$.a.b`, `$.a[0]`, `$['a']`, `$["a"]` (ksqlDB's `JsonPathTokenizer`).
fn parse_path(path: &str) -> Result<Vec<PathStep>, String> {
    let invalid = || format!("Invalid JsonPath: {path}");
    let chars: Vec<char> = path.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return Err(invalid());
    }
    let mut steps = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i == start {
                    return Err(invalid());
                }
                steps.push(PathStep::Field(chars[start..i].iter().collect()));
            }
            '[' => {
                i += 1;
                match chars.get(i) {
                    Some(&quote @ ('\'' | '"')) => {
                        i += 1;
                        let start = i;
                        while i < chars.len() && chars[i] != quote {
                            i += 1;
                        }
                        let name: String = chars[start..i].iter().collect();
                        i += 1;
                        if chars.get(i) != Some(&']') {
                            return Err(invalid());
                        }
                        i += 1;
                        steps.push(PathStep::Field(name));
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        let text: String = chars[start..i].iter().collect();
                        if i >= chars.len() {
                            return Err(invalid());
                        }
                        i += 1;
                        let index = text.trim().parse::<i64>().map_err(|_| invalid())?;
                        steps.push(PathStep::Index(index));
                    }
                }
            }
            _ => return Err(invalid()),
        }
    }
    Ok(steps)
}

fn extract_json_field(json: &str, path: &str) -> Result<Value, String> {
    let steps = parse_path(path)?;
    let Some(mut node) = Json::parse(json) else {
        return Ok(Value::Null);
    };
    for step in &steps {
        let next = match (&node, step) {
            (Json::Object(fields), PathStep::Field(name)) => fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
            (Json::Array(items), PathStep::Index(index)) if *index >= 0 => {
                items.get(*index as usize).cloned()
            }
            (Json::Array(items), PathStep::Field(name)) => name
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index).cloned()),
            _ => None,
        };
        match next {
            Some(value) => node = value,
            None => return Ok(Value::Null),
        }
    }
    Ok(node.as_text_value())
}

/// A ksqlDB value as JSON (TO_JSON_STRING), with its type for struct field names: decimals
/// plain, doubles as Java writes them, bytes base64, dates/times/timestamps ISO text.
pub fn value_to_json(value: &Value, sql_type: &SqlType, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(v) => out.push_str(&v.to_string()),
        Value::BigInt(v) => out.push_str(&v.to_string()),
        Value::Double(v) => {
            if v.is_finite() {
                out.push_str(&java_double_to_string(*v));
            } else {
                write_json_string(&java_double_to_string(*v), out);
            }
        }
        Value::Decimal { unscaled, scale } => out.push_str(&decimal_to_string(*unscaled, *scale)),
        Value::String(s) => write_json_string(s, out),
        Value::Bytes(b) => write_json_string(&super::string::encode_base64(b), out),
        Value::Date(days) => write_json_string(
            &super::datetime::format_date_iso(*days).unwrap_or_default(),
            out,
        ),
        Value::Time(millis) => {
            write_json_string(&super::datetime::format_time_iso(*millis), out);
        }
        Value::Timestamp(millis) => write_json_string(
            &super::datetime::format_timestamp_iso(*millis).unwrap_or_default(),
            out,
        ),
        Value::Array(items) => {
            let inner = match sql_type {
                SqlType::Array(inner) => inner.as_ref(),
                other => other,
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value_to_json(item, inner, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let (key_type, value_type) = match sql_type {
                SqlType::Map(k, v) => (k.as_ref(), v.as_ref()),
                other => (other, other),
            };
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key_text = match key {
                    Value::String(s) => s.clone(),
                    other => {
                        let mut text = String::new();
                        value_to_json(other, key_type, &mut text);
                        text.trim_matches('"').to_string()
                    }
                };
                write_json_string(&key_text, out);
                out.push(':');
                value_to_json(item, value_type, out);
            }
            out.push('}');
        }
        Value::Struct(fields) => {
            let types: &[(String, SqlType)] = match sql_type {
                SqlType::Struct(types) => types,
                _ => &[],
            };
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let (name, field_type) = types
                    .get(i)
                    .map_or((format!("field{i}"), &SqlType::String), |(n, t)| {
                        (n.clone(), t)
                    });
                write_json_string(&name, out);
                out.push(':');
                value_to_json(field, field_type, out);
            }
            out.push('}');
        }
    }
}

/// JSON_CONCAT: objects merge (later keys win); otherwise everything becomes one array
/// (arrays spliced, other values appended). Any invalid input gives NULL.
fn json_concat(args: &[Value]) -> Result<Value, String> {
    let mut parsed = Vec::with_capacity(args.len());
    for arg in args {
        let Some(text) = arg.as_str() else {
            return Ok(Value::Null);
        };
        match Json::parse(text) {
            Some(json) => parsed.push(json),
            None => return Ok(Value::Null),
        }
    }
    if parsed.is_empty() {
        return Ok(Value::Null);
    }
    let result = if parsed.iter().all(|j| matches!(j, Json::Object(_))) {
        let mut merged: Vec<(String, Json)> = Vec::new();
        for json in parsed {
            if let Json::Object(fields) = json {
                for (key, value) in fields {
                    if let Some(existing) = merged.iter_mut().find(|(k, _)| *k == key) {
                        existing.1 = value;
                    } else {
                        merged.push((key, value));
                    }
                }
            }
        }
        Json::Object(merged)
    } else {
        let mut items = Vec::new();
        for json in parsed {
            match json {
                Json::Array(inner) => items.extend(inner),
                other => items.push(other),
            }
        }
        Json::Array(items)
    };
    Ok(Value::String(result.to_compact()))
}

fn parsed_arg(value: &Value) -> Option<Json> {
    value.as_str().and_then(Json::parse)
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    let add = |registry: &mut FunctionRegistry,
               name: &'static str,
               description: &'static str,
               overloads: Vec<super::Overload>| {
        registry.register(Arc::new(SimpleFunction {
            name,
            category: JSON,
            description,
            overloads,
        }));
    };
    add(
        registry,
        "EXTRACTJSONFIELD",
        "Given a STRING that contains JSON data, extract the value at the specified JSONPath \
         or NULL if the specified path does not exist.",
        vec![overload(vec![Str, Str], Str, |a| {
            match (a[0].as_str(), a[1].as_str()) {
                (Some(json), Some(path)) => extract_json_field(json, path),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "IS_JSON_STRING",
        "Given a string, returns true if it can be parsed as a valid JSON value, false \
         otherwise.",
        vec![overload(vec![Str], Boolean, |a| {
            Ok(Value::Boolean(parsed_arg(&a[0]).is_some()))
        })],
    );
    add(
        registry,
        "JSON_ARRAY_LENGTH",
        "Given a string with JSON array, returns the array length",
        vec![overload(vec![Str], Integer, |a| {
            Ok(match parsed_arg(&a[0]) {
                Some(Json::Array(items)) => Value::Integer(items.len() as i32),
                _ => Value::Null,
            })
        })],
    );
    add(
        registry,
        "JSON_KEYS",
        "Given a string with JSON object, returns the object keys as an array",
        vec![overload(vec![Str], SqlType::Array(Box::new(Str)), |a| {
            Ok(match parsed_arg(&a[0]) {
                Some(Json::Object(fields)) => {
                    Value::Array(fields.into_iter().map(|(k, _)| Value::String(k)).collect())
                }
                _ => Value::Null,
            })
        })],
    );
    add(
        registry,
        "JSON_RECORDS",
        "Given a string with JSON object, returns its entries as a map of keys to JSON text",
        vec![overload(
            vec![Str],
            SqlType::Map(Box::new(Str), Box::new(Str)),
            |a| {
                Ok(match parsed_arg(&a[0]) {
                    Some(Json::Object(fields)) => Value::Map(
                        fields
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v.as_text_value()))
                            .collect(),
                    ),
                    _ => Value::Null,
                })
            },
        )],
    );
    add(
        registry,
        "JSON_ITEMS",
        "Given a string with JSON array, converts it to an array of JSON strings",
        vec![overload(vec![Str], SqlType::Array(Box::new(Str)), |a| {
            Ok(match parsed_arg(&a[0]) {
                Some(Json::Array(items)) => Value::Array(
                    items
                        .iter()
                        .map(|item| Value::String(item.to_compact()))
                        .collect(),
                ),
                _ => Value::Null,
            })
        })],
    );
    add(
        registry,
        "JSON_CONCAT",
        "Given N strings, parse them as JSON values and return a string representing their \
         concatenation: objects are merged, otherwise an array of all values.",
        vec![variadic(vec![Str], Str, json_concat)],
    );
    registry.register(Arc::new(GenericFunction {
        name: "JSON_ARRAY_CONTAINS",
        category: JSON,
        description: "Given a STRING that contains a JSON array, return true if the array \
                      contains the given value.",
        signatures: &[
            "JSON_ARRAY_CONTAINS(STRING, STRING) => BOOLEAN",
            "JSON_ARRAY_CONTAINS(STRING, INTEGER) => BOOLEAN",
            "JSON_ARRAY_CONTAINS(STRING, BIGINT) => BOOLEAN",
            "JSON_ARRAY_CONTAINS(STRING, DOUBLE) => BOOLEAN",
            "JSON_ARRAY_CONTAINS(STRING, BOOLEAN) => BOOLEAN",
        ],
        bind: |types| match types {
            [Str, SqlType::String | Integer | SqlType::BigInt | SqlType::Double | Boolean] => {
                Some((Boolean, row_fn(json_array_contains)))
            }
            _ => None,
        },
    }));
    registry.register(Arc::new(GenericFunction {
        name: "TO_JSON_STRING",
        category: JSON,
        description: "Given any ksqlDB type returns the equivalent JSON string.",
        signatures: &["TO_JSON_STRING(T) => STRING"],
        bind: |types| match types {
            [t] => {
                let t = t.clone();
                Some((
                    Str,
                    row_fn(move |a| {
                        let mut out = String::new();
                        value_to_json(&a[0], &t, &mut out);
                        Ok(Value::String(out))
                    }),
                ))
            }
            _ => None,
        },
    }));
}

fn json_array_contains(a: &[Value]) -> Result<Value, String> {
    let Some(Json::Array(items)) = parsed_arg(&a[0]) else {
        return Ok(Value::Boolean(false));
    };
    let found = items.iter().any(|item| match (item, &a[1]) {
        (Json::Null, Value::Null) => true,
        (Json::String(s), Value::String(v)) => s == v,
        (Json::Bool(b), Value::Boolean(v)) => b == v,
        (Json::Number(n), Value::Integer(_) | Value::BigInt(_)) => {
            !n.contains(['.', 'e', 'E']) && n.parse::<i64>().ok() == a[1].as_i64()
        }
        (Json::Number(n), Value::Double(v)) => {
            n.contains(['.', 'e', 'E']) && n.parse::<f64>().ok() == Some(*v)
        }
        _ => false,
    });
    Ok(Value::Boolean(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::FunctionRegistry;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn call(name: &str, types: &[SqlType], args: &[Value]) -> Value {
        let registry = FunctionRegistry::builtin();
        registry
            .get(name)
            .unwrap()
            .bind(types)
            .unwrap()
            .call(args)
            .unwrap()
    }

    #[test]
    fn extractjsonfield_follows_the_path_subset() {
        let doc = r#"{"a": {"b": [10, 2.50, {"c": "x\"y"}]}, "@t": null, "n": true} trailing"#;
        assert_eq!(extract_json_field(doc, "$.a.b[1]").unwrap(), s("2.50"));
        assert_eq!(extract_json_field(doc, "$.a.b[2].c").unwrap(), s("x\"y"));
        assert_eq!(
            extract_json_field(doc, "$['a'][\"b\"][0]").unwrap(),
            s("10")
        );
        assert_eq!(extract_json_field(doc, "$.a.b[-1]").unwrap(), Value::Null);
        assert_eq!(extract_json_field(doc, "$.a.b[7]").unwrap(), Value::Null);
        assert_eq!(extract_json_field(doc, "$.@t").unwrap(), Value::Null);
        assert_eq!(extract_json_field(doc, "$.n").unwrap(), s("true"));
        assert_eq!(
            extract_json_field(doc, "$.a").unwrap(),
            s(r#"{"b":[10,2.50,{"c":"x\"y"}]}"#)
        );
        assert_eq!(extract_json_field("not json", "$.a").unwrap(), Value::Null);
        assert!(extract_json_field(doc, "a.b").is_err());
    }

    #[test]
    fn numbers_print_as_java_big_decimals() {
        assert_eq!(java_number_text("1.23450"), "1.23450");
        assert_eq!(java_number_text("-0.5"), "-0.5");
        assert_eq!(java_number_text("1e5"), "1E+5");
        assert_eq!(java_number_text("1.5E3"), "1.5E+3");
        assert_eq!(java_number_text("2.5e-1"), "0.25");
        assert_eq!(java_number_text("0.00000001"), "1E-8");
        assert_eq!(java_number_text("0.000001"), "0.000001");
        assert_eq!(java_number_text("-0"), "0");
        assert_eq!(java_number_text("-0.0"), "0.0");
        assert_eq!(
            java_number_text("12345678901234567890123"),
            "12345678901234567890123"
        );
    }

    #[test]
    fn json_helpers_read_arrays_and_objects() {
        assert_eq!(
            call("IS_JSON_STRING", &[Str], &[s("\"x\"")]),
            Value::Boolean(true)
        );
        assert_eq!(
            call("IS_JSON_STRING", &[Str], &[s("x")]),
            Value::Boolean(false)
        );
        assert_eq!(
            call("IS_JSON_STRING", &[Str], &[Value::Null]),
            Value::Boolean(false)
        );
        assert_eq!(
            call("JSON_ARRAY_LENGTH", &[Str], &[s("[1,[2]]")]),
            Value::Integer(2)
        );
        assert_eq!(call("JSON_ARRAY_LENGTH", &[Str], &[s("")]), Value::Null);
        assert_eq!(
            call("JSON_KEYS", &[Str], &[s(r#"{"b":1,"a":2}"#)]),
            Value::Array(vec![s("b"), s("a")])
        );
        assert_eq!(
            call("JSON_RECORDS", &[Str], &[s(r#"{"k":"v","n":[1]}"#)]),
            Value::Map(vec![(s("k"), s("v")), (s("n"), s("[1]"))])
        );
        assert_eq!(
            call("JSON_ITEMS", &[Str], &[s(r#"[{"a": 1}, "x"]"#)]),
            Value::Array(vec![s(r#"{"a":1}"#), s("\"x\"")])
        );
        assert_eq!(
            call(
                "JSON_ARRAY_CONTAINS",
                &[Str, Integer],
                &[s("[1.0, 2]"), Value::Integer(2)]
            ),
            Value::Boolean(true)
        );
        assert_eq!(
            call(
                "JSON_ARRAY_CONTAINS",
                &[Str, Integer],
                &[s("[1.0]"), Value::Integer(1)]
            ),
            Value::Boolean(false)
        );
    }

    #[test]
    fn json_concat_merges_objects_and_splices_arrays() {
        let t = [Str, Str];
        assert_eq!(
            call(
                "JSON_CONCAT",
                &t,
                &[s(r#"{"a":{"x":1}}"#), s(r#"{"a":2,"b":3}"#)]
            ),
            s(r#"{"a":2,"b":3}"#)
        );
        assert_eq!(
            call("JSON_CONCAT", &t, &[s("[1]"), s(r#"{"a":1}"#)]),
            s(r#"[1,{"a":1}]"#)
        );
        assert_eq!(call("JSON_CONCAT", &t, &[s("null"), s("7")]), s("[null,7]"));
        assert_eq!(call("JSON_CONCAT", &t, &[s("[]"), s("")]), Value::Null);
    }

    #[test]
    fn to_json_string_uses_the_type() {
        let t = SqlType::Struct(vec![
            ("ID".into(), SqlType::Integer),
            (
                "M".into(),
                SqlType::Map(Box::new(Str), Box::new(SqlType::Double)),
            ),
            ("D".into(), SqlType::Date),
        ]);
        let value = Value::Struct(vec![
            Value::Integer(1),
            Value::Map(vec![(s("k"), Value::Double(1e7))]),
            Value::Date(1000),
        ]);
        assert_eq!(
            call("TO_JSON_STRING", &[t], &[value]),
            s(r#"{"ID":1,"M":{"k":1.0E7},"D":"1972-09-27"}"#)
        );
        assert_eq!(call("TO_JSON_STRING", &[Str], &[Value::Null]), s("null"));
        assert_eq!(
            call(
                "TO_JSON_STRING",
                &[SqlType::Timestamp],
                &[Value::Timestamp(60_220_000_000)]
            ),
            s("\"1971-11-28T23:46:40.000\"")
        );
    }
}
