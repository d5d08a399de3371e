use ops_sea::Db;

async fn seed(_db: &Db, _extra: u8) {}

#[ops_sea::test(entities(bakery))]
async fn unknown_module(db: Db) {
    let _ = db;
}

#[ops_sea::test(setup = seed)]
async fn setup_with_wrong_signature(db: Db) {
    let _ = db;
}

fn main() {}
