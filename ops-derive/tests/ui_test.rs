//! Compile-time tests of `#[ops_sea::test]`: what must compile (`pass`, under
//! `#![deny(warnings)]`) and what must not, with the reviewed messages (`fail/*.stderr`).

#[test]
fn test_attribute() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/test/pass/*.rs");
    t.compile_fail("tests/ui/test/fail/*.rs");
}
