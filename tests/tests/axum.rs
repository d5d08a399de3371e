//! The axum integration end to end: a real server on 127.0.0.1, real HTTP/1.1 requests, and the
//! database checked from a connection of its own after each answer.
//!
//! Proves the request session's lifecycle (lazy begin, commit on 2xx/3xx, rollback on 4xx/5xx and
//! on handler errors, one session shared by middleware and handler, a commit failure turned into
//! the error response, a handle that escaped the request), the mapping of `OpsError` onto
//! statuses, `Retry-After` and a JSON body free of SQL and values, and the health endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ops_sea::axum::{RequestSession, SessionLayer, health};
use ops_sea::prelude::*;
use ops_sea::{RetryReason, SessionStats};
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, backend, bounded};
use sea_orm::{ConnectionTrait, DatabaseConnection, Schema};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

pub mod note {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "notes")]
    #[ops(find_by(slug))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub slug: String,
        pub body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

// ---------------------------------------------------------------------------------------------
// A server and a client
// ---------------------------------------------------------------------------------------------

/// A running server, stopped by `stop`.
struct Server {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(app: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Server {
        addr,
        shutdown,
        task,
    }
}

impl Server {
    async fn stop(self) {
        let _ = self.shutdown.send(());
        bounded("server shutdown", STEP_TIMEOUT, self.task)
            .await
            .expect("server task");
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path).await
    }

    async fn post(&self, path: &str) -> Reply {
        self.send("POST", path).await
    }

    /// One HTTP/1.1 request on a connection of its own, read to the end.
    async fn send(&self, method: &str, path: &str) -> Reply {
        let what = format!("{method} {path}");
        bounded(&what, STEP_TIMEOUT, async {
            let mut stream = TcpStream::connect(self.addr).await.expect("connect");
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.expect("write");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read");
            Reply::parse(&raw)
        })
        .await
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// The application under test
// ---------------------------------------------------------------------------------------------

async fn setup(name: &str) -> (TestDb, Db, DatabaseConnection) {
    let t = TestDb::new(name).await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let schema = Schema::new(admin.get_database_backend());
    admin
        .execute(&schema.create_table_from_entity(note::Entity))
        .await
        .expect("create notes");
    admin
        .execute_unprepared(
            "CREATE TABLE labels (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL)",
        )
        .await
        .expect("create labels");
    let db = Db::builder(&t.url)
        .pool_size(4)
        .max_overflow(2)
        .connect()
        .await
        .expect("connect");
    (t, db, admin)
}

async fn finish(t: TestDb, db: Db, server: Server) {
    server.stop().await;
    db.close().await;
    t.cleanup().await;
}

type Answer = Result<Response, OpsError>;

/// Inserts an item and answers 201.
async fn create_item(tx: RequestSession, Path((id, name)): Path<(i64, String)>) -> Answer {
    insert_item(&tx, id, &name).await?;
    Ok((StatusCode::CREATED, "created").into_response())
}

/// Inserts an item, then answers 400 as a plain response (not an error).
async fn create_then_reject(tx: RequestSession, Path((id, name)): Path<(i64, String)>) -> Answer {
    insert_item(&tx, id, &name).await?;
    Ok((StatusCode::BAD_REQUEST, "rejected").into_response())
}

/// Inserts an item, then fails with `NotFound`.
async fn create_then_not_found(
    tx: RequestSession,
    Path((id, name)): Path<(i64, String)>,
) -> Answer {
    insert_item(&tx, id, &name).await?;
    Err(OpsError::not_found("item", "lookup", id))
}

/// Inserts an item, then runs a statement that fails in the database.
async fn create_then_broken(tx: RequestSession, Path((id, name)): Path<(i64, String)>) -> Answer {
    insert_item(&tx, id, &name).await?;
    tx.execute_unprepared("SELECT missing_column FROM items")
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// Inserts an item and redirects.
async fn create_then_redirect(tx: RequestSession, Path((id, name)): Path<(i64, String)>) -> Answer {
    insert_item(&tx, id, &name).await?;
    Ok(Redirect::to("/items").into_response())
}

/// Counts the items through the request session.
async fn count_items(tx: RequestSession) -> Answer {
    let session = tx.session().await?;
    Ok(count(session, "items").await.to_string().into_response())
}

/// Two statements at once as the request's first use: they wait for one begin.
async fn count_twice(tx: RequestSession) -> String {
    let (a, b) = tokio::join!(count(&tx, "items"), count(&tx, "items"));
    format!("{a} {b}")
}

/// Extracts the session and never uses it.
async fn untouched(tx: RequestSession) -> &'static str {
    assert!(!tx.is_begun());
    "untouched"
}

/// Inserts a label with no text: a NOT NULL violation.
async fn null_label(tx: RequestSession, Path(id): Path<i64>) -> Answer {
    let backend = tx.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "INSERT INTO labels (id, label) VALUES ($1, NULL)",
        _ => "INSERT INTO labels (id, label) VALUES (?, NULL)",
    };
    tx.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [id.into()],
    ))
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Creates a note through the generated repository, with the request session as executor.
async fn create_note(tx: RequestSession, Path((slug, body)): Path<(String, String)>) -> Answer {
    let created = note::Ops::create(&tx, note::New { slug, body }).await?;
    Ok((StatusCode::CREATED, created.id.to_string()).into_response())
}

