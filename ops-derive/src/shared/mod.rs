//! Parsing and code generation shared by `#[managed_session]` and `#[db_retry]`: option values
//! (`value`, whose durations use `ops_core::config::parse_duration`), and the model of the
//! annotated function (`function`).

pub(crate) mod function;
pub(crate) mod value;
