use ops_sea::prelude::*;

#[managed_session(isolaton = "serializable")]
async fn misspelled(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(retries = 3)]
async fn unknown(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

async fn caller(db: &Db) -> Result<(), OpsError> {
    misspelled(db).await?;
    unknown(db).await
}

fn main() {
    let _ = caller;
}
