//! The expansion of `#[ops_sea::test]`: a plain `#[test]` function that hands the user's async
//! function to `run_test`, which owns the database's life and the leak check.
//!
//! ```text
//! #[__private::test::test]      // core's `#[test]`, re-exported
//! fn creates_a_cake() {
//!     async fn creates_a_cake(db: Db) { /* the body, as written */ }
//!     __private::test::run_test(
//!         __private::test::TestArgs::new(module_path!(), "creates_a_cake")
//!             .entity::<cake::Entity>()           // spanned at the user's `cake`
//!             .setup(seed),
//!         |db| Box::pin(creates_a_cake(db.clone())),
//!     )
//! }
//! ```

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::attr::TestArgs;
use super::model::{DbForm, TestFn};

/// The whole test.
pub(crate) fn expand(test: &TestFn<'_>, args: &TestArgs) -> TokenStream {
    let krate = match &args.krate {
        Some(path) => quote!(#path),
        None => quote!(::ops_sea),
    };
    let private = quote!(#krate::__private::test);
    let item = test.item;
    let name = &item.sig.ident;
    let name_text = name.to_string();
    let name_text = name_text.strip_prefix("r#").unwrap_or(&name_text);
    let vis = &item.vis;
    let output = &item.sig.output;
    // The call is spanned at the return type, so a type that is not a test outcome is reported
    // there rather than at the attribute. The callee is parenthesized so that the call's span
    // begins at the return type too, not at the crate path's tokens.
    let output_span = match output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => proc_macro2::Span::call_site(),
    };
    // Outer attributes (`#[should_panic]`, `#[ignore]`, docs, lints) stay on the test.
    let attrs = &item.attrs;
    let mut inner = item.clone();
    inner.attrs.clear();
    inner.vis = syn::Visibility::Inherited;

    let mut chain = quote!(#private::TestArgs::new(::core::module_path!(), #name_text));
    for entity in &args.entities {
        let span = entity.span();
        chain.extend(quote_spanned!(span=> .entity::<#entity::Entity>()));
    }
    if let Some(setup) = &args.setup {
        let span = setup.span();
        chain.extend(quote_spanned!(span=> .setup(#setup)));
    }
    if args.allow_leaks {
        chain.extend(quote!(.allow_leaks()));
    }
    let db = quote!(__ops_db);
    let argument = match test.form {
        Some(DbForm::Owned) => quote!(::core::clone::Clone::clone(#db)),
        _ => quote!(#db),
    };
    // `#[test]` is named through the runtime's module, like every other path of the expansion:
    // `crate = "..."` then reaches it too, which is how the compile tests in
    // `tests/ui/test` swap it for an attribute that keeps the function in a non-test build and
    // so get the expansion type-checked (trybuild builds binaries, where `#[test]` functions are
    // removed before type checking).
    let call = quote_spanned! {output_span=>
        (#private::run_test)(#chain, |#db| ::std::boxed::Box::pin(#name(#argument)))
    };
    quote! {
        #(#attrs)*
        #[#private::test]
        #vis fn #name() #output {
            #inner
            #call
        }
    }
}
