use ops_sea::Ops;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
#[sea_orm(table_name = "conversations")]
#[ops(name = "ConversationOps", find_by(session_id))]
#[ops(name = "Other")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub session_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

// The first name is kept: code using it compiles, so the duplicate is the only error.
async fn uses_the_first_name(db: &sea_orm::DatabaseConnection) {
    let _ = ConversationOps::find_by_session_id(db, "s").await;
}

fn main() {
    let _ = uses_the_first_name;
}
