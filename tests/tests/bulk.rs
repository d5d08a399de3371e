//! Bulk loads: `create_many` around PostgreSQL's `COPY` threshold, its errors, its atomicity in
//! a `Db` and in a session, and the `COPY` text encoding of every SeaORM value type, checked
//! against what SeaORM's bound statements store. On the backend `DATABASE_URL` names; the
//! threshold cases run on every backend (where they are plain multi-row inserts), the encoding
//! round trips on PostgreSQL only.

use ops_sea::repo::{COPY_THRESHOLD, Repository};
use ops_sea::{Db, ErrorCategory, IntegrityKind};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded};
use sea_orm::sea_query::value::prelude::chrono::{self, TimeZone as _};
use sea_orm::sea_query::{ArrayType, Enum, OptionEnum};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryOrder, Schema, Statement,
    Value,
};

pub mod line {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bulk_lines")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub seq: i32,
        pub body: String,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A PostgreSQL row of several value types, loaded both ways and compared.
pub mod sample {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "bulk_samples")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub batch: i32,
        pub seq: i32,
        pub flag: Option<bool>,
        pub big: Option<i64>,
        pub real: Option<f32>,
        pub double: Option<f64>,
        pub text: Option<String>,
        pub bytes: Option<Vec<u8>>,
        pub json: Option<Json>,
        #[sea_orm(column_type = "JsonBinary")]
        pub jsonb: Option<Json>,
        pub day: Option<Date>,
        pub clock: Option<Time>,
        pub stamp: Option<DateTime>,
        pub stamp_utc: Option<DateTimeUtc>,
        pub stamp_tz: Option<DateTimeWithTimeZone>,
        pub tags: Option<Vec<String>>,
        pub counts: Option<Vec<i32>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

async fn setup(name: &str) -> (TestDb, Db, DatabaseConnection) {
    let test = TestDb::new(name).await;
    let admin = test.admin().await;
    let schema = Schema::new(admin.get_database_backend());
    admin
        .execute(&schema.create_table_from_entity(line::Entity))
        .await
        .expect("create bulk_lines");
    let db = bounded("connecting", STEP_TIMEOUT, Db::connect(&test.url))
        .await
        .expect("connect");
    (test, db, admin)
}

async fn finish(test: TestDb, db: Db, admin: DatabaseConnection) {
    db.close().await;
    let _ = admin.close().await;
    test.cleanup().await;
}

/// A body with every character `COPY`'s text format escapes, and some it does not.
fn body(i: usize) -> String {
    format!("line {i}\ttab\nnewline\r\\backslash \\N \"quoted\" 'single' ünïcödé 😀")
}

fn lines(range: std::ops::Range<usize>) -> Vec<line::New> {
    range
        .map(|i| line::New {
            seq: i32::try_from(i).expect("small"),
            body: body(i),
            note: (i % 3 == 0).then(|| format!("note {i}")),
        })
        .collect()
}

async fn stored(admin: &DatabaseConnection) -> Vec<line::Model> {
    line::Entity::find()
        .order_by_asc(line::Column::Seq)
        .all(admin)
        .await
        .expect("read back")
}

#[tokio::test]
async fn create_many_around_the_copy_threshold() {
    let (test, db, admin) = setup("bulk_threshold").await;
    let mut expected = 0;
    for n in [0, 1, COPY_THRESHOLD - 1, COPY_THRESHOLD, COPY_THRESHOLD + 1] {
        let loaded = bounded(
            "create_many",
            STEP_TIMEOUT,
            line::Ops::create_many(&db, lines(expected..expected + n)),
        )
        .await
        .unwrap_or_else(|e| panic!("create_many of {n} rows: {e}"));
        assert_eq!(loaded, n as u64, "rows reported for {n}");
        expected += n;
    }
    let rows = stored(&admin).await;
    assert_eq!(rows.len(), expected);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i32::try_from(i).expect("small"));
        assert_eq!(row.body, body(i), "row {i}");
        assert_eq!(row.note, (i % 3 == 0).then(|| format!("note {i}")));
    }
    finish(test, db, admin).await;
}

