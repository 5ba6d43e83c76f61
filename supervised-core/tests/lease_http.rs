//! What a lease-gated subsystem shows over HTTP, on paused time: standby
//! and leader in `/admin/liveness`, a healthy `/admin/health`, a ready
//! `/admin/ready`, and the lease families of `/metrics`.
#![cfg(all(feature = "http", feature = "prometheus"))]

mod http_support;

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};
use supervised_core::lease::{Acquired, Backend, Memory};
use supervised_core::{CancellationToken, Registry, Supervisor};
use tokio::time::sleep;

use http_support::route;

fn sample(metrics: &str, prefix: &str) -> Option<String> {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .map(|line| line.rsplit(' ').next().unwrap_or_default().to_string())
}

#[tokio::test(start_paused = true)]
async fn standby_and_leader_over_http() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let ttl = Duration::from_secs(15);
    let Ok(Acquired::Granted(theirs)) = b.acquire("scheduler", ttl).await else {
        panic!("replica-b takes the lease first")
    };
    let supervisor = Supervisor::new()
        .registry(&registry)
        .lease("scheduler")
        .lease_backend(Arc::new(a.clone()))
        .tick(Duration::from_secs(1));
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            supervisor
                .run(cancel, "scheduler", |token| async move {
                    while !token.is_cancelled() {
                        supervised_core::beat();
                        tokio::select! {
                            () = sleep(Duration::from_secs(1)) => {}
                            () = token.cancelled() => {}
                        }
                    }
                })
                .await
        }
    });
    sleep(Duration::from_secs(10)).await;

    let reply = route(&registry, "/admin/liveness").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    let scheduler = &body["subsystems"]["scheduler"];
    assert_eq!(scheduler["state"], "standby");
    assert_eq!(scheduler["leader"], false);
    assert_eq!(scheduler["healthy"], true);
    assert_eq!(scheduler["stale"], false);
    assert_eq!(scheduler["lease"]["name"], "scheduler");
    assert_eq!(scheduler["lease"]["holder"], "replica-b");
    assert_eq!(scheduler["lease"]["epoch"], theirs.epoch);
    assert_eq!(scheduler["lease"]["expires_in_seconds"], json!(5.0));
    assert_eq!(body["healthy"], true);

    assert_eq!(
        route(&registry, "/admin/health").await.status,
        StatusCode::OK
    );
    let ready = route(&registry, "/admin/ready").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, r#"{"status":"ready"}"#)
    );

    let metrics = route(&registry, "/metrics").await.body;
    let labels = r#"{subsystem="scheduler",lease="scheduler"}"#;
    assert_eq!(
        sample(&metrics, &format!("supervised_lease_held{labels}")).as_deref(),
        Some("0")
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("supervised_lease_acquisitions_total{labels}")
        )
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        sample(
            &metrics,
            r#"supervised_state{subsystem="scheduler",state="standby"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(&metrics, r#"supervised_up{subsystem="scheduler"}"#).as_deref(),
        Some("1")
    );

    // B lets go: this replica leads.
    b.release(&theirs).await.unwrap();
    sleep(Duration::from_secs(6)).await;
    let body: Value =
        serde_json::from_str(&route(&registry, "/admin/liveness").await.body).unwrap();
    let scheduler = &body["subsystems"]["scheduler"];
    assert_eq!(scheduler["state"], "running");
    assert_eq!(scheduler["leader"], true);
    assert_eq!(scheduler["lease"]["holder"], "replica-a");
    assert_eq!(scheduler["lease"]["epoch"], theirs.epoch + 1);
    let metrics = route(&registry, "/metrics").await.body;
    assert_eq!(
        sample(&metrics, &format!("supervised_lease_held{labels}")).as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("supervised_lease_acquisitions_total{labels}")
        )
        .as_deref(),
        Some("1")
    );

    // An ungated subsystem says `null` for both keys.
    registry.heartbeat("plain");
    let body: Value =
        serde_json::from_str(&route(&registry, "/admin/liveness").await.body).unwrap();
    assert_eq!(body["subsystems"]["plain"]["leader"], Value::Null);
    assert_eq!(body["subsystems"]["plain"]["lease"], Value::Null);

    cancel.cancel();
    task.await.unwrap();
}
