//! The RealWorld (Conduit) backend: the reference application of ops (the crate `realworld` in
//! `examples/realworld/`).
//!
//! ```sh
//! cargo run -p ops-examples --example realworld                      # http://127.0.0.1:3000/api
//! cargo run -p ops-examples --example realworld -- --listen 127.0.0.1:8080
//! PORT=8080 cargo run -p ops-examples --example realworld
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p ops-examples --example realworld
//! ```
//!
//! Without `DATABASE_URL` the data lives in the SQLite file `realworld.sqlite` in the working
//! directory (`REALWORLD_SQLITE` names another), kept between runs; the tables are created at
//! start when missing. Set `JWT_SECRET` before exposing the server: the default is for local runs.

use realworld::{AppState, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_args(std::env::args().skip(1))?;
    let db = realworld::connect_from_env().await?;
    println!("database: {}", db.config().url);
    let state = AppState::from_env(db.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    println!("listening on http://{}/api", listener.local_addr()?);
    println!("press Ctrl-C to stop");
    realworld::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    let sessions = db.session_stats();
    println!(
        "sessions: opened {}, committed {}, rolled back {}, active {}",
        sessions.opened, sessions.committed, sessions.rolled_back, sessions.active
    );
    db.close().await;
    Ok(())
}
