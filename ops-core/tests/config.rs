//! The database configuration: URL normalization, SSL mapping, the environment, validation and
//! the promise that no password ever reaches `Display`, `Debug` or an error message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ops_core::config::{
    Backend, ConfigError, DEFAULT_DATABASE_URL, DatabaseUrl, DbConfig, SslMode, parse_duration,
};

const SECRET: &str = "s3cretPW";

fn url(input: &str) -> DatabaseUrl {
    DatabaseUrl::parse(input).unwrap_or_else(|err| panic!("{input} should parse: {err}"))
}

fn url_err(input: &str) -> ConfigError {
    match DatabaseUrl::parse(input) {
        Ok(parsed) => panic!("{input} should fail, got {parsed:?}"),
        Err(err) => err,
    }
}

/// A configuration read from the given variables only.
fn env(vars: &[(&str, &str)]) -> Result<DbConfig, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    DbConfig::from_lookup(move |name| vars.get(name).cloned())
}

fn env_ok(vars: &[(&str, &str)]) -> DbConfig {
    env(vars).unwrap_or_else(|err| panic!("{vars:?} should be accepted: {err}"))
}

fn env_err(vars: &[(&str, &str)]) -> ConfigError {
    match env(vars) {
        Ok(config) => panic!("{vars:?} should be refused, got {config}"),
        Err(err) => err,
    }
}

/// Asserts that nothing derived from a value shows `secret`.
fn assert_hidden(what: &str, text: &str, secret: &str) {
    assert!(!text.contains(secret), "{what} leaks the password: {text}");
}

// ----- scheme normalization ------------------------------------------------------------------

#[test]
fn canonical_server_urls_are_untouched() {
    for input in [
        "postgres://postgres@127.0.0.1:5432/test",
        "mysql://root@127.0.0.1:3306/test",
        "postgres://u:p@h/db?application_name=ops",
    ] {
        let parsed = url(input);
        assert_eq!(parsed.expose(), input);
        assert!(
            parsed.normalizations().is_empty(),
            "{input}: {:?}",
            parsed.normalizations()
        );
        assert_eq!(parsed.ssl_mode(), None);
    }
}

#[test]
fn postgres_spellings_become_postgres() {
    for scheme in [
        "postgresql",
        "postgresql+psycopg2",
        "postgresql+asyncpg",
        "postgresql+psycopg",
        "postgresql+pg8000",
        "postgres+asyncpg",
        "POSTGRESQL",
    ] {
        let parsed = url(&format!("{scheme}://app:pw@db.internal:5433/app"));
        assert_eq!(parsed.backend(), Backend::Postgres);
        assert_eq!(
            parsed.expose(),
            "postgres://app:pw@db.internal:5433/app",
            "{scheme}"
        );
        assert_eq!(parsed.normalizations().len(), 1, "{scheme}");
        let note = &parsed.normalizations()[0].to_string();
        assert!(
            note.contains(&format!("`{scheme}://`")) && note.contains("`postgres://`"),
            "{note}"
        );
        if let Some((_, driver)) = scheme.split_once('+') {
            assert!(note.contains(driver), "{note}");
        }
    }
}

#[test]
fn mysql_spellings_become_mysql() {
    for scheme in [
        "mysql+pymysql",
        "mysql+aiomysql",
        "mysql+mysqldb",
        "mysql+asyncmy",
        "mariadb",
        "mariadb+mariadbconnector",
        "mariadb+pymysql",
    ] {
        let parsed = url(&format!(
            "{scheme}://root:pw@127.0.0.1:3306/test?charset=utf8mb4"
        ));
        assert_eq!(parsed.backend(), Backend::MySql);
        assert_eq!(
            parsed.expose(),
            "mysql://root:pw@127.0.0.1:3306/test?charset=utf8mb4"
        );
        assert_eq!(parsed.normalizations().len(), 1, "{scheme}");
        assert!(
            parsed.normalizations()[0]
                .to_string()
                .contains("`mysql://`")
        );
    }
    assert!(
        url("mariadb://h/db").normalizations()[0]
            .to_string()
            .contains("MySQL protocol")
    );
}

#[test]
fn malformed_schemes_are_refused_with_the_accepted_forms() {
    let err = url_err("oracle://scott:tiger@h/db");
    let message = err.to_string();
    assert!(message.contains("`oracle`"), "{message}");
    for accepted in [
        "postgres://",
        "mysql://",
        "mariadb://",
        "sqlite://",
        "sqlite::memory:",
    ] {
        assert!(
            message.contains(accepted),
            "{message} should list {accepted}"
        );
    }
    assert_hidden("unknown scheme", &message, "tiger");

    assert!(
        url_err("postgresql+://h/db")
            .to_string()
            .contains("names no driver")
    );
    assert!(url_err("postgres:db").to_string().contains("expected `//`"));
    assert!(url_err("").to_string().contains("empty"));
    assert!(url_err("   ").to_string().contains("empty"));

    // Without a scheme the value may be a pasted password: it is not echoed.
    let err = url_err(SECRET);
    assert!(err.to_string().contains("no scheme"), "{err}");
    assert_hidden("scheme-less url", &err.to_string(), SECRET);
}

// ----- SQLite ----------------------------------------------------------------------------------

