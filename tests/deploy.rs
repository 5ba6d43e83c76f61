//! The operator's kit under `deploy/`, checked by the programs operators
//! run: `promtool check rules` and `promtool test rules` on the Prometheus
//! rules. (The systemd unit is verified in `platform_example.rs`, which
//! builds the binary it names.)
//!
//! Without promtool the checks are skipped with a loud message, unless
//! `SUPERVISED_REQUIRE_SERVERS=1` (set by `.ci/run`), which fails them.

use std::path::Path;
use std::process::Command;

/// `promtool`, or `None` after a loud message when it is missing.
fn promtool() -> Option<Command> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        return Some(Command::new("promtool"));
    }
    assert!(
        std::env::var("SUPERVISED_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "promtool is not installed, and SUPERVISED_REQUIRE_SERVERS=1 forbids skipping"
    );
    eprintln!("################################################################");
    eprintln!("## SKIPPED: promtool is not installed (apt-get install -y prometheus).");
    eprintln!("################################################################");
    None
}

fn run(mut command: Command) -> String {
    let output = command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus"))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let Some(mut promtool) = promtool() else {
        return;
    };
    promtool.args(["check", "rules", "rules.yml"]);
    let out = run(promtool);
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
}

#[test]
fn promtool_runs_the_rule_unit_tests() {
    let Some(mut promtool) = promtool() else {
        return;
    };
    promtool.args(["test", "rules", "rules.test.yml"]);
    let out = run(promtool);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Every alert in rules.yml has a test, a runbook section in
/// deploy/README.md, and the annotations operators read.
#[test]
fn every_alert_has_tests_a_runbook_and_annotations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let rules = std::fs::read_to_string(root.join("prometheus/rules.yml")).unwrap();
    let tests = std::fs::read_to_string(root.join("prometheus/rules.test.yml")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "no promtool test for {alert}"
        );
        assert!(
            readme.contains(&format!("### {alert}\n")),
            "no runbook section for {alert} in deploy/README.md"
        );
        let anchor = format!("deploy/README.md#{}", alert.to_lowercase());
        assert!(
            rules.contains(&anchor),
            "{alert}'s runbook_url does not point at {anchor}"
        );
    }
    assert_eq!(rules.matches("summary:").count(), alerts.len());
    assert_eq!(rules.matches("description:").count(), alerts.len());
    assert_eq!(rules.matches("runbook_url:").count(), alerts.len());
}
