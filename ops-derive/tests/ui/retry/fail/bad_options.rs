use ops_sea::prelude::*;

#[db_retry(atempts = 3)]
async fn misspelled(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

#[db_retry(attempts = 0, multiplier = 0.5, initial = 50)]
async fn values(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

#[db_retry(on = [Dedlock, CommitUnknown])]
async fn reasons(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

#[db_retry(jitter = "no", deadline = "soon")]
async fn flags(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

async fn caller(db: &Db) -> Result<(), OpsError> {
    misspelled(db).await?;
    values(db).await?;
    reasons(db).await?;
    flags(db).await
}

fn main() {
    let _ = caller;
}
