//! `ops-scan`: a static scanner for session-handling mistakes in code that uses SeaORM and ops.
//!
//! It reads every `.rs` file of a crate or workspace with `syn` and reports each finding with its
//! `file:line:col`, the rule, what is wrong and the fix. Run it as `cargo ops-scan [PATH]`; see
//! [`Rule`] for the rules and `cargo ops-scan explain RULE` for each rule's page.
//!
//! ```no_run
//! let report = ops_scan::scan(std::path::Path::new(".")).expect("a crate");
//! for finding in &report.findings {
//!     println!("{}:{}:{} {}", finding.file, finding.line, finding.column, finding.rule);
//! }
//! ```

#![warn(missing_docs)]

mod analyze;
pub mod report;
mod rules;
mod suppress;
mod workspace;

use std::path::{Path, PathBuf};

pub use rules::Rule;
pub use workspace::ScanError;

/// One finding: where, which rule, what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule's name, as in `// ops-scan: allow(..)`.
    pub rule: Rule,
    /// The file, relative to the scanned root, with `/` separators.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Columns to underline on the line.
    #[serde(skip)]
    pub width: usize,
    /// What is wrong.
    pub message: String,
    /// The fix.
    pub help: String,
    /// The source line, for the report.
    #[serde(skip)]
    pub source_line: String,
}

/// A finding silenced by a `// ops-scan: allow(rule)` comment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Suppressed {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// The text after the `allow(..)`, when the comment gives one.
    pub reason: Option<String>,
}

/// A file the scanner could not read or parse, or a suppression naming no rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InputProblem {
    /// The file, relative to the scanned root.
    pub file: String,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The result of a scan.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// The scanned root.
    pub root: PathBuf,
    /// Files read.
    pub files_scanned: usize,
    /// Lines read.
    pub lines_scanned: usize,
    /// Findings, by file then position.
    pub findings: Vec<Finding>,
    /// Findings silenced by comments, by file then position.
    pub suppressed: Vec<Suppressed>,
    /// Files that could not be read or parsed. Any of these makes the exit code 2.
    pub errors: Vec<InputProblem>,
    /// `allow(..)` comments naming no rule: reported, but they do not change the exit code.
    pub warnings: Vec<InputProblem>,
}

impl Report {
    /// The process exit code: 2 on bad input, 1 with findings, 0 when clean.
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if !self.findings.is_empty() {
            1
        } else {
            0
        }
    }

    /// How many findings each rule has, for every rule.
    pub fn counts(&self) -> Vec<(Rule, usize)> {
        Rule::ALL
            .into_iter()
            .map(|rule| {
                (
                    rule,
                    self.findings.iter().filter(|f| f.rule == rule).count(),
                )
            })
            .collect()
    }
}

/// Scans the crate or workspace at `path` (a directory with a `Cargo.toml`) or a single `.rs`
/// file.
///
/// Files that do not parse are reported in [`Report::errors`]; the others are still scanned.
///
/// # Errors
///
/// When `path` is neither a crate, a workspace nor a Rust file, or its `Cargo.toml` cannot be
/// read.
pub fn scan(path: &Path) -> Result<Report, ScanError> {
    let target = workspace::discover(path)?;
    let results = scan_files(&target.root, &target.files);
    let mut report = Report {
        root: target.root.clone(),
        ..Report::default()
    };
    for result in results {
        report.files_scanned += 1;
        report.lines_scanned += result.lines;
        report.findings.extend(result.findings);
        report.suppressed.extend(result.suppressed);
        report.errors.extend(result.errors);
        report.warnings.extend(result.warnings);
    }
    Ok(report)
}

/// Scans one source text as if it were the file `name`.
pub fn scan_source(name: &str, source: &str) -> Report {
    let result = scan_text(name, source);
    Report {
        root: PathBuf::from(name),
        files_scanned: 1,
        lines_scanned: result.lines,
        findings: result.findings,
        suppressed: result.suppressed,
        errors: result.errors,
        warnings: result.warnings,
    }
}

struct FileResult {
    lines: usize,
    findings: Vec<Finding>,
    suppressed: Vec<Suppressed>,
    errors: Vec<InputProblem>,
    warnings: Vec<InputProblem>,
}

/// Scans the files on every core; the results come back in the files' order.
fn scan_files(root: &Path, files: &[PathBuf]) -> Vec<FileResult> {
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|f| scan_file(root, f)).collect()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                // A panic in the analysis is a bug of the scanner; it must not hide the other
                // files' results, so it is reported as an input problem of that chunk.
                handle.join().unwrap_or_else(|_| {
                    vec![FileResult {
                        lines: 0,
                        findings: Vec::new(),
                        suppressed: Vec::new(),
                        errors: vec![InputProblem {
                            file: root.display().to_string(),
                            line: 0,
                            column: 0,
                            message: "internal error of ops-scan while analyzing these files; \
                                      please report it"
                                .to_owned(),
                        }],
                        warnings: Vec::new(),
                    }]
                })
            })
            .collect::<Vec<_>>()
    })
}

fn relative(root: &Path, file: &Path) -> String {
    let shown = file.strip_prefix(root).unwrap_or(file);
    shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn scan_file(root: &Path, file: &Path) -> FileResult {
    let name = if file == root {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        relative(root, file)
    };
    match std::fs::read_to_string(file) {
        Ok(source) => scan_text(&name, &source),
        Err(err) => FileResult {
            lines: 0,
            findings: Vec::new(),
            suppressed: Vec::new(),
            errors: vec![InputProblem {
                file: name,
                line: 0,
                column: 0,
                message: format!("cannot read the file: {err}"),
            }],
            warnings: Vec::new(),
        },
    }
}

fn scan_text(name: &str, source: &str) -> FileResult {
    let lines: Vec<&str> = source.lines().collect();
    let mut result = FileResult {
        lines: lines.len(),
        findings: Vec::new(),
        suppressed: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let file = match syn::parse_file(source) {
        Ok(file) => file,
        Err(err) => {
            let (line, column) = analyze::location(err.span());
            result.errors.push(InputProblem {
                file: name.to_owned(),
                line,
                column,
                message: format!("cannot parse the file: {err}; fix the syntax error first"),
            });
            return result;
        }
    };
    let allows = suppress::Allows::read(source);
    for unknown in &allows.unknown {
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        result.warnings.push(InputProblem {
            file: name.to_owned(),
            line: unknown.line,
            column: 0,
            message: format!(
                "`allow({})` names no rule of ops-scan; the rules are {}",
                unknown.name,
                names.join(", ")
            ),
        });
    }
    for raw in analyze::analyze_file(&file) {
        let finding = Finding {
            rule: raw.rule,
            file: name.to_owned(),
            line: raw.line,
            column: raw.column,
            width: raw.width,
            message: raw.message,
            help: raw.help,
            source_line: lines
                .get(raw.line.saturating_sub(1))
                .map(|l| (*l).to_owned())
                .unwrap_or_default(),
        };
        match allows.allowing(finding.rule, finding.line) {
            Some(allow) => result.suppressed.push(Suppressed {
                finding,
                reason: allow.reason.clone(),
            }),
            None => result.findings.push(finding),
        }
    }
    result
}
