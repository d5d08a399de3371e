//! The body rules of one function, in one walk over its statements in execution order.
//!
//! The walk keeps the set of sessions opened in the function and not yet finished. Branches
//! (`if`, `match`, loops) are walked from the same state and joined: a session unfinished on any
//! branch that goes on stays unfinished, so "some path" means some path through the syntax. A
//! `return` or a scope's end with an unfinished session is an `unfinished-session` finding; an
//! `.await` on slow I/O while one is alive is `session-held-across-io`. Early exits through `?`
//! are not paths of this rule: on them the session is dropped with the error, which rolls it back.
//!
//! Closures and `async` blocks are functions of their own: a session moved into one (or finished
//! inside it) has a new owner, and their bodies are walked with a fresh state.

use std::collections::BTreeSet;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Block, Expr, Local, Pat, Stmt};

use super::recognize;
use super::{Findings, location};
use crate::rules::Rule;

/// What the walk needs to know about the function around the body.
pub(crate) struct FnContext {
    pub(crate) name: String,
    pub(crate) is_async: bool,
    /// `#[managed_session]`: the whole body runs with a session open.
    pub(crate) managed: bool,
    /// Parameters borrowing the caller's session (`&Session`, `&DatabaseTransaction`).
    pub(crate) borrowed: Vec<String>,
    /// Parameters owning a session (`Session`, `DatabaseTransaction` by value).
    pub(crate) owned: Vec<syn::Ident>,
}

/// Whether control goes on after a statement or expression.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    Continues,
    Diverges,
}

impl Flow {
    fn and(self, other: Flow) -> Flow {
        if self == Flow::Diverges || other == Flow::Diverges {
            Flow::Diverges
        } else {
            Flow::Continues
        }
    }
}

/// A session the function opened (or received by value).
struct Var {
    name: String,
    /// Where it was opened, for messages.
    line: usize,
    column: usize,
    span: Span,
    /// How it came to be: "opened with `db.session()`", "received as parameter".
    origin: String,
}

/// Checks the body of a function.
pub(crate) fn check_body(context: &FnContext, block: &Block, findings: &mut Findings) {
    let mut walker = Walker::new(context.is_async, findings);
    walker.managed = context.managed.then(|| context.name.clone());
    walker.borrowed = context.borrowed.clone();
    walker.scopes.push(Vec::new());
    for ident in &context.owned {
        let (line, column) = location(ident.span());
        walker.declare(Var {
            name: ident.to_string(),
            line,
            column,
            span: ident.span(),
            origin: "received by value".to_owned(),
        });
    }
    let flow = walker.block_inner(block);
    walker.end_scope(flow, "the function");
}

struct Walker<'f> {
    findings: &'f mut Findings,
    vars: Vec<Var>,
    /// The variables declared in each enclosing block, innermost last.
    scopes: Vec<Vec<usize>>,
    /// The scope depth at the start of each enclosing loop body, for `break` and `continue`.
    loops: Vec<usize>,
    /// Sessions opened and not yet finished.
    open: BTreeSet<usize>,
    /// Sessions already reported, so each gets one finding.
    reported: BTreeSet<usize>,
    in_async: bool,
    /// The function's name when it is `#[managed_session]`.
    managed: Option<String>,
    borrowed: Vec<String>,
    /// Variables holding a spawned task's handle.
    spawn_handles: Vec<String>,
}

impl<'f> Walker<'f> {
    fn new(in_async: bool, findings: &'f mut Findings) -> Self {
        Walker {
            findings,
            vars: Vec::new(),
            scopes: Vec::new(),
            loops: Vec::new(),
            open: BTreeSet::new(),
            reported: BTreeSet::new(),
            in_async,
            managed: None,
            borrowed: Vec::new(),
            spawn_handles: Vec::new(),
        }
    }

