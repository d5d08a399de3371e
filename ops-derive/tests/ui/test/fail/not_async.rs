use ops_sea::Db;

#[ops_sea::test]
fn not_async(db: Db) {
    let _ = db;
}

fn main() {}
