//! The expansion of `#[managed_session]`: the session parameter widened to any
//! `SessionSource`, and the body handed to `ops_sea::__private::managed` as a closure that gets
//! the session.
//!
//! ```text
//! async fn rename(session: &(impl SessionSource + ?Sized), id: i32) -> Result<T, E> {
//!     __private::managed(session, options, Location::caller() /* the fn's file:line */,
//!         move |ops_session: Session| async move {
//!             /* fake return edge */
//!             let session: &Session = &ops_session;
//!             /* the body */
//!         })
//!         .await
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, Type};

use super::attr::SessionArgs;
use crate::shared::function::{
    Function, Shape, SourceKind, SourceParam, at_user_span, attempt_closure, return_edge,
    runtime_call,
};

/// `::ops_sea`, or the path given with `crate = "..."`.
pub(crate) fn crate_path(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path),
        None => quote!(::ops_sea),
    }
}

/// The whole function.
pub(crate) fn expand(
    mut function: Function,
    args: &SessionArgs,
    source: &SourceParam,
    krate: &TokenStream,
) -> TokenStream {
    widen_source(&mut function, source, krate);
    let call = managed_call(
        &function,
        args,
        source,
        krate,
        &TokenStream::new(),
        function.body(),
    );
    function.with_body(krate, call)
}

/// Rewrites the session parameter of the signature: `&Session` becomes
/// `&(impl SessionSource + ?Sized)` at the type's span (outside `#[async_trait]`, whose trait
/// fixes the signature), and a pattern other than a plain name gets a hygienic name.
pub(crate) fn widen_source(function: &mut Function, source: &SourceParam, krate: &TokenStream) {
    if source.kind == SourceKind::Session && function.shape != Shape::Boxed {
        let ty = widened_type(function, source.index, krate);
        if let Some(ty) = ty {
            function.set_param_type(source.index, ty);
        }
    }
    function.set_param_ident(source.index, source.ident.clone());
}

fn widened_type(function: &Function, index: usize, krate: &TokenStream) -> Option<Type> {
    let syn::FnArg::Typed(arg) = function.item.sig.inputs.iter().nth(index)? else {
        return None;
    };
    let Type::Reference(reference) = &*arg.ty else {
        return None;
    };
    let span = syn::spanned::Spanned::span(&reference.elem);
    let and = reference.and_token;
    let lifetime = &reference.lifetime;
    // `#[instrument]` below records every parameter with `Debug`; every source is `Debug`.
    let debug = function
        .is_instrumented()
        .then(|| quote_spanned!(span=> + ::core::fmt::Debug));
    Some(syn::parse_quote_spanned! {span=>
        #and #lifetime (impl #krate::SessionSource + ?::core::marker::Sized #debug)
    })
}

/// The `managed(source, options, origin, move |session| async move { .. })` expression, without
/// `.await`. `prelude` runs first in the session (the argument bindings `#[db_retry]` adds).
pub(crate) fn managed_call(
    function: &Function,
    args: &SessionArgs,
    source: &SourceParam,
    krate: &TokenStream,
    prelude: &TokenStream,
    body: TokenStream,
) -> TokenStream {
    let (ret, ret_span) = function.return_type();
    let edge = (!function.has_return_edge()).then(|| return_edge(&ret, ret_span));
    let runner = match function.shape {
        Shape::Blocking => "managed_blocking",
        Shape::Async | Shape::Boxed => "managed",
    };
    let fn_ident = &function.item.sig.ident;
    let options = args.options(krate, fn_ident);
    // `Location::caller()` outside a `#[track_caller]` function is the location of the call
    // itself; spanned at the function's name, that is the function's `file:line`.
    let origin = at_user_span(
        quote!(#krate::__private::Location::caller()),
        fn_ident.span(),
    );
    let source_ident = &source.ident;
    let pat = &source.pat;
    let session = Ident::new("ops_session", Span::mixed_site());
    let work = attempt_closure(
        quote!(#session: #krate::__private::Session),
        quote! {
            #edge
            let #pat: &#krate::__private::Session = &#session;
            #prelude
            #body
        },
        ret_span,
    );
    runtime_call(
        krate,
        ret_span,
        runner,
        quote!(#source_ident, #options, #origin, #work),
    )
}