    fn declare(&mut self, var: Var) {
        let id = self.vars.len();
        self.vars.push(var);
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(id);
        }
        self.open.insert(id);
    }

    /// The innermost variable named `name`.
    fn lookup(&self, name: &str) -> Option<usize> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|scope| scope.iter().rev())
            .copied()
            .find(|&id| self.vars[id].name == name)
    }

    /// The open session an expression names.
    fn open_var(&self, expr: &Expr) -> Option<usize> {
        let ident = recognize::plain_ident(expr)?;
        self.lookup(&ident.to_string())
            .filter(|id| self.open.contains(id))
    }

    fn finish(&mut self, id: usize) {
        self.open.remove(&id);
    }

    fn report_unfinished(&mut self, id: usize, how: &str) {
        self.open.remove(&id);
        if !self.reported.insert(id) {
            return;
        }
        let var = &self.vars[id];
        let message = format!(
            "session `{}` ({}) is neither committed nor rolled back nor returned on every path: \
             {how}",
            var.name, var.origin
        );
        let help = format!(
            "call `{0}.commit().await?` or `{0}.rollback().await?` on that path, or let \
             `#[managed_session]` / `db.run(..)` own the session",
            var.name
        );
        let span = var.span;
        self.findings
            .push(Rule::UnfinishedSession, span, message, help);
    }

    /// Reports every open session declared at scope depth `from` or deeper.
    fn report_scopes_from(&mut self, from: usize, how: &str) {
        let ids: Vec<usize> = self.scopes[from.min(self.scopes.len())..]
            .iter()
            .flatten()
            .copied()
            .filter(|id| self.open.contains(id))
            .collect();
        for id in ids {
            self.report_unfinished(id, how);
        }
    }

    fn end_scope(&mut self, flow: Flow, what: &str) {
        let scope = self.scopes.pop().unwrap_or_default();
        for id in scope {
            if self.open.contains(&id) {
                if flow == Flow::Continues {
                    let var = &self.vars[id];
                    let how = format!(
                        "it is still open at the end of {what} (opened at {}:{}), where it is \
                         dropped unfinished",
                        var.line, var.column
                    );
                    self.report_unfinished(id, &how);
                } else {
                    self.open.remove(&id);
                }
            }
        }
    }

    fn block(&mut self, block: &Block) -> Flow {
        self.scopes.push(Vec::new());
        let flow = self.block_inner(block);
        self.end_scope(flow, "its block");
        flow
    }

    /// The statements of a block, in the current scope.
    fn block_inner(&mut self, block: &Block) -> Flow {
        for stmt in &block.stmts {
            if self.stmt(stmt) == Flow::Diverges {
                return Flow::Diverges;
            }
        }
        Flow::Continues
    }

    fn stmt(&mut self, stmt: &Stmt) -> Flow {
        match stmt {
            Stmt::Local(local) => self.local(local),
            Stmt::Item(item) => {
                super::items(std::slice::from_ref(item), self.findings);
                Flow::Continues
            }
            Stmt::Expr(expr, semi) => {
                if semi.is_some()
                    && let Some(call) = recognize::opened_session(expr)
                {
                    let flow = self.expr(&call.receiver);
                    for arg in &call.args {
                        self.expr(arg);
                    }
                    self.dropped_at_once(call, "it is opened and dropped in the same statement");
                    return flow;
                }
                self.expr(expr)
            }
            Stmt::Macro(mac) => self.mac(&mac.mac),
        }
    }

    fn dropped_at_once(&mut self, call: &syn::ExprMethodCall, how: &str) {
        let method = &call.method;
        self.findings.push(
            Rule::UnfinishedSession,
            method.span(),
            format!(
                "the session opened with `.{method}()` is never committed or rolled back: {how}"
            ),
            "bind it (`let session = ...`) and call `session.commit().await?` when the work is \
             done, or use `#[managed_session]` / `db.run(..)`",
        );
    }

    fn local(&mut self, local: &Local) -> Flow {
        let Some(init) = &local.init else {
            return Flow::Continues;
        };
        let name = match &local.pat {
            Pat::Ident(ident) => Some(ident.ident.clone()),
            Pat::Type(typed) => match &*typed.pat {
                Pat::Ident(ident) => Some(ident.ident.clone()),
                _ => None,
            },
            _ => None,
        };
        let is_wildcard = matches!(&local.pat, Pat::Wild(_));
        let flow;
        if let Some(call) = recognize::opened_session(&init.expr) {
            flow = self.expr(&call.receiver);
            for arg in &call.args {
                self.expr(arg);
            }
            match &name {
                Some(ident) => {
                    let (line, column) = location(ident.span());
                    let receiver = quote::ToTokens::to_token_stream(&call.receiver)
                        .to_string()
                        .replace(' ', "");
                    self.declare(Var {
                        name: ident.to_string(),
                        line,
                        column,
                        span: ident.span(),
                        origin: format!("opened with `{receiver}.{}()`", call.method),
                    });
                }
                None if is_wildcard => {
                    self.dropped_at_once(call, "`let _ = ...` drops it at once");
                }
                None => {}
            }
        } else if let (Some(ident), Some(from)) = (&name, self.open_var(&init.expr)) {
            // `let b = a;` moves the session: follow it under its new name.
            self.finish(from);
            let var = &self.vars[from];
            let (line, column, origin) = (var.line, var.column, var.origin.clone());
            self.declare(Var {
                name: ident.to_string(),
                line,
                column,
                span: ident.span(),
                origin,
            });
            flow = Flow::Continues;
        } else {
            if let Some(ident) = &name
                && recognize::is_spawn(&init.expr)
            {
                self.spawn_handles.push(ident.to_string());
            }
            flow = self.expr(&init.expr);
        }
        if let Some((_, diverge)) = &init.diverge {
            // `let .. else { .. }`: the else branch runs from the same state and must diverge.
            let saved = self.open.clone();
            self.expr(diverge);
            self.open = saved;
        }
        flow
    }

    /// Walks the expressions in order; diverges if any does.
    fn exprs<'e>(&mut self, exprs: impl IntoIterator<Item = &'e Expr>) -> Flow {
        let mut flow = Flow::Continues;
        for expr in exprs {
            flow = flow.and(self.expr(expr));
        }
        flow
    }

    /// An expression used by value: a session named here is moved to a new owner.
    fn moved(&mut self, expr: &Expr) -> Flow {
        if let Some(id) = self.open_var(expr) {
            self.finish(id);
            return Flow::Continues;
        }
        self.expr(expr)
    }

    fn expr(&mut self, expr: &Expr) -> Flow {
        match expr {
            Expr::MethodCall(call) => self.method_call(call),
            Expr::Call(call) => self.call(call),
            Expr::Await(await_) => {
                let flow = self.expr(&await_.base);
                self.check_await(await_);
                flow
            }
            Expr::Return(ret) => {
                let flow = match &ret.expr {
                    Some(value) => self.moved(value),
                    None => Flow::Continues,
                };
                if flow == Flow::Continues {
                    let (line, column) = location(ret.return_token.span);
                    self.report_scopes_from(
                        0,
                        &format!("the `return` at {line}:{column} leaves it unfinished"),
                    );
                }
                Flow::Diverges
            }
            Expr::Break(brk) => {
                if let Some(value) = &brk.expr {
                    self.moved(value);
                }
                self.loop_exit(brk.break_token.span, "break");
                Flow::Diverges
            }
            Expr::Continue(cont) => {
                self.loop_exit(cont.continue_token.span, "continue");
                Flow::Diverges
            }
            Expr::If(if_) => {
                let flow = self.expr(&if_.cond);
                if flow == Flow::Diverges {
                    return flow;
                }
                let before = self.open.clone();
                let then_flow = self.block(&if_.then_branch);
                let after_then = std::mem::replace(&mut self.open, before);
                let else_flow = match &if_.else_branch {
                    Some((_, else_)) => self.expr(else_),
                    None => Flow::Continues,
                };
                self.join(&[(then_flow, after_then)], else_flow)
            }
            Expr::Match(match_) => {
                let flow = self.expr(&match_.expr);
                if flow == Flow::Diverges {
                    return flow;
                }
                let before = self.open.clone();
                let mut branches = Vec::new();
                for arm in &match_.arms {
                    self.open = before.clone();
                    if let Some((_, guard)) = &arm.guard {
                        self.expr(guard);
                    }
                    let flow = self.moved(&arm.body);
                    branches.push((flow, std::mem::take(&mut self.open)));
                }
                if branches.is_empty() {
                    self.open = before;
                    return Flow::Continues;
                }
                let (last_flow, last) = branches.pop().unwrap_or((Flow::Diverges, before));
                self.open = last;
                self.join(&branches, last_flow)
            }
            Expr::While(while_) => {
                let flow = self.expr(&while_.cond);
                self.loop_body(&while_.body);
                flow
            }
            Expr::ForLoop(for_) => {
                let flow = self.expr(&for_.expr);
                self.loop_body(&for_.body);
                flow
            }
            Expr::Loop(loop_) => {
                self.loop_body(&loop_.body);
                Flow::Continues
            }
            Expr::Block(block) => self.block(&block.block),
            Expr::Unsafe(block) => self.block(&block.block),
            Expr::Async(async_) => {
                self.nested_body(async_.capture.is_some(), &async_.block, true);
                Flow::Continues
            }
            Expr::Closure(closure) => {
                let body = syn::Block {
                    brace_token: Default::default(),
                    stmts: vec![Stmt::Expr((*closure.body).clone(), None)],
                };
                self.nested_body(
                    closure.capture.is_some(),
                    &body,
                    closure.asyncness.is_some(),
                );
                Flow::Continues
            }
            Expr::Macro(mac) => self.mac(&mac.mac),
            Expr::Try(try_) => self.expr(&try_.expr),
            Expr::Paren(inner) => self.expr(&inner.expr),
            Expr::Group(inner) => self.expr(&inner.expr),
            Expr::Reference(reference) => {
                if self.open_var(&reference.expr).is_some() {
                    Flow::Continues
                } else {
                    self.expr(&reference.expr)
                }
            }
            Expr::Path(_) => {
                if let Some(id) = self.open_var(expr) {
                    self.finish(id);
                }
                Flow::Continues
            }
            Expr::Field(field) => {
                if self.open_var(&field.base).is_some() {
                    Flow::Continues
                } else {
                    self.expr(&field.base)
                }
            }
            Expr::Struct(struct_) => {
                let mut flow = Flow::Continues;
                for field in &struct_.fields {
                    flow = flow.and(self.moved(&field.expr));
                }
                if let Some(rest) = &struct_.rest {
                    flow = flow.and(self.expr(rest));
                }
                flow
            }
            Expr::Tuple(tuple) => self.moved_all(tuple.elems.iter()),
            Expr::Array(array) => self.moved_all(array.elems.iter()),
            Expr::Assign(assign) => {
                let flow = self.moved(&assign.right);
                flow.and(self.expr(&assign.left))
            }
            Expr::Binary(binary) => self.exprs([&*binary.left, &*binary.right]),
            Expr::Unary(unary) => self.expr(&unary.expr),
            Expr::Cast(cast) => self.expr(&cast.expr),
            Expr::Index(index) => self.exprs([&*index.expr, &*index.index]),
            Expr::Let(let_) => self.expr(&let_.expr),
            Expr::Range(range) => {
                self.exprs(range.start.iter().chain(range.end.iter()).map(|e| &**e))
            }
            Expr::Repeat(repeat) => self.expr(&repeat.expr),
            Expr::TryBlock(block) => self.block(&block.block),
            _ => Flow::Continues,
        }
    }

    fn moved_all<'e>(&mut self, exprs: impl Iterator<Item = &'e Expr>) -> Flow {
        let mut flow = Flow::Continues;
        for expr in exprs {
            flow = flow.and(self.moved(expr));
        }
        flow
    }

    /// Joins branch states: the current state (the last branch, with `last_flow`) and `others`.
    /// Sessions open at the end of any branch that goes on stay open.
    fn join(&mut self, others: &[(Flow, BTreeSet<usize>)], last_flow: Flow) -> Flow {
        let mut joined = if last_flow == Flow::Continues {
            std::mem::take(&mut self.open)
        } else {
            BTreeSet::new()
        };
        let mut flow = last_flow;
        for (branch_flow, open) in others {
            if *branch_flow == Flow::Continues {
                joined.extend(open.iter().copied());
                flow = Flow::Continues;
            }
        }
        self.open = joined;
        flow
    }

    fn loop_body(&mut self, body: &Block) {
        let before = self.open.clone();
        self.loops.push(self.scopes.len());
        self.block(body);
        self.loops.pop();
        // The body may run zero times: what was open before stays open.
        self.open.extend(before);
    }

    fn loop_exit(&mut self, span: Span, keyword: &str) {
        if let Some(&depth) = self.loops.last() {
            let (line, column) = location(span);
            self.report_scopes_from(
                depth,
                &format!("the `{keyword}` at {line}:{column} leaves it unfinished"),
            );
        }
    }

    /// A closure or `async` block: sessions it captures by move have a new owner; its body is a
    /// function of its own.
    fn nested_body(&mut self, moves: bool, body: &Block, is_async: bool) {
        let captured = mentioned(body, &self.open_names());
        for name in captured {
            if moves && let Some(id) = self.lookup(&name) {
                self.finish(id);
            }
        }
        let finished_inside = finished_names(body);
        for name in finished_inside {
            if let Some(id) = self.lookup(&name) {
                self.finish(id);
            }
        }
        let mut inner = Walker::new(is_async, self.findings);
        inner.scopes.push(Vec::new());
        let flow = inner.block_inner(body);
        inner.end_scope(flow, "the closure");
    }

    fn open_names(&self) -> Vec<String> {
        self.open
            .iter()
            .map(|&id| self.vars[id].name.clone())
            .collect()
    }

    fn method_call(&mut self, call: &syn::ExprMethodCall) -> Flow {
        let method = call.method.to_string();
        if let Some(id) = self.open_var(&call.receiver) {
            if matches!(method.as_str(), "commit" | "rollback") {
                self.finish(id);
            }
        } else {
            let flow = self.expr(&call.receiver);
            if flow == Flow::Diverges {
                return flow;
            }
        }
        for literal in recognize::sql_literals_of_method(call) {
            self.raw_sql(&literal, &format!(".{method}(..)"));
        }
        if method == "block_on" {
            self.blocking(call.method.span(), &format!(".{method}(..)"));
        }
        let mut flow = Flow::Continues;
        for arg in &call.args {
            flow = flow.and(self.moved(arg));
        }
        flow
    }

    fn call(&mut self, call: &syn::ExprCall) -> Flow {
        if let Some(what) = recognize::forgetting_call(call)
            && let Some(arg) = call.args.first()
        {
            let target = self.open_var(arg).or_else(|| {
                recognize::plain_ident(arg).and_then(|ident| self.lookup(&ident.to_string()))
            });
            let opened = recognize::opened_session(arg).is_some();
            if target.is_some() || opened {
                let name = match target {
                    Some(id) => {
                        self.open.remove(&id);
                        self.reported.insert(id);
                        format!("session `{}`", self.vars[id].name)
                    }
                    None => "a session".to_owned(),
                };
                self.findings.push(
                    Rule::ForgottenSession,
                    call.func.span(),
                    format!(
                        "`{what}` of {name}: it is never committed or rolled back, its \
                             connection never returns to the pool and its locks are held until \
                             the server drops the connection"
                    ),
                    "commit or roll back the session instead (`.rollback().await?` ends it \
                         early); move it to the owner that will finish it if it must outlive \
                         this scope",
                );
                return Flow::Continues;
            }
        }
        if recognize::is_drop(call)
            && let Some(arg) = call.args.first()
            && let Some(id) = self.open_var(arg)
        {
            let (line, column) = location(call.func.span());
            self.report_unfinished(
                id,
                &format!("`drop` at {line}:{column} drops it unfinished"),
            );
            return Flow::Continues;
        }
        for literal in recognize::sql_literals_of_call(call) {
            let path = recognize::call_path(call).join("::");
            self.raw_sql(&literal, &format!("{path}(..)"));
        }
        if let Some(path) = recognize::blocking_call(call) {
            self.blocking(call.func.span(), &format!("{path}(..)"));
        }
        if recognize::call_path(call)
            .last()
            .is_some_and(|last| matches!(last.as_str(), "panic" | "exit" | "abort"))
        {
            self.exprs(call.args.iter());
            return Flow::Diverges;
        }
        let mut flow = self.expr(&call.func);
        for arg in &call.args {
            flow = flow.and(self.moved(arg));
        }
        flow
    }

    fn mac(&mut self, mac: &syn::Macro) -> Flow {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        // Arguments of expression-like macros (`assert!`, `println!`, `vec!`) are read so that
        // calls inside them are checked; a session named in them is only borrowed.
        if let Ok(args) = mac
            .parse_body_with(syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated)
        {
            for arg in &args {
                if self.open_var(arg).is_none() {
                    self.expr(arg);
                }
            }
        }
        if matches!(
            name.as_str(),
            "panic" | "unreachable" | "todo" | "unimplemented"
        ) {
            Flow::Diverges
        } else {
            Flow::Continues
        }
    }

    fn check_await(&mut self, await_: &syn::ExprAwait) {
        if !self.in_async {
            return;
        }
        let holder = if let Some(&id) = self.open.iter().next() {
            let var = &self.vars[id];
            format!(
                "while session `{}` (opened at {}:{}) holds a connection inside its transaction",
                var.name, var.line, var.column
            )
        } else if let Some(name) = &self.managed {
            format!(
                "inside `#[managed_session]` function `{name}`, whose session holds a connection \
                 inside its transaction"
            )
        } else if let Some(name) = self.borrowed.first() {
            format!("while the caller's session `{name}` holds a connection inside its transaction")
        } else {
            return;
        };
        let Some(what) = recognize::slow_io(&await_.base, &self.spawn_handles) else {
            return;
        };
        self.findings.push(
            Rule::SessionHeldAcrossIo,
            await_.await_token.span(),
            format!("`.await` on {what} {holder}"),
            "do this I/O before the session opens or after it commits: keep the transaction to \
             the database work (a stuck remote service otherwise holds the connection and its \
             locks, and exhausts the pool)",
        );
    }

    fn raw_sql(&mut self, literal: &syn::LitStr, via: &str) {
        if let Some(statement) = recognize::transaction_statement(&literal.value()) {
            self.findings.push(
                Rule::RawTransactionSql,
                literal.span(),
                format!(
                    "raw transaction statement `{statement}` sent with `{via}`: the pool and the \
                     session tracker do not know this connection is inside a transaction"
                ),
                "open a session instead (`let session = db.session().await?; ...; \
                 session.commit().await?`), or use `#[managed_session]` / `db.run(..)`; \
                 isolation and read-only mode are `SessionOptions`",
            );
        }
    }

    fn blocking(&mut self, span: Span, what: &str) {
        if !self.in_async {
            return;
        }
        self.findings.push(
            Rule::BlockOnInAsync,
            span,
            format!(
                "`{what}` blocks the executor thread inside async code: on a current-thread \
                 runtime it deadlocks, on a multi-thread runtime it stalls the worker's tasks"
            ),
            "`.await` the future instead; synchronous code that must call async code belongs in \
             `tokio::task::spawn_blocking(move || ...)`",
        );
    }
}

