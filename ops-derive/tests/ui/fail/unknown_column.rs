//! A misspelled column: one error, with a suggestion, and the rest of the repository still works.
use ops_sea::Ops;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
#[sea_orm(table_name = "conversations")]
#[ops(find_by(sesion_id))]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub session_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

async fn uses_the_rest(db: &sea_orm::DatabaseConnection) {
    let _ = Ops::get(db, 1).await;
    let _ = Ops::create(db, New { session_id: "s".into() }).await;
}

fn main() {
    let _ = uses_the_rest;
}
