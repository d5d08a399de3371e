//! Shared setup of the ops benchmarks: the entities, a database of their own on the chosen backend,
//! and the hand-written sqlx contenders.
//!
//! Every contender of a comparison runs on the same `Db`'s pool (SeaORM through
//! `Db::connection()`, sqlx through the `DatabaseConnection`'s own sqlx pool) and on the same tokio
//! runtime, so a ratio measures the code in between and nothing else. The one exception is the
//! defaults comparison, whose point is two differently configured pools.
//!
//! The backend comes from `BENCH_DATABASE_URL`: unset, SQLite in memory; a `postgres://` or
//! `mysql://` server URL, a database of its own (`ops_bench_<pid>`), created at the start and
//! dropped at the end.

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use ops_sea::Db;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr};
use sqlx::{Connection, Executor as _};

pub mod load;
pub mod plot;

/// The environment variable naming the database to benchmark.
pub const URL_VAR: &str = "BENCH_DATABASE_URL";

/// Set to `1` for longer measurements (10 s per benchmark, 100 samples) than the quick default.
pub const FULL_VAR: &str = "OPS_BENCH_FULL";

/// Rows seeded into `bench_items` for reads, transactions and page listing.
pub const SEEDED: i32 = 1_000;

/// Rows per bulk load.
pub const BULK_ROWS: usize = 10_000;

/// The table reads, transactions and page listings use.
pub mod item {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One seeded row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bench_items")]
    pub struct Model {
        /// The auto-increment key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// A short name.
        pub name: String,
        /// A counter the transaction benchmark bumps.
        pub qty: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The table single inserts go to.
pub mod insert_row {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One inserted row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bench_inserts")]
    pub struct Model {
        /// The auto-increment key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// A short name.
        pub name: String,
        /// Any number.
        pub qty: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The table bulk loads go to; emptied before every load.
pub mod bulk_row {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One bulk-loaded row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bench_bulk")]
    pub struct Model {
        /// The auto-increment key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// A short name.
        pub name: String,
        /// Any number.
        pub qty: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A database backend the benchmarks run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in memory unless the URL names a file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The name benchmark ids carry.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// The database the benchmarks run in.
#[derive(Debug)]
pub struct BenchDb {
    /// The URL of the benchmark's own database.
    pub url: String,
    /// Its backend.
    pub backend: Backend,
    /// The server URL and the database created on it (servers only).
    created: Option<(String, String)>,
    /// The SQLite file created for the load benchmarks, removed at the end.
    file: Option<PathBuf>,
}

impl BenchDb {
    /// The database `BENCH_DATABASE_URL` names, creating one of its own on a server.
    ///
    /// # Errors
    ///
    /// When the URL has an unsupported scheme or the server refuses to create the database.
    pub async fn create() -> Result<BenchDb, String> {
        let url = std::env::var(URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| "sqlite::memory:".to_owned());
        BenchDb::create_at(url).await
    }

    /// Like [`BenchDb::create`], but SQLite is a file of its own in the temporary directory
    /// (WAL needs a file, and every pooled connection must see the same database, which separate
    /// in-memory connections do not): what the load benchmarks run on.
    ///
    /// # Errors
    ///
    /// As [`BenchDb::create`].
    pub async fn create_for_load() -> Result<BenchDb, String> {
        let url = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
        let wants_file = url
            .as_deref()
            .is_none_or(|u| u.starts_with("sqlite:") && u.contains(":memory:"));
        if !wants_file {
            return BenchDb::create_at(url.unwrap_or_default()).await;
        }
        let path = std::env::temp_dir().join(format!("ops_load_{}.db", std::process::id()));
        remove_sqlite_files(&path);
        Ok(BenchDb {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            backend: Backend::Sqlite,
            created: None,
            file: Some(path),
        })
    }

