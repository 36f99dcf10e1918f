//! Incremental parsers for ksqlDB's streaming responses.
//!
//! All four response shapes are sequences of JSON values; only the framing differs:
//! - `/query`, KSQL 5.x: `{"row":…,"errorMessage":…,"finalMessage":…}` objects, one a line;
//! - `/query`, ksqlDB: one JSON array `[{"header":…},{"row":…},…,{"finalMessage":…}]`;
//! - `/query-stream`, `application/vnd.ksqlapi.delimited.v1`: a header object, then one JSON
//!   array per row, one a line;
//! - `/query-stream`, `application/json`: one JSON array `[{header}, [row], [row], …]`.
//!
//! Servers send blank lines as keep-alives, and HTTP chunk boundaries fall anywhere (inside
//! a string, between `\` and the escaped byte, between the two bytes of a UTF-8 character),
//! so [`ValueSplitter`] scans bytes with a tiny state machine that survives any split, and
//! [`classify`] turns each complete value into an [`Element`].

use serde::Deserialize;
use serde_json::value::RawValue;

/// The response is not what a ksqlDB server sends; says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed streaming response at byte {offset}: {reason}")]
pub struct ParseError {
    pub offset: u64,
    pub reason: String,
}

/// Splits a byte stream into top-level JSON objects and arrays, whichever way it is chunked.
///
/// A leading `[` means the values are the elements of one outer array (the `/query` array
/// format and `/query-stream` json format); then commas between values and the closing `]`
/// are framing. Otherwise values are separated by whitespace (newline-delimited formats).
/// Whitespace between values (keep-alives) is skipped in both.
#[derive(Debug, Default)]
pub struct ValueSplitter {
    buffer: Vec<u8>,
    /// The next byte to examine.
    scan: usize,
    /// Where the value being scanned starts, if one is in progress.
    value_start: Option<usize>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// `None` until the first non-blank byte decides the framing.
    wrapped: Option<bool>,
    /// The outer array's `]` was seen: nothing but whitespace may follow.
    closed: bool,
    /// Bytes dropped from the front of `buffer` so far (for error offsets).
    dropped: u64,
}

