//! What the examples share: a database to run on, tables created from entities, and a small
//! HTTP/1.1 client for the examples that call their own API.
//!
//! With `DATABASE_URL` set, an example connects there with the environment's settings
//! (`DB_POOL_SIZE`, ...). Without it, an example runs on a SQLite file in the system's temporary
//! directory, created fresh for the run and removed at its end, so runs leave nothing behind in
//! the repository and a rerun starts clean.

use std::net::SocketAddr;
use std::path::PathBuf;

use ops_sea::{Db, DbConfig, OpsError};
use sea_orm::{ConnectionTrait, EntityTrait, Schema};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The database an example runs on, and the temporary SQLite file to remove afterwards.
pub struct ExampleDb {
    pub db: Db,
    sqlite_file: Option<PathBuf>,
}

/// Connects to `DATABASE_URL`, or to a fresh SQLite file named after the example. `tune` adjusts
/// the configuration before connecting (a leak threshold, a pool size).
pub async fn open(example: &str, tune: impl FnOnce(&mut DbConfig)) -> Result<ExampleDb, OpsError> {
    let from_env = std::env::var("DATABASE_URL").is_ok_and(|url| !url.trim().is_empty());
    let (mut config, sqlite_file) = if from_env {
        (DbConfig::from_env()?, None)
    } else {
        let file = std::env::temp_dir().join(format!(
            "ops-example-{example}-{}.sqlite",
            std::process::id()
        ));
        remove_sqlite_files(&file);
        // `sqlite:///` and an absolute path: absolute to sqlx (and to SQLAlchemy's four slashes).
        let url = format!("sqlite:///{}?mode=rwc", file.display());
        (DbConfig::new(&url)?, Some(file))
    };
    tune(&mut config);
    let db = Db::connect_with(config).await?;
    println!("database: {}", db.config().url);
    Ok(ExampleDb { db, sqlite_file })
}

impl ExampleDb {
    /// Drops `tables` (children before parents) when the example ran on a server, closes the
    /// pool, and removes the temporary SQLite file.
    pub async fn finish(self, tables: &[&str]) -> Result<(), OpsError> {
        if self.sqlite_file.is_none() {
            drop_tables(&self.db, tables).await?;
        }
        self.db.close().await;
        if let Some(file) = &self.sqlite_file {
            remove_sqlite_files(file);
        }
        Ok(())
    }
}

/// Removes a SQLite database file and the journal files WAL mode keeps beside it.
fn remove_sqlite_files(file: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        // A file that is not there is what we want.
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

/// Drops tables if they exist, in the order given: children before parents.
pub async fn drop_tables(db: &Db, tables: &[&str]) -> Result<(), OpsError> {
    for table in tables {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    Ok(())
}

/// Creates an entity's table the way SeaORM derives it from the entity.
pub async fn create_table<E: EntityTrait>(db: &Db, entity: E) -> Result<(), OpsError> {
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(entity)).await?;
    Ok(())
}

/// One HTTP response: the status and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends one HTTP/1.1 request with an optional JSON body on a connection of its own, and reads
/// the response to its end.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> std::io::Result<Reply> {
    let body = json.map(|v| v.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = || std::io::Error::other(format!("malformed HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply { status, body })
}

/// Decodes a chunked body; a truncated one gives what arrived.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest.get(size + 2..).unwrap_or_default();
    }
    out
}
