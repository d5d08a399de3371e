//! The settings table: every setting of [`DbConfig`](super::DbConfig), declared once.
//!
//! Each entry gives the field's doc, name and type, then:
//!
//! - `env`: the environment variable [`DbConfig::from_env`](super::DbConfig::from_env) reads;
//! - `setter`: the `DbBuilder` method in ops-sea: `set` takes the field's type, `some(T)` takes
//!   `T` and stores `Some`, `none` has no method (the builder has a hand-written one);
//! - `default`: the value for a URL (`|url| …` may read it), `=>` how the README and the docs
//!   show it;
//! - `parse`: the function that reads the variable's text, `=>` an optional step that reconciles
//!   it with the rest of the configuration;
//! - `check`: the setting's range (`checks.rs`), run on environment values as they are read and
//!   by `validate` on every value;
//! - `display`: whether `DbConfig`'s `Display` shows it (`always`, `if_set`, `never`);
//! - `form` and `readme`: what the docs and the README's configuration table say of it.
//!
//! From this one declaration `settings.rs` derives the field, its default, its environment
//! reading, its range check, its part of `Display` and its README row, and ops-sea derives the
//! builder method. Adding a setting is adding an entry here (and its README row, which a test
//! renders from the entry and looks for); settings that depend on each other are checked in
//! `DbConfig::validate`'s cross-field part.
//!
//! The order is the order of `Display` and of the README table.

