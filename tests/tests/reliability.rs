//! Reliability under load and faults: no work lost or doubled, no connection poisoned.
//!
//! The suites run against real servers through a fault proxy of our own
//! ([`ops_tests::proxy::Proxy`]) and against server-side faults (`pg_terminate_backend`, `KILL`),
//! the way Jepsen and HikariCP test: the bank invariant under faults, a commit whose reply is
//! lost, pool exhaustion, a long job beside a burst of short requests, a blackholed network, idle
//! connections killed, round trips per checkout, and the leak warning.
//!
//! The bank test runs for `OPS_SOAK_SECS` seconds (default 6) per backend; set it higher to soak.
//! Its report line gives operations, faults by kind, violations and give-ups (both asserted 0),
//! the pool's peak of connections in use, and the process's resident memory at start and end
//! (and at every full minute, to tell warm-up from growth).

#[path = "../../ops-core/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_tests::bank::{self, Applied, Transfer};
use ops_tests::fixtures::{count, insert_item, items_table, kill_connections, sleep_sql};
use ops_tests::proxy::{Mode, Proxy};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_server};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Writes a line to standard error directly, past the harness's capture: summaries and skips
/// must be visible in a normal run.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A test database, a direct administrative connection to it, one to the server (for killing
/// sessions of the test database without being among them), and for servers a fault proxy.
struct Rig {
    t: TestDb,
    admin: DatabaseConnection,
    server: Option<DatabaseConnection>,
    proxy: Option<Proxy>,
}

impl Rig {
    async fn new(name: &str) -> Rig {
        let t = TestDb::new(name).await;
        let admin = t.admin().await;
        let (server, proxy) = match t.server_url() {
            Some(server_url) => {
                let mut options = sea_orm::ConnectOptions::new(server_url.to_owned());
                options.max_connections(2).sqlx_logging(false);
                let server = bounded(
                    "connect to the server",
                    STEP_TIMEOUT,
                    sea_orm::Database::connect(options),
                )
                .await
                .expect("server connection");
                let proxy = Proxy::for_url(&t.url).await.expect("start the fault proxy");
                (Some(server), Some(proxy))
            }
            None => (None, None),
        };
        Rig {
            t,
            admin,
            server,
            proxy,
        }
    }

    /// The URL a `Db` under test uses: through the proxy on servers.
    fn url(&self) -> String {
        match &self.proxy {
            Some(proxy) => proxy.url_for(&self.t.url),
            None => self.t.url.clone(),
        }
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("servers have a proxy")
    }

    /// Kills every server session of the test database; returns how many.
    async fn kill_all(&self) -> usize {
        match &self.server {
            Some(server) => kill_connections(server, &self.t.name).await,
            None => 0,
        }
    }

    /// Asserts that no session is open, every pooled connection is back and idle, and no
    /// server session of the test database is inside a transaction.
    async fn assert_quiescent(&self, db: &Db) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while (db.pool_state().in_use() > 0 || db.session_stats().active > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(db.session_stats().active, 0, "a session is still open");
        let state = db.pool_state();
        assert_eq!(
            state.in_use(),
            0,
            "a connection was not returned: {state:?}"
        );
        assert_eq!(state.idle, state.size, "{state:?}");
        match self.t.backend {
            Backend::Postgres => {
                let sql = format!(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{}' \
                     AND pid <> pg_backend_pid() AND state <> 'idle'",
                    self.t.name
                );
                let busy = scalar(self.server.as_ref().expect("server"), &sql).await;
                assert_eq!(busy, 0, "a server session is inside a transaction or busy");
            }
            Backend::MySql => {
                let sql = format!(
                    "SELECT COUNT(*) FROM information_schema.innodb_trx t \
                     JOIN information_schema.processlist p ON p.ID = t.trx_mysql_thread_id \
                     WHERE p.DB = '{}'",
                    self.t.name
                );
                let open = scalar(self.server.as_ref().expect("server"), &sql).await;
                assert_eq!(open, 0, "a server session is inside a transaction");
            }
            Backend::Sqlite => {
                // A pooled connection inside a write transaction would hold the write lock:
                // a write from another connection proves none does.
                bounded(
                    "a write beside the pool",
                    Duration::from_secs(10),
                    self.admin
                        .execute_unprepared("CREATE TABLE quiescent_probe (x INTEGER)"),
                )
                .await
                .expect("no pooled connection holds the write lock");
            }
        }
    }

    async fn cleanup(self) {
        drop(self.proxy);
        if let Some(server) = self.server {
            let _ = server.close().await;
        }
        let _ = self.admin.close().await;
        self.t.cleanup().await;
    }
}

