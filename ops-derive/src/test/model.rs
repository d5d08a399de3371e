//! The test function as the expansion needs it: borrowed from the input, with the database
//! parameter found (or not) and its form.

use syn::{FnArg, ItemFn, Type};

/// How the test takes its database.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DbForm {
    /// `db: Db`: the test gets a clone of the handle.
    Owned,
    /// `db: &Db`.
    Borrowed,
}

/// The annotated function.
pub(crate) struct TestFn<'a> {
    pub(crate) item: &'a ItemFn,
    /// The database parameter's form, when the single parameter is `Db` or `&Db`.
    pub(crate) form: Option<DbForm>,
}

impl<'a> TestFn<'a> {
    pub(crate) fn from_item(item: &'a ItemFn) -> TestFn<'a> {
        let form = match item.sig.inputs.first() {
            Some(FnArg::Typed(arg)) if item.sig.inputs.len() == 1 => db_form(&arg.ty),
            _ => None,
        };
        TestFn { item, form }
    }

    /// The parameters, for validation.
    pub(crate) fn inputs(&self) -> &syn::punctuated::Punctuated<FnArg, syn::Token![,]> {
        &self.item.sig.inputs
    }
}

/// `Db` (by any path ending in `Db`) or a reference to it.
fn db_form(ty: &Type) -> Option<DbForm> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            is_db(&reference.elem).then_some(DbForm::Borrowed)
        }
        other => is_db(other).then_some(DbForm::Owned),
    }
}

fn is_db(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Db" && segment.arguments.is_none()),
        Type::Paren(inner) => is_db(&inner.elem),
        Type::Group(inner) => is_db(&inner.elem),
        _ => false,
    }
}