impl ValueSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next chunk of the response.
    pub fn push(&mut self, chunk: &[u8]) {
        // Drop what was handed out once that is worth a move; a value in progress stays.
        let keep_from = self.value_start.unwrap_or(self.scan);
        if keep_from > 0 && keep_from * 2 >= self.buffer.len() {
            self.buffer.drain(..keep_from);
            self.dropped += keep_from as u64;
            self.scan -= keep_from;
            if let Some(start) = self.value_start.as_mut() {
                *start -= keep_from;
            }
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// True when the outer array was closed (an array-framed response is complete).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True when bytes of an unfinished value are buffered.
    pub fn has_partial_value(&self) -> bool {
        self.value_start.is_some()
    }

    fn error(&self, at: usize, reason: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.dropped + at as u64,
            reason: reason.into(),
        }
    }

    /// The next complete value, or `None` when more bytes are needed.
    pub fn next_value(&mut self) -> Result<Option<&[u8]>, ParseError> {
        let bytes = &self.buffer;
        let mut i = self.scan;
        // Locals, so the hot loop runs in registers; stored back before returning.
        let (mut depth, mut in_string, mut escaped) = (self.depth, self.in_string, self.escaped);
        while i < bytes.len() {
            if self.value_start.is_none() {
                let byte = bytes[i];
                match byte {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    _ if self.closed => {
                        return Err(self.error(
                            i,
                            format!("unexpected {:?} after the closing ']'", byte as char),
                        ))
                    }
                    b',' if self.wrapped == Some(true) => {}
                    b']' if self.wrapped == Some(true) => self.closed = true,
                    b'[' if self.wrapped.is_none() => self.wrapped = Some(true),
                    b'{' | b'[' => {
                        if self.wrapped.is_none() {
                            self.wrapped = Some(false);
                        }
                        self.value_start = Some(i);
                        depth = 1;
                    }
                    other => {
                        return Err(self.error(
                            i,
                            format!("expected a JSON object or array, found {:?}", other as char),
                        ))
                    }
                }
                i += 1;
                continue;
            }
            if in_string {
                if escaped {
                    escaped = false;
                    i += 1;
                    continue;
                }
                // Jump to the next quote or backslash.
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    None => i = bytes.len(),
                    Some(offset) => {
                        i += offset;
                        if bytes[i] == b'\\' {
                            escaped = true;
                        } else {
                            in_string = false;
                        }
                        i += 1;
                    }
                }
                continue;
            }
            match bytes[i] {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        let start = self.value_start.take().unwrap_or(i);
                        self.scan = i + 1;
                        (self.depth, self.in_string, self.escaped) = (0, false, false);
                        return Ok(Some(&self.buffer[start..=i]));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.scan = i;
        (self.depth, self.in_string, self.escaped) = (depth, in_string, escaped);
        Ok(None)
    }
}

/// Splits a byte stream into whole lines, whichever way it is chunked, for callers that
/// want the response text unchanged (ksql-python's line-by-line `query()`).
///
/// Each line comes with its `\n`. Blank lines (keep-alives) are not handed out on their own:
/// they are kept and prepended to the next line with content, so no line handed out is
/// blank, and concatenating all of them, plus [`LineSplitter::take_rest`] at the end, gives
/// back the body byte for byte. JSON strings cannot hold a raw newline, so a line never ends
/// inside a value's string, and a line is always whole UTF-8.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buffer: Vec<u8>,
    /// Where the next line to hand out starts (its leading blank lines included).
    start: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// The next byte to search for a newline.
    scan: usize,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next chunk of the response.
    pub fn push(&mut self, chunk: &[u8]) {
        // Drop what was handed out once that is worth a move.
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.line_start -= self.start;
            self.scan -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole line with content (and the blank lines before it), or `None` when more
    /// bytes are needed.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        while let Some(offset) = memchr::memchr(b'\n', &self.buffer[self.scan..]) {
            let newline = self.scan + offset;
            let line = &self.buffer[self.line_start..newline];
            self.scan = newline + 1;
            self.line_start = newline + 1;
            if line.iter().any(|b| !matches!(b, b' ' | b'\t' | b'\r')) {
                let start = std::mem::replace(&mut self.start, newline + 1);
                return Some(&self.buffer[start..=newline]);
            }
        }
        self.scan = self.buffer.len();
        None
    }

    /// True when bytes that were not handed out are buffered.
    pub fn has_rest(&self) -> bool {
        self.start < self.buffer.len()
    }

    /// What is left once the body ended: a last line without its `\n`, or trailing blank
    /// lines; empty if nothing is.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buffer.split_off(self.start);
        self.buffer.clear();
        (self.start, self.line_start, self.scan) = (0, 0, 0);
        rest
    }
}

/// How a result set describes its columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Columns {
    /// `/query`: one string of column declarations, e.g. "`ID` BIGINT KEY, `NAME` STRING".
    Declarations(String),
    /// `/query-stream`: parallel lists of names and type strings.
    NamesAndTypes {
        names: Vec<String>,
        types: Vec<String>,
    },
}

/// An error the server reported inside an otherwise successful (HTTP 200) stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamError {
    pub error_code: Option<i64>,
    pub message: String,
    /// The JSON text of the error element, as received.
    pub raw: String,
}

/// One element of a streaming response.
#[derive(Debug, Clone, PartialEq)]
pub enum Element<'a> {
    Header {
        query_id: Option<String>,
        columns: Columns,
    },
    /// A row's values: the raw JSON array text, decoded later in bulk.
    Row {
        values: &'a str,
        tombstone: bool,
    },
    Final(String),
    Error(StreamError),
    /// Something this client does not need (e.g. a pull query's consistency token).
    Other,
}

#[derive(Deserialize)]
struct ObjectElement<'a> {
    #[serde(borrow, default)]
    row: Option<RowObject<'a>>,
    #[serde(default)]
    header: Option<HeaderObject>,
    #[serde(rename = "finalMessage", default)]
    final_message: Option<String>,
    #[serde(rename = "errorMessage", borrow, default)]
    error_message: Option<&'a RawValue>,
    #[serde(rename = "queryId", default)]
    query_id: Option<String>,
    #[serde(rename = "columnNames", default)]
    column_names: Option<Vec<String>>,
    #[serde(rename = "columnTypes", default)]
    column_types: Option<Vec<String>>,
    #[serde(rename = "@type", default)]
    kind: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct RowObject<'a> {
    #[serde(borrow)]
    columns: &'a RawValue,
    #[serde(default)]
    tombstone: Option<bool>,
}