#[tokio::test]
async fn duplicate_inside_a_copy_is_a_unique_violation_and_stores_nothing() {
    let (test, db, admin) = setup("bulk_unique").await;
    let mut rows = lines(0..COPY_THRESHOLD + 10);
    // The last row repeats the first one's unique `seq`.
    rows.push(line::New {
        seq: 0,
        body: "again".to_owned(),
        note: None,
    });
    let err = bounded(
        "create_many",
        STEP_TIMEOUT,
        line::Ops::create_many(&db, rows),
    )
    .await
    .expect_err("a duplicate key");
    assert_eq!(
        err.category(),
        ErrorCategory::Integrity(IntegrityKind::Unique),
        "{err}"
    );
    let context = err.context().expect("context");
    assert_eq!((context.entity, context.operation), ("line", "create_many"));
    if test.backend == Backend::Postgres {
        assert!(
            err.constraint().is_some_and(|c| c.contains("seq")),
            "{err:?}"
        );
    }
    assert!(stored(&admin).await.is_empty(), "all rows or none");
    // The connection the load ran on went back clean (or was closed): the pool keeps working,
    // and every one of its connections is outside a transaction.
    for _ in 0..3 {
        let n = bounded(
            "create_many",
            STEP_TIMEOUT,
            line::Ops::create_many(&db, lines(0..COPY_THRESHOLD + 1)),
        )
        .await
        .expect("a load after the failed one");
        assert_eq!(n, COPY_THRESHOLD as u64 + 1);
        assert_eq!(line::Ops::count(&db).await.expect("count"), n);
        line::Ops::delete_where(&db, sea_orm::sea_query::Expr::value(true))
            .await
            .expect("empty the table");
    }
    finish(test, db, admin).await;
}

#[tokio::test]
async fn a_load_in_a_session_is_part_of_its_transaction() {
    let (test, db, admin) = setup("bulk_session").await;
    let session = db.session().await.expect("session");
    let n = bounded(
        "create_many",
        STEP_TIMEOUT,
        line::Ops::create_many(&session, lines(0..COPY_THRESHOLD + 1)),
    )
    .await
    .expect("load in a session");
    assert_eq!(n, COPY_THRESHOLD as u64 + 1);
    assert_eq!(
        line::Ops::count(&session).await.expect("count in session"),
        n
    );
    session.rollback().await.expect("rollback");
    assert!(
        stored(&admin).await.is_empty(),
        "rolled back with the session"
    );

    let session = db.session().await.expect("session");
    line::Ops::create_many(&session, lines(0..COPY_THRESHOLD + 1))
        .await
        .expect("load in a session");
    session.commit().await.expect("commit");
    assert_eq!(stored(&admin).await.len(), COPY_THRESHOLD + 1);

    // A duplicate inside a session's load fails it with the same category.
    let session = db.session().await.expect("session");
    let err = line::Ops::create_many(&session, lines(0..COPY_THRESHOLD + 1))
        .await
        .expect_err("duplicates of committed rows");
    assert_eq!(
        err.category(),
        ErrorCategory::Integrity(IntegrityKind::Unique),
        "{err}"
    );
    session
        .rollback()
        .await
        .expect("rollback the failed session");
    finish(test, db, admin).await;
}

#[tokio::test]
async fn a_plain_seaorm_connection_falls_back_to_inserts() {
    let (test, db, admin) = setup("bulk_plain").await;
    let n = line::Ops::create_many(&admin, lines(0..COPY_THRESHOLD + 1))
        .await
        .expect("load on a plain connection");
    assert_eq!(n, COPY_THRESHOLD as u64 + 1);
    assert_eq!(stored(&admin).await.len(), COPY_THRESHOLD + 1);
    finish(test, db, admin).await;
}

