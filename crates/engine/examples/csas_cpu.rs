//! The CPU cost of the engine's stateless path, without Kafka: the talk's preprocessing
//! (`CREATE STREAM ... AS SELECT` 30 columns `WHERE Class IS NOT NULL`, DELIMITED -> JSON) over
//! generated credit-card rows, in the Kafka runtime's batches of 10,000. A developer's loop for
//! profiling (`perf record`) what `benchmarks/bench_ksql_engine.py` measures end to end:
//! `cargo run --release -p kafkaml-engine --example csas_cpu -- [ROWS]`.

use std::sync::Arc;
use std::time::Instant;

use kafkaml_engine::conformance::MemoryCluster;
use kafkaml_engine::engine::{Engine, EngineConfig, ManualRuntime};
use kafkaml_engine::functions::FunctionRegistry;
use kafkaml_engine::topology::InputRecord;

const BATCH: usize = 10_000;

/// A DELIMITED row shaped like `kafkaml.datasets.credit_card_source`'s: an id, a quoted
/// timestamp and user, an integer time, 28 doubles of ~17 significant digits, an amount and a
/// quoted label.
fn row(id: u64, random: &mut impl FnMut() -> f64) -> String {
    let mut line = format!(
        "{id},\"2019-03-01 13:03:51\",\"user{}\",{}",
        id % 500,
        id * 7
    );
    for _ in 0..28 {
        line.push_str(&format!(",{}", (random() - 0.5) * 6.0));
    }
    line.push_str(&format!(",{:.2},\"{}\"", random() * 200.0, id % 2));
    line
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = move || {
        // xorshift64*: reproducible data without a dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let records: Vec<InputRecord> = (0..rows as u64)
        .map(|id| InputRecord {
            topic: "source".into(),
            partition: (id % 4) as i32,
            offset: (id / 4) as i64,
            timestamp: 1_551_398_400_000 + id as i64,
            key: None,
            value: Some(row(id, &mut random).into_bytes()),
        })
        .collect();

    let mut engine = Engine::new(
        EngineConfig::default(),
        Arc::new(MemoryCluster::default()),
        None,
        Arc::new(ManualRuntime),
        FunctionRegistry::builtin(),
    );
    let doubles: Vec<String> = (1..=28).map(|i| format!("V{i} double")).collect();
    let features: Vec<String> = (1..=28).map(|i| format!("V{i}")).collect();
    engine
        .execute(&format!(
            "CREATE STREAM source (Id bigint, Timestamp varchar, User varchar, Time int, {}, \
             Amount double, Class string) WITH (kafka_topic='source', value_format='DELIMITED', \
             partitions=4);\
             CREATE STREAM preprocessed WITH (kafka_topic='sink', value_format='JSON') AS \
             SELECT Time, {}, Amount, Class FROM source WHERE Class IS NOT NULL;",
            doubles.join(", "),
            features.join(", ")
        ))
        .expect("the statements run");
    let query = engine
        .queries
        .values()
        .next()
        .expect("one persistent query");
    let mut topology = query.topology.lock().expect("a topology");

    let start = Instant::now();
    let mut written = 0usize;
    let mut bytes = 0usize;
    for batch in records.chunks(BATCH) {
        for output in topology.process(batch) {
            written += 1;
            bytes += output.value.as_ref().map_or(0, Vec::len);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(written, rows, "every row passes the filter");
    println!(
        "{rows} rows in {seconds:.3} s: {:.0} rows/s, {:.2} us per row, {:.0} JSON bytes per row",
        rows as f64 / seconds,
        seconds * 1e6 / rows as f64,
        bytes as f64 / rows as f64
    );
}
