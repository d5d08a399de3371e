use ops_sea::prelude::*;

#[derive(Debug)]
enum AppError {
    Db(OpsError),
    Lent,
}

impl From<OpsError> for AppError {
    fn from(err: OpsError) -> Self {
        AppError::Db(err)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(err) => err.fmt(f),
            AppError::Lent => f.write_str("already lent"),
        }
    }
}

#[db_retry(attempts = 3)]
async fn lend(db: &Db, id: i64) -> Result<i64, AppError> {
    let session = db.session().await?;
    if id < 0 {
        return Err(AppError::Lent);
    }
    session.commit().await?;
    Ok(id)
}

#[db_retry]
#[managed_session(isolation = "serializable")]
async fn lend_in_session(session: &Session, id: i64) -> Result<i64, AppError> {
    let _ = session;
    if id < 0 {
        return Err(AppError::Lent);
    }
    Ok(id)
}

#[tokio::main]
async fn main() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    let _ = lend(&db, 1).await;
    let _ = lend_in_session(&db, 1).await;
}
