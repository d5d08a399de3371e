//! SeaORM values in the text format of PostgreSQL's `COPY ... FROM STDIN`.
//!
//! Text, not binary: binary `COPY` needs every value in exactly its column's binary layout (an
//! `i32` field sent to a `bigint` column is a protocol error, sqlx's JSON encoding is `jsonb`'s),
//! while text goes through each column type's input function, the same conversion a literal in
//! an `INSERT` gets. What goes in is what SeaORM's `insert_many` binds:
//!
//! - a row is its fields separated by a tab and ended by a newline; `\N` is NULL;
//! - inside a field a backslash, tab, newline and carriage return are escaped (`\\`, `\t`, `\n`,
//!   `\r`); every other character, UTF-8 included, goes as it is (sqlx sets
//!   `client_encoding` to UTF8);
//! - floats are written in the shortest form that reads back to the same value, an `f32` through
//!   `f64` so that a `real` and a `double precision` column both get what a bound `float4` gives;
//!   `NaN` and the infinities by their PostgreSQL names;
//! - bytes in `bytea`'s hex form (`\x0aff`), JSON in its compact form;
//! - dates and times in ISO form (which no `DateStyle` reads otherwise), years before 1 with
//!   `BC`, fractions truncated to microseconds as sqlx does; a date-time with an offset is
//!   written in UTC with `+00`, which a `timestamp` column reads as sqlx's binding arrives there
//!   under the `TimeZone` of `UTC` sqlx sets on every connection;
//! - arrays as array literals (`{"a","b\"c",NULL}`), every element quoted, nested arrays nested.
//!
//! A value type this file does not know (one a feature of sea-query enables beyond what ops is
//! built with) is reported as [`Unsupported`], and the load then runs as multi-row inserts.

use std::fmt::Write as _;

use sea_orm::Value;
use sea_orm::sea_query::value::prelude::chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
};
use sea_orm::sea_query::{OptionEnum, value::prelude::chrono};

/// A value of a type the text encoding does not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// Appends one row: the fields of `values` separated by tabs, then a newline.
pub(crate) fn encode_row<'a>(
    values: impl IntoIterator<Item = &'a Value>,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        encode_field(value, out)?;
    }
    out.push(b'\n');
    Ok(())
}

/// Appends one field: `\N` for NULL, otherwise the value's text with `COPY`'s escapes.
pub(crate) fn encode_field(value: &Value, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    // The common types go straight into `out`: their text needs no escaping, or (strings) only
    // the escaping, so no intermediate string is built per field.
    use std::io::Write as _;
    let written = match value {
        Value::String(Some(x)) => {
            escape_into(x, out);
            true
        }
        Value::Int(Some(x)) => write!(out, "{x}").is_ok(),
        Value::BigInt(Some(x)) => write!(out, "{x}").is_ok(),
        Value::SmallInt(Some(x)) => write!(out, "{x}").is_ok(),
        Value::Bool(Some(x)) => {
            out.push(if *x { b't' } else { b'f' });
            true
        }
        _ => false,
    };
    if written {
        return Ok(());
    }
    let mut text = String::new();
    if !literal(value, &mut text)? {
        out.extend_from_slice(b"\\N");
        return Ok(());
    }
    escape_into(&text, out);
    Ok(())
}

