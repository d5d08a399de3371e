//! Parsing and code generation shared by `#[managed_session]` and `#[db_retry]`: the duration
//! grammar (`duration`), option values (`value`), and the model of the annotated function
//! (`function`).

pub(crate) mod duration;
pub(crate) mod function;
pub(crate) mod value;
