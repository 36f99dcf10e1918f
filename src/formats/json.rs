//! JSON messages (one object per message) into Arrow, through arrow-json's tape decoder.
//!
//! Fast path: all payloads of a batch go through one decoder. Only when that fails is each
//! payload decoded on its own, to find which messages are bad and keep the rest.

use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow_schema::{ArrowError, Schema, SchemaRef};

use super::{classify_each, empty_batch, BatchDecoder, Decoded, FormatError, Payload};

/// A tombstone (no value) decodes as a row whose columns are all null.
const TOMBSTONE: &[u8] = b"{}";

pub struct JsonDecoder {
    schema: SchemaRef,
}

impl JsonDecoder {
    pub fn new(schema: SchemaRef) -> Self {
        JsonDecoder { schema }
    }

    fn builder(&self, rows: usize) -> ReaderBuilder {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            // KSQL writes numbers where a string column is declared; accept them as text.
            .with_coerce_primitive(true)
    }

    /// Decodes `payloads` in one decoder; any problem fails the whole call.
    fn decode_together<'p>(
        &self,
        payloads: impl ExactSizeIterator<Item = &'p Payload<'p>>,
    ) -> Result<arrow_array::RecordBatch, String> {
        let rows = payloads.len();
        let mut decoder = self.builder(rows).build_decoder().map_err(|e| e.to_string())?;
        for payload in payloads {
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
        Ok(batch.unwrap_or_else(|| empty_batch(&self.schema)))
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
        if let Ok(batch) = self.decode_together(payloads.iter()) {
            return Ok(Decoded { batch, failures: Vec::new() });
        }
        let (good, failures) =
            classify_each(payloads, |p| self.decode_together(std::iter::once(p)).map(|_| ()));
        let batch = self
            .decode_together(good.iter().map(|&i| &payloads[i]))
            .map_err(|reason| FormatError::Schema(format!("rows that decoded alone failed together: {reason}")))?;
        Ok(Decoded { batch, failures })
    }
}

/// Infers an Arrow schema from sample messages (tombstones and undecodable ones ignored).
pub fn infer_schema(payloads: &[Payload<'_>]) -> Result<Schema, FormatError> {
    let values = payloads
        .iter()
        .filter_map(|p| p.value)
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .filter(|v| v.is_object())
        .map(Ok::<_, ArrowError>);
    let schema = infer_json_schema_from_iterator(values)?;
    if schema.fields().is_empty() {
        return Err(FormatError::Schema(
            "cannot infer a schema: the sample holds no JSON objects; pass schema=".into(),
        ));
    }
    Ok(schema)
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
            .map(|v| Payload { key: None, value: v.map(str::as_bytes) })
            .collect()
    }

    fn schema() -> SchemaRef {
        Arc::new(
            crate::formats::parse_column_declarations(&["ID BIGINT, V1 DOUBLE, NAME STRING, TAGS ARRAY<STRING>, S STRUCT<A INT>"])
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
        assert!(decoded.failures[0].reason.contains("truncated"), "{:?}", decoded.failures[0]);
        let ids = decoded.batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 7]);
        assert_eq!(decoded.kept_mask(7), [true, false, false, false, false, false, true]);
    }

    #[test]
    fn infers_from_sample() {
        let msgs = [Some(r#"{"a": 1, "b": "x"}"#), Some(r#"{"a": 2, "c": [1.5]}"#), Some("junk"), None];
        let schema = infer_schema(&payloads(&msgs)).unwrap();
        assert_eq!(schema.field_with_name("a").unwrap().data_type(), &DataType::Int64);
        assert_eq!(
            schema.field_with_name("c").unwrap().data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
        );
        assert!(infer_schema(&payloads(&[Some("[1]")])).is_err());
    }
}
