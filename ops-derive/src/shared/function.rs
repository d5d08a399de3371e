//! The annotated function, as both attribute macros see it: its shape (an `async fn`, a plain
//! `fn`, or a method `#[async_trait]` already rewrote), its session source parameter, its return
//! type, and the body to wrap.
//!
//! The signature's tokens are kept wherever they can be, so rustdoc, error spans and other
//! attributes see what the user wrote; only the session parameter's type changes (the
//! async-trait way, at that parameter's span), and only the body is rewritten (the tracing way,
//! with a fake return edge so type errors land on the user's return type).

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    AttrStyle, Attribute, Expr, FnArg, GenericArgument, Ident, ItemFn, Pat, PatIdent, ReturnType,
    Stmt, Type, TypeReference,
};

/// How the function runs its body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `async fn`: the expansion awaits the runtime's future.
    Async,
    /// A plain `fn`: the expansion drives the runtime's future with `ops_sea::blocking::block_on`.
    Blocking,
    /// A method `#[async_trait]` already rewrote into `fn .. -> Pin<Box<dyn Future ..>>` whose
    /// body ends in `Box::pin(async move { .. })`. Its signature belongs to the trait and stays
    /// as it is; the async block is rewritten.
    Boxed,
}

/// What a parameter hands the macro to take sessions from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// `&Session`: the session the body wants. `#[managed_session]` widens it to any source.
    Session,
    /// `&Db`: a source for `#[db_retry]` alone.
    Db,
    /// `&dyn SessionSource` or `&impl SessionSource`: any source already, kept as written (the
    /// way to declare the parameter in a trait method).
    AnySource,
}

/// The parameter sessions come from.
pub(crate) struct SourceParam {
    /// Its position among the inputs.
    pub(crate) index: usize,
    pub(crate) kind: SourceKind,
    /// The pattern as written, bound to the session inside the body.
    pub(crate) pat: Pat,
    /// The name the rewritten signature gives it: the user's identifier (without `mut`), or a
    /// hygienic one for other patterns.
    pub(crate) ident: Ident,
}

/// The annotated function.
#[derive(Clone)]
pub(crate) struct Function {
    pub(crate) item: ItemFn,
    pub(crate) shape: Shape,
}

impl Function {
    /// Parses the item an attribute is on. Anything but a function with a body is an error
    /// spanned at the item's first tokens.
    pub(crate) fn parse(item: TokenStream, attribute: &str) -> syn::Result<Function> {
        let item: ItemFn = match syn::parse2(item.clone()) {
            Ok(item) => item,
            Err(_) => {
                let message = format!(
                    "`#[{attribute}]` applies to a function with a body (`async fn` or `fn`)"
                );
                return Err(match syn::parse2::<syn::Item>(item.clone()) {
                    Ok(other) => syn::Error::new(item_span(&other), message),
                    Err(_) => syn::Error::new(
                        item.into_iter()
                            .next()
                            .map_or_else(Span::call_site, |t| t.span()),
                        message,
                    ),
                });
            }
        };
        if let Some(constness) = &item.sig.constness {
            return Err(syn::Error::new(
                constness.span,
                format!("`#[{attribute}]` cannot apply to a `const fn`: sessions do I/O"),
            ));
        }
        let shape = if item.sig.asyncness.is_some() {
            Shape::Async
        } else if boxed_async_block(&item).is_some() {
            Shape::Boxed
        } else {
            Shape::Blocking
        };
        Ok(Function { item, shape })
    }

    /// The first outer attribute whose path ends in `name` (`db_retry`, `ops_sea::db_retry`).
    pub(crate) fn attr(&self, name: &str) -> Option<&Attribute> {
        self.item.attrs.iter().find(|attr| is_named(attr, name))
    }

    /// Removes and returns the first attribute whose path ends in `name`.
    pub(crate) fn take_attr(&mut self, name: &str) -> Option<Attribute> {
        let position = self
            .item
            .attrs
            .iter()
            .position(|attr| is_named(attr, name))?;
        Some(self.item.attrs.remove(position))
    }

    /// Whether `#[instrument]` (or `#[tracing::instrument]`) stays on the function and will
    /// record its parameters with `Debug`.
    pub(crate) fn is_instrumented(&self) -> bool {
        self.attr("instrument").is_some()
    }

