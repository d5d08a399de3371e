use ops_sea::prelude::*;

#[managed_session]
struct Repository {
    db: Db,
}

#[managed_session]
const fn constant(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

fn main() {
    // The struct is still emitted: using it is no second error.
    let _ = |repository: Repository| repository.db;
}
