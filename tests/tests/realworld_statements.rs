//! No N+1 on the RealWorld list endpoints: the statements one request of `GET /api/articles` and
//! `GET /api/articles/feed` sends to the database are counted from sqlx's statement log (the
//! `sqlx::query` tracing target, one event per statement, on every backend), and must not grow
//! with the page.
//!
//! A test binary of its own: the counting subscriber is process-global, and nothing else may run
//! statements while a request is counted.

use std::sync::atomic::{AtomicU64, Ordering};

use ops_tests::realworld::Conduit;
use serde_json::json;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// The start of each counted statement, for the failure message.
static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Counts sqlx's per-statement events, leaving out transaction control (`BEGIN`, `COMMIT`, ...),
/// which some drivers log as statements and others run without a log line, and the pool's own
/// check of a returned connection.
struct CountStatements;

/// The text of an event's `summary` and `db.statement` fields.
#[derive(Default)]
struct StatementText(String);

impl tracing::field::Visit for StatementText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.0.push_str(value);
            self.0.push(' ');
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.0.push_str(&format!("{value:?} "));
        }
    }
}

impl<S: Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut text = StatementText::default();
        event.record(&mut text);
        let first = text
            .0
            .trim_start_matches(|c: char| c == '"' || c.is_whitespace())
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches(';')
            .to_ascii_uppercase();
        // `PRAGMA` is SQLite's connection setup: a request that happens to open a connection
        // (the pool grows under a loaded machine) runs it once, and it is not the request's.
        let control = matches!(
            first.as_str(),
            "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "SET" | "PRAGMA"
        );
        // ops checks on PostgreSQL whether a returned connection is still in a transaction; that
        // is the pool's housekeeping after the request, not one of its statements.
        let reset_check = text.0.contains("pg_catalog.statement_timestamp()");
        if !control && !reset_check {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut seen) = SEEN.lock() {
                seen.push(text.0.chars().take(60).collect());
            }
        }
    }
}

/// The statements `GET path` runs, counted around one request.
async fn statements(api: &Conduit, path: &str, token: Option<&str>) -> u64 {
    SEEN.lock().unwrap().clear();
    let before = STATEMENTS.load(Ordering::SeqCst);
    let reply = api.call("GET", path, token, None).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    let count = STATEMENTS.load(Ordering::SeqCst) - before;
    if count > 6 {
        eprintln!("{path}: {:#?}", SEEN.lock().unwrap());
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_feed_run_a_fixed_number_of_statements() {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("sqlx::query", tracing::Level::TRACE);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CountStatements.with_filter(filter)),
    )
    .expect("the only subscriber of this test binary");

    let api = Conduit::start("rw_statements").await;
    let mut tokens = Vec::new();
    for name in ["reader", "writer1", "writer2", "writer3"] {
        let reply = api
            .call(
                "POST",
                "/api/users",
                None,
                Some(json!({"user": {"username": name, "email": format!("{name}@x.io"), "password": "pw"}})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        tokens.push(reply.body["user"]["token"].as_str().unwrap().to_owned());
    }
    let reader = tokens[0].clone();
    // 24 articles by three authors, with tags and favorites, all followed by the reader.
    for i in 0..24 {
        let author = &tokens[1 + i % 3];
        let reply = api
            .call(
                "POST",
                "/api/articles",
                Some(author),
                Some(json!({"article": {"title": format!("Article {i}"), "description": "d", "body": "b", "tagList": ["t1", format!("t{}", i % 4)]}})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let slug = reply.body["article"]["slug"].as_str().unwrap().to_owned();
        let fav = api
            .call(
                "POST",
                &format!("/api/articles/{slug}/favorite"),
                Some(&reader),
                None,
            )
            .await;
        assert_eq!(fav.status, 200);
    }
    for name in ["writer1", "writer2", "writer3"] {
        let reply = api
            .call(
                "POST",
                &format!("/api/profiles/{name}/follow"),
                Some(&reader),
                None,
            )
            .await;
        assert_eq!(reply.status, 200);
    }

    let mut report = Vec::new();
    for (path, token) in [
        ("/api/articles?limit=1", None),
        ("/api/articles?limit=20", None),
        ("/api/articles?limit=1", Some(reader.as_str())),
        ("/api/articles?limit=20", Some(reader.as_str())),
        ("/api/articles?tag=t1&limit=20", Some(reader.as_str())),
        (
            "/api/articles?favorited=reader&author=writer1",
            Some(reader.as_str()),
        ),
        ("/api/articles/feed?limit=1", Some(reader.as_str())),
        ("/api/articles/feed?limit=20", Some(reader.as_str())),
    ] {
        // The first request may warm a connection up; count the second.
        statements(&api, path, token).await;
        let count = statements(&api, path, token).await;
        report.push((path, token.is_some(), count));
    }
    eprintln!("statements per request (besides the session's BEGIN and COMMIT):");
    for (path, authenticated, count) in &report {
        eprintln!(
            "  {count:2}  {path}{}",
            if *authenticated {
                " (with a token)"
            } else {
                ""
            }
        );
    }
    let count = |i: usize| report[i].2;
    // The page size changes nothing: no statement per article.
    assert_eq!(count(0), count(1), "anonymous list: {report:?}");
    assert_eq!(count(2), count(3), "list with a caller: {report:?}");
    assert_eq!(count(6), count(7), "feed: {report:?}");
    // The documented numbers: COUNT, the page joined with its authors, tags and favorite counts
    // (anonymous); plus the caller's favorites and follows with a token.
    assert_eq!(count(1), 4, "anonymous list: {report:?}");
    assert_eq!(count(3), 6, "list with a caller: {report:?}");
    assert_eq!(count(4), 6, "list by tag: {report:?}");
    assert_eq!(count(5), 6, "list by favorited and author: {report:?}");
    assert_eq!(count(7), 6, "feed: {report:?}");
    api.stop().await;
}
