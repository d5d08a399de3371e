use ops_sea::Ops;

#[derive(Ops)]
pub enum Model {
    A,
}

fn main() {}
