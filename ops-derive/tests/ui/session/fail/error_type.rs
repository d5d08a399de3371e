use ops_sea::prelude::*;

#[derive(Debug)]
struct MyError;

#[managed_session]
async fn own_error(session: &Session) -> Result<(), MyError> {
    let _ = session;
    Ok(())
}

#[managed_session]
async fn not_a_result(session: &Session) -> i64 {
    let _ = session;
    1
}

fn main() {}
