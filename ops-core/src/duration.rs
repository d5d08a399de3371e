//! The duration grammar every setting and macro attribute uses: `30`, `500ms`, `30s`, `5m`, `1h`,
//! `1.5s`.
//!
//! This module uses `std` only and is compiled even without the `runtime` feature, so `ops-derive`
//! checks attribute values with exactly the grammar the runtime reads, without building tokio,
//! url or tracing into every proc-macro build.

use std::fmt;
use std::time::Duration;

/// What a duration error suggests instead.
pub const DURATION_FORM: &str =
    "use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; fractions such as 1.5s work)";

/// Why a text is not a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurationProblem {
    /// The text does not follow the grammar (`abc`, `5 minutes`, `1.`).
    Malformed,
    /// The number is negative (`-5s`).
    Negative,
    /// The duration does not fit in a `std::time::Duration`.
    TooLong,
}

impl fmt::Display for DurationProblem {
    /// A reason phrased to follow the quoted value: ``"`abc` is not a duration: use …"``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationProblem::Malformed => write!(f, "is not a duration: {DURATION_FORM}"),
            DurationProblem::Negative => write!(f, "is negative: {DURATION_FORM}"),
            DurationProblem::TooLong => {
                f.write_str("is too long: use at most a year's worth of time")
            }
        }
    }
}

/// A text that is not a duration: the text, and why.
///
/// `Display` quotes the text and shows the accepted forms, e.g. ``"`abc` is not a duration: use
/// seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; …)"``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    problem: DurationProblem,
}

impl DurationError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was refused.
    pub fn problem(&self) -> DurationProblem {
        self.problem
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.input, self.problem)
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
/// use ops_core::duration::{DurationProblem, parse_duration};
///
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert_eq!(parse_duration("abc").unwrap_err().problem(), DurationProblem::Malformed);
/// ```
///
/// # Errors
///
/// A [`DurationError`] naming the input and the [`DurationProblem`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    duration_from(s).map_err(|problem| DurationError {
        input: s.to_owned(),
        problem,
    })
}

/// Parses a duration, returning only the problem: callers that quote the input their own way
/// (an environment variable, an attribute) use this.
pub fn duration_from(text: &str) -> Result<Duration, DurationProblem> {
    let malformed = DurationProblem::Malformed;
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('-') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(DurationProblem::Negative);
        }
        return Err(malformed);
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
        _ => return Err(malformed),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed);
    }
    let too_long = DurationProblem::TooLong;
    let whole: u128 = whole.parse().map_err(|_| too_long)?;
    // Digits past the eighteenth are worth far less than a nanosecond even in hours, so they are
    // dropped; that also keeps the arithmetic below within `u128`.
    let fraction_digits = &fraction[..fraction.len().min(18)];
    let fraction_nanos = if fraction_digits.is_empty() {
        0
    } else {
        let numerator: u128 = fraction_digits.parse().map_err(|_| malformed)?;
        let denominator = 10u128.pow(u32::try_from(fraction_digits.len()).unwrap_or(18));
        numerator * nanos_per_unit / denominator
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|nanos| nanos.checked_add(fraction_nanos))
        .ok_or(too_long)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long)?;
    // The remainder is below 10^9, so it always fits.
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration in the largest unit that shows it exactly, in [`parse_duration`]'s grammar
/// (sub-millisecond durations fall back to `Debug`, `1.5ms`).
///
/// ```
/// use std::time::Duration;
/// use ops_core::duration::format_duration;
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
    fn errors_quote_the_input_and_name_the_problem() {
        let err = parse_duration("abc").unwrap_err();
        assert_eq!(err.input(), "abc");
        assert_eq!(err.problem(), DurationProblem::Malformed);
        assert!(
            err.to_string()
                .starts_with("`abc` is not a duration: use seconds")
        );
        assert_eq!(
            parse_duration("-5s").unwrap_err().problem(),
            DurationProblem::Negative
        );
        assert_eq!(
            parse_duration("18446744073709551616s")
                .unwrap_err()
                .problem(),
            DurationProblem::TooLong
        );
    }
}
