//! Analysis of one parsed file: every function (free, in impls, in traits, nested in bodies and
//! inline modules) is checked on its own, since the scanner reasons about one function at a time.

mod flow;
mod recognize;

use proc_macro2::Span;
use syn::{Attribute, FnArg, ImplItem, Item, Pat, Signature, TraitItem};

use crate::rules::Rule;

/// A finding before suppression: where, which rule, what is wrong and the fix.
#[derive(Clone, Debug)]
pub(crate) struct RawFinding {
    pub(crate) rule: Rule,
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// How many columns to underline (the span's width on its first line).
    pub(crate) width: usize,
    pub(crate) message: String,
    pub(crate) help: String,
}

/// The 1-based line and column where `span` starts.
pub(crate) fn location(span: Span) -> (usize, usize) {
    let start = span.start();
    (start.line, start.column + 1)
}

/// Collects the findings of one file.
#[derive(Default)]
pub(crate) struct Findings {
    pub(crate) found: Vec<RawFinding>,
}

impl Findings {
    pub(crate) fn push(
        &mut self,
        rule: Rule,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let (line, column) = location(span);
        let end = span.end();
        let width = if end.line == line {
            (end.column + 1).saturating_sub(column).max(1)
        } else {
            1
        };
        self.found.push(RawFinding {
            rule,
            line,
            column,
            width,
            message: message.into(),
            help: help.into(),
        });
    }
}

/// Every finding in a parsed file, in source order.
pub(crate) fn analyze_file(file: &syn::File) -> Vec<RawFinding> {
    let mut findings = Findings::default();
    items(&file.items, &mut findings);
    findings.found.sort_by_key(|f| (f.line, f.column, f.rule));
    findings.found.dedup_by(|a, b| {
        (a.line, a.column, a.rule, &a.message) == (b.line, b.column, b.rule, &b.message)
    });
    findings.found
}

pub(crate) fn items(items: &[Item], findings: &mut Findings) {
    for item in items {
        match item {
            Item::Fn(item) => function(&item.attrs, &item.sig, &item.block, false, findings),
            Item::Impl(imp) => {
                let in_trait_impl = imp.trait_.is_some();
                for item in &imp.items {
                    if let ImplItem::Fn(method) = item {
                        function(
                            &method.attrs,
                            &method.sig,
                            &method.block,
                            in_trait_impl,
                            findings,
                        );
                    }
                }
            }
            Item::Trait(trait_) => {
                for item in &trait_.items {
                    if let TraitItem::Fn(method) = item
                        && let Some(block) = &method.default
                    {
                        function(&method.attrs, &method.sig, block, true, findings);
                    }
                }
            }
            Item::Mod(module) => {
                if let Some((_, content)) = &module.content {
                    self::items(content, findings);
                }
            }
            _ => {}
        }
    }
}

/// Whether one of `attrs` is the attribute `name` by any path (`#[managed_session]`,
/// `#[ops_sea::managed_session(..)]`).
fn has_attr<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name)
    })
}

/// A parameter given the caller's session: its name and the borrowed type.
struct BorrowedSession {
    name: String,
    ty: String,
    span: Span,
}

/// Checks one function: the signature rule here, the body's rules in `flow`.
fn function(
    attrs: &[Attribute],
    sig: &Signature,
    block: &syn::Block,
    fixed_signature: bool,
    findings: &mut Findings,
) {
    let managed = has_attr(attrs, "managed_session").is_some();
    let mut borrowed = Vec::new();
    let mut owned = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        let name = match &*arg.pat {
            Pat::Ident(ident) => ident.ident.to_string(),
            _ => "_".to_owned(),
        };
        if let Some(ty) = recognize::borrowed_session_type(&arg.ty) {
            borrowed.push(BorrowedSession {
                name,
                ty,
                span: syn::spanned::Spanned::span(&arg.ty),
            });
        } else if recognize::is_session_type(&arg.ty)
            && let Pat::Ident(ident) = &*arg.pat
        {
            owned.push(ident.ident.clone());
        }
    }
    caller_session(attrs, sig, &borrowed, managed, fixed_signature, findings);
    let context = flow::FnContext {
        name: sig.ident.to_string(),
        is_async: sig.asyncness.is_some(),
        managed,
        borrowed: borrowed.iter().map(|b| b.name.clone()).collect(),
        owned,
    };
    flow::check_body(&context, block, findings);
}

/// The `caller-session-parameter` rule.
fn caller_session(
    attrs: &[Attribute],
    sig: &Signature,
    borrowed: &[BorrowedSession],
    managed: bool,
    fixed_signature: bool,
    findings: &mut Findings,
) {
    let name = &sig.ident;
    if let Some(retry) = has_attr(attrs, "db_retry")
        && !managed
        && let Some(param) = borrowed.first()
    {
        findings.push(
            Rule::CallerSessionParameter,
            syn::spanned::Spanned::span(retry),
            format!(
                "`#[db_retry]` on `{name}`, which receives its caller's session `{}: &{}`, never \
                 retries: a retryable error (deadlock, serialization failure, lost connection) \
                 aborts the caller's whole transaction, and no retry inside it can recover",
                param.name, param.ty
            ),
            "put `#[db_retry]` on the function that opens the session, stacked above its \
             `#[managed_session]`, and call that with a `&Db`; or add `#[managed_session]` below \
             `#[db_retry]` here so callers passing a `&Db` get a fresh session per attempt",
        );
    }
    if fixed_signature || managed {
        return;
    }
    for param in borrowed.iter().filter(|p| p.ty == "DatabaseTransaction") {
        findings.push(
            Rule::CallerSessionParameter,
            param.span,
            format!(
                "`{name}` takes a raw transaction `{}: &DatabaseTransaction` that its caller must \
                 open, commit and roll back by hand",
                param.name
            ),
            format!(
                "take `{}: &Session` and add `#[managed_session]`: callers pass a `&Db` (a \
                 session is opened, committed on `Ok`, rolled back on `Err`) or their own \
                 `&Session` (joined)",
                param.name
            ),
        );
    }
}
