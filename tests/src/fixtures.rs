//! Tables, rows and server-side actions the session and pool suites share.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::Backend;

/// An entity with a caller-chosen key and a unique name, for the metrics and telemetry suites:
/// `item::Ops::create` of a taken name is a unique violation on every backend.
pub mod item {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "named_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// Connects `builder` and creates the table from the entity.
    ///
    /// # Panics
    ///
    /// When the database cannot be reached or the table cannot be created.
    pub async fn connect_with_table(builder: ops_sea::DbBuilder) -> ops_sea::Db {
        let db = builder.connect().await.expect("connect");
        let schema = sea_orm::Schema::new(db.backend());
        db.execute(&schema.create_table_from_entity(Entity))
            .await
            .expect("create table");
        db
    }
}

/// Creates `items (id, name)`, a table every backend spells the same way.
pub async fn items_table<C: ConnectionTrait>(conn: &C) {
    conn.execute_unprepared("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(100))")
        .await
        .expect("create items");
}

/// Inserts one item.
pub async fn insert_item<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    name: &str,
) -> Result<(), sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            DbBackend::Postgres => "INSERT INTO items (id, name) VALUES ($1, $2)",
            _ => "INSERT INTO items (id, name) VALUES (?, ?)",
        },
        [id.into(), name.into()],
    ))
    .await
    .map(|_| ())
}

/// Counts the rows of a table.
pub async fn count<C: ConnectionTrait>(conn: &C, table: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("count query")
        .expect("count row");
    row.try_get_by_index::<i64>(0).expect("count value")
}

/// A statement that keeps the server busy for `seconds`; `None` on SQLite, which runs in-process.
pub fn sleep_sql(backend: Backend, seconds: u32) -> Option<String> {
    match backend {
        Backend::Postgres => Some(format!("SELECT pg_sleep({seconds})")),
        Backend::MySql => Some(format!("SELECT SLEEP({seconds})")),
        Backend::Sqlite => None,
    }
}

/// Kills every other server connection to `database`, from `admin`, and returns how many.
pub async fn kill_connections<C: ConnectionTrait>(admin: &C, database: &str) -> usize {
    match admin.get_database_backend() {
        DbBackend::Postgres => {
            let rows = admin
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                    ),
                ))
                .await
                .expect("terminate backends");
            rows.len()
        }
        DbBackend::MySql => {
            let rows = admin
                .query_all_raw(Statement::from_string(
                    DbBackend::MySql,
                    format!(
                        "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
                         WHERE DB = '{database}' AND ID <> CONNECTION_ID()"
                    ),
                ))
                .await
                .expect("list connections");
            let mut killed = 0;
            for row in rows {
                // MariaDB declares the id BIGINT and MySQL BIGINT UNSIGNED; the cast unifies them.
                let id: u64 = row.try_get_by_index(0).expect("connection id");
                if admin
                    .execute_unprepared(&format!("KILL {id}"))
                    .await
                    .is_ok()
                {
                    killed += 1;
                }
            }
            killed
        }
        _ => 0,
    }
}