    async fn create_at(url: String) -> Result<BenchDb, String> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        let backend = match scheme.as_deref() {
            Some("sqlite") => {
                return Ok(BenchDb {
                    url,
                    backend: Backend::Sqlite,
                    created: None,
                    file: None,
                });
            }
            Some("postgres" | "postgresql") => Backend::Postgres,
            Some("mysql" | "mariadb") => Backend::MySql,
            _ => {
                return Err(format!(
                    "{URL_VAR} has an unsupported scheme; use postgres://, mysql:// or sqlite:, \
                     or unset it to run on SQLite in memory"
                ));
            }
        };
        let name = format!("ops_bench_{}", std::process::id());
        let mut parsed =
            url::Url::parse(&url).map_err(|e| format!("{URL_VAR} is not a URL: {e}"))?;
        parsed.set_path(&name);
        let bench = BenchDb {
            url: parsed.to_string(),
            backend,
            created: Some((url, name)),
            file: None,
        };
        bench.on_server(true).await?;
        Ok(bench)
    }

    /// Drops the database created on a server; SQLite needs nothing.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn drop_database(self) -> Result<(), String> {
        if let Some(path) = &self.file {
            remove_sqlite_files(path);
        }
        self.on_server(false).await
    }

    async fn on_server(&self, create: bool) -> Result<(), String> {
        let Some((server, name)) = &self.created else {
            return Ok(());
        };
        let failed = |e: sqlx::Error| format!("cannot prepare the database {name}: {e}");
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(server).await.map_err(failed)?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                conn.execute(sqlx::AssertSqlSafe(drop))
                    .await
                    .map_err(failed)?;
                if create {
                    let sql = format!("CREATE DATABASE \"{name}\"");
                    conn.execute(sqlx::AssertSqlSafe(sql))
                        .await
                        .map_err(failed)?;
                }
                let _ = conn.close().await;
            }
            Backend::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(server)
                    .await
                    .map_err(failed)?;
                let drop = format!("DROP DATABASE IF EXISTS `{name}`");
                conn.execute(sqlx::AssertSqlSafe(drop))
                    .await
                    .map_err(failed)?;
                if create {
                    let sql = format!("CREATE DATABASE `{name}`");
                    conn.execute(sqlx::AssertSqlSafe(sql))
                        .await
                        .map_err(failed)?;
                }
                let _ = conn.close().await;
            }
            Backend::Sqlite => {}
        }
        Ok(())
    }
}

/// Removes a SQLite database file with its WAL and shared-memory files.
fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Creates the three tables (if missing) and seeds `bench_items` with [`SEEDED`] rows.
///
/// # Errors
///
/// When a statement fails.
pub async fn prepare_schema(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    let key = match conn.get_database_backend() {
        DbBackend::Postgres => "id SERIAL PRIMARY KEY",
        DbBackend::MySql => "id INT AUTO_INCREMENT PRIMARY KEY",
        _ => "id INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    let text = match conn.get_database_backend() {
        DbBackend::MySql => "VARCHAR(64)",
        _ => "TEXT",
    };
    for table in ["bench_items", "bench_inserts", "bench_bulk"] {
        conn.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
        conn.execute_unprepared(&format!(
            "CREATE TABLE {table} ({key}, name {text} NOT NULL, qty INT NOT NULL)"
        ))
        .await?;
    }
    let values: Vec<String> = (1..=SEEDED).map(|i| format!("('item {i}', {i})")).collect();
    conn.execute_unprepared(&format!(
        "INSERT INTO bench_items (name, qty) VALUES {}",
        values.join(", ")
    ))
    .await?;
    Ok(())
}

/// The rows of one bulk load of `n` rows ([`BULK_ROWS`] in the criterion `bulk` group).
pub fn bulk_rows(n: usize) -> Vec<(String, i32)> {
    (0..n)
        .map(|i| (format!("bulk {i}"), i32::try_from(i).unwrap_or(i32::MAX)))
        .collect()
}

/// A row as hand-written sqlx code decodes it.
pub type Row = (i32, String, i32);

/// The sqlx pool under a SeaORM `DatabaseConnection`: the hand-written contender.
#[derive(Clone, Debug)]
pub enum SqlxPool {
    /// SQLite.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
    /// MySQL or MariaDB.
    MySql(sqlx::MySqlPool),
}

impl SqlxPool {
    /// The pool `db` runs on: the same connections every other contender uses.
    pub fn of(db: &Db) -> SqlxPool {
        let conn: &DatabaseConnection = db.connection();
        match db.backend() {
            DbBackend::Postgres => SqlxPool::Postgres(conn.get_postgres_connection_pool().clone()),
            DbBackend::MySql => SqlxPool::MySql(conn.get_mysql_connection_pool().clone()),
            _ => SqlxPool::Sqlite(conn.get_sqlite_connection_pool().clone()),
        }
    }

