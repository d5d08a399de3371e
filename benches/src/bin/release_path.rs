//! The release-path benchmark of issue 16: primary-key reads under concurrency, ops' defaults
//! against SeaORM's and sqlx's defaults, in one run, rounds interleaved with the order rotated.
//!
//! ```sh
//! cargo build --release -p ops-benches --bin release_path
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test target/release/release_path
//! BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/test target/release/release_path
//! ```
//!
//! Sections (`--sections a,b,...`, all by default):
//!
//! - `defaults`: multi-thread runtime with 2 workers, 1, 16 and 64 tasks; `Db::connect(url)`
//!   against `sea_orm::Database::connect(url)` and `sqlx::Pool::connect(url)`, each with its
//!   own pool and its own defaults, plus ops with `DB_RESET_CHECK=always` (the release path
//!   before issue 16: a check statement on every release).
//! - `current`: a current-thread runtime, one task, warm reads back to back: the same three pools.
//! - `same`: one `Db`'s pool; the generated `get` against `Entity::find_by_id` by hand and
//!   sqlx's `fetch_one`, on a current-thread runtime and with 16 tasks on 2 workers.
//! - `variants`: ops' defaults against ops without overflow connections, 16 and 64 tasks.
//!
//! `--round 1.0` (seconds per turn), `--rounds 5`, `--tasks 1,16,64` change the plan.

use std::time::Duration;

use ops_benches::load::{self, Contender, Plan, Summary};
use ops_benches::{BenchDb, SEEDED, SqlxPool, item};
use ops_sea::{Db, ResetCheck};
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};

fn key(n: u64) -> i32 {
    // A different row each call, spread over the seeded keys.
    i32::try_from(n.wrapping_mul(7919) % u64::try_from(SEEDED).unwrap_or(1)).unwrap_or(0) + 1
}

