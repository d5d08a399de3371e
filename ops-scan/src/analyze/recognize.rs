//! Recognizers: the shapes of syntax each rule looks for (an opened session, slow I/O, a blocking
//! bridge, raw transaction SQL, session types). They read the syntax tree only; the scanner has
//! no type information, so each recognizer names exactly the calls its rule's page lists.

use syn::{Expr, ExprCall, ExprMethodCall, Lit, Type};

/// Methods that open a session or transaction, with their argument counts.
const OPENERS: &[(&str, usize)] = &[
    ("session", 0),
    ("session_with", 1),
    ("begin", 0),
    ("begin_with_config", 2),
    ("begin_with_options", 1),
    ("nested", 0),
];

/// The call that opens a session in `expr`, when `expr` is an awaited opener possibly followed by
/// `?`, `.unwrap()` or `.expect(..)`: `db.session().await?`, `conn.begin().await.unwrap()`.
pub(crate) fn opened_session(expr: &Expr) -> Option<&ExprMethodCall> {
    let mut expr = expr;
    let mut awaited = false;
    loop {
        match expr {
            Expr::Paren(inner) => expr = &inner.expr,
            Expr::Group(inner) => expr = &inner.expr,
            Expr::Try(inner) => expr = &inner.expr,
            Expr::Await(inner) => {
                awaited = true;
                expr = &inner.base;
            }
            Expr::MethodCall(call)
                if !awaited && matches!(call.method.to_string().as_str(), "unwrap" | "expect") =>
            {
                expr = &call.receiver;
            }
            Expr::MethodCall(call) if awaited => {
                let name = call.method.to_string();
                return OPENERS
                    .iter()
                    .any(|(method, args)| *method == name && *args == call.args.len())
                    .then_some(call);
            }
            _ => return None,
        }
    }
}

/// The single identifier an expression names (`session`, `(session)`), if it is one.
pub(crate) fn plain_ident(expr: &Expr) -> Option<&syn::Ident> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.path.segments.len() == 1 => {
            let segment = &path.path.segments[0];
            segment.arguments.is_none().then_some(&segment.ident)
        }
        Expr::Paren(inner) => plain_ident(&inner.expr),
        Expr::Group(inner) => plain_ident(&inner.expr),
        _ => None,
    }
}

