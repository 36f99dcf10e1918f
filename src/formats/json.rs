//! JSON messages (one object per message) into Arrow, through arrow-json's tape decoder.
//!
//! Fast path: all payloads of a batch go through one decoder. Only when that fails is each
//! payload decoded on its own, to find which messages are bad and keep the rest.

use std::sync::Arc;

use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, Schema, SchemaRef};

use super::flat::FlatType;
use super::json_flat::FlatJsonDecoder;
use super::{
    decode_isolating_failures, empty_batch, relabel, schema_utc_as_offset, BatchDecoder, Decoded,
    FormatError, Payload, SharedDecoder,
};

/// A tombstone (no value) decodes as a row whose columns are all null.
const TOMBSTONE: &[u8] = b"{}";

pub struct JsonDecoder {
    schema: SchemaRef,
    /// `schema` with UTC time zones as offsets, which arrow can parse (see `relabel`).
    parse_schema: SchemaRef,
    /// The hand-written reader, when every column is a number, boolean or string.
    flat: Option<FlatJsonDecoder>,
}

impl JsonDecoder {
    pub fn new(schema: SchemaRef) -> Self {
        Self::with_flat(schema, |flat| flat)
    }

    /// A decoder that notes the names of keys the schema lacks (see
    /// `BatchDecoder::unknown_fields`), for a schema inferred from the first messages. Only
    /// the flat reader notes them: a nested schema's keys are not tracked.
    pub fn noting_unknown_fields(schema: SchemaRef) -> Self {
        Self::with_flat(schema, FlatJsonDecoder::noting_unknown_fields)
    }

    fn with_flat(
        schema: SchemaRef,
        adapt: impl FnOnce(FlatJsonDecoder) -> FlatJsonDecoder,
    ) -> Self {
        let flat = FlatType::of_schema(&schema)
            .map(|types| adapt(FlatJsonDecoder::new(schema.clone(), types)));
        JsonDecoder {
            parse_schema: schema_utc_as_offset(&schema),
            schema,
            flat,
        }
    }

    fn builder(&self, rows: usize) -> ReaderBuilder {
        ReaderBuilder::new(self.parse_schema.clone())
            .with_batch_size(rows.max(1))
            // KSQL writes numbers where a string column is declared; accept them as text.
            .with_coerce_primitive(true)
    }

    /// Decodes `payloads` in one decoder; any problem fails the whole call.
    fn decode_together(
        &self,
        payloads: &[&Payload<'_>],
    ) -> Result<arrow_array::RecordBatch, String> {
        let rows = payloads.len();
        let mut decoder = self
            .builder(rows)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for payload in payloads.iter().copied() {
            let before = decoder.len();
            let bytes = payload.value.unwrap_or(TOMBSTONE);
            let consumed = decoder.decode(bytes).map_err(|e| json_reason(&e))?;
            if consumed != bytes.len() {
                return Err("more than one JSON value in the message".into());
            }
            if decoder.has_partial_record() {
                return Err("truncated JSON: the message ends inside a value".into());
            }
            match decoder.len() - before {
                1 => {}
                0 => return Err("the message holds no JSON object".into()),
                _ => return Err("more than one JSON value in the message".into()),
            }
        }
        let batch = decoder.flush().map_err(|e| json_reason(&e))?;
        Ok(batch.unwrap_or_else(|| empty_batch(&self.parse_schema)))
    }
}

fn json_reason(error: &ArrowError) -> String {
    match error {
        ArrowError::JsonError(text) => text.clone(),
        other => other.to_string(),
    }
}

impl BatchDecoder for JsonDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn decode(&mut self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        if let Some(flat) = &self.flat {
            return flat.decode(payloads);
        }
        let decoded = decode_isolating_failures(payloads, |some| self.decode_together(some))?;
        Ok(Decoded {
            batch: relabel(decoded.batch, &self.schema)?,
            failures: decoded.failures,
        })
    }

    fn as_shared(&self) -> Option<&dyn SharedDecoder> {
        self.flat.as_ref().map(|flat| flat as &dyn SharedDecoder)
    }

    fn unknown_fields(&self) -> Vec<String> {
        self.flat
            .as_ref()
            .map(FlatJsonDecoder::unknown_fields)
            .unwrap_or_default()
    }
}

/// Infers an Arrow schema from sample messages (tombstones and undecodable ones ignored).
///
/// Columns (and struct fields) come in the order their keys first appear in the messages,
/// as written: `serde_json::Value` keeps object keys sorted, which would turn
/// `Time, V1, V2, ..., V10` into `Time, V1, V10, V11, ...`, and with it the column order of
/// every feature matrix built from the table.
pub fn infer_schema(payloads: &[Payload<'_>]) -> Result<Schema, FormatError> {
    let mut order = KeyOrder::default();
    let mut values = Vec::new();
    for bytes in payloads.iter().filter_map(|p| p.value) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if !value.is_object() {
            continue;
        }
        if let Ok(keys) = serde_json::from_slice::<KeyOrder>(bytes) {
            order.merge(keys);
        }
        values.push(Ok::<_, ArrowError>(value));
    }
    let schema = infer_json_schema_from_iterator(values.into_iter())?;
    if schema.fields().is_empty() {
        return Err(FormatError::Schema(
            "cannot infer a schema: the sample holds no JSON objects; pass schema=".into(),
        ));
    }
    Ok(Schema::new_with_metadata(
        order.arrange(schema.fields()),
        schema.metadata().clone(),
    ))
}