/// An error of every category that has its own status.
async fn fail_with(Path(kind): Path<String>) -> Answer {
    let category = match kind.as_str() {
        "not_found" => ErrorCategory::NotFound,
        "unique" => ErrorCategory::Integrity(IntegrityKind::Unique),
        "check" => ErrorCategory::Integrity(IntegrityKind::Check),
        "deadlock" => ErrorCategory::Retryable(RetryReason::Deadlock),
        "pool_exhausted" => ErrorCategory::Retryable(RetryReason::PoolExhausted),
        "unavailable" => ErrorCategory::Unavailable,
        "commit_unknown" => ErrorCategory::CommitUnknown,
        "multiple_results" => ErrorCategory::MultipleResults,
        "configuration" => ErrorCategory::Configuration,
        _ => ErrorCategory::Programming,
    };
    Err(OpsError::new(
        category,
        "SELECT password FROM users WHERE token = 'tok-secret' failed",
    ))
}

/// Middleware that writes an audit row in the request session before the handler runs, and
/// after it reports how many items that same session sees.
async fn audit(tx: RequestSession, request: Request, next: Next) -> Response {
    if let Err(err) = insert_item(&tx, 1000, "audit").await {
        return OpsError::from(err).into_response();
    }
    let mut response = next.run(request).await;
    let seen = count(&tx, "items").await;
    response
        .headers_mut()
        .insert("x-items-seen", seen.to_string().parse().expect("header"));
    response
}

/// Answers 409 after the middleware and the handler both wrote.
async fn create_then_conflict(tx: RequestSession, Path((id, name)): Path<(i64, String)>) -> Answer {
    insert_item(&tx, id, &name).await?;
    Ok((StatusCode::CONFLICT, "conflict").into_response())
}

fn app(db: &Db) -> Router {
    let audited = Router::new()
        .route("/audited/{id}/{name}", post(create_item))
        .route("/audited/{id}/{name}/conflict", post(create_then_conflict))
        .route_layer(from_fn(audit));
    Router::new()
        .route("/items", get(count_items))
        .route("/items/{id}/{name}", post(create_item))
        .route("/items/{id}/{name}/reject", post(create_then_reject))
        .route("/items/{id}/{name}/not-found", post(create_then_not_found))
        .route("/items/{id}/{name}/broken", post(create_then_broken))
        .route("/items/{id}/{name}/redirect", post(create_then_redirect))
        .route("/items/twice", get(count_twice))
        .route("/untouched", get(untouched))
        .route("/plain", get(|| async { "plain" }))
        .route("/labels/{id}", post(null_label))
        .route("/notes/{slug}/{body}", post(create_note))
        .route("/errors/{kind}", get(fail_with))
        .merge(audited)
        .layer(SessionLayer::new(db.clone()))
        .route("/health", get(health).with_state(db.clone()))
}

