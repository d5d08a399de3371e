//! The duration grammar of `ops_core::config::parse_duration`, for attribute values checked at
//! compile time: `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `1.5s`.
//!
//! A proc-macro crate cannot call into `ops-core` (it would have to depend on the runtime it
//! generates calls to), so the tiny grammar is repeated here; a unit test runs both parsers over
//! the same inputs and requires identical answers, messages included.

use std::time::Duration;

/// What a duration error suggests instead; the same words as `ops_core::config`.
const DURATION_FORM: &str =
    "use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; fractions such as 1.5s work)";

/// Parses a duration; the error quotes the input and shows the accepted forms.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_from(s).map_err(|reason| format!("`{s}` {reason}"))
}

fn duration_from(text: &str) -> Result<Duration, String> {
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
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    let too_long = || "is too long: use at most a year's worth of time".to_owned();
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    // Digits past the eighteenth are worth far less than a nanosecond even in hours.
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
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    /// Inputs covering every branch of the grammar, valid and not.
    const SAMPLES: &[&str] = &[
        "30",
        "30s",
        "500ms",
        "5m",
        "1h",
        "1.5s",
        "0.25ms",
        " 7 s ",
        "0",
        "0s",
        "2.",
        ".5",
        "",
        "-1",
        "-x",
        "abc",
        "5x",
        "5 min",
        "1.2.3s",
        "99999999999999999999999999999999999999999h",
        "18446744073709551616",
        "1.1234567890123456789012s",
        "3h",
    ];

    #[test]
    fn agrees_with_ops_core() {
        for sample in SAMPLES {
            assert_eq!(
                parse_duration(sample),
                ops_core::config::parse_duration(sample),
                "the macro and ops-core disagree on {sample:?}"
            );
        }
    }
}
