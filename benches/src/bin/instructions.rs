//! Runs one contender a given number of times, for instruction counts under callgrind, which are
//! stable on a shared, noisy machine where wall-clock times are not.
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/instructions ops_get 1200
//! ```
//!
//! Run it twice with different counts: the difference of the two totals divided by the
//! difference of the counts is the cost of one call, setup and warm-up cancelled out
//! (`benches/instructions.sh` does this). It counts the instructions of every thread of the
//! process: on SQLite that includes the database engine, on a server only the client side.
//!
//! Built with `--features metrics`, ops records its metrics; `OPS_BENCH_RECORDER=prometheus`
//! installs `metrics-exporter-prometheus`'s recorder first (no recorder otherwise).

use std::process::ExitCode;

use ops_benches::contenders::{bump, bump_by_hand, get_bare, get_retried};
use ops_benches::{BenchDb, SqlxPool, insert_row, item};
use ops_sea::prelude::*;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryOrder};

const KEY: i32 = 500;
const WARM_UP: u32 = 50;

const CONTENDERS: &[&str] = &[
    "ops_get",
    "seaorm_find_by_id",
    "sqlx_fetch_one",
    "get_db_retry",
    "get_bare",
    "ops_managed",
    "seaorm_begin_commit",
    "ops_create",
    "seaorm_insert",
    "sqlx_insert",
    "ops_list",
    "seaorm_paginate",
    "seaorm_defaults_find_by_id",
];

async fn once(name: &str, db: &Db, sqlx: &SqlxPool, sea_defaults: &DatabaseConnection) {
    let conn = db.connection();
    match name {
        "ops_get" => drop(item::Ops::get(db, KEY).await.expect("get")),
        "seaorm_find_by_id" => drop(item::Entity::find_by_id(KEY).one(conn).await.expect("find")),
        "sqlx_fetch_one" => drop(sqlx.get(KEY).await.expect("fetch_one")),
        "get_db_retry" => drop(get_retried(db, KEY).await.expect("get")),
        "get_bare" => drop(get_bare(db, KEY).await.expect("get")),
        "ops_managed" => drop(bump(db, KEY).await.expect("managed")),
        "seaorm_begin_commit" => drop(bump_by_hand(conn, KEY).await.expect("by hand")),
        "ops_create" => drop(
            insert_row::Ops::create(
                db,
                insert_row::New {
                    name: "created".to_owned(),
                    qty: 1,
                },
            )
            .await
            .expect("create"),
        ),
        "seaorm_insert" => drop(
            insert_row::ActiveModel {
                name: Set("created".to_owned()),
                qty: Set(1),
                ..Default::default()
            }
            .insert(conn)
            .await
            .expect("insert"),
        ),
        "sqlx_insert" => drop(sqlx.insert("created", 1).await.expect("insert")),
        "ops_list" => drop(
            item::Ops::list(db, PageRequest::new(10, 20))
                .await
                .expect("list"),
        ),
        "seaorm_paginate" => {
            let paginator = item::Entity::find()
                .order_by_asc(item::Column::Id)
                .paginate(conn, 20);
            let total = paginator.num_items().await.expect("count");
            let items = paginator.fetch_page(9).await.expect("page");
            drop((total, items));
        }
        "seaorm_defaults_find_by_id" => drop(
            item::Entity::find_by_id(KEY)
                .one(sea_defaults)
                .await
                .expect("find"),
        ),
        other => unreachable!("unknown contender {other}"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(Ok(iterations))) = (args.get(1), args.get(2).map(|n| n.parse::<u32>()))
    else {
        eprintln!("usage: instructions <contender> <iterations>; contenders: {CONTENDERS:?}");
        return ExitCode::FAILURE;
    };
    if !CONTENDERS.contains(&name.as_str()) {
        eprintln!("unknown contender {name}; use one of {CONTENDERS:?}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    if std::env::var("OPS_BENCH_RECORDER").is_ok_and(|r| r == "prometheus") {
        #[cfg(feature = "metrics")]
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("install the Prometheus recorder");
        #[cfg(not(feature = "metrics"))]
        {
            eprintln!("OPS_BENCH_RECORDER=prometheus needs --features metrics");
            return ExitCode::FAILURE;
        }
    }
    runtime.block_on(async {
        let bench = BenchDb::create().await.unwrap_or_else(|e| panic!("{e}"));
        let db = Db::connect(&bench.url).await.expect("connect");
        ops_benches::prepare_schema(&db).await.expect("tables");
        let sea_defaults = sea_orm::Database::connect(&bench.url)
            .await
            .expect("connect with SeaORM's defaults");
        if bench.url.contains(":memory:") {
            ops_benches::prepare_schema(&sea_defaults)
                .await
                .expect("tables");
        }
        let sqlx = SqlxPool::of(&db);
        for _ in 0..WARM_UP + iterations {
            once(name, &db, &sqlx, &sea_defaults).await;
        }
        let _ = sea_defaults.close().await;
        db.close().await;
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
    });
    ExitCode::SUCCESS
}
