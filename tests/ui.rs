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

/// A user reads these diagnostics with only the `supervised` crate in
/// view: no note may point into a file of the inner crates.
#[test]
fn diagnostics_name_no_inner_crate_file() {
    let mut checked = 0;
    for entry in std::fs::read_dir("tests/ui/fail").expect("tests/ui/fail exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "stderr") {
            let text = std::fs::read_to_string(&path).expect("a readable .stderr");
            for inner in [
                "supervised-core/",
                "supervised-macros/",
                "supervised_core::",
            ] {
                assert!(
                    !text.contains(inner),
                    "{} names `{inner}`:\n{text}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} .stderr files found");
}
