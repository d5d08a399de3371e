//! Entities as a user of ops writes them: each module imports only SeaORM's entity prelude and
//! `ops_sea::Ops`, which proves the generated repositories need no other import.
//!
//! The lints below are stricter than the workspace's, so that anything the derive generates
//! without docs, or with an unused import or qualification, fails this crate's build.

#![deny(
    missing_docs,
    missing_debug_implementations,
    unused_imports,
    unused_qualifications,
    unused_results,
    rust_2018_idioms
)]

/// Authors: an auto-increment key, a unique email and nullable columns.
pub mod author {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One author.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "authors")]
    #[ops(find_by(email))]
    pub struct Model {
        /// The key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Unique per author.
        #[sea_orm(unique)]
        pub email: String,
        /// A pen name, when the author has one.
        pub pen_name: Option<String>,
        /// The year of birth, when known.
        pub born: Option<i32>,
    }

    /// Authors write books.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// The author's books.
        #[sea_orm(has_many = "super::book::Entity")]
        Book,
    }

    impl Related<super::book::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Book.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Books: a foreign key to authors, renamed repository, a `list_by` on the relation.
pub mod book {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One book.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "books")]
    #[ops(name = "BookOps", list_by(author_id), find_by(isbn))]
    pub struct Model {
        /// The key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The author who wrote it.
        pub author_id: i64,
        /// The ISBN, unique.
        #[sea_orm(unique, column_name = "isbn13")]
        pub isbn: String,
        /// The title.
        pub title: String,
    }

    /// A book belongs to its author.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// The author.
        #[sea_orm(
            belongs_to = "super::author::Entity",
            from = "Column::AuthorId",
            to = "super::author::Column::Id"
        )]
        Author,
    }

    impl Related<super::author::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Author.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Tags on books: a composite primary key.
pub mod book_tag {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One tag on one book.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "book_tags")]
    #[ops(list_by(book_id))]
    pub struct Model {
        /// The book.
        #[sea_orm(primary_key, auto_increment = false)]
        pub book_id: i32,
        /// The tag.
        #[sea_orm(primary_key, column_type = "String(StringLen::N(32))")]
        pub tag: String,
        /// Who added it, when known.
        pub added_by: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Application code written against the prelude only: registers an author and a first book.
pub async fn publish<C>(
    db: &C,
    email: &str,
    isbn: &str,
    title: &str,
) -> Result<(author::Model, book::Model), ops_sea::OpsError>
where
    C: ops_sea::Executor,
{
    let author = match author::Ops::find_by_email(db, email).await? {
        Some(author) => author,
        None => {
            author::Ops::create(
                db,
                author::New {
                    email: email.into(),
                    pen_name: None,
                    born: None,
                },
            )
            .await?
        }
    };
    let book = book::BookOps::create(
        db,
        book::New {
            author_id: author.id,
            isbn: isbn.into(),
            title: title.into(),
        },
    )
    .await?;
    Ok((author, book))
}
