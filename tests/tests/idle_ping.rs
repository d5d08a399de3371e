//! What a checkout costs on the wire, counted by the fault proxy: a connection used moments ago
//! is handed out without a ping, one that sat idle past `idle_ping` with exactly one.

use std::io::Write as _;
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_tests::proxy::Proxy;
use ops_tests::{TestDb, require_server};
use sea_orm::ConnectionTrait;

/// Writes a line to standard error directly, past the harness's capture.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Waits until the proxy has seen no new client message for a while (the pool finishes
/// returning a connection in the background) and returns the count.
async fn settled_messages(proxy: &Proxy, db: &Db) -> u64 {
    let mut last = proxy.client_messages();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = proxy.client_messages();
        if (now == last && db.pool_state().in_use() == 0) || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn idle_ping_costs_one_round_trip_and_only_when_idle() {
    if !require_server("idle_ping_costs_one_round_trip_and_only_when_idle") {
        return;
    }
    let t = TestDb::new("idle_ping").await;
    let proxy = Proxy::for_url(&t.url).await.expect("start the fault proxy");
    let idle_ping = Duration::from_millis(400);
    let db = Db::builder(&proxy.url_for(&t.url))
        .pool_size(1)
        .max_overflow(0)
        .idle_ping(idle_ping)
        .connect()
        .await
        .expect("connect");
    let proxy = &proxy;
    db.execute_unprepared("SELECT 1").await.expect("warm");

    // Each count is the fewest of three tries. This test has a binary of its own because a call
    // abandoned anywhere in the process makes releases in the next 2 s reset their connection,
    // one more round trip that is not the checkout's: beside the fault tests, that is always.
    let mut hot = u64::MAX;
    let mut idle = u64::MAX;
    for _ in 0..3 {
        // Hot: the connection was used moments ago, so checkout does not ping.
        let before = settled_messages(proxy, &db).await;
        db.execute_unprepared("SELECT 1").await.expect("hot");
        hot = hot.min(settled_messages(proxy, &db).await - before);

        tokio::time::sleep(idle_ping + Duration::from_millis(200)).await;
        let before = proxy.client_messages();
        db.execute_unprepared("SELECT 1").await.expect("idle");
        idle = idle.min(settled_messages(proxy, &db).await - before);
    }

    let before = proxy.client_messages();
    db.run(SessionOptions::new(), |s| async move {
        s.execute_unprepared("SELECT 1").await?;
        Ok::<_, OpsError>(())
    })
    .await
    .expect("session");
    let session = settled_messages(proxy, &db).await - before;
    report(&format!(
        "round_trips[{}]: client messages per statement: hot checkout {hot}, idle checkout \
         {idle}; per one-statement session: {session}",
        t.backend
    ));
    assert_eq!(idle, hot + 1, "an idle checkout adds exactly one ping");
    assert_eq!(db.pool_state().in_use(), 0, "{:?}", db.pool_state());
    db.close().await;
    t.cleanup().await;
}
