//! The duration grammar of every setting (`30`, `500ms`, `30s`, `5m`, `1h`, `1.5s`), its
//! formatting, and the range checks durations share.

use std::time::Duration;

/// The longest duration any setting accepts. Longer values are almost certainly typos, and
/// durations near `Duration::MAX` make `Instant + Duration` overflow inside pool code.
pub(super) const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest statement timeout in milliseconds: PostgreSQL's `statement_timeout` is an `int4`.
pub(super) const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// What a duration error suggests instead.
pub(super) const DURATION_FORM: &str =
    "use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; fractions such as 1.5s work)";

/// Parses a duration: a non-negative decimal number and an optional unit.
///
/// Without a unit the number is seconds. Units are `ms`, `s`, `m` and `h`; a space may separate
/// number and unit, and surrounding whitespace is ignored. Fractions are exact to the nanosecond:
/// `1.5s` is 1500 milliseconds.
///
/// ```
/// use std::time::Duration;
/// use ops_core::config::parse_duration;
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
/// A message that quotes the input and shows the accepted forms, e.g. ``"`abc` is not a
/// duration: use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; …)"``.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_from(s).map_err(|reason| format!("`{s}` {reason}"))
}

/// Parses a duration; the error is a reason phrased to follow the quoted input.
pub(super) fn duration_from(text: &str) -> Result<Duration, String> {
    let malformed = || format!("is not a duration: {DURATION_FORM}");
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('-') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("is negative: {DURATION_FORM}"));
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
    let too_long = || "is too long: use at most a year's worth of time".to_owned();
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

/// Formats a duration in the largest unit that shows it exactly, in [`parse_duration`]'s grammar.
pub(super) fn format_duration(duration: Duration) -> String {
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

/// Formats an optional duration, `off` for `None`.
pub(super) fn format_optional(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "off".to_owned(), format_duration)
}

// ---------------------------------------------------------------------------------------------
// Range checks shared by `validate` and the environment reader
// ---------------------------------------------------------------------------------------------

/// Checks a duration that must be positive; the error follows the quoted value.
pub(super) fn check_positive(duration: Duration) -> Result<(), String> {
    if duration.is_zero() {
        return Err("is zero: use a positive duration such as 30s".to_owned());
    }
    check_bounded(duration)
}

/// Checks that a duration is at most [`MAX_SETTING`].
pub(super) fn check_bounded(duration: Duration) -> Result<(), String> {
    if duration > MAX_SETTING {
        return Err("is longer than a year: use a shorter duration".to_owned());
    }
    Ok(())
}

/// Checks a statement timeout, which databases take in whole milliseconds.
pub(super) fn check_statement_timeout(duration: Duration) -> Result<(), String> {
    if duration < Duration::from_millis(1) {
        return Err(
            "is below one millisecond, which databases round to zero (no timeout): use \
                    at least 1ms, or turn the timeout off"
                .to_owned(),
        );
    }
    if duration.as_millis() > MAX_STATEMENT_TIMEOUT_MS {
        return Err(format!(
            "exceeds {MAX_STATEMENT_TIMEOUT_MS} ms, the largest statement timeout PostgreSQL \
             accepts: use a shorter one, or turn it off"
        ));
    }
    Ok(())
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
        assert_eq!(format_optional(None), "off");
    }
}
