//! SQLite URLs open the file sqlx documents (plain `sqlite:`) or the one SQLAlchemy documents
//! (`sqlite+driver:`), checked with real files: which file `Db::connect` created, and that the URL
//! ops prints opens that same database again.
//!
//! SQLite is embedded, so this runs whatever `DATABASE_URL` says. It changes the working
//! directory (a relative path is relative to it), which is why it is one test alone in its own
//! binary: no other test runs in this process meanwhile.

use std::path::Path;

use ops_sea::prelude::*;
use sea_orm::ConnectionTrait;

/// Creates a table through `url`, and returns the URL ops prints for it.
async fn create_table(url: &str, table: &str) -> String {
    let db = Db::connect(url)
        .await
        .unwrap_or_else(|err| panic!("connect {url}: {err}"));
    db.execute_unprepared(&format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
        .await
        .unwrap_or_else(|err| panic!("create {table} through {url}: {err}"));
    let printed = db.config().url.to_string();
    db.close().await;
    printed
}

/// Whether the database that `url` opens has `table`.
async fn has_table(url: &str, table: &str) -> bool {
    let db = Db::connect(url)
        .await
        .unwrap_or_else(|err| panic!("connect {url}: {err}"));
    let found = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{table}'"),
        ))
        .await
        .expect("read sqlite_master")
        .is_some();
    db.close().await;
    found
}

fn without_root(path: &Path) -> String {
    path.to_str()
        .expect("a UTF-8 temp dir")
        .trim_start_matches('/')
        .to_owned()
}

#[tokio::test]
async fn sqlite_urls_open_the_file_their_scheme_documents() {
    let root = std::env::temp_dir().join(format!("ops_t_sqlite_urls_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the temp dir");
    let root = root.canonicalize().expect("canonical temp dir");
    let cwd = root.join("cwd");
    // The directory a relative reading of `sqlite:///<root>/…` would land in exists too, so that
    // reading would quietly create a new, empty database there, as in the bug report.
    let shadow = cwd.join(without_root(&root));
    std::fs::create_dir_all(&shadow).expect("create the temp dirs");
    let previous = std::env::current_dir().expect("current dir");
    std::env::set_current_dir(&cwd).expect("enter the temp cwd");

    // sqlx: three slashes are an absolute path.
    let plain_abs = format!("sqlite:///{}/plain.db?mode=rwc", without_root(&root));
    let printed = create_table(&plain_abs, "plain_abs").await;
    assert!(
        root.join("plain.db").is_file(),
        "{plain_abs} opens /…/plain.db"
    );
    assert!(
        !shadow.join("plain.db").exists(),
        "{plain_abs} must not open plain.db under the working directory"
    );
    assert_eq!(printed, plain_abs, "a plain sqlite url is kept as written");
    assert!(has_table(&printed, "plain_abs").await);

    // sqlx: two slashes (or none) are relative to the working directory.
    for (url, file) in [
        ("sqlite://relative.db?mode=rwc", "relative.db"),
        ("sqlite:bare.db?mode=rwc", "bare.db"),
    ] {
        let table = file.trim_end_matches(".db");
        let printed = create_table(url, table).await;
        assert!(cwd.join(file).is_file(), "{url} opens {file} in the cwd");
        assert!(has_table(&printed, table).await, "{printed}");
    }

    // SQLAlchemy: three slashes relative, four absolute, `mode=rwc` added; the printed URL is
    // sqlx's spelling of the same file.
    let alchemy_rel = "sqlite+pysqlite:///alchemy.db";
    let printed = create_table(alchemy_rel, "alchemy_rel").await;
    assert!(
        cwd.join("alchemy.db").is_file(),
        "{alchemy_rel} is relative"
    );
    assert_eq!(printed, "sqlite://alchemy.db?mode=rwc");
    assert!(has_table(&printed, "alchemy_rel").await);

    let alchemy_abs = format!("sqlite+aiosqlite:///{}/alchemy_abs.db", root.display());
    let printed = create_table(&alchemy_abs, "alchemy_abs").await;
    assert!(
        root.join("alchemy_abs.db").is_file(),
        "{alchemy_abs} is absolute"
    );
    assert_eq!(
        printed,
        format!("sqlite:///{}/alchemy_abs.db?mode=rwc", without_root(&root))
    );
    assert!(has_table(&printed, "alchemy_abs").await);

    // SQLAlchemy's in-memory spelling would be the file `/:memory:` to sqlx: refused.
    let err = Db::connect("sqlite:///:memory:")
        .await
        .expect_err("sqlite:///:memory: is refused");
    assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");

    std::env::set_current_dir(previous).expect("leave the temp cwd");
    let _ = std::fs::remove_dir_all(&root);
}
