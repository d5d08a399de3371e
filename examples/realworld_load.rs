//! A load run of the RealWorld example: `GET /api/articles` and `GET /api/articles/{slug}` from
//! many concurrent clients for a few seconds, with requests per second, p50 and p99, the pool's
//! peak, and the session statistics after the run.
//!
//! ```sh
//! cargo run --release -p ops-examples --example realworld_load                       # SQLite
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p ops-examples --example realworld_load -- --clients 64 --seconds 5
//! ```
//!
//! The server runs in this process on 127.0.0.1 (the same router as `--example realworld`) over
//! fresh tables, seeded with 10 users and 200 articles; the clients are real HTTP/1.1 keep-alive
//! connections (hyper). Half of the list requests carry a token, so `favorited` and `following`
//! are computed for a caller.

// Each example uses only part of the shared module.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use realworld::AppState;
use serde_json::{Value, json};

const USERS: usize = 10;
const ARTICLES: usize = 200;

struct Options {
    clients: usize,
    seconds: u64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        clients: 64,
        seconds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|e| format!("{arg} {value} is not a number: {e}"))?;
        match arg.as_str() {
            "--clients" => options.clients = number.max(1) as usize,
            "--seconds" => options.seconds = number.max(1),
            _ => {
                return Err(format!(
                    "unknown argument {arg}; use --clients N --seconds S"
                ));
            }
        }
    }
    Ok(options)
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Client { addr, sender })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), Box<dyn std::error::Error + Send + Sync>> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Token {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = self
            .sender
            .send_request(request.body(Full::new(bytes))?)
            .await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// Users, articles with tags, favorites and follows, through the API itself.
async fn seed(
    addr: SocketAddr,
) -> Result<(Vec<String>, Vec<String>), Box<dyn std::error::Error + Send + Sync>> {
    let mut client = Client::connect(addr).await?;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        let (status, body) = client
            .call(
                "POST",
                "/api/users",
                None,
                Some(json!({"user": {"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password": "password"}})),
            )
            .await?;
        if status != 201 {
            return Err(format!("seeding a user answered {status}: {body}").into());
        }
        tokens.push(
            body["user"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let mut slugs = Vec::new();
    for i in 0..ARTICLES {
        let (status, body) = client
            .call(
                "POST",
                "/api/articles",
                Some(&tokens[i % USERS]),
                Some(json!({"article": {"title": format!("Article number {i}"), "description": "A description", "body": "A body ".repeat(50), "tagList": ["ops", format!("tag{}", i % 7)]}})),
            )
            .await?;
        if status != 201 {
            return Err(format!("seeding an article answered {status}: {body}").into());
        }
        let slug = body["article"]["slug"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for token in tokens.iter().take(i % 4) {
            client
                .call(
                    "POST",
                    &format!("/api/articles/{slug}/favorite"),
                    Some(token),
                    None,
                )
                .await?;
        }
        slugs.push(slug);
    }
    for (i, token) in tokens.iter().enumerate().take(USERS) {
        client
            .call(
                "POST",
                &format!("/api/profiles/user{}/follow", (i + 1) % USERS),
                Some(token),
                None,
            )
            .await?;
    }
    Ok((tokens, slugs))
}

#[derive(Default)]
struct Samples {
    list: Vec<Duration>,
    get: Vec<Duration>,
    errors: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn line(name: &str, samples: &mut [Duration], seconds: f64) -> String {
    samples.sort_unstable();
    format!(
        "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms |",
        samples.len(),
        samples.len() as f64 / seconds,
        percentile(samples, 0.50).as_secs_f64() * 1e3,
        percentile(samples, 0.99).as_secs_f64() * 1e3,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = options()?;
    let example = common::open("realworld_load", |_| {}).await?;
    let db = example.db.clone();
    let tables: Vec<&str> = realworld::TABLES.iter().rev().copied().collect();
    common::drop_tables(&db, &tables).await?;
    realworld::create_tables(&db).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(realworld::serve(
        listener,
        AppState::new(db.clone(), b"load-run-secret"),
        async move {
            let _ = stopped.await;
        },
    ));
    let (tokens, slugs) = seed(addr).await?;
    let before = db.session_stats();
    println!(
        "seeded {USERS} users and {ARTICLES} articles; {} clients for {} s on {}",
        options.clients,
        options.seconds,
        db.config().url.backend()
    );

    // The pool's peak: connections in use, sampled every millisecond during the run.
    let sampler_db = db.clone();
    let (sampling_done, mut sampling_stop) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut peak_in_use = 0;
        let mut peak_size = 0;
        loop {
            let state = sampler_db.pool_state();
            peak_in_use = peak_in_use.max(state.size.saturating_sub(state.idle));
            peak_size = peak_size.max(state.size);
            tokio::select! {
                _ = &mut sampling_stop => break,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        (peak_in_use, peak_size, sampler_db.pool_state().max)
    });

    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let mut clients = Vec::new();
    for c in 0..options.clients {
        let tokens = tokens.clone();
        let slugs = slugs.clone();
        clients.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let Ok(mut client) = Client::connect(addr).await else {
                samples.errors += 1;
                return samples;
            };
            let mut n = c;
            while Instant::now() < deadline {
                n += 1;
                let token = (n % 4 < 2).then(|| tokens[n % tokens.len()].as_str());
                let list = n % 2 == 0;
                let path = if list {
                    format!("/api/articles?limit=20&offset={}", (n % 5) * 20)
                } else {
                    format!("/api/articles/{}", slugs[n * 7 % slugs.len()])
                };
                let at = Instant::now();
                match client.call("GET", &path, token, None).await {
                    Ok((200, _)) => {
                        let took = at.elapsed();
                        if list {
                            samples.list.push(took)
                        } else {
                            samples.get.push(took)
                        }
                    }
                    _ => samples.errors += 1,
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for client in clients {
        let samples = client.await?;
        all.list.extend(samples.list);
        all.get.extend(samples.get);
        all.errors += samples.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = sampling_done.send(());
    let (peak_in_use, peak_size, max) = sampler.await?;

    let mut both: Vec<Duration> = all.list.iter().chain(&all.get).copied().collect();
    println!("| endpoint | requests | requests/s | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "{}",
        line("GET /api/articles?limit=20", &mut all.list, elapsed)
    );
    println!(
        "{}",
        line("GET /api/articles/{slug}", &mut all.get, elapsed)
    );
    println!("{}", line("both", &mut both, elapsed));
    println!("errors: {}", all.errors);
    println!("pool: peak in use {peak_in_use}, peak open {peak_size}, max {max}");

    let _ = stop.send(());
    server.await??;
    let after = db.session_stats();
    println!(
        "sessions during the run: opened {}, committed {}, rolled back {}; after it: active {}, \
         peak {}, dropped unfinished {}, long-running {}",
        after.opened - before.opened,
        after.committed - before.committed,
        after.rolled_back - before.rolled_back,
        after.active,
        after.peak,
        after.dropped_unfinished,
        after.long_running.len()
    );
    let leaked =
        after.active != 0 || after.dropped_unfinished != 0 || !after.long_running.is_empty();
    example.finish(&tables).await?;
    if leaked || all.errors > 0 {
        return Err("the run left sessions open or had failed requests".into());
    }
    Ok(())
}
