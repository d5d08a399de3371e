//! The scanner on a generated service crate (`corpus/mod.rs`): every marked mistake is found,
//! nothing else is, and the binary agrees with the library. The speed on 50,000 lines is measured
//! by `cargo bench -p ops-scan --bench scan_speed` (release build), not asserted here: test
//! machines are shared and their times are noise.

mod corpus;

use std::process::Command;

#[test]
fn finds_exactly_the_marked_mistakes_in_a_generated_crate() {
    let dir = std::env::temp_dir().join(format!("ops-scan-corpus-{}", std::process::id()));
    let corpus = corpus::generate(&dir, 8_000);
    assert!(corpus.lines >= 8_000, "{} lines", corpus.lines);

    let report = ops_scan::scan(&corpus.root).expect("the corpus is a crate");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files_scanned, corpus.files);
    assert_eq!(report.lines_scanned, corpus.lines);
    let found: corpus::Marks = report
        .findings
        .iter()
        .map(|f| (f.file.clone(), f.line, f.rule.name().to_owned()))
        .collect();
    let missing: Vec<_> = corpus.marks.difference(&found).collect();
    let unexpected: Vec<_> = found.difference(&corpus.marks).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing: {missing:#?}\nunexpected: {unexpected:#?}\n\n{}",
        ops_scan::report::human(&report)
    );
    assert_eq!(report.findings.len(), corpus.marks.len());
    // Every rule has findings in the corpus.
    for (rule, count) in report.counts() {
        assert!(count > 0, "no `{rule}` finding in the corpus");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_cargo-ops-scan"))
        .arg(&corpus.root)
        .args(["--format", "json"])
        .output()
        .expect("run cargo-ops-scan");
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        value["findings"].as_array().map(Vec::len),
        Some(corpus.marks.len())
    );
    corpus.remove();
}