/// The names among `names` mentioned anywhere in `body`.
fn mentioned(body: &Block, names: &[String]) -> Vec<String> {
    struct Mentions<'n> {
        names: &'n [String],
        found: Vec<String>,
    }
    impl<'ast> syn::visit::Visit<'ast> for Mentions<'_> {
        fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
            if let Some(ident) = path.path.get_ident() {
                let name = ident.to_string();
                if self.names.contains(&name) && !self.found.contains(&name) {
                    self.found.push(name);
                }
            }
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            for token in mac.tokens.clone() {
                if let proc_macro2::TokenTree::Ident(ident) = token {
                    let name = ident.to_string();
                    if self.names.contains(&name) && !self.found.contains(&name) {
                        self.found.push(name);
                    }
                }
            }
        }
    }
    let mut visitor = Mentions {
        names,
        found: Vec::new(),
    };
    syn::visit::Visit::visit_block(&mut visitor, body);
    visitor.found
}

/// The variables `body` commits or rolls back (`name.commit()`, `name.rollback()`).
fn finished_names(body: &Block) -> Vec<String> {
    struct Finishes(Vec<String>);
    impl<'ast> syn::visit::Visit<'ast> for Finishes {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if matches!(call.method.to_string().as_str(), "commit" | "rollback")
                && let Some(ident) = recognize::plain_ident(&call.receiver)
            {
                self.0.push(ident.to_string());
            }
            syn::visit::visit_expr_method_call(self, call);
        }
    }
    let mut visitor = Finishes(Vec::new());
    syn::visit::Visit::visit_block(&mut visitor, body);
    visitor.0
}
