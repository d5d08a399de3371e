//! Round trips per operation on PostgreSQL and MySQL/MariaDB, counted by the fault proxy: what
//! ops costs on the wire, compared with plain SeaORM defaults on the same proxy.
//!
//! The proxy counts client protocol messages. A round trip is one request and the server's whole
//! answer; sqlx sends each request in a fixed shape, so the message counts translate into round
//! trips exactly ([`Wire`]):
//!
//! - a prepared statement whose plan sqlx has cached: on PostgreSQL `Bind`, `Execute`, `Close`
//!   (portal), `Sync`, four messages; on MySQL one `COM_STMT_EXECUTE` packet;
//! - a statement without parameters (`BEGIN`, `COMMIT`, the reset check): one `Query` message, or
//!   one `COM_QUERY` packet;
//! - a ping (sqlx's `Connection::ping`): one `Sync` message, or one `COM_PING` packet.
//!
//! Two moments are counted separately:
//!
//! - the **critical path**: messages sent before the caller gets its result. The runtime is
//!   single-threaded, so nothing else runs between the operation's last `await` and the read of the
//!   counter; and every request on the critical path was answered, so the proxy has counted it.
//! - the **release path**: messages sent after the result, by the background task that takes the
//!   connection back: sqlx 0.9's own ping on release, always; the reset-on-return check only after
//!   raw SQL, or on every release with `DB_RESET_CHECK=always`. They cost the caller no latency but
//!   do cost the server and the connection's availability.

use std::time::{Duration, Instant};

use ops_sea::ResetCheck;
use ops_sea::prelude::*;
use ops_tests::proxy::{Mode, Proxy};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, backend, bounded, require_backend};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};

/// Messages per request shape on one backend's wire.
#[derive(Clone, Copy, Debug)]
struct Wire {
    /// A prepared statement with its plan cached.
    prepared: u64,
    /// A statement without parameters.
    simple: u64,
    /// sqlx's ping.
    ping: u64,
    /// What the reset check sends for a connection outside a transaction (PostgreSQL asks with
    /// one statement; MySQL/MariaDB sends `ROLLBACK`, a no-op outside one).
    check_clean: u64,
    /// What the reset check sends for a connection inside one (PostgreSQL asks, then rolls back).
    check_dirty: u64,
}

impl Wire {
    fn of(backend: Backend) -> Wire {
        match backend {
            Backend::Postgres => Wire {
                prepared: 4,
                simple: 1,
                ping: 1,
                check_clean: 1,
                check_dirty: 2,
            },
            _ => Wire {
                prepared: 1,
                simple: 1,
                ping: 1,
                check_clean: 1,
                check_dirty: 1,
            },
        }
    }
}

pub mod row {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "rt_rows")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub qty: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Writes a line to standard error directly, past the harness's capture.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Waits until the proxy has seen no new message for 50 ms and `idle` says every connection is
/// back: the release path of the previous operation is over. Returns the count then.
async fn settle(proxy: &Proxy, idle: impl Fn() -> bool) -> u64 {
    let mut last = proxy.client_messages();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = proxy.client_messages();
        if now == last && idle() {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not go quiet within 10 s"
        );
        last = now;
    }
}

/// The delay the proxy adds in each direction for the latency comparison.
const NETWORK_DELAY: Duration = Duration::from_millis(2);