/// `COPY`'s text escapes: backslash, tab, newline and carriage return.
fn escape_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(escaped);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes the text PostgreSQL reads `value` from into `out`; `false` (and nothing written) for
/// NULL.
fn literal(value: &Value, out: &mut String) -> Result<bool, Unsupported> {
    // Writing to a `String` cannot fail.
    macro_rules! put {
        ($v:expr, |$x:ident| $body:expr) => {
            match $v {
                Some($x) => {
                    let _ = $body;
                    Ok(true)
                }
                None => Ok(false),
            }
        };
    }
    match value {
        Value::Bool(v) => put!(v, |x| out.push_str(if *x { "t" } else { "f" })),
        Value::TinyInt(v) => put!(v, |x| write!(out, "{x}")),
        Value::SmallInt(v) => put!(v, |x| write!(out, "{x}")),
        Value::Int(v) => put!(v, |x| write!(out, "{x}")),
        Value::BigInt(v) => put!(v, |x| write!(out, "{x}")),
        Value::TinyUnsigned(v) => put!(v, |x| write!(out, "{x}")),
        Value::SmallUnsigned(v) => put!(v, |x| write!(out, "{x}")),
        Value::Unsigned(v) => put!(v, |x| write!(out, "{x}")),
        Value::BigUnsigned(v) => put!(v, |x| write!(out, "{x}")),
        Value::Float(v) => put!(v, |x| float(f64::from(*x), out)),
        Value::Double(v) => put!(v, |x| float(*x, out)),
        Value::String(v) => put!(v, |x| out.push_str(x)),
        Value::Char(v) => put!(v, |x| out.push(*x)),
        Value::Enum(OptionEnum::Some(v)) => {
            out.push_str(&v.value);
            Ok(true)
        }
        Value::Enum(OptionEnum::None(_)) => Ok(false),
        Value::Bytes(v) => put!(v, |x| hex(x, out)),
        Value::Json(v) => put!(v, |x| write!(out, "{x}")),
        Value::ChronoDate(v) => put!(v, |x| date(x, out)),
        Value::ChronoTime(v) => put!(v, |x| time(x, out)),
        Value::ChronoDateTime(v) => put!(v, |x| date_time(x, out)),
        Value::ChronoDateTimeUtc(v) => put!(v, |x| zoned(x, out)),
        Value::ChronoDateTimeLocal(v) => put!(v, |x| zoned(x, out)),
        Value::ChronoDateTimeWithTimeZone(v) => put!(v, |x| zoned(x, out)),
        Value::Array(_, v) => match v {
            Some(elements) => {
                array(elements, out)?;
                Ok(true)
            }
            None => Ok(false),
        },
        // Types sea-query features beyond ops' own enable (uuid, decimals, time, ...): the load
        // falls back to statements, which bind them through sqlx.
        #[allow(unreachable_patterns)]
        _ => Err(Unsupported),
    }
}

/// An array literal: `{` elements `}`, each quoted, NULL unquoted, nested arrays nested.
fn array(elements: &[Value], out: &mut String) -> Result<(), Unsupported> {
    out.push('{');
    let mut element = String::new();
    for (index, value) in elements.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if let Value::Array(_, Some(inner)) = value {
            array(inner, out)?;
            continue;
        }
        element.clear();
        if !literal(value, &mut element)? {
            out.push_str("NULL");
            continue;
        }
        out.push('"');
        for ch in element.chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    Ok(())
}