    /// `SELECT ... WHERE id = ?` with `fetch_one`.
    ///
    /// # Errors
    ///
    /// When the query fails or finds no row.
    pub async fn get(&self, id: i32) -> Result<Row, sqlx::Error> {
        match self {
            SqlxPool::Sqlite(p) => {
                sqlx::query_as("SELECT id, name, qty FROM bench_items WHERE id = ?")
                    .bind(id)
                    .fetch_one(p)
                    .await
            }
            SqlxPool::Postgres(p) => {
                sqlx::query_as("SELECT id, name, qty FROM bench_items WHERE id = $1")
                    .bind(id)
                    .fetch_one(p)
                    .await
            }
            SqlxPool::MySql(p) => {
                sqlx::query_as("SELECT id, name, qty FROM bench_items WHERE id = ?")
                    .bind(id)
                    .fetch_one(p)
                    .await
            }
        }
    }

    /// The managed-session contender by hand: `BEGIN`, read the row, write its counter back
    /// plus one, `COMMIT`; two statements in one transaction, as `contenders::bump` runs.
    ///
    /// # Errors
    ///
    /// When a statement, the begin or the commit fails.
    pub async fn bump(&self, id: i32) -> Result<(), sqlx::Error> {
        macro_rules! bump {
            ($pool:expr, $select:literal, $update:literal) => {{
                let mut txn = $pool.begin().await?;
                let (qty,): (i32,) = sqlx::query_as($select)
                    .bind(id)
                    .fetch_one(&mut *txn)
                    .await?;
                sqlx::query($update)
                    .bind(qty.wrapping_add(1))
                    .bind(id)
                    .execute(&mut *txn)
                    .await?;
                txn.commit().await
            }};
        }
        match self {
            SqlxPool::Sqlite(p) => bump!(
                p,
                "SELECT qty FROM bench_items WHERE id = ?",
                "UPDATE bench_items SET qty = ? WHERE id = ?"
            ),
            SqlxPool::Postgres(p) => bump!(
                p,
                "SELECT qty FROM bench_items WHERE id = $1",
                "UPDATE bench_items SET qty = $1 WHERE id = $2"
            ),
            SqlxPool::MySql(p) => bump!(
                p,
                "SELECT qty FROM bench_items WHERE id = ?",
                "UPDATE bench_items SET qty = ? WHERE id = ?"
            ),
        }
    }

    /// A pool with sqlx's own defaults and at most `max` connections (sqlx's default is 10).
    ///
    /// # Errors
    ///
    /// When the database cannot be reached.
    pub async fn connect(url: &str, max: Option<u32>) -> Result<SqlxPool, sqlx::Error> {
        macro_rules! connect {
            ($db:ty) => {{
                let mut options = sqlx::pool::PoolOptions::<$db>::new();
                if let Some(max) = max {
                    options = options.max_connections(max);
                }
                options.connect(url).await?
            }};
        }
        Ok(if url.starts_with("postgres") {
            SqlxPool::Postgres(connect!(sqlx::Postgres))
        } else if url.starts_with("mysql") || url.starts_with("mariadb") {
            SqlxPool::MySql(connect!(sqlx::MySql))
        } else {
            SqlxPool::Sqlite(connect!(sqlx::Sqlite))
        })
    }

    /// Connections open now.
    pub fn size(&self) -> u32 {
        match self {
            SqlxPool::Sqlite(p) => p.size(),
            SqlxPool::Postgres(p) => p.size(),
            SqlxPool::MySql(p) => p.size(),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            SqlxPool::Sqlite(p) => p.close().await,
            SqlxPool::Postgres(p) => p.close().await,
            SqlxPool::MySql(p) => p.close().await,
        }
    }

