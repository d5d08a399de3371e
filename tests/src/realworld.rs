//! The RealWorld reference application under test: the real router served on a free port of
//! 127.0.0.1 over its own database, and an HTTP/1.1 client (hyper) that speaks to it.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ops_sea::Db;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::{STEP_TIMEOUT, TestDb, bounded};

/// The secret the servers under test sign their tokens with.
pub const TEST_SECRET: &[u8] = b"ops-tests-realworld-secret";

/// A running Conduit server on a database of its own.
#[derive(Debug)]
pub struct Conduit {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its database handle, for session statistics.
    pub db: Db,
    test_db: TestDb,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// One answer: the status and the JSON body (`Value::Null` when it had none).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The body as text, for messages.
    pub text: String,
}

impl Conduit {
    /// Creates a database for `test`, the tables, and serves the API on a free port.
    pub async fn start(test: &str) -> Conduit {
        Conduit::start_with(test, |_| {}).await
    }

    /// As [`start`](Self::start), with the configuration adjusted by `tune` (a pool size).
    pub async fn start_with(test: &str, tune: impl FnOnce(&mut ops_sea::DbConfig)) -> Conduit {
        let test_db = TestDb::new(test).await;
        let mut config = ops_sea::DbConfig::new(&test_db.url).expect("test database URL");
        tune(&mut config);
        let db = bounded("connecting", STEP_TIMEOUT, Db::connect_with(config))
            .await
            .expect("connect to the test database");
        bounded(
            "creating the tables",
            STEP_TIMEOUT,
            realworld::create_tables(&db),
        )
        .await
        .expect("create the tables");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let state = realworld::AppState::new(db.clone(), TEST_SECRET);
        let task = tokio::spawn(realworld::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Conduit {
            addr,
            db,
            test_db,
            shutdown,
            task,
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        bounded(
            &format!("{method} {path}"),
            STEP_TIMEOUT,
            send(self.addr, method, path, token, body),
        )
        .await
        .unwrap_or_else(|err| panic!("{method} {path} failed: {err}"))
    }

    /// Stops the server, checks that no session is left open and none was abandoned, closes the
    /// pool and drops the database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        bounded("stopping the server", STEP_TIMEOUT, self.task)
            .await
            .expect("server task")
            .expect("server");
        let stats = self.db.session_stats();
        assert_eq!(stats.active, 0, "sessions left open: {stats:?}");
        assert_eq!(
            stats.dropped_unfinished, 0,
            "sessions dropped without commit or rollback: {stats:?}"
        );
        self.db.close().await;
        self.test_db.cleanup().await;
    }
}

/// One HTTP/1.1 request on a connection of its own, with `Authorization: Token <token>` when a
/// token is given and the JSON body when one is.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("authorization", format!("Token {token}")));
    }
    let payload = match body {
        Some(json) => {
            headers.push(("content-type", "application/json".to_owned()));
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    send_with(addr, method, path, &headers, payload).await
}

/// One HTTP/1.1 request with exactly these headers and body (a malformed body, another
/// authorization scheme).
pub async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: Bytes,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = sender
        .send_request(request.body(Full::new(payload))?)
        .await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Ok(Reply { status, body, text })
}

/// Sends a raw body with a given content type (for malformed bodies).
pub async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    raw: &'static str,
) -> Reply {
    let headers = [("content-type", content_type.to_owned())];
    let run = send_with(
        addr,
        method,
        path,
        &headers,
        Bytes::from_static(raw.as_bytes()),
    );
    bounded("raw request", Duration::from_secs(30), run)
        .await
        .expect("raw request")
}