    /// The first parameter whose type is one of `kinds`. A `&mut Session` is an error: a
    /// session is shared, never borrowed mutably.
    pub(crate) fn source_param(&self, kinds: &[SourceKind]) -> syn::Result<Option<SourceParam>> {
        for (index, input) in self.item.sig.inputs.iter().enumerate() {
            let FnArg::Typed(arg) = input else { continue };
            let Type::Reference(reference) = strip(&arg.ty) else {
                continue;
            };
            let Some(kind) = source_kind(reference) else {
                continue;
            };
            if reference.mutability.is_some() {
                return Err(syn::Error::new_spanned(
                    reference,
                    "take the session as `&Session`: a session is shared by the calls it \
                     passes through, never borrowed mutably",
                ));
            }
            if !kinds.contains(&kind) {
                continue;
            }
            let ident = match &*arg.pat {
                Pat::Ident(PatIdent {
                    by_ref: None,
                    subpat: None,
                    ident,
                    ..
                }) => ident.clone(),
                _ => Ident::new("ops_source", Span::mixed_site()),
            };
            return Ok(Some(SourceParam {
                index,
                kind,
                pat: (*arg.pat).clone(),
                ident,
            }));
        }
        Ok(None)
    }

    /// The span of the parameter list, where "missing parameter" errors point.
    pub(crate) fn inputs_span(&self) -> Span {
        self.item.sig.paren_token.span.join()
    }

    /// The return type the body must produce, `impl Trait` replaced by `_`, and the span type
    /// errors should point at: the user's return type, or the function's name when it has none.
    /// For a `Boxed` method, the `Output` of its boxed future.
    pub(crate) fn return_type(&self) -> (Type, Span) {
        let declared = match &self.item.sig.output {
            ReturnType::Type(_, ty) if self.shape == Shape::Boxed => future_output(ty),
            ReturnType::Type(_, ty) => Some((**ty).clone()),
            ReturnType::Default => None,
        };
        match declared {
            Some(mut ty) => {
                let span = ty.span();
                EraseImplTrait.visit_type_mut(&mut ty);
                (ty, span)
            }
            None => {
                let span = self.item.sig.ident.span();
                (syn::parse_quote_spanned!(span=> ()), span)
            }
        }
    }

    /// Whether the body carries its own return edge (`#[async_trait]` writes one).
    pub(crate) fn has_return_edge(&self) -> bool {
        self.shape == Shape::Boxed
    }

    /// The statements that make up the body proper: the function's block, or the async block
    /// `#[async_trait]` boxed.
    pub(crate) fn body(&self) -> TokenStream {
        let stmts = match self.shape {
            Shape::Boxed => match boxed_async_block(&self.item) {
                Some(block) => &block.block.stmts,
                None => &self.item.block.stmts,
            },
            Shape::Async | Shape::Blocking => &self.item.block.stmts,
        };
        quote!(#(#stmts)*)
    }

    /// Replaces the type of the parameter at `index` (the session source) with `ty`.
    pub(crate) fn set_param_type(&mut self, index: usize, ty: Type) {
        if let Some(FnArg::Typed(arg)) = self.item.sig.inputs.iter_mut().nth(index) {
            *arg.ty = ty;
        }
    }

    /// Replaces the pattern of the parameter at `index` with a plain identifier.
    pub(crate) fn set_param_ident(&mut self, index: usize, ident: Ident) {
        if let Some(FnArg::Typed(arg)) = self.item.sig.inputs.iter_mut().nth(index) {
            *arg.pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident,
                subpat: None,
            });
        }
    }

    /// The function with its body replaced by `expr`: for `async fn`, `expr.await`; for a plain
    /// `fn`, `block_on(expr)`; for a boxed method, the async block's contents become
    /// `expr.await`.
    pub(crate) fn with_body(mut self, krate: &TokenStream, expr: TokenStream) -> TokenStream {
        let (_, span) = self.return_type();
        let awaited = {
            let mut awaited = expr.clone();
            awaited.extend(respan(quote!(.await), span));
            awaited
        };
        let body = match self.shape {
            Shape::Async => awaited,
            Shape::Blocking => runtime_call(krate, span, "block_on", expr),
            Shape::Boxed => {
                if let Some(block) = boxed_async_block_mut(&mut self.item) {
                    block.block.stmts = vec![Stmt::Expr(Expr::Verbatim(awaited), None)];
                }
                return self.item.into_token_stream();
            }
        };
        let ItemFn {
            attrs, vis, sig, ..
        } = &self.item;
        let outer = attrs.iter().filter(|a| matches!(a.style, AttrStyle::Outer));
        let inner = attrs
            .iter()
            .filter(|a| matches!(a.style, AttrStyle::Inner(_)));
        quote! {
            #(#outer)*
            #vis #sig {
                #(#inner)*
                #body
            }
        }
    }

    /// The function as it is (after any attribute was taken off), for error recovery.
    pub(crate) fn into_tokens(self) -> TokenStream {
        self.item.into_token_stream()
    }
}

