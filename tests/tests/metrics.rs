//! Metrics (feature `metrics`): a recorder of the test's own, and exact values after a scripted
//! workload on the backend `DATABASE_URL` names: a commit, a rollback on a unique violation, a
//! retry, a pool timeout with a caller seen waiting, a session dropped unfinished and a session
//! past its timeout.
//!
//! The recorder is global to the process, so this binary holds this one test.

use std::time::{Duration, Instant};

use ops_sea::metrics as m;
use ops_sea::{
    Db, ErrorCategory, IntegrityKind, OpsError, RetryPolicy, RetryReason, SessionOptions,
};
use ops_tests::fixtures::item;
use ops_tests::{STEP_TIMEOUT, TestDb, bounded};

fn named(name: &'static str) -> SessionOptions {
    SessionOptions::new().name(name)
}

fn new_item(id: i32, name: &str) -> item::New {
    item::New {
        id,
        name: name.to_owned(),
    }
}

/// Polls `check` until it holds, for at most 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_workload_gives_exact_counts() {
    let recorded = ops_tests::metrics::install();
    let test = TestDb::new("metrics").await;
    let db = item::connect_with_table(
        Db::builder(&test.url)
            .pool_size(2)
            .max_overflow(0)
            .pool_timeout(Duration::from_millis(400)),
    )
    .await;

    // Every connection a write session can take: SQLite's one writer, or the pool of two.
    let holders: u64 = if db.backend() == sea_orm::DbBackend::Sqlite {
        1
    } else {
        2
    };
    bounded("the scripted workload", STEP_TIMEOUT * 3, async {
        // 1. A session that commits two repository calls.
        db.run(named("m_commit"), |s| async move {
            item::Ops::create(&s, new_item(1, "one")).await?;
            item::Ops::get(&s, 1).await?;
            Ok::<_, OpsError>(())
        })
        .await
        .expect("the committed session");

        // 2. A session rolled back by a unique violation.
        let err = db
            .run(named("m_rollback"), |s| async move {
                item::Ops::create(&s, new_item(2, "one")).await
            })
            .await
            .expect_err("a duplicate name");
        assert_eq!(
            err.category(),
            ErrorCategory::Integrity(IntegrityKind::Unique)
        );

        // 3. A retry: the first attempt fails with a deadlock, the second commits.
        ops_sea::retry(&RetryPolicy::new(), |attempt| {
            let db = &db;
            async move {
                db.run(named("m_retry"), |s| async move {
                    if attempt == 1 {
                        return Err(OpsError::new(
                            ErrorCategory::Retryable(RetryReason::Deadlock),
                            "a deadlock, forced by the test",
                        ));
                    }
                    item::Ops::create(&s, new_item(3, "three")).await
                })
                .await
            }
        })
        .await
        .expect("the retried session");

        // 4. A pool timeout: every connection a write session can take is held, a third
        // caller waits (and is seen waiting), then times out.
        let mut held = Vec::new();
        for _ in 0..holders {
            held.push(db.session_with(named("m_hold")).await.expect("a holder"));
        }
        let waiter = {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(
                    named("m_timeout"),
                    |_s| async move { Ok::<_, OpsError>(()) },
                )
                .await
            })
        };
        eventually("a caller waiting for a connection", || {
            recorded.gauge(m::POOL_WAITING, &[("pool", "primary")]) == Some(1.0)
        })
        .await;
        let err = waiter
            .await
            .expect("the waiter")
            .expect_err("a pool timeout");
        assert_eq!(
            err.category(),
            ErrorCategory::Retryable(RetryReason::PoolExhausted)
        );
        assert_eq!(
            recorded.gauge(m::POOL_WAITING, &[("pool", "primary")]),
            Some(0.0),
            "the timed-out caller stopped waiting"
        );
        for session in held {
            session.commit().await.expect("a holder commits");
        }

        // 5. A session dropped without commit or rollback.
        drop(
            db.session_with(named("m_dropped"))
                .await
                .expect("a session to drop"),
        );

        // 6. A session past its timeout.
        let err = db
            .run(
                named("m_slow").timeout(Duration::from_millis(100)),
                |_s| async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok::<_, OpsError>(())
                },
            )
            .await
            .expect_err("a timeout");
        assert_eq!(
            err.category(),
            ErrorCategory::Retryable(RetryReason::StatementTimeout)
        );
    })
    .await;

    let counter = |name: &str, labels: &[(&str, &str)]| recorded.counter(name, labels);
    let session = |name: &str, session: &str| counter(name, &[("session", session)]);
    let all = recorded.names();
    let expected_sessions = [
        // name, opened, committed, rolled back, dropped, timed out
        ("m_commit", 1, 1, 0, 0, 0),
        ("m_rollback", 1, 0, 1, 0, 0),
        ("m_retry", 2, 1, 1, 0, 0),
        ("m_hold", holders, holders, 0, 0, 0),
        ("m_timeout", 0, 0, 0, 0, 0),
        ("m_dropped", 1, 0, 0, 1, 0),
        ("m_slow", 1, 0, 1, 0, 1),
    ];
    for (name, opened, committed, rolled_back, dropped, timed_out) in expected_sessions {
        assert_eq!(
            [
                session(m::SESSIONS_OPENED, name),
                session(m::SESSIONS_COMMITTED, name),
                session(m::SESSIONS_ROLLED_BACK, name),
                session(m::SESSIONS_DROPPED, name),
                session(m::SESSIONS_TIMED_OUT, name),
            ],
            [opened, committed, rolled_back, dropped, timed_out],
            "session {name}: opened, committed, rolled back, dropped, timed out; series: {all:#?}"
        );
        let durations = recorded.histogram(m::SESSION_SECONDS, &[("session", name)]);
        assert_eq!(durations.len() as u64, opened, "durations of {name}");
    }
    assert_eq!(
        recorded
            .histogram(
                m::SESSION_SECONDS,
                &[("session", "m_commit"), ("outcome", "committed")]
            )
            .len(),
        1
    );
    assert_eq!(recorded.gauge(m::SESSIONS_ACTIVE, &[]), Some(0.0));

    let retries = |outcome: &str| {
        counter(
            m::RETRIES,
            &[("category", "retryable(deadlock)"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        [
            retries("retried"),
            retries("succeeded"),
            retries("exhausted")
        ],
        [1, 1, 0],
        "retries: retried, succeeded, exhausted"
    );
    assert_eq!(
        counter(m::ERRORS, &[("category", "integrity(unique)")]),
        1,
        "the unique violation, recorded once"
    );
    assert_eq!(
        counter(m::ERRORS, &[("category", "retryable(pool_exhausted)")]),
        1,
        "the pool timeout"
    );
    assert_eq!(
        counter(m::ERRORS, &[("category", "retryable(statement_timeout)")]),
        1,
        "the session timeout"
    );

    let calls = |operation: &str, outcome: &str| {
        recorded
            .histogram(
                m::STATEMENT_SECONDS,
                &[
                    ("entity", "item"),
                    ("operation", operation),
                    ("outcome", outcome),
                ],
            )
            .len()
    };
    assert_eq!(
        [
            calls("create", "ok"),
            calls("create", "error"),
            calls("get", "ok")
        ],
        [2, 1, 1],
        "repository calls: create ok, create failed, get ok"
    );

    // The pool: gauges sampled once a second, counters as they happen.
    let primary = [("pool", "primary")];
    eventually("the pool gauges sampled with nothing in use", || {
        recorded.gauge(m::POOL_CONNECTIONS_OPEN, &primary) >= Some(1.0)
            && recorded.gauge(m::POOL_CONNECTIONS_IN_USE, &primary) == Some(0.0)
    })
    .await;
    let max = recorded.gauge(m::POOL_CONNECTIONS_MAX, &primary);
    assert!(max >= Some(1.0), "max {max:?}");
    assert!(counter(m::POOL_OPENED, &primary) >= 1);
    // Every session waited for its connection once: the two attempts of m_retry, m_commit,
    // m_rollback, the holders, m_dropped and m_slow; and m_timeout, which gave up after the
    // pool timeout (400 ms) and is the longest wait.
    let waits = recorded.histogram(m::POOL_ACQUIRE_SECONDS, &primary);
    assert!(
        waits.len() as u64 >= 7 + holders,
        "acquire waits recorded: {}",
        waits.len()
    );
    let longest = waits.iter().copied().fold(0.0, f64::max);
    assert!(
        (0.35..30.0).contains(&longest),
        "the pool timeout's wait is recorded: longest {longest}s"
    );
    assert!(
        waits.iter().all(|w| *w >= 0.0 && *w < 60.0),
        "acquire waits in seconds: {waits:?}"
    );
    let stats = db.error_stats();
    eprintln!(
        "metrics[{}]: {} series; opened {} connections; {} acquire waits, longest {:.4}s; errors {:?}",
        test.backend,
        all.len(),
        counter(m::POOL_OPENED, &primary),
        waits.len(),
        waits.iter().copied().fold(0.0, f64::max),
        stats.by_category
    );

    db.close().await;
    test.cleanup().await;
}