/// The counters that moved between two snapshots.
#[derive(Debug, PartialEq, Eq)]
struct Moved {
    opened: u64,
    committed: u64,
    rolled_back: u64,
}

fn moved(before: &SessionStats, after: &SessionStats) -> Moved {
    Moved {
        opened: after.opened - before.opened,
        committed: after.committed - before.committed,
        rolled_back: after.rolled_back - before.rolled_back,
    }
}

const COMMITTED: Moved = Moved {
    opened: 1,
    committed: 1,
    rolled_back: 0,
};

const ROLLED_BACK: Moved = Moved {
    opened: 1,
    committed: 0,
    rolled_back: 1,
};

const NONE: Moved = Moved {
    opened: 0,
    committed: 0,
    rolled_back: 0,
};

// ---------------------------------------------------------------------------------------------
// The session's lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn success_commits_and_redirect_commits() {
    let (t, db, admin) = setup("axum_commit").await;
    let server = serve(app(&db)).await;

    let before = db.session_stats();
    let reply = server.post("/items/1/one").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(moved(&before, &db.session_stats()), COMMITTED);
    assert_eq!(count(&admin, "items").await, 1);

    let before = db.session_stats();
    let reply = server.post("/items/2/two/redirect").await;
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(reply.header("location"), Some("/items"));
    assert_eq!(moved(&before, &db.session_stats()), COMMITTED);
    assert_eq!(count(&admin, "items").await, 2);

    // A read-only request commits its session too, and sees the committed rows.
    let reply = server.get("/items").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "2"));
    assert_eq!(db.session_stats().active, 0);
    finish(t, db, server).await;
}

#[tokio::test]
async fn error_statuses_and_handler_errors_roll_back() {
    let (t, db, admin) = setup("axum_rollback").await;
    let server = serve(app(&db)).await;

    // A plain 400 response, not an error value: still rolled back.
    let before = db.session_stats();
    let reply = server.post("/items/1/one/reject").await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(moved(&before, &db.session_stats()), ROLLED_BACK);

    // A handler returning `Err(OpsError)`: 404 and rolled back.
    let before = db.session_stats();
    let reply = server.post("/items/2/two/not-found").await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.json()["kind"], "not_found");
    assert_eq!(moved(&before, &db.session_stats()), ROLLED_BACK);

    // A statement failing in the database: 500 and rolled back (on PostgreSQL the transaction
    // is aborted by then, and the rollback still succeeds).
    let before = db.session_stats();
    let reply = server.post("/items/3/three/broken").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(reply.json()["kind"], "programming");
    assert_eq!(moved(&before, &db.session_stats()), ROLLED_BACK);

    assert_eq!(count(&admin, "items").await, 0, "nothing was committed");
    let stats = db.session_stats();
    assert_eq!((stats.active, stats.dropped_unfinished), (0, 0));

    // The connections went back clean: a later request commits normally.
    assert_eq!(server.post("/items/4/four").await.status, 201);
    assert_eq!(count(&admin, "items").await, 1);
    finish(t, db, server).await;
}

#[tokio::test]
async fn a_request_that_never_uses_its_session_opens_none() {
    let (t, db, _admin) = setup("axum_lazy").await;
    let server = serve(app(&db)).await;

    let before = db.session_stats();
    assert_eq!(server.get("/untouched").await.status, 200);
    assert_eq!(server.get("/plain").await.status, 200);
    // An error that involves no statement opens none either.
    assert_eq!(server.get("/errors/not_found").await.status, 404);
    assert_eq!(moved(&before, &db.session_stats()), NONE);
    finish(t, db, server).await;
}

#[tokio::test]
async fn middleware_and_handler_share_one_session() {
    let (t, db, admin) = setup("axum_shared").await;
    let server = serve(app(&db)).await;

    let before = db.session_stats();
    let reply = server.post("/audited/1/one").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    // The middleware, after the handler, sees both rows before they are committed: one session.
    assert_eq!(reply.header("x-items-seen"), Some("2"));
    assert_eq!(moved(&before, &db.session_stats()), COMMITTED);
    assert_eq!(count(&admin, "items").await, 2);

    // Concurrent first uses in one handler begin one session between them.
    let before = db.session_stats();
    let reply = server.get("/items/twice").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "2 2"));
    assert_eq!(moved(&before, &db.session_stats()), COMMITTED);

    // A failing response rolls back the middleware's write with the handler's.
    let before = db.session_stats();
    let reply = server.post("/audited/2/two/conflict").await;
    assert_eq!(reply.status, 409, "{reply:?}");
    assert_eq!(moved(&before, &db.session_stats()), ROLLED_BACK);
    assert_eq!(count(&admin, "items").await, 2);
    finish(t, db, server).await;
}

