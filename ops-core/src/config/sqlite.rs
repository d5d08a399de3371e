//! The SQLite URL parser: sqlx's meaning for plain `sqlite:` URLs, SQLAlchemy's for the
//! `sqlite+driver:` schemes.

use super::normalization::Normalization;
use super::query::{query_pairs, take_ssl_mode};

/// A SQLite URL as read: what sqlx is given, and what was changed to get there.
pub(super) struct SqliteUrl {
    pub(super) url: String,
    pub(super) in_memory: bool,
    pub(super) notes: Vec<Normalization>,
}

/// Query parameters that the sqlx SQLite driver understands. It rejects any other.
const SQLITE_PARAMS: [&str; 4] = ["mode", "cache", "immutable", "vfs"];

/// Parses the part after `sqlite:`, the SQLAlchemy way when `sqlalchemy` (the scheme named a
/// `+driver`), otherwise as sqlx does.
pub(super) fn parse_sqlite(
    rest: &str,
    sqlalchemy: bool,
    mut notes: Vec<Normalization>,
) -> Result<SqliteUrl, String> {
    let (body, query) = match rest.split_once('?') {
        Some((body, query)) => (body, Some(query)),
        None => (rest, None),
    };
    let mut pairs = query_pairs(query.unwrap_or_default());

    if let Some((mode, written)) = take_ssl_mode(&mut pairs)? {
        if mode.requires_tls() {
            return Err(format!(
                "`{written}` asks for TLS, but SQLite is an embedded file with no network \
                 connection: remove it"
            ));
        }
        notes.push(Normalization::SqliteSslParamRemoved { param: written });
    }
    pairs.retain(|pair| {
        let keep = !pair.key.eq_ignore_ascii_case("check_same_thread");
        if !keep {
            notes.push(Normalization::CheckSameThreadRemoved {
                param: pair.raw.to_owned(),
            });
        }
        keep
    });
    let mut mode = None;
    for pair in &pairs {
        let accepted: &[&str] = match pair.key.as_str() {
            "mode" => &["ro", "rw", "rwc", "memory"],
            "cache" => &["private", "shared"],
            "immutable" => &["true", "false", "1", "0"],
            "vfs" => &[],
            _ => {
                return Err(format!(
                    "the SQLite url parameter `{}` is not supported: sqlx accepts {}",
                    pair.key,
                    SQLITE_PARAMS.join(", ")
                ));
            }
        };
        if !accepted.is_empty() && !accepted.contains(&pair.value.as_str()) {
            return Err(format!(
                "`{}={}` is not a valid SQLite url parameter: use {} for `{}`",
                pair.key,
                pair.value,
                accepted.join(", "),
                pair.key
            ));
        }
        if pair.key == "mode" {
            mode = Some(pair.value.clone());
        }
    }
    let mut query: Vec<String> = pairs.iter().map(|pair| pair.raw.to_owned()).collect();
    let mode_memory = mode.as_deref() == Some("memory");

    // Decide the path. A plain `sqlite:` URL means what sqlx documents: `sqlite://data.db` is
    // `data.db` in the working directory and `sqlite:///data.db` is `/data.db`, so a SeaORM
    // user's absolute path opens the file they mean. SQLAlchemy's readings (three slashes
    // relative, four absolute) apply only to URLs that say they are SQLAlchemy's.
    let no_file = || {
        "it names no database file: use sqlite://path/to/file.db, sqlite:///absolute/path.db, \
         or sqlite::memory: for an in-memory database"
            .to_owned()
    };
    let (database, sqlalchemy_file) = if body == ":memory:" {
        (":memory:".to_owned(), false)
    } else if sqlalchemy {
        match body.strip_prefix("///") {
            Some("" | ":memory:") => {
                notes.push(Normalization::SqlAlchemyMemory {
                    body: body.to_owned(),
                });
                (":memory:".to_owned(), false)
            }
            Some(path) if path.starts_with('/') => {
                notes.push(Normalization::SqlAlchemyAbsolutePath {
                    body: body.to_owned(),
                    path: path.to_owned(),
                });
                (path.to_owned(), true)
            }
            Some(path) => {
                notes.push(Normalization::SqlAlchemyRelativePath {
                    body: body.to_owned(),
                    path: path.to_owned(),
                });
                (path.to_owned(), true)
            }
            None if body == "//" && query.is_empty() => {
                notes.push(Normalization::SqlAlchemyMemory {
                    body: body.to_owned(),
                });
                (":memory:".to_owned(), false)
            }
            None => {
                return Err(
                    "a SQLAlchemy SQLite url names its file after three slashes: use \
                     sqlite+pysqlite:///relative.db or sqlite+pysqlite:////absolute.db"
                        .to_owned(),
                );
            }
        }
    } else if let Some(after) = body.strip_prefix("//") {
        if after == "/:memory:" {
            return Err(
                "`sqlite:///:memory:` is SQLAlchemy's spelling, which sqlx reads as the file \
                 /:memory:: use sqlite::memory: for an in-memory database (or \
                 sqlite+pysqlite:///:memory: for SQLAlchemy's reading)"
                    .to_owned(),
            );
        } else if after == "/" {
            return Err(no_file());
        } else if after.is_empty() {
            if mode_memory {
                (String::new(), false)
            } else if query.is_empty() {
                notes.push(Normalization::EmptySqliteAsMemory);
                (":memory:".to_owned(), false)
            } else {
                return Err(no_file());
            }
        } else {
            (after.to_owned(), false)
        }
    } else if body.is_empty() {
        return Err(no_file());
    } else {
        (body.to_owned(), false)
    };

    if sqlalchemy_file && mode.is_none() {
        query.push("mode=rwc".to_owned());
        notes.push(Normalization::CreateOnDemand);
    }
    let in_memory = database == ":memory:" || mode_memory;
    let mut url = if database == ":memory:" && !body.starts_with("//:") {
        "sqlite::memory:".to_owned()
    } else if body.starts_with("//") || sqlalchemy_file {
        format!("sqlite://{database}")
    } else {
        format!("sqlite:{database}")
    };
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(SqliteUrl {
        url,
        in_memory,
        notes,
    })
}
