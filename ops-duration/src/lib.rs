//! The duration grammar of ops: `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `1.5s`.
//!
//! The runtime reads its duration settings with [`parse_duration`] and prints them with
//! [`format_duration`]; the macros check attribute values such as `timeout = "5s"` with the same
//! function at compile time. The crate has no dependencies, so the proc-macro crate that uses it
//! compiles nothing else for it.

#![warn(missing_docs)]

use std::fmt;
use std::time::Duration;

/// What a duration error suggests instead, as a literal so that `concat!` can build the
/// reasons at compile time.
macro_rules! duration_form {
    () => {
        "use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; fractions such as 1.5s work)"
    };
}

/// Why a text is not a duration.
///
/// `Display` quotes the input and shows the accepted forms, e.g. ``"`abc` is not a duration: use
/// seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; …)"``; [`DurationError::reason`] is
/// the same sentence without the quoted input, for messages that quote it their own way.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a number with an optional unit.
    Malformed {
        /// The text as given.
        input: String,
    },
    /// A negative number.
    Negative {
        /// The text as given.
        input: String,
    },
    /// More seconds than a `Duration` holds.
    TooLong {
        /// The text as given.
        input: String,
    },
}

impl DurationError {
    /// The text that was refused, as given.
    pub fn input(&self) -> &str {
        match self {
            DurationError::Malformed { input }
            | DurationError::Negative { input }
            | DurationError::TooLong { input } => input,
        }
    }

    /// Why, phrased to follow the quoted input: `is not a duration: use …`.
    pub fn reason(&self) -> &'static str {
        match self {
            DurationError::Malformed { .. } => concat!("is not a duration: ", duration_form!()),
            DurationError::Negative { .. } => concat!("is negative: ", duration_form!()),
            DurationError::TooLong { .. } => "is too long: use at most a year's worth of time",
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.input(), self.reason())
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration: a non-negative decimal number and an optional unit.
///
/// Without a unit the number is seconds. Units are `ms`, `s`, `m` and `h`; a space may separate
/// number and unit, and surrounding whitespace is ignored. Fractions are exact to the nanosecond:
/// `1.5s` is 1500 milliseconds.
///
/// ```
/// use std::time::Duration;
/// use ops_duration::parse_duration;
///
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert!(parse_duration("abc").is_err());
/// ```
///
/// # Errors
///
/// A [`DurationError`] that quotes the input and shows the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = || s.to_owned();
    let malformed = || DurationError::Malformed { input: input() };
    let too_long = || DurationError::TooLong { input: input() };
    let text = s.trim();
    if let Some(rest) = text.strip_prefix('-') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(DurationError::Negative { input: input() });
        }
        return Err(malformed());
    }
    let number_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let nanos_per_unit: u128 = match unit.trim_start() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(malformed()),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    // Digits past the eighteenth are worth far less than a nanosecond even in hours, so they are
    // dropped; that also keeps the arithmetic below within `u128`.
    let fraction_digits = &fraction[..fraction.len().min(18)];
    let fraction_nanos = if fraction_digits.is_empty() {
        0
    } else {
        let numerator: u128 = fraction_digits.parse().map_err(|_| malformed())?;
        let denominator = 10u128.pow(u32::try_from(fraction_digits.len()).unwrap_or(18));
        numerator * nanos_per_unit / denominator
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|nanos| nanos.checked_add(fraction_nanos))
        .ok_or_else(too_long)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    // The remainder is below 10^9, so it always fits.
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration in the largest unit that shows it exactly, in [`parse_duration`]'s grammar
/// (`0s`, `500ms`, `30s`, `5m`, `2h`); a duration with a part below a millisecond is shown as
/// `Debug` shows it (`1.5ms`), which the grammar reads back too.
///
/// ```
/// use std::time::Duration;
/// use ops_duration::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if !nanos.is_multiple_of(1_000_000) {
        return format!("{duration:?}");
    }
    let millis = nanos / 1_000_000;
    if millis.is_multiple_of(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_duration_uses_the_largest_exact_unit() {
        for (duration, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(1800), "30m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_micros(1500), "1.5ms"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text} reads back");
        }
    }

    #[test]
    fn errors_quote_the_input_and_name_the_form() {
        let err = parse_duration("abc").unwrap_err();
        assert_eq!(
            err,
            DurationError::Malformed {
                input: "abc".into()
            }
        );
        assert_eq!(
            err.to_string(),
            concat!("`abc` is not a duration: ", duration_form!())
        );
        assert_eq!(err.input(), "abc");
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_duration(&"9".repeat(60)),
            Err(DurationError::TooLong { .. })
        ));
        fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
        assert_error(&err);
    }
}
