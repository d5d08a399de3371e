//! Parsing and code generation shared by `#[managed_session]` and `#[db_retry]`: option values
//! (`value`, whose durations use `ops_duration::parse_duration`, the runtime's grammar), and the
//! model of the annotated function (`function`).

pub(crate) mod function;
pub(crate) mod value;