#[test]
fn sqlalchemy_sqlite_memory_forms_become_sqlx_memory() {
    for input in [
        "sqlite://",
        "sqlite+pysqlite://",
        "sqlite+pysqlite:///:memory:",
        "sqlite+pysqlite:///",
        "sqlite+aiosqlite://",
    ] {
        let parsed = url(input);
        assert_eq!(parsed.expose(), "sqlite::memory:", "{input}");
        assert!(parsed.is_in_memory(), "{input}");
        assert_eq!(parsed.backend(), Backend::Sqlite);
        assert!(
            !parsed.normalizations().is_empty(),
            "{input} should say it was rewritten"
        );
    }
    let shared = url("sqlite+pysqlite:///:memory:?cache=shared");
    assert_eq!(shared.expose(), "sqlite::memory:?cache=shared");
}

/// The file sqlx opens for a `sqlite:` URL, resolved against `cwd`: sqlx strips `sqlite://` (or
/// else `sqlite:`) and takes the rest, up to `?`, as the path (`SqliteConnectOptions::from_str`).
fn sqlx_file(exposed: &str, cwd: &Path) -> PathBuf {
    let rest = exposed
        .strip_prefix("sqlite://")
        .or_else(|| exposed.strip_prefix("sqlite:"))
        .expect("a sqlite url");
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    cwd.join(path)
}

/// sqlx documents `sqlite:///data.db` as the file `/data.db`: a plain `sqlite:` URL keeps that
/// meaning and is passed on as written; ops read it as `data.db` in the working directory.
#[test]
fn plain_sqlite_three_slashes_is_the_absolute_path_sqlx_documents() {
    let cwd = Path::new("/srv/app");
    for (input, file) in [
        ("sqlite:///var/app/app.db", "/var/app/app.db"),
        ("sqlite:///var/app/app.db?mode=rwc", "/var/app/app.db"),
        ("sqlite:///data.db?mode=ro", "/data.db"),
        ("sqlite:////var/app/app.db", "/var/app/app.db"),
        ("sqlite://data.db", "/srv/app/data.db"),
        ("sqlite:data.db", "/srv/app/data.db"),
        ("sqlite:/abs.db", "/abs.db"),
    ] {
        let parsed = url(input);
        assert_eq!(parsed.expose(), input);
        assert_eq!(parsed.to_string(), input);
        assert!(
            parsed.normalizations().is_empty(),
            "{input}: {:?}",
            parsed.normalizations()
        );
        assert_eq!(sqlx_file(parsed.expose(), cwd), Path::new(file), "{input}");
    }
    // SQLAlchemy's in-memory spelling is a file named `:memory:` at the root to sqlx: refused,
    // with the spelling that works.
    let message = url_err("sqlite:///:memory:").to_string();
    assert!(
        message.contains("sqlite::memory:") && message.contains("sqlite+pysqlite:///:memory:"),
        "{message}"
    );
    assert!(
        url_err("sqlite:///")
            .to_string()
            .contains("names no database file")
    );
}

/// SQLAlchemy's readings apply where the scheme says the URL is SQLAlchemy's, and the URL ops
/// prints for them opens the same file when parsed again (by ops or by sqlx).
#[test]
fn sqlalchemy_sqlite_urls_read_the_sqlalchemy_way_and_print_back_the_same_file() {
    let cwd = Path::new("/srv/app");
    for (input, exposed, file) in [
        (
            "sqlite+pysqlite:///relative/path.db",
            "sqlite://relative/path.db?mode=rwc",
            "/srv/app/relative/path.db",
        ),
        (
            "sqlite+aiosqlite:////abs/path.db",
            "sqlite:///abs/path.db?mode=rwc",
            "/abs/path.db",
        ),
        (
            "sqlite+pysqlite:////var/x.db?cache=shared",
            "sqlite:///var/x.db?cache=shared&mode=rwc",
            "/var/x.db",
        ),
        (
            "sqlite+pysqlite:///data.db?mode=ro",
            "sqlite://data.db?mode=ro",
            "/srv/app/data.db",
        ),
        // Any other `+driver` is SQLAlchemy's too.
        (
            "sqlite+somedriver:///x.db",
            "sqlite://x.db?mode=rwc",
            "/srv/app/x.db",
        ),
    ] {
        let parsed = url(input);
        assert_eq!(parsed.expose(), exposed, "{input}");
        assert!(!parsed.is_in_memory());
        assert_eq!(sqlx_file(parsed.expose(), cwd), Path::new(file), "{input}");
        // Printed and given back: the same URL, so the same file.
        let again = url(&parsed.to_string());
        assert_eq!(again.expose(), parsed.expose(), "{input}");
        assert!(again.normalizations().is_empty(), "{input}");
    }
    let notes = url("sqlite+pysqlite:///relative/path.db")
        .normalizations()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        notes.contains("relative to the working directory"),
        "{notes}"
    );
    assert!(notes.contains("mode=rwc"), "{notes}");
    assert!(
        url("sqlite+aiosqlite:////abs/path.db")
            .normalizations()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            .contains("absolute path /abs/path.db")
    );
    // SQLAlchemy names the file after three slashes; two would be a host.
    assert!(
        url_err("sqlite+pysqlite://x.db")
            .to_string()
            .contains("three slashes")
    );
    assert!(url_err("sqlite+:///x.db").to_string().contains("no driver"));
}

