//! A generated crate for measuring and checking the scanner at scale: `domains` modules of an
//! ordinary service (entity, service functions with sessions, HTTP handlers, plain logic and its
//! unit tests), most of them correct and some with one mistake each, every finding marked
//! `//~ rule` on its line the way the fixture crate marks them.
//!
//! Shared by `tests/scale.rs` (the scan finds exactly the marked lines) and
//! `benches/scan_speed.rs` (the release binary's time on at least 50,000 lines).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `(file, line, rule)` triples.
pub type Marks = BTreeSet<(String, usize, String)>;

/// What was generated.
pub struct Corpus {
    pub root: PathBuf,
    pub files: usize,
    pub lines: usize,
    /// The marked findings.
    pub marks: Marks,
}

impl Corpus {
    /// Removes the generated crate.
    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The mistakes a domain may carry, one per domain that has one, in turn.
const MISTAKES: &[&str] = &[
    UNFINISHED,
    RAW_SQL,
    HELD_ACROSS_IO,
    BLOCK_ON,
    RETRY_IN_CALLERS_SESSION,
    FORGOTTEN,
];

/// Writes a crate of at least `min_lines` lines under `root` (replaced if it exists).
pub fn generate(root: &Path, min_lines: usize) -> Corpus {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("src")).expect("create the corpus directory");
    write(
        root,
        "Cargo.toml",
        "[package]\nname = \"corpus\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\nops-sea = \"0.1\"\nsea-orm = \"2\"\ntokio = \"1\"\n\
         reqwest = \"0.12\"\naxum = \"0.8\"\nserde = \"1\"\n",
    );
    let mut corpus = Corpus {
        root: root.to_owned(),
        files: 0,
        lines: 0,
        marks: Marks::new(),
    };
    let mut lib = String::from(
        "//! A generated service crate for `ops-scan`'s speed and scale checks.\n\n\
         #![allow(dead_code)]\n\n",
    );
    let mut index = 0;
    let mut mistakes = MISTAKES.iter().cycle();
    // `lib.rs` adds one line per domain.
    while corpus.lines + index < min_lines {
        let domain = format!("{}_{index}", NOUNS[index % NOUNS.len()]);
        lib.push_str(&format!("pub mod {domain};\n"));
        // Every fourth domain is clean; the others carry one mistake, the rules in turn.
        let mistake = (index % 4 != 0).then(|| *mistakes.next().expect("endless"));
        let files = [
            ("mod.rs", fill(MOD, &domain, index)),
            ("model.rs", fill(MODEL, &domain, index)),
            (
                "service.rs",
                fill(
                    &format!("{SERVICE}{}", mistake.unwrap_or("")),
                    &domain,
                    index,
                ),
            ),
            ("handlers.rs", fill(HANDLERS, &domain, index)),
            ("logic.rs", fill(LOGIC, &domain, index)),
        ];
        for (name, text) in files {
            let path = format!("src/{domain}/{name}");
            add(&mut corpus, &path, &text);
        }
        index += 1;
    }
    add(&mut corpus, "src/lib.rs", &lib);
    corpus
}

fn add(corpus: &mut Corpus, path: &str, text: &str) {
    write(&corpus.root, path, text);
    corpus.files += 1;
    corpus.lines += text.lines().count();
    for (number, line) in text.lines().enumerate() {
        if let Some((_, rule)) = line.split_once("//~ ") {
            corpus
                .marks
                .insert((path.to_owned(), number + 1, rule.trim().to_owned()));
        }
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
    std::fs::write(&path, text).expect("write a corpus file");
}

/// Fills a template: `Thing` is the domain's type name, `thing` its module and table name, `N`
/// a number that varies by domain.
fn fill(template: &str, domain: &str, index: usize) -> String {
    let camel: String = domain
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    template
        .replace("Thing", &camel)
        .replace("thing", domain)
        .replace("{N}", &(index % 97 + 3).to_string())
}

const NOUNS: &[&str] = &[
    "order",
    "invoice",
    "customer",
    "shipment",
    "ticket",
    "account",
    "booking",
    "payment",
    "review",
    "product",
    "coupon",
    "refund",
    "warehouse",
    "supplier",
    "contract",
    "loan",
];

const MOD: &str = r#"//! The thing domain: its entity, the operations on it, the HTTP handlers and the rules.

pub mod handlers;
pub mod logic;
pub mod model;
pub mod service;

pub use model::Model as Thing;
"#;

const MODEL: &str = r#"use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ops_sea::Ops, Serialize, Deserialize)]
#[sea_orm(table_name = "thing")]
#[ops(find_by(reference), list_by(owner_id))]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub reference: String,
    pub owner_id: i32,
    pub status: String,
    pub amount: i64,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether the row may still change.
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "draft" | "pending")
    }

    /// The amount in whole units, rounded down.
    pub fn whole_units(&self) -> i64 {
        self.amount.div_euclid(100)
    }
}
"#;

