//! What makes a function unfit for `#[ops_sea::test]`, each reported at the user's token.

use syn::FnArg;
use syn::spanned::Spanned;

use super::model::TestFn;
use crate::errors::Errors;

/// Attributes that build a runtime or a test of their own and cannot be stacked with ours.
const RUNNERS: &[&str] = &["test", "tokio::test", "sqlx::test", "async_std::test"];

/// Records every problem of the test function.
pub(crate) fn validate(test: &TestFn<'_>, errors: &mut Errors) {
    let sig = &test.item.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "`#[ops_sea::test]` runs an `async fn`: write `async fn`; the attribute builds the \
             runtime",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "a test function cannot be generic: remove the generic parameters",
        );
    }
    for attr in &test.item.attrs {
        let path = attr
            .path()
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect::<Vec<_>>()
            .join("::");
        if RUNNERS.contains(&path.as_str()) {
            errors.spanned(
                attr,
                format!(
                    "remove `#[{path}]`: `#[ops_sea::test]` already makes the function a test \
                     and runs it on a runtime of its own"
                ),
            );
        }
    }
    let inputs = test.inputs();
    match inputs.len() {
        0 => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "the test needs its database: add a parameter `db: Db` (or `db: &Db`); \
             `#[ops_sea::test]` creates a fresh database for it",
        )),
        1 if test.form.is_none() => {
            let span = match &inputs[0] {
                FnArg::Typed(arg) => arg.ty.span(),
                FnArg::Receiver(receiver) => receiver.span(),
            };
            errors.push(syn::Error::new(
                span,
                "the test's parameter is its database: write `db: Db` or `db: &Db`",
            ));
        }
        1 => {}
        _ => {
            for extra in inputs.iter().skip(1) {
                errors.spanned(
                    extra,
                    "a test takes one parameter, its database (`db: Db` or `db: &Db`); build \
                     anything else inside the test or in a `setup` function",
                );
            }
        }
    }
}
