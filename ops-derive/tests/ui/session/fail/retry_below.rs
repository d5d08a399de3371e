use ops_sea::prelude::*;

#[managed_session]
#[db_retry(attempts = 3)]
async fn transfer(session: &Session, amount: i64) -> Result<i64, OpsError> {
    let _ = session;
    Ok(amount)
}

async fn caller(db: &Db) -> Result<i64, OpsError> {
    // Still callable with a `&Db`: the one error above is the only one.
    transfer(db, 1).await
}

fn main() {
    let _ = caller;
}
