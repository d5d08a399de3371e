//! How long `cargo-ops-scan` takes on a generated service crate of at least 50,000 lines (issue
//! 15: "the scanner reads a 50k-line crate in under a second"). The whole process is timed, from
//! start to exit, as CI runs it.
//!
//! ```sh
//! cargo bench -p ops-scan --bench scan_speed                  # 50,000 lines, 10 runs
//! cargo bench -p ops-scan --bench scan_speed -- --lines 200000 --runs 5 --keep /tmp/corpus
//! ```
//!
//! The bench profile is the release profile, so this times the release binary. `--keep DIR`
//! leaves the generated crate in `DIR` to time it by other means
//! (`time target/release/cargo-ops-scan DIR`).

#[path = "../tests/corpus/mod.rs"]
mod corpus;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

struct Options {
    lines: usize,
    runs: usize,
    keep: Option<PathBuf>,
}

fn options() -> Options {
    let mut options = Options {
        lines: 50_000,
        runs: 10,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("`{name}` needs a value"))
        };
        match arg.as_str() {
            "--lines" => options.lines = value("--lines").parse().expect("--lines N"),
            "--runs" => options.runs = value("--runs").parse().expect("--runs N"),
            "--keep" => options.keep = Some(PathBuf::from(value("--keep"))),
            // `cargo bench` passes `--bench`; a name filter means nothing for one measurement.
            _ => {}
        }
    }
    options.runs = options.runs.max(1);
    options
}

fn main() {
    let options = options();
    let dir = options.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ops-scan-speed-{}", std::process::id()))
    });
    let corpus = corpus::generate(&dir, options.lines);
    let binary = env!("CARGO_BIN_EXE_cargo-ops-scan");

    let mut times = Vec::with_capacity(options.runs);
    // One unmeasured run first, so that every measured run finds the files in the page cache.
    for run in 0..=options.runs {
        let started = Instant::now();
        let output = Command::new(binary)
            .arg(&corpus.root)
            .args(["--format", "json"])
            .output()
            .expect("run cargo-ops-scan");
        let elapsed = started.elapsed();
        assert_eq!(output.status.code(), Some(1), "the corpus has findings");
        let value: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the report is JSON");
        let found = value["findings"].as_array().map_or(0, Vec::len);
        assert_eq!(
            found,
            corpus.marks.len(),
            "the scan finds the marked mistakes"
        );
        if run > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "ops-scan speed: {} lines in {} files, {} findings; {} runs of `cargo-ops-scan DIR \
         --format json`: min {}, median {}, max {} ({:.0} lines/s at the median; {} threads \
         available)",
        corpus.lines,
        corpus.files,
        corpus.marks.len(),
        times.len(),
        ms(times[0]),
        ms(median),
        ms(times[times.len() - 1]),
        corpus.lines as f64 / median.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    match options.keep {
        Some(dir) => println!("the corpus is kept in {}", dir.display()),
        None => corpus.remove(),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
