//! ops against what users write by hand, on the same pool and runtime, in one run.
//!
//! Groups (each id ends in the backend, e.g. `pk_read/postgres/ops_get`):
//!
//! - `pk_read`: generated `get` vs `Entity::find_by_id(..).one()` vs sqlx `fetch_one`.
//! - `insert`: generated `create` vs `ActiveModel::insert` vs a sqlx `INSERT ... RETURNING`.
//! - `transaction`: a `#[managed_session]` function (one read, one write) vs the same with
//!   `begin`/`commit` by hand.
//! - `retry`: a `#[db_retry]` function on its success path vs the bare function, around a
//!   primary-key read and around no work at all (the retry loop's own cost).
//! - `bulk`: 10,000 rows by `create_many` vs SeaORM `insert_many` vs one sqlx multi-row insert.
//! - `bulk_100k`: 100,000 rows by `create_many` (`COPY` on PostgreSQL) vs SeaORM `insert_many`
//!   in bind-limit chunks inside one transaction.
//! - `page`: one page of 20 with the total count: `Ops::list` vs SeaORM's paginator vs two sqlx
//!   statements.
//! - `defaults`: a warm primary-key read through `Db::connect` defaults vs `Database::connect`
//!   with SeaORM's default `ConnectOptions` (two pools, the point of the comparison), back to
//!   back: each call also pays for the CPU its predecessor's release path uses.
//! - `defaults_isolated`: the same reads, each timed alone once the previous call's connection
//!   is back in the pool: the latency of a request arriving at a quiet pool.
//!
//! ```sh
//! cargo bench -p ops-benches                                                     # SQLite
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p ops-benches
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use ops_benches::contenders::{
    bump, bump_by_hand, get_bare, get_retried, insert_many_chunked, nothing_bare, nothing_retried,
};
use ops_benches::{BULK_ROWS, BenchDb, SqlxPool, bulk_row, insert_row, item};
use ops_sea::prelude::*;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryOrder,
};

/// The key every read uses: a seeded row in the middle of the table.
const KEY: i32 = 500;

/// The page the listing benchmarks fetch (1-based) and its size.
const PAGE: u64 = 10;
const PAGE_SIZE: u64 = 20;

/// Everything the benchmarks share.
struct Ctx {
    runtime: tokio::runtime::Runtime,
    db: Db,
    sqlx: SqlxPool,
    /// A SeaORM connection with SeaORM's default options, for the defaults comparison.
    sea_defaults: DatabaseConnection,
    label: &'static str,
}

impl Ctx {
    fn group<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        c.benchmark_group(format!("{name}/{}", self.label))
    }
}

fn pk_read(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "pk_read");
    let rt = &ctx.runtime;
    let conn = ctx.db.connection();
    group.bench_function("ops_get", |b| {
        b.to_async(rt)
            .iter(|| async { item::Ops::get(&ctx.db, KEY).await.expect("get") });
    });
    group.bench_function("seaorm_find_by_id", |b| {
        b.to_async(rt).iter(|| async {
            item::Entity::find_by_id(KEY)
                .one(conn)
                .await
                .expect("find_by_id")
                .expect("a seeded row")
        });
    });
    group.bench_function("sqlx_fetch_one", |b| {
        b.to_async(rt)
            .iter(|| async { ctx.sqlx.get(KEY).await.expect("fetch_one") });
    });
    group.finish();
}

fn insert(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "insert");
    let rt = &ctx.runtime;
    let conn = ctx.db.connection();
    group.bench_function("ops_create", |b| {
        b.to_async(rt).iter(|| async {
            insert_row::Ops::create(
                &ctx.db,
                insert_row::New {
                    name: "created".to_owned(),
                    qty: 1,
                },
            )
            .await
            .expect("create")
        });
    });
    group.bench_function("seaorm_insert", |b| {
        b.to_async(rt).iter(|| async {
            insert_row::ActiveModel {
                name: Set("created".to_owned()),
                qty: Set(1),
                ..Default::default()
            }
            .insert(conn)
            .await
            .expect("insert")
        });
    });
    group.bench_function("sqlx_insert", |b| {
        b.to_async(rt)
            .iter(|| async { ctx.sqlx.insert("created", 1).await.expect("insert") });
    });
    group.finish();
}

fn transaction(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "transaction");
    let rt = &ctx.runtime;
    group.bench_function("ops_managed", |b| {
        b.to_async(rt)
            .iter(|| async { bump(&ctx.db, KEY).await.expect("managed") });
    });
    group.bench_function("seaorm_begin_commit", |b| {
        b.to_async(rt).iter(|| async {
            bump_by_hand(ctx.db.connection(), KEY)
                .await
                .expect("by hand")
        });
    });
    group.finish();
}

