//! Encoder and decoder throughput without Kafka: credit-card rows as JSON and CSV, decoded in
//! batches, and CSV into a float32 matrix.
//!
//!     cargo run --release --no-default-features --example decode_bench

use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef;
use kafkaml::formats::csv::CsvDecoder;
use kafkaml::formats::encode::ValueEncoder;
use kafkaml::formats::json::JsonDecoder;
use kafkaml::formats::{parse_column_declarations, BatchDecoder, Payload};
use kafkaml::matrix::{MatrixRows, RowSink};

fn main() {
    let names: Vec<String> = std::iter::once("Time".to_string())
        .chain((1..=28).map(|i| format!("V{i}")))
        .chain(["Amount".to_string(), "Class".to_string()])
        .collect();
    let declarations: Vec<String> = names.iter().map(|n| format!("{n} DOUBLE")).collect();
    let schema = Arc::new(parse_column_declarations(&declarations).unwrap());
    let rows = 100_000;
    let mut seed = 12345u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    let mut json = Vec::new();
    let mut csv = Vec::new();
    for _ in 0..rows {
        let values: Vec<f64> = (0..names.len()).map(|_| next()).collect();
        let fields: Vec<String> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        json.push(format!("{{{}}}", fields.join(",")).into_bytes());
        csv.push(
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes(),
        );
    }
    // Encoding: decode once, then time the writers on the same batch.
    let batch = CsvDecoder::new(schema.clone(), b',')
        .decode(&values_only(&csv))
        .unwrap()
        .batch;
    for (name, encoder) in [
        ("json", ValueEncoder::Json),
        ("csv", ValueEncoder::Csv { delimiter: b',' }),
    ] {
        let started = Instant::now();
        let encoded = encoder.encode(&batch).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "encode {name}: {} rows in {seconds:.3} s = {:.0} rows/s",
            encoded.len(),
            encoded.len() as f64 / seconds
        );
    }
    for (name, messages, mut decoder) in [
        (
            "json",
            &json,
            Box::new(JsonDecoder::new(schema.clone())) as Box<dyn BatchDecoder>,
        ),
        ("csv", &csv, Box::new(CsvDecoder::new(schema.clone(), b','))),
    ] {
        // The fastest of 5 passes: single passes on this shared machine vary by 15 %.
        let mut seconds = f64::INFINITY;
        let mut decoded = 0;
        for _ in 0..5 {
            let started = Instant::now();
            decoded = 0;
            for chunk in messages.chunks(10_000) {
                decoded += decoder
                    .decode(&values_only(chunk))
                    .unwrap()
                    .batch
                    .num_rows();
            }
            seconds = seconds.min(started.elapsed().as_secs_f64());
        }
        let bytes: usize = messages.iter().map(Vec::len).sum();
        println!(
            "{name}: {decoded} rows in {seconds:.3} s = {:.0} rows/s, {:.0} MB/s",
            decoded as f64 / seconds,
            bytes as f64 / seconds / 1e6
        );
    }
    csv_into_float32_matrix(&schema, &csv);
}

/// CSV into a float32 matrix on one thread, in the decode threads' takes of 2,048 lines: as
/// batches appended to the matrix, and as rows the decoder writes itself.
fn csv_into_float32_matrix(schema: &SchemaRef, csv: &[Vec<u8>]) {
    let decoder = CsvDecoder::new(schema.clone(), b',');
    let shared = decoder.as_shared().expect("flat csv is shared");
    let payloads = values_only(csv);
    let numbers = (csv.len() * schema.fields().len()) as f64;
    let mut fastest = [f64::INFINITY; 2];
    for _ in 0..5 {
        for (way, seconds) in fastest.iter_mut().enumerate() {
            let mut matrix = MatrixRows::<f32>::new(None, None, csv.len());
            let columns = matrix.float32_columns(schema).expect("a float32 matrix");
            let started = Instant::now();
            for take in payloads.chunks(2048) {
                if way == 0 {
                    matrix
                        .append(&shared.decode_shared(take).unwrap().batch)
                        .unwrap();
                } else {
                    let rows = shared.decode_float32_rows(take, &columns).unwrap();
                    matrix.append_float32_rows(&rows).unwrap();
                }
            }
            *seconds = seconds.min(started.elapsed().as_secs_f64());
            assert_eq!(matrix.finish(None).unwrap().1, csv.len());
        }
    }
    let [batches, rows] = fastest;
    println!(
        "csv -> float32 matrix, one thread: as batches {:.1} ns/number, as rows {:.1} ns/number ({:.2}x)",
        batches * 1e9 / numbers,
        rows * 1e9 / numbers,
        batches / rows
    );
}

/// Messages without keys, as the decoders take them.
fn values_only(messages: &[Vec<u8>]) -> Vec<Payload<'_>> {
    messages
        .iter()
        .map(|m| Payload {
            key: None,
            value: Some(m),
        })
        .collect()
}
