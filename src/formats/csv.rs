//! Delimited messages (KSQL's DELIMITED, one CSV line per message, no header) into Arrow.
//!
//! An empty field is null, strings may be double-quoted. Fast path: the batch's lines are
//! joined and parsed by one arrow-csv decoder; only if that fails is each line parsed alone.

use arrow_array::RecordBatch;
use arrow_csv::reader::ReaderBuilder;
use arrow_schema::SchemaRef;

use super::{classify_each, empty_batch, BatchDecoder, Decoded, FormatError, Payload};

pub struct CsvDecoder {
    schema: SchemaRef,
    delimiter: u8,
    /// The line a tombstone decodes as: every field empty, so every column null.
    tombstone_line: Vec<u8>,
    /// Reused between batches: the joined lines of one batch.
    joined: Vec<u8>,
}

impl CsvDecoder {
    pub fn new(schema: SchemaRef, delimiter: u8) -> Self {
        // `""` first: a lone empty line would be skipped as blank, quoted empty is a null field.
        let mut tombstone_line = b"\"\"".to_vec();
        tombstone_line.extend(std::iter::repeat_n(delimiter, schema.fields().len().saturating_sub(1)));
        CsvDecoder { schema, delimiter, tombstone_line, joined: Vec::new() }
    }

    fn decode_together<'p>(
        &mut self,
        payloads: impl ExactSizeIterator<Item = &'p Payload<'p>>,
    ) -> Result<RecordBatch, String> {
        let rows = payloads.len();
        self.joined.clear();
        for payload in payloads {
            let line = match payload.value {
                Some(bytes) => trim_line_end(bytes),
                None => &self.tombstone_line,
            };
            if line.is_empty() {
                return Err("empty message".into());
            }
            self.joined.extend_from_slice(line);
            self.joined.push(b'\n');
        }
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(rows.max(1))
            .build_decoder();
        let mut input = &self.joined[..];
        while !input.is_empty() {
            let consumed = decoder.decode(input).map_err(|e| e.to_string())?;
            if consumed == 0 {
                return Err("more lines than messages: a message holds a line break".into());
            }
            input = &input[consumed..];
        }
        let batch = decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| empty_batch(&self.schema));
        if batch.num_rows() != rows {
            return Err(format!("expected one line per message, found {} lines in {rows} messages", batch.num_rows()));
        }
        Ok(batch)
    }
}

fn trim_line_end(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}

impl BatchDecoder for CsvDecoder {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{cast::AsArray, types::Float64Type, types::Int64Type, Array};

    use super::*;

    fn decoder() -> CsvDecoder {
        let schema = crate::formats::parse_column_declarations(&["Id bigint", "User varchar", "V1 double"]).unwrap();
        CsvDecoder::new(Arc::new(schema), b',')
    }

    fn payloads<'a>(values: &'a [Option<&'a str>]) -> Vec<Payload<'a>> {
        values.iter().map(|v| Payload { key: None, value: v.map(str::as_bytes) }).collect()
    }

    #[test]
    fn quoted_strings_empty_fields_and_tombstones() {
        let msgs = [
            Some("1,\"Smith, Anna\",0.5"),
            Some("2,,\n"),
            Some("3,\"say \"\"hi\"\"\",-1e3\r\n"),
            None,
        ];
        let decoded = decoder().decode(&payloads(&msgs)).unwrap();
        assert!(decoded.failures.is_empty(), "{:?}", decoded.failures);
        let b = decoded.batch;
        assert_eq!(b.num_rows(), 4);
        let users = b.column(1).as_string::<i32>();
        assert_eq!(users.value(0), "Smith, Anna");
        assert!(users.is_null(1), "an empty field is null");
        assert_eq!(users.value(2), "say \"hi\"");
        assert!(b.column(2).as_primitive::<Float64Type>().is_null(1));
        assert_eq!(b.column(2).as_primitive::<Float64Type>().value(2), -1000.0);
        assert!(b.column(0).as_primitive::<Int64Type>().is_null(3));
    }

    #[test]
    fn bad_lines_are_named_and_the_rest_kept() {
        let msgs = [
            Some("1,a,0.5"),
            Some("x,b,0.5"),
            Some("3,c"),
            Some("4,d,0.5,extra"),
            Some("5,\"unterminated,0.5"),
            Some(""),
            Some("7,e,1\n8,f,2"),
            Some("9,g,9.5"),
        ];
        let decoded = decoder().decode(&payloads(&msgs)).unwrap();
        let bad: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(bad, [1, 2, 3, 4, 5, 6]);
        let ids = decoded.batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 9]);
        assert!(decoded.failures[0].reason.to_lowercase().contains("parse"), "{:?}", decoded.failures[0]);
    }

    #[test]
    fn one_column_tombstone() {
        let schema = crate::formats::parse_column_declarations(&["V DOUBLE"]).unwrap();
        let mut d = CsvDecoder::new(Arc::new(schema), b',');
        let decoded = d.decode(&payloads(&[Some("1.5"), None])).unwrap();
        assert_eq!(decoded.batch.num_rows(), 2);
        assert!(decoded.batch.column(0).is_null(1));
    }
}