fn retry(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "retry");
    let rt = &ctx.runtime;
    group.bench_function("get_db_retry", |b| {
        b.to_async(rt)
            .iter(|| async { get_retried(&ctx.db, KEY).await.expect("retried") });
    });
    group.bench_function("get_bare", |b| {
        b.to_async(rt)
            .iter(|| async { get_bare(&ctx.db, KEY).await.expect("bare") });
    });
    group.bench_function("nothing_db_retry", |b| {
        b.to_async(rt)
            .iter(|| async { nothing_retried(7).await.expect("retried") });
    });
    group.bench_function("nothing_bare", |b| {
        b.to_async(rt)
            .iter(|| async { nothing_bare(7).await.expect("bare") });
    });
    group.finish();
}

/// Times `load` once per iteration, emptying the table before each (outside the timing); the
/// rows are cloned outside the timing too, and each contender turns them into its own input
/// inside it.
fn time_loads<F, Fut>(ctx: &Ctx, iters: u64, n: usize, load: F) -> Duration
where
    F: Fn(Vec<(String, i32)>) -> Fut,
    Fut: Future<Output = u64>,
{
    let rows = ops_benches::bulk_rows(n);
    ctx.runtime.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            ctx.sqlx.clear_bulk().await.expect("empty bench_bulk");
            let input = rows.clone();
            let started = Instant::now();
            let loaded = load(input).await;
            total += started.elapsed();
            assert_eq!(loaded, rows.len() as u64, "every row loaded");
        }
        total
    })
}

fn bulk(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "bulk");
    group.sample_size(10);
    let conn = ctx.db.connection();
    group.bench_function("ops_create_many", |b| {
        b.iter_custom(|iters| {
            time_loads(ctx, iters, BULK_ROWS, |rows| async move {
                let new = rows
                    .into_iter()
                    .map(|(name, qty)| bulk_row::New { name, qty });
                bulk_row::Ops::create_many(&ctx.db, new)
                    .await
                    .expect("create_many")
            })
        });
    });
    group.bench_function("seaorm_insert_many", |b| {
        b.iter_custom(|iters| {
            time_loads(ctx, iters, BULK_ROWS, |rows| async move {
                let models = rows.into_iter().map(|(name, qty)| bulk_row::ActiveModel {
                    name: Set(name),
                    qty: Set(qty),
                    ..Default::default()
                });
                bulk_row::Entity::insert_many(models)
                    .exec_without_returning(conn)
                    .await
                    .expect("insert_many")
            })
        });
    });
    group.bench_function("sqlx_multi_row", |b| {
        b.iter_custom(|iters| {
            time_loads(ctx, iters, BULK_ROWS, |rows| async move {
                ctx.sqlx.insert_bulk(&rows).await.expect("multi-row insert")
            })
        });
    });
    group.finish();
}

/// Rows per load in `bulk_100k`.
const LARGE_LOAD: usize = 100_000;

/// 100,000 rows: `create_many` (`COPY` on PostgreSQL) against SeaORM's `insert_many`, which at
/// this size must be split under the bind-parameter limit: chunks of the most rows one statement
/// takes, in one transaction, on the same pool. Each load takes about a second, so the group
/// measures ten loads per contender (flat sampling), not criterion's default.
fn bulk_100k(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "bulk_100k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let conn = ctx.db.connection();
    // Whichever contender runs first after the table's creation measured differently from the
    // same code run second (MariaDB: 708 ms first, 493 ms second, equal when run alone), so the
    // contenders run in A-B-B-A order and each one's two results are averaged.
    for (ops, round) in [(true, "a"), (false, "a"), (false, "b"), (true, "b")] {
        if ops {
            group.bench_function(format!("ops_create_many_{round}"), |b| {
                b.iter_custom(|iters| {
                    time_loads(ctx, iters, LARGE_LOAD, |rows| async move {
                        let new = rows
                            .into_iter()
                            .map(|(name, qty)| bulk_row::New { name, qty });
                        bulk_row::Ops::create_many(&ctx.db, new)
                            .await
                            .expect("create_many")
                    })
                });
            });
            continue;
        }
        group.bench_function(format!("seaorm_insert_many_{round}"), |b| {
            b.iter_custom(|iters| {
                time_loads(ctx, iters, LARGE_LOAD, |rows| async move {
                    insert_many_chunked(conn, rows).await.expect("insert_many")
                })
            });
        });
    }
    group.finish();
}