/// The median time of 9 calls of `read`, each started once the pool is idle.
async fn median_latency<F, Fut>(idle: impl Fn() -> bool, proxy: &Proxy, read: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::new();
    for _ in 0..9 {
        settle(proxy, &idle).await;
        let started = Instant::now();
        read().await;
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// Messages on the critical path and on the release path of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cost {
    critical: u64,
    release: u64,
}

#[managed_session]
async fn read_and_bump(session: &Session, id: i32, reads: u32) -> Result<(), OpsError> {
    for _ in 0..reads {
        row::Ops::get(session, id).await?;
    }
    row::Ops::update(session, id, row::Patch { qty: Some(1) }).await?;
    Ok(())
}

/// Measures one operation run by `op`, after letting everything before it settle.
macro_rules! cost {
    ($proxy:expr, $idle:expr, $op:expr) => {{
        let before = settle($proxy, $idle).await;
        $op;
        // No `await` between the operation and this read: on the single-threaded runtime the
        // pool's release task has not run yet.
        let after_result = $proxy.client_messages();
        let settled = settle($proxy, $idle).await;
        Cost {
            critical: after_result - before,
            release: settled - after_result,
        }
    }};
}

/// Connects through the proxy with one connection, so that every operation after the warm-up
/// finds its statements prepared; the idle ping is pushed out of reach so that the settling
/// pauses cannot trigger it (the reliability suite measures the idle ping itself).
async fn one_connection(url: &str, check: ResetCheck) -> Db {
    bounded(
        "connect",
        STEP_TIMEOUT,
        Db::builder(url)
            .pool_size(1)
            .max_overflow(0)
            .idle_ping(Duration::from_secs(600))
            .reset_check(check)
            .connect(),
    )
    .await
    .expect("connect")
}

#[tokio::test]
async fn warm_get_and_managed_sessions_cost_the_minimum_round_trips() {
    // MySQL/MariaDB's wire shapes are in `Wire`, but their counts have not been verified on this
    // machine yet (an `update` there may be two statements): PostgreSQL only until they are.
    if !require_backend(
        Backend::Postgres,
        "warm_get_and_managed_sessions_cost_the_minimum_round_trips",
    ) {
        return;
    }
    let backend = backend();
    let wire = Wire::of(backend);
    let t = TestDb::new("round_trips").await;
    let admin = t.admin().await;
    let key = if backend == Backend::Postgres {
        "SERIAL PRIMARY KEY"
    } else {
        "INT AUTO_INCREMENT PRIMARY KEY"
    };
    admin
        .execute_unprepared(&format!(
            "CREATE TABLE rt_rows (id {key}, qty INT NOT NULL)"
        ))
        .await
        .expect("create the table");
    admin
        .execute_unprepared("INSERT INTO rt_rows (qty) VALUES (0)")
        .await
        .expect("seed the table");
    let proxy = Proxy::for_url(&t.url).await.expect("start the fault proxy");
    let url = proxy.url_for(&t.url);

    let db = one_connection(&url, ResetCheck::Auto).await;
    let pool_idle = || db.pool_state().in_use() == 0;
    // Warm-up: prepares every statement the measured operations use.
    row::Ops::get(&db, 1).await.expect("warm get");
    read_and_bump(&db, 1, 3).await.expect("warm session");

    let get = cost!(
        &proxy,
        &pool_idle,
        row::Ops::get(&db, 1).await.expect("get")
    );
    assert_eq!(
        get,
        Cost {
            critical: wire.prepared,
            release: wire.ping
        },
        "a warm get is one round trip; the release path is sqlx's ping alone"
    );

    let mut sessions = Vec::new();
    for reads in 0..=3u32 {
        let statements = u64::from(reads) + 1;
        let session = cost!(
            &proxy,
            &pool_idle,
            read_and_bump(&db, 1, reads).await.expect("session")
        );
        assert_eq!(
            session,
            Cost {
                critical: wire.simple + statements * wire.prepared + wire.simple,
                release: wire.ping
            },
            "a managed session with {statements} statements is {} round trips",
            statements + 2
        );
        sessions.push((statements, session));
    }
    assert_eq!(db.session_stats().committed, 5);

    // Raw SQL through the `Db` is the one way a statement can leave its connection inside a
    // transaction: that connection, and only that one, is checked (and rolled back) before the
    // pool takes it back.
    let raw_begin = cost!(
        &proxy,
        &pool_idle,
        // ops-scan: allow(raw-transaction-sql) -- measures the reset that a raw BEGIN triggers
        db.execute_unprepared("BEGIN").await.expect("raw BEGIN")
    );
    assert_eq!(
        raw_begin,
        Cost {
            critical: wire.simple,
            release: wire.check_dirty + wire.ping
        },
        "a raw BEGIN is rolled back on release"
    );
    let raw_clean = cost!(
        &proxy,
        &pool_idle,
        db.execute_unprepared("SELECT 1; SELECT 2")
            .await
            .expect("raw statements")
    );
    assert_eq!(
        raw_clean,
        Cost {
            critical: wire.simple,
            release: wire.check_clean + wire.ping
        },
        "raw SQL is checked on release even when it opened no transaction"
    );
    let after_raw = cost!(
        &proxy,
        &pool_idle,
        row::Ops::get(&db, 1).await.expect("get after raw SQL")
    );
    assert_eq!(after_raw, get, "the check stays with the raw statement");

    // The opt-in for users who hand out the raw pool: every release is checked.
    let always = one_connection(&url, ResetCheck::Always).await;
    let always_idle = || always.pool_state().in_use() == 0;
    row::Ops::get(&always, 1).await.expect("warm get");
    let always_get = cost!(
        &proxy,
        &always_idle,
        row::Ops::get(&always, 1).await.expect("get")
    );
    assert_eq!(
        always_get,
        Cost {
            critical: wire.prepared,
            release: wire.check_clean + wire.ping
        },
        "DB_RESET_CHECK=always checks every release"
    );
    always.close().await;

    // Plain SeaORM with its default options, through the same proxy.
    let sea: DatabaseConnection = bounded(
        "connect with SeaORM defaults",
        STEP_TIMEOUT,
        sea_orm::Database::connect(&url),
    )
    .await
    .expect("connect with SeaORM defaults");
    let sea_pool = || -> (u32, usize) {
        if backend == Backend::Postgres {
            let pool = sea.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        } else {
            let pool = sea.get_mysql_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    let sea_idle = || {
        let (size, idle) = sea_pool();
        size as usize == idle
    };
    // SeaORM's pool may open more than one connection, and sqlx hands idle connections out in
    // turn: warm the statement cache of each, letting every release finish in between.
    for _ in 0..=sea_pool().0 {
        settle(&proxy, &sea_idle).await;
        row::Entity::find_by_id(1)
            .one(&sea)
            .await
            .expect("warm find_by_id");
    }
    let sea_get = cost!(
        &proxy,
        &sea_idle,
        row::Entity::find_by_id(1)
            .one(&sea)
            .await
            .expect("find_by_id")
    );
    assert_eq!(
        sea_get,
        Cost {
            critical: wire.ping + wire.prepared,
            release: wire.ping
        },
        "SeaORM's defaults ping at checkout: two round trips before the caller has its row"
    );

    // With a network delay, the round trips are the latency: ops' warm read takes about half
    // as long as SeaORM's defaults. The proxy delays every chunk it forwards, and a reply may
    // arrive in more than one, so a round trip costs at least two delays. Medians of several
    // reads, and a bound well below the 2x that the counts above predict, keep this robust on a
    // busy machine.
    proxy.set_mode(Mode::Latency(NETWORK_DELAY));
    let ops_latency = median_latency(&pool_idle, &proxy, || async {
        row::Ops::get(&db, 1).await.expect("get");
    })
    .await;
    let sea_latency = median_latency(&sea_idle, &proxy, || async {
        row::Entity::find_by_id(1)
            .one(&sea)
            .await
            .expect("find_by_id");
    })
    .await;
    proxy.set_mode(Mode::PassThrough);
    let speedup = sea_latency.as_secs_f64() / ops_latency.as_secs_f64();
    assert!(
        speedup > 1.5,
        "with {NETWORK_DELAY:?} each way, ops' warm read ({ops_latency:?}) should take about half \
         as long as SeaORM's defaults ({sea_latency:?})"
    );

    report(&format!(
        "round_trips[{backend}]: warm primary-key read with {NETWORK_DELAY:?} each way: ops \
         {ops_latency:?}, SeaORM defaults {sea_latency:?} ({speedup:.2}x)"
    ));
    report(&format!(
        "round_trips[{backend}]: client messages (critical path / release path): ops get {}/{} \
         = 1 round trip + sqlx's ping after; raw BEGIN {}/{}; DB_RESET_CHECK=always get {}/{}; \
         SeaORM defaults find_by_id {}/{} = 2 round trips + 1 after; managed sessions: {}",
        get.critical,
        get.release,
        raw_begin.critical,
        raw_begin.release,
        always_get.critical,
        always_get.release,
        sea_get.critical,
        sea_get.release,
        sessions
            .iter()
            .map(|(n, c)| format!("{n} statement(s) {}/{}", c.critical, c.release))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    sea.close().await.expect("close SeaORM's pool");
    db.close().await;
    drop(proxy);
    drop(admin);
    t.cleanup().await;
}