#[derive(Deserialize)]
struct HeaderObject {
    #[serde(rename = "queryId", default)]
    query_id: Option<String>,
    #[serde(default)]
    schema: Option<String>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Classifies one complete value from [`ValueSplitter`].
pub fn classify(value: &[u8]) -> Result<Element<'_>, String> {
    let text = std::str::from_utf8(value).map_err(|e| format!("invalid UTF-8: {e}"))?;
    if text.starts_with('[') {
        return Ok(Element::Row {
            values: text,
            tombstone: false,
        });
    }
    if let Some(row) = fast_row(text) {
        return Ok(row);
    }
    let object: ObjectElement<'_> = serde_json::from_str(text)
        .map_err(|e| format!("invalid JSON element {}: {e}", preview(text)))?;
    if let Some(error) = object.error_message {
        let raw = error.get();
        let (error_code, message) = match serde_json::from_str::<ErrorObject>(raw) {
            Ok(inner) => (
                inner.error_code,
                inner.message.unwrap_or_else(|| raw.to_string()),
            ),
            Err(_) => (
                None,
                serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string()),
            ),
        };
        return Ok(Element::Error(StreamError {
            error_code,
            message,
            raw: text.to_string(),
        }));
    }
    if let Some(row) = object.row {
        let values = row.columns.get();
        if !values.starts_with('[') {
            return Err(format!("row columns are not an array: {}", preview(text)));
        }
        return Ok(Element::Row {
            values,
            tombstone: row.tombstone.unwrap_or(false),
        });
    }
    if let Some(header) = object.header {
        return Ok(Element::Header {
            query_id: header.query_id,
            columns: Columns::Declarations(header.schema.unwrap_or_default()),
        });
    }
    if let (Some(names), Some(types)) = (object.column_names, object.column_types) {
        if names.len() != types.len() {
            return Err(format!(
                "header names {} columns but gives {} types",
                names.len(),
                types.len()
            ));
        }
        return Ok(Element::Header {
            query_id: object.query_id,
            columns: Columns::NamesAndTypes { names, types },
        });
    }
    if let Some(message) = object.final_message {
        return Ok(Element::Final(message));
    }
    let is_error_type = object.kind.as_deref().is_some_and(|k| k.contains("error"));
    if object.error_code.is_some() || is_error_type {
        return Ok(Element::Error(StreamError {
            error_code: object.error_code,
            message: object.message.unwrap_or_else(|| text.to_string()),
            raw: text.to_string(),
        }));
    }
    Ok(Element::Other)
}

/// Rows exactly as ksqlDB and KSQL 5.x print them, recognised without a JSON parse (the
/// values are validated when the batch is decoded); anything else takes the general path.
fn fast_row(text: &str) -> Option<Element<'_>> {
    const PREFIX: &str = "{\"row\":{\"columns\":[";
    if !text.starts_with(PREFIX) {
        return None;
    }
    let array_start = PREFIX.len() - 1;
    let array_end = array_start + matching_close(&text.as_bytes()[array_start..])?;
    let values = &text[array_start..=array_end];
    let tombstone = match &text[array_end + 1..] {
        "}}" | "},\"errorMessage\":null,\"finalMessage\":null}" => false,
        ",\"tombstone\":true}}" => true,
        _ => return None,
    };
    Some(Element::Row { values, tombstone })
}