fn samples(batch: i32) -> Vec<sample::New> {
    use sea_orm::prelude::{Date, Time};
    let day = Date::from_ymd_opt(2024, 2, 29).expect("date");
    let clock = Time::from_hms_micro_opt(23, 5, 9, 123_456).expect("time");
    let stamp = day.and_time(clock);
    (0..COPY_THRESHOLD + 3)
        .map(|i| {
            let seq = i32::try_from(i).expect("small");
            // Every fourth row is all NULLs.
            let null = i % 4 == 3;
            fn pick<T>(null: bool, value: T) -> Option<T> {
                (!null).then_some(value)
            }
            sample::New {
                batch,
                seq,
                flag: pick(null, i % 2 == 0),
                big: pick(null, i64::MIN + i64::from(seq)),
                real: pick(null, 0.1 + seq as f32),
                double: pick(
                    null,
                    if i % 4 == 1 {
                        f64::INFINITY
                    } else {
                        -0.1 / f64::from(seq + 1)
                    },
                ),
                text: pick(null, body(i)),
                bytes: pick(null, vec![0, b'\\', b'\n', b'\t', 0xff, (i % 256) as u8]),
                json: pick(
                    null,
                    serde_json::json!({"tab": "a\tb", "quote": "\"", "n": i, "nested": [null, true]}),
                ),
                jsonb: pick(
                    null,
                    serde_json::json!({"back\\slash": "ü", "list": [1, 2.5]}),
                ),
                day: pick(null, day - chrono::Days::new(i as u64 * 400)),
                clock: pick(null, clock),
                stamp: pick(null, stamp),
                stamp_utc: pick(null, stamp.and_utc()),
                stamp_tz: pick(null, chrono_offset().from_utc_datetime(&stamp)),
                tags: pick(
                    null,
                    vec![
                        "plain".to_owned(),
                        "a \"quoted\", {braced} \\ value".to_owned(),
                        "NULL".to_owned(),
                        String::new(),
                        "tab\there".to_owned(),
                    ],
                ),
                counts: pick(null, vec![1, -2, i32::MAX]),
            }
        })
        .collect()
}

fn chrono_offset() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(5 * 3600 + 1800).expect("offset")
}

/// `create_many` through `COPY` stores what SeaORM's `insert_many` stores, field by field.
#[tokio::test]
async fn copy_stores_what_insert_many_stores() {
    if !ops_tests::require_backend(Backend::Postgres, "copy_stores_what_insert_many_stores") {
        return;
    }
    let (test, db, admin) = setup("bulk_types").await;
    let schema = Schema::new(DbBackend::Postgres);
    admin
        .execute(&schema.create_table_from_entity(sample::Entity))
        .await
        .expect("create bulk_samples");
    // SeaORM's statements, in chunks under the bind limit, on its own connection.
    let models: Vec<sample::ActiveModel> = samples(0)
        .into_iter()
        .map(sample::Ops::new_active_model)
        .collect();
    for chunk in models.chunks(1000) {
        sample::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&admin)
            .await
            .expect("insert_many");
    }
    let loaded = sample::Ops::create_many(&db, samples(1))
        .await
        .expect("create_many");
    assert_eq!(loaded, COPY_THRESHOLD as u64 + 3);
    let rows = sample::Entity::find()
        .order_by_asc(sample::Column::Batch)
        .order_by_asc(sample::Column::Seq)
        .all(&admin)
        .await
        .expect("read back");
    let (by_seaorm, by_copy) = rows.split_at(COPY_THRESHOLD + 3);
    assert_eq!(by_seaorm.len(), by_copy.len());
    for (seaorm, copy) in by_seaorm.iter().zip(by_copy) {
        let copy = sample::Model {
            id: seaorm.id,
            batch: seaorm.batch,
            ..copy.clone()
        };
        assert_eq!(seaorm, &copy);
    }
    finish(test, db, admin).await;
}

