//! `#[db_retry]` above `#[managed_session]`, alone on a function that takes `&Db`, on plain
//! functions, methods and `#[async_trait]` impls, with an application's own error type.

use async_trait::async_trait;
use ops_sea::prelude::*;

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Db(#[from] OpsError),
    #[error("invalid input")]
    Invalid,
}

impl Categorize for AppError {
    fn category(&self) -> ErrorCategory {
        match self {
            AppError::Db(err) => err.category(),
            AppError::Invalid => ErrorCategory::Other,
        }
    }
}

#[db_retry(attempts = 5)]
#[managed_session(isolation = "serializable")]
async fn transfer(session: &Session, from: i64, to: i64, memo: String) -> Result<(), AppError> {
    let _ = (session, from, to, memo);
    Ok(())
}

#[db_retry(
    initial = "1ms",
    max = "10ms",
    multiplier = 3,
    jitter = false,
    deadline = "5s"
)]
#[ops_sea::managed_session(propagation = "requires_new")]
async fn patterns(
    session: &Session,
    (a, b): (i64, i64),
    mut names: Vec<String>,
    label: &str,
) -> Result<usize, AppError> {
    let _ = session;
    names.push(label.to_owned());
    if a > b {
        return Err(AppError::Invalid);
    }
    Ok(names.len())
}

#[db_retry(on = [ConnectionLost, PoolExhausted], idempotent = true)]
async fn alone(db: &Db, id: i64) -> Result<i64, OpsError> {
    let _ = db;
    Ok(id)
}

#[db_retry]
async fn detached(name: String) -> Result<usize, OpsError> {
    Ok(name.len())
}

#[db_retry(attempts = 2)]
#[managed_session]
fn blocking(session: &Session, id: i64) -> Result<i64, OpsError> {
    let _ = session;
    Ok(id)
}

struct Items;

impl Items {
    #[db_retry]
    #[managed_session]
    async fn method(&self, session: &Session, id: i64) -> Result<i64, OpsError> {
        let _ = session;
        Ok(id)
    }
}

#[async_trait]
trait Repo {
    async fn load(&self, session: &Session, id: i64, name: String) -> Result<i64, OpsError>;
}

#[async_trait]
impl Repo for Items {
    #[db_retry(attempts = 3)]
    #[managed_session]
    async fn load(&self, session: &Session, id: i64, name: String) -> Result<i64, OpsError> {
        let _ = (session, name);
        Ok(id)
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let db: Option<Db> = None;
    if let Some(db) = db {
        assert_send(transfer(&db, 1, 2, "memo".to_owned()));
        assert_send(patterns(&db, (1, 2), Vec::new(), "x"));
        assert_send(alone(&db, 1));
        assert_send(detached("x".to_owned()));
        let _ = blocking(&db, 1);
        assert_send(Items.method(&db, 1));
    }
}
