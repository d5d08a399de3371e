//! Spans with the OpenTelemetry database field names, SQL text only when asked for, and slow
//! statements (`DB_SLOW_STATEMENT`), on the backend `DATABASE_URL` names.
//!
//! Each test captures what it emits with a subscriber of its own, set for its thread (the tests
//! run on a current-thread runtime, so everything they start runs there).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_sea::{Db, OpsError, SessionOptions};
use ops_tests::fixtures::item;
use ops_tests::{STEP_TIMEOUT, TestDb, bounded};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span or event as captured: its name (an event's is its message) and its fields.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: String,
    level: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<(u64, Captured)>>>,
    events: Arc<Mutex<Vec<Captured>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut captured = Captured {
            name: attrs.metadata().name().to_owned(),
            level: attrs.metadata().level().to_string(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        self.spans.lock().unwrap().push((id.into_u64(), captured));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, captured)) = spans.iter_mut().rev().find(|(i, _)| *i == id.into_u64()) {
            values.record(&mut Fields(&mut captured.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut captured = Captured {
            level: event.metadata().level().to_string(),
            ..Captured::default()
        };
        event.record(&mut Fields(&mut captured.fields));
        captured.name = captured.fields.get("message").cloned().unwrap_or_default();
        self.events.lock().unwrap().push(captured);
    }
}

impl Capture {
    fn spans(&self, name: &str) -> Vec<Captured> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn events(&self) -> Vec<Captured> {
        self.events.lock().unwrap().clone()
    }
}

/// Captures everything at debug level and above for the current thread.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(capture.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
}

async fn setup(
    test: &TestDb,
    builder: impl FnOnce(ops_sea::DbBuilder) -> ops_sea::DbBuilder,
) -> Db {
    item::connect_with_table(builder(Db::builder(&test.url))).await
}

fn system_name(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::Postgres => "postgresql",
        sea_orm::DbBackend::MySql => "mysql",
        _ => "sqlite",
    }
}

fn field<'a>(captured: &'a Captured, name: &str) -> Option<&'a str> {
    captured.fields.get(name).map(String::as_str)
}

#[tokio::test]
async fn repository_and_session_spans_carry_the_opentelemetry_fields() {
    let test = TestDb::new("telemetry_spans").await;
    let db = setup(&test, |b| b).await;
    let (capture, guard) = capture();

    bounded("the traced work", STEP_TIMEOUT, async {
        db.run(SessionOptions::new().name("span_session"), |s| async move {
            item::Ops::create(
                &s,
                item::New {
                    id: 1,
                    name: "one".into(),
                },
            )
            .await?;
            Ok::<_, OpsError>(())
        })
        .await
        .expect("the session");
        let missing = item::Ops::get(&db, 42).await.expect_err("not found");
        assert_eq!(missing.category(), ops_sea::ErrorCategory::NotFound);
    })
    .await;
    drop(guard);

    let system = system_name(db.backend());
    let repository = capture.spans("ops.repository");
    let create = repository
        .iter()
        .find(|s| field(s, "db.operation.name") == Some("create"))
        .unwrap_or_else(|| panic!("a create span among {repository:#?}"));
    assert_eq!(field(create, "db.system.name"), Some(system));
    assert_eq!(field(create, "db.collection.name"), Some("named_items"));
    assert_eq!(field(create, "otel.name"), Some("create named_items"));
    assert_eq!(field(create, "otel.kind"), Some("client"));
    assert_eq!(
        field(create, "error.type"),
        None,
        "a success has no error.type"
    );
    assert!(
        field(create, "db.namespace").is_some_and(|ns| ns.contains(&test.name)),
        "db.namespace names the database: {create:?}"
    );
    if test.backend != ops_tests::Backend::Sqlite {
        assert_eq!(field(create, "server.address"), Some("127.0.0.1"));
        assert!(field(create, "server.port").is_some(), "{create:?}");
    }
    assert!(
        create.fields.keys().all(|k| k != "db.query.text"),
        "no SQL text unless asked for: {create:?}"
    );
    let get = repository
        .iter()
        .find(|s| field(s, "db.operation.name") == Some("get"))
        .expect("a get span");
    assert_eq!(field(get, "error.type"), Some("not_found"));

    let sessions = capture.spans("ops.session");
    let session = sessions
        .iter()
        .find(|s| field(s, "session.name") == Some("span_session"))
        .unwrap_or_else(|| panic!("the session's span among {sessions:#?}"));
    assert_eq!(session.level, "INFO");
    assert_eq!(field(session, "db.system.name"), Some(system));
    assert_eq!(field(session, "otel.name"), Some("session span_session"));
    assert!(
        field(session, "code.filepath").is_some_and(|f| f.ends_with("telemetry.rs")),
        "{session:?}"
    );
    assert_eq!(field(session, "error.type"), None);

    assert!(
        capture.spans("ops.statement").is_empty(),
        "statement spans only with DB_TRACE_SQL"
    );
    db.close().await;
    test.cleanup().await;
}

