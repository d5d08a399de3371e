use ops_sea::prelude::*;

#[managed_session]
async fn no_session(db: &Db, id: i64) -> Result<i64, OpsError> {
    let _ = db;
    Ok(id)
}

#[managed_session]
async fn mutable(session: &mut Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

fn main() {}
