//! The tables of Conduit, one SeaORM entity each, with their repositories from `#[derive(Ops)]`.
//!
//! Times are stored as milliseconds since the Unix epoch in a `BIGINT`: the API answers with
//! millisecond timestamps, and a plain integer keeps those milliseconds (and the order they give)
//! identical on SQLite, PostgreSQL and MySQL/MariaDB, whose timestamp types differ in precision.

pub mod user {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "users")]
    #[ops(find_by(email, username))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub username: String,
        #[sea_orm(unique)]
        pub email: String,
        pub password_hash: String,
        #[sea_orm(column_type = "Text")]
        pub bio: String,
        #[sea_orm(column_type = "Text")]
        pub image: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod follow {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// `follower_id` follows `followee_id`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "follows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub follower_id: i32,
        #[sea_orm(primary_key, auto_increment = false, indexed)]
        pub followee_id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::FollowerId",
            to = "super::user::Column::Id",
            on_delete = "Cascade"
        )]
        Follower,
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::FolloweeId",
            to = "super::user::Column::Id",
            on_delete = "Cascade"
        )]
        Followee,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod article {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "articles")]
    #[ops(find_by(slug))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub slug: String,
        pub title: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        #[sea_orm(indexed)]
        pub author_id: i32,
        /// Milliseconds since the Unix epoch.
        #[sea_orm(indexed)]
        pub created_at: i64,
        /// Milliseconds since the Unix epoch.
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::AuthorId",
            to = "super::user::Column::Id",
            on_delete = "Cascade"
        )]
        Author,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Author.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod article_tag {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// A tag of an article, with its place in the article's `tagList` so the list comes back in
    /// the order the author gave it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "article_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub article_id: i32,
        #[sea_orm(primary_key, auto_increment = false, indexed)]
        pub tag: String,
        pub position: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::article::Entity",
            from = "Column::ArticleId",
            to = "super::article::Column::Id",
            on_delete = "Cascade"
        )]
        Article,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod favorite {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// `user_id` favorited `article_id`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "favorites")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: i32,
        #[sea_orm(primary_key, auto_increment = false, indexed)]
        pub article_id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::UserId",
            to = "super::user::Column::Id",
            on_delete = "Cascade"
        )]
        User,
        #[sea_orm(
            belongs_to = "super::article::Entity",
            from = "Column::ArticleId",
            to = "super::article::Column::Id",
            on_delete = "Cascade"
        )]
        Article,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod comment {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "comments")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(indexed)]
        pub article_id: i32,
        pub author_id: i32,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        /// Milliseconds since the Unix epoch.
        pub created_at: i64,
        /// Milliseconds since the Unix epoch.
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::article::Entity",
            from = "Column::ArticleId",
            to = "super::article::Column::Id",
            on_delete = "Cascade"
        )]
        Article,
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::AuthorId",
            to = "super::user::Column::Id",
            on_delete = "Cascade"
        )]
        Author,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Author.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}