async fn scalar<C: ConnectionTrait>(conn: &C, sql: &str) -> i64 {
    let row = bounded(
        "scalar query",
        STEP_TIMEOUT,
        conn.query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        )),
    )
    .await
    .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
    .expect("one row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

// ------------------------------------------------------------------------------------------------
// 1. The bank invariant under load and faults.
// ------------------------------------------------------------------------------------------------

const ACCOUNTS: u32 = 10;
const INITIAL_BALANCE: i64 = 100;
const TOTAL: i64 = ACCOUNTS as i64 * INITIAL_BALANCE;
const WRITERS: usize = 8;
const READERS: usize = 2;

#[db_retry(attempts = 25, initial = "2ms", max = "100ms", deadline = "15s")]
#[managed_session(isolation = "serializable", timeout = "10s", name = "transfer")]
async fn transfer(session: &Session, t: Transfer) -> Result<Applied, OpsError> {
    Ok(bank::apply(session, t).await?)
}

// A read is idempotent: an audit whose COMMIT reply was lost (a commit trap) is read again
// instead of giving up with `CommitUnknown`.
#[db_retry(attempts = 10, initial = "2ms", max = "50ms", idempotent = true)]
#[managed_session(read_only = true, timeout = "10s", name = "audit")]
async fn audit(session: &Session) -> Result<bank::Snapshot, OpsError> {
    Ok(bank::snapshot(session).await?)
}

/// What the client was told about one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Told {
    Moved,
    Declined,
    Failed(ErrorCategory),
    /// `CommitUnknown`: only the ledger can say.
    Unknown,
    /// The caller gave up waiting (the future was dropped mid-flight): only the ledger can say.
    Cancelled,
}

#[derive(Default)]
struct FaultCounts {
    kills: AtomicU64,
    cuts: AtomicU64,
    commit_traps: AtomicU64,
    cancels: AtomicU64,
}

fn soak_duration() -> Duration {
    match std::env::var("OPS_SOAK_SECS") {
        Ok(v) => Duration::from_secs_f64(
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("OPS_SOAK_SECS={v} is not a number of seconds")),
        ),
        Err(_) => Duration::from_secs(6),
    }
}

/// The process's resident memory (`VmRSS` in `/proc/self/status`) in KiB; `None` where there is
/// no procfs.
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// What the sampler saw while the bank ran.
#[derive(Default)]
struct Samples {
    /// The most connections in use at once.
    peak_in_use: u32,
    /// The most connections open at once.
    peak_size: u32,
    /// The resident memory in KiB at every full minute of the run.
    rss_by_minute: Vec<u64>,
}