/// The order in which object keys appear in JSON text, nested objects included (the
/// objects inside an array are merged into the array's order).
#[derive(Debug, Default)]
struct KeyOrder {
    keys: Vec<(String, KeyOrder)>,
}

impl KeyOrder {
    fn merge(&mut self, other: KeyOrder) {
        for (key, child) in other.keys {
            match self.keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, mine)) => mine.merge(child),
                None => self.keys.push((key, child)),
            }
        }
    }

    fn position(&self, key: &str) -> usize {
        self.keys
            .iter()
            .position(|(k, _)| k == key)
            .unwrap_or(usize::MAX)
    }

    fn child(&self, key: &str) -> Option<&KeyOrder> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }

    /// `fields` sorted by first appearance (a stable sort: unknown keys keep their place
    /// at the end), recursively through structs and lists.
    fn arrange(&self, fields: &Fields) -> Fields {
        let mut arranged: Vec<FieldRef> = fields
            .iter()
            .map(|field| match self.child(field.name()) {
                Some(child) => Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(child.arrange_type(field.data_type())),
                ),
                None => field.clone(),
            })
            .collect();
        arranged.sort_by_key(|field| self.position(field.name()));
        Fields::from(arranged)
    }

    fn arrange_type(&self, data_type: &DataType) -> DataType {
        match data_type {
            DataType::Struct(fields) => DataType::Struct(self.arrange(fields)),
            DataType::List(item) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(self.arrange_type(item.data_type())),
            )),
            other => other.clone(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KeyOrder;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyOrder, A::Error> {
                let mut order = KeyOrder::default();
                while let Some(key) = map.next_key::<String>()? {
                    let child = map.next_value::<KeyOrder>()?;
                    order.merge(KeyOrder {
                        keys: vec![(key, child)],
                    });
                }
                Ok(order)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<KeyOrder, A::Error> {
                let mut order = KeyOrder::default();
                while let Some(item) = seq.next_element::<KeyOrder>()? {
                    order.merge(item);
                }
                Ok(order)
            }

            fn visit_bool<E>(self, _: bool) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
            fn visit_unit<E>(self) -> Result<KeyOrder, E> {
                Ok(KeyOrder::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{cast::AsArray, types::Float64Type, types::Int64Type, Array};
    use arrow_schema::{DataType, Field};

    use super::*;

    fn payloads<'a>(values: &'a [Option<&'a str>]) -> Vec<Payload<'a>> {
        values
            .iter()
            .map(|v| Payload {
                key: None,
                value: v.map(str::as_bytes),
            })
            .collect()
    }

    fn schema() -> SchemaRef {
        Arc::new(
            crate::formats::parse_column_declarations(&[
                "ID BIGINT, V1 DOUBLE, NAME STRING, TAGS ARRAY<STRING>, S STRUCT<A INT>",
            ])
            .unwrap(),
        )
    }

    #[test]
    fn nested_missing_and_null_fields() {
        let msgs = [
            Some(r#"{"ID": 1, "V1": 0.5, "NAME": "a", "TAGS": ["x", null], "S": {"A": 7}}"#),
            Some(r#"{"ID": 2, "NAME": null}"#),
            None,
        ];
        let decoded = JsonDecoder::new(schema()).decode(&payloads(&msgs)).unwrap();
        assert!(decoded.failures.is_empty());
        let batch = decoded.batch;
        assert_eq!(batch.num_rows(), 3);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.value(1), 2);
        assert!(ids.is_null(2), "a tombstone is a row of nulls");
        assert!(batch.column(1).as_primitive::<Float64Type>().is_null(1));
        let tags = batch.column(3).as_list::<i32>();
        assert_eq!(tags.value(0).len(), 2);
        assert!(tags.value(0).is_null(1));
    }

    #[test]
    fn bad_messages_are_named_and_the_rest_kept() {
        let msgs = [
            Some(r#"{"ID": 1}"#),
            Some(r#"{"ID": 2"#),
            Some(r#"{"ID": "not a number"}"#),
            Some("not json"),
            Some(r#"{"ID": 5}{"ID": 6}"#),
            Some("  "),
            Some(r#"{"ID": 7}"#),
        ];
        let decoded = JsonDecoder::new(schema()).decode(&payloads(&msgs)).unwrap();
        let bad: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(bad, [1, 2, 3, 4, 5]);
        assert!(
            decoded.failures[0].reason.contains("truncated"),
            "{:?}",
            decoded.failures[0]
        );
        let ids = decoded.batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 7]);
        assert_eq!(
            decoded.kept_mask(7),
            [true, false, false, false, false, false, true]
        );
    }

    #[test]
    fn flat_reader_matches_arrow_json_and_names_bad_messages() {
        let schema: SchemaRef = Arc::new(
            crate::formats::parse_column_declarations(&[
                "ID BIGINT, V DOUBLE, NAME STRING, OK BOOLEAN, SMALL INT",
            ])
            .unwrap(),
        );
        let good = [
            Some(r#"{"ID": 1, "V": 0.5, "NAME": "a \"quoted\" \u00e9\n", "OK": true, "SMALL": 7}"#),
            Some(
                r#" { "extra": {"deep": [1, {"x": "}"}]}, "V": -1.5e-3, "ID": "42", "NAME": 17 } "#,
            ),
            Some(r#"{"ID": null, "NAME": null, "OK": false}"#),
            Some(r#"{"SMALL": 3.0, "V": 1}"#),
            Some(r#"{"ID": -0, "V": 12345678901234567890, "SMALL": -7}"#),
            Some(r#"{"V": 1E5, "ID": 9007199254740993, "SMALL": 2e1}"#),
            Some(r#"{"V": -0.0, "ID": -9223372036854775808}"#),
            Some("{}"),
            None,
        ];
        let flat = JsonDecoder::new(schema.clone());
        assert!(flat.flat.is_some(), "a flat schema takes the fast path");
        let mut flat = flat;
        let fast = flat.decode(&payloads(&good)).unwrap();
        assert!(fast.failures.is_empty(), "{:?}", fast.failures);
        let mut general = JsonDecoder::new(schema.clone());
        general.flat = None; // the arrow-json path, for reference
        let reference = general.decode(&payloads(&good)).unwrap();
        assert_eq!(fast.batch, reference.batch);

        let bad = [
            Some(r#"{"ID": 1}"#),
            Some(r#"{"ID": 2"#),
            Some(r#"{"ID": "x"}"#),
            Some(r#"{"SMALL": 3000000000}"#),
            Some(r#"{"OK": 1}"#),
            Some(r#"{"V": [1]}"#),
            Some(r#"{"ID": 5}{"ID": 6}"#),
            Some("[1, 2]"),
            Some(""),
            Some(r#"{"ID": 9, "NAME": "ok"}"#),
        ];
        let decoded = flat.decode(&payloads(&bad)).unwrap();
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(
            decoded.failures[2].reason.contains("out of range"),
            "{:?}",
            decoded.failures[2]
        );
        assert_eq!(
            decoded.batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 9]
        );

        // numbers the one-pass number reader must leave to the general path, which rejects them
        let bad_numbers = [
            r#"{"V": 1.5.5}"#,
            r#"{"V": -inf}"#,
            r#"{"V": -}"#,
            r#"{"ID": 99999999999999999999}"#,
            r#"{"ID": 1.5}"#,
            r#"{"ID": 12e}"#,
            r#"{"V": 2-1}"#,
        ];
        let values: Vec<Option<&str>> = bad_numbers.iter().map(|m| Some(*m)).collect();
        let decoded = flat.decode(&payloads(&values)).unwrap();
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, (0..bad_numbers.len()).collect::<Vec<_>>());
    }

    #[test]
    fn infers_from_sample() {
        let msgs = [
            Some(r#"{"a": 1, "b": "x"}"#),
            Some(r#"{"a": 2, "c": [1.5]}"#),
            Some("junk"),
            None,
        ];
        let schema = infer_schema(&payloads(&msgs)).unwrap();
        assert_eq!(
            schema.field_with_name("a").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("c").unwrap().data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
        );
        assert!(infer_schema(&payloads(&[Some("[1]")])).is_err());
    }

    #[test]
    fn inferred_columns_keep_the_order_of_the_messages() {
        let msgs = [
            Some(r#"{"Time": 0, "V2": 1.5, "V10": 2.5, "S": {"b": 1, "a": [{"z": 1, "y": 2}]}}"#),
            Some(r#"{"Time": 1, "V2": 1.5, "V10": 2.5, "Amount": 3.0, "S": {"c": true}}"#),
        ];
        let schema = infer_schema(&payloads(&msgs)).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["Time", "V2", "V10", "S", "Amount"]);
        let DataType::Struct(s) = schema.field(3).data_type() else {
            panic!("{schema:?}")
        };
        let names: Vec<&str> = s.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let DataType::List(item) = s[1].data_type() else {
            panic!("{s:?}")
        };
        let DataType::Struct(inner) = item.data_type() else {
            panic!("{item:?}")
        };
        let names: Vec<&str> = inner.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["z", "y"]);
    }
}