/// A statement, spanned at the return type, that makes the body's type the declared return type
/// before anything else is inferred, so `?` and type errors point at the user's code (tracing's
/// "fake return edge").
pub(crate) fn return_edge(ty: &Type, span: Span) -> TokenStream {
    let var = Ident::new("ops_fake_return", Span::mixed_site());
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #var: #ty = loop {};
            return #var;
        }
    }
}

/// `::ops_sea::__private::method(args)`, the path and the parentheses at the user's return type,
/// so the errors the runtime's bounds raise (not a `Result`, an error type without
/// `From<OpsError>` or `Categorize`) point there and not at the attribute.
pub(crate) fn runtime_call(
    krate: &TokenStream,
    span: Span,
    method: &str,
    args: TokenStream,
) -> TokenStream {
    let method = Ident::new(method, span);
    let mut call = respan(quote!(#krate::__private::#method), span);
    call.extend([in_group(Delimiter::Parenthesis, args, span)]);
    call
}

/// `move |params| async move { body }` with its own tokens at `span` (the body keeps its
/// spans), so that the closure, as an argument of a runtime call, is reported there too.
pub(crate) fn attempt_closure(params: TokenStream, body: TokenStream, span: Span) -> TokenStream {
    let mut closure = respan(quote!(move |#params| async move), span);
    closure.extend([in_group(Delimiter::Brace, body, span)]);
    closure
}

/// The tokens in a group whose delimiters are at `span`.
pub(crate) fn in_group(delimiter: Delimiter, tokens: TokenStream, span: Span) -> TokenTree {
    let mut group = proc_macro2::Group::new(delimiter, tokens);
    group.set_span(span);
    TokenTree::Group(group)
}

/// The tokens with every span replaced by `span`, hygiene included: for paths that resolve the
/// same from anywhere (`::ops_sea::…`) and must count as the user's code, as
/// `Location::caller()` does: at a span of the macro's own, it reports the attribute's line.
pub(crate) fn at_user_span(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                token = in_group(group.delimiter(), at_user_span(group.stream(), span), span);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The tokens with every span moved to `span`, keeping each token's hygiene.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(group.span().located_at(span));
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(token.span().located_at(span));
            }
            token
        })
        .collect()
}

/// Whether the attribute's path ends in `name`.
fn is_named(attr: &Attribute, name: &str) -> bool {
    matches!(attr.style, AttrStyle::Outer)
        && attr
            .path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name)
}

/// What a `&T` parameter is to the macros.
fn source_kind(reference: &TypeReference) -> Option<SourceKind> {
    match strip(&reference.elem) {
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if !last.arguments.is_none() {
                return None;
            }
            if last.ident == "Session" {
                Some(SourceKind::Session)
            } else if last.ident == "Db" {
                Some(SourceKind::Db)
            } else {
                None
            }
        }
        Type::TraitObject(object) => names_source_trait(&object.bounds),
        Type::ImplTrait(object) => names_source_trait(&object.bounds),
        _ => None,
    }
}

fn names_source_trait(
    bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>,
) -> Option<SourceKind> {
    bounds
        .iter()
        .any(|bound| match bound {
            syn::TypeParamBound::Trait(bound) => bound
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "SessionSource"),
            _ => false,
        })
        .then_some(SourceKind::AnySource)
}

