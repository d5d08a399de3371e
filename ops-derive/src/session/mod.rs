//! `#[managed_session]`: parse the options (`attr`), model the function
//! (`crate::shared::function`), expand (`expand`).

pub(crate) mod attr;
pub(crate) mod expand;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;
use crate::shared::function::{Function, SourceKind};

/// Why `#[db_retry]` cannot go below `#[managed_session]`.
const RETRY_BELOW: &str = "`#[db_retry]` must go above `#[managed_session]`, not below it: below, \
    it would retry inside the session's transaction, and once the database aborted that \
    transaction (a deadlock, a serialization failure) no retry inside it can recover. Above, each \
    attempt runs in a fresh session: write `#[db_retry(...)]` first, then `#[managed_session(...)]`";

/// Expands `#[managed_session(args)]` on `item`.
///
/// An error in the options leaves that option at its default and still expands the function, so
/// its callers (which pass a `&Db`) keep type-checking and one mistake gives one message. An
/// error in the function itself (no `&Session` parameter, not a function) emits the item as
/// written beside the error.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::SessionArgs::parse(args, &mut errors);
    let mut function = match Function::parse(item.clone(), "managed_session") {
        Ok(function) => function,
        Err(err) => {
            let err = err.to_compile_error();
            return quote!(#err #item);
        }
    };
    if let Some(retry) = function.take_attr("db_retry") {
        errors.spanned(&retry, RETRY_BELOW);
    }
    let source = match function.source_param(&[SourceKind::Session, SourceKind::AnySource]) {
        Ok(Some(source)) => source,
        Ok(None) => {
            errors.push(syn::Error::new(
                function.inputs_span(),
                "`#[managed_session]` needs a parameter of type `&Session` to hand the session \
                 to: add one, e.g. `session: &Session`; callers then pass a `&Db` (opens a \
                 session) or their own `&Session` (joins it)",
            ));
            let mut output = errors.to_compile_errors();
            output.extend(function.into_tokens());
            return output;
        }
        Err(err) => {
            errors.push(err);
            let mut output = errors.to_compile_errors();
            output.extend(function.into_tokens());
            return output;
        }
    };
    let krate = expand::crate_path(args.krate.as_ref());
    let mut output = errors.to_compile_errors();
    output.extend(expand::expand(function, &args, &source, &krate));
    output
}
