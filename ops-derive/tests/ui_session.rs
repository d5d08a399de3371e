//! Compile-time tests of `#[managed_session]` and `#[db_retry]`: what must compile (`pass`,
//! including a case under `#![deny(warnings, clippy::all)]`) and what must not, with the reviewed
//! messages (`fail/*.stderr`). `#[derive(Ops)]` has its own suite in `tests/ui/{pass,fail}`.

#[test]
fn session_attributes() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/session/pass/*.rs");
    t.compile_fail("tests/ui/session/fail/*.rs");
}

#[test]
fn retry_attribute() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/retry/pass/*.rs");
    t.compile_fail("tests/ui/retry/fail/*.rs");
}
