//! Bounded metrics for a fleet, on paused time: children added at run time
//! are counted in their group's series, not given a series each, and they
//! are not held to the registry's cap, which still refuses names made from
//! data.
#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::time::Duration;

use supervised_core::metrics::encode_prometheus_text;
use supervised_core::{CancellationToken, Child, Group, GroupHandle, Registry};

mod common;

/// The exposition of `registry`, parsed.
fn scrape(registry: &Registry) -> BTreeMap<String, f64> {
    common::prometheus_samples(&encode_prometheus_text(registry).unwrap())
}

/// A tenant worker with a 10 s tick that beats every 10 s.
fn tenant(name: String) -> Child {
    Child::new(name.clone(), move |cancel: CancellationToken| {
        let name = name.clone();
        async move {
            supervised_core::current()
                .expect("a current subsystem")
                .declare_tick(Some(Duration::from_secs(10)), None);
            let _ = &name;
            while !cancel.is_cancelled() {
                supervised_core::beat();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(10)) => {}
                    () = cancel.cancelled() => {}
                }
            }
        }
    })
}

async fn start(
    registry: &Registry,
) -> (
    GroupHandle,
    CancellationToken,
    tokio::task::JoinHandle<supervised_core::GroupReport>,
) {
    let group = Group::new("tenants")
        .registry(registry)
        .spec(tenant("relay".into()));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    tokio::task::yield_now().await;
    (handle, cancel, run)
}

#[tokio::test(start_paused = true)]
async fn a_fleet_is_counted_in_its_group_and_static_children_keep_their_series() {
    let registry = Registry::new();
    let (handle, cancel, run) = start(&registry).await;
    for t in 0..50 {
        handle.add(tenant(format!("tenant/{t:02}"))).unwrap();
    }
    handle
        .add(tenant("tenant/vip".into()).own_metrics(true))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let s = scrape(&registry);
    assert_eq!(
        s["supervised_up{subsystem=relay}"], 1.0,
        "a static child keeps its series"
    );
    assert_eq!(s["supervised_up{subsystem=tenant/vip}"], 1.0, "asked for");
    assert!(
        !s.contains_key("supervised_up{subsystem=tenant/07}"),
        "a fleet child has none"
    );
    assert!(!s.keys().any(|k| k.contains("tenant/07")));
    assert_eq!(
        s["supervised_group_children{group=tenants,state=running}"],
        52.0
    );
    assert_eq!(
        s["supervised_group_children{group=tenants,state=failed}"],
        0.0
    );
    assert_eq!(s["supervised_group_stale_children{group=tenants}"], 0.0);
    assert_eq!(s["supervised_group_restarts_total{group=tenants}"], 0.0);
    let oldest = s["supervised_group_oldest_heartbeat_timestamp_seconds{group=tenants}"];
    assert!(oldest > 1.0e9, "a Unix time: {oldest}");
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stale_children_are_counted_and_restarts_never_go_down_on_removal() {
    let registry = Registry::new();
    let (handle, cancel, run) = start(&registry).await;
    // One tenant that panics twice, then beats on time.
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let r = runs.clone();
    handle
        .add(Child::new(
            "tenant/flaky",
            move |cancel: CancellationToken| {
                let run = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if run < 2 {
                        panic!("bad row");
                    }
                    cancel.cancelled().await;
                }
            },
        ))
        .unwrap();
    // One that declares a tick and never beats: stale after 20 s.
    handle
        .add(Child::new(
            "tenant/stuck",
            |cancel: CancellationToken| async move {
                supervised_core::current()
                    .expect("current")
                    .declare_tick(Some(Duration::from_secs(10)), None);
                cancel.cancelled().await;
            },
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let s = scrape(&registry);
    assert_eq!(s["supervised_group_restarts_total{group=tenants}"], 2.0);
    assert_eq!(s["supervised_group_stale_children{group=tenants}"], 1.0);

    handle.remove("tenant/flaky").await.unwrap();
    let s = scrape(&registry);
    assert_eq!(
        s["supervised_group_restarts_total{group=tenants}"], 2.0,
        "a removed child's restarts stay counted: the counter never goes down"
    );
    assert_eq!(
        s["supervised_group_children{group=tenants,state=running}"],
        2.0
    );
    cancel.cancel();
    run.await.unwrap();
}

/// 100,000 tenants added at run time: all registered though the registry's
/// cap is 10,000, and the exposition stays at a few series per group.
#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_tenants_make_a_few_series_and_are_not_refused() {
    let registry = Registry::new();
    assert_eq!(registry.max_subsystems(), 10_000);
    let (handle, cancel, run) = start(&registry).await;
    for t in 0..100_000 {
        handle.add(tenant(format!("tenant/{t:06}"))).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The tenants, the static relay and the group's own entry.
    assert_eq!(registry.len(), 100_002);
    assert_eq!(registry.rejected_subsystems(), 0);

    let s = scrape(&registry);
    assert!(s.len() <= 500, "{} series for 100,000 tenants", s.len());
    assert_eq!(
        s["supervised_group_children{group=tenants,state=running}"],
        100_001.0
    );

    // The cap still stops a bug that makes names from data.
    for i in 0..20_000 {
        registry.heartbeat(&format!("bug/{i}"));
    }
    assert_eq!(
        registry.len(),
        100_002 + 10_000 - 2,
        "the cap counts the non-fleet entries only"
    );
    assert_eq!(registry.rejected_subsystems(), 10_002);
    cancel.cancel();
    run.await.unwrap();
}

/// A nested group's own entry counts the restarts it made of its children;
/// those are totalled in its own group, so the parent does not count them
/// again.
#[tokio::test(start_paused = true)]
async fn a_nested_groups_restarts_are_counted_once() {
    let registry = Registry::new();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let r = runs.clone();
    let inner = Group::new("inner").child("flaky", move |cancel: CancellationToken| {
        let run = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if run < 2 {
                panic!("bad row");
            }
            cancel.cancelled().await;
        }
    });
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("outer")
            .registry(&registry)
            .group(inner)
            .child("steady", |cancel: CancellationToken| async move {
                cancel.cancelled().await;
            })
            .run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = scrape(&registry);
    assert_eq!(s["supervised_group_restarts_total{group=outer/inner}"], 2.0);
    assert_eq!(
        s["supervised_group_restarts_total{group=outer}"], 0.0,
        "the inner group's count is not added to the outer's"
    );
    cancel.cancel();
    run.await.unwrap();
}
