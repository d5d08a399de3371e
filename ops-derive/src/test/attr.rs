//! `#[ops_sea::test(...)]` options: `entities(cake, bakery)`, `setup = seed`, `allow_leaks`,
//! `crate = "..."`. Each keeps its tokens, so errors and generated paths carry the user's spans.

use proc_macro2::TokenStream;
use syn::parse::Parser;

use crate::errors::Errors;
use crate::shared::value;

/// The option names, for messages and suggestions.
const OPTIONS: &[&str] = &["entities", "setup", "allow_leaks", "crate"];

/// The options of one `#[ops_sea::test(...)]`. A wrong option is left out (its error recorded).
#[derive(Default)]
pub(crate) struct TestArgs {
    /// The entity modules, in the order written; each names `<module>::Entity`.
    pub(crate) entities: Vec<syn::Path>,
    /// The setup function, run with `&Db` after the tables are created.
    pub(crate) setup: Option<syn::Path>,
    pub(crate) allow_leaks: bool,
    pub(crate) krate: Option<syn::Path>,
}

impl TestArgs {
    /// Parses the tokens between the attribute's parentheses.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> TestArgs {
        let mut args = TestArgs::default();
        let parser = syn::meta::parser(|meta| {
            let key = value::key_name(&meta);
            let span = value::key_span(&meta);
            match key.as_str() {
                "entities" => {
                    if !meta.input.peek(syn::token::Paren) {
                        errors.push(syn::Error::new(
                            span,
                            "`entities` lists entity modules: `entities(cake, bakery)`",
                        ));
                        // Skip a value written with `=` so parsing goes on.
                        let _ = value::value_expr(&meta)?;
                        return Ok(());
                    }
                    let before = args.entities.len();
                    meta.parse_nested_meta(|entity| {
                        if !entity.input.is_empty() && !entity.input.peek(syn::Token![,]) {
                            return Err(entity.error(
                                "`entities` lists entity modules by path: `entities(cake, \
                                 shop::bakery)`",
                            ));
                        }
                        args.entities.push(entity.path);
                        Ok(())
                    })?;
                    if args.entities.len() == before {
                        errors.push(syn::Error::new(
                            span,
                            "`entities()` is empty: list the entity modules whose tables the \
                             test needs, `entities(cake, bakery)`, or leave the option out",
                        ));
                    }
                }
                "setup" => {
                    let value = value::value_expr(&meta)?;
                    match value {
                        Some(syn::Expr::Path(path)) if path.qself.is_none() => {
                            args.setup = Some(path.path);
                        }
                        Some(other) => errors.spanned(
                            &other,
                            "`setup` names an async function taking `&Db`: `setup = seed`",
                        ),
                        None => errors.push(syn::Error::new(
                            span,
                            "`setup` needs a value: `setup = seed`, an async function taking \
                             `&Db`",
                        )),
                    }
                }
                "allow_leaks" => {
                    let value = value::value_expr(&meta)?;
                    args.allow_leaks =
                        value::flag(errors, "allow_leaks", value.as_ref()).unwrap_or(false);
                }
                "crate" => {
                    let value = value::value_expr(&meta)?;
                    args.krate = value::crate_path(errors, value.as_ref(), span);
                }
                _ => {
                    value::unknown_option(errors, &meta, "ops_sea::test", OPTIONS);
                    // Skip the option's value, whatever its form, so the others are still read.
                    if meta.input.peek(syn::token::Paren) {
                        let _ = meta.parse_nested_meta(|nested| {
                            let _ = value::value_expr(&nested)?;
                            Ok(())
                        });
                    } else {
                        let _ = value::value_expr(&meta)?;
                    }
                }
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(tokens) {
            errors.push(err);
        }
        args
    }
}
