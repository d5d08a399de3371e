//! `get` and a 2-statement managed session (`contenders::bump`: `get` + `update`) through
//! PgBouncer in transaction pooling mode against the same calls on PostgreSQL directly.
//!
//! ```sh
//! .ci/pgbouncer.sh start
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run -p ops-benches --release --bin pgbouncer
//! .ci/pgbouncer.sh stop
//! ```
//!
//! Both `Db`s use the same pool settings (`pool_size` = the concurrency, no overflow); PgBouncer
//! has 4 server connections for them. Each round runs every contender in a rotated order, at
//! 1, 16 and 64 concurrent tasks, and the medians over the rounds are printed as a Markdown
//! table: latency per call (median of the per-call times in the round) and throughput. Absolute
//! times depend on the machine; the ratios (PgBouncer over direct, from the same run) are what
//! to compare. `PGB_BENCH_ROUNDS` (default 5) and `PGB_BENCH_CALLS` (calls per task and round,
//! default 200) change the effort; `PGB_URL` names PgBouncer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ops_benches::contenders::bump;
use ops_benches::{BenchDb, URL_VAR, item, prepare_schema};
use ops_sea::prelude::*;

const KEY: i32 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    Managed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Direct,
    PgBouncer,
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `calls` calls of `op` on each of `tasks` tasks; returns the median call time (µs) and
/// the calls per second.
async fn measure(db: &Db, op: Op, tasks: u32, calls: u32) -> (f64, f64) {
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(calls as usize);
            for _ in 0..calls {
                let t = Instant::now();
                // Each task bumps its own row, so sessions do not wait on each other's locks.
                let key = KEY + i32::try_from(task).unwrap_or(0);
                match op {
                    Op::Get => drop(item::Ops::get(&db, key).await.expect("get")),
                    Op::Managed => drop(bump(&db, key).await.expect("managed session")),
                }
                times.push(t.elapsed().as_secs_f64() * 1e6);
            }
            times
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let throughput = f64::from(tasks * calls) / elapsed;
    (median(&mut all), throughput)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    if !std::env::var(URL_VAR).is_ok_and(|url| url.starts_with("postgres")) {
        eprintln!(
            "set {URL_VAR}=postgres://postgres@127.0.0.1:5432/test (the server PgBouncer is in \
             front of)"
        );
        std::process::exit(2);
    }
    let bench = BenchDb::create().await.expect("bench database");
    let name = url::Url::parse(&bench.url)
        .expect("url")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let via = std::env::var("PGB_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432/test?pgbouncer=true".to_owned());
    let mut via = url::Url::parse(&via).expect("PGB_URL");
    via.set_path(&name);

    let rounds = env_u32("PGB_BENCH_ROUNDS", 5);
    let calls = env_u32("PGB_BENCH_CALLS", 200);
    let levels = [1_u32, 16, 64];
    {
        let setup = Db::connect(&bench.url).await.expect("setup connect");
        prepare_schema(&setup).await.expect("schema");
        setup.close().await;
    }
    let mut dbs = Vec::new();
    for &tasks in &levels {
        let direct = Db::builder(&bench.url)
            .pool_size(tasks)
            .max_overflow(0)
            .pool_timeout(Duration::from_secs(60))
            .connect()
            .await
            .expect("direct connect");
        let pgb = Db::builder(via.as_str())
            .pool_size(tasks)
            .max_overflow(0)
            .pool_timeout(Duration::from_secs(60))
            .connect()
            .await
            .expect("PgBouncer connect");
        dbs.push((tasks, Arc::new(direct), Arc::new(pgb)));
    }

    let contenders = [
        (Op::Get, Route::Direct),
        (Op::Get, Route::PgBouncer),
        (Op::Managed, Route::Direct),
        (Op::Managed, Route::PgBouncer),
    ];
    // results[level][contender] = (latencies, throughputs) over rounds
    let mut results = vec![vec![(Vec::new(), Vec::new()); contenders.len()]; levels.len()];
    for round in 0..rounds as usize {
        for (li, (tasks, direct, pgb)) in dbs.iter().enumerate() {
            // Warm-up: every pool opens its connections and PgBouncer its server ones.
            if round == 0 {
                for db in [direct, pgb] {
                    measure(db, Op::Managed, *tasks, 5).await;
                }
            }
            for k in 0..contenders.len() {
                let ci = (k + round) % contenders.len();
                let (op, route) = contenders[ci];
                let db = match route {
                    Route::Direct => direct,
                    Route::PgBouncer => pgb,
                };
                let (latency, throughput) = measure(db, op, *tasks, calls).await;
                results[li][ci].0.push(latency);
                results[li][ci].1.push(throughput);
            }
        }
    }

    println!(
        "| operation | tasks | direct: median µs | PgBouncer: median µs | latency ratio | direct: calls/s | PgBouncer: calls/s | throughput ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (li, &tasks) in levels.iter().enumerate() {
        for (op, label) in [
            (Op::Get, "`get`"),
            (Op::Managed, "managed session (get + update)"),
        ] {
            let di = contenders
                .iter()
                .position(|c| *c == (op, Route::Direct))
                .unwrap_or(0);
            let pi = contenders
                .iter()
                .position(|c| *c == (op, Route::PgBouncer))
                .unwrap_or(0);
            let dl = median(&mut results[li][di].0.clone());
            let pl = median(&mut results[li][pi].0.clone());
            let dt = median(&mut results[li][di].1.clone());
            let pt = median(&mut results[li][pi].1.clone());
            println!(
                "| {label} | {tasks} | {dl:.0} | {pl:.0} | {:.2} | {dt:.0} | {pt:.0} | {:.2} |",
                pl / dl,
                pt / dt
            );
        }
    }
    for (_, direct, pgb) in dbs {
        direct.close().await;
        pgb.close().await;
    }
    bench.drop_database().await.expect("drop bench database");
}
