use ops_sea::Ops;

#[derive(Ops)]
pub struct Model {
    pub id: i32,
}

fn main() {}
