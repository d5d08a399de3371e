//! The kinds of setting value: how each is read from the environment, range-checked and shown.
//!
//! A row of the settings table (`settings.rs`) names one of these kinds; a new kind of value
//! (a list of URLs, an enum) is a new type implementing [`Kind`] here.

use std::fmt;
use std::time::Duration;

use super::backend::Backend;
use super::ssl::{SSL_MODES, SslMode};
use crate::duration::{DurationProblem, duration_from, format_duration};

/// The longest duration any setting accepts. Longer values are almost certainly typos, and
/// durations near `Duration::MAX` make `Instant + Duration` overflow inside pool code.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest statement timeout in milliseconds: PostgreSQL's `statement_timeout` is an `int4`.
const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Why a setting's value cannot be used. `Display` is phrased to follow the quoted value:
/// `DB_POOL_SIZE=0 is below 1: …` or `pool_size = 0 is below 1: …`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Not a duration.
    Duration(DurationProblem),
    /// Not a duration, for a setting that can also be turned off.
    DurationOrOff(DurationProblem),
    /// Not a whole number that fits in a `u32`.
    NotCount,
    /// A count below the setting's minimum.
    BelowMin(u32),
    /// Zero, where a positive duration is needed.
    Zero,
    /// `Some(zero)`, where `None` is how the setting is turned off.
    ZeroUseOff,
    /// Longer than [`MAX_SETTING`].
    LongerThanAYear,
    /// Not a whole number of milliseconds.
    NotMillis,
    /// A statement timeout databases would round to zero.
    BelowMillisecond,
    /// A statement timeout above [`MAX_STATEMENT_TIMEOUT_MS`].
    AboveStatementMax,
    /// Not an SSL mode name.
    NotSslMode,
    /// A TLS mode for SQLite.
    TlsOnSqlite,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Duration(problem) => write!(f, "{problem}"),
            Problem::DurationOrOff(problem) => {
                write!(f, "{problem}; or off, none, 0 or -1 to turn it off")
            }
            Problem::NotCount => write!(
                f,
                "is not a whole number: use a count from 0 to {} such as 10",
                u32::MAX
            ),
            Problem::BelowMin(min) => write!(f, "is below {min}: use {min} or more"),
            Problem::Zero => f.write_str("is zero: use a positive duration such as 30s"),
            Problem::ZeroUseOff => f.write_str("is zero: use None to turn it off"),
            Problem::LongerThanAYear => {
                f.write_str("is longer than a year: use a shorter duration")
            }
            Problem::NotMillis => f.write_str(
                "is not a whole number of milliseconds: use for example 5000 for five seconds, \
                 or 0 for no timeout",
            ),
            Problem::BelowMillisecond => f.write_str(
                "is below one millisecond, which databases round to zero (no timeout): use at \
                 least 1ms, or turn the timeout off",
            ),
            Problem::AboveStatementMax => write!(
                f,
                "exceeds {MAX_STATEMENT_TIMEOUT_MS} ms, the largest statement timeout PostgreSQL \
                 accepts: use a shorter one, or turn it off"
            ),
            Problem::NotSslMode => write!(f, "is not an ssl mode: {SSL_MODES}"),
            Problem::TlsOnSqlite => f.write_str(
                "asks for TLS, but the database is SQLite, an embedded file with no network \
                 connection: unset it or point DATABASE_URL at a server",
            ),
        }
    }
}

/// What an environment value may need to know about the rest of the configuration.
pub(crate) struct EnvContext<'a> {
    /// The database family of the URL.
    pub(crate) backend: Backend,
    /// The variable, e.g. `DB_SSL_MODE`.
    pub(crate) name: &'static str,
    /// Its value as written.
    pub(crate) value: &'a str,
    /// Where to add a sentence about an adjustment, for the startup log.
    pub(crate) notes: &'a mut Vec<String>,
}

/// How one kind of setting value is read, checked and shown.
pub(crate) trait Kind {
    /// The field's type.
    type Value;
    /// Reads the value from the text of an environment variable (or the table's default).
    fn parse(text: &str) -> Result<Self::Value, Problem>;
    /// The range check, run once on every value, whatever its source.
    fn check(value: &Self::Value) -> Result<(), Problem>;
    /// The value in the grammar `parse` reads, for `Display` and error messages.
    fn show(value: &Self::Value) -> String;
    /// Adjusts a value read from the environment to the rest of the configuration; `current`
    /// is what the field held before (the default, or what the URL said).
    fn from_env(
        parsed: Self::Value,
        _current: &Self::Value,
        _env: &mut EnvContext<'_>,
    ) -> Result<Self::Value, Problem> {
        Ok(parsed)
    }
}

/// A whole number of at least `MIN`.
#[derive(Debug)]
pub(crate) struct Count<const MIN: u32>;

impl<const MIN: u32> Kind for Count<MIN> {
    type Value = u32;
    fn parse(text: &str) -> Result<u32, Problem> {
        text.trim().parse().map_err(|_| Problem::NotCount)
    }
    fn check(value: &u32) -> Result<(), Problem> {
        if *value < MIN {
            return Err(Problem::BelowMin(MIN));
        }
        Ok(())
    }
    fn show(value: &u32) -> String {
        value.to_string()
    }
}