fn float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // `Display` for floats is the shortest text that parses back to the same value.
        let _ = write!(out, "{value}");
    }
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + bytes.len() * 2);
    out.push_str("\\x");
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// `YYYY-MM-DD`, with ` BC` for years before 1 (chrono's year 0 is 1 BC).
fn date(value: &NaiveDate, out: &mut String) {
    let year = value.year();
    let shown = if year < 1 { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{:02}-{:02}", value.month(), value.day());
    if year < 1 {
        out.push_str(" BC");
    }
}

/// `HH:MM:SS.ffffff`, truncated to microseconds; a leap second shows as second 60.
fn time(value: &NaiveTime, out: &mut String) {
    let nanos = value.nanosecond();
    let (second, nanos) = if nanos >= 1_000_000_000 {
        (value.second() + 1, nanos - 1_000_000_000)
    } else {
        (value.second(), nanos)
    };
    let _ = write!(
        out,
        "{:02}:{:02}:{second:02}.{:06}",
        value.hour(),
        value.minute(),
        nanos / 1_000
    );
}

/// A date and a time; the era goes last, after the time, as PostgreSQL writes it.
fn date_time(value: &NaiveDateTime, out: &mut String) {
    let bc = value.year() < 1;
    let year = value.year();
    let shown = if bc { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{:02}-{:02} ", value.month(), value.day());
    time(&value.time(), out);
    if bc {
        out.push_str(" BC");
    }
}

/// A date-time with an offset, written as the same instant in UTC.
fn zoned<Tz: TimeZone>(value: &DateTime<Tz>, out: &mut String) {
    let utc = value.with_timezone(&chrono::Utc).naive_utc();
    let bc = utc.year() < 1;
    let year = utc.year();
    let shown = if bc { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{:02}-{:02} ", utc.month(), utc.day());
    time(&utc.time(), out);
    out.push_str("+00");
    if bc {
        out.push_str(" BC");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{ArrayType, Enum};

    fn field(value: Value) -> String {
        let mut out = Vec::new();
        encode_field(&value, &mut out).expect("supported");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn null_of_every_type_is_backslash_n() {
        for value in [
            Value::Bool(None),
            Value::TinyInt(None),
            Value::SmallInt(None),
            Value::Int(None),
            Value::BigInt(None),
            Value::TinyUnsigned(None),
            Value::SmallUnsigned(None),
            Value::Unsigned(None),
            Value::BigUnsigned(None),
            Value::Float(None),
            Value::Double(None),
            Value::String(None),
            Value::Char(None),
            Value::Enum(OptionEnum::None("mood".into())),
            Value::Bytes(None),
            Value::Json(None),
            Value::ChronoDate(None),
            Value::ChronoTime(None),
            Value::ChronoDateTime(None),
            Value::ChronoDateTimeUtc(None),
            Value::ChronoDateTimeLocal(None),
            Value::ChronoDateTimeWithTimeZone(None),
            Value::Array(ArrayType::String, None),
        ] {
            assert_eq!(field(value.clone()), "\\N", "{value:?}");
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(field(Value::Bool(Some(true))), "t");
        assert_eq!(field(Value::Bool(Some(false))), "f");
        assert_eq!(field(Value::TinyInt(Some(-128))), "-128");
        assert_eq!(field(Value::SmallInt(Some(i16::MIN))), "-32768");
        assert_eq!(field(Value::Int(Some(i32::MAX))), "2147483647");
        assert_eq!(field(Value::BigInt(Some(i64::MIN))), "-9223372036854775808");
        assert_eq!(field(Value::TinyUnsigned(Some(255))), "255");
        assert_eq!(field(Value::SmallUnsigned(Some(65535))), "65535");
        assert_eq!(field(Value::Unsigned(Some(u32::MAX))), "4294967295");
        assert_eq!(field(Value::BigUnsigned(Some(7))), "7");
        assert_eq!(field(Value::Char(Some('\t'))), "\\t");
        assert_eq!(
            field(Value::Enum(OptionEnum::Some(Box::new(Enum {
                type_name: "mood".into(),
                value: "so\\so".into(),
            })))),
            "so\\\\so"
        );
    }

    #[test]
    fn floats_round_trip_and_name_the_specials() {
        assert_eq!(field(Value::Double(Some(0.1))), "0.1");
        assert_eq!(field(Value::Double(Some(-0.0))), "-0");
        assert_eq!(field(Value::Double(Some(1e300))).parse::<f64>(), Ok(1e300));
        assert_eq!(
            field(Value::Double(Some(5e-324))).parse::<f64>(),
            Ok(5e-324)
        );
        assert_eq!(field(Value::Double(Some(f64::NAN))), "NaN");
        assert_eq!(field(Value::Double(Some(f64::INFINITY))), "Infinity");
        assert_eq!(field(Value::Float(Some(f32::NEG_INFINITY))), "-Infinity");
        // An f32 goes through f64: the exact value a bound float4 has.
        let shown = field(Value::Float(Some(0.1)));
        assert_eq!(shown.parse::<f64>(), Ok(f64::from(0.1f32)));
        assert_eq!(shown.parse::<f32>(), Ok(0.1f32));
    }

    #[test]
    fn strings_escape_exactly_the_four_specials() {
        assert_eq!(
            field(Value::String(Some("a\tb\nc\rd\\e".into()))),
            "a\\tb\\nc\\rd\\\\e"
        );
        assert_eq!(
            field(Value::String(Some("ünï 😀 \"q\" 'x' \\N".into()))),
            "ünï 😀 \"q\" 'x' \\\\N"
        );
        assert_eq!(field(Value::String(Some(String::new()))), "");
        assert_eq!(field(Value::String(Some("\\.".into()))), "\\\\.");
    }

    #[test]
    fn bytes_and_json() {
        assert_eq!(
            field(Value::Bytes(Some(vec![0, 0x0a, 0xff]))),
            "\\\\x000aff"
        );
        assert_eq!(field(Value::Bytes(Some(Vec::new()))), "\\\\x");
        let json = serde_json_value(r#"{"a":"tab\there","b":[1,null]}"#);
        assert_eq!(
            field(Value::Json(Some(Box::new(json)))),
            r#"{"a":"tab\\there","b":[1,null]}"#
        );
    }

    fn serde_json_value(text: &str) -> sea_orm::JsonValue {
        text.parse().expect("json")
    }

    #[test]
    fn dates_and_times() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        assert_eq!(field(Value::ChronoDate(Some(date))), "2024-02-29");
        let bc = NaiveDate::from_ymd_opt(0, 3, 1).expect("date");
        assert_eq!(field(Value::ChronoDate(Some(bc))), "0001-03-01 BC");
        let time = NaiveTime::from_hms_nano_opt(23, 5, 9, 123_456_789).expect("time");
        assert_eq!(field(Value::ChronoTime(Some(time))), "23:05:09.123456");
        let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).expect("time");
        assert_eq!(field(Value::ChronoTime(Some(leap))), "23:59:60.500000");
        let at = date.and_time(time);
        assert_eq!(
            field(Value::ChronoDateTime(Some(at))),
            "2024-02-29 23:05:09.123456"
        );
        let offset = chrono::FixedOffset::east_opt(5 * 3600 + 1800).expect("offset");
        let zoned = offset.from_local_datetime(&at).single().expect("unique");
        assert_eq!(
            field(Value::ChronoDateTimeWithTimeZone(Some(zoned))),
            "2024-02-29 17:35:09.123456+00"
        );
        assert_eq!(
            field(Value::ChronoDateTimeUtc(Some(
                zoned.with_timezone(&chrono::Utc)
            ))),
            "2024-02-29 17:35:09.123456+00"
        );
        assert_eq!(
            field(Value::ChronoDateTimeLocal(Some(
                zoned.with_timezone(&chrono::Local)
            ))),
            "2024-02-29 17:35:09.123456+00"
        );
    }

    #[test]
    fn arrays_quote_every_element_and_escape_twice() {
        let strings = Value::Array(
            ArrayType::String,
            Some(Box::new(vec![
                Value::String(Some("plain".into())),
                Value::String(None),
                Value::String(Some("a \"quoted\", {braced} \\ NULL".into())),
                Value::String(Some("NULL".into())),
                Value::String(Some("tab\there".into())),
            ])),
        );
        assert_eq!(
            field(strings),
            r#"{"plain",NULL,"a \\"quoted\\", {braced} \\\\ NULL","NULL","tab\there"}"#
        );
        let ints = Value::Array(
            ArrayType::Int,
            Some(Box::new(vec![Value::Int(Some(1)), Value::Int(None)])),
        );
        assert_eq!(field(ints), r#"{"1",NULL}"#);
        assert_eq!(
            field(Value::Array(ArrayType::Int, Some(Box::new(Vec::new())))),
            "{}"
        );
        let bytes = Value::Array(
            ArrayType::Bytes,
            Some(Box::new(vec![Value::Bytes(Some(vec![1, 2]))])),
        );
        // `\x0102` quoted in the array (`\\x0102`), then `COPY`'s escape doubles each backslash.
        assert_eq!(field(bytes), r#"{"\\\\x0102"}"#);
        let nested = Value::Array(
            ArrayType::Int,
            Some(Box::new(vec![
                Value::Array(ArrayType::Int, Some(Box::new(vec![Value::Int(Some(1))]))),
                Value::Array(ArrayType::Int, Some(Box::new(vec![Value::Int(Some(2))]))),
            ])),
        );
        assert_eq!(field(nested), r#"{{"1"},{"2"}}"#);
    }

    #[test]
    fn rows_are_tab_separated_and_newline_terminated() {
        let mut out = Vec::new();
        encode_row(
            &[
                Value::Int(Some(1)),
                Value::String(None),
                Value::String(Some("x".into())),
            ],
            &mut out,
        )
        .expect("supported");
        assert_eq!(out, b"1\t\\N\tx\n");
    }
}
