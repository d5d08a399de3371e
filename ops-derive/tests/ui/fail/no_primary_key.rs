//! No key field. (With DeriveEntityModel, SeaORM reports this first, in its own words.)
use ops_sea::Ops;

#[derive(Ops)]
#[sea_orm(table_name = "notes")]
pub struct Model {
    pub body: String,
}

fn main() {}
