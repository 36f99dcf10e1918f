//! A hand-written JSON object reader for flat schemas (numbers, booleans, strings): one pass
//! over each message, values parsed straight into their column's slot. Nested values under
//! keys that are not columns are skipped; anything else falls back to arrow-json.

use std::collections::HashMap;
use std::sync::Mutex;

use arrow_schema::SchemaRef;

use super::flat::{flat_name, parse_text, FlatBatchBuilder, FlatType, Slot};
use super::{prefetching, Decoded, FormatError, Payload, RowFailure, SharedDecoder};

pub struct FlatJsonDecoder {
    schema: SchemaRef,
    types: Vec<FlatType>,
    names: Vec<Vec<u8>>,
    by_name: HashMap<Vec<u8>, usize>,
    /// With `noting_unknown_fields`: the keys met that are not columns.
    unknown: Option<Mutex<Vec<String>>>,
}

/// How many unknown keys a decoder notes (a message with hundreds of extra keys must not
/// make a list of hundreds).
const UNKNOWN_KEYS_NOTED: usize = 16;

impl FlatJsonDecoder {
    pub fn new(schema: SchemaRef, types: Vec<FlatType>) -> Self {
        let names: Vec<Vec<u8>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().to_vec())
            .collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        FlatJsonDecoder {
            schema,
            types,
            names,
            by_name,
            unknown: None,
        }
    }

    /// Also notes the keys that are not columns (see `unknown_fields`). Off by default: a
    /// declared schema often picks a few columns out of many keys on purpose.
    pub fn noting_unknown_fields(mut self) -> Self {
        self.unknown = Some(Mutex::new(Vec::new()));
        self
    }

    /// The keys met that are not columns, the first `UNKNOWN_KEYS_NOTED`, when noted.
    pub fn unknown_fields(&self) -> Vec<String> {
        match &self.unknown {
            Some(noted) => noted.lock().map(|n| n.clone()).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub fn decode(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        super::flat::decode_in_parallel(&self.schema, payloads, |chunk| self.decode_chunk(chunk))
    }

    /// Decodes on this thread.
    fn decode_chunk(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        let mut builder =
            FlatBatchBuilder::new(self.schema.clone(), self.types.clone(), payloads.len());
        let mut slots = vec![Slot::Null; self.types.len()];
        let mut scratch = Vec::new();
        let mut key = Vec::new();
        let mut failures = Vec::new();
        // Unknown keys are gathered per chunk and noted once at its end (one lock a chunk).
        let mut unknown: Option<Vec<Vec<u8>>> = self.unknown.as_ref().map(|_| Vec::new());
        for (index, payload) in prefetching(payloads) {
            slots.fill(Slot::Null);
            scratch.clear();
            let parsed = match payload.value {
                None => Ok(()), // a tombstone is a row of nulls
                Some(bytes) => {
                    let mut reader = Reader { bytes, pos: 0 };
                    self.read_object(
                        &mut reader,
                        &mut slots,
                        &mut scratch,
                        &mut key,
                        &mut unknown,
                    )
                }
            };
            let appended = parsed
                .and_then(|()| builder.check_row(&slots))
                .and_then(|()| builder.append_row(&slots, &scratch));
            if let Err(reason) = appended {
                failures.push(RowFailure { index, reason });
            }
        }
        if let (Some(found), Some(noted)) = (unknown, &self.unknown) {
            if let Ok(mut noted) = noted.lock() {
                for name in found {
                    let name = String::from_utf8_lossy(&name).into_owned();
                    if noted.len() < UNKNOWN_KEYS_NOTED && !noted.contains(&name) {
                        noted.push(name);
                    }
                }
            }
        }
        Ok(Decoded {
            batch: builder.finish()?,
            failures,
        })
    }

    fn column_of(&self, key: &[u8], predicted: usize) -> Option<usize> {
        // Producers write keys in the same order every time: try the next column first.
        if self.names.get(predicted).is_some_and(|n| n == key) {
            return Some(predicted);
        }
        self.by_name.get(key).copied()
    }

    fn read_object(
        &self,
        r: &mut Reader<'_>,
        slots: &mut [Slot],
        scratch: &mut Vec<u8>,
        key: &mut Vec<u8>,
        unknown: &mut Option<Vec<Vec<u8>>>,
    ) -> Result<(), String> {
        r.skip_ws();
        match r.peek() {
            Some(b'{') => r.pos += 1,
            None => return Err("the message holds no JSON object".into()),
            Some(_) => return Err(format!("expected a JSON object at byte {}", r.pos)),
        }
        r.skip_ws();
        let mut predicted = 0;
        if r.peek() == Some(b'}') {
            r.pos += 1;
        } else {
            loop {
                r.skip_ws();
                if r.peek() != Some(b'"') {
                    return Err(format!("expected a key at byte {}", r.pos));
                }
                // Keys without escapes are compared where they are, not copied.
                let key: &[u8] = match r.plain_string() {
                    Some(text) => text,
                    None => {
                        key.clear();
                        r.read_string(key)?;
                        key
                    }
                };
                r.skip_ws();
                if r.peek() != Some(b':') {
                    return Err(format!("expected ':' at byte {}", r.pos));
                }
                r.pos += 1;
                r.skip_ws();
                match self.column_of(key, predicted) {
                    Some(column) => {
                        self.read_value(r, column, scratch, &mut slots[column])?;
                        predicted = column + 1;
                    }
                    None => {
                        if let Some(unknown) = unknown {
                            if unknown.len() < UNKNOWN_KEYS_NOTED
                                && !unknown.iter().any(|k| k == key)
                            {
                                unknown.push(key.to_vec());
                            }
                        }
                        r.skip_value(0)?
                    }
                }
                r.skip_ws();
                match r.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    Some(_) => return Err(format!("expected ',' or '}}' at byte {}", r.pos - 1)),
                    None => return Err("truncated JSON: the message ends inside an object".into()),
                }
            }
        }
        r.skip_ws();
        if r.pos != r.bytes.len() {
            return Err("more than one JSON value in the message".into());
        }
        Ok(())
    }

    /// Reads the value at the reader into `slot`. In place rather than returned: a returned
    /// slot was copied out right after its two parts were written, and that copy stalled
    /// on every field waiting for the writes (a fifth of this decoder's time).
    fn read_value(
        &self,
        r: &mut Reader<'_>,
        column: usize,
        scratch: &mut Vec<u8>,
        slot: &mut Slot,
    ) -> Result<(), String> {
        if let Some(b'-' | b'0'..=b'9') = r.peek() {
            if r.plain_number(self.types[column], slot) {
                return Ok(());
            }
        }
        *slot = self.read_other_value(r, column, scratch)?;
        Ok(())
    }

    /// A value that is not a plain number: strings, literals, and numbers the one-pass
    /// parser leaves to the general one.
    fn read_other_value(
        &self,
        r: &mut Reader<'_>,
        column: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<Slot, String> {
        let flat = self.types[column];
        let name = &self.schema.field(column).name();
        let start = r.pos;
        match r.peek() {
            Some(b'"') => {
                let mut text = Vec::new();
                r.read_string(&mut text)?;
                // A string column keeps the text; others parse it (as arrow-json does).
                parse_text(&text, flat, scratch).map_err(|e| format!("field {name:?}: {e}"))
            }
            Some(b'n') => {
                r.expect_literal(b"null")?;
                Ok(Slot::Null)
            }
            Some(b't' | b'f') => {
                let literal: &[u8] = if r.peek() == Some(b't') {
                    b"true"
                } else {
                    b"false"
                };
                r.expect_literal(literal)?;
                match flat {
                    FlatType::Boolean => Ok(Slot::Bool(literal == b"true")),
                    FlatType::Utf8 => parse_text(literal, flat, scratch),
                    _ => Err(format!(
                        "field {name:?}: expected a {}, found {}",
                        flat_name(flat),
                        String::from_utf8_lossy(literal)
                    )),
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                while r.peek().is_some_and(is_number_byte) {
                    r.pos += 1;
                }
                let number = &r.bytes[start..r.pos];
                match flat {
                    FlatType::Boolean => Err(format!(
                        "field {name:?}: expected a boolean, found a number"
                    )),
                    _ => parse_text(number, flat, scratch)
                        .map_err(|e| format!("field {name:?}: {e}")),
                }
            }
            Some(b'{' | b'[') => Err(format!(
                "field {name:?}: expected a {}, found a nested value",
                flat_name(flat)
            )),
            Some(_) => Err(format!("invalid JSON at byte {start}")),
            None => Err("truncated JSON: the message ends inside a value".into()),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Bytes that can continue a JSON number.
fn is_number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// The number at the start of `bytes` and the bytes it used, if it is all of the JSON number
/// there (not "1.5" of "1.5.5").
fn whole_number<T: lexical_core::FromLexical>(bytes: &[u8]) -> Option<(T, usize)> {
    let (value, used) = lexical_core::parse_partial::<T>(bytes).ok()?;
    (!bytes.get(used).is_some_and(|b| is_number_byte(*b))).then_some((value, used))
}

impl SharedDecoder for FlatJsonDecoder {
    fn decode_shared(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        self.decode_chunk(payloads)
    }
}

impl<'a> Reader<'a> {
    /// A string without escapes (at its opening quote), where it is. `None`, with the
    /// position unchanged, when it has escapes or no end: `read_string` handles those.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let bytes: &'a [u8] = self.bytes;
        let rest = &bytes[self.pos + 1..];
        let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
        if rest[end] != b'"' {
            return None;
        }
        self.pos += end + 2;
        Some(&rest[..end])
    }

    /// A number for a float or integer column parsed in one pass (the common case) into
    /// `slot`. False, with the position and slot unchanged, for anything else: an integer
    /// written as a float, a malformed or out-of-range number, a digit after a minus sign
    /// missing; the caller's general path parses those the same way and words the errors.
    fn plain_number(&mut self, flat: FlatType, slot: &mut Slot) -> bool {
        let rest = &self.bytes[self.pos..];
        if rest.first() == Some(&b'-') && !rest.get(1).is_some_and(u8::is_ascii_digit) {
            return false; // "-inf" and the like: lexical would read it, JSON does not
        }
        let used = match flat {
            FlatType::Float32 | FlatType::Float64 => match whole_number::<f64>(rest) {
                Some((value, used)) => {
                    *slot = Slot::Float(value);
                    used
                }
                None => return false,
            },
            FlatType::Int(_) => match whole_number::<i64>(rest) {
                Some((value, used)) => {
                    *slot = Slot::Int(value);
                    used
                }
                None => return false,
            },
            _ => return false,
        };
        self.pos += used;
        true
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.pos += 1;
        b
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8]) -> Result<(), String> {
        if self.bytes[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else {
            Err(format!("invalid JSON literal at byte {}", self.pos))
        }
    }

    /// Reads a string (at its opening quote) into `out`, unescaped.
    fn read_string(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.pos += 1;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(special) = rest.iter().position(|b| *b == b'"' || *b == b'\\') else {
                return Err("truncated JSON: the message ends inside a string".into());
            };
            out.extend_from_slice(&rest[..special]);
            self.pos += special;
            if self.next() == Some(b'"') {
                return Ok(());
            }
            let escaped = self.next().ok_or("truncated JSON escape")?;
            match escaped {
                b'"' | b'\\' | b'/' => out.push(escaped),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let mut code = self.hex4()?;
                    if (0xD800..0xDC00).contains(&code)
                        && self.bytes[self.pos..].starts_with(b"\\u")
                    {
                        self.pos += 2;
                        let low = self.hex4()?;
                        code =
                            0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                    }
                    let c = char::from_u32(code).unwrap_or('\u{FFFD}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => return Err(format!("invalid escape \\{}", other as char)),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or("truncated \\u escape")?;
        self.pos += 4;
        let text = std::str::from_utf8(digits).map_err(|_| "invalid \\u escape")?;
        u32::from_str_radix(text, 16).map_err(|_| "invalid \\u escape".to_string())
    }

    /// Skips one value of any kind (objects and arrays included).
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 128 {
            return Err("JSON nested too deeply".into());
        }
        self.skip_ws();
        match self.peek() {
            Some(b'"') => {
                let mut sink = Vec::new();
                self.read_string(&mut sink)
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.skip_ws();
                        let mut sink = Vec::new();
                        if self.peek() != Some(b'"') {
                            return Err(format!("expected a key at byte {}", self.pos));
                        }
                        self.read_string(&mut sink)?;
                        self.skip_ws();
                        if self.next() != Some(b':') {
                            return Err(format!("expected ':' at byte {}", self.pos - 1));
                        }
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        Some(_) => return Err(format!("invalid JSON at byte {}", self.pos - 1)),
                        None => return Err("truncated JSON".into()),
                    }
                }
            }
            Some(b't') => self.expect_literal(b"true"),
            Some(b'f') => self.expect_literal(b"false"),
            Some(b'n') => self.expect_literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while self.peek().is_some_and(is_number_byte) {
                    self.pos += 1;
                }
                lexical_core::parse::<f64>(&self.bytes[start..self.pos])
                    .map(|_| ())
                    .map_err(|_| format!("invalid JSON number at byte {start}"))
            }
            Some(_) => Err(format!("invalid JSON at byte {}", self.pos)),
            None => Err("truncated JSON".into()),
        }
    }
}