/// Calls `$callback! { … }` with the settings table.
///
/// Hidden: ops-sea invokes it to write `DbBuilder`'s methods. Paths in the table are absolute
/// (`$crate::…`), so a callback in another crate can expand the types.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_setting {
    ($callback:ident) => {
        $callback! {
            /// Connections kept open even when idle (the pool's minimum).
            pool_size: u32 {
                env: "DB_POOL_SIZE",
                setter: set,
                default: |_| 10 => "10",
                parse: $crate::config::env::count,
                check: $crate::config::checks::pool_size,
                display: always,
                form: "whole number, at least 1",
                readme: "connections kept warm",
            }
            /// Connections opened beyond `pool_size` under load and closed after
            /// `idle_timeout`; the pool's maximum is `pool_size + max_overflow`.
            max_overflow: u32 {
                env: "DB_MAX_OVERFLOW",
                setter: set,
                default: |_| 10 => "10",
                parse: $crate::config::env::count,
                check: $crate::config::checks::any,
                display: always,
                form: "whole number",
                readme: "extra connections under burst, closed when idle",
            }
            /// How long a caller waits for a free connection before failing.
            pool_timeout: ::core::time::Duration {
                env: "DB_POOL_TIMEOUT",
                setter: set,
                default: |_| ::core::time::Duration::from_secs(30) => "30s",
                parse: $crate::config::env::duration,
                check: $crate::config::checks::positive,
                display: always,
                form: "duration",
                readme: "wait for a free connection, then `PoolExhausted`",
            }
            /// The age after which a connection is closed and replaced; `None` keeps
            /// connections forever. The default is below the idle cut-off of most proxies and
            /// firewalls.
            pool_recycle: ::core::option::Option<::core::time::Duration> {
                env: "DB_POOL_RECYCLE",
                setter: set,
                default: |_| ::core::option::Option::Some(
                    ::core::time::Duration::from_secs(30 * 60)
                ) => "30m",
                parse: $crate::config::env::optional_duration,
                check: $crate::config::checks::optional,
                display: always,
                form: "duration, or `off`",
                readme: "maximum connection age (`off` to disable)",
            }
            /// How long an overflow connection may sit idle before it is closed.
            idle_timeout: ::core::time::Duration {
                env: "DB_POOL_IDLE_TIMEOUT",
                setter: set,
                default: |_| ::core::time::Duration::from_secs(10 * 60) => "10m",
                parse: $crate::config::env::duration,
                check: $crate::config::checks::positive,
                display: always,
                form: "duration",
                readme: "how long an idle overflow connection stays open",
            }
            /// How long opening one connection (TCP, TLS and authentication) may take. It also
            /// bounds the pool's own round trips on a connection (the idle ping at checkout and
            /// the reset on return): a connection that does not answer them in time is closed.
            connect_timeout: ::core::time::Duration {
                env: "DB_CONNECT_TIMEOUT",
                setter: set,
                default: |_| ::core::time::Duration::from_secs(10) => "10s",
                parse: $crate::config::env::duration,
                check: $crate::config::checks::positive,
                display: always,
                form: "duration",
                readme: "bound on connecting at startup and in health checks",
            }
            /// The server-side limit on one statement, where the backend has one; `None` leaves
            /// the server's setting.
            statement_timeout: ::core::option::Option<::core::time::Duration> {
                env: "DB_STATEMENT_TIMEOUT_MS",
                setter: set,
                default: |_| ::core::option::Option::None => "none",
                parse: $crate::config::env::statement_timeout_ms,
                check: $crate::config::checks::statement_timeout,
                display: always,
                form: "whole milliseconds, `0` for none",
                readme: "server-side statement timeout (PostgreSQL, MySQL/MariaDB)",
            }
            /// A connection idle at least this long is pinged before it is handed out;
            /// connections used more recently are trusted. Zero pings on every checkout.
            idle_ping: ::core::time::Duration {
                env: "DB_IDLE_PING",
                setter: set,
                default: |_| ::core::time::Duration::from_millis(500) => "500ms",
                parse: $crate::config::env::duration,
                check: $crate::config::checks::bounded,
                display: always,
                form: "duration",
                readme: "ping only connections idle at least this long",
            }
            /// A session open longer than this is reported as a possible leak and warned about
            /// once; `None` disables the report.
            leak_threshold: ::core::option::Option<::core::time::Duration> {
                env: "DB_LEAK_THRESHOLD",
                setter: set,
                default: |_| ::core::option::Option::Some(
                    ::core::time::Duration::from_secs(60)
                ) => "60s",
                parse: $crate::config::env::optional_duration,
                check: $crate::config::checks::optional,
                display: always,
                form: "duration, or `off`",
                readme: "sessions open longer are reported and warned about once (`off` to disable)",
            }
            /// TLS mode; `None` leaves the driver's default. Always `None` for SQLite. The URL's
            /// `sslmode` (and the other spellings) sets it; the environment overrides the URL.
            ssl_mode: ::core::option::Option<$crate::config::SslMode> {
                env: "DB_SSL_MODE",
                setter: some($crate::config::SslMode),
                default: |url| url.ssl_mode() => "driver default",
                parse: $crate::config::env::ssl_mode => $crate::config::DbConfig::ssl_mode_from_env,
                check: $crate::config::checks::any,
                display: always,
                form: "an `SslMode` name",
                readme: "`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full` (MySQL names too); also read from `sslmode`/`ssl-mode` in the URL, which is removed from the URL the driver sees",
            }
            /// Which connections are checked for an open transaction when they go back to the
            /// pool: only those that ran raw SQL through the `Db` (the default), or every one.
            reset_check: $crate::config::ResetCheck {
                env: "DB_RESET_CHECK",
                setter: set,
                default: |_| $crate::config::ResetCheck::Auto => "`auto`",
                parse: $crate::config::env::reset_check,
                check: $crate::config::checks::any,
                display: always,
                form: "`auto` or `always`",
                readme: "which returned connections are checked for an open transaction (and rolled back): `auto` checks those that ran raw SQL through the `Db` and those released within 2 s of an abandoned call (a statement or `BEGIN` cut off by a timeout; nothing else can leave one open), `always` checks every release (one more round trip each), for code that runs raw SQL on `db.connection()` or the raw sqlx pool",
            }
            /// Run behind PgBouncer in this pooling mode (PostgreSQL only): no startup-packet
            /// parameters, unnamed statements inside transactions only, session state refused.
            /// `None` connects as to PostgreSQL itself. The URL's `?pgbouncer=true` sets it; the
            /// environment overrides the URL in both directions.
            pgbouncer: ::core::option::Option<$crate::config::PgBouncerMode> {
                env: "DB_PGBOUNCER",
                setter: set,
                default: |url| url.pgbouncer() => "off",
                parse: $crate::config::env::pgbouncer,
                check: $crate::config::checks::any,
                display: if_set,
                form: "`transaction` or `off`",
                readme: "`transaction` to run behind PgBouncer in transaction pooling mode (PostgreSQL); also `?pgbouncer=true` in the URL, which is removed from the URL the driver sees. See [Scaling out](#scaling-out)",
            }
            /// Read replicas: read-only sessions and `db.reader()` reads go to one of them when
            /// it is up and within `replica_max_lag`.
            replica_urls: ::std::vec::Vec<$crate::config::DatabaseUrl> {
                env: "DB_REPLICA_URLS",
                setter: none,
                default: |_| ::std::vec::Vec::new() => "none",
                parse: $crate::config::env::replica_urls,
                check: $crate::config::checks::any,
                display: never,
                form: "database urls, comma-separated",
                readme: "read replicas, comma-separated (`Db::builder(url).replica(url)`, repeatable); see [Scaling out](#scaling-out)",
            }
            /// A replica whose replay is further behind than this is skipped.
            replica_max_lag: ::core::time::Duration {
                env: "DB_REPLICA_MAX_LAG",
                setter: set,
                default: |_| ::core::time::Duration::from_secs(5) => "5s",
                parse: $crate::config::env::duration,
                check: $crate::config::checks::positive,
                display: never,
                form: "duration",
                readme: "a replica whose replay is further behind is skipped",
            }
            /// After a write through the `Db` (any statement run on the `Db` itself or a
            /// committed read-write session), reads stay on the primary this long, so a user
            /// reads what they just wrote; `None` routes them to replicas at once.
            read_after_write: ::core::option::Option<::core::time::Duration> {
                env: "DB_READ_AFTER_WRITE",
                setter: some(::core::time::Duration),
                default: |_| ::core::option::Option::None => "off",
                parse: $crate::config::env::optional_duration,
                check: $crate::config::checks::optional_or_zero,
                display: never,
                form: "duration, or `off`",
                readme: "after a write through the `Db`, keep reads on the primary this long (`read_after_write`)",
            }
            /// Connection-level failures in a row that open a pool's circuit breaker; `None`
            /// turns the breaker off.
            breaker_failures: ::core::option::Option<u32> {
                env: "DB_BREAKER_FAILURES",
                setter: set,
                default: |_| ::core::option::Option::Some(
                    $crate::breaker::BreakerConfig::DEFAULT_FAILURES
                ) => "5",
                parse: $crate::config::env::optional_count,
                check: $crate::config::checks::breaker_failures,
                display: never,
                form: "whole number, or `off`",
                readme: "connection-level failures in a row (within 60 s) that open a pool's circuit breaker (`off` to disable)",
            }
            /// How long an open circuit breaker refuses calls before it lets one probe through;
            /// `None` turns the breaker off.
            breaker_cooldown: ::core::option::Option<::core::time::Duration> {
                env: "DB_BREAKER_COOLDOWN",
                setter: set,
                default: |_| ::core::option::Option::Some(
                    $crate::breaker::BreakerConfig::DEFAULT_COOLDOWN
                ) => "5s",
                parse: $crate::config::env::optional_duration,
                check: $crate::config::checks::breaker_cooldown,
                display: never,
                form: "duration, or `off`",
                readme: "how long an open breaker fails calls at once before one probe (`off` to disable)",
            }
            /// A statement slower than this is logged once at `warn` (with its duration, the
            /// repository operation and entity, the session's name and origin, and its SQL
            /// without parameter values) and counted in the error stats; `None` turns the check
            /// off.
            slow_statement: ::core::option::Option<::core::time::Duration> {
                env: "DB_SLOW_STATEMENT",
                setter: set,
                default: |_| ::core::option::Option::None => "off",
                parse: $crate::config::env::optional_duration,
                check: $crate::config::checks::optional,
                display: if_set,
                form: "duration, or `off`",
                readme: "a statement slower than this (`200ms`) is logged once at warn with its duration, repository operation and entity, session name and origin, and SQL (never parameter values), and counted in `error_stats().slow_statements`; see [Monitoring](#monitoring)",
            }
            /// Whether statement spans carry the SQL text (`db.query.text`), never its parameter
            /// values. Off by default: SQL can name tables and columns an operator should not
            /// see in traces.
            trace_sql: bool {
                env: "DB_TRACE_SQL",
                setter: set,
                default: |_| false => "`false`",
                parse: $crate::config::env::switch,
                check: $crate::config::checks::any,
                display: if_set,
                form: "`true` or `false`",
                readme: "`true` puts each statement's SQL text (never its parameter values) in an `ops.statement` span as `db.query.text`",
            }
        }
    };
}
