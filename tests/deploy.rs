//! The operator's kit under `deploy/`, checked by the programs operators
//! run: `promtool check rules` and `promtool test rules` on the Prometheus
//! rules, `kubernetes-validate --strict` on the manifests, and the
//! PrometheusRule regenerated from the rules and compared. (The systemd
//! unit is verified in `platform_example.rs`, which builds the binary it
//! names.)
//!
//! Without a tool its checks are skipped with a loud message, unless
//! `SUPERVISED_REQUIRE_SERVERS=1` (set by `.ci/run`), which fails them.

use std::path::Path;
use std::process::Command;

/// `program`, or `None` after a loud message when it is missing.
fn tool(program: &str, install: &str) -> Option<Command> {
    if Command::new(program).arg("--version").output().is_ok() {
        return Some(Command::new(program));
    }
    skip(program, install);
    None
}

/// Says loudly that `what` is missing and its checks are skipped; fails
/// instead under `SUPERVISED_REQUIRE_SERVERS=1`.
fn skip(what: &str, install: &str) {
    assert!(
        std::env::var("SUPERVISED_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "{what} is not installed, and SUPERVISED_REQUIRE_SERVERS=1 forbids skipping"
    );
    eprintln!("################################################################");
    eprintln!("## SKIPPED: {what} is not installed ({install}).");
    eprintln!("################################################################");
}

fn promtool() -> Option<Command> {
    tool("promtool", "apt-get install -y prometheus")
}

fn deploy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn run(command: Command) -> String {
    run_in(command, &deploy().join("prometheus"))
}

fn run_in(mut command: Command, dir: &Path) -> String {
    let output = command.current_dir(dir).output().expect("the tool runs");
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
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
}

#[test]
fn promtool_runs_the_rule_unit_tests() {
    let Some(mut promtool) = promtool() else {
        return;
    };
    // rules.scrape.test.yml evaluates between 15 s scrapes, as production
    // does: a healthy loop must not read stale there.
    promtool.args(["test", "rules", "rules.test.yml", "rules.scrape.test.yml"]);
    let out = run(promtool);
    assert_eq!(out.matches("SUCCESS").count(), 2, "{out}");
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
    assert_eq!(alerts.len(), 8, "{alerts:?}");
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

/// The Deployment meets the restricted Pod Security Standard, sets a
/// memory limit and points each probe where it belongs, as
/// `deploy/kubernetes/check-deployment.py` reads it.
#[test]
fn the_deployment_is_restricted_and_its_probes_are_in_place() {
    let Some(mut python) = tool("python3", "apt-get install -y python3") else {
        return;
    };
    python.args(["check-deployment.py", "deployment.yaml"]);
    let out = run_in(python, &deploy().join("kubernetes"));
    assert!(
        out.contains("deployment.yaml: restricted, probes in place"),
        "{out}"
    );
}

#[test]
fn kubernetes_validate_accepts_the_manifests() {
    let Some(mut validate) = tool(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.34.1",
    ) else {
        return;
    };
    validate.args([
        "--strict",
        "deployment.yaml",
        "podmonitor.yaml",
        "prometheusrule.yaml",
    ]);
    let out = run_in(validate, &deploy().join("kubernetes"));
    assert!(
        out.contains("deployment.yaml passed for resource deployment/platform"),
        "{out}"
    );
    // Its schemas are Kubernetes' own: the prometheus-operator kinds get a
    // warning that no schema exists, never an error (checked above by the
    // exit status); the PrometheusRule's content is the checked rules.yml.
    assert!(!out.contains("ERROR"), "{out}");
}

/// The PodMonitor and PrometheusRule match prometheus-operator's CRD
/// schemas with unknown fields refused (`kubernetes-validate` has no
/// schema for them), and a misspelt field anywhere fails the check.
#[test]
fn the_monitoring_manifests_match_the_operators_crds() {
    let dir = deploy().join("kubernetes");
    let check = |files: &[&Path]| -> Option<std::process::Output> {
        let mut python = tool("python3", "apt-get install -y python3")?;
        python.arg("check-monitoring.py").args(files);
        Some(python.current_dir(&dir).output().expect("python3 runs"))
    };
    let (podmonitor, rule) = (dir.join("podmonitor.yaml"), dir.join("prometheusrule.yaml"));
    let models = Command::new("python3")
        .args(["-c", "import cloudcoil.models.prometheus_operator"])
        .output();
    if !models.is_ok_and(|out| out.status.success()) {
        skip(
            "the CRD models",
            "pip install cloudcoil==0.6.0 cloudcoil-models-prometheus-operator==0.80.1.0",
        );
        return;
    }
    let Some(output) = check(&[&podmonitor, &rule]) else {
        return;
    };
    let out = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("PodMonitor/platform matches the CRD schema"),
        "{out}"
    );
    assert!(
        out.contains("PrometheusRule/supervised matches the CRD schema"),
        "{out}"
    );

    // The misspellings a hand-edited manifest gets, one at a time, each
    // named by the check with where it is.
    let scratch = std::env::temp_dir().join(format!("supervised-crds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch dir");
    let cases = [
        (
            &podmonitor,
            "podMetricsEndpoints:",
            "podMetricEndpoints:",
            "spec.podMetricEndpoints",
        ),
        (
            &podmonitor,
            "path: /metrics",
            "pathh: /metrics",
            "spec.podMetricsEndpoints.0.pathh",
        ),
        (&podmonitor, "  labels:", "  lables:", "metadata.lables"),
        (
            &rule,
            "    expr:",
            "    exprr:",
            "spec.groups.0.rules.0.exprr",
        ),
        (&rule, "  groups:", "  group:", "spec.group"),
    ];
    for (source, right, wrong, named) in cases {
        let text = std::fs::read_to_string(source).expect("the manifest reads");
        assert!(text.contains(right), "{source:?} has no {right:?}");
        let bad = scratch.join(source.file_name().expect("a file name"));
        std::fs::write(&bad, text.replacen(right, wrong, 1)).expect("the copy writes");
        let output = check(&[&bad]).expect("python3 ran above");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{wrong:?} passed:\n{out}");
        assert!(
            out.contains(&format!("{named}: Extra inputs are not permitted")),
            "{wrong:?}:\n{out}"
        );
    }
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn the_prometheusrule_is_generated_from_the_rules() {
    let dir = deploy().join("kubernetes");
    let committed = std::fs::read_to_string(dir.join("prometheusrule.yaml")).unwrap();
    // Regenerated into a scratch copy of deploy/, so the committed file is
    // compared, not overwritten.
    let scratch = std::env::temp_dir().join(format!("supervised-deploy-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("kubernetes")).unwrap();
    std::fs::create_dir_all(scratch.join("prometheus")).unwrap();
    std::fs::copy(
        dir.join("generate-prometheusrule.sh"),
        scratch.join("kubernetes/generate-prometheusrule.sh"),
    )
    .unwrap();
    std::fs::copy(
        deploy().join("prometheus/rules.yml"),
        scratch.join("prometheus/rules.yml"),
    )
    .unwrap();
    let status = Command::new("bash")
        .arg(scratch.join("kubernetes/generate-prometheusrule.sh"))
        .status()
        .expect("bash runs");
    assert!(status.success());
    let regenerated =
        std::fs::read_to_string(scratch.join("kubernetes/prometheusrule.yaml")).unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        committed == regenerated,
        "deploy/kubernetes/prometheusrule.yaml is stale: run deploy/kubernetes/generate-prometheusrule.sh"
    );
    // And its spec is rules.yml, line for line.
    let rules = std::fs::read_to_string(deploy().join("prometheus/rules.yml")).unwrap();
    let spec: Vec<&str> = committed
        .lines()
        .skip_while(|l| *l != "spec:")
        .skip(1)
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect();
    assert_eq!(spec, rules.lines().collect::<Vec<_>>());
}

/// The dashboard reads right across replicas: every stat panel says with
/// its own thresholds which value is bad (Grafana's defaults would show
/// "Failed = 1" and "Ready = 0" green), and every legend names the
/// instance, so two replicas' series are told apart.
#[test]
fn the_dashboards_stats_have_thresholds_and_its_legends_name_the_instance() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/supervised.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut stats = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or("");
            assert!(
                legend.contains("{{instance}}"),
                "{title}: legend {legend:?}"
            );
        }
        if panel["type"] == "stat" {
            stats += 1;
            let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{title}: no thresholds"));
            let colors: Vec<&str> = steps.iter().filter_map(|s| s["color"].as_str()).collect();
            assert!(
                colors.contains(&"red") && colors.contains(&"green"),
                "{title}: {colors:?}"
            );
            assert_eq!(
                panel["fieldConfig"]["defaults"]["color"]["mode"], "thresholds",
                "{title}"
            );
        }
    }
    assert_eq!(stats, 2);
}

/// `systemd-analyze security` rates the unit's sandbox 5 or lower ("OK"):
/// a network service needs nothing of the host but its sockets and its
/// credential. The unit's comment says the same.
#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    let Some(mut analyze) = tool("systemd-analyze", "apt-get install -y systemd") else {
        return;
    };
    analyze.args(["security", "--offline=yes", "platform.service"]);
    let out = run_in(analyze, &deploy().join("systemd"));
    let score: f64 = out
        .split("Overall exposure level for platform.service:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level:\n{out}"));
    assert!(score <= 5.0, "exposure {score}, above 5 (OK):\n{out}");
}