fn page(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "page");
    let rt = &ctx.runtime;
    let conn = ctx.db.connection();
    group.bench_function("ops_list", |b| {
        b.to_async(rt).iter(|| async {
            let page = item::Ops::list(&ctx.db, PageRequest::new(PAGE, PAGE_SIZE))
                .await
                .expect("list");
            assert_eq!(page.items.len() as u64, PAGE_SIZE);
            page
        });
    });
    group.bench_function("seaorm_paginate", |b| {
        b.to_async(rt).iter(|| async {
            let paginator = item::Entity::find()
                .order_by_asc(item::Column::Id)
                .paginate(conn, PAGE_SIZE);
            let total = paginator.num_items().await.expect("count");
            let items = paginator.fetch_page(PAGE - 1).await.expect("page");
            assert_eq!(items.len() as u64, PAGE_SIZE);
            (items, total)
        });
    });
    group.bench_function("sqlx_two_queries", |b| {
        b.to_async(rt).iter(|| async {
            let size = i64::try_from(PAGE_SIZE).unwrap_or(i64::MAX);
            let offset = i64::try_from((PAGE - 1) * PAGE_SIZE).unwrap_or(i64::MAX);
            let (items, total) = ctx.sqlx.page(size, offset).await.expect("page");
            assert_eq!(items.len() as u64, PAGE_SIZE);
            (items, total)
        });
    });
    group.finish();
}

fn defaults(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "defaults");
    let rt = &ctx.runtime;
    group.bench_function("ops_db_connect_get", |b| {
        b.to_async(rt)
            .iter(|| async { item::Ops::get(&ctx.db, KEY).await.expect("get") });
    });
    group.bench_function("seaorm_database_connect_find_by_id", |b| {
        b.to_async(rt).iter(|| async {
            item::Entity::find_by_id(KEY)
                .one(&ctx.sea_defaults)
                .await
                .expect("find_by_id")
                .expect("a seeded row")
        });
    });
    group.finish();
}

/// Whether every connection of the pool under `conn` is back and idle: the release path of the
/// previous call is over.
fn pool_idle(conn: &DatabaseConnection) -> bool {
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            let p = conn.get_postgres_connection_pool();
            p.num_idle() == p.size() as usize
        }
        DbBackend::MySql => {
            let p = conn.get_mysql_connection_pool();
            p.num_idle() == p.size() as usize
        }
        _ => {
            let p = conn.get_sqlite_connection_pool();
            p.num_idle() == p.size() as usize
        }
    }
}

/// Times `read` alone, waiting after each call (outside the timing) until its connection is back
/// in the pool: the latency a request that arrives at a quiet pool sees, without the previous
/// call's release path competing for the CPU.
fn time_isolated<F, Fut>(ctx: &Ctx, conn: &DatabaseConnection, iters: u64, read: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    ctx.runtime.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            while !pool_idle(conn) {
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            read().await;
            total += started.elapsed();
        }
        total
    })
}

fn defaults_isolated(c: &mut Criterion, ctx: &Ctx) {
    let mut group = ctx.group(c, "defaults_isolated");
    group.bench_function("ops_db_connect_get", |b| {
        b.iter_custom(|iters| {
            time_isolated(ctx, ctx.db.connection(), iters, || async {
                item::Ops::get(&ctx.db, KEY).await.expect("get");
            })
        });
    });
    group.bench_function("seaorm_database_connect_find_by_id", |b| {
        b.iter_custom(|iters| {
            time_isolated(ctx, &ctx.sea_defaults, iters, || async {
                item::Entity::find_by_id(KEY)
                    .one(&ctx.sea_defaults)
                    .await
                    .expect("find_by_id")
                    .expect("a seeded row");
            })
        });
    });
    group.finish();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let bench = runtime
        .block_on(BenchDb::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let (db, sea_defaults) = runtime.block_on(async {
        let db = Db::connect(&bench.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the benchmark database: {e}"));
        ops_benches::prepare_schema(&db)
            .await
            .unwrap_or_else(|e| panic!("cannot create the benchmark tables: {e}"));
        let sea_defaults = sea_orm::Database::connect(&bench.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect with SeaORM's defaults: {e}"));
        if bench.url.contains(":memory:") {
            // A second in-memory database: it needs the tables too.
            ops_benches::prepare_schema(&sea_defaults)
                .await
                .unwrap_or_else(|e| panic!("cannot create the benchmark tables: {e}"));
        }
        (db, sea_defaults)
    });
    let ctx = Ctx {
        sqlx: SqlxPool::of(&db),
        db,
        sea_defaults,
        label: bench.backend.label(),
        runtime,
    };
    let mut c = ops_benches::criterion();
    pk_read(&mut c, &ctx);
    insert(&mut c, &ctx);
    transaction(&mut c, &ctx);
    retry(&mut c, &ctx);
    bulk(&mut c, &ctx);
    bulk_100k(&mut c, &ctx);
    page(&mut c, &ctx);
    defaults(&mut c, &ctx);
    defaults_isolated(&mut c, &ctx);
    c.final_summary();
    let Ctx {
        runtime,
        db,
        sea_defaults,
        ..
    } = ctx;
    runtime.block_on(async {
        let _ = sea_defaults.close().await;
        db.close().await;
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
    });
}
