use ops_sea::prelude::*;

#[db_retry]
async fn joined(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[db_retry]
#[managed_session]
async fn borrowed_mut(session: &Session, out: &mut Vec<i64>) -> Result<(), OpsError> {
    let _ = session;
    out.push(1);
    Ok(())
}

struct Repo;

impl Repo {
    #[db_retry]
    #[managed_session]
    async fn owned_self(self, session: &Session) -> Result<(), OpsError> {
        let _ = session;
        Ok(())
    }
}

#[db_retry]
#[managed_session(propagation = "nested")]
async fn no_session(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

async fn callers(db: &Db) -> Result<(), OpsError> {
    // The managed functions still take a `&Db`: the errors above are the only ones.
    borrowed_mut(db, &mut Vec::new()).await?;
    Repo.owned_self(db).await
}

fn main() {
    let _ = callers;
}