#[test]
fn sqlx_native_sqlite_forms_stay_as_written() {
    for (input, in_memory) in [
        ("sqlite://file.db", false),
        ("sqlite://data/file.db?mode=ro", false),
        ("sqlite:file.db", false),
        ("sqlite:/abs/file.db", false),
        ("sqlite::memory:", true),
        ("sqlite://:memory:", true),
        ("sqlite://?mode=memory", true),
        ("sqlite://file.db?mode=memory&cache=private", true),
        (DEFAULT_DATABASE_URL, false),
    ] {
        let parsed = url(input);
        assert_eq!(parsed.expose(), input);
        assert_eq!(parsed.is_in_memory(), in_memory, "{input}");
        assert!(
            parsed.normalizations().is_empty(),
            "{input}: {:?}",
            parsed.normalizations()
        );
        assert_eq!(
            parsed.to_string(),
            input,
            "a SQLite url has nothing to redact"
        );
    }
}

#[test]
fn sqlite_parameters_sqlx_would_reject_are_caught_early() {
    let message = url_err("sqlite://x.db?timeout=5").to_string();
    assert!(
        message.contains("`timeout`") && message.contains("mode, cache, immutable, vfs"),
        "{message}"
    );
    let message = url_err("sqlite://x.db?mode=rwx").to_string();
    assert!(
        message.contains("mode=rwx") && message.contains("ro, rw, rwc, memory"),
        "{message}"
    );
    assert!(
        url_err("sqlite://x.db?cache=big")
            .to_string()
            .contains("private, shared")
    );
    assert!(
        url_err("sqlite:")
            .to_string()
            .contains("names no database file")
    );
    assert!(
        url_err("sqlite://?cache=shared")
            .to_string()
            .contains("names no database file")
    );
    assert!(
        url_err("sqlite+pysqlcipher:///x.db")
            .to_string()
            .contains("pysqlcipher")
    );
}

#[test]
fn sqlite_drops_python_only_check_same_thread() {
    let parsed = url("sqlite+pysqlite:///app.db?check_same_thread=false");
    assert_eq!(parsed.expose(), "sqlite://app.db?mode=rwc");
    assert!(
        parsed
            .normalizations()
            .iter()
            .any(|n| n.to_string().contains("check_same_thread"))
    );
}

#[test]
fn sqlite_ssl_parameters_are_noted_or_refused() {
    let parsed = url("sqlite://x.db?sslmode=disable");
    assert_eq!(parsed.expose(), "sqlite://x.db");
    assert_eq!(parsed.ssl_mode(), None);
    assert!(
        parsed.normalizations()[0]
            .to_string()
            .contains("SSL does not apply to SQLite")
    );
    assert_eq!(url("sqlite://x.db?sslmode=prefer").ssl_mode(), None);

    for mode in ["require", "verify-ca", "verify-full", "true"] {
        let message = url_err(&format!("sqlite://x.db?sslmode={mode}")).to_string();
        assert!(
            message.contains("SQLite") && message.contains("remove it"),
            "{message}"
        );
    }
}

// ----- SSL for servers -------------------------------------------------------------------------

#[test]
fn postgres_ssl_parameters_move_into_the_ssl_mode() {
    for (query, mode) in [
        ("sslmode=disable", SslMode::Disable),
        ("sslmode=allow", SslMode::Allow),
        ("sslmode=prefer", SslMode::Prefer),
        ("sslmode=require", SslMode::Require),
        ("sslmode=verify-ca", SslMode::VerifyCa),
        ("sslmode=verify-full", SslMode::VerifyFull),
        ("ssl=true", SslMode::Require),
        ("ssl=false", SslMode::Disable),
        ("ssl=require", SslMode::Require),
        ("ssl_mode=Verify-Full", SslMode::VerifyFull),
        ("SSLMODE=REQUIRE", SslMode::Require),
    ] {
        let parsed = url(&format!("postgresql+asyncpg://app:pw@db/app?{query}"));
        assert_eq!(parsed.ssl_mode(), Some(mode), "{query}");
        assert_eq!(parsed.expose(), "postgres://app:pw@db/app", "{query}");
        assert!(parsed.normalizations().iter().any(|n| {
            n.to_string()
                .contains(query.split('=').next().unwrap_or(query))
        }));
    }
}

#[test]
fn mysql_ssl_parameters_move_into_the_ssl_mode() {
    for (query, mode) in [
        ("ssl-mode=DISABLED", SslMode::Disable),
        ("ssl-mode=PREFERRED", SslMode::Prefer),
        ("ssl-mode=REQUIRED", SslMode::Require),
        ("ssl-mode=VERIFY_CA", SslMode::VerifyCa),
        ("ssl-mode=VERIFY_IDENTITY", SslMode::VerifyFull),
        ("ssl_mode=required", SslMode::Require),
        ("sslmode=verify_identity", SslMode::VerifyFull),
        ("ssl=true", SslMode::Require),
    ] {
        let parsed = url(&format!(
            "mysql+pymysql://root:pw@127.0.0.1:3306/test?charset=utf8mb4&{query}"
        ));
        assert_eq!(parsed.ssl_mode(), Some(mode), "{query}");
        assert_eq!(
            parsed.expose(),
            "mysql://root:pw@127.0.0.1:3306/test?charset=utf8mb4",
            "{query}"
        );
    }
}

#[test]
fn certificate_parameters_stay_and_are_exposed() {
    let parsed = url(
        "postgres://app@db/app?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem\
         &sslcert=/etc/ssl/client.crt&sslkey=/etc/ssl/client.key",
    );
    assert_eq!(parsed.ssl_mode(), Some(SslMode::VerifyFull));
    assert_eq!(
        parsed.expose(),
        "postgres://app@db/app?sslrootcert=/etc/ssl/ca.pem&sslcert=/etc/ssl/client.crt\
         &sslkey=/etc/ssl/client.key"
    );
    let certs = parsed.ssl_certificates();
    assert_eq!(certs.root_cert.as_deref(), Some("/etc/ssl/ca.pem"));
    assert_eq!(certs.client_cert.as_deref(), Some("/etc/ssl/client.crt"));
    assert_eq!(certs.client_key.as_deref(), Some("/etc/ssl/client.key"));

    let mysql = url("mysql://root@h/test?ssl-mode=VERIFY_CA&ssl-ca=/ca.pem");
    assert_eq!(mysql.expose(), "mysql://root@h/test?ssl-ca=/ca.pem");
    assert_eq!(
        mysql.ssl_certificates().root_cert.as_deref(),
        Some("/ca.pem")
    );
}

