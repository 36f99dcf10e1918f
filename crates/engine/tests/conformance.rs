//! ksqlDB's own query-validation cases, read from the shared corpus (test data under
//! Confluent's licence, never copied into the project), run through the engine's conformance
//! runner: each file must keep at least the pass count it reached, so a regression in the
//! engine's semantics or messages fails here.

use std::path::PathBuf;

use kafkaml_engine::conformance::{run_file, summarise};

/// The corpus sits beside the repository (`../shared` from its root), on CI as here.
fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ksqldb-qtt");
    assert!(
        dir.is_dir(),
        "ksqlDB's conformance corpus is missing: expected it at {} (the shared fixtures \
         directory next to the repository)",
        dir.display()
    );
    dir
}

/// Runs one corpus file and checks its passes; prints the failures when there are too few.
fn at_least(file: &str, minimum: usize) {
    let path = corpus().join(file);
    let reports = run_file(&path, file);
    let (passed, failed, out_of_scope) = summarise(&reports).get(file).copied().unwrap_or_default();
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed() && !r.deferred() && !r.unsupported())
        .map(|r| format!("  {} :: {}", r.name, r.reason))
        .collect();
    assert!(
        passed >= minimum,
        "{file}: {passed} passed (at least {minimum} expected), {failed} failed, \
         {out_of_scope} deferred/unsupported:\n{}",
        failures.join("\n")
    );
}

#[test]
fn in_lists_coerce_as_ksqldb() {
    at_least("query-validation-tests/in.json", 46);
}

#[test]
fn binary_comparisons_and_collection_equality() {
    at_least("query-validation-tests/binary-comparison.json", 19);
}

#[test]
fn partition_by_single_and_several_columns() {
    at_least("query-validation-tests/partition-by.json", 76);
}

#[test]
fn casts_including_structs() {
    at_least("query-validation-tests/cast.json", 29);
}

#[test]
fn literal_overflow_is_refused_where_ksqldb_refuses_it() {
    at_least("query-validation-tests/literals.json", 9);
}

#[test]
fn projections_and_filters() {
    at_least("query-validation-tests/project-filter.json", 32);
}

#[test]
fn null_handling() {
    at_least("query-validation-tests/null.json", 22);
}

#[test]
fn delimited_format_and_its_options() {
    at_least("query-validation-tests/delimited.json", 40);
}

#[test]
fn columns_names_and_registry_inferred_schemas() {
    at_least("query-validation-tests/elements.json", 71);
}

#[test]
fn source_streams_are_read_only() {
    at_least("query-validation-tests/source-stream.json", 8);
}

#[test]
fn insert_into_select_widens_to_the_sink() {
    at_least("query-validation-tests/insert-into.json", 10);
}

#[test]
fn record_timestamps_from_columns() {
    at_least("query-validation-tests/timestamp-extractor.json", 9);
}

#[test]
fn temporal_types() {
    at_least("query-validation-tests/date.json", 18);
    at_least("query-validation-tests/time.json", 18);
    at_least("query-validation-tests/timestamp.json", 17);
}

#[test]
fn insert_values_through_the_rest_cases() {
    at_least("rest-query-validation-tests/insert-values.json", 46);
}

#[test]
fn push_query_headers_and_rows() {
    at_least("rest-query-validation-tests/push-queries.json", 20);
}
