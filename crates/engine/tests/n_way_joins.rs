//! Joins of three or more sources: a left-deep chain of joins, as ksqlDB runs them. Each test
//! feeds records one at a time, in a chosen order across the sources' topics, and checks the
//! exact records the query writes.

use std::sync::Arc;

mod common;
use common::engine_on;
use kafkaml_engine::conformance::MemoryCluster;
use kafkaml_engine::engine::Engine;
use kafkaml_engine::topology::{InputRecord, OutputRecord};

/// A record of `topic` with a string key (KAFKA format) and a JSON value (`None`: a delete).
fn record(topic: &str, key: &str, value: Option<&str>, timestamp: i64) -> InputRecord {
    InputRecord {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        timestamp,
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

/// What the query wrote: (key, JSON value or `None` for a tombstone, timestamp).
type Written = (String, Option<String>, i64);

/// Runs each record through the engine's one query, in order, and returns what it wrote.
fn run(engine: &Engine, records: &[InputRecord]) -> Vec<Written> {
    let query = engine.queries.values().next().expect("a query");
    let mut topology = query.topology.lock().unwrap();
    records
        .iter()
        .flat_map(|record| topology.process(std::slice::from_ref(record)))
        .map(written)
        .collect()
}

fn written(output: OutputRecord) -> Written {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("text");
    (
        output.key.map(text).unwrap_or_default(),
        output.value.map(text),
        output.timestamp,
    )
}

fn row(key: &str, value: &str, timestamp: i64) -> Written {
    (key.into(), Some(value.into()), timestamp)
}

const CLICKS_USERS_REGIONS: [&str; 3] = [
    "CREATE STREAM clicks (user_id STRING KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);",
    "CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, region_id STRING) WITH (kafka_topic='users', value_format='JSON', partitions=1);",
    "CREATE TABLE regions (region_id STRING PRIMARY KEY, label STRING) WITH (kafka_topic='regions', value_format='JSON', partitions=1);",
];

#[test]
fn a_stream_table_table_inner_chain_rekeys_on_a_column_of_the_middle_table() {
    let mut statements = CLICKS_USERS_REGIONS.to_vec();
    statements.push(
        "CREATE STREAM enriched AS SELECT r.region_id, c.page, u.name, r.label \
         FROM clicks c JOIN users u ON c.user_id = u.user_id \
         JOIN regions r ON u.region_id = r.region_id;",
    );
    let engine = engine_on(Arc::new(MemoryCluster::default()), &statements);
    let out = run(
        &engine,
        &[
            record("regions", "north", Some(r#"{"LABEL":"North"}"#), 1),
            record(
                "users",
                "ann",
                Some(r#"{"NAME":"Ann","REGION_ID":"north"}"#),
                2,
            ),
            record(
                "users",
                "bob",
                Some(r#"{"NAME":"Bob","REGION_ID":"south"}"#),
                3,
            ),
            // Ann's click joins both tables; Bob's region is unknown; Cy is no user.
            record("clicks", "ann", Some(r#"{"PAGE":"/home"}"#), 10),
            record("clicks", "bob", Some(r#"{"PAGE":"/cart"}"#), 11),
            record("clicks", "cy", Some(r#"{"PAGE":"/help"}"#), 12),
            // Table updates emit nothing, and later clicks see them.
            record("regions", "south", Some(r#"{"LABEL":"South"}"#), 13),
            record("clicks", "bob", Some(r#"{"PAGE":"/pay"}"#), 14),
        ],
    );
    assert_eq!(
        out,
        vec![
            row(
                "north",
                r#"{"PAGE":"/home","NAME":"Ann","LABEL":"North"}"#,
                10
            ),
            row(
                "south",
                r#"{"PAGE":"/pay","NAME":"Bob","LABEL":"South"}"#,
                14
            ),
        ]
    );
}

#[test]
fn a_stream_table_table_left_chain_keeps_clicks_without_a_user_or_region() {
    let mut statements = CLICKS_USERS_REGIONS.to_vec();
    statements.push(
        "CREATE TABLE prefs (user_id STRING PRIMARY KEY, theme STRING) WITH (kafka_topic='prefs', value_format='JSON', partitions=1);",
    );
    statements.push(
        "CREATE STREAM enriched AS SELECT c.user_id, c.page, u.name, p.theme \
         FROM clicks c LEFT JOIN users u ON c.user_id = u.user_id \
         LEFT JOIN prefs p ON c.user_id = p.user_id;",
    );
    let engine = engine_on(Arc::new(MemoryCluster::default()), &statements);
    let out = run(
        &engine,
        &[
            record(
                "users",
                "ann",
                Some(r#"{"NAME":"Ann","REGION_ID":"north"}"#),
                1,
            ),
            record("prefs", "ann", Some(r#"{"THEME":"dark"}"#), 2),
            record("prefs", "cy", Some(r#"{"THEME":"light"}"#), 3),
            record("clicks", "ann", Some(r#"{"PAGE":"/home"}"#), 10),
            record("clicks", "bob", Some(r#"{"PAGE":"/cart"}"#), 11),
            record("clicks", "cy", Some(r#"{"PAGE":"/help"}"#), 12),
            // A deleted preference is gone for the next click.
            record("prefs", "ann", None, 13),
            record("clicks", "ann", Some(r#"{"PAGE":"/out"}"#), 14),
        ],
    );
    assert_eq!(
        out,
        vec![
            row("ann", r#"{"PAGE":"/home","NAME":"Ann","THEME":"dark"}"#, 10),
            row("bob", r#"{"PAGE":"/cart","NAME":null,"THEME":null}"#, 11),
            row("cy", r#"{"PAGE":"/help","NAME":null,"THEME":"light"}"#, 12),
            row("ann", r#"{"PAGE":"/out","NAME":"Ann","THEME":null}"#, 14),
        ]
    );
}

const PARTS: [&str; 4] = [
    "CREATE TABLE parts (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='parts', value_format='JSON', partitions=1);",
    "CREATE TABLE prices (id STRING PRIMARY KEY, cents INT) WITH (kafka_topic='prices', value_format='JSON', partitions=1);",
    "CREATE TABLE stock (id STRING PRIMARY KEY, units INT) WITH (kafka_topic='stock', value_format='JSON', partitions=1);",
    "CREATE TABLE catalogue AS SELECT p.id, p.name, c.cents, s.units \
     FROM parts p JOIN prices c ON p.id = c.id LEFT JOIN stock s ON p.id = s.id;",
];

/// Records for `PARTS`: updates on every table, a delete of a middle table's row, one of a
/// last table's row.
fn parts_records() -> Vec<InputRecord> {
    vec![
        record("parts", "bolt", Some(r#"{"NAME":"Bolt"}"#), 1),
        record("stock", "bolt", Some(r#"{"UNITS":40}"#), 2),
        record("prices", "bolt", Some(r#"{"CENTS":15}"#), 3),
        record("parts", "nut", Some(r#"{"NAME":"Nut"}"#), 4),
        record("prices", "nut", Some(r#"{"CENTS":5}"#), 5),
        record("stock", "bolt", Some(r#"{"UNITS":39}"#), 6),
        // Without a price, the bolt has no row in the inner join: the result is deleted.
        record("prices", "bolt", None, 7),
        // A stock change of a part without a row changes nothing.
        record("stock", "bolt", Some(r#"{"UNITS":38}"#), 8),
        record("prices", "bolt", Some(r#"{"CENTS":16}"#), 9),
        // The left join keeps the nut when its stock is deleted.
        record("stock", "nut", Some(r#"{"UNITS":7}"#), 10),
        record("stock", "nut", None, 11),
    ]
}

#[test]
fn a_table_table_table_chain_updates_and_deletes_its_rows() {
    let engine = engine_on(Arc::new(MemoryCluster::default()), &PARTS);
    assert_eq!(
        run(&engine, &parts_records()),
        vec![
            row("bolt", r#"{"NAME":"Bolt","CENTS":15,"UNITS":40}"#, 3),
            row("nut", r#"{"NAME":"Nut","CENTS":5,"UNITS":null}"#, 5),
            row("bolt", r#"{"NAME":"Bolt","CENTS":15,"UNITS":39}"#, 6),
            ("bolt".into(), None, 7),
            row("bolt", r#"{"NAME":"Bolt","CENTS":16,"UNITS":38}"#, 9),
            row("nut", r#"{"NAME":"Nut","CENTS":5,"UNITS":7}"#, 10),
            row("nut", r#"{"NAME":"Nut","CENTS":5,"UNITS":null}"#, 11),
        ]
    );
}

#[test]
fn a_restarted_table_table_table_chain_goes_on_as_one_that_never_stopped() {
    let records = parts_records();
    let (before, after) = records.split_at(6);
    let fresh = || engine_on(Arc::new(MemoryCluster::default()), &PARTS);
    let all = run(&fresh(), &records);
    let expected_after = all[run(&fresh(), before).len()..].to_vec();
    assert_eq!(expected_after.len(), 4);

    // A new engine reads the tables' records so far, then goes on with the rest.
    let restarted = engine_on(Arc::new(MemoryCluster::default()), &PARTS);
    {
        let query = restarted.queries.values().next().unwrap();
        let mut topology = query.topology.lock().unwrap();
        let topics = topology.restore_topics(false);
        assert_eq!(topics, ["parts", "prices", "stock"]);
        for topic in topics {
            for record in before.iter().filter(|r| r.topic == topic) {
                topology.restore(record).expect("a table record reads back");
            }
        }
        topology.finish_restore();
    }
    assert_eq!(run(&restarted, after), expected_after);
}

#[test]
fn a_stream_stream_table_chain_joins_within_the_window_then_looks_up_the_table() {
    let engine = engine_on(
        Arc::new(MemoryCluster::default()),
        &[
            "CREATE STREAM orders (id STRING KEY, item STRING) WITH (kafka_topic='orders', value_format='JSON', partitions=1);",
            "CREATE STREAM payments (id STRING KEY, cents INT) WITH (kafka_topic='payments', value_format='JSON', partitions=1);",
            "CREATE TABLE shipping (id STRING PRIMARY KEY, carrier STRING) WITH (kafka_topic='shipping', value_format='JSON', partitions=1);",
            "CREATE STREAM paid AS SELECT o.id, o.item, p.cents, s.carrier \
             FROM orders o JOIN payments p WITHIN 10 SECONDS ON o.id = p.id \
             JOIN shipping s ON o.id = s.id;",
        ],
    );
    let out = run(
        &engine,
        &[
            record("shipping", "o1", Some(r#"{"CARRIER":"post"}"#), 0),
            record("orders", "o1", Some(r#"{"ITEM":"lamp"}"#), 1_000),
            // Paid within the window: joined, then the shipping row is looked up.
            record("payments", "o1", Some(r#"{"CENTS":2500}"#), 4_000),
            record("orders", "o2", Some(r#"{"ITEM":"desk"}"#), 5_000),
            // o2 is paid, but has no shipping row: the inner join drops it.
            record("payments", "o2", Some(r#"{"CENTS":9000}"#), 6_000),
            record("shipping", "o2", Some(r#"{"CARRIER":"van"}"#), 7_000),
            // Paid again, too late for o1's window (1 s + 10 s).
            record("payments", "o1", Some(r#"{"CENTS":100}"#), 12_000),
            // A second payment of o2 within its window finds the shipping row now.
            record("payments", "o2", Some(r#"{"CENTS":50}"#), 8_000),
        ],
    );
    assert_eq!(
        out,
        vec![
            row(
                "o1",
                r#"{"ITEM":"lamp","CENTS":2500,"CARRIER":"post"}"#,
                4_000
            ),
            row("o2", r#"{"ITEM":"desk","CENTS":50,"CARRIER":"van"}"#, 8_000),
        ]
    );
}

#[test]
fn n_way_joins_are_refused_as_ksqldb_refuses_them() {
    let refusal = |query: &str| {
        let mut statements = CLICKS_USERS_REGIONS.to_vec();
        statements.push(
            "CREATE TABLE prefs (user_id STRING PRIMARY KEY, theme STRING) WITH (kafka_topic='prefs', value_format='JSON', partitions=1);",
        );
        let mut engine = engine_on(Arc::new(MemoryCluster::default()), &statements);
        engine.execute(query).expect_err("refused").message
    };
    assert_eq!(
        refusal(
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN users u ON c.user_id = u.user_id \
             JOIN users v ON c.user_id = v.user_id;"
        ),
        "N-way joins do not support multiple occurrences of the same source. Source: 'USERS'"
    );
    assert_eq!(
        refusal(
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN users u ON c.user_id = u.user_id \
             JOIN prefs p ON c.user_id = u.user_id;"
        ),
        "A join criteria is expected to reference the source (`P`) in the FROM clause, instead \
         the right source references `U` and the left source references `C`"
    );
    assert_eq!(
        refusal(
            "CREATE TABLE x AS SELECT u.user_id, u.name, p.theme, r.label FROM users u \
             JOIN prefs p ON u.user_id = p.user_id JOIN regions r ON u.region_id = r.region_id;"
        ),
        "Invalid join condition: foreign-key table-table joins are not supported as part of \
         n-way joins. Got U.REGION_ID = R.REGION_ID."
    );
    assert_eq!(
        refusal(
            "CREATE STREAM x AS SELECT c.page, u.name, p.theme FROM clicks c \
             JOIN users u ON c.user_id = u.user_id JOIN prefs p ON c.user_id = p.user_id;"
        ),
        "The query used to build `X` must include the join expressions C.USER_ID, U.USER_ID or \
         P.USER_ID in its projection (eg, SELECT C.USER_ID...)."
    );
}
