//! A stateful query stopped half-way and started again from its changelog (and its sink, for
//! pull queries) goes on exactly as one that never stopped: the same records out, the same
//! rows for pull queries.

use std::sync::Arc;

mod common;
use common::engine_on;
use kafkaml_engine::conformance::MemoryCluster;
use kafkaml_engine::engine::{Cluster, Engine};
use kafkaml_engine::topology::{InputRecord, OutputRecord};

const STATEMENTS: [&str; 2] = [
    "CREATE STREAM readings (car STRING KEY, v DOUBLE) WITH (kafka_topic='readings', value_format='JSON', partitions=1);",
    "CREATE TABLE per_car AS SELECT car, COUNT(*) AS n, AVG(v) AS mean, COLLECT_SET(v) AS seen \
     FROM readings WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY car HAVING COUNT(*) > 1;",
];

fn record(offset: i64) -> InputRecord {
    let car = ["a", "b", "c"][offset as usize % 3];
    InputRecord {
        topic: "readings".into(),
        partition: 0,
        offset,
        // Out of order within windows, some late for a window before.
        timestamp: offset * 1_700 - (offset % 4) * 3_000,
        key: Some(car.as_bytes().to_vec()),
        value: Some(format!("{{\"V\":{}}}", (offset * 7) % 11).into_bytes()),
    }
}

/// Runs `records` through the engine's one query, writing what it outputs to the cluster.
fn run(engine: &Engine, cluster: &MemoryCluster, records: &[InputRecord]) -> Vec<OutputRecord> {
    let query = engine.queries.values().next().expect("a query");
    let outputs = query.topology.lock().unwrap().process(records);
    cluster.produce(outputs.clone()).unwrap();
    outputs
}

fn sink_records(outputs: &[OutputRecord]) -> Vec<OutputRecord> {
    outputs
        .iter()
        .filter(|o| o.topic == "PER_CAR")
        .cloned()
        .collect()
}

/// An engine that runs all of `records` without stopping, and what it wrote.
fn uninterrupted(records: &[InputRecord]) -> (Engine, Vec<OutputRecord>) {
    let cluster = Arc::new(MemoryCluster::default());
    let engine = engine_on(cluster.clone(), &STATEMENTS);
    let outputs = run(&engine, &cluster, records);
    (engine, outputs)
}

/// An engine on `cluster` whose query keeps its changelog, and the changelog's name.
fn keeping_changelog(cluster: &Arc<MemoryCluster>) -> (Engine, String) {
    let engine = engine_on(cluster.clone(), &STATEMENTS);
    let query = engine.queries.values().next().expect("a query");
    let changelog = query.changelog_topic.clone().expect("a changelog");
    query.topology.lock().unwrap().keep_changelog(&changelog);
    (engine, changelog)
}

#[test]
fn a_restarted_aggregation_goes_on_as_one_that_never_stopped() {
    let records: Vec<InputRecord> = (0..60).map(record).collect();
    let (whole, all) = uninterrupted(&records);

    let cluster = Arc::new(MemoryCluster::default());
    let (first, changelog) = keeping_changelog(&cluster);
    let mut before = Vec::new();
    for chunk in records[..35].chunks(4) {
        before.extend(run(&first, &cluster, chunk));
    }
    assert!(
        before.iter().any(|o| o.topic == changelog),
        "the state went to the changelog"
    );

    // A new engine: the same statements, its state read back from the changelog and the sink.
    let second = restarted(&cluster, &changelog);
    let after = run(&second, &cluster, &records[35..]);
    let mut resumed = sink_records(&before);
    resumed.extend(sink_records(&after));
    assert_eq!(resumed, sink_records(&all));

    let pull = "SELECT * FROM per_car WHERE car = 'a';";
    let mut whole = whole;
    let mut second = second;
    assert_eq!(
        second.pull_query(pull).unwrap(),
        whole.pull_query(pull).unwrap()
    );
    assert!(!whole.pull_query(pull).unwrap().rows.is_empty());
}

/// A new engine on `cluster`: the same statements, its query's state read back from the
/// changelog and the sink.
fn restarted(cluster: &Arc<MemoryCluster>, changelog: &str) -> Engine {
    let engine = engine_on(cluster.clone(), &STATEMENTS);
    {
        let query = engine.queries.values().next().unwrap();
        let mut topology = query.topology.lock().unwrap();
        topology.keep_changelog(changelog);
        for topic in topology.restore_topics(true) {
            for (offset, output) in cluster.records(&topic).into_iter().enumerate() {
                topology
                    .restore(&InputRecord {
                        topic: topic.clone(),
                        partition: 0,
                        offset: offset as i64,
                        timestamp: output.timestamp,
                        key: output.key,
                        value: output.value,
                    })
                    .expect("the changelog reads back");
            }
        }
        topology.finish_restore();
    }
    engine
}

#[test]
fn a_deferred_changelog_writes_each_change_once_per_commit_and_restores_alike() {
    let records: Vec<InputRecord> = (0..60).map(record).collect();
    let (_, all) = uninterrupted(&records);

    let cluster = Arc::new(MemoryCluster::default());
    let (first, changelog) = keeping_changelog(&cluster);
    let query = first.queries.values().next().unwrap();
    query.topology.lock().unwrap().defer_changelog();
    let mut before = Vec::new();
    let mut written = Vec::new();
    // A commit after every third batch of four records, and at the end (the runtime's stop).
    for (index, chunk) in records[..35].chunks(4).enumerate() {
        let outputs = run(&first, &cluster, chunk);
        assert!(outputs.iter().all(|o| o.topic != changelog), "deferred");
        before.extend(outputs);
        if index % 3 == 2 || index == 8 {
            let mut topology = query.topology.lock().unwrap();
            assert!(topology.changelog_pending());
            let state = topology.take_changelog_records();
            assert!(!topology.changelog_pending());
            let mut keys: Vec<_> = state.iter().map(|o| o.key.clone()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), state.len(), "each group once per commit");
            written.extend(state.clone());
            cluster.produce(state).unwrap();
        }
    }
    // The same batches with the state written batch by batch.
    let other = Arc::new(MemoryCluster::default());
    let (batch_by_batch, _) = keeping_changelog(&other);
    let every_batch = records[..35]
        .chunks(4)
        .flat_map(|chunk| run(&batch_by_batch, &other, chunk))
        .filter(|o| o.topic == changelog)
        .count();
    assert!(
        written.len() < every_batch,
        "{} records when deferred, {every_batch} batch by batch",
        written.len()
    );

    let second = restarted(&cluster, &changelog);
    let after = run(&second, &cluster, &records[35..]);
    let mut resumed = sink_records(&before);
    resumed.extend(sink_records(&after));
    assert_eq!(resumed, sink_records(&all));
}

#[test]
fn a_damaged_changelog_is_an_error_that_names_where() {
    let cluster = Arc::new(MemoryCluster::default());
    let engine = engine_on(cluster, &STATEMENTS);
    let query = engine.queries.values().next().unwrap();
    let changelog = query.changelog_topic.clone().unwrap();
    let mut topology = query.topology.lock().unwrap();
    topology.keep_changelog(&changelog);
    let error = topology
        .restore(&InputRecord {
            topic: changelog.clone(),
            partition: 0,
            offset: 7,
            timestamp: 0,
            key: Some(b"Gxx".to_vec()),
            value: Some(vec![1, 0x0D, 9]),
        })
        .unwrap_err();
    assert!(error.contains(&format!("{changelog}-0@7")), "{error}");
}