    /// Inserts one row and returns it as stored: `RETURNING` where the backend has it, the
    /// insert id and a select on MySQL/MariaDB, as SeaORM does there.
    ///
    /// # Errors
    ///
    /// When a statement fails.
    pub async fn insert(&self, name: &str, qty: i32) -> Result<Row, sqlx::Error> {
        match self {
            SqlxPool::Sqlite(p) => {
                sqlx::query_as(
                    "INSERT INTO bench_inserts (name, qty) VALUES (?, ?) RETURNING id, name, qty",
                )
                .bind(name)
                .bind(qty)
                .fetch_one(p)
                .await
            }
            SqlxPool::Postgres(p) => {
                sqlx::query_as(
                    "INSERT INTO bench_inserts (name, qty) VALUES ($1, $2) \
                     RETURNING id, name, qty",
                )
                .bind(name)
                .bind(qty)
                .fetch_one(p)
                .await
            }
            SqlxPool::MySql(p) => {
                let done = sqlx::query("INSERT INTO bench_inserts (name, qty) VALUES (?, ?)")
                    .bind(name)
                    .bind(qty)
                    .execute(p)
                    .await?;
                sqlx::query_as("SELECT id, name, qty FROM bench_inserts WHERE id = ?")
                    .bind(done.last_insert_id())
                    .fetch_one(p)
                    .await
            }
        }
    }

    /// One multi-row `INSERT` of every row (the bind-parameter limits of all three backends
    /// allow [`BULK_ROWS`] rows of two columns).
    ///
    /// # Errors
    ///
    /// When the statement fails.
    pub async fn insert_bulk(&self, rows: &[(String, i32)]) -> Result<u64, sqlx::Error> {
        macro_rules! load {
            ($db:ty, $pool:expr) => {{
                let mut builder =
                    sqlx::QueryBuilder::<$db>::new("INSERT INTO bench_bulk (name, qty) ");
                builder.push_values(rows, |mut row, (name, qty)| {
                    row.push_bind(name.as_str()).push_bind(*qty);
                });
                Ok(builder.build().execute($pool).await?.rows_affected())
            }};
        }
        match self {
            SqlxPool::Sqlite(p) => load!(sqlx::Sqlite, p),
            SqlxPool::Postgres(p) => load!(sqlx::Postgres, p),
            SqlxPool::MySql(p) => load!(sqlx::MySql, p),
        }
    }

    /// One page ordered by key, and the total count: two statements, as `Ops::list` runs.
    ///
    /// # Errors
    ///
    /// When a statement fails.
    pub async fn page(&self, limit: i64, offset: i64) -> Result<(Vec<Row>, i64), sqlx::Error> {
        macro_rules! page {
            ($pool:expr, $select:literal) => {{
                let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bench_items")
                    .fetch_one($pool)
                    .await?;
                let rows = sqlx::query_as($select)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all($pool)
                    .await?;
                Ok((rows, total))
            }};
        }
        match self {
            SqlxPool::Sqlite(p) => page!(
                p,
                "SELECT id, name, qty FROM bench_items ORDER BY id LIMIT ? OFFSET ?"
            ),
            SqlxPool::Postgres(p) => page!(
                p,
                "SELECT id, name, qty FROM bench_items ORDER BY id LIMIT $1 OFFSET $2"
            ),
            SqlxPool::MySql(p) => page!(
                p,
                "SELECT id, name, qty FROM bench_items ORDER BY id LIMIT ? OFFSET ?"
            ),
        }
    }

