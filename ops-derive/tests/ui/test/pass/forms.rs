#![deny(warnings)]

pub mod cake {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "cakes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use ops_sea::{Db, OpsError};

async fn seed(_db: &Db) -> Result<(), OpsError> {
    Ok(())
}

#[ops_sea::test]
async fn owned(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities(cake), setup = seed)]
async fn borrowed(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

#[ops_sea::test(allow_leaks, crate = "ops_sea")]
#[ignore = "compiled, not run"]
async fn options(_db: ops_sea::Db) {}

fn main() {}