const SERVICE: &str = r#"use std::time::Duration;

use ops_sea::prelude::*;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use super::logic::{Status, Totals, validate_reference};
use super::model::{self as thing, Column};

/// Creates a thing after validating it; the session commits on `Ok`.
#[managed_session]
pub async fn create(session: &Session, owner_id: i32, reference: String, amount: i64) -> Result<thing::Model, OpsError> {
    validate_reference(&reference).map_err(OpsError::business_rule)?;
    let now = super::logic::now();
    thing::Ops::create(
        session,
        thing::New {
            reference,
            owner_id,
            status: Status::Draft.as_str().to_owned(),
            amount,
            note: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await
}

/// Moves a thing to its next status, retried on contention.
#[db_retry(attempts = 5)]
#[managed_session(isolation = "serializable")]
pub async fn advance(session: &Session, id: i32) -> Result<thing::Model, OpsError> {
    let current = thing::Ops::get(session, id).await?;
    let next = Status::parse(&current.status)
        .and_then(Status::next)
        .ok_or_else(|| OpsError::business_rule("the thing cannot advance"))?;
    thing::Ops::update(
        session,
        id,
        thing::Patch {
            status: Some(next.as_str().to_owned()),
            updated_at: Some(super::logic::now()),
            ..Default::default()
        },
    )
    .await
}

/// Closes every open thing of an owner in one session.
pub async fn close_all(db: &Db, owner_id: i32) -> Result<u64, OpsError> {
    let session = db.session().await?;
    let open = thing::Ops::list_by_owner_id(&session, owner_id).await?;
    let mut closed = 0;
    for row in open {
        if !row.is_open() {
            continue;
        }
        thing::Ops::update(
            &session,
            row.id,
            thing::Patch {
                status: Some(Status::Closed.as_str().to_owned()),
                ..Default::default()
            },
        )
        .await?;
        closed += 1;
    }
    session.commit().await?;
    Ok(closed)
}

/// Imports rows, rolling back the whole batch when one is invalid.
pub async fn import(db: &Db, rows: Vec<thing::New>) -> Result<usize, OpsError> {
    let session = db.session().await?;
    for row in &rows {
        if validate_reference(&row.reference).is_err() {
            session.rollback().await?;
            return Ok(0);
        }
    }
    let count = rows.len();
    thing::Ops::create_many(&session, rows).await?;
    match count {
        0 => session.rollback().await?,
        _ => session.commit().await?,
    }
    Ok(count)
}

/// A filtered page of an owner's things.
pub async fn page(db: &Db, owner_id: i32, page: PageRequest) -> Result<Page<thing::Model>, OpsError> {
    thing::Ops::page_where(db, Condition::all().add(Column::OwnerId.eq(owner_id)), page).await
}

/// Totals for a report, read from a replica.
pub async fn totals(db: &Db, owner_id: i32) -> Result<Totals, OpsError> {
    let reader = db.reader();
    let rows = thing::Ops::list_where(&reader, Column::OwnerId.eq(owner_id)).await?;
    Ok(rows.iter().fold(Totals::default(), |totals, row| totals.add(row.amount)))
}

/// Settles a thing, then tells the ledger once the session has committed.
pub async fn settle(db: &Db, http: &reqwest::Client, id: i32) -> Result<(), OpsError> {
    let session = db.session_with(SessionOptions::new().name("settle")).await?;
    let row = thing::Ops::get(&session, id).await?;
    session
        .execute_unprepared(&format!("UPDATE thing SET status = 'settled' WHERE id = {}", row.id))
        .await?;
    session.commit().await?;
    let _ = http.post("http://ledger.internal/settled").json(&row.id).send().await;
    Ok(())
}

/// Waits for the next batch outside any session, then stores it.
pub async fn drain(db: &Db, rx: &mut tokio::sync::mpsc::Receiver<thing::New>) -> Result<usize, OpsError> {
    let mut stored = 0;
    while let Some(row) = rx.recv().await {
        tokio::time::sleep(Duration::from_millis({N})).await;
        let session = db.session().await?;
        thing::Ops::create(&session, row).await?;
        session.commit().await?;
        stored += 1;
    }
    Ok(stored)
}

/// Deletes the drafts older than a cut-off.
pub async fn purge(conn: &DatabaseConnection, before: i64) -> Result<u64, DbErr> {
    let txn = conn.begin().await?;
    let result = txn
        .execute_unprepared(&format!("DELETE FROM thing WHERE status = 'draft' AND created_at < {before}"))
        .await?;
    txn.commit().await?;
    Ok(result.rows_affected())
}

/// Counts an owner's things in a read-only session.
#[managed_session(read_only)]
pub async fn count_for(session: &Session, owner_id: i32) -> Result<u64, OpsError> {
    thing::Ops::count_where(session, Column::OwnerId.eq(owner_id)).await
}

/// The operations the handlers need, behind a trait for their tests.
pub trait Store {
    fn name(&self) -> &'static str {
        "thing"
    }
}

pub struct DbStore {
    pub db: Db,
}

impl Store for DbStore {}

impl DbStore {
    pub async fn exists(&self, reference: &str) -> Result<bool, OpsError> {
        thing::Ops::exists_where(&self.db, Column::Reference.eq(reference)).await
    }

    pub async fn rename(&self, id: i32, note: String) -> Result<(), OpsError> {
        let session = self.db.session().await?;
        let result = thing::Ops::update(
            &session,
            id,
            thing::Patch {
                note: Some(Some(note)),
                ..Default::default()
            },
        )
        .await;
        match result {
            Ok(_) => session.commit().await,
            Err(err) => {
                session.rollback().await?;
                Err(err)
            }
        }
    }
}
"#;

const UNFINISHED: &str = r#"
/// Marks a thing paid; forgets the session when the thing is already paid.
pub async fn mark_paid(db: &Db, id: i32) -> Result<bool, OpsError> {
    let session = db.session().await?; //~ unfinished-session
    let row = thing::Ops::get(&session, id).await?;
    if row.status == "paid" {
        return Ok(false);
    }
    session.execute_unprepared(&format!("UPDATE thing SET status = 'paid' WHERE id = {id}")).await?;
    session.commit().await?;
    Ok(true)
}
"#;

const RAW_SQL: &str = r#"
/// Moves an amount between two rows with hand-written transaction statements.
pub async fn move_amount(db: &Db, from: i32, to: i32, amount: i64) -> Result<(), OpsError> {
    db.execute_unprepared("BEGIN").await?; //~ raw-transaction-sql
    db.execute_unprepared(&format!("UPDATE thing SET amount = amount - {amount} WHERE id = {from}")).await?;
    db.execute_unprepared(&format!("UPDATE thing SET amount = amount + {amount} WHERE id = {to}")).await?;
    db.execute_unprepared("COMMIT").await?; //~ raw-transaction-sql
    Ok(())
}
"#;

const HELD_ACROSS_IO: &str = r#"
/// Reserves a thing and asks the payment provider while the session is open.
#[managed_session]
pub async fn reserve(session: &Session, http: &reqwest::Client, id: i32) -> Result<(), OpsError> {
    let row = thing::Ops::get(session, id).await?;
    let _ = http.post("http://payments.internal/hold").json(&row.amount).send().await; //~ session-held-across-io
    thing::Ops::update(session, id, thing::Patch { status: Some("held".into()), ..Default::default() }).await?;
    Ok(())
}
"#;

const BLOCK_ON: &str = r#"
/// Counts rows through the blocking bridge from async code.
pub async fn count_blocking(db: Db) -> Result<u64, OpsError> {
    let rows = ops_sea::blocking::block_on(thing::Ops::count(&db))?; //~ block-on-in-async
    Ok(rows)
}
"#;

const RETRY_IN_CALLERS_SESSION: &str = r#"
/// Bumps a counter inside the caller's session, where a retry cannot help.
#[db_retry(attempts = 3)] //~ caller-session-parameter
pub async fn bump(session: &Session, id: i32) -> Result<(), OpsError> {
    session.execute_unprepared(&format!("UPDATE thing SET amount = amount + 1 WHERE id = {id}")).await?;
    Ok(())
}
"#;

const FORGOTTEN: &str = r#"
/// Hands a session to nobody.
pub async fn detach(db: &Db) -> Result<(), OpsError> {
    let session = db.session().await?;
    std::mem::forget(session); //~ forgotten-session
    Ok(())
}
"#;

const HANDLERS: &str = r#"use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use ops_sea::prelude::*;

use super::logic::{Filter, Status};
use super::model as thing;
use super::service;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
pub struct NewThing {
    pub reference: String,
    pub amount: i64,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub page: Option<u64>,
    pub per_page: Option<u64>,
    pub status: Option<String>,
}

fn status_of(err: &OpsError) -> StatusCode {
    match err.category() {
        ErrorCategory::NotFound => StatusCode::NOT_FOUND,
        ErrorCategory::Integrity(_) => StatusCode::CONFLICT,
        ErrorCategory::Retryable(_) | ErrorCategory::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn create(
    State(state): State<AppState>,
    Path(owner_id): Path<i32>,
    Json(body): Json<NewThing>,
) -> Result<Json<thing::Model>, (StatusCode, String)> {
    if body.amount < 0 {
        return Err((StatusCode::UNPROCESSABLE_ENTITY, "amount must not be negative".into()));
    }
    service::create(&state.db, owner_id, body.reference, body.amount)
        .await
        .map(Json)
        .map_err(|err| (status_of(&err), err.user_message().to_owned()))
}

pub async fn list(
    State(state): State<AppState>,
    Path(owner_id): Path<i32>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<thing::Model>>, (StatusCode, String)> {
    let filter = Filter {
        status: query.status.as_deref().and_then(Status::parse),
        min_amount: None,
    };
    let page = PageRequest::new(query.page.unwrap_or(1), query.per_page.unwrap_or(20).min(100));
    let found = service::page(&state.db, owner_id, page)
        .await
        .map_err(|err| (status_of(&err), err.user_message().to_owned()))?;
    Ok(Json(found.items.into_iter().filter(|row| filter.accepts(row)).collect()))
}

pub async fn advance(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<thing::Model>, (StatusCode, String)> {
    service::advance(&state.db, id)
        .await
        .map(Json)
        .map_err(|err| (status_of(&err), err.user_message().to_owned()))
}

pub async fn settle(State(state): State<AppState>, Path(id): Path<i32>) -> StatusCode {
    match service::settle(&state.db, &state.http, id).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(err) => status_of(&err),
    }
}

pub async fn count(State(state): State<AppState>, Path(owner_id): Path<i32>) -> Result<String, StatusCode> {
    let n = service::count_for(&state.db, owner_id).await.map_err(|err| status_of(&err))?;
    Ok(n.to_string())
}
"#;

const LOGIC: &str = r#"use std::fmt;

use super::model as thing;

/// The life of a thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Draft,
    Pending,
    Approved,
    Closed,
}

impl Status {
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "draft" => Some(Status::Draft),
            "pending" => Some(Status::Pending),
            "approved" => Some(Status::Approved),
            "closed" => Some(Status::Closed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Closed => "closed",
        }
    }

    pub fn next(self) -> Option<Status> {
        match self {
            Status::Draft => Some(Status::Pending),
            Status::Pending => Some(Status::Approved),
            Status::Approved => Some(Status::Closed),
            Status::Closed => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a reference is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ReferenceError {
    Empty,
    TooLong(usize),
    BadCharacter(char),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Empty => write!(f, "the reference is empty"),
            ReferenceError::TooLong(n) => write!(f, "the reference has {n} characters, at most {N} are allowed"),
            ReferenceError::BadCharacter(c) => write!(f, "the reference contains `{c}`"),
        }
    }
}

pub fn validate_reference(reference: &str) -> Result<(), ReferenceError> {
    if reference.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let length = reference.chars().count();
    if length > {N} {
        return Err(ReferenceError::TooLong(length));
    }
    match reference.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        Some(c) => Err(ReferenceError::BadCharacter(c)),
        None => Ok(()),
    }
}

/// Which things a listing shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub min_amount: Option<i64>,
}

impl Filter {
    pub fn accepts(&self, row: &thing::Model) -> bool {
        let status_ok = self
            .status
            .is_none_or(|status| Status::parse(&row.status) == Some(status));
        let amount_ok = self.min_amount.is_none_or(|min| row.amount >= min);
        status_ok && amount_ok
    }
}

/// Sums for a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub amount: i64,
    pub largest: i64,
}

impl Totals {
    pub fn add(self, amount: i64) -> Totals {
        Totals {
            count: self.count + 1,
            amount: self.amount.saturating_add(amount),
            largest: self.largest.max(amount),
        }
    }

    pub fn average(&self) -> Option<i64> {
        (self.count > 0).then(|| self.amount / self.count as i64)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_advance_in_order() {
        let mut status = Status::Draft;
        let mut seen = vec![status];
        while let Some(next) = status.next() {
            seen.push(next);
            status = next;
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(Status::parse("closed"), Some(Status::Closed));
    }

    #[test]
    fn references() {
        assert_eq!(validate_reference(""), Err(ReferenceError::Empty));
        assert_eq!(validate_reference("a b"), Err(ReferenceError::BadCharacter(' ')));
        assert!(validate_reference("abc-1").is_ok());
    }

    #[test]
    fn totals() {
        let totals = [3, 9, 6].into_iter().fold(Totals::default(), Totals::add);
        assert_eq!(totals.average(), Some(6));
        assert_eq!(totals.largest, 9);
    }
}
"#;