#[tokio::test]
async fn repositories_take_the_request_session() {
    let (t, db, admin) = setup("axum_repo").await;
    let server = serve(app(&db)).await;

    let reply = server.post("/notes/first/hello").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let found = note::Ops::find_by_slug(&admin, "first")
        .await
        .expect("find")
        .expect("the note was committed");
    assert_eq!(found.body, "hello");

    // The same slug again: a unique violation from the database, as a 409 whose body holds the
    // category and the user message but no SQL, table, column or value.
    let errors_before = db.error_stats();
    let reply = server.post("/notes/first/s3cr3t-value").await;
    assert_eq!(reply.status, 409, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["kind"], "integrity");
    assert_eq!(body["category"], "integrity(unique)");
    assert_eq!(
        body["message"],
        ErrorCategory::Integrity(IntegrityKind::Unique).user_message()
    );
    assert_eq!(body["retryable"], false);
    let lower = reply.body.to_ascii_lowercase();
    for leak in [
        "insert",
        "notes",
        "slug",
        "s3cr3t",
        "first",
        "hello",
        "constraint",
    ] {
        assert!(
            !lower.contains(leak),
            "the body leaks {leak:?}: {}",
            reply.body
        );
    }
    // Counted once, by the session that ran the statement.
    let errors = db.error_stats();
    let unique = |stats: &ops_sea::ErrorStats| {
        stats
            .by_category
            .get(&ErrorCategory::Integrity(IntegrityKind::Unique))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(unique(&errors) - unique(&errors_before), 1);
    finish(t, db, server).await;
}

#[tokio::test]
async fn a_failed_commit_becomes_the_response() {
    if backend() == Backend::MySql {
        // MySQL and MariaDB check every constraint at once: nothing can fail at COMMIT on demand.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "skipped: a_failed_commit_becomes_the_response needs deferred constraints \
             (PostgreSQL or SQLite)"
        );
        return;
    }
    let (t, db, admin) = setup("axum_commit_fails").await;
    admin
        .execute_unprepared("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        .await
        .expect("create parents");
    admin
        .execute_unprepared(
            "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER \
             REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .await
        .expect("create children");
    async fn orphan(tx: RequestSession) -> Answer {
        tx.execute_unprepared("INSERT INTO children (id, parent_id) VALUES (1, 99)")
            .await?;
        Ok((StatusCode::CREATED, "created").into_response())
    }
    let app = Router::new()
        .route("/orphans", post(orphan))
        .layer(SessionLayer::new(db.clone()));
    let server = serve(app).await;

    // The handler answered 201, but the deferred foreign key fails at COMMIT: the client gets
    // the commit's error instead of a success that was not saved.
    let before = db.session_stats();
    let reply = server.post("/orphans").await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.json()["category"], "integrity(foreign_key)");
    let after = db.session_stats();
    assert_eq!(
        (
            after.opened - before.opened,
            after.committed - before.committed
        ),
        (1, 0)
    );
    assert_eq!(count(&admin, "children").await, 0);
    finish(t, db, server).await;
}

#[tokio::test]
async fn a_handle_that_outlives_the_request_is_not_committed() {
    let (t, db, admin) = setup("axum_escaped").await;
    let release = Arc::new(Notify::new());
    let released = Arc::clone(&release);
    let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |tx: RequestSession| async move {
        insert_item(&tx, 1, "escaped").await?;
        // The handle leaves the request in a task that outlives it.
        let held = tx.clone();
        tokio::spawn(async move {
            released.notified().await;
            // Used after the response: refused, not begun anew.
            let outcome = held.session().await.map(|_| ()).map_err(|e| e.category());
            let _ = report.send(outcome);
        });
        Ok::<_, OpsError>(StatusCode::CREATED)
    };
    let app = Router::new()
        .route("/escape", post(handler))
        .layer(SessionLayer::new(db.clone()));
    let server = serve(app).await;

    let reply = server.post("/escape").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(reply.json()["kind"], "programming");
    assert_eq!(db.session_stats().committed, 0);

    // When the task drops the last handle, the session rolls back.
    release.notify_one();
    let outcome = bounded("the escaped task", STEP_TIMEOUT, reported.recv()).await;
    assert_eq!(outcome, Some(Err(ErrorCategory::Programming)));
    bounded("the escaped session rolls back", STEP_TIMEOUT, async {
        while db.session_stats().active > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.session_stats();
    assert_eq!((stats.committed, stats.rolled_back), (0, 1));
    finish(t, db, server).await;
}

/// An error of the request session that no driver raised keeps its category through SeaORM's
/// traits: a handle used after the response gets `Programming`, through a raw statement and
/// through a repository, and each use is counted once under that category. It came back as
/// `Other` (the error was turned into `DbErr::Custom` text), and the raw statement's error was
/// not counted at all.
#[tokio::test]
async fn a_request_session_error_keeps_its_category_through_seaorm_traits() {
    let (t, db, _admin) = setup("axum_late_use").await;
    let kept = Arc::new(std::sync::Mutex::new(None::<RequestSession>));
    let keeper = Arc::clone(&kept);
    let handler = move |tx: RequestSession| async move {
        // The handle outlives the request without having begun its session.
        *keeper.lock().unwrap() = Some(tx);
        StatusCode::OK
    };
    let app = Router::new()
        .route("/keep", post(handler))
        .layer(SessionLayer::new(db.clone()));
    let server = serve(app).await;
    let reply = server.post("/keep").await;
    assert_eq!(reply.status, 500, "{reply:?}");

    let held = kept
        .lock()
        .unwrap()
        .take()
        .expect("the handler kept its handle");
    let programming = |stats: &ops_sea::ErrorStats| {
        stats
            .by_category
            .get(&ErrorCategory::Programming)
            .copied()
            .unwrap_or(0)
    };
    let before = db.error_stats();
    let raw = held
        .execute_unprepared("SELECT 1")
        .await
        .expect_err("used after the request");
    let err = OpsError::from(raw);
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    let err = note::Ops::find(&held, 1)
        .await
        .expect_err("used after the request");
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_eq!(
        err.user_message(),
        ErrorCategory::Programming.user_message()
    );
    let after = db.error_stats();
    assert_eq!(programming(&after) - programming(&before), 2, "{after:?}");
    assert_eq!(after.total - before.total, 2, "{after:?}");
    drop(held);
    finish(t, db, server).await;
}

#[tokio::test]
async fn without_the_layer_the_extractor_answers_500() {
    let (t, db, _admin) = setup("axum_no_layer").await;
    let app = Router::new().route("/items", get(count_items));
    let server = serve(app).await;
    let reply = server.get("/items").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["kind"], "programming");
    assert_eq!(body["message"], "An internal error occurred.");
    assert!(
        !reply.body.contains("SessionLayer"),
        "details stay in the log"
    );
    finish(t, db, server).await;
}

// ---------------------------------------------------------------------------------------------
// Errors as responses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn errors_map_to_statuses_with_retry_after_and_safe_bodies() {
    let (t, db, _admin) = setup("axum_errors").await;
    let server = serve(app(&db)).await;

    let cases: [(&str, u16, Option<&str>, &str, &str); 10] = [
        ("not_found", 404, None, "not_found", "not_found"),
        ("unique", 409, None, "integrity", "integrity(unique)"),
        ("check", 422, None, "integrity", "integrity(check)"),
        (
            "deadlock",
            503,
            Some("1"),
            "retryable",
            "retryable(deadlock)",
        ),
        (
            "pool_exhausted",
            503,
            Some("1"),
            "retryable",
            "retryable(pool_exhausted)",
        ),
        ("unavailable", 503, Some("5"), "unavailable", "unavailable"),
        (
            "commit_unknown",
            500,
            None,
            "commit_unknown",
            "commit_unknown",
        ),
        (
            "multiple_results",
            500,
            None,
            "multiple_results",
            "multiple_results",
        ),
        ("configuration", 500, None, "configuration", "configuration"),
        ("programming", 500, None, "programming", "programming"),
    ];
    for (path, status, retry_after, kind, category) in cases {
        let reply = server.get(&format!("/errors/{path}")).await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.header("retry-after"), retry_after, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body = reply.json();
        assert_eq!(body["kind"], kind, "{path}");
        assert_eq!(body["category"], category, "{path}");
        assert_eq!(body["retryable"], kind == "retryable", "{path}");
        let message = body["message"].as_str().expect("message").to_owned();
        assert!(!message.is_empty());
        for leak in ["SELECT", "password", "tok-secret", "users"] {
            assert!(!reply.body.contains(leak), "{path} leaks {leak:?}");
        }
        if path == "commit_unknown" {
            assert!(message.contains("may or may not"), "{message}");
        }
    }
    finish(t, db, server).await;
}

#[tokio::test]
async fn database_integrity_errors_map_to_409_and_422() {
    let (t, db, admin) = setup("axum_integrity").await;
    let server = serve(app(&db)).await;

    assert_eq!(server.post("/items/1/one").await.status, 201);
    let reply = server.post("/items/1/private-name").await;
    assert_eq!(reply.status, 409, "{reply:?}");
    assert_eq!(reply.json()["category"], "integrity(unique)");
    assert!(!reply.body.contains("private-name"));
    assert!(!reply.body.to_ascii_lowercase().contains("items"));

    let reply = server.post("/labels/7").await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.json()["category"], "integrity(not_null)");
    assert_eq!(count(&admin, "labels").await, 0);
    assert_eq!(count(&admin, "items").await, 1);
    finish(t, db, server).await;
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_answers_200_then_503_when_the_database_is_gone() {
    let (t, db, _admin) = setup("axum_health").await;
    let server = serve(app(&db)).await;

    let reply = server.get("/health").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["status"], "healthy", "{body}");
    assert!(body["ping"].is_number(), "{body}");
    assert!(
        body["pool"]["max"].as_u64().is_some_and(|max| max >= 4),
        "{body}"
    );

    db.close().await;
    let reply = server.get("/health").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(body["ping"].is_null(), "{body}");
    assert!(!body["reasons"].as_array().expect("reasons").is_empty());
    finish(t, db, server).await;
}

