//! pandas' `parse_dates`: named text columns of a schema read as timestamps.
//!
//! The readers turn ISO-8601 text into a timestamp column whenever the schema says the column
//! is one; this module only rewrites the schema, so every format and decoder path (the
//! hand-written flat readers decline timestamp columns, arrow's readers parse them) follows.

use std::sync::Arc;

use arrow_schema::{DataType, FieldRef, Schema, TimeUnit};

use super::FormatError;

/// The type a `parse_dates` column gets: microseconds, as UTC instants.
///
/// pandas keeps parsed dates at the text's own resolution (pandas 3: microseconds unless the
/// text has more digits), zoned when the text has an offset (`read_json` gives UTC for the
/// `...Z` text `to_json` writes). A column has one type whatever its rows hold; this one
/// matches pandas 3's usual dtype and reads any date ISO-8601 can write (year 1 to 9999:
/// nanoseconds would refuse the common `9999-12-31` "open end" after 2262). UTC keeps
/// instants: the `+01:00` and `Z` texts of one moment are one value; text without an offset
/// is read as UTC. Digits below the microsecond (pandas 2 wrote nanoseconds) are dropped,
/// rounding towards the past, as arrow does for any microsecond column: declare
/// `timestamp('ns')` to keep them.
pub fn parsed_date_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `schema` with each column of `columns` read as a timestamp: pandas' `parse_dates`
/// (`read_csv(parse_dates=[...])`, `read_json(convert_dates=[...])`).
///
/// A text column (or one inferred as all-null) becomes [`parsed_date_type`]; a column that is
/// already a timestamp or a date keeps the unit and zone it was declared with. A column that
/// holds numbers or anything else is refused: `parse_dates` parses text, and Arrow would read
/// a number as a count of the column's unit (epoch milliseconds as nanoseconds, a date in
/// 1970), so a schema declaring the unit is the way to read epoch numbers. A name that is not
/// a column is refused too, as pandas refuses it.
pub fn parse_dates<S: AsRef<str>>(schema: &Schema, columns: &[S]) -> Result<Schema, FormatError> {
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    for name in columns {
        let name = name.as_ref();
        let (index, field) = schema.column_with_name(name).ok_or_else(|| {
            FormatError::Schema(format!(
                "parse_dates names column {name:?}, which is not in the schema (columns: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let data_type = match field.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                parsed_date_type()
            }
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => continue,
            other => {
                return Err(FormatError::Schema(format!(
                    "parse_dates: column {name:?} is {other}, not text; parse_dates reads \
                     ISO-8601 text (for epoch numbers declare the column as a timestamp of \
                     their unit, e.g. pyarrow.timestamp('ms', tz='UTC'))"
                )))
            }
        };
        fields[index] = Arc::new(field.clone().with_data_type(data_type));
    }
    Ok(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use arrow_array::Array;
    use arrow_schema::Field;

    use super::super::flat::FlatType;
    use super::super::{csv::CsvDecoder, json::JsonDecoder, BatchDecoder, Payload};
    use super::*;

    fn payloads<'a>(values: &'a [&'a str]) -> Vec<Payload<'a>> {
        values
            .iter()
            .map(|v| Payload {
                key: None,
                value: Some(v.as_bytes()),
            })
            .collect()
    }

    #[test]
    fn text_columns_become_utc_microseconds_and_others_are_refused() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("when", DataType::Utf8, true),
            Field::new("seen", DataType::Null, true),
            Field::new(
                "kept",
                DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Berlin".into())),
                true,
            ),
        ]);
        let parsed = parse_dates(&schema, &["when", "seen", "kept"]).unwrap();
        assert_eq!(parsed.field(0), schema.field(0));
        assert_eq!(parsed.field(1).data_type(), &parsed_date_type());
        assert!(parsed.field(1).is_nullable());
        assert_eq!(parsed.field(2).data_type(), &parsed_date_type());
        assert_eq!(
            parsed.field(3),
            schema.field(3),
            "a declared timestamp stays"
        );
        assert_eq!(parse_dates::<&str>(&schema, &[]).unwrap(), schema);

        let missing = parse_dates(&schema, &["When"]).unwrap_err().to_string();
        assert!(
            missing.contains("\"When\"") && missing.contains("id, when"),
            "{missing}"
        );
        let number = parse_dates(&schema, &["id"]).unwrap_err().to_string();
        assert!(
            number.contains("\"id\"") && number.contains("Int64"),
            "{number}"
        );
    }

    /// Every form of ISO-8601 text pandas and kafkaml write, through both readers, as the
    /// same instant (2024-03-31 01:30 UTC, just after Berlin's clocks went forward); digits
    /// below the microsecond dropped.
    #[test]
    fn iso_text_parses_as_the_same_instant_in_json_and_csv() {
        let schema = parse_dates(
            &Schema::new(vec![Field::new("t", DataType::Utf8, true)]),
            &["t"],
        )
        .unwrap();
        assert!(
            FlatType::of_schema(&Arc::new(schema.clone())).is_none(),
            "arrow's readers parse it"
        );
        let schema = Arc::new(schema);
        let instant = 1_711_848_600_123_456i64; // 2024-03-31T01:30:00.123456Z
        let texts = [
            "2024-03-31T01:30:00.123456Z",
            "2024-03-31T03:30:00.123456+02:00",
            "2024-03-31T02:30:00.123456+01:00",
            "2024-03-31 01:30:00.123456",
            "2024-03-31T01:30:00.123456+00:00",
            "2024-03-31T01:30:00.123456789Z",
        ];
        let json: Vec<String> = texts.iter().map(|t| format!(r#"{{"t":"{t}"}}"#)).collect();
        let json: Vec<&str> = json.iter().map(String::as_str).collect();
        let decoded = JsonDecoder::new(schema.clone())
            .decode(&payloads(&json))
            .unwrap();
        assert!(decoded.failures.is_empty(), "{:?}", decoded.failures);
        let csv = CsvDecoder::new(schema.clone(), b',')
            .decode(&payloads(&texts))
            .unwrap();
        assert!(csv.failures.is_empty(), "{:?}", csv.failures);
        for batch in [decoded.batch, csv.batch] {
            assert_eq!(batch.schema(), schema);
            let column = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            assert_eq!(column.values(), &[instant; 6]);
        }
    }

    #[test]
    fn text_that_is_no_date_fails_its_message_naming_the_column() {
        let schema = Arc::new(
            parse_dates(
                &Schema::new(vec![
                    Field::new("id", DataType::Int64, true),
                    Field::new("when", DataType::Utf8, true),
                ]),
                &["when"],
            )
            .unwrap(),
        );
        let json = [
            r#"{"id": 1, "when": "2024-01-01T00:00:00Z"}"#,
            r#"{"id": 2, "when": "yesterday"}"#,
            r#"{"id": 3, "when": "2024-02-30T00:00:00Z"}"#,
            r#"{"id": 4, "when": null}"#,
            r#"{"id": 5, "when": "9999-12-31"}"#,
        ];
        let csv = [
            "1,2024-01-01T00:00:00Z",
            "2,yesterday",
            "3,2024-02-30T00:00:00Z",
            "4,",
            "5,9999-12-31",
        ];
        let decoded = [
            JsonDecoder::new(schema.clone())
                .decode(&payloads(&json))
                .unwrap(),
            CsvDecoder::new(schema.clone(), b',')
                .decode(&payloads(&csv))
                .unwrap(),
        ];
        for decoded in decoded {
            let bad: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
            assert_eq!(bad, [1, 2], "{:?}", decoded.failures);
            for failure in &decoded.failures {
                assert!(failure.reason.contains("when"), "{failure:?}");
            }
            assert!(decoded.failures[0].reason.contains("yesterday"));
            let when = decoded
                .batch
                .column(1)
                .as_primitive::<TimestampMicrosecondType>();
            assert_eq!(when.len(), 3);
            assert!(when.is_null(1));
            assert_eq!(when.value(2), 253_402_214_400_000_000, "9999-12-31 fits");
        }
    }
}