#[tokio::test]
async fn sql_text_is_traced_only_when_asked_for_and_never_its_values() {
    let test = TestDb::new("telemetry_sql").await;
    let db = setup(&test, |b| b.trace_sql(true)).await;
    let (capture, guard) = capture();
    bounded("the traced work", STEP_TIMEOUT, async {
        item::Ops::create(
            &db,
            item::New {
                id: 7,
                name: "secret-value".into(),
            },
        )
        .await
        .expect("create");
    })
    .await;
    drop(guard);
    let statements = capture.spans("ops.statement");
    let insert = statements
        .iter()
        .find(|s| field(s, "db.query.text").is_some_and(|q| q.contains("INSERT")))
        .unwrap_or_else(|| panic!("an INSERT statement span among {statements:#?}"));
    assert_eq!(field(insert, "db.operation.name"), Some("create"));
    assert_eq!(field(insert, "db.collection.name"), Some("named_items"));
    assert_eq!(field(insert, "entity"), Some("item"));
    let text = field(insert, "db.query.text").unwrap();
    assert!(
        !text.contains("secret-value"),
        "parameter values never reach the trace: {text}"
    );
    db.close().await;
    test.cleanup().await;
}

#[tokio::test]
async fn a_slow_statement_is_logged_once_with_its_context_and_counted() {
    let test = TestDb::new("telemetry_slow").await;
    // A threshold every statement passes, so the test does not depend on the machine's speed.
    let db = setup(&test, |b| b.slow_statement(Some(Duration::from_nanos(1)))).await;
    let (capture, guard) = capture();
    bounded("the slow work", STEP_TIMEOUT, async {
        db.run(SessionOptions::new().name("slow_session"), |s| async move {
            item::Ops::create(
                &s,
                item::New {
                    id: 9,
                    name: "hidden-value".into(),
                },
            )
            .await
        })
        .await
        .expect("the session");
    })
    .await;
    drop(guard);

    let slow: Vec<Captured> = capture
        .events()
        .into_iter()
        .filter(|e| e.name.starts_with("slow statement"))
        .collect();
    let insert: Vec<&Captured> = slow
        .iter()
        .filter(|e| field(e, "db.query.text").is_some_and(|q| q.contains("INSERT")))
        .collect();
    assert_eq!(insert.len(), 1, "the INSERT is logged once: {slow:#?}");
    let event = insert[0];
    assert_eq!(event.level, "WARN");
    assert_eq!(field(event, "session.name"), Some("slow_session"));
    assert_eq!(field(event, "db.operation.name"), Some("create"));
    assert_eq!(field(event, "db.collection.name"), Some("named_items"));
    assert_eq!(field(event, "entity"), Some("item"));
    assert!(
        field(event, "session.origin").is_some_and(|o| o.contains("telemetry.rs:")),
        "{event:?}"
    );
    assert!(field(event, "duration").is_some());
    assert!(
        !event.name.contains("hidden-value"),
        "parameter values never reach the log: {}",
        event.name
    );
    assert!(
        event.name.contains("item::create") && event.name.contains("slow_session"),
        "{}",
        event.name
    );
    let stats = db.error_stats();
    assert!(
        stats.slow_statements >= 1,
        "counted in the stats: {}",
        stats.slow_statements
    );
    assert_eq!(stats.total, 0, "a slow statement is not an error");
    db.close().await;
    test.cleanup().await;
}
