// trybuild builds binaries, where `#[test]` functions are removed before type checking. Through
// `crate = "shim"` the expansion's `#[test]` becomes an attribute that keeps the function, so the
// errors a user sees under `cargo test` are checked here.
mod shim {
    pub mod __private {
        pub mod test {
            pub use ::ops_derive::__compile_only as test;
            pub use ::ops_sea::__private::test::*;
        }
    }
}

use ops_sea::Db;

pub mod cake {
    pub struct Model;
}

async fn seed(_db: &Db, _extra: u8) {}

async fn seed_number(_db: &Db) -> u8 {
    0
}

#[ops_sea::test(entities(bakery), crate = "shim")]
async fn unknown_module(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities(cake), crate = "shim")]
async fn not_an_entity_module(db: Db) {
    let _ = db;
}

#[ops_sea::test(setup = seed, crate = "shim")]
async fn setup_with_wrong_signature(db: Db) {
    let _ = db;
}

#[ops_sea::test(setup = seed_number, crate = "shim")]
async fn setup_with_wrong_output(db: Db) {
    let _ = db;
}

#[ops_sea::test(crate = "shim")]
async fn wrong_output(db: &Db) -> u8 {
    let _ = db;
    0
}

fn main() {}