/// The segments of a called path: `tokio::time::sleep(..)` gives `["tokio", "time", "sleep"]`.
pub(crate) fn call_path(call: &ExprCall) -> Vec<String> {
    match &*call.func {
        Expr::Path(path) => path
            .path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// What kind of slow, non-database I/O an awaited expression is, when the scanner can tell.
pub(crate) fn slow_io(base: &Expr, spawn_handles: &[String]) -> Option<String> {
    match base {
        Expr::Paren(inner) => slow_io(&inner.expr, spawn_handles),
        Expr::Group(inner) => slow_io(&inner.expr, spawn_handles),
        Expr::Call(call) => {
            let path = call_path(call);
            let last = path.last().map(String::as_str).unwrap_or_default();
            let first = path.first().map(String::as_str).unwrap_or_default();
            match last {
                "sleep" | "sleep_until" | "delay_for" => {
                    Some(format!("a timer (`{}`)", path.join("::")))
                }
                "spawn" | "spawn_blocking" | "spawn_local" => {
                    Some("a spawned task's join".to_owned())
                }
                _ if first == "reqwest" => Some(format!("an HTTP request (`{}`)", path.join("::"))),
                _ if path.len() > 1 && path[path.len() - 2] == "fs" => {
                    Some(format!("file I/O (`{}`)", path.join("::")))
                }
                _ => None,
            }
        }
        Expr::MethodCall(call) => {
            let method = call.method.to_string();
            match (method.as_str(), call.args.len()) {
                ("send", 0) => Some("an HTTP request (`.send()`)".to_owned()),
                ("send", 1) => Some("a channel send (`.send(..)`)".to_owned()),
                ("recv" | "recv_async", 0) => Some("a channel receive (`.recv()`)".to_owned()),
                ("changed", 0) => Some("a watch channel (`.changed()`)".to_owned()),
                ("json" | "text" | "bytes" | "chunk", 0) => {
                    Some(format!("an HTTP response body (`.{method}()`)"))
                }
                ("tick", 0) => Some("a timer (`.tick()`)".to_owned()),
                ("join_next", 0) => Some("a spawned task's join (`.join_next()`)".to_owned()),
                _ => None,
            }
        }
        Expr::Path(_) => {
            let name = plain_ident(base)?.to_string();
            spawn_handles
                .contains(&name)
                .then(|| format!("a spawned task's join (`{name}`)"))
        }
        _ => None,
    }
}

/// Whether `init` spawns a task whose handle can be awaited: `tokio::spawn(..)`.
pub(crate) fn is_spawn(init: &Expr) -> bool {
    match init {
        Expr::Call(call) => matches!(
            call_path(call).last().map(String::as_str),
            Some("spawn" | "spawn_blocking" | "spawn_local")
        ),
        _ => false,
    }
}

/// The functions of `ops_sea::blocking` that block the calling thread.
const BLOCKING_BRIDGE: &[&str] = &[
    "block_on",
    "connect",
    "connect_from_env",
    "connect_with",
    "connect_builder",
    "run",
];

/// The blocking bridge a call is, when it is one: `block_on` by any path, or a blocking function
/// of `ops_sea::blocking`.
pub(crate) fn blocking_call(call: &ExprCall) -> Option<String> {
    let path = call_path(call);
    let last = path.last()?;
    let in_blocking = path.len() >= 2
        && path[path.len() - 2] == "blocking"
        && BLOCKING_BRIDGE.contains(&last.as_str());
    (last == "block_on" || in_blocking).then(|| path.join("::"))
}

/// Whether a call is `std::mem::forget` (by any path ending in `forget`) or `ManuallyDrop::new`.
pub(crate) fn forgetting_call(call: &ExprCall) -> Option<String> {
    let path = call_path(call);
    let is_forget = path.last().is_some_and(|last| last == "forget")
        && (path.len() == 1 || path[path.len() - 2] == "mem");
    let is_manually_drop =
        path.len() >= 2 && path[path.len() - 2] == "ManuallyDrop" && path[path.len() - 1] == "new";
    (is_forget || is_manually_drop).then(|| path.join("::"))
}

/// Whether a call is `drop(..)` or `mem::drop(..)`.
pub(crate) fn is_drop(call: &ExprCall) -> bool {
    let path = call_path(call);
    path.last().is_some_and(|last| last == "drop")
        && (path.len() == 1 || path[path.len() - 2] == "mem")
}

/// The string literals passed as SQL by a call: `execute_unprepared("..")`, `raw_sql("..")`,
/// `Statement::from_string(backend, "..")`, and the literal of a `format!` in their place.
pub(crate) fn sql_literals_of_method(call: &ExprMethodCall) -> Vec<syn::LitStr> {
    match call.method.to_string().as_str() {
        "execute_unprepared" => call.args.iter().filter_map(literal_sql).collect(),
        _ => Vec::new(),
    }
}

/// See [`sql_literals_of_method`].
pub(crate) fn sql_literals_of_call(call: &ExprCall) -> Vec<syn::LitStr> {
    let path = call_path(call);
    let last = path.last().map(String::as_str).unwrap_or_default();
    let is_statement =
        path.len() >= 2 && path[path.len() - 2] == "Statement" && last.starts_with("from_");
    if is_statement || last == "raw_sql" {
        call.args.iter().filter_map(literal_sql).collect()
    } else {
        Vec::new()
    }
}

/// The string literal an argument is: `"BEGIN"`, `&"BEGIN"`, `"BEGIN".to_owned()`,
/// `format!("BEGIN ..")`, `&format!(..)`.
fn literal_sql(arg: &Expr) -> Option<syn::LitStr> {
    match arg {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(text) => Some(text.clone()),
            _ => None,
        },
        Expr::Reference(inner) => literal_sql(&inner.expr),
        Expr::Paren(inner) => literal_sql(&inner.expr),
        Expr::Group(inner) => literal_sql(&inner.expr),
        Expr::MethodCall(call)
            if matches!(
                call.method.to_string().as_str(),
                "to_owned" | "to_string" | "into" | "as_str"
            ) =>
        {
            literal_sql(&call.receiver)
        }
        Expr::Macro(mac) if mac.mac.path.is_ident("format") => {
            let args = mac
                .mac
                .parse_body_with(
                    syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated,
                )
                .ok()?;
            args.first().and_then(literal_sql)
        }
        _ => None,
    }
}

/// The transaction statement in a piece of SQL, when one of its `;`-separated statements is one:
/// `BEGIN`, `START TRANSACTION`, `COMMIT`, `ROLLBACK` (not `ROLLBACK TO` a savepoint), `END`.
pub(crate) fn transaction_statement(sql: &str) -> Option<String> {
    sql.split(';').find_map(|statement| {
        let words: Vec<String> = strip_comments(statement)
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        let word = |i: usize| words.get(i).map(String::as_str);
        let is_transaction = match word(0)? {
            "BEGIN" => matches!(
                word(1),
                None | Some(
                    "TRANSACTION"
                        | "WORK"
                        | "DEFERRED"
                        | "IMMEDIATE"
                        | "EXCLUSIVE"
                        | "ISOLATION"
                        | "READ"
                )
            ),
            "START" => word(1) == Some("TRANSACTION"),
            "COMMIT" | "END" => matches!(word(1), None | Some("TRANSACTION" | "WORK" | "AND")),
            "ROLLBACK" => !matches!(word(1), Some("TO")) && word(2) != Some("TO"),
            _ => false,
        };
        is_transaction.then(|| words.join(" "))
    })
}

/// SQL with its leading `--` and `/* */` comments removed.
fn strip_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .split_once('\n')
                .map_or("", |(_, tail)| tail)
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .split_once("*/")
                .map_or("", |(_, tail)| tail)
                .trim_start();
        } else {
            return rest;
        }
    }
}

