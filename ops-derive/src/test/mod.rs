//! `#[ops_sea::test]`: parse the options (`attr`), model the test function (`model`), validate
//! (`validate`), expand (`expand`). The expansion is small: it hands the test body to
//! `ops_sea::__private::test::run_test`, which creates the database, runs the body and checks for
//! leaks (and has its own tests).

mod attr;
mod expand;
mod model;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

/// Expands `#[ops_sea::test(args)]` on `item`.
///
/// Every error is reported at the user's token. On error the function is emitted as written (as
/// dead code, without `#[test]`) beside the messages, so one mistake gives one message.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::TestArgs::parse(args, &mut errors);
    let function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            errors.push(syn::Error::new_spanned(
                &item,
                "`#[ops_sea::test]` goes on an `async fn` test taking the database: \
                 `async fn creates_a_cake(db: Db) { .. }`",
            ));
            let errors = errors.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    let model = model::TestFn::from_item(&function);
    validate::validate(&model, &mut errors);
    if !errors.is_empty() {
        let errors = errors.to_compile_errors();
        return quote! {
            #errors
            #[allow(dead_code)]
            #function
        };
    }
    expand::expand(&model, &args)
}
