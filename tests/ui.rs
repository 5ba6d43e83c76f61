//! Compile tests for `#[supervised]`: every supported shape builds and
//! runs, and every misuse gives its one diagnostic at the offending token.
//! One `#[test]` drives them all, so trybuild builds them in one go.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
