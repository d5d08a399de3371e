//! Throughput on SQLite under concurrency: ops' defaults against SeaORM's defaults, and write
//! sessions under many writers, in memory and on a file.
//!
//! ```sh
//! cargo run -p ops-benches --release --bin sqlite_load            # every scenario, ~2 min
//! cargo run -p ops-benches --release --bin sqlite_load -- writers # one group: pk, mix or writers
//! ```
//!
//! Method (issue 16): each contender has a database of its own built with its defaults
//! (`Db::connect(url)` against `sea_orm::Database::connect(url)`), on one multi-thread tokio
//! runtime with 2 workers. A round runs every contender for `OPS_LOAD_SECS` seconds (default 1.5)
//! with N concurrent tasks; the order of the contenders rotates each round, and the result is the
//! median over `OPS_LOAD_ROUNDS` rounds (default 3).
//!
//! - `pk`: a primary-key read of a random seeded row (`item::Ops::get` / `find_by_id`).
//! - `mix`: the same, with one call in ten an update of a random row by its key
//!   (`item::Ops::update` / `ActiveModel::update`).
//! - `writers`: 16 tasks each running a write session (read a row, update it) under
//!   `#[db_retry]`, on ops' defaults only: committed sessions per second, the retries they needed
//!   and the errors by category.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ops_benches::{SEEDED, item, prepare_schema};
use ops_sea::prelude::*;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait};

/// A write session: read a row and bump its counter, retried on retryable errors.
#[db_retry(attempts = 100, initial = "1ms", max = "20ms", deadline = "30s")]
#[managed_session]
async fn bump(session: &Session, id: i32) -> Result<item::Model, OpsError> {
    let current = item::Ops::get(session, id).await?;
    item::Ops::update(
        session,
        id,
        item::Patch {
            qty: Some(current.qty.wrapping_add(1)),
            ..Default::default()
        },
    )
    .await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    Memory,
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Pk,
    Mix,
}

/// One contender's handle.
#[derive(Clone)]
enum Contender {
    Ops(Db),
    SeaOrm(DatabaseConnection),
}

impl Contender {
    fn label(&self) -> &'static str {
        match self {
            Contender::Ops(_) => "ops defaults",
            Contender::SeaOrm(_) => "SeaORM defaults",
        }
    }

    async fn call(&self, workload: Workload, n: u64) -> bool {
        let id = fastrand::i32(1..=SEEDED);
        let write = workload == Workload::Mix && n % 10 == 9;
        match (self, write) {
            (Contender::Ops(db), false) => item::Ops::get(db, id).await.is_ok(),
            (Contender::Ops(db), true) => item::Ops::update(
                db,
                id,
                item::Patch {
                    qty: Some(i32::try_from(n % 1000).unwrap_or(0)),
                    ..Default::default()
                },
            )
            .await
            .is_ok(),
            (Contender::SeaOrm(conn), false) => {
                matches!(item::Entity::find_by_id(id).one(conn).await, Ok(Some(_)))
            }
            (Contender::SeaOrm(conn), true) => item::ActiveModel {
                id: Unchanged(id),
                qty: Set(i32::try_from(n % 1000).unwrap_or(0)),
                ..Default::default()
            }
            .update(conn)
            .await
            .is_ok(),
        }
    }
}

/// Files of one run, removed at the end.
struct Files(Vec<PathBuf>);

