//! `#[managed_session]` stacked with `#[tracing::instrument]` (both orders) and inside
//! `#[async_trait]` impls (with `#[instrument]` both orders).

use async_trait::async_trait;
use ops_sea::prelude::*;
use tracing::instrument;

#[instrument]
#[managed_session]
async fn instrument_outside(session: &Session, id: i64) -> Result<i64, OpsError> {
    let _ = session;
    Ok(id)
}

#[managed_session]
#[instrument(skip(id))]
async fn instrument_inside(session: &Session, id: i64) -> Result<i64, OpsError> {
    let _ = session;
    Ok(id)
}

#[managed_session]
#[tracing::instrument(level = "debug", err(Debug))]
fn instrument_blocking(session: &Session, id: i64) -> Result<i64, OpsError> {
    let _ = session;
    Ok(id)
}

#[async_trait]
trait Repo {
    async fn load(&self, session: &Session, id: i64) -> Result<i64, OpsError>;
    async fn load_instrumented(&self, session: &Session, id: i64) -> Result<i64, OpsError>;
    async fn load_traced(&self, session: &Session, id: i64) -> Result<i64, OpsError>;
    async fn any_source(&self, session: &dyn SessionSource, id: i64) -> Result<i64, OpsError>;
}

#[derive(Debug)]
struct Items;

#[async_trait]
impl Repo for Items {
    #[managed_session(propagation = "nested")]
    async fn load(&self, session: &Session, id: i64) -> Result<i64, OpsError> {
        let _ = (self, session);
        Ok(id)
    }

    #[managed_session]
    #[instrument]
    async fn load_instrumented(&self, session: &Session, id: i64) -> Result<i64, OpsError> {
        let _ = session;
        Ok(id)
    }

    #[instrument]
    #[managed_session]
    async fn load_traced(&self, session: &Session, id: i64) -> Result<i64, OpsError> {
        let _ = session;
        Ok(id)
    }

    #[managed_session(timeout = "2s")]
    async fn any_source(&self, session: &dyn SessionSource, id: i64) -> Result<i64, OpsError> {
        self.load(session, id).await
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let db: Option<Db> = None;
    if let Some(db) = db {
        assert_send(instrument_outside(&db, 1));
        assert_send(instrument_inside(&db, 1));
        let _ = instrument_blocking(&db, 1);
        assert_send(Items.any_source(&db, 1));
    }
}
