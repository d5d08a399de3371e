//! Option values of the attribute macros: `key = "text"`, `key = 3`, `key = 1.5`, `key = true`,
//! a bare `key` for `true`, and `crate = "path"`. Each reader records its error at the offending
//! token and returns `None`, so parsing goes on and every mistake is reported in one run.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitStr};

use crate::errors::Errors;
use crate::suggest;

/// The value after `=`, as an expression, or `None` for a bare `key`.
pub(crate) fn value_expr(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Expr>> {
    if meta.input.peek(syn::Token![=]) {
        Ok(Some(meta.value()?.parse()?))
    } else {
        Ok(None)
    }
}

/// The option's name as written, for messages.
pub(crate) fn key_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path.to_token_stream().to_string().replace(' ', "")
}

/// The span of an option's key, where errors about its value point when the value has none.
pub(crate) fn key_span(meta: &ParseNestedMeta<'_>) -> proc_macro2::Span {
    meta.path
        .segments
        .last()
        .map_or_else(proc_macro2::Span::call_site, |s| s.ident.span())
}

/// Records "unknown option" with the closest known name, at the key.
pub(crate) fn unknown_option(
    errors: &mut Errors,
    meta: &ParseNestedMeta<'_>,
    attribute: &str,
    known: &[&str],
) {
    let name = key_name(meta);
    let message = match suggest::closest(&name, known.iter().copied()) {
        Some(close) => format!(
            "unknown option `{name}` of `#[{attribute}]`: did you mean `{close}`? The options \
             are {}",
            list(known)
        ),
        None => format!(
            "unknown option `{name}` of `#[{attribute}]`: the options are {}",
            list(known)
        ),
    };
    errors.spanned(&meta.path, message);
}

/// `a, b, c` with backticks.
pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string literal value.
pub(crate) fn string(
    errors: &mut Errors,
    key: &str,
    value: Option<&Expr>,
    example: &str,
    span: Span,
) -> Option<LitStr> {
    match value {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => Some(lit.clone()),
        Some(other) => {
            errors.spanned(
                other,
                format!("`{key}` takes a string: `{key} = {example}`"),
            );
            None
        }
        None => {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` needs a value: `{key} = {example}`"),
            ));
            None
        }
    }
}

/// A flag: a bare `key`, or `key = true` / `key = false`.
pub(crate) fn flag(errors: &mut Errors, key: &str, value: Option<&Expr>) -> Option<bool> {
    match value {
        None => Some(true),
        Some(Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            ..
        })) => Some(lit.value),
        Some(other) => {
            errors.spanned(
                other,
                format!("`{key}` is a flag: write `{key}` or `{key} = false`"),
            );
            None
        }
    }
}

/// A duration written as a string in `parse_duration`'s grammar. Zero is refused: every option
/// that takes a duration is a limit or a delay that would make no sense at zero, or is turned
/// off by leaving it out.
pub(crate) fn duration(
    errors: &mut Errors,
    key: &str,
    value: Option<&Expr>,
    span: Span,
) -> Option<Duration> {
    let lit = match value {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        })) => {
            errors.spanned(
                int,
                format!(
                    "`{key}` takes a duration as a string with its unit: `{key} = \"{}s\"` or \
                     `{key} = \"{}ms\"`",
                    int.base10_digits(),
                    int.base10_digits()
                ),
            );
            return None;
        }
        other => string(errors, key, other, "\"5s\"", span)?,
    };
    match ops_duration::parse_duration(&lit.value()) {
        Ok(duration) if duration.is_zero() => {
            errors.spanned(
                &lit,
                format!("`{key}` cannot be zero; leave `{key}` out to have none"),
            );
            None
        }
        Ok(duration) => Some(duration),
        Err(message) => {
            errors.spanned(&lit, format!("bad `{key}`: {message}"));
            None
        }
    }
}

/// A `Duration` as a constant expression.
pub(crate) fn duration_tokens(krate: &TokenStream, duration: Duration) -> TokenStream {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    quote!(#krate::__private::Duration::new(#secs, #nanos))
}

/// `crate = "path"`: the path to `ops_sea` when the dependency is renamed.
pub(crate) fn crate_path(
    errors: &mut Errors,
    value: Option<&Expr>,
    span: Span,
) -> Option<syn::Path> {
    let lit = string(errors, "crate", value, "\"ops_sea\"", span)?;
    match lit.parse::<syn::Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            errors.spanned(
                &lit,
                format!(
                    "`{}` is not a path: write `crate = \"ops_sea\"`",
                    lit.value()
                ),
            );
            None
        }
    }
}
