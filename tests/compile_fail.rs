//! Compile-fail tests (issue 7): the borrows that make the zero-copy views
//! sound are checked by the compiler. Each file in `tests/ui/` must fail to
//! compile with the error recorded beside it (`TRYBUILD=overwrite` to
//! regenerate after a compiler upgrade changes the wording).
#![cfg(not(any(loom, feature = "shuttle")))]

#[test]
fn borrows_are_enforced() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