/// Each SeaORM value, bound by SeaORM in an `INSERT` (what `insert_many` does) and encoded in
/// `COPY`'s text format, stored in a column of its type: the server prints both alike.
#[tokio::test]
async fn every_value_type_round_trips_through_copy() {
    if !ops_tests::require_backend(
        Backend::Postgres,
        "every_value_type_round_trips_through_copy",
    ) {
        return;
    }
    let test = TestDb::new("bulk_values").await;
    let admin = test.admin().await;
    admin
        .execute_unprepared("CREATE TYPE mood AS ENUM ('happy', 'so \"so\"', 'sad')")
        .await
        .expect("create the enum");
    let mut direct = sqlx_connect(&test.direct_url).await;
    for (index, (column_type, value)) in value_cases().into_iter().enumerate() {
        let table = format!("rt_{index}");
        admin
            .execute_unprepared(&format!("CREATE TABLE {table} (k INT, v {column_type})"))
            .await
            .expect("create the table");
        // What SeaORM stores: the value bound to a statement (with SeaORM's cast for enums).
        // sea-query-sqlx cannot bind an array holding NULL elements (it panics), so arrays are
        // built from their elements, each bound as SeaORM binds a scalar.
        let (param, values) = match &value {
            Value::Array(_, Some(elements)) => {
                let params: Vec<String> =
                    (0..elements.len()).map(|i| format!("${}", i + 2)).collect();
                let mut values = vec![Value::Int(Some(1))];
                values.extend(elements.iter().cloned());
                (
                    format!("ARRAY[{}]::{column_type}", params.join(", ")),
                    values,
                )
            }
            _ if column_type == "mood" => (
                "CAST($2 AS mood)".to_owned(),
                vec![Value::Int(Some(1)), value.clone()],
            ),
            _ => ("$2".to_owned(), vec![Value::Int(Some(1)), value.clone()]),
        };
        admin
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("INSERT INTO {table} (k, v) VALUES ($1, {param})"),
                values,
            ))
            .await
            .unwrap_or_else(|e| panic!("insert {value:?} into {column_type}: {e}"));
        // What `COPY` stores.
        let row = ops_sea::__private::copy_text_row(&[Value::Int(Some(2)), value.clone()])
            .unwrap_or_else(|| panic!("{value:?} has no COPY text form"));
        copy_in(&mut direct, &format!("COPY {table} (k, v) FROM STDIN"), row)
            .await
            .unwrap_or_else(|e| panic!("COPY {value:?} into {column_type}: {e}"));
        let shown: Vec<Option<String>> = admin
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                // A `json` column keeps the text it is given: a bound value arrives as `jsonb`
                // (sqlx's encoding) and is stored in `jsonb`'s normalized form, `COPY` stores
                // serde_json's compact form. Equal as JSON, so compared as JSON.
                if column_type == "JSON" {
                    format!("SELECT v::jsonb::text AS v FROM {table} ORDER BY k")
                } else {
                    format!("SELECT v::text AS v FROM {table} ORDER BY k")
                },
            ))
            .await
            .expect("read back")
            .iter()
            .map(|row| row.try_get::<Option<String>>("", "v").expect("text"))
            .collect();
        assert_eq!(shown.len(), 2, "{value:?}");
        assert_eq!(
            shown[0], shown[1],
            "{value:?} into {column_type}: statement stored {:?}, COPY stored {:?}",
            shown[0], shown[1]
        );
    }
    drop(direct);
    let _ = admin.close().await;
    test.cleanup().await;
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect with sqlx")
}

async fn copy_in(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    row: Vec<u8>,
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    copy.send(row).await?;
    copy.finish().await
}

