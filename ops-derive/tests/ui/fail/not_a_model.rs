use ops_sea::Ops;

#[derive(Ops)]
pub struct Conversation {
    pub id: i32,
}

fn main() {}
