//! What a `Group` shows over HTTP, on paused time: every readiness
//! transition of `/admin/ready`, `kind` and `group` in `/admin/liveness`,
//! and `supervised_subsystem_info` and `supervised_ready` in `/metrics`.
#![cfg(all(feature = "http", feature = "prometheus"))]

mod http_support;

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};
use supervised_core::{CancellationToken, Child, Group, Registry};
use tokio::time::sleep;

use http_support::route;

async fn ready(registry: &Registry) -> (StatusCode, Value) {
    let reply = route(registry, "/admin/ready").await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    (reply.status, serde_json::from_str(&reply.body).unwrap())
}

fn sample(metrics: &str, name: &str) -> Option<String> {
    metrics
        .lines()
        .find(|line| line.starts_with(name))
        .map(|line| line.rsplit(' ').next().unwrap_or_default().to_string())
}

/// A child that declares a 10 s tick, beats after `first_beat`, then waits.
fn ticking(registry: &Registry, name: &'static str, first_beat: Duration) -> Child {
    let registry = registry.clone();
    Child::new(name, move |cancel: CancellationToken| {
        registry
            .subsystem(name)
            .declare_tick(Some(Duration::from_secs(10)), None);
        async move {
            sleep(first_beat).await;
            supervised_core::beat();
            cancel.cancelled().await;
        }
    })
}

#[tokio::test(start_paused = true)]
async fn ready_goes_starting_ready_draining_and_metrics_follow() {
    let registry = Registry::new();
    let advisory = registry.subsystem("advisory-probe");
    advisory.declare_tick(Some(Duration::from_secs(1)), None);
    advisory.set_advisory(true);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("svc")
            .registry(&registry)
            .drain(Duration::from_secs(5))
            .spec(ticking(&registry, "fast", Duration::from_secs(1)))
            .spec(ticking(&registry, "slow", Duration::from_secs(3)))
            .run(cancel.clone()),
    );
    tokio::task::yield_now().await;

    // Starting: both wait; the advisory one is never waited for.
    let (status, body) = ready(&registry).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "starting", "waiting": ["fast", "slow"]})
    );
    let metrics = route(&registry, "/metrics").await.body;
    assert_eq!(
        sample(&metrics, "supervised_ready ").as_deref(),
        Some("0"),
        "{metrics}"
    );

    sleep(Duration::from_secs(2)).await;
    let (status, body) = ready(&registry).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "starting", "waiting": ["slow"]}));

    sleep(Duration::from_secs(2)).await;
    let (status, body) = ready(&registry).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let metrics = route(&registry, "/metrics").await.body;
    assert_eq!(
        sample(&metrics, "supervised_ready ").as_deref(),
        Some("1"),
        "{metrics}"
    );

    // Draining from the first moment of the shutdown, while the children
    // still run (the drain), and after.
    cancel.cancel();
    tokio::task::yield_now().await;
    let (status, body) = ready(&registry).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"})
        )
    );
    let liveness: Value =
        serde_json::from_str(&route(&registry, "/admin/liveness").await.body).unwrap();
    assert_eq!(
        liveness["subsystems"]["fast"]["state"], "running",
        "the drain stops nothing"
    );
    let metrics = route(&registry, "/metrics").await.body;
    assert_eq!(sample(&metrics, "supervised_ready ").as_deref(), Some("0"));
    assert!(run.await.unwrap().is_clean());
    let (status, _) = ready(&registry).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Liveness is another question: the health probe is untouched.
    assert_eq!(
        route(&registry, "/admin/health").await.status,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn kind_and_group_in_the_liveness_json_and_the_info_metric() {
    let registry = Registry::new();
    registry.subsystem("standalone").beat();
    let cancel = CancellationToken::new();
    let worker = |cancel: CancellationToken| async move { cancel.cancelled().await };
    let run = tokio::spawn(
        Group::new("platform")
            .registry(&registry)
            .child("scheduler", worker)
            .group(Group::new("channels").child("channel/telegram", worker))
            .run(cancel.clone()),
    );
    sleep(Duration::from_millis(10)).await;

    let liveness: Value =
        serde_json::from_str(&route(&registry, "/admin/liveness").await.body).unwrap();
    let subsystems = &liveness["subsystems"];
    for (name, kind, group) in [
        ("platform", "group", Value::Null),
        ("platform/channels", "group", json!("platform")),
        ("scheduler", "subsystem", json!("platform")),
        ("channel/telegram", "subsystem", json!("platform/channels")),
        ("standalone", "subsystem", Value::Null),
    ] {
        assert_eq!(subsystems[name]["kind"], kind, "{name}: {liveness}");
        assert_eq!(subsystems[name]["group"], group, "{name}: {liveness}");
    }
    assert_eq!(subsystems["platform"]["state"], "running");
    assert_eq!(
        subsystems["platform"]["tick_seconds"],
        Value::Null,
        "a group never goes stale"
    );

    let metrics = route(&registry, "/metrics").await.body;
    let info: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("supervised_subsystem_info{"))
        .collect();
    assert_eq!(
        info,
        [
            r#"supervised_subsystem_info{subsystem="channel/telegram",group="platform/channels"} 1"#,
            r#"supervised_subsystem_info{subsystem="platform/channels",group="platform"} 1"#,
            r#"supervised_subsystem_info{subsystem="scheduler",group="platform"} 1"#,
        ],
        "{metrics}"
    );
    // The existing families keep their one label.
    assert!(
        metrics.contains(r#"supervised_up{subsystem="scheduler"} 1"#),
        "{metrics}"
    );
    cancel.cancel();
    run.await.unwrap();
    let liveness: Value =
        serde_json::from_str(&route(&registry, "/admin/liveness").await.body).unwrap();
    assert_eq!(liveness["subsystems"]["platform"]["state"], "stopped");
}
