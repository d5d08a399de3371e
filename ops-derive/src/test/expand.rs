//! The expansion of `#[ops_sea::test]`: a plain `#[test]` function that hands the user's async
//! function to `run_test`, which owns the database's life and the leak check.
//!
//! ```text
//! #[test]
//! fn creates_a_cake() {
//!     async fn creates_a_cake(db: Db) { /* the body, as written */ }
//!     __private::test::run_test(
//!         __private::test::TestArgs::new(module_path!(), "creates_a_cake")
//!             .entity::<cake::Entity>()           // spanned at the user's `cake`
//!             .setup(|db| Box::pin(seed(db))),
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
        chain.extend(quote_spanned! {span=>
            .setup(|__ops_db| ::std::boxed::Box::pin(#setup(__ops_db)))
        });
    }
    if args.allow_leaks {
        chain.extend(quote!(.allow_leaks()));
    }
    let db = quote!(__ops_db);
    let argument = match test.form {
        Some(DbForm::Owned) => quote!(::core::clone::Clone::clone(#db)),
        _ => quote!(#db),
    };
    quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() #output {
            #inner
            #private::run_test(#chain, |#db| ::std::boxed::Box::pin(#name(#argument)))
        }
    }
}
