//! Every function shape `#[managed_session]` supports.

use std::fmt::Display;

use ops_sea::prelude::*;
use sea_orm::ConnectionTrait;

/// An application's own error type: the session's failures reach it through `From<OpsError>`.
#[derive(Debug)]
enum AppError {
    Db(OpsError),
    Invalid(&'static str),
}

impl From<OpsError> for AppError {
    fn from(err: OpsError) -> Self {
        AppError::Db(err)
    }
}

#[managed_session]
async fn free(session: &Session, id: i64) -> Result<u64, OpsError> {
    let sql = format!("UPDATE items SET name = 'x' WHERE id = {id}");
    Ok(session.execute_unprepared(&sql).await?.rows_affected())
}

#[managed_session(
    isolation = "serializable",
    read_only,
    timeout = "1.5s",
    propagation = "requires_new",
    name = "all_options"
)]
async fn all_options(session: &Session) -> Result<(), AppError> {
    if session.name().is_empty() {
        return Err(AppError::Invalid("unnamed"));
    }
    Ok(())
}

#[managed_session(propagation = "nested", isolation = "read_uncommitted")]
pub(crate) async fn generic<T: Display + Send + Sync>(
    value: T,
    session: &Session,
) -> Result<String, AppError> {
    let _ = session;
    Ok(value.to_string())
}

#[managed_session(isolation = "repeatable_read")]
async fn impl_trait(
    session: &Session,
    names: impl IntoIterator<Item = String>,
) -> Result<usize, OpsError> {
    let _ = session.name();
    Ok(names.into_iter().count())
}

#[managed_session(isolation = "read_committed")]
async fn lifetimes<'a, 'b>(session: &'a Session, name: &'b str) -> Result<&'b str, OpsError> {
    let _ = session;
    Ok(name)
}

#[managed_session]
async fn patterns(_session: &Session, (a, b): (i64, i64), mut total: i64) -> Result<i64, OpsError> {
    total += a + b;
    Ok(total)
}

#[managed_session]
async fn question_mark(session: &Session) -> Result<(), AppError> {
    session
        .execute_unprepared("SELECT 1")
        .await
        .map_err(OpsError::from)?;
    Ok(())
}

#[managed_session]
async fn opaque(session: &Session) -> Result<impl Display, OpsError> {
    let _ = session;
    Ok(5)
}

#[managed_session]
fn blocking(session: &Session, id: i64) -> Result<i64, OpsError> {
    let _ = session.name();
    Ok(id)
}

/// The way to declare the parameter in a trait: any source, left as written.
trait Repo {
    fn count(
        &self,
        session: &dyn SessionSource,
    ) -> impl Future<Output = Result<i64, OpsError>> + Send;
}

struct Items;

impl Items {
    #[managed_session]
    async fn method(&self, session: &Session, id: i64) -> Result<i64, OpsError> {
        free(session, id).await?;
        Ok(id)
    }
}

impl Repo for Items {
    #[managed_session]
    async fn count(&self, session: &dyn SessionSource) -> Result<i64, OpsError> {
        let _ = session.name();
        Ok(0)
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let db: Option<Db> = None;
    if let Some(db) = db {
        assert_send(free(&db, 1));
        assert_send(all_options(&db));
        assert_send(generic(1, &db));
        assert_send(impl_trait(&db, vec!["a".to_owned()]));
        assert_send(lifetimes(&db, "x"));
        assert_send(patterns(&db, (1, 2), 3));
        assert_send(question_mark(&db));
        assert_send(opaque(&db));
        assert_send(Items.method(&db, 1));
        assert_send(Items.count(&db));
        let _ = blocking(&db, 1);
        let conn: &sea_orm::DatabaseConnection = db.connection();
        assert_send(free(conn, 1));
        let arc = std::sync::Arc::new(db.clone());
        assert_send(free(&arc, 1));
    }
}
