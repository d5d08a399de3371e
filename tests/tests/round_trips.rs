//! Round trips per operation on PostgreSQL, counted by the fault proxy: what ops costs on the
//! wire, compared with plain SeaORM defaults on the same proxy.
//!
//! The proxy counts client protocol messages. On PostgreSQL a round trip is one request and the
//! server's answer up to `ReadyForQuery`; sqlx sends each request as one of three shapes, so the
//! message counts translate into round trips exactly:
//!
//! - a prepared statement whose plan sqlx has cached: `Bind`, `Execute`, `Close` (portal), `Sync`:
//!   four messages, one round trip ([`EXTENDED`]);
//! - a statement without parameters (`BEGIN`, `COMMIT`, ops' reset check): one `Query` message,
//!   one round trip ([`SIMPLE`]);
//! - a ping (sqlx's `Connection::ping`): one `Sync` message, one round trip ([`PING`]).
//!
//! Two moments are counted separately:
//!
//! - the **critical path**: messages sent before the caller gets its result. The runtime is
//!   single-threaded, so nothing else runs between the operation's last `await` and the read of the
//!   counter; and every request on the critical path was answered, so the proxy has counted it.
//! - the **release path**: messages sent after the result, by the pool's background task that
//!   takes the connection back (ops' reset-on-return check, then sqlx 0.9's own ping on release).
//!   They cost the caller no latency but do cost the server and the connection's availability.

use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_tests::proxy::{Mode, Proxy};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_backend};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};

/// A prepared statement with its plan cached: `Bind`, `Execute`, `Close`, `Sync`.
const EXTENDED: u64 = 4;
/// A statement without parameters: `Query`.
const SIMPLE: u64 = 1;
/// sqlx's ping: `Sync`.
const PING: u64 = 1;

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

#[tokio::test]
async fn warm_get_and_managed_sessions_cost_the_minimum_round_trips() {
    if !require_backend(
        Backend::Postgres,
        "warm_get_and_managed_sessions_cost_the_minimum_round_trips",
    ) {
        return;
    }
    let t = TestDb::new("round_trips").await;
    let admin = t.admin().await;
    admin
        .execute_unprepared(
            "CREATE TABLE rt_rows (id SERIAL PRIMARY KEY, qty INT NOT NULL); \
             INSERT INTO rt_rows (qty) VALUES (0)",
        )
        .await
        .expect("create the table");
    let proxy = Proxy::for_url(&t.url).await.expect("start the fault proxy");
    let url = proxy.url_for(&t.url);

    // One connection, so every operation after the warm-up finds its statements prepared; the
    // idle ping is pushed out of reach so that the settling pauses cannot trigger it (the
    // reliability suite measures the idle ping itself).
    let db = bounded(
        "connect",
        STEP_TIMEOUT,
        Db::builder(&url)
            .pool_size(1)
            .max_overflow(0)
            .idle_ping(Duration::from_secs(600))
            .connect(),
    )
    .await
    .expect("connect");
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
            critical: EXTENDED,
            release: SIMPLE + PING
        },
        "a warm get is one round trip; the release path is the reset check and sqlx's ping"
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
                critical: SIMPLE + statements * EXTENDED + SIMPLE,
                release: SIMPLE + PING
            },
            "a managed session with {statements} statements is {} round trips",
            statements + 2
        );
        sessions.push((statements, session));
    }
    assert_eq!(db.session_stats().committed, 5);

    // Plain SeaORM with its default options, through the same proxy.
    let sea: DatabaseConnection = bounded(
        "connect with SeaORM defaults",
        STEP_TIMEOUT,
        sea_orm::Database::connect(&url),
    )
    .await
    .expect("connect with SeaORM defaults");
    let sea_idle = || {
        let pool = sea.get_postgres_connection_pool();
        pool.size() as usize == pool.num_idle()
    };
    // SeaORM's pool may open more than one connection, and sqlx hands idle connections out in
    // turn: warm the statement cache of each, letting every release finish in between.
    for _ in 0..=sea.get_postgres_connection_pool().size() {
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
            critical: PING + EXTENDED,
            release: PING
        },
        "SeaORM's defaults ping at checkout: two round trips before the caller has its row"
    );

    // With a network delay, the round trips are the latency: ops' warm read takes about half
    // as long as SeaORM's defaults. The proxy delays every chunk it forwards, and a reply may
    // arrive in more than one, so a round trip costs at least two delays. Medians of several reads, and a bound well below the 2x
    // that the counts above predict, keep this robust on a busy machine.
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
        "round_trips[PostgreSQL]: warm primary-key read with {NETWORK_DELAY:?} each way: ops \
         {ops_latency:?}, SeaORM defaults {sea_latency:?} ({speedup:.2}x)"
    ));
    report(&format!(
        "round_trips[PostgreSQL]: client messages (critical path / release path): ops get {}/{} \
         = 1 round trip + 2 after the result; SeaORM defaults find_by_id {}/{} = 2 round trips \
         + 1 after; managed sessions: {}",
        get.critical,
        get.release,
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
