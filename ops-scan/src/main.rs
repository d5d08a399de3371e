//! `cargo ops-scan`: scans a crate or workspace for session-handling mistakes.
//!
//! Exit codes: 0 clean, 1 findings, 2 bad input (not a crate, a file that does not parse, an
//! unknown option).

use std::path::PathBuf;
use std::process::ExitCode;

use ops_scan::{Rule, report};

const USAGE: &str = "\
usage: cargo ops-scan [PATH] [--format human|json]
       cargo ops-scan explain [RULE]

Scans the crate or workspace at PATH (default: the current directory) for session-handling
mistakes. Exit code 0 when clean, 1 with findings, 2 on bad input.

options:
  --format human|json   the report's form (default human)
  -h, --help            this text
";

enum Command {
    Scan { path: PathBuf, json: bool },
    Explain(Option<String>),
    Help,
}

fn parse(mut args: Vec<String>) -> Result<Command, String> {
    // Cargo runs `cargo-ops-scan ops-scan ARGS` for `cargo ops-scan ARGS`.
    if args.first().map(String::as_str) == Some("ops-scan") {
        args.remove(0);
    }
    if args.first().map(String::as_str) == Some("explain") {
        return match args.len() {
            1 => Ok(Command::Explain(None)),
            2 => Ok(Command::Explain(Some(args[1].clone()))),
            _ => Err("`explain` takes one rule name".to_owned()),
        };
    }
    let mut path = None;
    let mut json = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--format" => match args.next().as_deref() {
                Some("json") => json = true,
                Some("human") => json = false,
                other => {
                    return Err(format!(
                        "`--format` takes `human` or `json`, not `{}`",
                        other.unwrap_or("")
                    ));
                }
            },
            "--format=json" => json = true,
            "--format=human" => json = false,
            flag if flag.starts_with('-') => {
                return Err(format!(
                    "unknown option `{flag}`; see `cargo ops-scan --help`"
                ));
            }
            _ if path.is_some() => {
                return Err(format!(
                    "one path only, but `{arg}` is a second; scan a workspace's root to scan \
                     all its crates"
                ));
            }
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    Ok(Command::Scan {
        path: path.unwrap_or_else(|| PathBuf::from(".")),
        json,
    })
}

fn main() -> ExitCode {
    let command = match parse(std::env::args().skip(1).collect()) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Explain(None) => {
            print!("{}", report::rule_list());
            ExitCode::SUCCESS
        }
        Command::Explain(Some(name)) => match Rule::from_name(&name) {
            Some(rule) => {
                print!("{}", report::explain(rule));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no rule named `{name}`\n\n{}", report::rule_list());
                ExitCode::from(2)
            }
        },
        Command::Scan { path, json } => match ops_scan::scan(&path) {
            Ok(scan) => {
                if json {
                    println!("{}", report::json(&scan));
                } else {
                    print!("{}", report::human(&scan));
                }
                ExitCode::from(u8::try_from(scan.exit_code()).unwrap_or(2))
            }
            Err(err) => {
                if json {
                    let value = serde_json::json!({ "error": err.to_string(), "exit_code": 2 });
                    println!("{value}");
                } else {
                    eprintln!("error: {err}");
                }
                ExitCode::from(2)
            }
        },
    }
}
