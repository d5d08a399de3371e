use ops_sea::prelude::*;

#[managed_session(isolation = "snapshot")]
async fn isolation(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(isolation = "serialisable")]
async fn isolation_typo(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(propagation = "mandatory")]
async fn propagation(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(propagation = Nested)]
async fn not_a_string(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

async fn caller(db: &Db) -> Result<(), OpsError> {
    isolation(db).await?;
    isolation_typo(db).await?;
    propagation(db).await?;
    not_a_string(db).await
}

fn main() {
    let _ = caller;
}
