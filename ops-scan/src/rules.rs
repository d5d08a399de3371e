//! The rules `ops-scan` checks, each with its name, a one-line summary and the explanation page
//! that `cargo ops-scan explain RULE` prints (the README carries the same pages).

use std::fmt;

/// One rule of the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A session or transaction that some path neither commits, rolls back nor returns.
    UnfinishedSession,
    /// `BEGIN`, `START TRANSACTION`, `COMMIT` or `ROLLBACK` sent as raw SQL.
    RawTransactionSql,
    /// An `.await` on something that is not the database while a session holds a connection.
    SessionHeldAcrossIo,
    /// A blocking bridge (`block_on`) called inside async code.
    BlockOnInAsync,
    /// A function that receives its caller's session or raw transaction.
    CallerSessionParameter,
    /// `std::mem::forget` (or `ManuallyDrop`) of a session.
    ForgottenSession,
}

impl Rule {
    /// Every rule, in the order the README lists them.
    pub const ALL: [Rule; 6] = [
        Rule::UnfinishedSession,
        Rule::RawTransactionSql,
        Rule::SessionHeldAcrossIo,
        Rule::BlockOnInAsync,
        Rule::CallerSessionParameter,
        Rule::ForgottenSession,
    ];

    /// The rule's name, as written in reports, `explain` and `// ops-scan: allow(...)`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::UnfinishedSession => "unfinished-session",
            Rule::RawTransactionSql => "raw-transaction-sql",
            Rule::SessionHeldAcrossIo => "session-held-across-io",
            Rule::BlockOnInAsync => "block-on-in-async",
            Rule::CallerSessionParameter => "caller-session-parameter",
            Rule::ForgottenSession => "forgotten-session",
        }
    }

    /// The rule named `name`, also accepting underscores for dashes.
    pub fn from_name(name: &str) -> Option<Rule> {
        let name = name.trim().replace('_', "-");
        Rule::ALL.into_iter().find(|rule| rule.name() == name)
    }

    /// One line: what the rule finds.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::UnfinishedSession => {
                "a session or transaction that some path neither commits, rolls back nor returns"
            }
            Rule::RawTransactionSql => {
                "a transaction statement (BEGIN, START TRANSACTION, COMMIT, ROLLBACK) sent as raw SQL"
            }
            Rule::SessionHeldAcrossIo => {
                "an `.await` on slow non-database I/O while a session holds a connection"
            }
            Rule::BlockOnInAsync => "a blocking `block_on` inside async code",
            Rule::CallerSessionParameter => {
                "`#[db_retry]` on a function given its caller's session, or a `&DatabaseTransaction` parameter"
            }
            Rule::ForgottenSession => "`std::mem::forget` of a session",
        }
    }

    /// The explanation page: why it matters, an example, the fix, and what the rule does not
    /// flag.
    pub fn explanation(self) -> &'static str {
        match self {
            Rule::UnfinishedSession => UNFINISHED_SESSION,
            Rule::RawTransactionSql => RAW_TRANSACTION_SQL,
            Rule::SessionHeldAcrossIo => SESSION_HELD_ACROSS_IO,
            Rule::BlockOnInAsync => BLOCK_ON_IN_ASYNC,
            Rule::CallerSessionParameter => CALLER_SESSION_PARAMETER,
            Rule::ForgottenSession => FORGOTTEN_SESSION,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

const UNFINISHED_SESSION: &str = "\
A session or transaction (`db.session()`, `db.session_with(..)`, `begin()` on a `Db`, a `Session`
or a SeaORM connection, `session.nested()`) that some path of its function neither commits, rolls
back nor returns.

Why: a session left to its `Drop` is rolled back late, after its connection sat idle inside a
transaction holding locks, and ops counts it in `SessionStats::dropped_unfinished` with a warning.
A path that forgets the commit also loses the work silently: the function returns as if it had
succeeded.

    let session = db.session().await?;
    cake::Ops::create(&session, new).await?;
    if !notify {
        return Ok(());          // <- dropped unfinished: the cake is rolled back
    }
    session.commit().await?;

Fix: finish the session on every path (`session.commit().await?` or `session.rollback().await?`),
return it to a caller that will, or let ops own it: `#[managed_session]` or `db.run(..)` commit on
`Ok` and roll back on `Err`, panic and cancellation.

Not flagged: an early exit through `?` (the error path, where dropping rolls back at once and the
error reaches the caller), a session moved into another function, a struct, a closure or a task
(its new owner is responsible), a session returned to the caller. Also flagged: a session opened
and dropped at once (`db.session().await?;`, `let _ = db.session().await?;`) and one passed to
`drop(..)`.";

const RAW_TRANSACTION_SQL: &str = "\
A transaction statement (`BEGIN`, `START TRANSACTION`, `COMMIT`, `ROLLBACK`, `END`) sent as raw
SQL through `execute_unprepared` or a `Statement`.

