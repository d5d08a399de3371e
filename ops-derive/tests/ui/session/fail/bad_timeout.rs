use ops_sea::prelude::*;

#[managed_session(timeout = "5 sec")]
async fn unit(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(timeout = 5)]
async fn number(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(timeout = "0s")]
async fn zero(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

#[managed_session(timeout = "-1s")]
async fn negative(session: &Session) -> Result<(), OpsError> {
    let _ = session;
    Ok(())
}

fn main() {}
