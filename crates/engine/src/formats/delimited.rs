//! ksqlDB's DELIMITED format: one CSV record per message, read and written as Apache Commons
//! CSV's `DEFAULT` format with the configured delimiter (which ksqlDB uses).
//!
//! Reading: `"` quotes a field, `""` inside quotes is a quote, an empty field (quoted or not)
//! is NULL, and the field count must match the columns. Writing follows Commons CSV's MINIMAL
//! quoting: a field is quoted when it is the record's first and is empty or starts with a
//! character other than a letter or digit (hence ksqlDB's `"-10"`), when it starts with a
//! character at or below `#`, contains a quote, the delimiter, CR or LF, or ends with a
//! character at or below a space. NULL is written as nothing, unquoted.

use std::borrow::Cow;

use base64::Engine as _;

use super::decimal::decimal_from_text;
use super::json::{parse_java_double, scalar_text};
use crate::types::SqlType;
use crate::value::Value;

/// Splits one record into its fields, unquoted and unescaped: borrowed from `text`, except a
/// quoted field with `""` in it. A trailing record separator is not part of the record.
/// `expected` fields are made room for (growing the list field by field cost reallocations).
pub(crate) fn split_record(
    text: &str,
    delimiter: char,
    expected: usize,
) -> Result<Vec<Cow<'_, str>>, String> {
    // Byte positions: the quote, CR, LF and an ASCII delimiter never occur inside a multi-byte
    // UTF-8 sequence, so every position found is a char boundary.
    let end = text.trim_end_matches(['\r', '\n']).len();
    let bytes = text.as_bytes();
    let mut fields = Vec::with_capacity(expected);
    let mut position = 0;
    loop {
        if bytes.get(position) != Some(&b'"') {
            let unquoted = &text[position..end];
            // Fields are short: a byte loop beats `str::find`'s searcher set up per field.
            let length = match u8::try_from(delimiter) {
                Ok(byte) if byte.is_ascii() => unquoted.bytes().position(|b| b == byte),
                _ => unquoted.find(delimiter),
            };
            match length {
                Some(length) => {
                    fields.push(Cow::Borrowed(&text[position..position + length]));
                    position += length + delimiter.len_utf8();
                    continue;
                }
                None => {
                    fields.push(Cow::Borrowed(&text[position..end]));
                    return Ok(fields);
                }
            }
        }
        let (field, closing) = quoted_field(text, position + 1)?;
        fields.push(field);
        position = closing + 1;
        let rest = &text[position..];
        if rest.is_empty() || (position >= end && rest.starts_with(['\r', '\n'])) {
            return Ok(fields);
        }
        if !rest.starts_with(delimiter) {
            return Err("invalid char between encapsulated token and delimiter".into());
        }
        position += delimiter.len_utf8();
    }
}

/// The quoted field whose text starts at `start` (after its opening quote), `""` read as a
/// quote, and the position of its closing quote.
fn quoted_field(text: &str, start: usize) -> Result<(Cow<'_, str>, usize), String> {
    let mut unescaped: Option<String> = None;
    let mut segment = start;
    let mut search = start;
    loop {
        let Some(found) = text[search..].find('"') else {
            return Err("EOF reached before encapsulated token finished".into());
        };
        let quote = search + found;
        if text.as_bytes().get(quote + 1) == Some(&b'"') {
            // `""`: one quote kept, the second skipped.
            unescaped
                .get_or_insert_with(String::new)
                .push_str(&text[segment..=quote]);
            search = quote + 2;
            segment = search;
            continue;
        }
        let field = match unescaped {
            Some(mut field) => {
                field.push_str(&text[segment..quote]);
                Cow::Owned(field)
            }
            None => Cow::Borrowed(&text[start..quote]),
        };
        return Ok((field, quote));
    }
}

/// One field's text as a value of the column's type; empty is NULL.
pub(crate) fn parse_field(text: &str, ty: &SqlType) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let invalid = || format!("Invalid {ty} value: '{text}'");
    Ok(match ty {
        SqlType::Boolean => {
            if text.eq_ignore_ascii_case("true") {
                Value::Boolean(true)
            } else if text.eq_ignore_ascii_case("false") {
                Value::Boolean(false)
            } else {
                return Err(invalid());
            }
        }
        SqlType::Integer => Value::Integer(text.parse().map_err(|_| invalid())?),
        SqlType::BigInt => Value::BigInt(text.parse().map_err(|_| invalid())?),
        SqlType::Double => Value::Double(parse_java_double(text).ok_or_else(invalid)?),
        SqlType::Decimal { precision, scale } => decimal_from_text(text, *precision, *scale)?,
        SqlType::String => Value::String(text.to_string()),
        SqlType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| format!("Value is not a valid Base64 encoded string: {text}"))?,
        ),
        SqlType::Date => Value::Date(text.parse().map_err(|_| invalid())?),
        SqlType::Time => Value::Time(text.parse().map_err(|_| invalid())?),
        SqlType::Timestamp => Value::Timestamp(text.parse().map_err(|_| invalid())?),
        SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_) => {
            return Err(format!(
                "The 'DELIMITED' format does not support type '{ty}'"
            ))
        }
    })
}

