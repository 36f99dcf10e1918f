//! KSQL / ksqlDB type strings and column declarations into Arrow.
//!
//! Accepts what the talk writes (`['Id bigint', 'V1 double']`), what `DESCRIBE` prints
//! (`DECIMAL(10, 2)`, `ARRAY<STRUCT<`a` INT>>`), and KSQL's column markers (`KEY`,
//! `PRIMARY KEY`, `HEADERS`, `HEADER('k')`), which have no Arrow meaning and are dropped.
//! Names keep the case they are written in; backquotes allow any name.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use super::FormatError;

/// Parses one KSQL type string, e.g. `"DECIMAL(10, 2)"` or `"MAP<STRING, ARRAY<INT>>"`.
pub fn parse_ksql_type(text: &str) -> Result<DataType, FormatError> {
    let mut parser = Parser::new(text);
    let data_type = parser.data_type()?;
    parser.skip_space();
    if !parser.at_end() {
        return Err(parser.unexpected("unexpected text after the type"));
    }
    Ok(data_type)
}

/// Parses column declarations: one string with comma-separated columns, or several strings
/// with one column each (both forms may be mixed).
pub fn parse_column_declarations<S: AsRef<str>>(declarations: &[S]) -> Result<Schema, FormatError> {
    let mut fields: Vec<Field> = Vec::new();
    for declaration in declarations {
        let mut parser = Parser::new(declaration.as_ref());
        loop {
            parser.skip_space();
            if parser.at_end() {
                break;
            }
            let name = parser.identifier()?;
            let data_type = parser.data_type()?;
            parser.column_markers()?;
            if fields.iter().any(|f| f.name() == &name) {
                return Err(parser.error(&format!("column {name:?} is declared twice")));
            }
            fields.push(Field::new(name, data_type, true));
            parser.skip_space();
            if parser.eat(',') {
                continue;
            }
            if !parser.at_end() {
                return Err(parser.unexpected("expected ',' between columns"));
            }
        }
    }
    if fields.is_empty() {
        return Err(FormatError::Schema("no columns declared".into()));
    }
    Ok(Schema::new(fields))
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { text, pos: 0 }
    }

    fn error(&self, what: &str) -> FormatError {
        FormatError::Schema(format!(
            "{what} at character {} of {:?}",
            self.pos + 1,
            self.text
        ))
    }

    /// An error that names the token found at the current position (or the end).
    fn unexpected(&self, what: &str) -> FormatError {
        let rest = self.rest().trim_start();
        let found = match rest.chars().next() {
            None => "the end".to_string(),
            Some(first) => {
                let word = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(rest.len());
                let token = if word > 0 {
                    &rest[..word]
                } else {
                    &rest[..first.len_utf8()]
                };
                format!("{token:?}")
            }
        };
        let at = self.text.len() - rest.len();
        FormatError::Schema(format!(
            "{what}, found {found} at character {} of {:?}",
            at + 1,
            self.text
        ))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), FormatError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected '{c}'")))
        }
    }

    /// A bare word (letters, digits, `_`, `$`) or a backquoted / double-quoted name.
    fn identifier(&mut self) -> Result<String, FormatError> {
        self.skip_space();
        let rest = self.rest();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '`' || *c == '"') {
            let body = &rest[1..];
            let end = body
                .find(quote)
                .ok_or_else(|| self.error("unterminated quoted name"))?;
            self.pos += end + 2;
            return Ok(body[..end].to_string());
        }
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.unexpected("expected a name"));
        }
        self.pos += len;
        Ok(rest[..len].to_string())
    }

    fn integer(&mut self) -> Result<i64, FormatError> {
        self.skip_space();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let value = rest[..len]
            .parse()
            .map_err(|_| self.unexpected("expected a number"))?;
        self.pos += len;
        Ok(value)
    }

    fn data_type(&mut self) -> Result<DataType, FormatError> {
        self.skip_space();
        let start = self.pos;
        let written = self
            .identifier()
            .map_err(|_| self.unexpected("expected a type"))?;
        let word = written.to_ascii_uppercase();
        let data_type = match word.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" => DataType::Int8,
            "SMALLINT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" | "LONG" => DataType::Int64,
            // KSQL has no 32-bit float; FLOAT and REAL are accepted as Arrow float32.
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => DataType::Float64,
            "STRING" | "VARCHAR" => DataType::Utf8,
            "BYTES" => DataType::Binary,
            "DATE" => DataType::Date32,
            "TIME" => DataType::Time32(TimeUnit::Millisecond),
            "TIMESTAMP" => DataType::Timestamp(TimeUnit::Millisecond, None),
            "DECIMAL" => {
                self.expect('(')?;
                let precision = self.integer()?;
                let scale = if self.eat(',') { self.integer()? } else { 0 };
                self.expect(')')?;
                if !(1..=38).contains(&precision) || scale > precision {
                    self.pos = start;
                    return Err(self.error(&format!(
                        "DECIMAL({precision}, {scale}) is out of range (precision 1..38, scale <= precision)"
                    )));
                }
                DataType::Decimal128(precision as u8, scale as i8)
            }
            "ARRAY" => {
                self.expect('<')?;
                let item = self.data_type()?;
                self.expect('>')?;
                DataType::new_list(item, true)
            }
            "MAP" => {
                self.expect('<')?;
                let key = self.data_type()?;
                self.expect(',')?;
                let value = self.data_type()?;
                self.expect('>')?;
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", key, false),
                        Field::new("value", value, true),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            "STRUCT" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                if !self.eat('>') {
                    loop {
                        let name = self.identifier()?;
                        let field_type = self.data_type()?;
                        fields.push(Field::new(name, field_type, true));
                        if self.eat(',') {
                            continue;
                        }
                        self.expect('>')?;
                        break;
                    }
                }
                DataType::Struct(Fields::from(fields))
            }
            _ => {
                self.pos = start;
                self.skip_space();
                return Err(self.error(&format!("unknown KSQL type {written:?}")));
            }
        };
        Ok(data_type)
    }

    /// Skips `KEY`, `PRIMARY KEY`, `HEADERS`, `HEADER('name')` after a column's type.
    fn column_markers(&mut self) -> Result<(), FormatError> {
        loop {
            self.skip_space();
            let rest = self.rest();
            let word_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let word = rest[..word_len].to_ascii_uppercase();
            match word.as_str() {
                "KEY" | "PRIMARY" | "HEADERS" => self.pos += word_len,
                "HEADER" => {
                    self.pos += word_len;
                    self.expect('(')?;
                    let close = self
                        .rest()
                        .find(')')
                        .ok_or_else(|| self.error("unterminated HEADER(...)"))?;
                    self.pos += close + 1;
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talk_declarations_in_list_form() {
        let schema =
            parse_column_declarations(&["Id bigint", "Timestamp varchar", "V1 double"]).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["Id", "Timestamp", "V1"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);
    }

    #[test]
    fn one_string_with_nested_types_and_markers() {
        let schema = parse_column_declarations(&[
            "ID BIGINT KEY, `lower name` DECIMAL(10, 2), TAGS ARRAY<STRING>, \
             M MAP<STRING, ARRAY<INT>>, S STRUCT<`a` INT, B STRUCT<C DOUBLE>>, H BYTES HEADER('trace')",
        ])
        .unwrap();
        assert_eq!(schema.fields().len(), 6);
        assert_eq!(schema.field(1).name(), "lower name");
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::new_list(DataType::Utf8, true)
        );
        match schema.field(3).data_type() {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) => {
                    assert_eq!(
                        kv[1].data_type(),
                        &DataType::new_list(DataType::Int32, true)
                    )
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        match schema.field(4).data_type() {
            DataType::Struct(fields) => {
                assert_eq!(fields[0].name(), "a");
                assert!(matches!(fields[1].data_type(), DataType::Struct(_)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(schema.field(5).data_type(), &DataType::Binary);
    }

    #[test]
    fn every_scalar_type() {
        for (text, expected) in [
            ("boolean", DataType::Boolean),
            ("INTEGER", DataType::Int32),
            ("int", DataType::Int32),
            ("BIGINT", DataType::Int64),
            ("DOUBLE", DataType::Float64),
            ("VARCHAR", DataType::Utf8),
            ("STRING", DataType::Utf8),
            ("BYTES", DataType::Binary),
            ("DATE", DataType::Date32),
            ("TIME", DataType::Time32(TimeUnit::Millisecond)),
            (
                "TIMESTAMP",
                DataType::Timestamp(TimeUnit::Millisecond, None),
            ),
            ("DECIMAL(38,0)", DataType::Decimal128(38, 0)),
        ] {
            assert_eq!(parse_ksql_type(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn errors_name_the_place() {
        let err = parse_column_declarations(&["ID BIGINTT"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BIGINTT") && err.contains("character 4"),
            "{err}"
        );
        let err = parse_ksql_type("ARRAY<INT").unwrap_err().to_string();
        assert!(err.contains("expected '>'"), "{err}");
        let err = parse_ksql_type("DECIMAL(50, 2)").unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        let err = parse_column_declarations(&["A INT B INT"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected ','") && err.contains("found \"B\""),
            "{err}"
        );
        let err = parse_column_declarations(&["Id bigint", "V1 doubel"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"doubel\"") && err.contains("\"V1 doubel\""),
            "{err}"
        );
        let err = parse_column_declarations(&["X"]).unwrap_err().to_string();
        assert!(err.contains("expected a type, found the end"), "{err}");
        let err = parse_column_declarations(&["A INT", "a INT", "A DOUBLE"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("declared twice"), "{err}");
        assert!(parse_column_declarations::<&str>(&[]).is_err());
    }
}