    /// Empties `bench_bulk` between loads (outside the measured time).
    ///
    /// # Errors
    ///
    /// When the statement fails.
    pub async fn clear_bulk(&self) -> Result<(), sqlx::Error> {
        match self {
            SqlxPool::Sqlite(p) => p.execute("DELETE FROM bench_bulk").await.map(drop),
            SqlxPool::Postgres(p) => p.execute("TRUNCATE bench_bulk").await.map(drop),
            SqlxPool::MySql(p) => p.execute("TRUNCATE bench_bulk").await.map(drop),
        }
    }
}

/// The criterion configuration: the quick mode (2 s per benchmark after 500 ms of warm-up, 20
/// samples) unless `OPS_BENCH_FULL=1`.
pub fn criterion() -> Criterion {
    let full = std::env::var(FULL_VAR).is_ok_and(|v| v == "1");
    let criterion = if full {
        Criterion::default()
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(10))
            .sample_size(100)
    } else {
        Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20)
    };
    criterion.configure_from_args()
}

/// The contenders whose code is more than a call: the managed and hand-written transactions and
/// the retried and bare reads. The criterion benches and the instruction counter both run these.
pub mod contenders {
    use std::hint::black_box;

    use ops_sea::prelude::*;
    use sea_orm::ActiveValue::{Set, Unchanged};
    use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, TransactionTrait};

    use crate::{bulk_row, item};

    /// One read and one write in a `#[managed_session]`.
    ///
    /// # Errors
    ///
    /// When a statement, the begin or the commit fails.
    #[managed_session]
    pub async fn bump(session: &Session, id: i32) -> Result<item::Model, OpsError> {
        let current = item::Ops::get(session, id).await?;
        item::Ops::update(
            session,
            id,
            item::Patch {
                qty: Some(current.qty.wrapping_add(1)),
                ..Default::default()
            },
        )
        .await
    }

    /// The same read and write, with `begin` and `commit` by hand.
    ///
    /// # Errors
    ///
    /// When a statement, the begin or the commit fails.
    pub async fn bump_by_hand(conn: &DatabaseConnection, id: i32) -> Result<item::Model, DbErr> {
        let txn = conn.begin().await?;
        let current = item::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("item {id}")))?;
        let active = item::ActiveModel {
            id: Unchanged(id),
            qty: Set(current.qty.wrapping_add(1)),
            ..Default::default()
        };
        let updated = active.update(&txn).await?;
        txn.commit().await?;
        Ok(updated)
    }

    /// SeaORM's `insert_many` for a load past the bind-parameter limit: chunks of the most rows
    /// one statement takes, in one transaction. Returns the rows inserted.
    ///
    /// # Errors
    ///
    /// When the begin, a statement or the commit fails.
    pub async fn insert_many_chunked(
        conn: &DatabaseConnection,
        rows: Vec<(String, i32)>,
    ) -> Result<u64, DbErr> {
        let per_statement = ops_sea::repo::bind_limit(conn.get_database_backend()) / 2;
        let models: Vec<bulk_row::ActiveModel> = rows
            .into_iter()
            .map(|(name, qty)| bulk_row::ActiveModel {
                name: Set(name),
                qty: Set(qty),
                ..Default::default()
            })
            .collect();
        let txn = conn.begin().await?;
        let mut loaded = 0;
        for chunk in models.chunks(per_statement) {
            loaded += bulk_row::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(loaded)
    }

    /// A primary-key read under `#[db_retry]`.
    ///
    /// # Errors
    ///
    /// When the read fails with an error that is not retried, or every attempt fails.
    #[db_retry(attempts = 5)]
    pub async fn get_retried(db: &Db, id: i32) -> Result<item::Model, OpsError> {
        item::Ops::get(db, id).await
    }

    /// The same read, bare.
    ///
    /// # Errors
    ///
    /// When the read fails.
    pub async fn get_bare(db: &Db, id: i32) -> Result<item::Model, OpsError> {
        item::Ops::get(db, id).await
    }

    /// No work under `#[db_retry]`: the retry loop's own cost.
    ///
    /// # Errors
    ///
    /// Never.
    #[db_retry(attempts = 5)]
    pub async fn nothing_retried(x: u64) -> Result<u64, OpsError> {
        Ok(black_box(x))
    }

    /// No work, bare.
    ///
    /// # Errors
    ///
    /// Never.
    pub async fn nothing_bare(x: u64) -> Result<u64, OpsError> {
        Ok(black_box(x))
    }
}