fn ops_get(db: &Db) -> load::Op {
    let db = db.clone();
    load::op(move |n| {
        let db = db.clone();
        async move {
            item::Ops::get(&db, key(n))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
}

fn seaorm_get(conn: &DatabaseConnection) -> load::Op {
    let conn = conn.clone();
    load::op(move |n| {
        let conn = conn.clone();
        async move {
            match item::Entity::find_by_id(key(n)).one(&conn).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("row not found".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
}

fn sqlx_get(pool: &SqlxPool) -> load::Op {
    let pool = pool.clone();
    load::op(move |n| {
        let pool = pool.clone();
        async move { pool.get(key(n)).await.map(drop).map_err(|e| e.to_string()) }
    })
}

/// Connections open in a SeaORM connection's pool.
fn sea_pool_size(conn: &DatabaseConnection) -> u32 {
    match conn.get_database_backend() {
        DbBackend::Postgres => conn.get_postgres_connection_pool().size(),
        DbBackend::MySql => conn.get_mysql_connection_pool().size(),
        _ => conn.get_sqlite_connection_pool().size(),
    }
}

struct Pools {
    ops: Db,
    /// ops' defaults but `DB_RESET_CHECK=always`: the release path as it was before issue 16.
    always: Db,
    sea: DatabaseConnection,
    sqlx: SqlxPool,
}

impl Pools {
    async fn connect(url: &str) -> Pools {
        let ops = Db::connect(url).await.expect("Db::connect");
        let always = Db::builder(url)
            .reset_check(ResetCheck::Always)
            .connect()
            .await
            .expect("Db::connect");
        let sea = sea_orm::Database::connect(url)
            .await
            .expect("sea_orm::Database::connect");
        let sqlx = SqlxPool::connect(url, None).await.expect("sqlx connect");
        Pools {
            ops,
            always,
            sea,
            sqlx,
        }
    }

    fn contenders(&self) -> Vec<Contender> {
        vec![
            Contender::new("ops_defaults", ops_get(&self.ops)),
            Contender::new("ops_reset_always", ops_get(&self.always)),
            Contender::new("seaorm_defaults", seaorm_get(&self.sea)),
            Contender::new("sqlx_defaults", sqlx_get(&self.sqlx)),
        ]
    }

    fn sizes(&self) -> String {
        format!(
            "connections open: ops {}, ops always {}, SeaORM {}, sqlx {}",
            self.ops.pool_state().size,
            self.always.pool_state().size,
            sea_pool_size(&self.sea),
            self.sqlx.size()
        )
    }

    async fn close(self) {
        self.ops.close().await;
        self.always.close().await;
        let _ = self.sea.close().await;
        self.sqlx.close().await;
    }
}

fn table(title: &str, results: &[Summary], base: &str) {
    let base = results
        .iter()
        .find(|s| s.name == base)
        .map_or(1.0, |s| s.throughput);
    println!("\n{title}\n");
    println!("| contender | median calls/s | ops / contender | p50 | p99 | rounds (calls/s) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for s in results {
        let rounds: Vec<String> = s.throughputs.iter().map(|t| load::per_second(*t)).collect();
        println!(
            "| {} | {} | {:.2} | {} | {} | {} |",
            s.name,
            load::per_second(s.throughput),
            base / s.throughput,
            load::latency(s.p50),
            load::latency(s.p99),
            rounds.join(" / ")
        );
        if s.errors > 0 {
            println!(
                "\n{} failed {} calls; first error: {}\n",
                s.name,
                s.errors,
                s.first_error.as_deref().unwrap_or("?")
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sections: String = load::arg(&args, "--sections", "defaults,current,same,variants".into());
    let round = Duration::from_secs_f64(load::arg(&args, "--round", 1.0));
    let rounds: usize = load::arg(&args, "--rounds", 5);
    let tasks: String = load::arg(&args, "--tasks", "1,16,64".into());
    let tasks: Vec<usize> = tasks
        .split(',')
        .map(|t| t.trim().parse().expect("--tasks: whole numbers"))
        .collect();
    let plan = |tasks| Plan {
        tasks,
        round,
        rounds,
        warm_up: Duration::from_millis(500),
        pause: Duration::from_millis(100),
    };

    let setup = load::current_thread_runtime();
    let bench = setup.block_on(async {
        let bench = BenchDb::create_for_load()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db = Db::connect(&bench.url).await.expect("connect");
        ops_benches::prepare_schema(&db).await.expect("tables");
        db.close().await;
        bench
    });
    drop(setup);
    println!(
        "release_path on {} ({} rounds of {:?} per contender, order rotated each round)",
        bench.backend.label(),
        rounds,
        round
    );

    if sections.contains("defaults") {
        let rt = load::multi_thread_runtime();
        rt.block_on(async {
            let pools = Pools::connect(&bench.url).await;
            let contenders = pools.contenders();
            for &n in &tasks {
                let results = load::compare(&contenders, plan(n)).await;
                table(
                    &format!(
                        "defaults, PK read, multi-thread runtime (2 workers), {n} tasks ({})",
                        pools.sizes()
                    ),
                    &results,
                    "ops_defaults",
                );
            }
            pools.close().await;
        });
    }

    if sections.contains("current") {
        let rt = load::current_thread_runtime();
        rt.block_on(async {
            let pools = Pools::connect(&bench.url).await;
            let results = load::compare(&pools.contenders(), plan(1)).await;
            table(
                "defaults, warm PK read, current-thread runtime, 1 task",
                &results,
                "ops_defaults",
            );
            pools.close().await;
        });
    }

    if sections.contains("same") {
        for (label, rt, n) in [
            (
                "current-thread runtime, 1 task",
                load::current_thread_runtime(),
                1,
            ),
            (
                "multi-thread runtime (2 workers), 16 tasks",
                load::multi_thread_runtime(),
                16,
            ),
        ] {
            rt.block_on(async {
                let db = Db::connect(&bench.url).await.expect("connect");
                let contenders = vec![
                    Contender::new("ops_get", ops_get(&db)),
                    Contender::new("seaorm_find_by_id", seaorm_get(db.connection())),
                    Contender::new("sqlx_fetch_one", sqlx_get(&SqlxPool::of(&db))),
                ];
                let results = load::compare(&contenders, plan(n)).await;
                table(
                    &format!("same pool (one `Db`), PK read, {label}"),
                    &results,
                    "ops_get",
                );
                db.close().await;
            });
        }
    }

    if sections.contains("variants") {
        let rt = load::multi_thread_runtime();
        rt.block_on(async {
            let defaults = Db::connect(&bench.url).await.expect("connect");
            let no_overflow = Db::builder(&bench.url)
                .max_overflow(0)
                .connect()
                .await
                .expect("connect");
            let contenders = vec![
                Contender::new("ops_defaults", ops_get(&defaults)),
                Contender::new("ops_no_overflow", ops_get(&no_overflow)),
            ];
            for &n in tasks.iter().filter(|&&n| n > 1) {
                let results = load::compare(&contenders, plan(n)).await;
                table(
                    &format!(
                        "ops variants, PK read, multi-thread runtime (2 workers), {n} tasks \
                         (connections open: defaults {}, no overflow {})",
                        defaults.pool_state().size,
                        no_overflow.pool_state().size
                    ),
                    &results,
                    "ops_defaults",
                );
            }
            defaults.close().await;
            no_overflow.close().await;
        });
    }

    let teardown = load::current_thread_runtime();
    teardown.block_on(async {
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
    });
}
