//! Runs ksqlDB's conformance cases against the engine from the command line (a developer's
//! loop; users run `python -m kafkaml.ksql.conformance`): `cargo run -p kafkaml-engine
//! --example conformance -- FILE_OR_DIR... [-v]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let paths: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let files = kafkaml_engine::conformance::corpus_files(&paths);
    let mut all = Vec::new();
    for (path, display) in files {
        let reports = kafkaml_engine::conformance::run_file(&path, &display);
        for report in &reports {
            if !report.passed() && (verbose || !(report.deferred() || report.unsupported())) {
                println!(
                    "FAIL {} :: {} :: {}",
                    report.file, report.name, report.reason
                );
            }
        }
        all.extend(reports);
    }
    let mut totals = (0, 0, 0);
    for (file, (passed, failed, out)) in kafkaml_engine::conformance::summarise(&all) {
        println!("{file}: {passed} passed, {failed} failed, {out} deferred/unsupported");
        totals = (totals.0 + passed, totals.1 + failed, totals.2 + out);
    }
    println!(
        "{} passed, {} failed ({} deferred or unsupported)",
        totals.0, totals.1, totals.2
    );
}