/// Checks that a duration is at most [`MAX_SETTING`].
fn check_bounded(duration: Duration) -> Result<(), Problem> {
    if duration > MAX_SETTING {
        return Err(Problem::LongerThanAYear);
    }
    Ok(())
}

/// A positive duration.
#[derive(Debug)]
pub(crate) struct Positive;

impl Kind for Positive {
    type Value = Duration;
    fn parse(text: &str) -> Result<Duration, Problem> {
        duration_from(text).map_err(Problem::Duration)
    }
    fn check(value: &Duration) -> Result<(), Problem> {
        if value.is_zero() {
            return Err(Problem::Zero);
        }
        check_bounded(*value)
    }
    fn show(value: &Duration) -> String {
        format_duration(*value)
    }
}

/// A duration, zero included.
#[derive(Debug)]
pub(crate) struct Bounded;

impl Kind for Bounded {
    type Value = Duration;
    fn parse(text: &str) -> Result<Duration, Problem> {
        duration_from(text).map_err(Problem::Duration)
    }
    fn check(value: &Duration) -> Result<(), Problem> {
        check_bounded(*value)
    }
    fn show(value: &Duration) -> String {
        format_duration(*value)
    }
}

/// Whether a value turns an optional setting off.
fn is_off(value: &str) -> bool {
    let value = value.trim();
    ["off", "none", "-1"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}

/// An optional duration: `off`, `none`, `-1` or a zero duration turn the setting off (`None`).
#[derive(Debug)]
pub(crate) struct OffOrDuration;

impl Kind for OffOrDuration {
    type Value = Option<Duration>;
    fn parse(text: &str) -> Result<Option<Duration>, Problem> {
        if is_off(text) {
            return Ok(None);
        }
        let duration = duration_from(text).map_err(Problem::DurationOrOff)?;
        Ok((!duration.is_zero()).then_some(duration))
    }
    fn check(value: &Option<Duration>) -> Result<(), Problem> {
        match value {
            Some(duration) if duration.is_zero() => Err(Problem::ZeroUseOff),
            Some(duration) => check_bounded(*duration),
            None => Ok(()),
        }
    }
    fn show(value: &Option<Duration>) -> String {
        value.map_or_else(|| "off".to_owned(), format_duration)
    }
}

/// A statement timeout in whole milliseconds, as databases take it; `0`, `off` or `none` for
/// none.
#[derive(Debug)]
pub(crate) struct Millis;

impl Kind for Millis {
    type Value = Option<Duration>;
    fn parse(text: &str) -> Result<Option<Duration>, Problem> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let millis: u64 = trimmed.parse().map_err(|_| Problem::NotMillis)?;
        Ok((millis != 0).then(|| Duration::from_millis(millis)))
    }
    fn check(value: &Option<Duration>) -> Result<(), Problem> {
        let Some(duration) = value else {
            return Ok(());
        };
        if *duration < Duration::from_millis(1) {
            return Err(Problem::BelowMillisecond);
        }
        if duration.as_millis() > MAX_STATEMENT_TIMEOUT_MS {
            return Err(Problem::AboveStatementMax);
        }
        Ok(())
    }
    fn show(value: &Option<Duration>) -> String {
        OffOrDuration::show(value)
    }
}

/// An SSL mode; `default` (and the table's default) leave the URL's mode or the driver's.
#[derive(Debug)]
pub(crate) struct Ssl;

impl Kind for Ssl {
    type Value = Option<SslMode>;
    fn parse(text: &str) -> Result<Option<SslMode>, Problem> {
        if text.trim().eq_ignore_ascii_case("default") {
            return Ok(None);
        }
        SslMode::parse(text).map(Some).ok_or(Problem::NotSslMode)
    }
    fn check(_value: &Option<SslMode>) -> Result<(), Problem> {
        // SQLite is checked against the URL in `DbConfig::validate`.
        Ok(())
    }
    fn show(value: &Option<SslMode>) -> String {
        value.map_or("default", SslMode::as_str).to_owned()
    }
    /// `DB_SSL_MODE` overrides the URL's mode with a note; on SQLite it is noted and ignored, or
    /// refused when it asks for TLS.
    fn from_env(
        parsed: Option<SslMode>,
        current: &Option<SslMode>,
        env: &mut EnvContext<'_>,
    ) -> Result<Option<SslMode>, Problem> {
        let Some(mode) = parsed else {
            return Ok(*current);
        };
        let (name, value) = (env.name, env.value);
        if env.backend == Backend::Sqlite {
            if mode.requires_tls() {
                return Err(Problem::TlsOnSqlite);
            }
            env.notes.push(format!(
                "ignored {name}={value}: SSL does not apply to SQLite"
            ));
            return Ok(None);
        }
        if let Some(from_url) = current
            && *from_url != mode
        {
            env.notes.push(format!(
                "{name}={value} overrides the ssl mode {from_url} given in DATABASE_URL"
            ));
        }
        Ok(Some(mode))
    }
}
