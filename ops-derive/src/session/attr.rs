//! `#[managed_session(...)]` options.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;
use syn::parse::Parser;

use crate::errors::Errors;
use crate::shared::value;

/// The option names, for messages and suggestions.
const OPTIONS: &[&str] = &[
    "isolation",
    "read_only",
    "timeout",
    "propagation",
    "name",
    "crate",
];

/// Isolation levels as written in the attribute, and the `Isolation` variant each names.
const ISOLATIONS: &[(&str, &str)] = &[
    ("serializable", "Serializable"),
    ("repeatable_read", "RepeatableRead"),
    ("read_committed", "ReadCommitted"),
    ("read_uncommitted", "ReadUncommitted"),
];

/// Propagations as written in the attribute, and the `Propagation` variant each names.
const PROPAGATIONS: &[(&str, &str)] = &[
    ("required", "Required"),
    ("requires_new", "RequiresNew"),
    ("nested", "Nested"),
];

/// The options of one `#[managed_session(...)]`. An option whose value was wrong is left at its
/// default (and its error recorded), so the function still expands and its callers still
/// type-check.
#[derive(Default)]
pub(crate) struct SessionArgs {
    /// The `Isolation` variant.
    pub(crate) isolation: Option<&'static str>,
    pub(crate) read_only: bool,
    pub(crate) timeout: Option<Duration>,
    /// The `Propagation` variant.
    pub(crate) propagation: Option<&'static str>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<syn::Path>,
}

impl SessionArgs {
    /// Parses the tokens between the attribute's parentheses.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> SessionArgs {
        let mut args = SessionArgs::default();
        let parser = syn::meta::parser(|meta| {
            let key = value::key_name(&meta);
            let span = value::key_span(&meta);
            let value = value::value_expr(&meta)?;
            let value = value.as_ref();
            match key.as_str() {
                "isolation" => {
                    args.isolation = choice(errors, "isolation", value, ISOLATIONS, span);
                }
                "propagation" => {
                    args.propagation = choice(errors, "propagation", value, PROPAGATIONS, span);
                }
                "read_only" => {
                    args.read_only = value::flag(errors, "read_only", value).unwrap_or(false)
                }
                "timeout" => args.timeout = value::duration(errors, "timeout", value, span),
                "name" => args.name = value::string(errors, "name", value, "\"transfer\"", span),
                "crate" => args.krate = value::crate_path(errors, value, span),
                _ => value::unknown_option(errors, &meta, "managed_session", OPTIONS),
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(tokens) {
            errors.push(err);
        }
        args
    }

    /// The `SessionOptions` expression; the default name is the function's module path and name.
    pub(crate) fn options(&self, krate: &TokenStream, fn_name: &syn::Ident) -> TokenStream {
        let private = quote!(#krate::__private);
        let mut chain = quote!(#private::SessionOptions::new());
        if let Some(variant) = self.isolation {
            let variant = syn::Ident::new(variant, Span::call_site());
            chain.extend(quote!(.isolation(#private::Isolation::#variant)));
        }
        if self.read_only {
            chain.extend(quote!(.read_only()));
        }
        if let Some(timeout) = self.timeout {
            let timeout = value::duration_tokens(krate, timeout);
            chain.extend(quote!(.timeout(#timeout)));
        }
        if let Some(variant) = self.propagation {
            let variant = syn::Ident::new(variant, Span::call_site());
            chain.extend(quote!(.propagation(#private::Propagation::#variant)));
        }
        let name = match &self.name {
            Some(name) => quote!(#name),
            None => {
                let fn_name = fn_name.to_string();
                let fn_name = fn_name.strip_prefix("r#").unwrap_or(&fn_name);
                quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
            }
        };
        chain.extend(quote!(.name(#name)));
        chain
    }

    /// The `Propagation` expression, for `#[db_retry]` stacked above.
    pub(crate) fn propagation(&self, krate: &TokenStream) -> TokenStream {
        let variant = syn::Ident::new(self.propagation.unwrap_or("Required"), Span::call_site());
        quote!(#krate::__private::Propagation::#variant)
    }
}

/// One of a fixed set of strings, mapped to its variant name.
fn choice(
    errors: &mut Errors,
    key: &str,
    value: Option<&syn::Expr>,
    choices: &[(&str, &'static str)],
    span: Span,
) -> Option<&'static str> {
    let example = format!("\"{}\"", choices[0].0);
    let lit = value::string(errors, key, value, &example, span)?;
    let text = lit.value();
    if let Some((_, variant)) = choices.iter().find(|(name, _)| *name == text) {
        return Some(variant);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let message = match crate::suggest::closest(&text, names.iter().copied()) {
        Some(close) => format!(
            "unknown {key} `{text}`: did you mean \"{close}\"? Use {}",
            or_list(&names)
        ),
        None => format!("unknown {key} `{text}`: use {}", or_list(&names)),
    };
    errors.spanned(&lit, message);
    None
}

/// `"a", "b" or "c"`.
fn or_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}