Why: the pool and SeaORM do not know the connection is inside a transaction. Every later query on
a pooled `Db` may run on another connection, so the `COMMIT` commits nothing, and the connection
that ran `BEGIN` goes back to the pool inside a transaction (ops rolls it back on return and warns;
plain SeaORM hands it to the next borrower). Nothing tracks, times out or rolls back the work.

    db.execute_unprepared(\"BEGIN\").await?;
    db.execute_unprepared(\"UPDATE accounts SET balance = 0\").await?;
    db.execute_unprepared(\"COMMIT\").await?;

Fix: open a session (`let session = db.session().await?; ...; session.commit().await?`), or use
`#[managed_session]` / `db.run(..)`. Isolation and read-only mode are `SessionOptions`, not SQL.

Not flagged: SQL that merely contains the words (`CREATE TABLE begin_log`, `SELECT 'COMMIT'`),
savepoint statements, and SQL built at run time from non-literal strings (the scanner reads
literals, including the literal of a `format!`).";

const SESSION_HELD_ACROSS_IO: &str = "\
An `.await` on something that is not the database (an HTTP request, a `sleep`, a channel, a
spawned task's join, file I/O) inside a `#[managed_session]` function, in a function given a
`&Session` or `&DatabaseTransaction`, or while a session it opened is still alive.

Why: the session holds a pooled connection inside an open transaction for as long as the other
I/O takes: locks stay held, the pool shrinks by one, and a slow or stuck remote service turns into
an exhausted pool (the stuck-background-job lesson: one job waiting on a webhook with a session
open starved every request).

    #[managed_session]
    async fn ship(session: &Session, id: i32, http: &reqwest::Client) -> Result<(), OpsError> {
        order::Ops::update(session, id, patch).await?;
        http.post(WEBHOOK).send().await?;      // <- the transaction waits on the network
        Ok(())
    }

Fix: do the slow I/O before the session opens or after it commits (keep the transaction to the
database work), or hand it to a job queue that runs after the commit.

Not flagged: awaits on the database (`session.execute(..)`, `Entity::find().all(&session)`,
repository calls), and slow I/O before a session opens or after it is committed or rolled back.";

const BLOCK_ON_IN_ASYNC: &str = "\
A blocking bridge called inside async code: `block_on` (`futures::executor::block_on`,
`Handle::block_on`, `Runtime::block_on`, `ops_sea::blocking::block_on`) or another
`ops_sea::blocking` function, inside an `async fn` or an `async` block.

Why: it blocks the executor thread until the inner future finishes. On a current-thread runtime
the inner future can never make progress and the program deadlocks; on a multi-thread runtime it
stalls every task scheduled on that worker, and tokio's own `block_on` panics (\"Cannot start a
runtime from within a runtime\").

    async fn handler(db: Db) -> Result<(), OpsError> {
        let n = ops_sea::blocking::block_on(cake::Ops::count(&db))?;   // <- blocks the worker
        ...
    }

Fix: `.await` the future instead. Synchronous code that must call into async code belongs in
`tokio::task::spawn_blocking(move || ...)`, where `block_on` is correct.

Not flagged: `block_on` in a synchronous function or in a non-async closure (such as the one given
to `spawn_blocking` or `std::thread::spawn`).";

const CALLER_SESSION_PARAMETER: &str = "\
A function that receives its caller's session where it should not: `#[db_retry]` on a function
whose parameter is the caller's `&Session` or `&DatabaseTransaction` (without `#[managed_session]`
below it), and any `&DatabaseTransaction` parameter that `#[managed_session]` would replace.

Why `#[db_retry]` never retries there: a retryable error (deadlock, serialization failure, lost
connection) aborts the whole transaction, which belongs to the caller. No retry inside it can
recover, so ops attempts such a function once and hands the error to the session's owner. The
retry belongs where the session is opened.

Why `&DatabaseTransaction`: it ties the function to a transaction the caller opened by hand, so
the function cannot be called with a `Db`, its work is not tracked, and nothing commits or rolls
back for it.

    #[db_retry(attempts = 5)]
    async fn transfer(session: &Session, from: i64, to: i64) -> Result<(), OpsError> { .. }

    async fn archive(txn: &DatabaseTransaction, id: i32) -> Result<(), DbErr> { .. }

Fix: stack `#[db_retry]` above `#[managed_session]` on the function that owns the session, and
call it with a `&Db` (each attempt gets a fresh session). Replace `txn: &DatabaseTransaction` with
`session: &Session` and add `#[managed_session]`: callers pass a `&Db` (a session is opened,
committed on `Ok`, rolled back on `Err`) or their own `&Session` (joined).

Not flagged: `#[db_retry]` stacked above `#[managed_session]`, `#[db_retry]` on a function taking
`&Db`, `&Session` parameters, `&DatabaseConnection`, and methods of trait impls (the trait fixes
the signature).";

const FORGOTTEN_SESSION: &str = "\
`std::mem::forget` (or `ManuallyDrop::new`) of a session or transaction.

Why: a forgotten session never runs its `Drop`: the transaction is neither committed nor rolled
back, its connection never returns to the pool, and its locks are held until the server times the
connection out. The tracker keeps it as active forever.

    let session = db.session().await?;
    std::mem::forget(session);

Fix: commit or roll back the session; to end it early, `session.rollback().await?`. If a value
must outlive its scope, move it into the struct or task that will finish it.

Not flagged: `forget` of values that are not sessions.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
            assert!(!rule.explanation().is_empty());
        }
        assert_eq!(
            Rule::from_name("forgotten_session"),
            Some(Rule::ForgottenSession)
        );
        assert_eq!(Rule::from_name("nope"), None);
    }
}
