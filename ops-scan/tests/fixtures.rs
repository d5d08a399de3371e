//! The fixture crate `tests/fixtures/shop`: every true positive is marked `//~ rule` on the line
//! of its finding, every near miss is unmarked, and the scan must find exactly the marked ones.
//! Lines with `// ops-scan: allow(rule)` (or below one alone on its line) are the suppressed set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ops_scan::Rule;

/// `(file, line, rule)` triples.
type Marks = BTreeSet<(String, usize, String)>;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop")
}

/// `(file, line, rule)` for every `//~ rule` marker, and for every `allow(rule)` comment (the
/// line it covers).
fn expected() -> (Marks, Marks) {
    let mut findings = BTreeSet::new();
    let mut suppressed = BTreeSet::new();
    let src = fixture().join("src");
    for entry in std::fs::read_dir(&src).expect("fixture src") {
        let path = entry.expect("entry").path();
        let file = format!("src/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).expect("read fixture");
        for (index, line) in text.lines().enumerate() {
            if let Some((_, rule)) = line.split_once("//~ ") {
                findings.insert((file.clone(), index + 1, rule.trim().to_owned()));
            }
            if let Some((code, comment)) = line.split_once("// ops-scan: allow(") {
                let rule = comment.split(')').next().unwrap().to_owned();
                let covered = if code.trim().is_empty() {
                    index + 2
                } else {
                    index + 1
                };
                suppressed.insert((file.clone(), covered, rule));
            }
        }
    }
    (findings, suppressed)
}

#[test]
fn finds_exactly_the_marked_findings() {
    let report = ops_scan::scan(&fixture()).expect("the fixture is a crate");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let found: Marks = report
        .findings
        .iter()
        .map(|f| (f.file.clone(), f.line, f.rule.name().to_owned()))
        .collect();
    let (expected, expected_suppressed) = expected();
    let missing: Vec<_> = expected.difference(&found).collect();
    let unexpected: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing (false negatives): {missing:#?}\nunexpected (false positives): {unexpected:#?}\n\n{}",
        ops_scan::report::human(&report)
    );
    // One finding per marked line: no rule reports the same mistake twice.
    assert_eq!(report.findings.len(), expected.len());

    let suppressed: Marks = report
        .suppressed
        .iter()
        .map(|s| {
            (
                s.finding.file.clone(),
                s.finding.line,
                s.finding.rule.name().to_owned(),
            )
        })
        .collect();
    assert_eq!(suppressed, expected_suppressed);
    assert_eq!(report.exit_code(), 1);

    // Every rule has true positives in the fixture, and the counts are as marked.
    let counts = report.counts();
    for (rule, count) in &counts {
        let marked = expected.iter().filter(|(_, _, r)| r == rule.name()).count();
        assert_eq!(*count, marked, "{rule}");
        assert!(*count >= 2, "{rule} needs at least two true positives");
    }
    eprintln!(
        "fixture counts: {counts:?}, suppressed {}",
        report.suppressed.len()
    );
}

#[test]
fn findings_carry_position_message_and_fix() {
    let report = ops_scan::scan(&fixture()).expect("scan");
    let first = report
        .findings
        .iter()
        .find(|f| f.file == "src/unfinished_session.rs" && f.rule == Rule::UnfinishedSession)
        .expect("a finding");
    // `    let session = db.session().await?;`: the binding's name, at column 9.
    assert_eq!((first.line, first.column), (7, 9));
    assert!(first.message.contains("`session`"), "{}", first.message);
    assert!(
        first.message.contains("the `return` at 10:9"),
        "{}",
        first.message
    );
    assert!(first.help.contains("commit"), "{}", first.help);

    let text = ops_scan::report::human(&report);
    assert!(
        text.contains("warning[unfinished-session]: session `session`"),
        "{text}"
    );
    assert!(
        text.contains(" --> src/unfinished_session.rs:7:9"),
        "{text}"
    );
    assert!(text.contains("= help: "), "{text}");
    // The summary lists every suppressed finding with its reason.
    assert!(
        text.contains("src/suppressed.rs:9:9 unfinished-session: the leak detector's test"),
        "{text}"
    );
    assert!(text.contains("3 suppressed:"), "{text}");
}
