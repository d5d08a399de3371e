//! Keeping passwords out of every URL that is printed.

use url::Url;

use super::url::split_scheme;

/// Masks the password of a parsed server URL, and any `password=` query value (libpq reads one).
pub(super) fn redact_parsed(url: &Url) -> String {
    let mut redacted = url.clone();
    if redacted.password().is_some() {
        // Setting a password fails only for URLs without a host, which have no password to hide.
        let _ = redacted.set_password(Some("***"));
    }
    mask_query_passwords(redacted.as_str())
}

/// Masks anything that could be a password in a string that did not parse as a URL.
///
/// Without a parse there is no structure to trust, so this errs on the side of hiding: the
/// user-info ends at the last `@` of the whole string (an unencoded `@`, `/` or `?` in a password
/// cannot leak part of it), everything after the first `:` in it is masked, and a non-numeric
/// "port" is masked because `postgres://user:secret` (the `@host` forgotten) puts the secret there.
pub(super) fn redact_raw(input: &str) -> String {
    let Some((scheme, rest)) = split_scheme(input) else {
        return "***".to_owned();
    };
    let (slashes, body) = match rest.strip_prefix("//") {
        Some(body) => ("//", body),
        None => ("", rest),
    };
    let masked_body = if let Some(at) = body.rfind('@') {
        let (userinfo, host_and_rest) = body.split_at(at);
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***{host_and_rest}"),
            None => body.to_owned(),
        }
    } else {
        let end = body.find(['/', '?', '#']).unwrap_or(body.len());
        let (authority, tail) = body.split_at(end);
        match authority.rsplit_once(':') {
            Some((host, port))
                if !authority.ends_with(']') && !port.chars().all(|c| c.is_ascii_digit()) =>
            {
                format!("{host}:***{tail}")
            }
            _ => body.to_owned(),
        }
    };
    mask_query_passwords(&format!("{scheme}:{slashes}{masked_body}"))
}

/// Replaces the value of every `password=` query parameter with `***`.
fn mask_query_passwords(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|segment| {
            let key = segment.split_once('=').map_or(segment, |(key, _)| key);
            let decoded = url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(key, _)| key.into_owned())
                .unwrap_or_default();
            if decoded.eq_ignore_ascii_case("password") {
                format!("{key}=***")
            } else {
                segment.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", masked.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_redaction_errs_on_the_side_of_hiding() {
        for (input, shown) in [
            ("postgres://u:secret@h:x/db", "postgres://u:***@h:x/db"),
            ("postgres://u:se@cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:se/cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:secret", "postgres://u:***"),
            ("postgres://u:secret/db", "postgres://u:***/db"),
            ("postgres://h:5432/db", "postgres://h:5432/db"),
            ("postgres://[::1]/db", "postgres://[::1]/db"),
            (
                "postgres://u@h/db?password=secret&a=b",
                "postgres://u@h/db?password=***&a=b",
            ),
            ("postgres://h/db?x=a@b", "postgres://h/db?x=a@b"),
            ("postgres://h:1/db?x=a@b", "postgres://h:***@b"),
            ("secret", "***"),
            ("1secret:x", "***"),
        ] {
            assert_eq!(redact_raw(input), shown, "{input}");
        }
    }
}
