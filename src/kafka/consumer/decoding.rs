//! Decoding a round's messages: the decoder for the read format (inferring a JSON schema
//! from the first messages when none is declared), the error policy, and the metadata
//! columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::options::{AvroWriter, ConsumerOptions, OnError, ReadFormat};
use super::{DecodeFailure, ErrorLog, PartitionKey};
use crate::formats::avro::{AvroDecoder, WriterSchemas};
use crate::formats::csv::CsvDecoder;
use crate::formats::json::{infer_schema, JsonDecoder};
use crate::formats::raw::RawDecoder;
use crate::formats::registry::SchemaRegistry;
use crate::formats::{parse_dates as parse_dates_in, BatchDecoder, Decoded, FormatError, Payload};
use crate::kafka::polled::PolledMessage;
use crate::kafka::KafkaError;

/// How many messages a JSON schema is inferred from when none is declared: the first round
/// is this long, decoded on the polling thread; every later round then decodes on the fast
/// paths a declared schema takes (inferring from a whole 50,000-message round made a 200,000
/// row read 3.3x slower than with the schema declared).
pub(super) const INFERENCE_SAMPLE: usize = 10_000;

#[derive(Default)]
pub(super) struct DecodeState {
    pub(super) decoder: Option<Box<dyn BatchDecoder>>,
    /// Next offset per partition after the messages handed out so far (what commit stores).
    pub(super) handed_out: HashMap<PartitionKey, i64>,
    pub(super) errors: ErrorLog,
    pub(super) messages_read: u64,
    /// Where an inferred schema came from, for errors and warnings that involve it.
    pub(super) inferred_from: Option<InferredFrom>,
}

/// The messages a JSON schema was inferred from.
#[derive(Debug, Clone)]
pub(super) struct InferredFrom {
    pub(super) messages: usize,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    /// Fields the schema lacks that later messages held, already reported.
    pub(super) reported_unknown: usize,
}

impl InferredFrom {
    /// Appended to a decode failure's reason: the type it did not fit was a guess.
    fn note(&self) -> String {
        format!(
            "; the column types were inferred from the first {} message(s), from {}[{}]@{}: \
             declare them with schema= (e.g. DOUBLE for a column of whole numbers that may \
             hold fractions)",
            self.messages, self.topic, self.partition, self.offset
        )
    }
}

pub(super) fn output_schema(options: &ConsumerOptions, values: SchemaRef) -> SchemaRef {
    if !options.include_metadata {
        return values;
    }
    let mut fields: Vec<Arc<Field>> = values.fields().iter().cloned().collect();
    fields.extend(metadata_fields().into_iter().map(Arc::new));
    Arc::new(Schema::new(fields))
}

impl DecodeState {
    /// A failure's reason as reported: at most `REASON_BYTES` of it (a reason may quote the
    /// payload: a 5 kB bad message made `.errors`' repr tens of kB), and what an inferred
    /// schema's types were guessed from.
    fn reason(&self, reason: &str) -> String {
        let mut text = bounded(reason, REASON_BYTES);
        if let Some(inferred) = &self.inferred_from {
            text.push_str(&inferred.note());
        }
        text
    }