impl Files {
    fn url(&mut self, storage: Storage, name: &str) -> String {
        match storage {
            Storage::Memory => "sqlite::memory:".to_owned(),
            Storage::File => {
                let file = std::env::temp_dir().join(format!(
                    "ops-sqlite-load-{}-{name}.sqlite",
                    std::process::id()
                ));
                remove(&file);
                self.0.push(file.clone());
                format!("sqlite:///{}?mode=rwc", file.display())
            }
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for file in &self.0 {
            remove(file);
        }
    }
}

fn remove(file: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        // Absent is what we want.
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// Runs `tasks` loops of `contender` for `secs`; returns (calls per second, failed calls).
async fn round(contender: &Contender, workload: Workload, tasks: usize, secs: f64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (c, stop, done, failed) = (
                contender.clone(),
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&failed),
            );
            tokio::spawn(async move {
                let mut n = fastrand::u64(0..10);
                while !stop.load(Ordering::Relaxed) {
                    if c.call(workload, n).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("a load task panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = done.load(Ordering::Relaxed) as f64 / elapsed;
    (rate, failed.load(Ordering::Relaxed))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn compare(files: &mut Files, storage: Storage, workload: Workload, secs: f64, rounds: u32) {
    let ops_url = files.url(storage, "ops");
    let sea_url = files.url(storage, "seaorm");
    let db = Db::connect(&ops_url).await.expect("ops connects");
    prepare_schema(&db).await.expect("ops schema");
    let conn = sea_orm::Database::connect(&sea_url)
        .await
        .expect("SeaORM connects");
    prepare_schema(&conn).await.expect("SeaORM schema");
    let mut contenders = vec![Contender::Ops(db.clone()), Contender::SeaOrm(conn.clone())];
    for tasks in [1, 16] {
        // Warm both pools before the first measured round.
        for c in &contenders {
            round(c, workload, tasks, 0.2).await;
        }
        let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
        for _ in 0..rounds {
            for c in &contenders {
                let (rate, failed) = round(c, workload, tasks, secs).await;
                rates.entry(c.label()).or_default().push(rate);
                *failures.entry(c.label()).or_default() += failed;
            }
            contenders.rotate_left(1);
        }
        let ops = median(rates.remove("ops defaults").unwrap_or_default());
        let sea = median(rates.remove("SeaORM defaults").unwrap_or_default());
        println!(
            "| {storage:?} | {workload:?} | {tasks} | {ops:.0}/s | {sea:.0}/s | {:.2} | {} / {} |",
            ops / sea,
            failures.get("ops defaults").copied().unwrap_or(0),
            failures.get("SeaORM defaults").copied().unwrap_or(0),
        );
    }
    db.close().await;
    let _ = conn.close().await;
}

async fn writers(files: &mut Files, storage: Storage, secs: f64, rounds: u32) {
    let url = files.url(storage, "writers");
    let db = Db::connect(&url).await.expect("ops connects");
    prepare_schema(&db).await.expect("schema");
    let tasks = 16;
    let mut rates = Vec::new();
    let mut failed = 0;
    for _ in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (db, stop, done, errors) = (
                    db.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&done),
                    Arc::clone(&errors),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match bump(&db, fastrand::i32(1..=SEEDED)).await {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.expect("a writer panicked");
        }
        #[allow(clippy::cast_precision_loss)]
        rates.push(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64());
        failed += errors.load(Ordering::Relaxed);
    }
    let stats = db.error_stats();
    let sessions = db.session_stats();
    println!(
        "| {storage:?} | {tasks} | {:.0}/s | {} | {:?} | {} | {:?} |",
        median(rates),
        sessions.committed,
        stats.retries_attempted,
        failed,
        stats.by_category,
    );
    db.close().await;
}

fn main() {
    let only = std::env::args().nth(1);
    let secs = env_f64("OPS_LOAD_SECS", 1.5);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounds = env_f64("OPS_LOAD_ROUNDS", 3.0) as u32;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut files = Files(Vec::new());
        let wants = |group: &str| only.as_deref().is_none_or(|o| o == group);
        for (group, workload) in [("pk", Workload::Pk), ("mix", Workload::Mix)] {
            if !wants(group) {
                continue;
            }
            println!("\n| storage | workload | tasks | ops defaults | SeaORM defaults | ops / SeaORM | failed calls (ops / SeaORM) |");
            println!("| --- | --- | --- | --- | --- | --- | --- |");
            for storage in [Storage::Memory, Storage::File] {
                compare(&mut files, storage, workload, secs, rounds).await;
            }
        }
        if wants("writers") {
            println!("\n| storage | writers | committed sessions | total committed | retries | failed | errors by category |");
            println!("| --- | --- | --- | --- | --- | --- | --- |");
            for storage in [Storage::Memory, Storage::File] {
                writers(&mut files, storage, secs, rounds).await;
            }
        }
    });
}
