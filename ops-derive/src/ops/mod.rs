//! `#[derive(Ops)]`: parse (`attr`), model (`model`), validate (`validate`), expand (`expand`).

mod attr;
mod expand;
mod model;
mod validate;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::errors::Errors;

/// Expands `#[derive(Ops)]` on `input`.
///
/// Every error is reported at its token. When the input is a SeaORM model, the repository is
/// generated even if some `#[ops]` keys are wrong (they are left out), so a mistake in one key
/// does not cascade into errors at every call of `Ops::create`.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let Some(model) = model::Model::from_input(input, &mut errors) else {
        return errors.to_compile_errors();
    };
    let plan = validate::validate(&model, &mut errors);
    let mut output = expand::expand(&model, &plan);
    if !errors.is_empty() {
        output.extend(errors.to_compile_errors());
    }
    output
}
