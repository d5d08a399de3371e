//! Reading a URL's query: its `key=value` segments as written and decoded, and the SSL mode
//! parameters lifted out of it.

use super::backend::{SSL_MODES, SslMode};

/// Query parameters that carry an SSL mode; they are removed from the URL.
const SSL_MODE_PARAMS: [&str; 4] = ["sslmode", "ssl-mode", "ssl_mode", "ssl"];

/// One `key=value` segment of a query string, with its decoded key and value.
pub(super) struct QueryPair<'a> {
    pub(super) raw: &'a str,
    pub(super) key: String,
    pub(super) value: String,
}

/// Splits a raw query into segments, keeping each as written and decoding it for matching.
pub(super) fn query_pairs(query: &str) -> Vec<QueryPair<'_>> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|raw| {
            let (key, value) = url::form_urlencoded::parse(raw.as_bytes())
                .next()
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .unwrap_or_default();
            QueryPair { raw, key, value }
        })
        .collect()
}

/// Removes the SSL mode parameters from `pairs` and returns the mode they agree on.
pub(super) fn take_ssl_mode(
    pairs: &mut Vec<QueryPair<'_>>,
) -> Result<Option<(SslMode, String)>, String> {
    let mut found: Option<(SslMode, String)> = None;
    let mut error = None;
    pairs.retain(|pair| {
        let key = pair.key.to_ascii_lowercase();
        if !SSL_MODE_PARAMS.contains(&key.as_str()) {
            return true;
        }
        let written = format!("{}={}", pair.key, pair.value);
        match (SslMode::parse(&pair.value), &found) {
            (None, _) => {
                error.get_or_insert_with(|| {
                    format!("`{written}` in the query is not an ssl mode: {SSL_MODES}")
                });
            }
            (Some(mode), Some((previous, previous_written))) if *previous != mode => {
                error.get_or_insert_with(|| {
                    format!(
                        "the query sets conflicting ssl modes `{previous_written}` and `{written}`: \
                         keep one"
                    )
                });
            }
            (Some(_), Some(_)) => {}
            (Some(mode), None) => found = Some((mode, written)),
        }
        false
    });
    match error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}
