//! The binary as CI runs it: exit codes, `--format json`, `explain` and bad input. A generated
//! crate at scale is `tests/scale.rs`; the speed on 50,000 lines is `benches/scan_speed.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cargo-ops-scan"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop")
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run cargo-ops-scan");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A fresh directory under the target directory's temp space.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ops-scan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("scratch dir");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"scratch\"\nversion = \"0.0.0\"\n",
    )
    .expect("manifest");
    dir
}

#[test]
fn exit_one_with_findings_and_json_for_tools() {
    let (code, stdout, _) = run(bin().arg(fixture()).args(["--format", "json"]));
    assert_eq!(code, 1);
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let findings = value["findings"].as_array().expect("findings");
    assert!(!findings.is_empty());
    let first = &findings[0];
    for key in ["rule", "file", "line", "column", "message", "help"] {
        assert!(!first[key].is_null(), "{key} missing in {first}");
    }
    assert_eq!(value["exit_code"], 1);
    assert_eq!(value["suppressed"].as_array().map(Vec::len), Some(3));
    assert!(value["suppressed"][0]["reason"].is_string());
    assert!(value["counts"]["unfinished-session"].as_u64().unwrap() > 0);
}

#[test]
fn cargo_subcommand_form_and_clean_exit() {
    let dir = scratch("clean");
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub async fn ok(db: &ops_sea::Db) -> Result<(), ops_sea::OpsError> {\n    \
         let s = db.session().await?;\n    s.commit().await\n}\n",
    )
    .unwrap();
    // `cargo ops-scan PATH` runs `cargo-ops-scan ops-scan PATH`.
    let (code, stdout, stderr) = run(bin().arg("ops-scan").arg(&dir));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("ops-scan: 0 findings in 1 files"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_exits_two_without_panicking() {
    // Not a crate.
    let empty = std::env::temp_dir().join(format!("ops-scan-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, stderr) = run(bin().arg(&empty));
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a crate"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, _, stderr) = run(bin().arg(empty.join("nope")));
    assert_eq!(code, 2);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // A file that does not parse: reported with its position, the other files still scanned.
    let dir = scratch("broken");
    std::fs::write(dir.join("src/lib.rs"), "pub mod good;\nfn broken( {\n").unwrap();
    std::fs::write(
        dir.join("src/good.rs"),
        "async fn f(db: &Db) { let s = db.session().await.unwrap(); std::mem::forget(s); }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(bin().arg(&dir));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.contains("error: cannot parse the file"), "{stdout}");
    assert!(stdout.contains("--> src/lib.rs:2:"), "{stdout}");
    assert!(stdout.contains("warning[forgotten-session]"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A bad option and a bad setting.
    let (code, _, stderr) = run(bin().arg("--frobnicate"));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown option `--frobnicate`"), "{stderr}");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"x\"\n[package.metadata.ops-scan]\nexclud = []\n",
    )
    .unwrap();
    let (code, _, stderr) = run(bin().arg(&dir));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown key `exclud`"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn explain_prints_each_rule_page() {
    for rule in ops_scan::Rule::ALL {
        let (code, stdout, _) = run(bin().args(["explain", rule.name()]));
        assert_eq!(code, 0);
        assert!(stdout.starts_with(rule.name()), "{stdout}");
        assert!(stdout.contains("Fix:"), "{stdout}");
        assert!(stdout.contains("Not flagged:"), "{stdout}");
    }
    let (code, stdout, _) = run(bin().arg("explain"));
    assert_eq!(code, 0);
    assert!(stdout.contains("session-held-across-io"));
    let (code, _, stderr) = run(bin().args(["explain", "nope"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("no rule named `nope`"));
}

/// Every rule's page is in the README, so `explain` and the README cannot drift apart.
#[test]
fn readme_carries_every_page() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("ops-scan/README.md");
    for rule in ops_scan::Rule::ALL {
        assert!(
            readme.contains(rule.explanation()),
            "README.md lacks the page of {rule}; copy `cargo ops-scan explain {rule}`"
        );
    }
}

/// The examples, tests and benches of this workspace scan clean: every finding there is a
/// deliberate test of a mistake and carries an `allow` comment with its reason.
#[test]
fn this_workspace_scans_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    for member in ["examples", "tests", "benches"] {
        let report = ops_scan::scan(&root.join(member)).expect("a workspace member");
        assert!(
            report.findings.is_empty() && report.errors.is_empty(),
            "{member}:\n{}",
            ops_scan::report::human(&report)
        );
        assert!(
            report.files_scanned > 0,
            "{member}: {}",
            report.files_scanned
        );
    }
}
