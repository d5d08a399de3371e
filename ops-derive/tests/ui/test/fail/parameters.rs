use ops_sea::Db;

#[ops_sea::test]
async fn no_database() {}

#[ops_sea::test]
async fn wrong_type(db: String) {
    let _ = db;
}

#[ops_sea::test]
async fn two_parameters(db: Db, name: String) {
    let _ = (db, name);
}

#[ops_sea::test]
#[tokio::test]
async fn stacked(db: Db) {
    let _ = db;
}

fn main() {}