/// The index of the bracket closing the one at `bytes[0]`, skipping strings.
fn matching_close(bytes: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    let mut i = 0;
    while i < bytes.len() {
        if in_string {
            if escaped {
                escaped = false;
                i += 1;
                continue;
            }
            i += memchr::memchr2(b'"', b'\\', &bytes[i..])?;
            if bytes[i] == b'\\' {
                escaped = true;
            } else {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match bytes[i] {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn preview(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &text[..end])
}

/// Splits a JSON array's text into its top-level elements' texts (whitespace trimmed).
pub fn split_array(array: &str) -> Result<Vec<&str>, String> {
    let bytes = array.as_bytes();
    if bytes.first() != Some(&b'[') || bytes.last() != Some(&b']') {
        return Err(format!("not a JSON array: {}", preview(array)));
    }
    let mut elements = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    let mut start = 1;
    for (i, &byte) in bytes.iter().enumerate().take(bytes.len() - 1).skip(1) {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                elements.push(array[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = array[start..bytes.len() - 1].trim();
    if !last.is_empty() || !elements.is_empty() {
        elements.push(last);
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a parse of a whole response yields, in an owned form tests can compare.
    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Header(Option<String>, Columns),
        Row(String, bool),
        Final(String),
        Error(Option<i64>, String),
        Other,
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Result<(Vec<Seen>, bool), String> {
        let mut splitter = ValueSplitter::new();
        let mut seen = Vec::new();
        for chunk in chunks {
            splitter.push(chunk);
            while let Some(value) = splitter.next_value().map_err(|e| e.to_string())? {
                seen.push(match classify(value)? {
                    Element::Header { query_id, columns } => Seen::Header(query_id, columns),
                    Element::Row { values, tombstone } => Seen::Row(values.to_string(), tombstone),
                    Element::Final(m) => Seen::Final(m),
                    Element::Error(e) => Seen::Error(e.error_code, e.message),
                    Element::Other => Seen::Other,
                });
            }
        }
        if splitter.has_partial_value() {
            return Err("truncated".into());
        }
        Ok((seen, splitter.is_closed()))
    }

    /// ksqlDB `/query`: one array, keep-alive newlines, a tombstone, a string with escapes,
    /// brackets and multi-byte characters inside strings, and a final message.
    const KSQLDB_QUERY: &str = concat!(
        "[{\"header\":{\"queryId\":\"transient_PAGEVIEWS_1\",\"schema\":\"`ID` BIGINT KEY, `NAME` STRING, `AMOUNT` DECIMAL(10, 2)\"}},\n",
        "\n\n",
        "{\"row\":{\"columns\":[1,\"a \\\"quoted\\\" ] } name\",12.50]}},\n",
        "{\"row\":{\"columns\":[2,\"Zürich \\\\ 東京\",null],\"tombstone\":true}},\n",
        "\n",
        "{\"row\":{\"columns\":[3,\"{[\",0.01]}},\n",
        "{\"finalMessage\":\"Limit Reached\"}]\n"
    );

    fn ksqldb_query_expected() -> Vec<Seen> {
        vec![
            Seen::Header(
                Some("transient_PAGEVIEWS_1".into()),
                Columns::Declarations(
                    "`ID` BIGINT KEY, `NAME` STRING, `AMOUNT` DECIMAL(10, 2)".into(),
                ),
            ),
            Seen::Row("[1,\"a \\\"quoted\\\" ] } name\",12.50]".into(), false),
            Seen::Row("[2,\"Zürich \\\\ 東京\",null]".into(), true),
            Seen::Row("[3,\"{[\",0.01]".into(), false),
            Seen::Final("Limit Reached".into()),
        ]
    }

    /// KSQL 5.x `/query`: newline-separated objects with null fields, keep-alives, and an
    /// error in the middle of the stream.
    const KSQL5_QUERY: &str = concat!(
        "\n",
        "{\"row\":{\"columns\":[1524760769983,\"1\",1,\"A\"]},\"errorMessage\":null,\"finalMessage\":null}\n",
        "\n",
        "{\"row\":{\"columns\":[1524760769984,\"2\",2,\"B\\n\"]},\"errorMessage\":null,\"finalMessage\":null}\n",
        "{\"row\":null,\"errorMessage\":{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"Query terminated\"},\"finalMessage\":null}\n",
        "{\"row\":null,\"errorMessage\":null,\"finalMessage\":\"Query terminated\"}\n",
    );

    fn ksql5_expected() -> Vec<Seen> {
        vec![
            Seen::Row("[1524760769983,\"1\",1,\"A\"]".into(), false),
            Seen::Row("[1524760769984,\"2\",2,\"B\\n\"]".into(), false),
            Seen::Error(Some(50000), "Query terminated".into()),
            Seen::Final("Query terminated".into()),
        ]
    }

    /// `/query-stream` delimited: a header line, arrays, and an error object.
    const QUERY_STREAM_DELIMITED: &str = concat!(
        "{\"queryId\":\"xyz123\",\"columnNames\":[\"ACCOUNT\",\"AMOUNT\"],\"columnTypes\":[\"STRING\",\"DOUBLE\"]}\n",
        "[\"alice\",10.5]\n",
        "\n",
        "[\"bob\",-1E3]\n",
        "{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"row limit\"}\n",
    );

    fn delimited_expected() -> Vec<Seen> {
        vec![
            Seen::Header(
                Some("xyz123".into()),
                Columns::NamesAndTypes {
                    names: vec!["ACCOUNT".into(), "AMOUNT".into()],
                    types: vec!["STRING".into(), "DOUBLE".into()],
                },
            ),
            Seen::Row("[\"alice\",10.5]".into(), false),
            Seen::Row("[\"bob\",-1E3]".into(), false),
            Seen::Error(Some(50000), "row limit".into()),
        ]
    }

    /// `/query-stream` json: one array whose first element is the header.
    const QUERY_STREAM_JSON: &str = concat!(
        "[{\"queryId\":null,\"columnNames\":[\"K\",\"V\"],\"columnTypes\":[\"INTEGER\",\"ARRAY<STRING>\"]},",
        "[1,[\"x\",\"]\"]],\n",
        "[2,[]]]",
    );

    fn json_expected() -> Vec<Seen> {
        vec![
            Seen::Header(
                None,
                Columns::NamesAndTypes {
                    names: vec!["K".into(), "V".into()],
                    types: vec!["INTEGER".into(), "ARRAY<STRING>".into()],
                },
            ),
            Seen::Row("[1,[\"x\",\"]\"]]".into(), false),
            Seen::Row("[2,[]]".into(), false),
        ]
    }

    fn cases() -> Vec<(&'static str, Vec<Seen>, bool)> {
        vec![
            (KSQLDB_QUERY, ksqldb_query_expected(), true),
            (KSQL5_QUERY, ksql5_expected(), false),
            (QUERY_STREAM_DELIMITED, delimited_expected(), false),
            (QUERY_STREAM_JSON, json_expected(), true),
        ]
    }

    #[test]
    fn whole_responses() {
        for (text, expected, closed) in cases() {
            assert_eq!(
                parse_chunks(&[text.as_bytes()]).unwrap(),
                (expected, closed),
                "{text}"
            );
        }
    }

    #[test]
    fn split_at_every_byte_boundary() {
        for (text, expected, closed) in cases() {
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                let got = parse_chunks(&[&bytes[..cut], &bytes[cut..]]).unwrap();
                assert_eq!(got, (expected.clone(), closed), "cut at {cut} of {text}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        for (text, expected, closed) in cases() {
            let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
            assert_eq!(parse_chunks(&chunks).unwrap(), (expected, closed));
        }
    }

    #[test]
    fn truncated_and_garbage_responses_are_errors() {
        let text = KSQLDB_QUERY.as_bytes();
        assert_eq!(parse_chunks(&[&text[..40]]).unwrap_err(), "truncated");
        let err = parse_chunks(&[b"[{\"row\":{\"columns\":[1]}}] junk"]).unwrap_err();
        assert!(err.contains("after the closing"), "{err}");
        let err = parse_chunks(&[b"<html>502 Bad Gateway</html>"]).unwrap_err();
        assert!(err.contains("byte 0") && err.contains("'<'"), "{err}");
        let err = parse_chunks(&[b"{\"row\":{\"columns\":{\"a\":1}}}"]).unwrap_err();
        assert!(err.contains("not an array"), "{err}");
    }

    #[test]
    fn fast_row_path_agrees_with_the_parser() {
        for text in [
            "{\"row\":{\"columns\":[1,\"]}\\\"\",[2]]}}",
            "{\"row\":{\"columns\":[null],\"tombstone\":true}}",
            "{\"row\":{\"columns\":[1]},\"errorMessage\":null,\"finalMessage\":null}",
        ] {
            let fast = fast_row(text).unwrap();
            let object: ObjectElement<'_> = serde_json::from_str(text).unwrap();
            let row = object.row.unwrap();
            assert_eq!(
                fast,
                Element::Row {
                    values: row.columns.get(),
                    tombstone: row.tombstone.unwrap_or(false)
                }
            );
        }
        // Other spellings fall back to the parser.
        assert!(fast_row("{\"row\":{\"columns\":[1], \"tombstone\":false}}").is_none());
        assert!(fast_row("{\"row\": {\"columns\":[1]}}").is_none());
        assert_eq!(
            classify(b"{\"row\":{\"columns\":[1], \"tombstone\":false}}").unwrap(),
            Element::Row {
                values: "[1]",
                tombstone: false
            }
        );
    }

    #[test]
    fn error_message_as_plain_string() {
        let (seen, _) =
            parse_chunks(&[b"{\"row\":null,\"errorMessage\":\"boom\",\"finalMessage\":null}\n"])
                .unwrap();
        assert_eq!(seen, vec![Seen::Error(None, "boom".into())]);
    }

    #[test]
    fn split_array_elements() {
        assert_eq!(
            split_array("[1, \"a,b\", {\"x\":[1,2]}, [3,4], null]").unwrap(),
            vec!["1", "\"a,b\"", "{\"x\":[1,2]}", "[3,4]", "null"]
        );
        assert_eq!(split_array("[]").unwrap(), Vec::<&str>::new());
        assert_eq!(split_array("[\"\\\"]\"]").unwrap(), vec!["\"\\\"]\""]);
        assert!(split_array("{}").is_err());
    }

    /// Every line a splitter hands out for these chunks, then its rest.
    fn lines_of(chunks: &[&[u8]]) -> (Vec<String>, String) {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk);
            while let Some(line) = splitter.next_line() {
                lines.push(String::from_utf8(line.to_vec()).expect("a line is whole UTF-8"));
            }
        }
        let rest = String::from_utf8(splitter.take_rest()).expect("the rest is whole UTF-8");
        (lines, rest)
    }

    #[test]
    fn lines_keep_the_body_and_fold_keep_alives_into_the_next_line() {
        let (lines, rest) = lines_of(&[KSQLDB_QUERY.as_bytes()]);
        assert_eq!(lines.concat() + &rest, KSQLDB_QUERY);
        assert_eq!(rest, "");
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(lines[0].starts_with("[{\"header\":"));
        // The two keep-alive newlines after the header ride with the first row.
        assert!(lines[1].starts_with("\n\n{\"row\":{\"columns\":[1,"));
        assert!(lines[2].starts_with("{\"row\":{\"columns\":[2,\"Zürich"));
        assert_eq!(lines[4], "{\"finalMessage\":\"Limit Reached\"}]\n");
        for line in &lines {
            assert!(line.ends_with('\n'));
            assert!(!line.trim().is_empty());
        }
        // KSQL 5.x starts with a keep-alive: it rides with the first row.
        let (lines, _) = lines_of(&[KSQL5_QUERY.as_bytes()]);
        assert!(lines[0].starts_with("\n{\"row\""));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn lines_at_every_split_and_one_byte_at_a_time() {
        for (text, _, _) in cases() {
            let whole = lines_of(&[text.as_bytes()]);
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                assert_eq!(
                    lines_of(&[&bytes[..cut], &bytes[cut..]]),
                    whole,
                    "cut at {cut}"
                );
            }
            let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(lines_of(&chunks), whole);
        }
    }

    #[test]
    fn the_rest_is_an_unterminated_last_line_or_trailing_blanks() {
        assert_eq!(
            lines_of(&[b"[{\"a\":1},\n", b"{\"b\":2}]"]),
            (vec!["[{\"a\":1},\n".to_string()], "{\"b\":2}]".to_string())
        );
        assert_eq!(
            lines_of(&[b"{\"a\":1}\n\n \n"]),
            (vec!["{\"a\":1}\n".to_string()], "\n \n".to_string())
        );
        let mut splitter = LineSplitter::new();
        assert!(!splitter.has_rest());
        splitter.push(b"{\"a\"");
        assert!(splitter.next_line().is_none());
        assert!(splitter.has_rest());
        // A CRLF line counts as content, its \r kept.
        assert_eq!(
            lines_of(&[b"\r\n{}\r\n"]),
            (vec!["\r\n{}\r\n".to_string()], String::new())
        );
    }

    /// Random rows, random keep-alives, tombstones; the whole response is cut at random
    /// places into random numbers of chunks.
    fn arb_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[a-z\"\\\\\\[\\]{},:é東\n ]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[A-Z]{1,3}", inner, 0..3)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn any_chunking_of_any_format(
            rows in prop::collection::vec((prop::collection::vec(arb_value(), 1..5), any::<bool>(), 0usize..3), 0..12),
            format in 0usize..4,
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            with_error in any::<bool>(),
        ) {
            let mut text = String::new();
            let mut expected = Vec::new();
            let keep_alive = |n: usize| "\n".repeat(n);
            match format {
                0 => text.push_str("[{\"header\":{\"queryId\":\"q\",\"schema\":\"`A` INT\"}},\n"),
                2 => text.push_str("{\"queryId\":\"q\",\"columnNames\":[\"A\"],\"columnTypes\":[\"INT\"]}\n"),
                3 => text.push_str("[{\"queryId\":\"q\",\"columnNames\":[\"A\"],\"columnTypes\":[\"INT\"]},\n"),
                _ => {}
            }
            for (values, tombstone, blanks) in &rows {
                let array = serde_json::to_string(&serde_json::Value::Array(values.clone())).unwrap();
                let element = match format {
                    0 | 1 => {
                        let mut row = serde_json::json!({"row": {"columns": values}});
                        if *tombstone { row["row"]["tombstone"] = serde_json::Value::Bool(true); }
                        if format == 1 { row["errorMessage"] = serde_json::Value::Null; }
                        serde_json::to_string(&row).unwrap()
                    }
                    _ => array.clone(),
                };
                let separator = if format == 0 || format == 3 { ",\n" } else { "\n" };
                text.push_str(&element);
                text.push_str(separator);
                text.push_str(&keep_alive(*blanks));
                expected.push(Seen::Row(array, *tombstone && format < 2));
            }
            if with_error {
                let error = match format {
                    0 | 1 => "{\"errorMessage\":{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"x\"}}",
                    _ => "{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"x\"}",
                };
                text.push_str(error);
                text.push_str(if format == 0 || format == 3 { ",\n" } else { "\n" });
                expected.push(Seen::Error(Some(50000), "x".into()));
            }
            if format == 0 || format == 1 {
                text.push_str("{\"finalMessage\":\"Limit Reached\"}");
                expected.push(Seen::Final("Limit Reached".into()));
            }
            if format == 0 || format == 3 {
                text.push(']');
            }
            text.push('\n');
            let bytes = text.as_bytes();
            let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            positions.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in positions { chunks.push(&bytes[last..p]); last = p; }
            chunks.push(&bytes[last..]);
            let (mut seen, closed) = parse_chunks(&chunks).unwrap();
            if format >= 2 {
                // The header is checked by the fixed cases; here only the rows matter.
                prop_assert!(matches!(seen.first(), Some(Seen::Header(..))));
                seen.remove(0);
            } else if format == 0 {
                seen.remove(0);
            }
            prop_assert_eq!(seen, expected);
            prop_assert_eq!(closed, format == 0 || format == 3);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any text of lines (blank ones included), cut anywhere: the lines handed out are
        /// the non-blank lines with the blank ones before them, and nothing is lost.
        #[test]
        fn lines_survive_any_chunking(
            lines in prop::collection::vec("[ \t]{0,2}|[a-z\"\\\\é東{}\\[\\],:]{1,12}", 0..20),
            final_newline in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let mut text = lines.join("\n");
            if final_newline && !lines.is_empty() {
                text.push('\n');
            }
            let bytes = text.as_bytes();
            let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            positions.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in positions { chunks.push(&bytes[last..p]); last = p; }
            chunks.push(&bytes[last..]);
            let (got, rest) = lines_of(&chunks);
            prop_assert_eq!(got.concat() + &rest, text.clone());
            prop_assert_eq!(&got, &lines_of(&[bytes]).0);
            for line in &got {
                prop_assert!(line.ends_with('\n'));
                prop_assert!(!line.trim().is_empty());
            }
            // The rest is blank lines, then at most an unterminated line.
            prop_assert!(rest.rfind('\n').is_none_or(|i| rest[..i].trim().is_empty()));
        }
    }
}
