//! ksqlDB's DELIMITED format: one CSV record per message, read and written as Apache Commons
//! CSV's `DEFAULT` format with the configured delimiter (which ksqlDB uses).
//!
//! Reading: `"` quotes a field, `""` inside quotes is a quote, an empty field (quoted or not)
//! is NULL, and the field count must match the columns. Writing follows Commons CSV's MINIMAL
//! quoting: a field is quoted when it is the record's first and is empty or starts with a
//! character other than a letter or digit (hence ksqlDB's `"-10"`), when it starts with a
//! character at or below `#`, contains a quote, the delimiter, CR or LF, or ends with a
//! character at or below a space. NULL is written as nothing, unquoted.

use base64::Engine as _;

use super::decimal::decimal_from_text;
use super::json::{parse_java_double, scalar_text};
use crate::types::SqlType;
use crate::value::Value;

/// Splits one record into its fields (unquoted, unescaped). `deserialize` splits records
/// without quotes itself; the result must stay the same as this.
pub(crate) fn split_record(text: &str, delimiter: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    // A trailing record separator is not part of the record.
    let text_end = text.trim_end_matches(['\r', '\n']).chars().count();
    let mut consumed = 0usize;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            consumed += 1;
            loop {
                match chars.next() {
                    None => return Err("EOF reached before encapsulated token finished".into()),
                    Some('"') => {
                        consumed += 1;
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            consumed += 1;
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => {
                        consumed += 1;
                        field.push(c);
                    }
                }
            }
            match chars.peek() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(&c) if c == delimiter => {
                    chars.next();
                    consumed += 1;
                    fields.push(field);
                    continue;
                }
                Some('\r' | '\n') if consumed >= text_end => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(_) => {
                    return Err("invalid char between encapsulated token and delimiter".into())
                }
            }
        }
        loop {
            match chars.peek() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(&c) if c == delimiter => {
                    chars.next();
                    consumed += 1;
                    fields.push(field);
                    break;
                }
                Some(_) if consumed >= text_end => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(&c) => {
                    chars.next();
                    consumed += 1;
                    field.push(c);
                }
            }
        }
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
    // Without quotes a record is its fields between delimiters: borrowed, not copied into a
    // String each (what split_record must do to unescape).
    let fields: Vec<std::borrow::Cow<'_, str>> = if text.contains('"') {
        split_record(text, delimiter)?
            .into_iter()
            .map(std::borrow::Cow::Owned)
            .collect()
    } else {
        text.trim_end_matches(['\r', '\n'])
            .split(delimiter)
            .map(std::borrow::Cow::Borrowed)
            .collect()
    };
    if fields.len() != columns.len() {
        return Err(format!(
            "Column count mismatch on deserialization. expected: {}, got: {}",
            columns.len(),
            fields.len()
        ));
    }
    fields
        .iter()
        .zip(columns)
        .map(|(field, (name, ty))| {
            parse_field(field, ty).map_err(|e| format!("{e} (column {name})"))
        })
        .collect()
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
        assert_eq!(split_record("a,b,c", ',').unwrap(), vec!["a", "b", "c"]);
        assert_eq!(
            split_record("\"a,b\",\"say \"\"hi\"\"\",", ',').unwrap(),
            vec!["a,b", "say \"hi\"", ""]
        );
        assert_eq!(
            split_record("foo,bar;baz", ';').unwrap(),
            vec!["foo,bar", "baz"]
        );
        assert_eq!(split_record("x\r\n", ',').unwrap(), vec!["x"]);
        // deserialize's own split of records without quotes agrees with split_record
        let columns: Vec<(String, SqlType)> =
            (0..3).map(|i| (format!("C{i}"), SqlType::String)).collect();
        for text in ["a,b,c", "a,,c\r\n", "a\nb,c,", ",,"] {
            let expected: Vec<Value> = split_record(text, ',')
                .unwrap()
                .iter()
                .map(|f| parse_field(f, &SqlType::String).unwrap())
                .collect();
            assert_eq!(
                deserialize(text.as_bytes(), ',', &columns).unwrap(),
                expected,
                "{text:?}"
            );
        }
        assert!(split_record("\"open", ',').is_err());
        assert!(split_record("\"a\"b,c", ',').is_err());
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
