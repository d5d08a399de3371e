//! Compile-time behaviour of `#[derive(Ops)]`: what compiles (`ui/pass`, run as programs under
//! strict lints) and what is rejected with which message (`ui/fail`, with reviewed `.stderr`).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