/// Whether a type names a session or transaction by value: `Session`, `DatabaseTransaction`.
pub(crate) fn is_session_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path.path.segments.last().is_some_and(|segment| {
            matches!(
                segment.ident.to_string().as_str(),
                "Session" | "DatabaseTransaction"
            )
        }),
        Type::Paren(inner) => is_session_type(&inner.elem),
        Type::Group(inner) => is_session_type(&inner.elem),
        _ => false,
    }
}

/// The session type a reference parameter borrows: `&Session` gives `Some("Session")`.
pub(crate) fn borrowed_session_type(ty: &Type) -> Option<String> {
    match ty {
        Type::Reference(reference) if is_session_type(&reference.elem) => match &*reference.elem {
            Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_statements() {
        for sql in [
            "BEGIN",
            "begin",
            " BEGIN TRANSACTION",
            "START TRANSACTION",
            "start transaction read only",
            "COMMIT",
            "commit work",
            "ROLLBACK",
            "END",
            "UPDATE t SET a = 1; COMMIT",
            "-- open\nBEGIN IMMEDIATE",
            "/* x */ BEGIN",
        ] {
            assert!(transaction_statement(sql).is_some(), "{sql}");
        }
        for sql in [
            "CREATE TABLE begin_log (id INT)",
            "SELECT 'BEGIN'",
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK TRANSACTION TO SAVEPOINT a",
            "SAVEPOINT a",
            "DO $$ BEGIN PERFORM 1; END $$",
            "BEGINNING",
            "",
        ] {
            assert!(transaction_statement(sql).is_none(), "{sql}");
        }
    }
}
