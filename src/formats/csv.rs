//! Delimited messages (KSQL's DELIMITED, one CSV line per message, no header) into Arrow.
//!
//! An empty field is null, strings may be double-quoted. Fast path: the batch's lines are
//! joined and parsed by one arrow-csv decoder; only if that fails is each line parsed alone.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Float64Array, RecordBatch};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_csv::reader::ReaderBuilder;
use arrow_schema::SchemaRef;

use super::flat::{parse_text, FlatBatchBuilder, FlatType, Slot};
use super::float_fields::parse_float32_fields;
use super::{
    decode_isolating_failures, empty_batch, prefetching, relabel, schema_utc_as_offset,
    BatchDecoder, Decoded, FormatError, Payload, RowFailure, SharedDecoder,
};

pub struct CsvDecoder {
    schema: SchemaRef,
    /// `schema` with UTC time zones as offsets, which arrow can parse (see `relabel`).
    parse_schema: SchemaRef,
    /// Set when every column is a number, boolean or string: then lines are parsed by hand,
    /// straight into column builders (several times faster than the general reader).
    flat: Option<FlatCsvDecoder>,
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
        tombstone_line.extend(std::iter::repeat_n(
            delimiter,
            schema.fields().len().saturating_sub(1),
        ));
        let flat = FlatType::of_schema(&schema).map(|types| FlatCsvDecoder {
            schema: schema.clone(),
            types,
            delimiter,
        });
        CsvDecoder {
            parse_schema: schema_utc_as_offset(&schema),
            schema,
            flat,
            delimiter,
            tombstone_line,
            joined: Vec::new(),
        }
    }

    fn decode_together(&mut self, payloads: &[&Payload<'_>]) -> Result<RecordBatch, String> {
        let rows = payloads.len();
        self.joined.clear();
        for payload in payloads.iter().copied() {
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
        let mut decoder = ReaderBuilder::new(self.parse_schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(rows.max(1))
            .build_decoder();
        let mut input = &self.joined[..];
        while !input.is_empty() {
            let consumed = decoder
                .decode(input)
                .map_err(|e| name_the_column(&e.to_string(), &self.schema))?;
            if consumed == 0 {
                return Err("more lines than messages: a message holds a line break".into());
            }
            input = &input[consumed..];
        }
        let batch = decoder
            .flush()
            .map_err(|e| name_the_column(&e.to_string(), &self.schema))?
            .unwrap_or_else(|| empty_batch(&self.parse_schema));
        if batch.num_rows() != rows {
            return Err(format!(
                "expected one line per message, found {} lines in {rows} messages",
                batch.num_rows()
            ));
        }
        Ok(batch)
    }
}

/// An arrow-csv error with the column it names by index (`column 1 at line 0`, the line
/// counted in the joined batch: meaningless per message) named as the flat path names it,
/// by position from 1 and by name: `field 2 ("when")`.
fn name_the_column(reason: &str, schema: &SchemaRef) -> String {
    let Some(at) = reason.find("column ") else {
        return reason.to_string();
    };
    let rest = &reason[at + "column ".len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Some(field) = rest[..digits]
        .parse::<usize>()
        .ok()
        .and_then(|index| schema.fields().get(index).map(|f| (index, f)))
    else {
        return reason.to_string();
    };
    let mut after = &rest[digits..];
    if let Some(line) = after.strip_prefix(" at line ") {
        after = &line[line.bytes().take_while(u8::is_ascii_digit).count()..];
    }
    format!(
        "{}field {} ({:?}){after}",
        &reason[..at],
        field.0 + 1,
        field.1.name()
    )
}

/// Lines of a flat schema, parsed by hand. It keeps nothing between batches, so the threads
/// of a read share it.
struct FlatCsvDecoder {
    schema: SchemaRef,
    types: Vec<FlatType>,
    delimiter: u8,
}

impl FlatCsvDecoder {
    /// Decodes on this thread.
    fn decode_here(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        if self.all_floats() {
            self.decode_float_chunk(payloads)
        } else {
            self.decode_flat_chunk(payloads)
        }
    }

    fn all_floats(&self) -> bool {
        self.types
            .iter()
            .all(|t| matches!(t, FlatType::Float32 | FlatType::Float64))
    }

    /// Rows of floats only (the talk's DOUBLE columns) skip the per-field slots and column
    /// builders: each line is split and parsed straight into one buffer per column, about
    /// twice as fast. A line with anything else (quotes, NaN, a bad number, another field
    /// count) goes through `parse_line`, which accepts the same lines and words the errors.
    fn decode_float_chunk(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        let types = &self.types;
        let width = types.len();
        let mut columns = FloatColumns::new(width, payloads.len());
        let mut row = vec![0.0; width];
        let mut present = vec![false; width];
        let (mut slots, mut scratch, mut field) = (vec![Slot::Null; width], Vec::new(), Vec::new());
        let mut failures = Vec::new();
        for (index, payload) in prefetching(payloads) {
            let parsed = match payload.value {
                None => {
                    present.fill(false);
                    Ok(())
                }
                Some(bytes) => {
                    let line = trim_line_end(bytes);
                    if split_floats(line, self.delimiter, &mut row, &mut present) {
                        Ok(())
                    } else {
                        parse_line(
                            line,
                            self.delimiter,
                            types,
                            &mut slots,
                            &mut scratch,
                            &mut field,
                        )
                        .map(|()| {
                            for (j, slot) in slots.iter().enumerate() {
                                present[j] = matches!(slot, Slot::Float(_));
                                if let Slot::Float(v) = slot {
                                    row[j] = *v;
                                }
                            }
                        })
                    }
                }
            };
            match parsed {
                Ok(()) => columns.push_row(&row, &present),
                Err(reason) => failures.push(RowFailure { index, reason }),
            }
        }
        Ok(Decoded {
            batch: columns.finish(&self.schema, types)?,
            failures,
        })
    }

    fn decode_flat_chunk(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        let types = &self.types;
        let mut builder = FlatBatchBuilder::new(self.schema.clone(), types.clone(), payloads.len());
        let mut slots = vec![Slot::Null; types.len()];
        let mut scratch = Vec::new();
        let mut field = Vec::new();
        let mut failures = Vec::new();
        for (index, payload) in prefetching(payloads) {
            scratch.clear();
            let parsed = match payload.value {
                None => {
                    slots.fill(Slot::Null);
                    Ok(())
                }
                Some(bytes) => parse_line(
                    trim_line_end(bytes),
                    self.delimiter,
                    types,
                    &mut slots,
                    &mut scratch,
                    &mut field,
                ),
            };
            let appended = parsed
                .and_then(|()| builder.check_row(&slots))
                .and_then(|()| builder.append_row(&slots, &scratch));
            if let Err(reason) = appended {
                failures.push(RowFailure { index, reason });
            }
        }
        Ok(Decoded {
            batch: builder.finish()?,
            failures,
        })
    }
}

impl SharedDecoder for FlatCsvDecoder {
    fn decode_shared(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
        self.decode_here(payloads)
    }

    /// Lines of floats only: each line's numbers straight into its matrix row, by
    /// `parse_float32_fields` (AVX2), or `split_floats` for the lines it leaves. Anything
    /// else (a null, a tombstone, a line only `parse_line` reads, a bad one) is `None`: the
    /// batch path decodes the payloads, and words the failures.
    fn decode_float32_rows(&self, payloads: &[Payload<'_>], columns: &[usize]) -> Option<Vec<f32>> {
        let width = self.types.len();
        if !self.all_floats() || columns.iter().any(|c| *c >= width) {
            return None;
        }
        let every_column_in_order =
            columns.len() == width && columns.iter().enumerate().all(|(i, c)| i == *c);
        let mut matrix = Vec::with_capacity(payloads.len() * columns.len());
        let mut row = vec![0.0f32; width];
        let (mut row64, mut present) = (vec![0.0f64; width], vec![false; width]);
        let mut scratch = Vec::new();
        for (_, payload) in prefetching(payloads) {
            let line = trim_line_end(payload.value?);
            if !parse_float32_fields(line, self.delimiter, &mut row, &mut scratch) {
                if !split_floats(line, self.delimiter, &mut row64, &mut present)
                    || present.contains(&false)
                {
                    return None;
                }
                // A float32 column holds the float64 cast, as in `FloatColumns::finish`.
                for (value, parsed) in row.iter_mut().zip(&row64) {
                    *value = *parsed as f32;
                }
            }
            if every_column_in_order {
                matrix.extend_from_slice(&row);
            } else {
                matrix.extend(columns.iter().map(|&c| row[c]));
            }
        }
        Some(matrix)
    }
}

/// Splits one line into fields and parses each into its slot.
fn parse_line(
    line: &[u8],
    delimiter: u8,
    types: &[FlatType],
    slots: &mut [Slot],
    scratch: &mut Vec<u8>,
    field: &mut Vec<u8>,
) -> Result<(), String> {
    if line.is_empty() {
        return Err("empty message".into());
    }
    let mut pos = 0;
    let mut column = 0;
    loop {
        if column == types.len() {
            return Err(format!("expected {} fields, found more", types.len()));
        }
        let text: &[u8] = if line.get(pos) == Some(&b'"') {
            // Quoted: "" inside stands for one quote; the field ends at a lone quote.
            field.clear();
            pos += 1;
            loop {
                let Some(quote) = line[pos..].iter().position(|b| *b == b'"') else {
                    return Err("unterminated quoted field".into());
                };
                field.extend_from_slice(&line[pos..pos + quote]);
                pos += quote + 1;
                if line.get(pos) == Some(&b'"') {
                    field.push(b'"');
                    pos += 1;
                } else {
                    break;
                }
            }
            if pos < line.len() && line[pos] != delimiter {
                return Err("text after a closing quote".into());
            }
            field
        } else {
            let end = line[pos..]
                .iter()
                .position(|b| *b == delimiter)
                .map_or(line.len(), |i| pos + i);
            let text = &line[pos..end];
            pos = end;
            if text.contains(&b'\n') {
                return Err("a line break inside an unquoted field".into());
            }
            text
        };
        slots[column] = if text.is_empty() {
            Slot::Null
        } else {
            parse_text(text, types[column], scratch)
                .map_err(|e| format!("field {}: {e}", column + 1))?
        };
        column += 1;
        if pos >= line.len() {
            break;
        }
        pos += 1; // the delimiter; a trailing one means one more (empty) field
        if pos == line.len() {
            if column == types.len() {
                return Err(format!("expected {} fields, found more", types.len()));
            }
            slots[column] = Slot::Null;
            column += 1;
            break;
        }
    }
    if column != types.len() {
        return Err(format!("expected {} fields, found {column}", types.len()));
    }
    Ok(())
}

/// Parses an unquoted line of exactly `row.len()` float fields in one pass (an empty field
/// is null: `present` false). False when the line needs `parse_line`: quotes, NaN or
/// infinities, a malformed number, another number of fields.
fn split_floats(line: &[u8], delimiter: u8, row: &mut [f64], present: &mut [bool]) -> bool {
    if line.is_empty() || row.is_empty() {
        return false;
    }
    let mut rest = line;
    let last = row.len() - 1;
    for (j, (value, present)) in row.iter_mut().zip(present.iter_mut()).enumerate() {
        let used = if rest.first().is_none_or(|b| *b == delimiter) {
            *present = false;
            0
        } else {
            match lexical_core::parse_partial::<f64>(rest) {
                Ok((v, used)) => {
                    *value = v;
                    *present = true;
                    used
                }
                Err(_) => return false,
            }
        };
        // The number must end the field: at the delimiter, or at the end of the last field.
        match rest.get(used) {
            Some(b) if *b == delimiter && j < last => rest = &rest[used + 1..],
            None if j == last => return true,
            _ => return false,
        }
    }
    false
}

/// One value buffer per float column, with a validity bitmap made only once a null appears.
struct FloatColumns {
    values: Vec<Vec<f64>>,
    validity: Vec<Option<BooleanBufferBuilder>>,
}

impl FloatColumns {
    fn new(width: usize, rows: usize) -> Self {
        FloatColumns {
            values: (0..width).map(|_| Vec::with_capacity(rows)).collect(),
            validity: (0..width).map(|_| None).collect(),
        }
    }

    fn push_row(&mut self, row: &[f64], present: &[bool]) {
        for (j, (value, present)) in row.iter().zip(present).enumerate() {
            let column = &mut self.values[j];
            column.push(if *present { *value } else { 0.0 });
            if !*present && self.validity[j].is_none() {
                let mut bitmap = BooleanBufferBuilder::new(column.capacity());
                bitmap.append_n(column.len() - 1, true);
                self.validity[j] = Some(bitmap);
            }
            if let Some(bitmap) = &mut self.validity[j] {
                bitmap.append(*present);
            }
        }
    }

    fn finish(self, schema: &SchemaRef, types: &[FlatType]) -> Result<RecordBatch, FormatError> {
        let arrays: Vec<ArrayRef> = self
            .values
            .into_iter()
            .zip(self.validity)
            .zip(types)
            .map(|((values, validity), flat)| {
                let nulls = validity.map(|mut bitmap| NullBuffer::new(bitmap.finish()));
                let array: ArrayRef = match flat {
                    FlatType::Float32 => Arc::new(Float32Array::new(
                        values.iter().map(|v| *v as f32).collect(),
                        nulls,
                    )),
                    _ => Arc::new(Float64Array::new(values.into(), nulls)),
                };
                array
            })
            .collect();
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
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
        if let Some(flat) = &self.flat {
            return super::flat::decode_in_parallel(&self.schema, payloads, |chunk| {
                flat.decode_here(chunk)
            });
        }
        let decoded = decode_isolating_failures(payloads, |some| self.decode_together(some))?;
        Ok(Decoded {
            batch: relabel(decoded.batch, &self.schema)?,
            failures: decoded.failures,
        })
    }

    /// Flat lines only: the general path reuses one buffer for the joined lines.
    fn as_shared(&self) -> Option<&dyn SharedDecoder> {
        self.flat.as_ref().map(|flat| flat as &dyn SharedDecoder)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        cast::AsArray, types::Float32Type, types::Float64Type, types::Int64Type, Array,
    };

    use super::*;

    fn decoder() -> CsvDecoder {
        let schema =
            crate::formats::parse_column_declarations(&["Id bigint", "User varchar", "V1 double"])
                .unwrap();
        CsvDecoder::new(Arc::new(schema), b',')
    }

    fn payloads<'a>(values: &'a [Option<&'a str>]) -> Vec<Payload<'a>> {
        values
            .iter()
            .map(|v| Payload {
                key: None,
                value: v.map(str::as_bytes),
            })
            .collect()
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
        assert!(
            decoded.failures[0]
                .reason
                .contains("\"x\" is not a valid integer"),
            "{:?}",
            decoded.failures[0]
        );
    }

    #[test]
    fn large_batches_decode_in_parallel_with_failures_in_place() {
        let lines: Vec<String> = (0..10_000)
            .map(|i| {
                if i % 2_501 == 7 {
                    format!("{i},bad,x")
                } else {
                    format!("{i},u{i},{i}.5")
                }
            })
            .collect();
        let payloads: Vec<Payload> = lines
            .iter()
            .map(|l| Payload {
                key: None,
                value: Some(l.as_bytes()),
            })
            .collect();
        let decoded = decoder().decode(&payloads).unwrap();
        let bad: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(bad, [7, 2_508, 5_009, 7_510]);
        let ids = decoded.batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.len(), 9_996);
        let expected: Vec<i64> = (0..10_000).filter(|i| i % 2_501 != 7).collect();
        assert_eq!(ids.values(), expected.as_slice());
    }

    #[test]
    fn float_rows_decode_as_the_general_parser_does() {
        // Every line is built from fields that the float fast path takes and fields it must
        // hand to the general parser; both paths must give the same rows and failures.
        let fields = [
            "1.5", "-2e-3", "", "\"3.25\"", "NaN", "-inf", "x", "1.5.5", " 1", "7", "\"\"", "1e400",
        ];
        let mut seed = 7u64;
        let mut pick = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let lines: Vec<String> = (0..3_000)
            .map(|_| {
                let count = [3, 3, 3, 3, 2, 4][pick(6)];
                let mut line: Vec<&str> = (0..count).map(|_| fields[pick(fields.len())]).collect();
                if pick(20) == 0 {
                    line.push(""); // a trailing delimiter: one more (empty) field
                }
                line.join(",")
            })
            .chain([
                "".to_string(),
                "1,2,3\n".to_string(),
                "1,2,3\r\n".to_string(),
            ])
            .collect();
        let mut values: Vec<Option<&str>> = lines.iter().map(|l| Some(l.as_str())).collect();
        values.push(None);
        let payloads = payloads(&values);
        let schema =
            crate::formats::parse_column_declarations(&["A DOUBLE", "B FLOAT", "C DOUBLE"])
                .unwrap();
        let decoder = CsvDecoder::new(Arc::new(schema), b',');
        let flat = decoder.flat.as_ref().expect("floats are flat");
        let fast = flat.decode_float_chunk(&payloads).unwrap();
        let general = flat.decode_flat_chunk(&payloads).unwrap();
        assert_eq!(fast.failures, general.failures);
        assert_eq!(fast.batch, general.batch);
        assert!(fast.batch.num_rows() > 100 && fast.failures.len() > 100);
        assert!(fast.batch.column(1).null_count() > 0);
    }

    #[test]
    fn float32_rows_are_the_batch_cast_to_float32_or_none() {
        let schema =
            crate::formats::parse_column_declarations(&["A DOUBLE", "B FLOAT", "C DOUBLE"])
                .unwrap();
        let decoder = CsvDecoder::new(Arc::new(schema), b',');
        let flat = decoder.flat.as_ref().expect("floats are flat");
        // Fields the AVX2 parser takes, and ones only the scalar parser reads.
        let fields = [
            "1.5",
            "-0.1",
            "16777217",
            "123.456789012345678",
            "-2e-3",
            "7",
            "0.5e1",
        ];
        let lines: Vec<String> = (0..2_000)
            .map(|n| {
                let field = |k: usize| fields[(n * 7 + k * 3 + n / 5) % fields.len()];
                format!("{},{},{}", field(0), field(1), field(2))
            })
            .collect();
        let values: Vec<Option<&str>> = lines.iter().map(|l| Some(l.as_str())).collect();
        let all_good = payloads(&values);
        let rows = flat
            .decode_float32_rows(&all_good, &[2, 0, 1])
            .expect("all floats");
        let batch = flat.decode_shared(&all_good).unwrap().batch;
        let a = batch.column(0).as_primitive::<Float64Type>();
        let b = batch.column(1).as_primitive::<Float32Type>();
        let c = batch.column(2).as_primitive::<Float64Type>();
        let expected: Vec<f32> = (0..lines.len())
            .flat_map(|r| [c.value(r) as f32, a.value(r) as f32, b.value(r)])
            .collect();
        assert_eq!(rows, expected);
        // A null, a tombstone, a quoted number, a bad line: the batch path decodes them.
        for odd in [Some("1,,2"), None, Some("1,\"2\",3"), Some("1,x,3")] {
            let mut with_odd = values.clone();
            with_odd[1_234] = odd;
            let rows = flat.decode_float32_rows(&payloads(&with_odd), &[0, 1, 2]);
            assert_eq!(rows, None, "{odd:?}");
        }
        // A schema with other than floats has no float32 rows.
        let mixed = CsvDecoder::new(
            Arc::new(crate::formats::parse_column_declarations(&["A DOUBLE", "N BIGINT"]).unwrap()),
            b',',
        );
        let mixed = mixed.as_shared().expect("flat");
        assert_eq!(
            mixed.decode_float32_rows(&payloads(&[Some("1.5,2")]), &[0]),
            None
        );
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
