use ops_sea::prelude::*;

#[derive(Debug)]
struct Payload {
    body: Vec<u8>,
}

#[db_retry]
#[managed_session]
async fn store(session: &Session, payload: Payload, id: i64) -> Result<usize, OpsError> {
    let _ = (session, id);
    Ok(payload.body.len())
}

#[db_retry]
async fn store_alone(db: &Db, payload: Payload) -> Result<usize, OpsError> {
    let _ = db;
    Ok(payload.body.len())
}

fn main() {}
