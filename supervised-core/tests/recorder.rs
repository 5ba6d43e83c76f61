//! The `metrics` feature: the registry's figures reported into a `metrics`
//! recorder (here `metrics-exporter-prometheus`'s), parsed from what that
//! recorder renders, never compared as a string.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use supervised_core::recorder::Reporter;
use supervised_core::{CancellationToken, Child, Group, Registry, Supervisor};

fn rendered(text: &str) -> BTreeMap<String, f64> {
    common::prometheus_samples(text)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_figures_reach_the_apps_recorder_under_the_same_names() {
    let registry = Registry::new();
    let sweep = registry.subsystem("sweep");
    sweep.declare_tick(Some(Duration::from_secs(5)), None);
    sweep.beat();
    sweep.beat();
    // A loop that fails twice, then runs.
    let flaky_registry = registry.clone();
    let flaky = tokio::spawn(async move {
        let mut runs = 0;
        Supervisor::new()
            .registry(&flaky_registry)
            .run(CancellationToken::new(), "flaky", move |cancel| {
                runs += 1;
                let run = runs;
                async move {
                    if run <= 2 {
                        panic!("run {run}");
                    }
                    cancel.cancelled().await;
                }
            })
            .await
    });
    // A fleet of three, counted in its group.
    let group = Group::new("tenants").registry(&registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    for t in 0..3 {
        handle
            .add(Child::new(
                format!("tenant/{t}"),
                |cancel: CancellationToken| async move {
                    cancel.cancelled().await;
                },
            ))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;

    let recorder = PrometheusBuilder::new().build_recorder();
    let reporter = Reporter::new(&registry);
    metrics::with_local_recorder(&recorder, || reporter.report());
    let s = rendered(&recorder.handle().render());
    assert_eq!(s["supervised_up{subsystem=sweep}"], 1.0);
    assert_eq!(s["supervised_heartbeats_total{subsystem=sweep}"], 2.0);
    assert_eq!(s["supervised_tick_seconds{subsystem=sweep}"], 5.0);
    assert_eq!(s["supervised_stale_after_seconds{subsystem=sweep}"], 10.0);
    assert!(s["supervised_last_heartbeat_timestamp_seconds{subsystem=sweep}"] > 1.0e9);
    assert_eq!(s["supervised_restarts_total{subsystem=flaky}"], 2.0);
    assert_eq!(s["supervised_state{state=running,subsystem=flaky}"], 1.0);
    assert_eq!(s["supervised_state{state=failed,subsystem=flaky}"], 0.0);
    assert_eq!(
        s["supervised_group_children{group=tenants,state=running}"],
        3.0
    );
    assert_eq!(s["supervised_group_stale_children{group=tenants}"], 0.0);
    assert!(
        !s.keys().any(|k| k.contains("tenant/1")),
        "the fleet has no series each"
    );
    assert_eq!(s["supervised_ready{}"], 1.0);
    assert_eq!(s["supervised_registry_rejected_total{}"], 0.0);

    // Reported again: counters are set, not added to.
    metrics::with_local_recorder(&recorder, || reporter.report());
    let again = rendered(&recorder.handle().render());
    assert_eq!(again["supervised_restarts_total{subsystem=flaky}"], 2.0);
    assert_eq!(again["supervised_heartbeats_total{subsystem=sweep}"], 2.0);

    cancel.cancel();
    run.await.unwrap();
    flaky.abort();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn run_reports_at_its_interval_until_cancelled() {
    let registry = Registry::new();
    let beating = registry.subsystem("beating");
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let cancel = CancellationToken::new();
    let reporter = Reporter::new(&registry).interval(Duration::from_secs(15));
    // A local recorder is per thread: the reporter runs on this one.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let run = tokio::task::spawn_local({
                let cancel = cancel.clone();
                async move {
                    let _guard = metrics::set_default_local_recorder(&recorder);
                    reporter.run(cancel).await;
                }
            });
            tokio::task::yield_now().await;
            beating.beat();
            let first = rendered(&handle.render());
            assert_eq!(
                first["supervised_heartbeats_total{subsystem=beating}"], 0.0,
                "reported at once"
            );
            tokio::time::sleep(Duration::from_secs(16)).await;
            let second = rendered(&handle.render());
            assert_eq!(
                second["supervised_heartbeats_total{subsystem=beating}"], 1.0,
                "and after 15 s"
            );
            cancel.cancel();
            run.await.unwrap();
        })
        .await;
}