/// Samples the pool every 10 ms and the resident memory every minute until `stop`. `PoolState`
/// holds the counts of the moment and no high-water mark, so the peak is sampled: a checkout
/// shorter than the interval may be missed.
async fn sampler(db: Db, stop: Arc<AtomicBool>) -> Samples {
    const MINUTE: Duration = Duration::from_secs(60);
    let mut samples = Samples::default();
    let mut next_minute = Instant::now() + MINUTE;
    while !stop.load(Ordering::Relaxed) {
        let state = db.pool_state();
        samples.peak_in_use = samples.peak_in_use.max(state.in_use());
        samples.peak_size = samples.peak_size.max(state.size);
        if Instant::now() >= next_minute {
            samples.rss_by_minute.extend(rss_kib());
            next_minute += MINUTE;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples
}

/// KiB as MiB with one decimal, or `?` when unknown.
fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

static TRANSFER_IDS: AtomicU64 = AtomicU64::new(1);

async fn writer(db: Db, until: Instant, faults: Arc<FaultCounts>) -> Vec<(Transfer, Told)> {
    let mut log = Vec::new();
    while Instant::now() < until {
        let from = fastrand::u32(0..ACCOUNTS);
        let to = (from + fastrand::u32(1..ACCOUNTS)) % ACCOUNTS;
        let t = Transfer {
            id: TRANSFER_IDS.fetch_add(1, Ordering::Relaxed),
            from,
            to,
            amount: fastrand::i64(1..=60),
        };
        // One transfer in 25 is abandoned by its caller after a random moment: a request whose
        // client disconnected, dropped wherever it happened to be, commit included.
        let result = if fastrand::u32(0..25) == 0 {
            faults.cancels.fetch_add(1, Ordering::Relaxed);
            let patience = Duration::from_micros(fastrand::u64(0..20_000));
            tokio::time::timeout(patience, transfer(&db, t)).await.ok()
        } else {
            Some(transfer(&db, t).await)
        };
        let told = match result {
            None => Told::Cancelled,
            Some(Ok(Applied::Moved)) => Told::Moved,
            Some(Ok(Applied::Declined)) => Told::Declined,
            Some(Err(e)) if e.category() == ErrorCategory::CommitUnknown => Told::Unknown,
            Some(Err(e)) => Told::Failed(e.category()),
        };
        log.push((t, told));
    }
    log
}

#[derive(Default)]
struct ReadLog {
    reads: u64,
    errors: u64,
    /// The categories of the failed reads.
    failed_by: BTreeMap<String, u64>,
    violations: Vec<String>,
}

async fn reader(db: Db, until: Instant) -> ReadLog {
    let mut log = ReadLog::default();
    while Instant::now() < until {
        match audit(&db).await {
            Ok(s) => {
                log.reads += 1;
                if s.total != TOTAL || s.min < 0 || s.accounts != i64::from(ACCOUNTS) {
                    log.violations
                        .push(format!("read saw {s:?}, expected total {TOTAL}"));
                }
            }
            Err(e) => {
                log.errors += 1;
                *log.failed_by.entry(e.category().to_string()).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    log
}

async fn nemesis(rig: Arc<Rig>, stop: Arc<AtomicBool>, faults: Arc<FaultCounts>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..450))).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match fastrand::u8(0..3) {
            0 => {
                rig.kill_all().await;
                faults.kills.fetch_add(1, Ordering::Relaxed);
            }
            1 => {
                rig.proxy().cut_all();
                faults.cuts.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                rig.proxy().cut_after_next_commit();
                faults.commit_traps.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_invariant_holds_under_faults() {
    let rig = Rig::new("bank").await;
    let backend = rig.t.backend;
    bank::create(&rig.admin, ACCOUNTS, INITIAL_BALANCE).await;
    let db = Db::builder(&rig.url())
        .pool_size(4)
        .max_overflow(4)
        .pool_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        .idle_ping(Duration::from_millis(50))
        .connect()
        .await
        .expect("connect");
    let rig = Arc::new(rig);

    let duration = soak_duration();
    let rss_start = rss_kib();
    let started = Instant::now();
    let until = started + duration;
    let faults = Arc::new(FaultCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let nemesis = (backend != Backend::Sqlite).then(|| {
        tokio::spawn(nemesis(
            Arc::clone(&rig),
            Arc::clone(&stop),
            Arc::clone(&faults),
        ))
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| tokio::spawn(writer(db.clone(), until, Arc::clone(&faults))))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(reader(db.clone(), until)))
        .collect();
    let sampler = tokio::spawn(sampler(db.clone(), Arc::clone(&stop)));

    // Transfers finish within their retry deadline (15 s) after `until`.
    let limit = duration + Duration::from_secs(60);
    let mut told = Vec::new();
    for w in writers {
        told.extend(bounded("a writer", limit, w).await.expect("writer task"));
    }
    let mut reads = ReadLog::default();
    for r in readers {
        let log = bounded("a reader", limit, r).await.expect("reader task");
        reads.reads += log.reads;
        reads.errors += log.errors;
        for (category, n) in log.failed_by {
            *reads.failed_by.entry(category).or_default() += n;
        }
        reads.violations.extend(log.violations);
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(n) = nemesis {
        bounded("the nemesis", STEP_TIMEOUT, n)
            .await
            .expect("nemesis task");
    }
    let samples = bounded("the sampler", STEP_TIMEOUT, sampler)
        .await
        .expect("sampler task");
    if let Some(proxy) = &rig.proxy {
        proxy.disarm_commit_traps();
        proxy.set_mode(Mode::PassThrough);
    }
    let elapsed = started.elapsed();

    // Every pooled connection and session is back and clean before the books are checked.
    rig.assert_quiescent(&db).await;
    // Measured before the books are read into memory. The run's own log of what each caller
    // was told grows with the operations and is part of this; the line reports its size.
    let rss_end = rss_kib();
    let log_kib = (told.capacity() * std::mem::size_of::<(Transfer, Told)>()) as u64 / 1024;

    let mut violations = reads.violations;
    let balances = bank::balances(&rig.admin).await.expect("balances");
    let ledger = bank::ledger(&rig.admin).await.expect("ledger");
    let total: i64 = balances.values().sum();
    if total != TOTAL {
        violations.push(format!("final total {total}, expected {TOTAL}"));
    }
    for (id, balance) in &balances {
        if *balance < 0 {
            violations.push(format!("account {id} is negative: {balance}"));
        }
    }
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut unknown_committed, mut unknown_absent) = (0, 0);
    let mut ours = std::collections::BTreeSet::new();
    for (t, what) in &told {
        ours.insert(t.id);
        let rows = ledger.get(&t.id).map_or(&[][..], Vec::as_slice);
        let expected_row = (t.from, t.to, t.amount);
        if rows.iter().any(|r| *r != expected_row) {
            violations.push(format!("transfer {t:?} has a foreign ledger row: {rows:?}"));
        }
        let key = match what {
            Told::Moved => {
                if rows.len() != 1 {
                    violations.push(format!(
                        "transfer {} reported committed has {} ledger rows",
                        t.id,
                        rows.len()
                    ));
                }
                "moved"
            }
            Told::Declined => {
                if !rows.is_empty() {
                    violations.push(format!("declined transfer {} is in the ledger", t.id));
                }
                "declined"
            }
            Told::Failed(category) => {
                if !rows.is_empty() {
                    violations.push(format!(
                        "transfer {} reported failed ({category}) is in the ledger {} time(s)",
                        t.id,
                        rows.len()
                    ));
                }
                "failed"
            }
            Told::Unknown | Told::Cancelled => {
                match rows.len() {
                    0 => unknown_absent += 1,
                    1 => unknown_committed += 1,
                    n => violations.push(format!("transfer {} is in the ledger {n} times", t.id)),
                }
                if *what == Told::Unknown {
                    "commit_unknown"
                } else {
                    "cancelled"
                }
            }
        };
        *outcomes.entry(key).or_default() += 1;
    }
    for id in ledger.keys() {
        if !ours.contains(id) {
            violations.push(format!("ledger row for unknown transfer {id}"));
        }
    }
    // The books balance: each account's final balance is its opening balance plus what the
    // ledger says it received minus what it sent. A transfer applied without its ledger row, or
    // a ledger row without its transfer, breaks this.
    let mut expected: BTreeMap<u32, i64> = (0..ACCOUNTS).map(|id| (id, INITIAL_BALANCE)).collect();
    for rows in ledger.values() {
        for (from, to, amount) in rows {
            *expected.entry(*from).or_default() -= amount;
            *expected.entry(*to).or_default() += amount;
        }
    }
    if expected != balances {
        violations.push(format!(
            "balances {balances:?} disagree with the ledger, which implies {expected:?}"
        ));
    }

    let errors = db.error_stats();
    let sessions = db.session_stats();
    let mut failed_by: BTreeMap<String, u64> = BTreeMap::new();
    for (_, what) in &told {
        if let Told::Failed(c) = what {
            *failed_by.entry(c.to_string()).or_default() += 1;
        }
    }
    let proxy_stats = rig.proxy.as_ref().map(Proxy::stats);
    // A give-up is an operation that ended in an error after its retries: a transfer reported
    // failed, or an audit that failed. Commit-unknown and cancelled transfers are not: the
    // ledger resolves them.
    let failed = outcomes.get("failed").copied().unwrap_or(0);
    let give_ups = failed + reads.errors;
    let max = db.pool_state().max;
    let rss_by_minute: Vec<String> = samples
        .rss_by_minute
        .iter()
        .map(|k| mib(Some(*k)))
        .collect();
    let mut line = format!(
        "bank[{backend}]: {:.1}s, {} operations ({} transfers, {} audits); faults: kills {}, \
         proxy cuts {}, commit traps {} (sprung {}), cancels {}; violations {}; give-ups \
         {give_ups} ({failed} transfers, {} audits); pool peak {} in use of {max} ({} open); \
         rss {} MiB at start, {} MiB at end (by minute {rss_by_minute:?}; transfer log \
         {:.1} MiB) | transfers {outcomes:?}, failed by category {failed_by:?}, unknown \
         resolved: {unknown_committed} committed / {unknown_absent} absent; retries {} {:?} \
         (succeeded {}, exhausted {}); sessions opened {} committed {} rolled back {} dropped \
         unfinished {} peak {}",
        elapsed.as_secs_f64(),
        told.len() as u64 + reads.reads + reads.errors,
        told.len(),
        reads.reads + reads.errors,
        faults.kills.load(Ordering::Relaxed),
        faults.cuts.load(Ordering::Relaxed),
        faults.commit_traps.load(Ordering::Relaxed),
        proxy_stats.map_or(0, |s| s.commits_cut),
        faults.cancels.load(Ordering::Relaxed),
        violations.len(),
        reads.errors,
        samples.peak_in_use,
        samples.peak_size,
        mib(rss_start),
        mib(rss_end),
        log_kib as f64 / 1024.0,
        errors.retries_attempted,
        errors.retries_by_category,
        errors.retries_succeeded,
        errors.retries_exhausted,
        sessions.opened,
        sessions.committed,
        sessions.rolled_back,
        sessions.dropped_unfinished,
        sessions.peak,
    );
    if let Some(s) = proxy_stats {
        let _ = write!(
            line,
            "; proxy: {} connections, {} client messages, {} commits",
            s.accepted, s.client_messages, s.commits_seen
        );
    }
    report(&line);
    assert!(
        outcomes.get("moved").copied().unwrap_or(0) > 0,
        "no transfer committed: the run proves nothing"
    );
    if backend == Backend::Sqlite {
        // SQLite's write sessions queue for the one writer and take its lock at BEGIN
        // IMMEDIATE: no transfer ever fights another for the lock (no BUSY, no BUSY_SNAPSHOT).
        // The cancelled transfers are the only faults on SQLite and cause no retries.
        for code in ["5", "517", "261", "773"] {
            assert_eq!(
                errors.by_code.get(code),
                None,
                "SQLite code {code} in {:?}",
                errors.by_code
            );
        }
        assert_eq!(
            errors.retries_attempted, 0,
            "{:?}",
            errors.retries_by_category
        );
    }
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        give_ups, 0,
        "{failed} transfer(s) and {} audit(s) gave up: transfers {failed_by:?}, audits {:?}",
        reads.errors, reads.failed_by
    );
    db.close().await;
    match Arc::try_unwrap(rig) {
        Ok(rig) => rig.cleanup().await,
        Err(_) => panic!("the nemesis still holds the rig"),
    }
}

// ------------------------------------------------------------------------------------------------
// 2. A commit whose reply is lost.
// ------------------------------------------------------------------------------------------------

#[db_retry(attempts = 5, initial = "5ms")]
#[managed_session(name = "record_payment")]
async fn record_payment(session: &Session, calls: &AtomicU32, id: u64) -> Result<(), OpsError> {
    calls.fetch_add(1, Ordering::SeqCst);
    session
        .execute_unprepared(&format!(
            "INSERT INTO ledger (transfer_id, from_id, to_id, amount) VALUES ({id}, 0, 1, 5)"
        ))
        .await?;
    Ok(())
}

#[db_retry(attempts = 5, initial = "5ms", idempotent = true)]
#[managed_session(name = "record_payment_once")]
async fn record_payment_once(
    session: &Session,
    calls: &AtomicU32,
    id: u64,
) -> Result<(), OpsError> {
    calls.fetch_add(1, Ordering::SeqCst);
    // Idempotent by construction: a retry after an unknown commit finds its own row.
    if bank::ledger_rows(session, id).await? == 0 {
        session
            .execute_unprepared(&format!(
                "INSERT INTO ledger (transfer_id, from_id, to_id, amount) VALUES ({id}, 0, 1, 5)"
            ))
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn lost_commit_reply_is_commit_unknown_and_never_rerun() {
    if !require_server(
        "lost_commit_reply_is_commit_unknown_and_never_rerun (SQLite has no network)",
    ) {
        return;
    }
    let rig = Rig::new("ambiguous").await;
    bank::create(&rig.admin, 2, 100).await;
    let db = Db::builder(&rig.url())
        .pool_size(2)
        .max_overflow(0)
        .connect()
        .await
        .expect("connect");

    // Not idempotent: the caller is told the outcome is unknown and the body ran once.
    let calls = AtomicU32::new(0);
    rig.proxy().cut_after_next_commit();
    let err = bounded(
        "record_payment",
        STEP_TIMEOUT,
        record_payment(&db, &calls, 7),
    )
    .await
    .expect_err("the commit's reply was cut");
    assert_eq!(err.category(), ErrorCategory::CommitUnknown, "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a non-idempotent body ran again"
    );
    assert_eq!(rig.proxy().stats().commits_cut, 1);
    // The proxy waited for the server to answer the COMMIT before cutting, so the ledger says
    // committed, and the database agrees.
    assert_eq!(bank::ledger_rows(&rig.admin, 7).await.unwrap(), 1);
    assert_eq!(count(&rig.admin, "ledger").await, 1);

    // Declared idempotent: retried after the unknown commit, it finds its row and writes none.
    let calls = AtomicU32::new(0);
    rig.proxy().cut_after_next_commit();
    bounded(
        "record_payment_once",
        STEP_TIMEOUT,
        record_payment_once(&db, &calls, 8),
    )
    .await
    .expect("the retry resolves the unknown commit");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(rig.proxy().stats().commits_cut, 2);
    assert_eq!(bank::ledger_rows(&rig.admin, 8).await.unwrap(), 1);

    let stats = db.error_stats();
    assert!(
        stats
            .recent_critical
            .iter()
            .any(|e| e.category == ErrorCategory::CommitUnknown),
        "an unknown commit is a critical event: {:?}",
        stats.recent_critical
    );
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

#[tokio::test]
async fn lost_commit_reply_of_a_read_only_session_is_retryable() {
    if !require_server(
        "lost_commit_reply_of_a_read_only_session_is_retryable (SQLite has no network)",
    ) {
        return;
    }
    let rig = Rig::new("ambiguous_read").await;
    bank::create(&rig.admin, 2, 100).await;
    let db = Db::builder(&rig.url())
        .pool_size(2)
        .max_overflow(0)
        .connect()
        .await
        .expect("connect");
    // A read-only session wrote nothing, so a COMMIT whose reply is lost has a known outcome:
    // the loss is an ordinary connection loss, and a retry reads again.
    rig.proxy().cut_after_next_commit();
    let err = bounded(
        "a read-only session",
        STEP_TIMEOUT,
        db.run(SessionOptions::new().read_only(), |s| async move {
            bank::balances(&s).await.map_err(OpsError::from)
        }),
    )
    .await
    .expect_err("the commit's reply was cut");
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::ConnectionLost),
        "{err}"
    );
    assert_eq!(rig.proxy().stats().commits_cut, 1);
    assert!(
        !db.error_stats()
            .recent_critical
            .iter()
            .any(|e| e.category == ErrorCategory::CommitUnknown),
        "no unknown commit is reported for a read"
    );
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

// ------------------------------------------------------------------------------------------------
// 3. Pool exhaustion.
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn exhausted_pool_fails_at_pool_timeout() {
    let rig = Rig::new("exhaustion").await;
    let pool_timeout = Duration::from_secs(2);
    let db = Db::builder(&rig.t.url)
        .pool_size(2)
        .max_overflow(1)
        .pool_timeout(pool_timeout)
        .connect()
        .await
        .expect("connect");
    // On SQLite the pool is one writer and two readers: one write session and two read-only
    // ones hold all three.
    let mut held = Vec::new();
    for n in 0..3 {
        let options = match rig.t.backend {
            Backend::Sqlite if n > 0 => SessionOptions::new().read_only(),
            _ => SessionOptions::new(),
        };
        held.push(
            bounded("hold", STEP_TIMEOUT, db.session_with(options))
                .await
                .expect("session"),
        );
    }

    // A session, a managed session and a plain statement on the Db all wait the pool timeout.
    for what in ["session", "run", "statement"] {
        let started = Instant::now();
        let result = bounded(what, pool_timeout * 5, async {
            match what {
                "session" => db.session().await.map(drop),
                "run" => {
                    db.run(SessionOptions::new(), |_s| async { Ok::<_, OpsError>(()) })
                        .await
                }
                _ => db
                    .execute_unprepared("SELECT 1")
                    .await
                    .map(drop)
                    .map_err(OpsError::from),
            }
        })
        .await;
        let waited = started.elapsed();
        let err = result.expect_err("every connection is held");
        assert_eq!(
            err.category(),
            ErrorCategory::Retryable(RetryReason::PoolExhausted),
            "{what}: {err}"
        );
        assert!(
            waited >= pool_timeout.mul_f64(0.9) && waited <= pool_timeout.mul_f64(1.1),
            "{what} failed after {waited:?}, not within 10% of the pool timeout {pool_timeout:?}"
        );
    }
    for s in held {
        s.rollback().await.expect("rollback");
    }
    db.execute_unprepared("SELECT 1")
        .await
        .expect("the pool serves again");
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

// ------------------------------------------------------------------------------------------------
// 4. A long job beside a burst of short requests.
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_job_beside_a_burst_uses_overflow_then_shrinks() {
    let rig = Rig::new("long_job").await;
    items_table(&rig.admin).await;
    let (pool_size, max_overflow) = (3, 6);
    let idle_timeout = Duration::from_millis(500);
    let db = Db::builder(&rig.t.url)
        .pool_size(pool_size)
        .max_overflow(max_overflow)
        .pool_timeout(Duration::from_secs(20))
        .idle_timeout(idle_timeout)
        .connect()
        .await
        .expect("connect");

    // SQLite has one writer: there the long job, which only reads, is a read-only session on a
    // reader, and the burst's sessions read on readers (the overflow) and write outside them,
    // queueing for the writer.
    let sqlite = rig.t.backend == Backend::Sqlite;
    let reading = move |name: &'static str| match sqlite {
        true => SessionOptions::new().name(name).read_only(),
        false => SessionOptions::new().name(name),
    };
    let job_db = db.clone();
    let job = tokio::spawn(async move {
        // A long assembly job: reads in one session for several seconds.
        job_db
            .run(reading("assembly"), |s| async move {
                let mut seen = 0;
                for _ in 0..15 {
                    seen += count(&s, "items").await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok::<_, OpsError>(seen)
            })
            .await
    });
    let peak = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (db, peak) = (db.clone(), Arc::clone(&peak));
        tokio::spawn(async move {
            loop {
                peak.fetch_max(db.pool_state().size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(reading("request"), |s| async move {
                    if sqlite {
                        count(&s, "items").await;
                    } else {
                        insert_item(&s, i, "short request").await?;
                    }
                    // Hold the connection a little so the requests overlap.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok::<_, OpsError>(())
                })
                .await?;
                if sqlite {
                    insert_item(&db, i, "short request").await?;
                }
                Ok::<_, OpsError>(())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for r in requests {
        if let Err(e) = bounded("a short request", STEP_TIMEOUT, r)
            .await
            .expect("request task")
        {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "short requests failed: {failures:?}");
    assert!(
        !job.is_finished(),
        "the long job should still hold its session while the burst ran"
    );
    bounded("the long job", STEP_TIMEOUT, job)
        .await
        .expect("job task")
        .expect("the long job commits");
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak > pool_size,
        "the burst never used overflow (peak {peak})"
    );
    assert_eq!(count(&rig.admin, "items").await, 50);

    // Overflow connections close once idle past the idle timeout. SQLite keeps the writer and
    // one reader open.
    let floor = if sqlite { 2 } else { pool_size };
    let deadline = Instant::now() + idle_timeout + Duration::from_secs(10);
    while db.pool_state().size > floor && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(db.pool_state().size, floor, "the pool did not shrink back");
    report(&format!(
        "long_job[{}]: 50 requests beside a 3 s job, pool peak {peak}, back to {floor}",
        rig.t.backend
    ));
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

// ------------------------------------------------------------------------------------------------
// 5. A blackholed network.
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_session_times_out_and_retry_keeps_its_deadline() {
    if !require_server("blackholed_session_times_out_and_retry_keeps_its_deadline") {
        return;
    }
    let rig = Rig::new("blackhole").await;
    let db = Db::builder(&rig.url())
        .pool_size(2)
        .max_overflow(0)
        .pool_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("connect");
    db.execute_unprepared("SELECT 1").await.expect("warm");

    // The network goes dark under a session that is already running.
    let timeout = Duration::from_secs(1);
    let proxy = rig.proxy();
    let started = Instant::now();
    let result = bounded(
        "a blackholed session",
        STEP_TIMEOUT,
        db.run(SessionOptions::new().timeout(timeout), |s| async move {
            s.execute_unprepared("SELECT 1").await?;
            proxy.set_mode(Mode::Blackhole);
            s.execute_unprepared("SELECT 2").await?;
            Ok::<_, OpsError>(())
        }),
    )
    .await;
    let waited = started.elapsed();
    let err = result.expect_err("nothing comes back through a blackhole");
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::StatementTimeout),
        "{err}"
    );
    report(&format!(
        "blackhole[{}]: session with a {timeout:?} timeout failed after {waited:?}",
        rig.t.backend
    ));
    // Checked at the end, so that one run reports both halves.
    let mut late = Vec::new();
    if waited > timeout + Duration::from_millis(1500) {
        late.push(format!(
            "the session failed after {waited:?}, long past its timeout of {timeout:?}"
        ));
    }

    // Every attempt of a retry loop meets the blackhole on a warm pooled connection (no idle
    // ping at checkout, as for a connection used moments ago); the loop still ends at its
    // deadline, plus at most one attempt bounded by its session timeout.
    proxy.set_mode(Mode::PassThrough);
    let warm = Db::builder(&rig.url())
        .pool_size(3)
        .max_overflow(0)
        .pool_timeout(Duration::from_secs(1))
        .idle_ping(Duration::from_secs(600))
        .connect()
        .await
        .expect("connect");
    let mut held = Vec::new();
    for _ in 0..3 {
        let s = warm.session().await.expect("session");
        s.execute_unprepared("SELECT 1").await.expect("warm");
        held.push(s);
    }
    for s in held {
        s.commit().await.expect("commit");
    }
    rig.assert_quiescent(&warm).await;
    proxy.set_mode(Mode::Blackhole);
    let deadline = Duration::from_secs(3);
    let attempt_timeout = Duration::from_millis(500);
    let policy = RetryPolicy::new()
        .attempts(1000)
        .initial(Duration::from_millis(20))
        .max(Duration::from_millis(100))
        .deadline(deadline)
        .also_on(RetryReason::StatementTimeout)
        .also_on(RetryReason::PoolExhausted);
    let attempts = AtomicU32::new(0);
    let started = Instant::now();
    let allowed = deadline + attempt_timeout + Duration::from_secs(3);
    let result = tokio::time::timeout(
        allowed + Duration::from_secs(5),
        retry(&policy, |_| {
            attempts.fetch_add(1, Ordering::Relaxed);
            warm.run(
                SessionOptions::new().timeout(attempt_timeout),
                |s| async move {
                    s.execute_unprepared("SELECT 1").await?;
                    Ok::<_, OpsError>(())
                },
            )
        }),
    )
    .await;
    let waited = started.elapsed();
    let attempts = attempts.load(Ordering::Relaxed);
    match result {
        Ok(result) => {
            let err = result.expect_err("nothing comes back through a blackhole");
            report(&format!(
                "blackhole[{}]: retry with a {deadline:?} deadline gave up after {waited:?} and \
                 {attempts} attempt(s): {err}",
                rig.t.backend,
            ));
            if waited > allowed {
                late.push(format!(
                    "the retry loop ran {waited:?}, past its deadline of {deadline:?} plus one \
                     attempt"
                ));
            }
        }
        Err(_) => late.push(format!(
            "the retry loop with a deadline of {deadline:?} and sessions with a timeout of \
             {attempt_timeout:?} was still running after {waited:?}, in attempt {attempts}: \
             an attempt hung past its session timeout"
        )),
    }

    // Light again: the same Db serves requests, and its connections come back clean.
    proxy.set_mode(Mode::PassThrough);
    bounded("a request after the blackhole", STEP_TIMEOUT, async {
        retry(
            &RetryPolicy::new()
                .attempts(10)
                .also_on(RetryReason::PoolExhausted),
            |_| async {
                db.execute_unprepared("SELECT 1")
                    .await
                    .map_err(OpsError::from)
            },
        )
        .await
    })
    .await
    .expect("the Db recovers when the network does");
    rig.assert_quiescent(&db).await;
    bounded(
        "a request on the warm pool",
        STEP_TIMEOUT,
        warm.execute_unprepared("SELECT 1"),
    )
    .await
    .expect("the warm pool recovers when the network does");
    rig.assert_quiescent(&warm).await;
    warm.close().await;
    assert!(late.is_empty(), "{}", late.join("; "));
    db.close().await;
    rig.cleanup().await;
}

// ------------------------------------------------------------------------------------------------
// 7. Idle connections killed, by the server and by the network.
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn killed_idle_connections_never_reach_the_caller() {
    if !require_server("killed_idle_connections_never_reach_the_caller") {
        return;
    }
    let rig = Rig::new("idle_kills").await;
    items_table(&rig.admin).await;
    let pool_size = 3;
    let db = Db::builder(&rig.url())
        .pool_size(pool_size)
        .max_overflow(0)
        .idle_ping(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect");
    for round in 0..2 {
        // Warm every connection, then let them all go idle.
        let mut held = Vec::new();
        for _ in 0..pool_size {
            held.push(db.session().await.expect("session"));
        }
        for s in held {
            s.execute_unprepared("SELECT 1").await.expect("warm");
            s.commit().await.expect("commit");
        }
        rig.assert_quiescent(&db).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if round == 0 {
            let killed = rig.kill_all().await;
            assert!(
                killed >= pool_size as usize,
                "killed {killed} of {pool_size}"
            );
        } else {
            let cut = rig.proxy().cut_all();
            assert!(cut >= u64::from(pool_size), "cut {cut} of {pool_size}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..10 {
            let id = round * 100 + i;
            bounded("a request after the kill", STEP_TIMEOUT, async {
                db.run(SessionOptions::new(), |s| async move {
                    insert_item(&s, id, "after kill").await?;
                    Ok::<_, OpsError>(())
                })
                .await
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: an error reached the caller: {e}"));
        }
    }
    assert_eq!(count(&rig.admin, "items").await, 20);
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

// ------------------------------------------------------------------------------------------------
// Round trips per checkout, counted by the proxy.
// ------------------------------------------------------------------------------------------------

// ------------------------------------------------------------------------------------------------
// 8. The leak warning.
// ------------------------------------------------------------------------------------------------

/// Collects every event's level and fields as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(tracing::Level, String)>>>);

struct FieldText(String);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut text = FieldText(String::new());
        event.record(&mut text);
        self.0
            .lock()
            .expect("capture lock")
            .push((*event.metadata().level(), text.0));
    }
}

#[tokio::test]
async fn leaked_session_is_warned_about_once_with_its_origin() {
    let captured = Captured::default();
    // The runtime is single-threaded, so the leak watcher task runs on this thread and its
    // events are routed to this test's capture.
    let _guard = support::route(captured.clone());
    let rig = Rig::new("leak").await;
    let threshold = Duration::from_millis(200);
    let db = Db::builder(&rig.t.url)
        .pool_size(2)
        .leak_threshold(Some(threshold))
        .connect()
        .await
        .expect("connect");

    // A session finished within the threshold is not warned about.
    let quick = db.session().await.expect("session");
    quick.commit().await.expect("commit");

    let line = line!() + 1;
    let held = db.session().await.expect("session");
    // ops-scan: allow(session-held-across-io) -- outlives the leak threshold on purpose
    tokio::time::sleep(threshold * 6).await;
    held.rollback().await.expect("rollback");
    tokio::time::sleep(threshold).await;

    let origin = format!("origin={}:{line} ", file!());
    let events = captured.0.lock().expect("capture lock").clone();
    let leaks: Vec<_> = events
        .iter()
        .filter(|(level, text)| *level == tracing::Level::WARN && text.contains("leak"))
        .collect();
    assert_eq!(leaks.len(), 1, "one warning per leaked session: {leaks:#?}");
    assert!(
        leaks[0].1.contains(&origin),
        "the warning names the origin {origin}: {}",
        leaks[0].1
    );
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

/// A connection that does not answer on its way back to the pool (the release ping, or the reset
/// with `DB_RESET_CHECK=always`) is closed once the connect timeout passes, with a warning,
/// instead of holding its pool slot forever: sqlx awaits its release ping without a bound, and
/// the bank soak on MariaDB lost a slot that way about once in ten runs.
#[tokio::test]
async fn silent_reset_on_return_gives_up_at_the_connect_timeout() {
    if !require_server("silent_reset_on_return_gives_up_at_the_connect_timeout") {
        return;
    }
    let captured = Captured::default();
    // Single-threaded runtime: the pool's return task runs on this thread, so its warning is
    // routed to this test's capture.
    let _guard = support::route(captured.clone());
    let rig = Rig::new("silent_reset").await;
    let limit = Duration::from_secs(1);
    let db = Db::builder(&rig.url())
        .pool_size(1)
        .max_overflow(1)
        .connect_timeout(limit)
        .pool_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    // ops-scan: allow(unfinished-session) -- dropped on purpose: its rollback meets the blackhole
    let session = db.session().await.expect("session");
    session
        .execute_unprepared("SELECT 1")
        .await
        .expect("select");
    rig.proxy().set_mode(Mode::Blackhole);
    let started = Instant::now();
    // Its rollback and the release check go into the blackhole.
    drop(session);
    let gave_up = |events: &[(tracing::Level, String)]| {
        events.iter().any(|(level, text)| {
            *level == tracing::Level::WARN && text.contains("a pooled connection did not answer")
        })
    };
    while !gave_up(&captured.0.lock().expect("capture lock"))
        && started.elapsed() < limit + Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = started.elapsed();
    assert!(
        gave_up(&captured.0.lock().expect("capture lock")),
        "no warning that the reset was given up within {waited:?}"
    );
    assert!(
        waited >= limit,
        "gave up after {waited:?}, before {limit:?}"
    );
    report(&format!(
        "silent_reset[{}]: release check given up after {waited:?} (connect timeout {limit:?})",
        rig.t.backend
    ));

    rig.proxy().set_mode(Mode::PassThrough);
    bounded(
        "a statement after the network is back",
        STEP_TIMEOUT,
        async { db.execute_unprepared("SELECT 1").await },
    )
    .await
    .expect("the pool serves again");
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}

/// A statement that keeps the server busy longer than the test is ended by the session timeout,
/// and the connection comes back usable: cancellation does not poison the pool.
#[tokio::test]
async fn timed_out_statement_does_not_poison_the_connection() {
    let Some(sql) = sleep_sql(ops_tests::backend(), 30) else {
        report("skipped: timed_out_statement_does_not_poison_the_connection needs a server");
        return;
    };
    let rig = Rig::new("timeout_poison").await;
    let db = Db::builder(&rig.url())
        .pool_size(1)
        .max_overflow(0)
        .connect()
        .await
        .expect("connect");
    let err = bounded(
        "a timed-out statement",
        STEP_TIMEOUT,
        db.run(
            SessionOptions::new().timeout(Duration::from_millis(300)),
            |s| async move {
                s.execute_unprepared(&sql).await?;
                Ok::<_, OpsError>(())
            },
        ),
    )
    .await
    .expect_err("the statement outlives the timeout");
    assert!(err.is_retryable(), "{err}");
    // The one pooled connection answers the next statement correctly, outside any transaction.
    let row = bounded(
        "the next statement",
        STEP_TIMEOUT,
        db.query_one_raw(Statement::from_string(
            match rig.t.backend {
                Backend::Postgres => DbBackend::Postgres,
                _ => DbBackend::MySql,
            },
            "SELECT 41 + 1",
        )),
    )
    .await
    .expect("the connection is usable")
    .expect("a row");
    assert_eq!(
        row.try_get_by_index::<i32>(0).unwrap_or_else(|_| {
            i32::try_from(row.try_get_by_index::<i64>(0).expect("an integer")).expect("small")
        }),
        42
    );
    rig.assert_quiescent(&db).await;
    db.close().await;
    rig.cleanup().await;
}
