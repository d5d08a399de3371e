//! A composite key, a renamed repository, a composite unique key and a renamed `ops_sea`.

#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications
)]

use ::ops_sea as renamed_ops;

/// The entity.
pub mod membership {
    use sea_orm::entity::prelude::*;

    /// One membership.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, super::renamed_ops::Ops)]
    #[sea_orm(table_name = "memberships")]
    #[ops(
        name = "MembershipOps",
        crate = "super::renamed_ops",
        find_by((team_id, user_id), (team_id, badge)),
        list_by(team_id, (team_id, role))
    )]
    pub struct Model {
        /// The team.
        #[sea_orm(primary_key, auto_increment = false)]
        pub team_id: i32,
        /// The user.
        #[sea_orm(primary_key)]
        pub user_id: String,
        /// The role.
        pub role: String,
        /// A badge number, unique within the team.
        #[sea_orm(unique_key = "team_badge")]
        pub badge: i32,
        /// Not a column: SeaORM fills it with its default.
        #[sea_orm(ignore)]
        pub cached: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    use membership::{MembershipOps, New, Patch};
    use renamed_ops::Repository;

    // The key is a tuple; `New` holds both key columns (neither is auto-increment).
    let new = New {
        team_id: 1,
        user_id: "ann".into(),
        role: "owner".into(),
        badge: 7,
    };
    let patch = Patch {
        role: Some("member".into()),
        ..Default::default()
    };
    let key: <MembershipOps as Repository>::Key = (1, String::from("ann"));
    drop((new, patch, key));
    let _ = lookups;
    assert_eq!(<MembershipOps as Repository>::NAME, "membership");
}

/// The generated lookups, type-checked; `&str` converts into a `String` column's value.
async fn lookups(db: &sea_orm::DatabaseConnection) -> Result<(), renamed_ops::OpsError> {
    use membership::MembershipOps;

    let _one = MembershipOps::find_by_team_id_and_user_id(db, 1, "ann").await?;
    let _badge = MembershipOps::find_by_team_id_and_badge(db, 1, 7).await?;
    let _team = MembershipOps::list_by_team_id(db, 1).await?;
    let _roles = MembershipOps::list_by_team_id_and_role(db, 1, "owner").await?;
    let _got = MembershipOps::get(db, (1, String::from("ann"))).await?;
    Ok(())
}
