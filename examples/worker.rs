//! A long background job in a session of its own while the HTTP API keeps answering.
//!
//! The worker reads every order in batches inside one long read-only session (repeatable read:
//! one snapshot for the whole job), pausing between batches as a real job would while it calls
//! other services. Meanwhile the API takes new orders, each in its own short request session, and
//! answers in milliseconds: the worker's session holds one pooled connection and no write lock.
//! The job outlives the leak threshold on purpose, so the health report names it while it runs.
//! At the end the worker writes its report in a short managed session.
//!
//! ```sh
//! cargo run -p ops-examples --example worker
//! ```

// Each example uses only part of the shared module.
#[allow(dead_code)]
mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ops_sea::axum::{RequestSession, SessionLayer, health};
use ops_sea::prelude::*;
use serde::Deserialize;
use serde_json::json;

pub mod order {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "wk_orders")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub customer: String,
        pub cents: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod report {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "wk_reports")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub orders: i64,
        pub total_cents: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const TABLES: [&str; 2] = ["wk_reports", "wk_orders"];
const SEED_ORDERS: i64 = 400;
const BATCH: u64 = 50;
const PAUSE: Duration = Duration::from_millis(150);
const LEAK_THRESHOLD: Duration = Duration::from_millis(400);

#[derive(Deserialize)]
struct NewOrder {
    customer: String,
    cents: i64,
}

async fn place_order(
    tx: RequestSession,
    Json(input): Json<NewOrder>,
) -> Result<StatusCode, OpsError> {
    order::Ops::create(
        &tx,
        order::New {
            customer: input.customer,
            cents: input.cents,
        },
    )
    .await?;
    Ok(StatusCode::CREATED)
}

async fn count_orders(tx: RequestSession) -> Result<String, OpsError> {
    Ok(order::Ops::count(&tx).await?.to_string())
}

/// What the job computed.
#[derive(Debug)]
struct Summary {
    orders: i64,
    total_cents: i64,
}

/// The job: every order, a batch at a time, in one long snapshot.
async fn summarize(db: Db) -> Result<Summary, OpsError> {
    let session = db
        .session_with(
            SessionOptions::new()
                .name("nightly summary")
                .isolation(Isolation::RepeatableRead)
                .read_only(),
        )
        .await?;
    let mut summary = Summary {
        orders: 0,
        total_cents: 0,
    };
    let mut page = PageRequest::first(BATCH);
    loop {
        let batch = order::Ops::list(&session, page.clone()).await?;
        for o in &batch.items {
            summary.orders += 1;
            summary.total_cents += o.cents;
        }
        println!(
            "  worker: batch {} of {} ({} orders in its snapshot)",
            batch.page,
            batch.pages(),
            batch.total
        );
        if !batch.has_next() {
            break;
        }
        page = page.next();
        // Standing in for the slow part of a real job: calling another service per batch.
        // ops-scan: allow(session-held-across-io) -- the example holds a read-only snapshot across pauses on purpose, so the health report names the long job
        tokio::time::sleep(PAUSE).await;
    }
    // Read-only: nothing to commit, but committing ends the snapshot cleanly.
    session.commit().await?;
    Ok(summary)
}

/// Writes the report in a short session of its own.
#[managed_session(name = "save summary")]
async fn save_summary(session: &Session, summary: &Summary) -> Result<report::Model, OpsError> {
    report::Ops::create(
        session,
        report::New {
            orders: summary.orders,
            total_cents: summary.total_cents,
        },
    )
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let example = common::open("worker", |config| {
        config.leak_threshold = Some(LEAK_THRESHOLD);
    })
    .await?;
    let db = example.db.clone();
    common::drop_tables(&db, &TABLES).await?;
    common::create_table(&db, order::Entity).await?;
    common::create_table(&db, report::Entity).await?;
    order::Ops::create_many(
        &db,
        (0..SEED_ORDERS).map(|i| order::New {
            customer: format!("customer-{}", i % 17),
            cents: 100 + i,
        }),
    )
    .await?;

    let app = Router::new()
        .route("/orders", post(place_order).get(count_orders))
        .layer(SessionLayer::new(db.clone()))
        .route("/health", get(health))
        .with_state(db.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    println!("API on http://{addr}; {SEED_ORDERS} orders seeded; the worker starts");

    let started = Instant::now();
    let worker = tokio::spawn(summarize(db.clone()));
    let mut placed = 0;
    let mut slowest = Duration::ZERO;
    let mut saw_degraded = false;
    while !worker.is_finished() {
        let sent = Instant::now();
        let order = json!({"customer": "walk-in", "cents": 1_000});
        let created = common::request(addr, "POST", "/orders", Some(order)).await?;
        let counted = common::request(addr, "GET", "/orders", None).await?;
        let health = common::request(addr, "GET", "/health", None).await?;
        let took = sent.elapsed();
        slowest = slowest.max(took);
        if created.status != 201 || counted.status != 200 || health.status != 200 {
            return Err(format!(
                "the API stopped answering while the worker ran: {created:?} {counted:?} {health:?}"
            )
            .into());
        }
        placed += 1;
        let status = serde_json::from_str::<serde_json::Value>(&health.body)?;
        let degraded = status["status"] == "degraded";
        if degraded && !saw_degraded {
            println!(
                "  API: health is degraded while the job runs: {}",
                status["reasons"][0]
            );
        }
        saw_degraded |= degraded;
        println!(
            "  API: order placed, {} orders now, health {}, 3 requests in {took:?}",
            counted.body, status["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = worker.await??;
    let saved = save_summary(&db, &summary).await?;
    println!(
        "worker done in {:?}: {} orders totalling {} cents in its snapshot (report #{})",
        started.elapsed(),
        summary.orders,
        summary.total_cents,
        saved.id
    );
    println!(
        "meanwhile the API placed {placed} orders ({} in the table now); slowest round of 3 \
         requests: {slowest:?}; health named the long job: {saw_degraded}",
        order::Ops::count(&db).await?
    );
    let s = db.session_stats();
    println!(
        "sessions: opened {}, committed {}, rolled back {}, dropped unfinished {}, peak {}",
        s.opened, s.committed, s.rolled_back, s.dropped_unfinished, s.peak
    );

    let _ = stop.send(());
    server.await??;
    example.finish(&TABLES).await?;
    Ok(())
}
