//! Concurrent transfers under serializable isolation, retried on the conflicts the database
//! reports, with the money checked at the end and the retries printed by category.
//!
//! Each transfer reads two balances and writes both, in a serializable session. Run
//! concurrently on a few accounts, they conflict: PostgreSQL aborts one side with a serialization
//! failure (40001), MySQL/MariaDB picks a deadlock victim (1213), SQLite refuses a writer whose
//! snapshot went stale (busy). `#[db_retry]` runs the transfer again in a fresh session each
//! time; the total across accounts never changes.
//!
//! ```sh
//! cargo run -p ops-examples --example bank
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p ops-examples --example bank
//! ```

// Each example uses only part of the shared module.
#[allow(dead_code)]
mod common;

use std::time::Instant;

use ops_sea::prelude::*;

pub mod account {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bank_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub owner: String,
        pub balance: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ledger {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bank_ledger")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub from_account: i32,
        pub to_account: i32,
        pub amount: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const TABLES: [&str; 2] = ["bank_ledger", "bank_accounts"];
const ACCOUNTS: i32 = 6;
const OPENING_BALANCE: i64 = 1_000;
const TELLERS: usize = 8;
const TRANSFERS_PER_TELLER: usize = 25;

/// What one transfer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Moved,
    Declined,
}

/// Moves `amount` from one account to another, or declines when the source has too little.
#[db_retry(attempts = 12, initial = "5ms", max = "200ms")]
#[managed_session(isolation = "serializable", name = "transfer")]
async fn transfer(session: &Session, from: i32, to: i32, amount: i64) -> Result<Outcome, OpsError> {
    let source = account::Ops::get(session, from).await?;
    if source.balance < amount {
        return Ok(Outcome::Declined);
    }
    let target = account::Ops::get(session, to).await?;
    account::Ops::update(
        session,
        from,
        account::Patch {
            balance: Some(source.balance - amount),
            ..Default::default()
        },
    )
    .await?;
    account::Ops::update(
        session,
        to,
        account::Patch {
            balance: Some(target.balance + amount),
            ..Default::default()
        },
    )
    .await?;
    ledger::Ops::create(
        session,
        ledger::New {
            from_account: from,
            to_account: to,
            amount,
        },
    )
    .await?;
    Ok(Outcome::Moved)
}

/// One teller's run of transfers between random accounts.
async fn teller(db: Db, seed: u64) -> (usize, usize, Vec<OpsError>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut moved, mut declined, mut failed) = (0, 0, Vec::new());
    for _ in 0..TRANSFERS_PER_TELLER {
        let from = rng.i32(0..ACCOUNTS);
        let to = (from + rng.i32(1..ACCOUNTS)) % ACCOUNTS;
        let amount = rng.i64(1..=300);
        match transfer(&db, from, to, amount).await {
            Ok(Outcome::Moved) => moved += 1,
            Ok(Outcome::Declined) => declined += 1,
            Err(err) => failed.push(err),
        }
    }
    (moved, declined, failed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let example = common::open("bank", |config| {
        // One connection per teller, so conflicts come from the database, not from the pool.
        config.pool_size = u32::try_from(TELLERS).unwrap_or(u32::MAX);
    })
    .await?;
    let db = example.db.clone();
    common::drop_tables(&db, &TABLES).await?;
    common::create_table(&db, account::Entity).await?;
    common::create_table(&db, ledger::Entity).await?;
    account::Ops::create_many(
        &db,
        (0..ACCOUNTS).map(|id| account::New {
            id,
            owner: format!("owner-{id}"),
            balance: OPENING_BALANCE,
        }),
    )
    .await?;
    let expected_total = i64::from(ACCOUNTS) * OPENING_BALANCE;
    println!(
        "{ACCOUNTS} accounts of {OPENING_BALANCE}; {TELLERS} tellers run {TRANSFERS_PER_TELLER} \
         serializable transfers each"
    );

    let started = Instant::now();
    let tellers: Vec<_> = (0..TELLERS)
        .map(|i| tokio::spawn(teller(db.clone(), 42 + i as u64)))
        .collect();
    let (mut moved, mut declined, mut failed) = (0, 0, Vec::new());
    for handle in tellers {
        let (m, d, f) = handle.await?;
        moved += m;
        declined += d;
        failed.extend(f);
    }
    let elapsed = started.elapsed();

    let accounts = account::Ops::list(&db, PageRequest::first(100)).await?;
    let total: i64 = accounts.items.iter().map(|a| a.balance).sum();
    let ledger_rows = ledger::Ops::count(&db).await?;
    println!(
        "{moved} moved, {declined} declined, {} failed after all attempts, in {elapsed:?}",
        failed.len()
    );
    for err in &failed {
        println!("  failed: {err:#}");
    }
    let balances: Vec<i64> = accounts.items.iter().map(|a| a.balance).collect();
    println!("balances: {balances:?}, total {total} (expected {expected_total})");
    println!("ledger rows: {ledger_rows} (one per moved transfer: {moved})");

    let errors = db.error_stats();
    println!(
        "retries: {} attempted, {} succeeded, {} exhausted",
        errors.retries_attempted, errors.retries_succeeded, errors.retries_exhausted
    );
    for (category, count) in &errors.retries_by_category {
        println!("  retried on {category}: {count}");
    }
    if !errors.by_code.is_empty() {
        println!("errors by backend code: {:?}", errors.by_code);
    }
    let s = db.session_stats();
    println!(
        "sessions: opened {}, committed {}, rolled back {}, peak {}",
        s.opened, s.committed, s.rolled_back, s.peak
    );

    example.finish(&TABLES).await?;
    if total != expected_total || ledger_rows != moved as u64 {
        return Err("the books do not balance".into());
    }
    Ok(())
}
