use ops_sea::prelude::*;

#[ops_sea::managed_session(isolation = "serializable")]
#[ops_sea::db_retry]
async fn transfer(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

fn main() {}