#[test]
fn pymysql_certificate_names_are_renamed_for_sqlx() {
    let parsed = url("mysql+pymysql://root@h/test?ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem");
    assert_eq!(
        parsed.expose(),
        "mysql://root@h/test?ssl-ca=/ca.pem&ssl-cert=/c.pem&ssl-key=/k.pem"
    );
    let notes = parsed
        .normalizations()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for name in ["ssl_ca", "ssl_cert", "ssl_key"] {
        assert!(notes.contains(&format!("`{name}`")), "{notes}");
    }
    let certs = parsed.ssl_certificates();
    assert_eq!(certs.root_cert.as_deref(), Some("/ca.pem"));
    assert_eq!(certs.client_key.as_deref(), Some("/k.pem"));
}

#[test]
fn conflicting_or_unknown_ssl_modes_are_refused() {
    let message = url_err("postgres://h/db?sslmode=require&ssl=false").to_string();
    assert!(
        message.contains("conflicting") && message.contains("keep one"),
        "{message}"
    );
    // The same mode twice is not a conflict.
    assert_eq!(
        url("postgres://h/db?sslmode=require&ssl=true").ssl_mode(),
        Some(SslMode::Require)
    );

    let message = url_err(&format!("postgres://u:{SECRET}@h/db?sslmode=bogus")).to_string();
    assert!(message.contains("sslmode=bogus"), "{message}");
    for valid in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
        "VERIFY_IDENTITY",
    ] {
        assert!(message.contains(valid), "{message} should list {valid}");
    }
    assert_hidden("unknown ssl mode", &message, SECRET);
}

#[test]
fn other_query_parameters_are_preserved() {
    let parsed = url(
        "postgresql://u@h/db?options=-c%20search_path%3Dx&sslmode=require&application_name=ops",
    );
    assert_eq!(
        parsed.expose(),
        "postgres://u@h/db?options=-c%20search_path%3Dx&application_name=ops"
    );
    assert_eq!(
        parsed.query_param("options").as_deref(),
        Some("-c search_path=x")
    );
    assert_eq!(
        parsed.query_param("application_name").as_deref(),
        Some("ops")
    );

    // A literal space is percent-encoded by URL parsing; the decoded value is what sqlx reads.
    let literal = url("postgres://u@h/db?options=-c search_path=x");
    assert_eq!(
        literal.query_param("options").as_deref(),
        Some("-c search_path=x")
    );
    assert_eq!(literal.query_param("sslmode"), None);
}

