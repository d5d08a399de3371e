//! A small HTTP API over two related entities, projects and their tasks, with a session per
//! request, `OpsError` answered as JSON with the right status, and a health endpoint.
//!
//! ```sh
//! cargo run -p ops-examples --example axum_service                 # serves on 127.0.0.1:3000
//! cargo run -p ops-examples --example axum_service -- --self-test  # calls itself, then exits
//! cargo run -p ops-examples --release --example axum_service -- --load  # 32 writers, then exits
//! ```
//!
//! `PORT` changes the port; `OPS_SELF_TEST=1` is the same as `--self-test`. `--load` creates a
//! project, then runs `OPS_LOAD_CLIENTS` (default 32) concurrent clients that each add tasks to it
//! for `OPS_LOAD_SECS` seconds (default 3), and prints how many answers had each status: on a
//! healthy setup every answer is a 201, and a 503 means a request lost a fight for the database.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /projects` `{"name"}` | 201 with the project; 409 when the name is taken |
//! | `GET /projects?page=&size=` | a page of projects |
//! | `GET /projects/{id}` | the project with its tasks; 404 |
//! | `DELETE /projects/{id}` | deletes its tasks and the project in one transaction; 204 |
//! | `POST /projects/{id}/tasks` `{"title"}` | 201 with the task; 404 when the project is absent |
//! | `PATCH /tasks/{id}` `{"title"?, "done"?}` | the task as updated |
//! | `GET /health` | the health report; 503 when unhealthy |
//! | `GET /stats` | session and error counters |
//! | `GET /metrics` | every ops metric in Prometheus text format (`metrics-exporter-prometheus`) |
//!
//! The metrics recorder is installed before the database connects: the pool's instruments are
//! registered at connect. Histograms get buckets (from 0.5 ms to 10 s), so Prometheus can
//! aggregate them across instances.

// Each example uses only part of the shared module.
#[allow(dead_code)]
mod common;

use std::future::IntoFuture;
use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ops_sea::axum::{RequestSession, SessionLayer, health};
use ops_sea::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod project {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops, serde::Serialize)]
    #[sea_orm(table_name = "svc_projects")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::task::Entity")]
        Task,
    }

    impl Related<super::task::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Task.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops, serde::Serialize)]
    #[sea_orm(table_name = "svc_tasks")]
    #[ops(list_by(project_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub project_id: i32,
        pub title: String,
        pub done: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::project::Entity",
            from = "Column::ProjectId",
            to = "super::project::Column::Id",
            on_delete = "Cascade"
        )]
        Project,
    }

    impl Related<super::project::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Project.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Children before parents, for dropping.
const TABLES: [&str; 2] = ["svc_tasks", "svc_projects"];

type ApiResult<T> = Result<T, OpsError>;

#[derive(Deserialize)]
struct NewProject {
    name: String,
}

#[derive(Deserialize)]
struct NewTask {
    title: String,
}

#[derive(Deserialize)]
struct TaskChanges {
    title: Option<String>,
    done: Option<bool>,
}

#[derive(Deserialize)]
struct Paging {
    page: Option<u64>,
    size: Option<u64>,
}

#[derive(Serialize)]
struct ProjectWithTasks {
    #[serde(flatten)]
    project: project::Model,
    tasks: Vec<task::Model>,
}

#[derive(Serialize)]
struct ProjectPage {
    items: Vec<project::Model>,
    page: u64,
    pages: u64,
    total: u64,
}

