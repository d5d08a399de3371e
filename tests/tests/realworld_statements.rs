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

/// Counts sqlx's per-statement events.
struct CountStatements;

impl<S: Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The statements `GET path` runs, counted around one request.
async fn statements(api: &Conduit, path: &str, token: Option<&str>) -> u64 {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let reply = api.call("GET", path, token, None).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    STATEMENTS.load(Ordering::SeqCst) - before
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
            .call("POST", &format!("/api/articles/{slug}/favorite"), Some(&reader), None)
            .await;
        assert_eq!(fav.status, 200);
    }
    for name in ["writer1", "writer2", "writer3"] {
        let reply = api
            .call("POST", &format!("/api/profiles/{name}/follow"), Some(&reader), None)
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
        ("/api/articles?favorited=reader&author=writer1", Some(reader.as_str())),
        ("/api/articles/feed?limit=1", Some(reader.as_str())),
        ("/api/articles/feed?limit=20", Some(reader.as_str())),
    ] {
        // The first request may warm a connection up; count the second.
        statements(&api, path, token).await;
        let count = statements(&api, path, token).await;
        report.push((path, token.is_some(), count));
    }
    eprintln!("statements per request (including the session's BEGIN and COMMIT):");
    for (path, authenticated, count) in &report {
        eprintln!("  {count:2}  {path}{}", if *authenticated { " (with a token)" } else { "" });
    }
    let count = |i: usize| report[i].2;
    // The page size changes nothing: no statement per article.
    assert_eq!(count(0), count(1), "anonymous list: {report:?}");
    assert_eq!(count(2), count(3), "list with a caller: {report:?}");
    assert_eq!(count(6), count(7), "feed: {report:?}");
    // The documented numbers: COUNT, the page joined with its authors, tags and favorite counts
    // (anonymous); plus the caller's favorites and follows with a token; plus BEGIN and COMMIT.
    assert_eq!(count(1), 4 + 2, "anonymous list: {report:?}");
    assert_eq!(count(3), 6 + 2, "list with a caller: {report:?}");
    assert_eq!(count(4), 6 + 2, "list by tag: {report:?}");
    assert_eq!(count(7), 6 + 2, "feed: {report:?}");
    api.stop().await;
}
