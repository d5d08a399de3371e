//! Load under concurrency: `tasks` tasks call one operation in a loop for a fixed time, and the
//! contenders of a comparison take turns in rounds whose order rotates.
//!
//! Why rounds and rotation: on a 2-core machine shared with other work, throughput drifts by tens
//! of percent within a minute, and whichever contender runs right after another pool's loop pays
//! for that pool's background work (its release tasks, its idle connections waking up). Running
//! every contender once per round, in an order rotated each round, spreads both effects evenly;
//! the median over rounds is then robust to a round that a neighbour's build disturbed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The future one call of an operation returns.
pub type OpFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// An operation: called with a sequence number (to pick a key), run by many tasks at once.
pub type Op = Arc<dyn Fn(u64) -> OpFuture + Send + Sync>;

/// Wraps an async closure as an [`Op`].
pub fn op<F, Fut>(f: F) -> Op
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |n| Box::pin(f(n)) as OpFuture)
}

/// One contender of a comparison.
#[derive(Clone)]
pub struct Contender {
    /// The name reports use.
    pub name: String,
    /// What it runs.
    pub op: Op,
}

impl std::fmt::Debug for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Contender {
    /// A contender named `name` running `op`.
    pub fn new(name: impl Into<String>, op: Op) -> Contender {
        Contender {
            name: name.into(),
            op,
        }
    }
}

/// What one timed run of one contender did.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Calls that succeeded.
    pub ops: u64,
    /// Calls that failed.
    pub errors: u64,
    /// The first error's message, if any.
    pub first_error: Option<String>,
    /// From the start until the last task stopped.
    pub elapsed: Duration,
    /// The latency of every successful call, in nanoseconds.
    pub latencies_ns: Vec<u64>,
}

impl Run {
    /// Successful calls per second.
    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Runs `op` from `tasks` concurrent tasks for `duration`. A task starts no call after the
/// deadline, and the run ends when every task's last call has returned.
pub async fn drive(op: &Op, tasks: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let sequence = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let op = Arc::clone(op);
        let sequence = Arc::clone(&sequence);
        handles.push(tokio::spawn(async move {
            let mut run = Run::default();
            loop {
                let begun = Instant::now();
                if begun >= deadline {
                    break;
                }
                let n = sequence.fetch_add(1, Ordering::Relaxed);
                match op(n).await {
                    Ok(()) => {
                        run.ops += 1;
                        run.latencies_ns
                            .push(u64::try_from(begun.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for handle in handles {
        let run = handle.await.expect("a load task panicked");
        total.ops += run.ops;
        total.errors += run.errors;
        if total.first_error.is_none() {
            total.first_error = run.first_error;
        }
        total.latencies_ns.extend(run.latencies_ns);
    }
    total.elapsed = started.elapsed();
    total
}

/// The rounds of one contender, summarized.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The contender's name.
    pub name: String,
    /// Throughput of each round, in the order the rounds ran.
    pub throughputs: Vec<f64>,
    /// The median of `throughputs`.
    pub throughput: f64,
    /// Median latency over every call of every round.
    pub p50: Duration,
    /// 99th percentile latency over every call of every round.
    pub p99: Duration,
    /// Failed calls over every round.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// How a comparison is run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Length of one contender's turn.
    pub round: Duration,
    /// Turns per contender.
    pub rounds: usize,
    /// Untimed run of each contender before the first round: opens connections, prepares
    /// statements.
    pub warm_up: Duration,
    /// Pause between two turns, so that the previous pool's release tasks finish outside the
    /// next contender's time.
    pub pause: Duration,
}

/// Runs every contender `plan.rounds` times, rotating the order each round (round `r` starts
/// with contender `r mod n`), and summarizes each.
pub async fn compare(contenders: &[Contender], plan: Plan) -> Vec<Summary> {
    let n = contenders.len();
    for contender in contenders {
        let _ = drive(&contender.op, plan.tasks, plan.warm_up).await;
        tokio::time::sleep(plan.pause).await;
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); n];
    for round in 0..plan.rounds {
        for i in 0..n {
            let index = (round + i) % n;
            let run = drive(&contenders[index].op, plan.tasks, plan.round).await;
            runs[index].push(run);
            tokio::time::sleep(plan.pause).await;
        }
    }
    contenders
        .iter()
        .zip(runs)
        .map(|(contender, runs)| summarize(&contender.name, runs))
        .collect()
}

fn summarize(name: &str, runs: Vec<Run>) -> Summary {
    let throughputs: Vec<f64> = runs.iter().map(Run::throughput).collect();
    let errors = runs.iter().map(|r| r.errors).sum();
    let first_error = runs.iter().find_map(|r| r.first_error.clone());
    let mut latencies: Vec<u64> = runs.into_iter().flat_map(|r| r.latencies_ns).collect();
    latencies.sort_unstable();
    Summary {
        name: name.to_owned(),
        throughput: median(&throughputs),
        throughputs,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        errors,
        first_error,
    }
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// The `q` quantile of sorted nanosecond latencies (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    Duration::from_nanos(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A runtime like a small server's: multi-thread with 2 workers.
pub fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the multi-thread runtime")
}

/// A current-thread runtime, where one task's calls run back to back on one thread.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the current-thread runtime")
}

/// Reads a `--name value` argument, or `default`.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} {v}: not a valid value"))
        })
        .unwrap_or(default)
}

/// Formats calls per second with a thousands separator.
pub fn per_second(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a latency in µs or ms.
pub fn latency(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