/// Reads a record into values of the columns' types.
pub(crate) fn deserialize(
    bytes: &[u8],
    delimiter: char,
    columns: &[(String, SqlType)],
) -> Result<Vec<Value>, String> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("Invalid UTF-8: {e}"))?;
    let fields = split_record(text, delimiter, columns.len())?;
    if fields.len() != columns.len() {
        return Err(format!(
            "Column count mismatch on deserialization. expected: {}, got: {}",
            columns.len(),
            fields.len()
        ));
    }
    // A loop, not `collect` into a Result: that cannot know the length and grows the row.
    let mut row = Vec::with_capacity(columns.len());
    for (field, (name, ty)) in fields.iter().zip(columns) {
        row.push(parse_field(field, ty).map_err(|e| format!("{e} (column {name})"))?);
    }
    Ok(row)
}

/// Writes a row as one record (no record separator).
pub(crate) fn serialize(row: &[Value], delimiter: char) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        if value.is_null() {
            continue;
        }
        if matches!(value, Value::Array(_) | Value::Map(_) | Value::Struct(_)) {
            return Err(
                "The 'DELIMITED' format does not support ARRAY, MAP or STRUCT values".into(),
            );
        }
        write_field(&mut out, &scalar_text(value), i == 0, delimiter);
    }
    Ok(out.into_bytes())
}

fn needs_quotes(text: &str, first: bool, delimiter: char) -> bool {
    let Some(start) = text.chars().next() else {
        return first;
    };
    if first && !start.is_ascii_alphanumeric() {
        return true;
    }
    if start <= '#' {
        return true;
    }
    if text.contains(['\n', '\r', '"']) || text.contains(delimiter) {
        return true;
    }
    text.chars().last().is_some_and(|end| end <= ' ')
}

fn write_field(out: &mut String, text: &str, first: bool, delimiter: char) {
    if !needs_quotes(text, first, delimiter) {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_commons_csv_quoting() {
        assert_eq!(split_record("a,b,c", ',', 3).unwrap(), vec!["a", "b", "c"]);
        assert_eq!(
            split_record("\"a,b\",\"say \"\"hi\"\"\",", ',', 3).unwrap(),
            vec!["a,b", "say \"hi\"", ""]
        );
        assert_eq!(
            split_record("foo,bar;baz", ';', 2).unwrap(),
            vec!["foo,bar", "baz"]
        );
        assert_eq!(split_record("x\r\n", ',', 3).unwrap(), vec!["x"]);
        assert_eq!(split_record("\"x\"\r\n", ',', 3).unwrap(), vec!["x"]);
        assert_eq!(
            split_record("a,,c\r\n", ',', 3).unwrap(),
            vec!["a", "", "c"]
        );
        assert_eq!(
            split_record("a\nb,c,", ',', 3).unwrap(),
            vec!["a\nb", "c", ""]
        );
        assert_eq!(split_record(",,", ',', 3).unwrap(), vec!["", "", ""]);
        assert_eq!(split_record("a\"b,c", ',', 3).unwrap(), vec!["a\"b", "c"]);
        assert_eq!(
            split_record("é¦ü,\"ö\"", '¦', 3).unwrap(),
            vec!["é", "ü,\"ö\""]
        );
        assert_eq!(split_record("\"é\"¦ü", '¦', 3).unwrap(), vec!["é", "ü"]);
        // Fields are borrowed unless they had a quote to unescape.
        let fields = split_record("\"a\",\"b\"\"\",c", ',', 3).unwrap();
        assert!(matches!(fields[0], Cow::Borrowed("a")));
        assert!(matches!(&fields[1], Cow::Owned(b) if b == "b\""));
        assert!(matches!(fields[2], Cow::Borrowed("c")));
        assert!(split_record("\"a\"\rb", ',', 3).is_err());
        assert!(split_record("\"open", ',', 3).is_err());
        assert!(split_record("\"a\"b,c", ',', 3).is_err());
    }

    #[test]
    fn reads_empty_fields_as_null_and_checks_the_count() {
        let columns = vec![
            ("ID".to_string(), SqlType::BigInt),
            ("NAME".to_string(), SqlType::String),
            (
                "D".to_string(),
                SqlType::Decimal {
                    precision: 33,
                    scale: 16,
                },
            ),
        ];
        assert_eq!(
            deserialize(b"1,,\"-12345.12\"", ',', &columns).unwrap(),
            vec![
                Value::BigInt(1),
                Value::Null,
                Value::Decimal {
                    unscaled: -123451200000000000000,
                    scale: 16
                }
            ]
        );
        let error = deserialize(b"1,2", ',', &columns).unwrap_err();
        assert!(error.contains("expected: 3, got: 2"), "{error}");
        assert!(deserialize(b"x,a,1", ',', &columns)
            .unwrap_err()
            .contains("BIGINT"));
    }

    #[test]
    fn writes_minimal_quotes_as_commons_csv() {
        let row = |values: Vec<Value>| String::from_utf8(serialize(&values, ',').unwrap()).unwrap();
        assert_eq!(row(vec![Value::Integer(-10)]), "\"-10\"");
        assert_eq!(row(vec![Value::Integer(1), Value::Integer(-10)]), "1,-10");
        assert_eq!(
            row(vec![
                Value::String("a,b".into()),
                Value::String("x\"y".into())
            ]),
            "\"a,b\",\"x\"\"y\""
        );
        assert_eq!(
            row(vec![
                Value::String(String::new()),
                Value::String(String::new())
            ]),
            "\"\","
        );
        assert_eq!(
            row(vec![
                Value::Null,
                Value::Double(1.0),
                Value::String("t ".into())
            ]),
            ",1.0,\"t \""
        );
        assert_eq!(row(vec![Value::String("#x".into())]), "\"#x\"");
        assert_eq!(
            row(vec![Value::Decimal {
                unscaled: 1200,
                scale: 4
            }]),
            "0.1200"
        );
    }
}
