//! The expansion of `#[db_retry]`: the body runs once per attempt under
//! `ops_sea::__private::retry_source`, each attempt with its own copy of the owned arguments and,
//! stacked above `#[managed_session]`, in a session of its own.
//!
//! ```text
//! async fn transfer(session: &(impl SessionSource + ?Sized), from: i64, memo: String) -> R {
//!     __private::retry_source(session, propagation, policy, move |_| {
//!         let memo = RetryArg::retry_clone(&memo);      // spanned at `String`
//!         __private::managed(session, options, origin, move |ops_session| async move {
//!             let session: &Session = &ops_session;
//!             /* the body */
//!         })
//!     })
//!     .await
//! }
//! ```

use proc_macro2::{Delimiter, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, PatIdent, Type};

use super::attr::RetryArgs;
use crate::errors::Errors;
use crate::session::attr::SessionArgs;
use crate::session::expand::{managed_call, widen_source};
use crate::shared::function::{Function, SourceParam, in_group, respan, return_edge, runtime_call};

/// The whole function. Errors in the arguments (an owned `self`, a `&mut` parameter) are
/// recorded and the function is expanded without retries, so its callers still type-check.
pub(crate) fn expand(
    mut function: Function,
    retry: &RetryArgs,
    managed: Option<&SessionArgs>,
    source: Option<&SourceParam>,
    krate: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    if let Some(source) = source {
        widen_source(&mut function, source, krate);
    }
    let unprepared = function.clone();
    let Some(Attempt { clones, prelude }) =
        prepare_arguments(&mut function, source.map(|s| s.index), krate, errors)
    else {
        let function = unprepared;
        return match (managed, source) {
            (Some(managed), Some(source)) => {
                let call = managed_call(
                    &function,
                    managed,
                    source,
                    krate,
                    &TokenStream::new(),
                    function.body(),
                );
                function.with_body(krate, call)
            }
            _ => function.into_tokens(),
        };
    };
    let (ret, ret_span) = function.return_type();
    let body = function.body();
    let attempt = match (managed, source) {
        (Some(managed), Some(source)) => {
            managed_call(&function, managed, source, krate, &prelude, body)
        }
        _ => {
            let edge = (!function.has_return_edge()).then(|| return_edge(&ret, ret_span));
            respan_async(quote!(#edge #prelude #body), ret_span)
        }
    };
    let policy = retry.policy(krate);
    // The closure is `FnMut`: each call copies the owned arguments, then starts one attempt.
    let mut op = respan(quote!(move |_|), ret_span);
    op.extend([in_group(
        Delimiter::Brace,
        quote!(#clones #attempt),
        ret_span,
    )]);
    let call = match source {
        Some(source) => {
            let propagation = managed.map_or_else(
                || quote!(#krate::__private::Propagation::Required),
                |managed| managed.propagation(krate),
            );
            let source = &source.ident;
            runtime_call(
                krate,
                ret_span,
                "retry_source",
                quote!(#source, #propagation, #policy, #op),
            )
        }
        None => runtime_call(krate, ret_span, "retry_detached", quote!(#policy, #op)),
    };
    function.with_body(krate, call)
}

/// What each attempt does with the arguments.
struct Attempt {
    /// `let arg = RetryArg::retry_clone(&arg);` for every owned argument, run per attempt.
    clones: TokenStream,
    /// The user's patterns bound from the plain names the signature now uses, run first in the
    /// attempt.
    prelude: TokenStream,
}

/// Gives every parameter a plain name (so it can be copied per attempt) and lists the copies.
/// `None` when a parameter cannot be handed to every attempt (an error is recorded).
fn prepare_arguments(
    function: &mut Function,
    source: Option<usize>,
    krate: &TokenStream,
    errors: &mut Errors,
) -> Option<Attempt> {
    let mut clones = TokenStream::new();
    let mut prelude = TokenStream::new();
    let mut ok = true;
    for (index, input) in function.item.sig.inputs.iter_mut().enumerate() {
        let arg = match input {
            FnArg::Receiver(receiver) => {
                let shared = match &*receiver.ty {
                    Type::Reference(reference) => reference.mutability.is_none(),
                    _ => false,
                };
                if !shared {
                    errors.spanned(
                        &*receiver,
                        "`#[db_retry]` runs the body once per attempt, so the method must take \
                         `&self`: an owned or `&mut self` cannot be handed to every attempt",
                    );
                    ok = false;
                }
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        if Some(index) == source {
            continue;
        }
        let ty_span = arg.ty.span();
        let owned = match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_some() => {
                errors.spanned(
                    &arg.ty,
                    "`#[db_retry]` runs the body once per attempt and cannot hand a `&mut` \
                     borrow to every attempt: take `&` or an owned value that is `Clone`",
                );
                ok = false;
                continue;
            }
            Type::Reference(_) => false,
            _ => true,
        };
        let ident = match &mut *arg.pat {
            Pat::Ident(PatIdent {
                by_ref: None,
                subpat: None,
                mutability,
                ident,
                ..
            }) => {
                if mutability.take().is_some() {
                    prelude.extend(quote!(let mut #ident = #ident;));
                }
                ident.clone()
            }
            pat => {
                let ident = Ident::new(&format!("ops_arg{index}"), Span::mixed_site());
                prelude.extend(quote!(let #pat = #ident;));
                *arg.pat = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: ident.clone(),
                    subpat: None,
                });
                ident
            }
        };
        if owned {
            // The copy is spanned at the parameter's type, where a missing `Clone` is reported.
            let mut located = ident.clone();
            located.set_span(ident.span().located_at(ty_span));
            let retry_clone = respan(quote!(#krate::__private::RetryArg::retry_clone), ty_span);
            clones.extend(quote_spanned! {ty_span=>
                let #ident = #retry_clone(&#located);
            });
        }
    }
    ok.then_some(Attempt { clones, prelude })
}

/// `async move { body }` with its own tokens at `span`.
fn respan_async(body: TokenStream, span: Span) -> TokenStream {
    let mut block = respan(quote!(async move), span);
    block.extend([in_group(Delimiter::Brace, body, span)]);
    block
}