/// The type inside parentheses and invisible groups (from `macro_rules!` fragments).
fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => strip(&inner.elem),
        Type::Group(inner) => strip(&inner.elem),
        other => other,
    }
}

/// The span of an item's leading tokens, for "not a function" errors.
fn item_span(item: &syn::Item) -> Span {
    let mut tokens = item.to_token_stream().into_iter();
    // Skip outer attributes (`#` and its bracket group) to point at the keyword.
    loop {
        match tokens.next() {
            Some(proc_macro2::TokenTree::Punct(punct)) if punct.as_char() == '#' => {
                tokens.next();
            }
            Some(token) => return token.span(),
            None => return Span::call_site(),
        }
    }
}

/// The `async move { .. }` inside a trailing `Box::pin(..)`, as `#[async_trait]` writes it.
fn boxed_async_block(item: &ItemFn) -> Option<&syn::ExprAsync> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = item.block.stmts.last() else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let mut segments = func.path.segments.iter().rev();
    let (Some(pin), Some(boxed)) = (segments.next(), segments.next()) else {
        return None;
    };
    if pin.ident != "pin" || boxed.ident != "Box" || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(Expr::Async(block)) => Some(block),
        _ => None,
    }
}

fn boxed_async_block_mut(item: &mut ItemFn) -> Option<&mut syn::ExprAsync> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = item.block.stmts.last_mut() else {
        return None;
    };
    match call.args.first_mut() {
        Some(Expr::Async(block)) => Some(block),
        _ => None,
    }
}

/// `R` in `Pin<Box<dyn Future<Output = R> + Send + 'a>>`.
fn future_output(ty: &Type) -> Option<Type> {
    struct FindOutput(Option<Type>);
    impl VisitMut for FindOutput {
        fn visit_generic_argument_mut(&mut self, arg: &mut GenericArgument) {
            if self.0.is_some() {
                return;
            }
            if let GenericArgument::AssocType(assoc) = arg
                && assoc.ident == "Output"
            {
                self.0 = Some(assoc.ty.clone());
                return;
            }
            syn::visit_mut::visit_generic_argument_mut(self, arg);
        }
    }
    let mut finder = FindOutput(None);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

/// Replaces `impl Trait` with `_`, which a `let` type may hold and a signature's may not.
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](impl_trait.impl_token.span),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> Function {
        Function::parse(tokens, "test").unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn shapes() {
        assert!(
            parse(quote!(
                async fn f() {}
            ))
            .shape
                == Shape::Async
        );
        assert!(
            parse(quote!(
                fn f() {}
            ))
            .shape
                == Shape::Blocking
        );
        let boxed = parse(quote! {
            fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'a>> {
                Box::pin(async move { let __ret: Result<(), E> = { Ok(()) }; __ret })
            }
        });
        assert!(boxed.shape == Shape::Boxed);
        let (ty, _) = boxed.return_type();
        assert_eq!(ty.to_token_stream().to_string(), "Result < () , E >");
    }

    #[test]
    fn sources() {
        let f = parse(quote!(
            async fn f(db: &Db, mut s: &'a ops_sea::Session) {}
        ));
        let source = f
            .source_param(&[SourceKind::Session])
            .ok()
            .flatten()
            .map(|s| (s.index, s.ident.to_string()));
        assert_eq!(source, Some((1, "s".to_owned())));
        let f = parse(quote!(
            async fn f(s: &(dyn SessionSource + Sync)) {}
        ));
        assert!(
            f.source_param(&[SourceKind::AnySource])
                .ok()
                .flatten()
                .is_some()
        );
        let f = parse(quote!(
            async fn f(s: &mut Session) {}
        ));
        assert!(f.source_param(&[SourceKind::Session]).is_err());
        assert!(
            Function::parse(
                quote!(
                    struct S;
                ),
                "test"
            )
            .is_err()
        );
    }

    #[test]
    fn impl_trait_is_erased() {
        let f = parse(quote!(
            async fn f() -> Result<impl Display, E> {}
        ));
        let (ty, _) = f.return_type();
        assert_eq!(ty.to_token_stream().to_string(), "Result < _ , E >");
    }
}