/// Every `sea_orm::Value` variant the workspace enables, non-NULL and NULL, with the PostgreSQL
/// column type it goes to.
fn value_cases() -> Vec<(&'static str, Value)> {
    use sea_orm::prelude::{Date, DateTime, Time};
    let day = Date::from_ymd_opt(2024, 2, 29).expect("date");
    let clock = Time::from_hms_micro_opt(23, 5, 9, 123_456).expect("time");
    let stamp: DateTime = day.and_time(clock);
    let zoned = chrono_offset().from_utc_datetime(&stamp);
    let text = "tab\t nl\n cr\r bs\\ \\N quote\" apostrophe' ünï 😀";
    let json: sea_orm::JsonValue =
        serde_json::json!({"tab": "a\tb", "bs": "c\\d", "n": 1.5, "list": [null, true, "ü"]});
    let mood = |value: &str| {
        Value::Enum(OptionEnum::Some(Box::new(Enum {
            type_name: "mood".into(),
            value: value.to_owned().into(),
        })))
    };
    let array = |ty: ArrayType, values: Vec<Value>| Value::Array(ty, Some(Box::new(values)));
    vec![
        ("BOOLEAN", Value::Bool(Some(true))),
        ("BOOLEAN", Value::Bool(Some(false))),
        ("BOOLEAN", Value::Bool(None)),
        ("SMALLINT", Value::SmallInt(Some(i16::MIN))),
        ("SMALLINT", Value::SmallInt(None)),
        ("SMALLINT", Value::TinyUnsigned(Some(255))),
        ("SMALLINT", Value::TinyUnsigned(None)),
        ("INT", Value::Int(Some(i32::MIN))),
        ("INT", Value::Int(None)),
        ("INT", Value::SmallUnsigned(Some(65_535))),
        ("INT", Value::SmallUnsigned(None)),
        ("BIGINT", Value::BigInt(Some(i64::MAX))),
        ("BIGINT", Value::BigInt(None)),
        ("BIGINT", Value::Unsigned(Some(u32::MAX))),
        ("BIGINT", Value::Unsigned(None)),
        (
            "BIGINT",
            Value::BigUnsigned(Some(9_223_372_036_854_775_807)),
        ),
        ("BIGINT", Value::BigUnsigned(None)),
        ("REAL", Value::Float(Some(0.1))),
        ("REAL", Value::Float(Some(f32::MAX))),
        ("REAL", Value::Float(Some(f32::NAN))),
        ("REAL", Value::Float(None)),
        // An f32 in a double column: what the bound float4 becomes there.
        ("DOUBLE PRECISION", Value::Float(Some(0.1))),
        ("DOUBLE PRECISION", Value::Double(Some(0.1))),
        ("DOUBLE PRECISION", Value::Double(Some(-0.0))),
        ("DOUBLE PRECISION", Value::Double(Some(5e-324))),
        (
            "DOUBLE PRECISION",
            Value::Double(Some(1.7976931348623157e308)),
        ),
        ("DOUBLE PRECISION", Value::Double(Some(f64::NEG_INFINITY))),
        ("DOUBLE PRECISION", Value::Double(Some(f64::INFINITY))),
        ("DOUBLE PRECISION", Value::Double(None)),
        ("TEXT", Value::String(Some(text.to_owned()))),
        ("TEXT", Value::String(Some(String::new()))),
        ("TEXT", Value::String(Some("\\.".to_owned()))),
        ("TEXT", Value::String(None)),
        ("TEXT", Value::Char(Some('\\'))),
        ("TEXT", Value::Char(Some('😀'))),
        ("TEXT", Value::Char(None)),
        ("mood", mood("happy")),
        ("mood", mood("so \"so\"")),
        ("mood", Value::Enum(OptionEnum::None("mood".into()))),
        (
            "BYTEA",
            Value::Bytes(Some(vec![0, 1, b'\\', b'\n', b'\t', 0x7f, 0xff])),
        ),
        ("BYTEA", Value::Bytes(Some(Vec::new()))),
        ("BYTEA", Value::Bytes(None)),
        ("JSON", Value::Json(Some(Box::new(json.clone())))),
        ("JSON", Value::Json(None)),
        ("JSONB", Value::Json(Some(Box::new(json)))),
        ("JSONB", Value::Json(None)),
        ("DATE", Value::ChronoDate(Some(day))),
        ("DATE", Value::ChronoDate(Date::from_ymd_opt(-44, 3, 15))),
        ("DATE", Value::ChronoDate(Date::from_ymd_opt(12_345, 1, 2))),
        ("DATE", Value::ChronoDate(None)),
        ("TIME", Value::ChronoTime(Some(clock))),
        (
            "TIME",
            Value::ChronoTime(Time::from_hms_nano_opt(0, 0, 0, 999)),
        ),
        ("TIME", Value::ChronoTime(None)),
        ("TIMESTAMP", Value::ChronoDateTime(Some(stamp))),
        (
            "TIMESTAMP",
            Value::ChronoDateTime(Some(
                Date::from_ymd_opt(0, 1, 1)
                    .expect("date")
                    .and_hms_micro_opt(1, 2, 3, 4)
                    .expect("time"),
            )),
        ),
        ("TIMESTAMP", Value::ChronoDateTime(None)),
        // A zoned value in a column without a zone: converted under the session's UTC.
        ("TIMESTAMP", Value::ChronoDateTimeUtc(Some(stamp.and_utc()))),
        (
            "TIMESTAMPTZ",
            Value::ChronoDateTimeUtc(Some(stamp.and_utc())),
        ),
        ("TIMESTAMPTZ", Value::ChronoDateTimeUtc(None)),
        (
            "TIMESTAMPTZ",
            Value::ChronoDateTimeWithTimeZone(Some(zoned)),
        ),
        ("TIMESTAMPTZ", Value::ChronoDateTimeWithTimeZone(None)),
        (
            "TIMESTAMPTZ",
            Value::ChronoDateTimeLocal(Some(zoned.with_timezone(&chrono::Local))),
        ),
        ("TIMESTAMPTZ", Value::ChronoDateTimeLocal(None)),
        (
            "TEXT[]",
            array(
                ArrayType::String,
                vec![
                    Value::String(Some("plain".to_owned())),
                    Value::String(None),
                    Value::String(Some("a \"quoted\", {braced} \\ value".to_owned())),
                    Value::String(Some("NULL".to_owned())),
                    Value::String(Some(String::new())),
                    Value::String(Some(text.to_owned())),
                ],
            ),
        ),
        ("TEXT[]", array(ArrayType::String, Vec::new())),
        ("TEXT[]", Value::Array(ArrayType::String, None)),
        (
            "INT[]",
            array(
                ArrayType::Int,
                vec![Value::Int(Some(1)), Value::Int(None), Value::Int(Some(-3))],
            ),
        ),
        (
            "BIGINT[]",
            array(ArrayType::BigInt, vec![Value::BigInt(Some(i64::MIN))]),
        ),
        (
            "BOOLEAN[]",
            array(
                ArrayType::Bool,
                vec![Value::Bool(Some(true)), Value::Bool(None)],
            ),
        ),
        (
            "DOUBLE PRECISION[]",
            array(
                ArrayType::Double,
                vec![Value::Double(Some(0.1)), Value::Double(Some(f64::NAN))],
            ),
        ),
        (
            "BYTEA[]",
            array(
                ArrayType::Bytes,
                vec![Value::Bytes(Some(vec![b'\\', 0, 0xff])), Value::Bytes(None)],
            ),
        ),
        (
            "JSONB[]",
            array(
                ArrayType::Json,
                vec![Value::Json(Some(Box::new(
                    serde_json::json!({"q": "\"x\""}),
                )))],
            ),
        ),
        (
            "DATE[]",
            array(ArrayType::ChronoDate, vec![Value::ChronoDate(Some(day))]),
        ),
        (
            "TIMESTAMPTZ[]",
            array(
                ArrayType::ChronoDateTimeUtc,
                vec![Value::ChronoDateTimeUtc(Some(stamp.and_utc()))],
            ),
        ),
    ]
}