async fn create_project(
    tx: RequestSession,
    Json(input): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<project::Model>)> {
    let created = project::Ops::create(&tx, project::New { name: input.name }).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_projects(tx: RequestSession, Query(paging): Query<Paging>) -> ApiResult<Response> {
    let request = PageRequest::new(paging.page.unwrap_or(1), paging.size.unwrap_or(20)).asc("name");
    if let Err(invalid) = request.validate() {
        return Ok((StatusCode::BAD_REQUEST, invalid.0).into_response());
    }
    let page = project::Ops::list(&tx, request).await?;
    let pages = page.pages();
    Ok(Json(ProjectPage {
        items: page.items,
        page: page.page,
        pages,
        total: page.total,
    })
    .into_response())
}

async fn get_project(tx: RequestSession, Path(id): Path<i32>) -> ApiResult<Json<ProjectWithTasks>> {
    // Both reads run in the request's one session: a consistent pair on every backend that gives
    // a transaction a snapshot.
    let project = project::Ops::get(&tx, id).await?;
    let tasks = task::Ops::list_by_project_id(&tx, id).await?;
    Ok(Json(ProjectWithTasks { project, tasks }))
}

async fn delete_project(tx: RequestSession, Path(id): Path<i32>) -> ApiResult<StatusCode> {
    let tasks = task::Ops::list_by_project_id(&tx, id).await?;
    task::Ops::delete_many(&tx, tasks.into_iter().map(|t| t.id)).await?;
    if project::Ops::delete(&tx, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        // 404 rolls back the task deletions above along with everything else.
        Err(OpsError::not_found("project", "delete", id))
    }
}

async fn create_task(
    tx: RequestSession,
    Path(project_id): Path<i32>,
    Json(input): Json<NewTask>,
) -> ApiResult<(StatusCode, Json<task::Model>)> {
    // A clear 404 for a missing project, rather than the foreign key's 422.
    project::Ops::get(&tx, project_id).await?;
    let created = task::Ops::create(
        &tx,
        task::New {
            project_id,
            title: input.title,
            done: false,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_task(
    tx: RequestSession,
    Path(id): Path<i32>,
    Json(changes): Json<TaskChanges>,
) -> ApiResult<Json<task::Model>> {
    let patch = task::Patch {
        title: changes.title,
        done: changes.done,
        ..Default::default()
    };
    Ok(Json(task::Ops::update(&tx, id, patch).await?))
}

async fn stats(State(db): State<Db>) -> Json<serde_json::Value> {
    let sessions = db.session_stats();
    let errors = db.error_stats();
    Json(json!({
        "sessions": {
            "opened": sessions.opened,
            "committed": sessions.committed,
            "rolled_back": sessions.rolled_back,
            "active": sessions.active,
        },
        // Keyed by category; JSON keys are strings, so each is its display form.
        "errors": errors
            .by_category
            .iter()
            .map(|(category, count)| (category.to_string(), *count))
            .collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

/// Installs the Prometheus recorder and keeps its histograms trimmed.
fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    const BUCKETS: [f64; 14] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn app(db: &Db, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{id}", get(get_project).delete(delete_project))
        .route("/projects/{id}/tasks", axum::routing::post(create_task))
        .route("/tasks/{id}", axum::routing::patch(update_task))
        .layer(SessionLayer::new(db.clone()))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .with_state(db.clone())
}

/// One sample of a Prometheus text exposition: `name{labels} value`.
struct Sample<'a> {
    series: &'a str,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some(Sample {
                series,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every one of `labels` (`key="value"`).
fn sum(samples: &[Sample<'_>], name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| {
            let (series_name, rest) = s.series.split_once('{').unwrap_or((s.series, ""));
            series_name == name && labels.iter().all(|label| rest.contains(label))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// A series to check: its name, labels it must carry, and what a sane value is.
type Check = (&'static str, &'static [&'static str], fn(f64) -> bool);

/// Scrapes `/metrics` over HTTP and checks the series a dashboard is built on; returns how many
/// checks failed. The pool gauges are sampled once a second, so it scrapes until they show.
async fn check_metrics(addr: SocketAddr) -> std::io::Result<usize> {
    let mut body = String::new();
    for _ in 0..30 {
        let reply = common::request(addr, "GET", "/metrics", None).await?;
        if reply.status != 200 {
            println!("BAD GET    /metrics -> {}", reply.status);
            return Ok(1);
        }
        body = reply.body;
        if sum(
            &samples(&body),
            "ops_pool_connections_open",
            &[r#"pool="primary""#],
        )
        .is_some_and(|open| open >= 1.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let samples = samples(&body);
    let checks: [Check; 12] = [
        ("ops_sessions_opened_total", &[], |v| v >= 10.0),
        ("ops_sessions_committed_total", &[], |v| v >= 8.0),
        ("ops_sessions_rolled_back_total", &[], |v| v >= 1.0),
        ("ops_sessions_active", &[], |v| v == 0.0),
        ("ops_session_duration_seconds_count", &[], |v| v >= 10.0),
        ("ops_pool_connections_open", &[r#"pool="primary""#], |v| {
            v >= 1.0
        }),
        ("ops_pool_connections_max", &[r#"pool="primary""#], |v| {
            v >= 1.0
        }),
        ("ops_pool_waiting", &[r#"pool="primary""#], |v| v == 0.0),
        (
            "ops_pool_acquire_seconds_count",
            &[r#"pool="primary""#],
            |v| v >= 10.0,
        ),
        (
            "ops_statement_duration_seconds_count",
            &[
                r#"entity="project""#,
                r#"operation="create""#,
                r#"outcome="ok""#,
            ],
            |v| v >= 2.0,
        ),
        (
            "ops_errors_total",
            &[r#"category="integrity(unique)""#],
            |v| v >= 1.0,
        ),
        (
            "ops_pool_connections_opened_total",
            &[r#"pool="primary""#],
            |v| v >= 1.0,
        ),
    ];
    let mut failures = 0;
    for (name, labels, sane) in checks {
        let value = sum(&samples, name, labels);
        let ok = value.is_some_and(sane);
        println!(
            "{} GET    /metrics {name}{{{}}} = {}",
            if ok { "ok " } else { "BAD" },
            labels.join(","),
            value.map_or_else(|| "absent".to_owned(), |v| v.to_string())
        );
        failures += usize::from(!ok);
    }
    Ok(failures)
}

/// Calls the running API and checks each answer; returns how many checks failed.
async fn self_test(addr: SocketAddr) -> std::io::Result<usize> {
    let mut failures = 0;
    let mut call =
        async |method: &str, path: &str, body: Option<serde_json::Value>, expect: u16| {
            let reply = common::request(addr, method, path, body).await?;
            let mark = if reply.status == expect { "ok " } else { "BAD" };
            println!(
                "{mark} {method:6} {path:24} -> {} {}",
                reply.status, reply.body
            );
            if reply.status != expect {
                failures += 1;
            }
            Ok::<_, std::io::Error>(reply)
        };
    let created = call("POST", "/projects", Some(json!({"name": "launch"})), 201).await?;
    let id = serde_json::from_str::<serde_json::Value>(&created.body)
        .ok()
        .and_then(|v| v["id"].as_i64())
        .unwrap_or(0);
    call("POST", "/projects", Some(json!({"name": "launch"})), 409).await?;
    call("POST", "/projects", Some(json!({"name": "docs"})), 201).await?;
    let tasks = format!("/projects/{id}/tasks");
    let first = call(
        "POST",
        &tasks,
        Some(json!({"title": "write the plan"})),
        201,
    )
    .await?;
    call("POST", &tasks, Some(json!({"title": "ship it"})), 201).await?;
    call(
        "POST",
        "/projects/9999/tasks",
        Some(json!({"title": "lost"})),
        404,
    )
    .await?;
    let task_id = serde_json::from_str::<serde_json::Value>(&first.body)
        .ok()
        .and_then(|v| v["id"].as_i64())
        .unwrap_or(0);
    let task = format!("/tasks/{task_id}");
    call("PATCH", &task, Some(json!({"done": true})), 200).await?;
    call("GET", &format!("/projects/{id}"), None, 200).await?;
    call("GET", "/projects?page=1&size=10", None, 200).await?;
    call("GET", "/projects?page=0", None, 400).await?;
    call("DELETE", &format!("/projects/{id}"), None, 204).await?;
    call("GET", &format!("/projects/{id}"), None, 404).await?;
    call("DELETE", &format!("/projects/{id}"), None, 404).await?;
    call("GET", "/health", None, 200).await?;
    call("GET", "/stats", None, 200).await?;
    failures += check_metrics(addr).await?;
    Ok(failures)
}

/// Concurrent clients adding tasks to one project; prints the answers by status and returns how
/// many were not a 201.
async fn load(addr: SocketAddr) -> Result<u64, Box<dyn std::error::Error>> {
    let clients: usize = env_number("OPS_LOAD_CLIENTS", 32)?;
    let secs: f64 = env_number("OPS_LOAD_SECS", 3.0)?;
    let created = common::request(addr, "POST", "/projects", Some(json!({"name": "load"}))).await?;
    let id = serde_json::from_str::<serde_json::Value>(&created.body)?["id"]
        .as_i64()
        .ok_or("the load project was not created")?;
    let path = format!("/projects/{id}/tasks");
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
                let mut n = 0;
                while std::time::Instant::now() < until {
                    let title = json!({"title": format!("task {client}.{n}")});
                    let status = match common::request(addr, "POST", &path, Some(title)).await {
                        Ok(reply) => reply.status,
                        // No answer at all: counted apart from every HTTP status.
                        Err(_) => 0,
                    };
                    *statuses.entry(status).or_default() += 1;
                    n += 1;
                }
                statuses
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for worker in workers {
        for (status, n) in worker.await? {
            *statuses.entry(status).or_default() += n;
        }
    }
    let total: u64 = statuses.values().sum();
    let not_created = total - statuses.get(&201).copied().unwrap_or(0);
    let unavailable = statuses.get(&503).copied().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let (rate, share) = (
        total as f64 / started.elapsed().as_secs_f64(),
        100.0 * unavailable as f64 / total.max(1) as f64,
    );
    println!(
        "load: {clients} clients, {total} requests ({rate:.0}/s), by status {statuses:?} \
         (0 = no answer); 503: {share:.1}%"
    );
    Ok(not_created)
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let loading = std::env::args().any(|a| a == "--load");
    let self_testing = loading
        || std::env::args().any(|a| a == "--self-test")
        || std::env::var("OPS_SELF_TEST").is_ok_and(|v| v == "1");
    let metrics = install_metrics()?;
    let example = common::open("axum_service", |_| {}).await?;
    let db = example.db.clone();
    common::drop_tables(&db, &TABLES).await?;
    common::create_table(&db, project::Entity).await?;
    common::create_table(&db, task::Entity).await?;

    let port = if self_testing {
        0
    } else {
        match std::env::var("PORT") {
            Ok(port) => port
                .parse()
                .map_err(|e| format!("PORT={port} is not a port number: {e}"))?,
            Err(_) => 3000,
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app(&db, metrics))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    println!("listening on http://{addr}");

    let failures = if loading {
        let not_created = load(addr).await?;
        let e = db.error_stats();
        println!(
            "errors by category {:?}; retries {}",
            e.by_category, e.retries_attempted
        );
        // A measurement, not a check: it reports the failed answers and fails only when none
        // got through at all.
        usize::from(not_created > 0 && db.session_stats().committed == 0)
    } else if self_testing {
        let failures = self_test(addr).await?;
        let s = db.session_stats();
        println!(
            "sessions: opened {}, committed {}, rolled back {}, active {}",
            s.opened, s.committed, s.rolled_back, s.active
        );
        failures
    } else {
        println!("press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        0
    };
    let _ = stop.send(());
    server.await??;
    example.finish(&TABLES).await?;
    if failures > 0 {
        return Err(format!("{failures} self-test check(s) failed").into());
    }
    Ok(())
}
