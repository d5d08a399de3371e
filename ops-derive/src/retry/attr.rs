//! `#[db_retry(...)]` options.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit};

use crate::errors::Errors;
use crate::shared::value;

/// The option names, for messages and suggestions.
const OPTIONS: &[&str] = &[
    "attempts",
    "initial",
    "max",
    "multiplier",
    "jitter",
    "deadline",
    "on",
    "idempotent",
    "crate",
];

/// `RetryReason` variants, the names `on = [...]` accepts.
const REASONS: &[&str] = &[
    "ConnectionLost",
    "SerializationFailure",
    "Deadlock",
    "Busy",
    "ServerUnavailable",
    "PoolExhausted",
    "LockTimeout",
    "StatementTimeout",
];

/// The options of one `#[db_retry(...)]`; each is `None` when left out (or wrong), so the
/// policy keeps `RetryPolicy::new()`'s default.
#[derive(Default)]
pub(crate) struct RetryArgs {
    attempts: Option<u32>,
    initial: Option<Duration>,
    max: Option<Duration>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
    deadline: Option<Duration>,
    on: Option<Vec<syn::Ident>>,
    idempotent: bool,
    pub(crate) krate: Option<syn::Path>,
}

impl RetryArgs {
    /// Parses the tokens between the attribute's parentheses.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> RetryArgs {
        let mut args = RetryArgs::default();
        let parser = syn::meta::parser(|meta| {
            let key = value::key_name(&meta);
            let span = value::key_span(&meta);
            let value = value::value_expr(&meta)?;
            let value = value.as_ref();
            match key.as_str() {
                "attempts" => args.attempts = attempts(errors, value, span),
                "initial" => args.initial = value::duration(errors, "initial", value, span),
                "max" => args.max = value::duration(errors, "max", value, span),
                "deadline" => args.deadline = value::duration(errors, "deadline", value, span),
                "multiplier" => args.multiplier = multiplier(errors, value, span),
                "jitter" => args.jitter = value::flag(errors, "jitter", value),
                "idempotent" => {
                    args.idempotent = value::flag(errors, "idempotent", value).unwrap_or(false);
                }
                "on" => args.on = reasons(errors, value, span),
                "crate" => args.krate = value::crate_path(errors, value, span),
                _ => value::unknown_option(errors, &meta, "db_retry", OPTIONS),
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(tokens) {
            errors.push(err);
        }
        args
    }

    /// The `RetryPolicy` expression.
    pub(crate) fn policy(&self, krate: &TokenStream) -> TokenStream {
        let private = quote!(#krate::__private);
        let mut chain = quote!(#private::RetryPolicy::new());
        if let Some(attempts) = self.attempts {
            chain.extend(quote!(.attempts(#attempts)));
        }
        for (setter, duration) in [
            ("initial", self.initial),
            ("max", self.max),
            ("deadline", self.deadline),
        ] {
            if let Some(duration) = duration {
                let setter = syn::Ident::new(setter, Span::call_site());
                let duration = value::duration_tokens(krate, duration);
                chain.extend(quote!(.#setter(#duration)));
            }
        }
        if let Some(multiplier) = self.multiplier {
            let multiplier = Literal::f64_suffixed(multiplier);
            chain.extend(quote!(.multiplier(#multiplier)));
        }
        if let Some(jitter) = self.jitter {
            chain.extend(quote!(.jitter(#jitter)));
        }
        if let Some(reasons) = &self.on {
            chain.extend(quote!(.on([#(#private::RetryReason::#reasons),*])));
        }
        if self.idempotent {
            chain.extend(quote!(.idempotent(true)));
        }
        chain
    }
}

fn attempts(errors: &mut Errors, value: Option<&Expr>, span: Span) -> Option<u32> {
    let Some(Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    })) = value
    else {
        match value {
            Some(other) => errors.spanned(other, "`attempts` takes a whole number: `attempts = 5`"),
            None => errors.push(syn::Error::new(
                span,
                "`attempts` needs a value: `attempts = 5`",
            )),
        }
        return None;
    };
    match int.base10_parse::<u32>() {
        Ok(0) => {
            errors.spanned(
                int,
                "`attempts` counts the first attempt too, so it must be at least 1",
            );
            None
        }
        Ok(attempts) => Some(attempts),
        Err(_) => {
            errors.spanned(
                int,
                "`attempts` must be a whole number from 1 to 4294967295",
            );
            None
        }
    }
}

fn multiplier(errors: &mut Errors, value: Option<&Expr>, span: Span) -> Option<f64> {
    let (parsed, lit_span) = match value {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Float(float),
            ..
        })) => (float.base10_parse::<f64>().ok(), float.span()),
        Some(Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        })) => (int.base10_parse::<f64>().ok(), int.span()),
        Some(other) => {
            errors.spanned(other, "`multiplier` takes a number: `multiplier = 2.0`");
            return None;
        }
        None => {
            errors.push(syn::Error::new(
                span,
                "`multiplier` needs a value: `multiplier = 2.0`",
            ));
            return None;
        }
    };
    match parsed {
        Some(multiplier) if multiplier.is_finite() && multiplier >= 1.0 => Some(multiplier),
        _ => {
            errors.push(syn::Error::new(
                lit_span,
                "`multiplier` must be a finite number of at least 1.0: below 1 the delays would \
                 shrink instead of backing off",
            ));
            None
        }
    }
}

/// `on = [Deadlock, SerializationFailure]`.
fn reasons(errors: &mut Errors, value: Option<&Expr>, span: Span) -> Option<Vec<syn::Ident>> {
    let example = "`on = [Deadlock, SerializationFailure]`";
    let array = match value {
        Some(Expr::Array(array)) => array,
        Some(other) => {
            errors.spanned(
                other,
                format!("`on` takes a list of retry reasons: {example}"),
            );
            return None;
        }
        None => {
            errors.push(syn::Error::new(
                span,
                format!("`on` needs a list of retry reasons: {example}"),
            ));
            return None;
        }
    };
    let mut reasons = Vec::new();
    let mut ok = true;
    for element in &array.elems {
        let ident = match element {
            Expr::Path(path) if path.qself.is_none() => path
                .path
                .segments
                .last()
                .map(|segment| segment.ident.clone()),
            _ => None,
        };
        let Some(ident) = ident else {
            errors.spanned(
                element,
                format!("`on` lists `RetryReason` names: {example}"),
            );
            ok = false;
            continue;
        };
        let name = ident.to_string();
        if REASONS.contains(&name.as_str()) {
            reasons.push(ident);
            continue;
        }
        ok = false;
        let message = if name == "CommitUnknown" {
            "`CommitUnknown` is not a retry reason: the first attempt may have committed. Declare \
             the function `idempotent` to retry it"
                .to_owned()
        } else {
            let known = value::list(REASONS);
            match crate::suggest::closest(&name, REASONS.iter().copied()) {
                Some(close) => format!(
                    "unknown retry reason `{name}`: did you mean `{close}`? The reasons are \
                     {known}"
                ),
                None => format!("unknown retry reason `{name}`: the reasons are {known}"),
            }
        };
        errors.spanned(element, message);
    }
    ok.then_some(reasons)
}
