//! The bank workload of the reliability suites, after Jepsen's bank test: accounts whose balances
//! must always add up to the same total while transfers run concurrently under faults, and a
//! ledger that records each transfer's unique id in the same transaction as its effect.
//!
//! The ledger has no unique key on the transfer id on purpose: a transfer applied twice must show
//! up as two rows (work doubled), not be hidden behind a constraint violation.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Creates `accounts` and `ledger`, and gives each of `accounts` accounts `balance`.
///
/// # Panics
///
/// When a statement fails: the test cannot run without its tables.
pub async fn create<C: ConnectionTrait>(conn: &C, accounts: u32, balance: i64) {
    for sql in [
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)",
        "CREATE TABLE ledger (transfer_id BIGINT NOT NULL, from_id INTEGER NOT NULL, \
         to_id INTEGER NOT NULL, amount BIGINT NOT NULL)",
        "CREATE INDEX ledger_transfer ON ledger (transfer_id)",
    ] {
        conn.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    }
    let values: Vec<String> = (0..accounts)
        .map(|id| format!("({id}, {balance})"))
        .collect();
    let sql = format!(
        "INSERT INTO accounts (id, balance) VALUES {}",
        values.join(", ")
    );
    conn.execute_unprepared(&sql)
        .await
        .unwrap_or_else(|e| panic!("seeding accounts failed: {e}"));
}

/// One transfer: a unique id, two distinct accounts and a positive amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Unique across the run; written to the ledger.
    pub id: u64,
    /// The account debited.
    pub from: u32,
    /// The account credited.
    pub to: u32,
    /// How much moves.
    pub amount: i64,
}

/// What a transfer did when its session committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The money moved and the ledger row was written.
    Moved,
    /// The source account had too little; nothing was written.
    Declined,
}

/// Runs one transfer's statements on `conn` (a session): reads the source balance, declines when
/// it is too low, otherwise moves the money and writes the ledger row.
///
/// # Errors
///
/// Whatever the database returns.
pub async fn apply<C: ConnectionTrait>(conn: &C, t: Transfer) -> Result<Applied, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT balance FROM accounts WHERE id = {}", t.from),
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("account {}", t.from)))?;
    let balance: i64 = row.try_get_by_index(0)?;
    if balance < t.amount {
        return Ok(Applied::Declined);
    }
    conn.execute_unprepared(&format!(
        "UPDATE accounts SET balance = balance - {} WHERE id = {}",
        t.amount, t.from
    ))
    .await?;
    conn.execute_unprepared(&format!(
        "UPDATE accounts SET balance = balance + {} WHERE id = {}",
        t.amount, t.to
    ))
    .await?;
    conn.execute_unprepared(&format!(
        "INSERT INTO ledger (transfer_id, from_id, to_id, amount) VALUES ({}, {}, {}, {})",
        t.id, t.from, t.to, t.amount
    ))
    .await?;
    Ok(Applied::Moved)
}

/// What one read of the whole bank saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The sum of all balances.
    pub total: i64,
    /// The lowest balance.
    pub min: i64,
    /// How many accounts there are.
    pub accounts: i64,
}

/// Reads the total, the lowest balance and the number of accounts in one statement (one
/// snapshot on every backend).
///
/// # Errors
///
/// Whatever the database returns.
pub async fn snapshot<C: ConnectionTrait>(conn: &C) -> Result<Snapshot, DbErr> {
    let backend = conn.get_database_backend();
    // SUM over BIGINT is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast back to 64 bits.
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT CAST(SUM(balance) AS BIGINT), MIN(balance), COUNT(*) FROM accounts"
        }
        DbBackend::MySql => {
            "SELECT CAST(SUM(balance) AS SIGNED), MIN(balance), COUNT(*) FROM accounts"
        }
        _ => "SELECT SUM(balance), MIN(balance), COUNT(*) FROM accounts",
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the bank summary row".to_owned()))?;
    Ok(Snapshot {
        total: row.try_get_by_index(0)?,
        min: row.try_get_by_index(1)?,
        accounts: row.try_get_by_index(2)?,
    })
}

/// The balances by account id.
///
/// # Errors
///
/// Whatever the database returns.
pub async fn balances<C: ConnectionTrait>(conn: &C) -> Result<BTreeMap<u32, i64>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT id, balance FROM accounts ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let id: i32 = r.try_get_by_index(0)?;
            let balance: i64 = r.try_get_by_index(1)?;
            Ok((u32::try_from(id).unwrap_or(u32::MAX), balance))
        })
        .collect()
}

/// Every ledger row, as `transfer id -> [(from, to, amount)]`.
///
/// # Errors
///
/// Whatever the database returns.
pub async fn ledger<C: ConnectionTrait>(
    conn: &C,
) -> Result<BTreeMap<u64, Vec<(u32, u32, i64)>>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT transfer_id, from_id, to_id, amount FROM ledger",
        ))
        .await?;
    let mut out: BTreeMap<u64, Vec<(u32, u32, i64)>> = BTreeMap::new();
    for r in &rows {
        let id: i64 = r.try_get_by_index(0)?;
        let from: i32 = r.try_get_by_index(1)?;
        let to: i32 = r.try_get_by_index(2)?;
        let amount: i64 = r.try_get_by_index(3)?;
        out.entry(u64::try_from(id).unwrap_or(u64::MAX))
            .or_default()
            .push((
                u32::try_from(from).unwrap_or(u32::MAX),
                u32::try_from(to).unwrap_or(u32::MAX),
                amount,
            ));
    }
    Ok(out)
}

/// How many ledger rows a transfer has: the way to resolve a commit whose outcome is unknown.
///
/// # Errors
///
/// Whatever the database returns.
pub async fn ledger_rows<C: ConnectionTrait>(conn: &C, transfer_id: u64) -> Result<i64, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) FROM ledger WHERE transfer_id = {transfer_id}"),
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the ledger count row".to_owned()))?;
    row.try_get_by_index(0)
}
