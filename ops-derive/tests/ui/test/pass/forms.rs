#![deny(warnings)]

// trybuild builds binaries, where `#[test]` functions are removed before type checking. Through
// `crate = "shim"` the expansion's `#[test]` becomes an attribute that keeps the function, so the
// whole expansion is compiled here under `#![deny(warnings)]`. (The default path is compiled as a
// test by `tests/tests/test_attr.rs` of the workspace.)
mod shim {
    pub mod __private {
        pub mod test {
            pub use ::ops_derive::__compile_only as test;
            pub use ::ops_sea::__private::test::*;
        }
    }
}

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

pub mod shop {
    pub mod bakery {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "bakeries")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use ops_sea::{Db, OpsError};

async fn seed(_db: &Db) -> Result<(), OpsError> {
    Ok(())
}

async fn seed_quietly(_db: &Db) {}

#[ops_sea::test(crate = "shim")]
async fn owned(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities(cake, shop::bakery), setup = seed, crate = "shim")]
async fn borrowed(db: &Db) -> Result<(), OpsError> {
    let _ = db;
    Ok(())
}

#[ops_sea::test(entities(crate::cake,), setup = seed_quietly, allow_leaks = false, crate = "shim")]
async fn paths_and_flags(mut db: ops_sea::Db) -> Result<u8, String> {
    db = db.clone();
    let _ = db;
    Ok(1)
}

/// Docs and lint attributes stay on the test.
#[ops_sea::test(allow_leaks, crate = "shim")]
#[allow(unused_variables)]
async fn r#async(db: &Db) {}

// The default path, as users write it.
#[ops_sea::test]
async fn default_path(db: Db) {
    let _ = db;
}

#[ops_sea::test(allow_leaks, crate = "ops_sea")]
#[ignore = "compiled, not run"]
#[should_panic]
async fn options(_db: ops_sea::Db) {}

fn main() {}