    /// Fields of later messages that an inferred schema lacks, as a warning, once per new
    /// field: they are left out of the batches.
    pub(super) fn unknown_fields_warning(&mut self) -> Option<String> {
        let inferred = self.inferred_from.as_mut()?;
        let unknown = self.decoder.as_ref()?.unknown_fields();
        if unknown.len() <= inferred.reported_unknown {
            return None;
        }
        let new = &unknown[inferred.reported_unknown..];
        inferred.reported_unknown = unknown.len();
        Some(format!(
            "messages after the first {} hold field(s) the inferred schema lacks: {}; they are \
             left out of the batches (the schema was inferred from {}[{}]@{} on); pass schema= to \
             read them",
            inferred.messages,
            new.iter()
                .map(|name| format!("{name:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            inferred.topic,
            inferred.partition,
            inferred.offset
        ))
    }

    /// Decodes the messages' payloads on this thread (making the decoder first if the schema
    /// is to be inferred from them).
    pub(super) fn decode(
        &mut self,
        options: &ConsumerOptions,
        messages: &[impl PolledMessage],
    ) -> Result<Decoded, KafkaError> {
        let payloads: Vec<Payload<'_>> = messages
            .iter()
            .map(|m| Payload {
                key: m.key(),
                value: m.payload(),
            })
            .collect();
        if self.decoder.is_none() {
            self.decoder = make_decoder(options, Some(&payloads))?;
            if let Some(first) = messages.first() {
                self.inferred_from = Some(InferredFrom {
                    messages: messages.len(),
                    topic: first.topic().to_string(),
                    partition: first.partition(),
                    offset: first.offset(),
                    reported_unknown: 0,
                });
            }
        }
        let decoder = self.decoder.as_mut().expect("decoder made above");
        Ok(decoder.decode(&payloads)?)
    }

    /// Applies the error policy to the decoded messages, counts them as handed out, and adds
    /// the metadata columns.
    pub(super) fn hand_out(
        &mut self,
        options: &ConsumerOptions,
        messages: &[impl PolledMessage],
        decoded: Decoded,
    ) -> Result<RecordBatch, KafkaError> {
        if let Some(first) = decoded.failures.first() {
            if options.on_error == OnError::Raise {
                let m = &messages[first.index];
                return Err(KafkaError::Decode {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    reason: self.reason(&first.reason),
                });
            }
            for failure in &decoded.failures {
                let m = &messages[failure.index];
                let reason = self.reason(&failure.reason);
                self.errors.record(DecodeFailure {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    reason,
                });
            }
        }
        self.messages_read += messages.len() as u64;
        // Skipped messages count as consumed: a commit moves past them. Offsets rise within
        // each partition, so the last message of each run of one partition is the one to keep.
        for (i, m) in messages.iter().enumerate() {
            let run_ends = messages.get(i + 1).is_none_or(|next| {
                next.partition() != m.partition() || next.topic_id() != m.topic_id()
            });
            if run_ends {
                self.handed_out
                    .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            }
        }
        let schema = output_schema(options, decoded.batch.schema());
        if !options.include_metadata {
            return Ok(decoded.batch);
        }
        let keep = decoded.kept_mask(messages.len());
        let kept: Vec<_> = messages
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(m, _)| m)
            .collect();
        let mut columns: Vec<ArrayRef> = decoded.batch.columns().to_vec();
        columns.push(Arc::new(
            kept.iter()
                .map(|m| Some(m.topic()))
                .collect::<StringArray>(),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.partition()).collect::<Int32Array>(),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.offset()).collect::<Int64Array>(),
        ));
        columns.push(Arc::new(
            kept.iter()
                .map(|m| m.timestamp_ms())
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ));
        columns.push(Arc::new(
            kept.iter().map(|m| m.key()).collect::<BinaryArray>(),
        ));
        Ok(RecordBatch::try_new(schema, columns).map_err(FormatError::from)?)
    }
}

/// The decoder for the configured format; `None` when json must first infer a schema.
pub(super) fn make_decoder(
    options: &ConsumerOptions,
    sample: Option<&[Payload<'_>]>,
) -> Result<Option<Box<dyn BatchDecoder>>, KafkaError> {
    let decoder: Box<dyn BatchDecoder> = match &options.format {
        ReadFormat::Raw => Box::new(RawDecoder::new()),
        ReadFormat::Json {
            schema,
            parse_dates,
        } => match (schema, sample) {
            // parse_dates leaves timestamp columns as they are: applying it again to a
            // declared schema that has it is harmless.
            (Some(schema), _) if parse_dates.is_empty() => {
                Box::new(JsonDecoder::new(schema.clone()))
            }
            (Some(schema), _) => Box::new(JsonDecoder::new(Arc::new(parse_dates_in(
                schema,
                parse_dates,
            )?))),
            (None, Some(sample)) => {
                let inferred = infer_schema(sample)?;
                let schema = if parse_dates.is_empty() {
                    inferred
                } else {
                    parse_dates_in(&inferred, parse_dates)?
                };
                Box::new(JsonDecoder::noting_unknown_fields(Arc::new(schema)))
            }
            (None, None) => return Ok(None),
        },
        ReadFormat::Csv { schema, delimiter } => {
            Box::new(CsvDecoder::new(schema.clone(), *delimiter))
        }
        ReadFormat::Avro { writer, reader } => {
            let writer = match writer {
                AvroWriter::Schema(text) => WriterSchemas::Fixed(Arc::new(
                    apache_avro::Schema::parse_str(text)
                        .map_err(|e| FormatError::AvroSchema(e.to_string()))?,
                )),
                AvroWriter::Registry(registry) => {
                    WriterSchemas::Registry(SchemaRegistry::new(registry.clone())?)
                }
            };
            Box::new(AvroDecoder::new(writer, reader.clone())?)
        }
    };
    Ok(Some(decoder))
}

/// How much of a decode failure's reason is kept.
const REASON_BYTES: usize = 300;

/// `text` cut to at most `limit` bytes (on a character boundary), saying how much was left
/// out.
fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} more bytes)", &text[..end], text.len() - end)
}

