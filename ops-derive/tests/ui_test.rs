//! Compile-time tests of `#[ops_sea::test]`: what must compile (`pass`, under
//! `#![deny(warnings)]`) and what must not, with the reviewed messages (`fail/*.stderr`).
//!
//! trybuild builds binaries, and rustc removes `#[test]` functions from a binary before type
//! checking them. The cases whose errors only type checking finds (`fail/type_errors.rs`), and
//! the pass case, therefore point `crate = "..."` at a module that puts an attribute keeping the
//! function in `#[test]`'s place; the behaviour tests in `tests/tests/test_attr.rs` compile the
//! default expansion as real tests.

#[test]
fn test_attribute() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/test/pass/*.rs");
    t.compile_fail("tests/ui/test/fail/*.rs");
}
