//! `#[ops_sea::test(...)]` options: `entities(cake, bakery)`, `setup = seed`, `allow_leaks`,
//! `crate = "..."`. Each keeps its tokens, so errors and generated paths carry the user's spans.

use proc_macro2::{TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
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
                    match entities(&meta, errors)? {
                        Some(listed) => args.entities.extend(listed),
                        None => errors.push(syn::Error::new(
                            span,
                            "`entities()` is empty: list the entity modules whose tables the \
                             test needs, `entities(cake, bakery)`, or leave the option out",
                        )),
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

/// The paths inside `entities(...)`. An element that is not a module path is reported at its
/// tokens and skipped, so the other elements and options are still read. `None` when the
/// parentheses hold no element at all (`syn`'s nested-meta parser would stop there with a message
/// about "nested attributes" that says nothing to the user).
fn entities(
    meta: &ParseNestedMeta<'_>,
    errors: &mut Errors,
) -> syn::Result<Option<Vec<syn::Path>>> {
    let content;
    syn::parenthesized!(content in meta.input);
    let mut paths = Vec::new();
    let mut reported = false;
    while !content.is_empty() {
        // One element: every token up to the next comma (a path has no comma at its top level).
        let element: TokenStream = content.step(|cursor| {
            let mut rest = *cursor;
            let mut tokens = Vec::new();
            while let Some((tree, next)) = rest.token_tree() {
                if matches!(&tree, TokenTree::Punct(punct) if punct.as_char() == ',') {
                    break;
                }
                tokens.push(tree);
                rest = next;
            }
            Ok((tokens.into_iter().collect(), rest))
        })?;
        match syn::Path::parse_mod_style.parse2(element.clone()) {
            Ok(path) => paths.push(path),
            Err(_) if element.is_empty() => {}
            Err(_) => {
                reported = true;
                errors.spanned(
                    &element,
                    "`entities` lists entity modules by path: `entities(cake, shop::bakery)`",
                );
            }
        }
        if !content.is_empty() {
            content.parse::<syn::Token![,]>()?;
        }
    }
    Ok((reported || !paths.is_empty()).then_some(paths))
}