#[test]
fn ssl_mode_names() {
    for (text, mode) in [
        ("disable", SslMode::Disable),
        ("DISABLED", SslMode::Disable),
        ("Allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("preferred", SslMode::Prefer),
        ("require", SslMode::Require),
        ("Required", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("VERIFY_CA", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
        ("verify_identity", SslMode::VerifyFull),
        ("true", SslMode::Require),
        ("FALSE", SslMode::Disable),
    ] {
        assert_eq!(text.parse::<SslMode>().ok(), Some(mode), "{text}");
    }
    let err = "maybe".parse::<SslMode>().unwrap_err().to_string();
    assert!(
        err.contains("`maybe`") && err.contains("verify-full"),
        "{err}"
    );
    assert_eq!(SslMode::VerifyFull.to_string(), "verify-full");
    assert_eq!(SslMode::VerifyFull.as_mysql_str(), "VERIFY_IDENTITY");
    assert_eq!(SslMode::Allow.as_mysql_str(), "PREFERRED");
    assert!(SslMode::VerifyCa.requires_tls() && !SslMode::Prefer.requires_tls());
}

// ----- passwords -------------------------------------------------------------------------------

#[test]
fn password_is_redacted_everywhere_but_expose() {
    let input = format!("postgresql://app:{SECRET}@db:5432/app?sslmode=require");
    let parsed = url(&input);
    assert_eq!(
        parsed.expose(),
        format!("postgres://app:{SECRET}@db:5432/app")
    );
    assert_eq!(parsed.redacted(), "postgres://app:***@db:5432/app");
    assert_eq!(parsed.to_string(), parsed.redacted());
    assert_hidden("DatabaseUrl Debug", &format!("{parsed:?}"), SECRET);
    assert_hidden(
        "DatabaseUrl notes",
        &parsed
            .normalizations()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        SECRET,
    );

    let config = DbConfig::new(&input).expect("valid");
    assert_hidden("DbConfig Display", &config.to_string(), SECRET);
    assert_hidden("DbConfig Debug", &format!("{config:?}"), SECRET);
    assert_hidden("DbConfig alternate Debug", &format!("{config:#?}"), SECRET);
    assert!(config.to_string().contains("app:***@db"));
}

#[test]
fn percent_encoded_passwords_survive() {
    // `p@ss/w:rd%` percent-encoded, as a driver must receive it.
    let input = "postgres://app:p%40ss%2Fw%3Ard%25@db/app";
    let parsed = url(input);
    assert_eq!(parsed.expose(), input);
    assert_eq!(parsed.redacted(), "postgres://app:***@db/app");

    let mysql = url("mariadb://root:a%20b%23c@127.0.0.1/test");
    assert_eq!(mysql.expose(), "mysql://root:a%20b%23c@127.0.0.1/test");
    assert_hidden("redacted", &mysql.redacted(), "a%20b");
}

#[test]
fn password_query_parameter_is_redacted() {
    let parsed = url(&format!(
        "postgres://app@db/app?password={SECRET}&application_name=x"
    ));
    assert!(parsed.expose().contains(SECRET));
    assert_eq!(
        parsed.redacted(),
        "postgres://app@db/app?password=***&application_name=x"
    );
    assert_hidden("Debug", &format!("{parsed:?}"), SECRET);
}

#[test]
fn malformed_urls_never_echo_the_password() {
    for input in [
        format!("postgres://user:{SECRET}@host:notaport/db"),
        format!("postgres://user:{SECRET}@/db"),
        format!("postgres://user:{SECRET}@[::1/db"),
        format!("postgres://user:{SECRET}"),
        format!("postgres://user:{SECRET}/db"),
        format!("postgres://user:{SECRET}@host:1:2/db"),
        format!("mysql://root:{SECRET}@host:99999/db"),
        format!("postgresql+://user:{SECRET}@h/db"),
        format!("oracle://user:{SECRET}@h/db"),
        format!("postgres://host:x/db?password={SECRET}"),
        format!("postgres://user:{SECRET}@host:bad/db?password={SECRET}&sslmode=nope"),
        format!("postgres:user:{SECRET}@host"),
        // An unencoded `@`, `/` or `?` inside the password must not leak the part after it.
        "postgres://user:s3cr@tPW@host:bad/db".to_owned(),
        "postgres://user:s3cr/etPW@host/db".to_owned(),
        "postgres://user:s3cr?etPW@host:x/db".to_owned(),
        "postgres://user:s3cr#etPW@host:x/db".to_owned(),
    ] {
        let secret_parts = ["s3cretPW", "etPW", "tPW"];
        let err = match DatabaseUrl::parse(&input) {
            Ok(parsed) => {
                // Some of these parse: then the redacted forms must hide the password.
                for part in secret_parts {
                    assert_hidden(&input, &parsed.to_string(), part);
                    assert_hidden(&input, &format!("{parsed:?}"), part);
                }
                continue;
            }
            Err(err) => err,
        };
        let from_env = env_err(&[("DATABASE_URL", &input)]);
        assert_eq!(from_env.variable(), Some("DATABASE_URL"));
        assert!(
            from_env.to_string().starts_with("DATABASE_URL"),
            "{from_env}"
        );
        for text in [
            err.to_string(),
            format!("{err:?}"),
            from_env.to_string(),
            format!("{from_env:?}"),
        ] {
            for part in secret_parts {
                assert_hidden(&input, &text, part);
            }
        }
    }
}

#[test]
fn malformed_url_error_says_what_is_wrong() {
    let message = url_err(&format!("postgres://user:{SECRET}@host:notaport/db")).to_string();
    assert!(message.contains("invalid port number"), "{message}");
    assert!(message.contains("user:***@host"), "{message}");
    assert!(
        message.contains("postgres://user:password@host:5432/database"),
        "{message}"
    );
}

// ----- defaults and the environment ------------------------------------------------------------

#[test]
fn defaults() {
    let config = DbConfig::new("postgres://postgres@127.0.0.1:5432/test").expect("valid");
    assert_eq!(config.backend(), Backend::Postgres);
    assert_eq!(config.pool_size, 10);
    assert_eq!(config.max_overflow, 10);
    assert_eq!(config.min_connections(), 10);
    assert_eq!(config.max_connections(), 20);
    assert_eq!(config.pool_timeout, Duration::from_secs(30));
    assert_eq!(config.pool_recycle, Some(Duration::from_secs(1800)));
    assert_eq!(config.idle_timeout, Duration::from_secs(600));
    assert_eq!(config.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.statement_timeout, None);
    assert_eq!(config.idle_ping, Duration::from_millis(500));
    assert_eq!(config.leak_threshold, Some(Duration::from_secs(60)));
    assert_eq!(config.ssl_mode, None);
    assert!(config.normalizations.is_empty());
    config.validate().expect("defaults validate");

    let line = config.to_string();
    assert!(!line.contains('\n'));
    assert_eq!(
        line,
        "postgres://postgres@127.0.0.1:5432/test (postgres) pool_size=10 max_overflow=10 \
         pool_timeout=30s pool_recycle=30m idle_timeout=10m connect_timeout=10s \
         statement_timeout=off idle_ping=500ms leak_threshold=1m ssl_mode=default \
         reset_check=auto"
    );
}

#[test]
fn new_carries_url_normalizations_and_ssl_mode() {
    let config = DbConfig::new("postgresql://h/db?sslmode=verify-full").expect("valid");
    assert_eq!(config.ssl_mode, Some(SslMode::VerifyFull));
    assert_eq!(config.normalizations, config.url.normalizations());
    assert_eq!(config.normalizations.len(), 2);
    assert!(DbConfig::new("nope://h").is_err());
}

#[test]
fn unset_environment_gives_embedded_sqlite_and_defaults() {
    let config = env_ok(&[]);
    assert_eq!(config.backend(), Backend::Sqlite);
    assert_eq!(config.url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(config.url.expose(), "sqlite://ops.db?mode=rwc");
    assert_eq!(config.pool_size, 10);
    assert!(
        config.normalizations[0]
            .to_string()
            .contains("DATABASE_URL is not set"),
        "{:?}",
        config.normalizations
    );
}

#[test]
fn database_url_from_environment_is_normalized() {
    let config = env_ok(&[(
        "DATABASE_URL",
        "mysql+aiomysql://root@127.0.0.1:3306/test?ssl-mode=REQUIRED",
    )]);
    assert_eq!(config.backend(), Backend::MySql);
    assert_eq!(config.url.expose(), "mysql://root@127.0.0.1:3306/test");
    assert_eq!(config.ssl_mode, Some(SslMode::Require));
    assert_eq!(config.normalizations.len(), 2);
}

/// Each accepted value and what it becomes.
#[test]
fn every_variable_accepts_its_forms() {
    let pg = ("DATABASE_URL", "postgres://postgres@127.0.0.1/test");
    let config = env_ok(&[pg, ("DB_POOL_SIZE", "3"), ("DB_MAX_OVERFLOW", "0")]);
    assert_eq!(
        (
            config.pool_size,
            config.max_overflow,
            config.max_connections()
        ),
        (3, 0, 3)
    );
    assert_eq!(env_ok(&[("DB_POOL_SIZE", " 25 ")]).pool_size, 25);

    for (text, expected) in [
        ("30", Duration::from_secs(30)),
        ("30s", Duration::from_secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        ("2 s", Duration::from_secs(2)),
    ] {
        assert_eq!(
            env_ok(&[("DB_POOL_TIMEOUT", text)]).pool_timeout,
            expected,
            "{text}"
        );
        assert_eq!(
            env_ok(&[("DB_CONNECT_TIMEOUT", text)]).connect_timeout,
            expected,
            "{text}"
        );
        assert_eq!(
            env_ok(&[("DB_POOL_IDLE_TIMEOUT", text)]).idle_timeout,
            expected,
            "{text}"
        );
        let ping = env_ok(&[("DB_IDLE_PING", text), ("DB_POOL_RECYCLE", "off")]);
        assert_eq!(ping.idle_ping, expected, "{text}");
        assert_eq!(
            env_ok(&[("DB_LEAK_THRESHOLD", text)]).leak_threshold,
            Some(expected),
            "{text}"
        );
        let recycle = env_ok(&[("DB_POOL_RECYCLE", text), ("DB_IDLE_PING", "0")]);
        assert_eq!(recycle.pool_recycle, Some(expected), "{text}");
    }
    assert_eq!(env_ok(&[("DB_IDLE_PING", "0")]).idle_ping, Duration::ZERO);

    for off in ["-1", "off", "none", "OFF", "None", "0", "0s"] {
        assert_eq!(
            env_ok(&[("DB_POOL_RECYCLE", off)]).pool_recycle,
            None,
            "{off}"
        );
        assert_eq!(
            env_ok(&[("DB_LEAK_THRESHOLD", off)]).leak_threshold,
            None,
            "{off}"
        );
    }

    assert_eq!(
        env_ok(&[("DB_STATEMENT_TIMEOUT_MS", "5000")]).statement_timeout,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        env_ok(&[("DB_STATEMENT_TIMEOUT_MS", "1")]).statement_timeout,
        Some(Duration::from_millis(1))
    );
    for off in ["0", "off", "none"] {
        assert_eq!(
            env_ok(&[("DB_STATEMENT_TIMEOUT_MS", off)]).statement_timeout,
            None,
            "{off}"
        );
    }

    assert_eq!(
        env_ok(&[pg, ("DB_SSL_MODE", "require")]).ssl_mode,
        Some(SslMode::Require)
    );
    assert_eq!(
        env_ok(&[pg, ("DB_SSL_MODE", "VERIFY_IDENTITY")]).ssl_mode,
        Some(SslMode::VerifyFull)
    );
}

/// Each refused value: the message names the variable, the value and the accepted form.
#[test]
fn every_variable_refuses_bad_values_by_name() {
    let cases: &[(&str, &str, &str)] = &[
        ("DB_POOL_SIZE", "abc", "is not a whole number"),
        ("DB_POOL_SIZE", "-1", "is not a whole number"),
        ("DB_POOL_SIZE", "1.5", "is not a whole number"),
        ("DB_POOL_SIZE", "99999999999", "is not a whole number"),
        ("DB_POOL_SIZE", "0", "is below 1"),
        ("DB_MAX_OVERFLOW", "ten", "is not a whole number"),
        ("DB_MAX_OVERFLOW", "-3", "is not a whole number"),
        (
            "DB_POOL_TIMEOUT",
            "abc",
            "is not a duration: use seconds (30) or a number with a unit (500ms, 30s, 5m",
        ),
        ("DB_POOL_TIMEOUT", "0", "is zero"),
        ("DB_POOL_TIMEOUT", "-5s", "is negative"),
        ("DB_POOL_TIMEOUT", "5 minutes", "is not a duration"),
        ("DB_POOL_TIMEOUT", "9000h", "longer than a year"),
        (
            "DB_POOL_TIMEOUT",
            "99999999999999999999999999h",
            "is too long",
        ),
        ("DB_POOL_IDLE_TIMEOUT", "soon", "is not a duration"),
        ("DB_POOL_IDLE_TIMEOUT", "0ms", "is zero"),
        ("DB_CONNECT_TIMEOUT", "10x", "is not a duration"),
        ("DB_CONNECT_TIMEOUT", "0", "is zero"),
        ("DB_POOL_RECYCLE", "never", "off, none, 0 or -1"),
        ("DB_POOL_RECYCLE", "-2", "is negative"),
        ("DB_POOL_RECYCLE", "400d", "is not a duration"),
        ("DB_IDLE_PING", "fast", "is not a duration"),
        ("DB_IDLE_PING", "-1", "is negative"),
        ("DB_LEAK_THRESHOLD", "1 hour", "is not a duration"),
        (
            "DB_STATEMENT_TIMEOUT_MS",
            "5s",
            "is not a whole number of milliseconds",
        ),
        (
            "DB_STATEMENT_TIMEOUT_MS",
            "-1",
            "is not a whole number of milliseconds",
        ),
        (
            "DB_STATEMENT_TIMEOUT_MS",
            "1.5",
            "is not a whole number of milliseconds",
        ),
        (
            "DB_STATEMENT_TIMEOUT_MS",
            "3000000000",
            "largest statement timeout",
        ),
        (
            "DB_SSL_MODE",
            "maybe",
            "is not an ssl mode: use disable, allow, prefer, require, verify-ca or verify-full",
        ),
    ];
    let pg = ("DATABASE_URL", "postgres://postgres@127.0.0.1/test");
    for (name, value, expected) in cases {
        let err = env_err(&[pg, (name, value)]);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{name}={value} ")),
            "{message}"
        );
        assert!(
            message.contains(expected),
            "{name}={value}: `{message}` should contain `{expected}`"
        );
        assert_eq!(err.variable(), Some(*name), "{message}");
    }
}

#[test]
fn empty_values_are_errors_not_defaults() {
    for name in [
        "DATABASE_URL",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_POOL_TIMEOUT",
        "DB_POOL_RECYCLE",
        "DB_POOL_IDLE_TIMEOUT",
        "DB_CONNECT_TIMEOUT",
        "DB_STATEMENT_TIMEOUT_MS",
        "DB_IDLE_PING",
        "DB_LEAK_THRESHOLD",
        "DB_SSL_MODE",
    ] {
        for empty in ["", "  "] {
            let err = env_err(&[(name, empty)]);
            assert_eq!(
                err.to_string(),
                format!("{name} is set but empty: give it a value, or unset it to use the default")
            );
            assert_eq!(err.variable(), Some(name));
        }
    }
}

#[test]
fn env_ssl_mode_overrides_the_url_with_a_note() {
    let config = env_ok(&[
        ("DATABASE_URL", "postgres://app@db/app?sslmode=require"),
        ("DB_SSL_MODE", "verify-full"),
    ]);
    assert_eq!(config.ssl_mode, Some(SslMode::VerifyFull));
    let notes = config
        .normalizations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        notes.contains("DB_SSL_MODE=verify-full overrides the ssl mode require"),
        "{notes}"
    );

    // Agreeing values add no override note.
    let same = env_ok(&[
        ("DATABASE_URL", "postgres://app@db/app?sslmode=require"),
        ("DB_SSL_MODE", "REQUIRED"),
    ]);
    assert!(
        !same
            .normalizations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            .contains("overrides")
    );
}

#[test]
fn env_ssl_mode_on_sqlite_is_noted_or_refused() {
    let config = env_ok(&[("DB_SSL_MODE", "disable")]);
    assert_eq!(config.ssl_mode, None);
    assert!(
        config
            .normalizations
            .iter()
            .any(|n| n.to_string().contains("SSL does not apply to SQLite"))
    );

    let err = env_err(&[
        ("DATABASE_URL", "sqlite::memory:"),
        ("DB_SSL_MODE", "verify-full"),
    ]);
    assert!(
        err.to_string()
            .starts_with("DB_SSL_MODE=verify-full asks for TLS"),
        "{err}"
    );
    assert_eq!(err.variable(), Some("DB_SSL_MODE"));
}

#[test]
fn cross_field_checks_run_on_environment_values() {
    let message = env_err(&[("DB_IDLE_PING", "2h")]).to_string();
    assert!(
        message.contains("idle_ping (2h) must be shorter than pool_recycle (30m)"),
        "{message}"
    );
    assert!(
        message.contains("DB_IDLE_PING") && message.contains("DB_POOL_RECYCLE"),
        "{message}"
    );
    // Without recycling, a long ping threshold is fine.
    assert_eq!(
        env_ok(&[("DB_IDLE_PING", "2h"), ("DB_POOL_RECYCLE", "off")]).idle_ping,
        Duration::from_secs(7200)
    );

    let message = env_err(&[("DB_POOL_SIZE", "4294967295"), ("DB_MAX_OVERFLOW", "1")]).to_string();
    assert!(message.contains("does not fit"), "{message}");
}

/// A change that makes a valid configuration invalid.
type Mutation = fn(&mut DbConfig);

// ----- validate --------------------------------------------------------------------------------

#[test]
fn validate_refuses_unusable_settings() {
    let base = DbConfig::new("postgres://u:pw@h/db").expect("valid");
    let refused: &[(&str, Mutation)] = &[
        ("pool_size = 0 is below 1", |c| c.pool_size = 0),
        ("does not fit in a u32", |c| c.max_overflow = u32::MAX),
        ("pool_timeout = 0s is zero", |c| {
            c.pool_timeout = Duration::ZERO
        }),
        ("connect_timeout = 0s is zero", |c| {
            c.connect_timeout = Duration::ZERO
        }),
        ("idle_timeout = 0s is zero", |c| {
            c.idle_timeout = Duration::ZERO
        }),
        ("pool_recycle = 0s is zero: use None", |c| {
            c.pool_recycle = Some(Duration::ZERO)
        }),
        ("leak_threshold = 0s is zero: use None", |c| {
            c.leak_threshold = Some(Duration::ZERO)
        }),
        ("longer than a year", |c| c.pool_timeout = Duration::MAX),
        ("idle_ping = ", |c| {
            c.pool_recycle = None;
            c.idle_ping = Duration::from_secs(400 * 86_400);
        }),
        ("below one millisecond", |c| {
            c.statement_timeout = Some(Duration::from_micros(500))
        }),
        ("largest statement timeout", |c| {
            c.statement_timeout = Some(Duration::from_secs(30 * 86_400));
        }),
        ("must be shorter than pool_recycle", |c| {
            c.idle_ping = Duration::from_secs(1800)
        }),
    ];
    for &(expected, mutate) in refused {
        let mut config = base.clone();
        mutate(&mut config);
        let message = config.validate().expect_err(expected).to_string();
        assert!(
            message.contains(expected),
            "`{message}` should contain `{expected}`"
        );
        assert_hidden("validate", &message, "pw@");
    }

    let mut sqlite = DbConfig::new("sqlite::memory:").expect("valid");
    sqlite.ssl_mode = Some(SslMode::Disable);
    let message = sqlite.validate().expect_err("ssl on sqlite").to_string();
    assert!(
        message.contains("SSL does not apply to SQLite"),
        "{message}"
    );

    let mut fine = base.clone();
    fine.idle_ping = Duration::ZERO;
    fine.statement_timeout = Some(Duration::from_millis(1));
    fine.pool_recycle = None;
    fine.leak_threshold = None;
    fine.max_overflow = 0;
    fine.pool_size = 1;
    fine.validate().expect("minimal settings are valid");
}

// ----- parse_duration --------------------------------------------------------------------------

#[test]
fn parse_duration_grammar() {
    for (text, expected) in [
        ("0", Duration::ZERO),
        ("30", Duration::from_secs(30)),
        ("30s", Duration::from_secs(30)),
        (" 30s ", Duration::from_secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        ("1.5", Duration::from_millis(1500)),
        ("0.25m", Duration::from_secs(15)),
        ("1.5ms", Duration::from_micros(1500)),
        ("2.000000001s", Duration::new(2, 1)),
        ("0.1h", Duration::from_secs(360)),
        ("10 ms", Duration::from_millis(10)),
    ] {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
    for bad in [
        "", "abc", "s", "1.", ".5s", "1..5s", "1e3", "+5", "5S", "5 sec", "5d", "1h30m", "--1",
    ] {
        let err = parse_duration(bad).expect_err(bad).to_string();
        assert!(
            err.starts_with(&format!("`{bad}` is not a duration")),
            "{err}"
        );
        assert!(err.contains("500ms, 30s, 5m"), "{err}");
    }
    assert!(
        parse_duration("-5s")
            .expect_err("negative")
            .to_string()
            .contains("is negative")
    );
    assert!(
        parse_duration("18446744073709551616s")
            .expect_err("huge")
            .to_string()
            .contains("is too long")
    );
    assert!(
        parse_duration(&"9".repeat(60))
            .expect_err("huge")
            .to_string()
            .contains("is too long")
    );
}

#[test]
fn config_error_can_be_boxed_and_sent() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let err = ConfigError::new("pool_size must be positive");
    assert_error(&err);
    assert_eq!(err.to_string(), "pool_size must be positive");
    assert_eq!(err.message(), "pool_size must be positive");
    assert_eq!(err.variable(), None);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert!(boxed.to_string().contains("pool_size"));
}

#[test]
fn slow_statement_and_trace_sql_come_from_the_environment() {
    let defaults = env_ok(&[]);
    assert_eq!(defaults.slow_statement, None, "off by default");
    assert!(!defaults.trace_sql, "SQL stays out of traces by default");
    assert_eq!(
        env_ok(&[("DB_SLOW_STATEMENT", "200ms")]).slow_statement,
        Some(Duration::from_millis(200))
    );
    assert_eq!(
        env_ok(&[("DB_SLOW_STATEMENT", "2")]).slow_statement,
        Some(Duration::from_secs(2))
    );
    for off in ["off", "none", "0"] {
        assert_eq!(
            env_ok(&[("DB_SLOW_STATEMENT", off)]).slow_statement,
            None,
            "{off}"
        );
    }
    let err = env_err(&[("DB_SLOW_STATEMENT", "fast")]).to_string();
    assert!(
        err.contains("DB_SLOW_STATEMENT") && err.contains("fast"),
        "names the variable and the value: {err}"
    );
    for yes in ["true", "1", "on", "TRUE"] {
        assert!(env_ok(&[("DB_TRACE_SQL", yes)]).trace_sql, "{yes}");
    }
    for no in ["false", "0", "off"] {
        assert!(!env_ok(&[("DB_TRACE_SQL", no)]).trace_sql, "{no}");
    }
    let err = env_err(&[("DB_TRACE_SQL", "maybe")]).to_string();
    assert!(
        err.contains("DB_TRACE_SQL") && err.contains("maybe"),
        "names the variable and the value: {err}"
    );
    let shown = env_ok(&[("DB_SLOW_STATEMENT", "250ms"), ("DB_TRACE_SQL", "true")]).to_string();
    assert!(
        shown.contains("slow_statement=250ms") && shown.contains("trace_sql=true"),
        "{shown}"
    );
}
