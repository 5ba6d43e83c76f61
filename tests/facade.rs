//! Every public item of `supervised-core` is reachable through `supervised`,
//! the crate users depend on: an item added to the core's root and not
//! re-exported here fails this test, rather than being found by a user who
//! reads it in a field's type and cannot name it.

use std::collections::BTreeSet;
use std::path::Path;

/// The names a crate root makes public: the last segment of every
/// `pub use` (each name in braces) and every `pub mod`, but those marked
/// `#[doc(hidden)]`.
fn public_names(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut hidden = false;
    let mut statement = String::new();
    for line in source.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        if statement.is_empty() {
            if line == "#[doc(hidden)]" {
                hidden = true;
                continue;
            }
            if line.starts_with("#[") {
                continue;
            }
            if !(line.starts_with("pub use ") || line.starts_with("pub mod ")) {
                hidden = false;
                continue;
            }
        }
        statement.push_str(line);
        statement.push(' ');
        let is_mod = statement.starts_with("pub mod ");
        let ended = line.ends_with(';') || (is_mod && line.ends_with('{'));
        if !ended {
            continue;
        }
        let done = std::mem::take(&mut statement);
        if std::mem::take(&mut hidden) {
            continue;
        }
        if let Some(module) = done.strip_prefix("pub mod ") {
            names.insert(module.trim_end_matches([';', '{', ' ']).trim().to_string());
            continue;
        }
        let path = done
            .trim_start_matches("pub use ")
            .trim_end_matches([';', ' ']);
        let list = match path.find('{') {
            Some(open) => &path[open + 1..path.rfind('}').unwrap_or(path.len())],
            None => path.rsplit("::").next().unwrap_or(path),
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.rsplit("::").next().unwrap_or(name);
            let name = name.rsplit(" as ").next().unwrap_or(name);
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn every_public_item_of_the_core_is_reachable_through_the_facade() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let core = std::fs::read_to_string(root.join("supervised-core/src/lib.rs")).unwrap();
    let facade = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let core = public_names(&core);
    let facade = public_names(&facade);
    // The parse finds what it should, or a passing test means nothing.
    for known in [
        "Group",
        "Child",
        "Lent",
        "lease",
        "http",
        "last_beat",
        "CancellationToken",
    ] {
        assert!(
            core.contains(known),
            "the core's parse misses {known}: {core:?}"
        );
    }
    assert!(
        !core.contains("macro_support"),
        "hidden items are not public API"
    );
    let missing: Vec<&String> = core.difference(&facade).collect();
    assert!(
        missing.is_empty(),
        "public in supervised-core but not re-exported by supervised: {missing:?}"
    );
}

#[test]
fn the_parse_sees_a_missing_re_export() {
    let core = "pub use registry::{Health, LeaseStatus};\n#[doc(hidden)]\npub mod macro_support;\npub mod lease;";
    let facade = "pub use supervised_core::{\n    Health,\n};\npub use supervised_core::lease;";
    let missing: Vec<String> = public_names(core)
        .difference(&public_names(facade))
        .cloned()
        .collect();
    assert_eq!(missing, ["LeaseStatus"]);
}
