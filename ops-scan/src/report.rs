//! Rendering a [`Report`]: the compiler-style text for people, JSON for tools.

use std::fmt::Write as _;

use crate::{Finding, Report, Rule};

/// The report as text, in the shape of compiler diagnostics, ending with a summary that lists
/// the suppressed findings.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for error in &report.errors {
        let _ = writeln!(out, "error: {}", error.message);
        let _ = writeln!(
            out,
            "  --> {}",
            position(&error.file, error.line, error.column)
        );
        out.push('\n');
    }
    for finding in &report.findings {
        diagnostic(&mut out, finding);
    }
    for warning in &report.warnings {
        let _ = writeln!(
            out,
            "warning: {}\n  --> {}\n",
            warning.message,
            position(&warning.file, warning.line, warning.column)
        );
    }
    summary(&mut out, report);
    out
}

fn position(file: &str, line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => file.to_owned(),
        (_, 0) => format!("{file}:{line}"),
        _ => format!("{file}:{line}:{column}"),
    }
}

fn diagnostic(out: &mut String, finding: &Finding) {
    let gutter = finding.line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "warning[{}]: {}", finding.rule, finding.message);
    let _ = writeln!(
        out,
        "{pad}--> {}",
        position(&finding.file, finding.line, finding.column)
    );
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{} | {}", finding.line, finding.source_line);
    // Underline under the same characters, keeping tabs so the carets line up.
    let lead: String = finding
        .source_line
        .chars()
        .take(finding.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(finding.width.max(1)));
    let _ = writeln!(out, "{pad} = help: {}", finding.help);
    let _ = writeln!(
        out,
        "{pad} = note: `cargo ops-scan explain {}` for details; `// ops-scan: allow({})` on the \
         line to accept it",
        finding.rule, finding.rule
    );
    out.push('\n');
}

fn summary(out: &mut String, report: &Report) {
    let counts: Vec<String> = report
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(rule, n)| format!("{rule}: {n}"))
        .collect();
    let _ = write!(
        out,
        "ops-scan: {} finding{} in {} files ({} lines)",
        report.findings.len(),
        plural(report.findings.len()),
        report.files_scanned,
        report.lines_scanned
    );
    if !counts.is_empty() {
        let _ = write!(out, " [{}]", counts.join(", "));
    }
    if !report.errors.is_empty() {
        let _ = write!(
            out,
            "; {} file{} could not be scanned",
            report.errors.len(),
            plural(report.errors.len())
        );
    }
    let _ = writeln!(
        out,
        "; {} suppressed{}",
        report.suppressed.len(),
        if report.suppressed.is_empty() {
            ""
        } else {
            ":"
        }
    );
    for suppressed in &report.suppressed {
        let f = &suppressed.finding;
        let _ = write!(out, "  {} {}", position(&f.file, f.line, f.column), f.rule);
        match &suppressed.reason {
            Some(reason) => {
                let _ = writeln!(out, ": {reason}");
            }
            None => out.push('\n'),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The report as one JSON object: `findings`, `suppressed`, `errors`, `warnings`, the counts by
/// rule and the exit code.
pub fn json(report: &Report) -> String {
    let counts: serde_json::Map<String, serde_json::Value> = report
        .counts()
        .into_iter()
        .map(|(rule, n)| (rule.name().to_owned(), n.into()))
        .collect();
    let value = serde_json::json!({
        "root": report.root.display().to_string(),
        "files_scanned": report.files_scanned,
        "lines_scanned": report.lines_scanned,
        "findings": report.findings,
        "suppressed": report.suppressed,
        "errors": report.errors,
        "warnings": report.warnings,
        "counts": counts,
        "exit_code": report.exit_code(),
    });
    serde_json::to_string_pretty(&value).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// The page `explain RULE` prints.
pub fn explain(rule: Rule) -> String {
    format!(
        "{}: {}\n\n{}\n",
        rule.name(),
        rule.summary(),
        rule.explanation()
    )
}

/// The list `explain` prints without a rule.
pub fn rule_list() -> String {
    let mut out = String::from("rules:\n");
    for rule in Rule::ALL {
        let _ = writeln!(out, "  {:<26} {}", rule.name(), rule.summary());
    }
    out.push_str("\n`cargo ops-scan explain RULE` prints a rule's page.\n");
    out
}
