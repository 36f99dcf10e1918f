//! The CPU cost of the engine's queries without Kafka, for profiling (`perf record`) what the
//! benchmarks measure end to end, in the Kafka runtime's batches of 10,000 records:
//!
//! - `csas`: the talk's preprocessing (`CREATE STREAM ... AS SELECT` 30 columns `WHERE Class
//!   IS NOT NULL`, DELIMITED -> JSON) over credit-card rows (`bench_ksql_engine.py`);
//! - `projection`, `window`, `join`: `bench_ksql_stateful.py`'s queries over JSON car events
//!   keyed by car (a projection, a tumbling COUNT/AVG by car, a LEFT JOIN with a users table).
//!
//! `cargo run --release -p kafkaml-engine --example query_cpu -- [csas|projection|window|join] [ROWS]`
//!
//! It runs on the system allocator; the Python extension's is mimalloc (~20 % less here).

use std::sync::Arc;
use std::time::Instant;

use kafkaml_engine::conformance::MemoryCluster;
use kafkaml_engine::engine::{Engine, EngineConfig, ManualRuntime};
use kafkaml_engine::functions::FunctionRegistry;
use kafkaml_engine::topology::InputRecord;

const BATCH: usize = 10_000;
const CARS: u64 = 10_000;
const USERS: u64 = 100_000;
const BASE_MS: i64 = 1_700_000_000_000;

/// Reproducible numbers in [0, 1) without a dependency (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn record(topic: &str, id: u64, key: Option<String>, value: String) -> InputRecord {
    InputRecord {
        topic: topic.into(),
        partition: (id % 4) as i32,
        offset: (id / 4) as i64,
        timestamp: BASE_MS + id as i64,
        key: key.map(String::into_bytes),
        value: Some(value.into_bytes()),
    }
}

/// A DELIMITED row shaped like `kafkaml.datasets.credit_card_source`'s: an id, a quoted
/// timestamp and user, an integer time, 28 doubles of ~17 significant digits, an amount and a
/// quoted label.
fn credit_card_row(id: u64, random: &mut Random) -> String {
    let mut line = format!(
        "{id},\"2019-03-01 13:03:51\",\"user{}\",{}",
        id % 500,
        id * 7
    );
    for _ in 0..28 {
        line.push_str(&format!(",{}", (random.next() - 0.5) * 6.0));
    }
    line.push_str(&format!(",{:.2},\"{}\"", random.next() * 200.0, id % 2));
    line
}

/// The statements that declare the workload's sources, the records they read first (a
/// table's rows, not timed), the timed query and its records.
fn workload(query: &str, rows: u64) -> (String, Vec<InputRecord>, String, Vec<InputRecord>) {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    if query == "csas" {
        let doubles: Vec<String> = (1..=28).map(|i| format!("V{i} double")).collect();
        let features: Vec<String> = (1..=28).map(|i| format!("V{i}")).collect();
        let records = (0..rows)
            .map(|id| record("source", id, None, credit_card_row(id, &mut random)))
            .collect();
        return (
            format!(
                "CREATE STREAM source (Id bigint, Timestamp varchar, User varchar, Time int, {}, \
                 Amount double, Class string) WITH (kafka_topic='source', \
                 value_format='DELIMITED', partitions=4);",
                doubles.join(", ")
            ),
            Vec::new(),
            format!(
                "CREATE STREAM preprocessed WITH (kafka_topic='sink', value_format='JSON') AS \
                 SELECT Time, {}, Amount, Class FROM source WHERE Class IS NOT NULL;",
                features.join(", ")
            ),
            records,
        );
    }
    let declarations = "CREATE STREAM events (car_id STRING KEY, owner_id STRING, \
        sensor_value DOUBLE, ts BIGINT) WITH (kafka_topic='events', value_format='JSON', \
        timestamp='ts', partitions=4); \
        CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier INT) \
        WITH (kafka_topic='users', value_format='JSON', partitions=4);";
    let users = (0..USERS)
        .map(|u| {
            let value = format!(r#"{{"NAME":"owner {u}","TIER":{}}}"#, u % 3);
            record("users", u, Some(format!("\"u{u}\"")), value)
        })
        .collect();
    let events = (0..rows)
        .map(|id| {
            let car = (random.next() * CARS as f64) as u64;
            let value = format!(
                r#"{{"OWNER_ID":"u{}","SENSOR_VALUE":{},"TS":{}}}"#,
                car % USERS,
                70.0 + (random.next() - 0.5) * 10.0,
                BASE_MS + id as i64
            );
            record("events", id, Some(format!("\"car-{car}\"")), value)
        })
        .collect();
    let timed = match query {
        "projection" => {
            "CREATE STREAM projected AS SELECT car_id, sensor_value * 2 AS twice FROM events;"
        }
        "window" => {
            "CREATE TABLE per_car AS SELECT car_id, COUNT(*) AS n, AVG(sensor_value) AS mean \
                     FROM events WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY car_id;"
        }
        "join" => {
            "CREATE STREAM enriched AS SELECT e.owner_id, e.car_id, e.sensor_value, u.name \
                   FROM events e LEFT JOIN users u ON e.owner_id = u.user_id;"
        }
        other => panic!("unknown query {other}: csas, projection, window or join"),
    };
    (declarations.into(), users, timed.into(), events)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let query = args.first().map_or("csas", String::as_str);
    let rows: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let (declarations, table_rows, timed, records) = workload(query, rows);

    let mut engine = Engine::new(
        EngineConfig::default(),
        Arc::new(MemoryCluster::default()),
        None,
        Arc::new(ManualRuntime),
        FunctionRegistry::builtin(),
    );
    engine
        .execute(&declarations)
        .expect("the sources are declared");
    engine.execute(&timed).expect("the query starts");
    let query = engine
        .queries
        .values()
        .next()
        .expect("one persistent query");
    let mut topology = query.topology.lock().expect("a topology");
    // A join's table side is read before the query starts, as the Kafka runtime does.
    for batch in table_rows.chunks(BATCH) {
        topology.process(batch);
    }

    let start = Instant::now();
    let (mut written, mut bytes) = (0usize, 0usize);
    for batch in records.chunks(BATCH) {
        for output in topology.process(batch) {
            written += 1;
            bytes += output.value.as_ref().map_or(0, Vec::len);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{rows} records in {seconds:.3} s: {:.0} records/s, {:.2} us per record; {written} \
         written, {:.0} value bytes each",
        rows as f64 / seconds,
        seconds * 1e6 / rows as f64,
        bytes as f64 / written.max(1) as f64
    );
}
