//! `/admin/liveness`'s query parameters and `/admin/liveness/summary`, on
//! paused time: filters by group subtree, state, staleness and name prefix,
//! pages that join up with nothing lost or repeated, and a 400 naming the
//! parameter for every mistake.
#![cfg(feature = "http")]

mod http_support;

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};
use supervised_core::{CancellationToken, Exit, Group, Registry, Supervisor};

use http_support::route;

async fn get(registry: &Registry, path: &str) -> Value {
    let reply = route(registry, path).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

fn names(body: &Value) -> Vec<String> {
    body["subsystems"]
        .as_object()
        .expect("subsystems")
        .keys()
        .cloned()
        .collect()
}

/// A registry with a nested group (`app`, `app/tenants` with 20 tenants, a
/// sibling `app/tenants-old` with one), two failed loops outside any group
/// (one named `tenant/bad`), and one stale loop.
async fn fleet() -> (
    Registry,
    CancellationToken,
    tokio::task::JoinHandle<supervised_core::GroupReport>,
) {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let mut tenants = Group::new("tenants");
    for t in 0..20 {
        tenants = tenants.child(
            format!("tenant/{t:02}"),
            |cancel: CancellationToken| async move {
                cancel.cancelled().await;
            },
        );
    }
    let old =
        Group::new("tenants-old").child("tenant/old", |cancel: CancellationToken| async move {
            cancel.cancelled().await;
        });
    let run = tokio::spawn(
        Group::new("app")
            .registry(&registry)
            .group(tenants)
            .group(old)
            .run(cancel.clone()),
    );
    for name in ["tenant/bad", "billing"] {
        let exit = Supervisor::new()
            .registry(&registry)
            .max_restarts(0, Duration::from_secs(60))
            .run(CancellationToken::new(), name, |_| async {
                Err::<(), _>("bad row")
            })
            .await;
        assert!(matches!(exit, Exit::GaveUp(_)));
    }
    let sweep = registry.subsystem("sweep");
    sweep.declare_tick(Some(Duration::from_secs(1)), None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    (registry, cancel, run)
}

#[tokio::test(start_paused = true)]
async fn without_parameters_the_answer_is_every_entry_in_the_old_shape() {
    let (registry, cancel, run) = fleet().await;
    let body = get(&registry, "/admin/liveness").await;
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["healthy", "subsystems"]));
    // 21 tenants, 3 groups, 2 failed, 1 stale.
    assert_eq!(names(&body).len(), 27, "{body}");
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_group_filter_takes_its_subtree_and_nothing_that_only_shares_letters() {
    let (registry, cancel, run) = fleet().await;
    let body = get(&registry, "/admin/liveness?group=app/tenants").await;
    let found = names(&body);
    assert_eq!(found.len(), 21, "the group and its 20 tenants: {found:?}");
    assert!(found.contains(&"app/tenants".to_string()));
    assert!(!found.iter().any(|n| n.contains("old")), "{found:?}");
    assert_eq!(body["healthy"], json!(true));
    assert_eq!(body["next_after"], Value::Null);

    let all = names(&get(&registry, "/admin/liveness?group=app").await);
    assert_eq!(all.len(), 24, "app, its two groups, 21 tenants: {all:?}");
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn state_stale_and_prefix_filters_combine() {
    let (registry, cancel, run) = fleet().await;
    let failed = get(&registry, "/admin/liveness?state=failed").await;
    assert_eq!(names(&failed), ["billing", "tenant/bad"]);
    assert_eq!(failed["healthy"], json!(false));
    assert_eq!(failed["subsystems"]["billing"]["state"], json!("failed"));

    let prefixed = get(&registry, "/admin/liveness?state=failed&prefix=tenant%2F").await;
    assert_eq!(names(&prefixed), ["tenant/bad"]);

    let stale = get(&registry, "/admin/liveness?stale=true").await;
    assert_eq!(names(&stale), ["sweep"]);
    assert_eq!(stale["subsystems"]["sweep"]["stale"], json!(true));

    // Repeated and comma-separated states are one set.
    let either = get(
        &registry,
        "/admin/liveness?state=failed&state=stopped,backing_off",
    )
    .await;
    assert_eq!(names(&either), ["billing", "tenant/bad"]);
    let none = get(&registry, "/admin/liveness?state=standby").await;
    assert_eq!(names(&none), Vec::<String>::new());
    assert_eq!(none["healthy"], json!(true));
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pages_join_up_with_nothing_lost_or_repeated() {
    let (registry, cancel, run) = fleet().await;
    let every = names(&get(&registry, "/admin/liveness").await);
    let mut paged = Vec::new();
    let mut path = "/admin/liveness?limit=4".to_string();
    loop {
        let page = get(&registry, &path).await;
        let found = names(&page);
        assert!(found.len() <= 4);
        paged.extend(found);
        match page["next_after"].as_str() {
            Some(after) => {
                path = format!(
                    "/admin/liveness?limit=4&after={}",
                    after.replace('/', "%2F")
                )
            }
            None => break,
        }
    }
    assert_eq!(paged, every, "pages in name order, each entry once");
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_summary_counts_by_group_and_state_and_lists_the_failing_first_names() {
    let (registry, cancel, run) = fleet().await;
    let body = get(&registry, "/admin/liveness/summary").await;
    assert_eq!(body["healthy"], json!(false));
    assert_eq!(body["subsystems"], json!(27));
    assert_eq!(
        body["failed"],
        json!({"total": 2, "names": ["billing", "tenant/bad"]})
    );
    assert_eq!(body["stale"], json!({"total": 1, "names": ["sweep"]}));
    let groups = body["groups"].as_array().unwrap();
    let by_path = |path: Value| groups.iter().find(|g| g["group"] == path).cloned().unwrap();
    let outside = by_path(Value::Null);
    // `app` (a root group), billing, tenant/bad, sweep.
    assert_eq!(outside["subsystems"], json!(4), "{outside}");
    assert_eq!(outside["states"]["failed"], json!(2));
    assert_eq!(outside["stale"], json!(1));
    let tenants = by_path(json!("app/tenants"));
    assert_eq!(tenants["subsystems"], json!(20));
    assert_eq!(
        tenants["states"],
        json!({"running": 20, "backing_off": 0, "stopped": 0, "failed": 0, "standby": 0, "paused": 0})
    );

    // The names are bounded by `limit`; the totals are not.
    let one = get(&registry, "/admin/liveness/summary?limit=1").await;
    assert_eq!(one["failed"], json!({"total": 2, "names": ["billing"]}));
    // Filters narrow the summary too.
    let sub = get(&registry, "/admin/liveness/summary?group=app/tenants").await;
    assert_eq!(sub["subsystems"], json!(21));
    assert_eq!(sub["healthy"], json!(true));
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_mistake_is_a_400_that_names_the_parameter() {
    let registry = Registry::new();
    for (path, parameter) in [
        ("/admin/liveness?stat=failed", "stat"),
        ("/admin/liveness?state=dead", "state"),
        ("/admin/liveness?stale=1", "stale"),
        ("/admin/liveness?limit=0", "limit"),
        ("/admin/liveness?limit=ten", "limit"),
        ("/admin/liveness?group=", "group"),
        ("/admin/liveness?prefix=a&prefix=b", "prefix"),
        ("/admin/liveness/summary?after=x", "after"),
        ("/admin/liveness?%3Cscript%3E=1", "<script>"),
    ] {
        let reply = route(&registry, path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"], json!("bad_parameter"), "{path}");
        assert_eq!(body["parameter"], json!(parameter), "{path}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// A group judged by its share of healthy children: the filtered answer,
/// the summary and `/admin/health` agree that it is unhealthy once too few
/// of its (advisory) children are healthy.
#[tokio::test(start_paused = true)]
async fn every_route_applies_a_groups_share_rule() {
    let registry = Registry::new();
    let mut group = Group::new("fleet")
        .registry(&registry)
        .min_healthy_percent(80);
    for t in 0..10 {
        // Three of ten never beat: stale after 2 s.
        let beats = t >= 3;
        group = group.child(
            format!("w/{t}"),
            move |cancel: CancellationToken| async move {
                supervised_core::current()
                    .expect("current")
                    .declare_tick(Some(Duration::from_secs(1)), None);
                while beats && !cancel.is_cancelled() {
                    supervised_core::beat();
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = cancel.cancelled() => {}
                    }
                }
                cancel.cancelled().await;
            },
        );
    }
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;

    let health = route(&registry, "/admin/health").await;
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        health.body
    );
    let health: Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health["below_min_healthy"], json!(["fleet"]), "{health}");
    assert_eq!(health["stale"], json!([]), "the children are advisory");
    for path in [
        "/admin/liveness?group=fleet",
        "/admin/liveness?group=fleet&limit=2",
        "/admin/liveness/summary",
        "/admin/liveness/summary?group=fleet",
    ] {
        assert_eq!(
            get(&registry, path).await["healthy"],
            json!(false),
            "{path}"
        );
    }
    // The unfiltered answer agrees.
    assert_eq!(
        get(&registry, "/admin/liveness").await["healthy"],
        json!(false)
    );
    cancel.cancel();
    run.await.unwrap();
}