/// The columns `include_metadata=True` adds.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("_key", DataType::Binary, true),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::produce;
    use super::super::{ArrowConsumer, StopAt};
    use super::*;
    use crate::kafka::local::LocalCluster;

    /// A snapshot read of `values` (one partition) with the schema inferred.
    fn inferring_reader(values: Vec<String>) -> (LocalCluster, ArrowConsumer) {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("t", 1).unwrap();
        produce(cluster.bootstrap_servers(), "t", &[values]);
        let options = ConsumerOptions {
            stop: StopAt::End,
            batch_size: 20_000,
            ..ConsumerOptions::new(cluster.bootstrap_servers(), ["t"], ReadFormat::json())
        };
        let consumer = ArrowConsumer::new(options).unwrap();
        (cluster, consumer)
    }

    #[test]
    fn a_value_that_does_not_fit_an_inferred_type_names_where_it_was_inferred() {
        let mut values: Vec<String> = (0..super::INFERENCE_SAMPLE + 10)
            .map(|i| format!("{{\"x\": {i}}}"))
            .collect();
        values.push("{\"x\": 1.5}".into());
        let (_cluster, mut consumer) = inferring_reader(values);
        let never = &mut || false;
        let first = consumer.next_batch(never).unwrap().unwrap();
        assert_eq!(first.num_rows(), super::INFERENCE_SAMPLE);
        let error = loop {
            match consumer.next_batch(never) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the fraction was read without an error"),
                Err(error) => break error,
            }
        };
        let KafkaError::Decode { offset, reason, .. } = error else {
            panic!("not a decode error: {error}");
        };
        assert_eq!(offset, super::INFERENCE_SAMPLE as i64 + 10);
        assert!(reason.contains("1.5"), "{reason}");
        assert!(
            reason.contains("inferred from the first 10000 message(s), from t[0]@0"),
            "{reason}"
        );
    }

    #[test]
    fn fields_the_inferred_schema_lacks_are_left_out_with_a_warning() {
        let mut values: Vec<String> = (0..super::INFERENCE_SAMPLE)
            .map(|i| format!("{{\"x\": {i}}}"))
            .collect();
        values.extend((0..5).map(|i| format!("{{\"x\": {i}, \"late\": true}}")));
        let (_cluster, mut consumer) = inferring_reader(values);
        let never = &mut || false;
        let mut rows = 0;
        while let Some(batch) = consumer.next_batch(never).unwrap() {
            assert_eq!(batch.num_columns(), 1);
            rows += batch.num_rows();
        }
        assert_eq!(rows, super::INFERENCE_SAMPLE + 5);
        let warnings = consumer.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("\"late\""), "{}", warnings[0]);
        assert!(warnings[0].contains("schema="), "{}", warnings[0]);
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(200); // 400 bytes
        let cut = bounded(&long, 301);
        assert!(cut.starts_with(&"é".repeat(150)));
        assert!(cut.ends_with("... (100 more bytes)"), "{cut}");
    }

    #[test]
    fn an_inferred_schema_is_named_in_failures() {
        let mut state = DecodeState::default();
        assert_eq!(state.reason("bad"), "bad");
        state.inferred_from = Some(InferredFrom {
            messages: 10_000,
            topic: "t".into(),
            partition: 2,
            offset: 7,
            reported_unknown: 0,
        });
        let reason = state.reason("field \"x\": expected an int64, found 1.5");
        assert!(reason.contains("inferred from the first 10000 message(s), from t[2]@7"));
        assert!(reason.contains("schema="));
    }
}
