//! `#[db_retry]`: parse the options (`attr`), model the function
//! (`crate::shared::function`), expand (`expand`).

pub(crate) mod attr;
pub(crate) mod expand;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Meta;

use crate::errors::Errors;
use crate::session::attr::SessionArgs;
use crate::shared::function::{Function, SourceKind};

/// Expands `#[db_retry(args)]` on `item`.
///
/// Stacked above `#[managed_session]`, it takes that attribute off the function and expands
/// both at once, so that each attempt runs in a session of its own; the two macros share the
/// session expansion. On an error it still emits a function callers can call: the managed
/// function without retries when it was stacked, or the function as written.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let retry = attr::RetryArgs::parse(args, &mut errors);
    let mut function = match Function::parse(item.clone(), "db_retry") {
        Ok(function) => function,
        Err(err) => {
            let err = err.to_compile_error();
            return quote!(#err #item);
        }
    };
    let managed = function
        .take_attr("managed_session")
        .map(|attr| match attr.meta {
            Meta::Path(_) => SessionArgs::default(),
            Meta::List(list) => SessionArgs::parse(list.tokens, &mut errors),
            Meta::NameValue(name_value) => {
                errors.spanned(
                    &name_value,
                    "write `#[managed_session]` or `#[managed_session(option = ...)]`",
                );
                SessionArgs::default()
            }
        });
    let krate = crate::session::expand::crate_path(
        retry
            .krate
            .as_ref()
            .or(managed.as_ref().and_then(|m| m.krate.as_ref())),
    );
    let kinds: &[SourceKind] = match managed {
        Some(_) => &[SourceKind::Session, SourceKind::AnySource],
        None => &[SourceKind::Db, SourceKind::AnySource, SourceKind::Session],
    };
    let source = match function.source_param(kinds) {
        Ok(source) => source,
        Err(err) => {
            errors.push(err);
            let mut output = errors.to_compile_errors();
            output.extend(function.into_tokens());
            return output;
        }
    };
    let mut output = TokenStream::new();
    let expanded = match (&managed, source) {
        (Some(_), None) => {
            errors.push(syn::Error::new(
                function.inputs_span(),
                "`#[managed_session]` needs a parameter of type `&Session` to hand the session \
                 to: add one, e.g. `session: &Session`; callers then pass a `&Db` (opens a \
                 session) or their own `&Session` (joins it)",
            ));
            function.into_tokens()
        }
        (None, Some(source)) if source.kind == SourceKind::Session => {
            errors.spanned(
                &function.item.sig.inputs[source.index],
                "`#[db_retry]` on a function that takes a `&Session` would retry inside the \
                 caller's transaction, which no retry can recover once the database aborted it: \
                 put `#[managed_session]` below `#[db_retry]` so that each attempt opens a \
                 session of its own, or take a `&Db`",
            );
            function.into_tokens()
        }
        (managed, source) => expand::expand(
            function,
            &retry,
            managed.as_ref(),
            source.as_ref(),
            &krate,
            &mut errors,
        ),
    };
    output.extend(errors.to_compile_errors());
    output.extend(expanded);
    output
}
