use ops_sea::prelude::*;

#[derive(Debug)]
enum AppError {
    Db(OpsError),
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
        }
    }
}

#[db_retry(attempts = 3)]
#[managed_session]
async fn transfer(session: &Session, amount: i64) -> Result<i64, AppError> {
    let _ = session;
    Ok(amount)
}

fn main() {}