/// Answers whether the request's session is read-only, and how many items it sees.
async fn session_mode(tx: RequestSession) -> Answer {
    let session = tx.session().await?;
    let items = count(session, "items").await;
    Ok(format!("{} {items}", session.is_read_only()).into_response())
}

#[tokio::test]
async fn safe_methods_can_run_read_only_sessions() {
    let (t, db, admin) = setup("axum_read_only").await;
    let routes = Router::new()
        .route("/items/{id}/{name}", post(create_item).get(create_item))
        .route("/mode", get(session_mode).post(session_mode));
    let server =
        serve(routes.layer(SessionLayer::new(db.clone()).read_only_on_safe_methods())).await;

    // A POST writes and commits as before.
    let reply = server.post("/items/1/one").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(count(&admin, "items").await, 1);

    // A GET runs read-only and sees the committed row; a POST to the same handler does not.
    let reply = server.get("/mode").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "true 1"),
        "{reply:?}"
    );
    let reply = server.post("/mode").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "false 1"),
        "{reply:?}"
    );

    // A write in a GET handler fails with a server error instead of committing, on every
    // backend (on SQLite the session runs on a `query_only` reader).
    let before = db.error_stats();
    let reply = server.get("/items/2/two").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(
        count(&admin, "items").await,
        1,
        "the write was not committed"
    );
    let after = db.error_stats();
    assert!(
        after.total > before.total,
        "the refused write is in the error stats: {after:?}"
    );
    assert_eq!(db.session_stats().active, 0);
    drop(admin);
    finish(t, db, server).await;
}
