use ops_sea::Db;

#[ops_sea::test(entitys(cake))]
async fn misspelled(db: Db) {
    let _ = db;
}

#[ops_sea::test(setup = "seed", allow_leaks = 3)]
async fn bad_values(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities())]
async fn empty_entities(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities("cake", bakery::<u8>, shop::cake), allow_leaks = "yes")]
async fn entities_not_paths(db: Db) {
    let _ = db;
}

#[ops_sea::test(entities = cake, crate = ops_sea)]
async fn option_forms(db: Db) {
    let _ = db;
}

fn main() {}
