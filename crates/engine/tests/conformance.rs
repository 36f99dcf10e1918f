//! ksqlDB's own query-validation cases, read from the shared corpus (test data under
//! Confluent's licence, never copied into the project), run through the engine's conformance
//! runner: each file must keep at least the pass count it reached, so a regression in the
//! engine's semantics or messages fails here.

use std::path::PathBuf;

use kafkaml_engine::conformance::{run_file, summarise};

/// The corpus sits beside the repository (`../shared` from its root), on CI as here.
fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/ksqldb-qtt/query-validation-tests");
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
    at_least("in.json", 46);
}

#[test]
fn binary_comparisons_and_collection_equality() {
    at_least("binary-comparison.json", 19);
}

#[test]
fn partition_by_single_and_several_columns() {
    at_least("partition-by.json", 76);
}

#[test]
fn casts_including_structs() {
    at_least("cast.json", 29);
}

#[test]
fn literal_overflow_is_refused_where_ksqldb_refuses_it() {
    at_least("literals.json", 9);
}

#[test]
fn projections_and_filters() {
    at_least("project-filter.json", 32);
}

#[test]
fn null_handling() {
    at_least("null.json", 22);
}

#[test]
fn delimited_format_and_its_options() {
    at_least("delimited.json", 40);
}

#[test]
fn columns_names_and_registry_inferred_schemas() {
    at_least("elements.json", 71);
}

#[test]
fn source_streams_are_read_only() {
    at_least("source-stream.json", 8);
}
