//! Sharded groups on paused time, several replicas in one process sharing
//! a `lease::Memory` store: placement, handoff on a join, loss of a
//! cut-off replica, shutdown, and fencing epochs. A ledger kept by every
//! child's body checks that no child ever runs on two replicas at once.

mod sharded;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sharded::*;
use supervised_core::lease::Memory;
use supervised_core::{CancellationToken, Child, Group, Registry, Shards, SubsystemState};
use tokio::time::{sleep, Instant};

#[tokio::test(start_paused = true)]
async fn each_child_runs_on_exactly_one_replica_and_a_join_moves_only_what_it_must() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    no_overlap(&ledger);

    // Placement: each replica holds exactly what rendezvous hashing places
    // on it (`settled`). Each bucket goes to each replica with chance 1/3,
    // so the counts spread as a uniform draw would: at most 23 apart for
    // 99.9% of choices of ids (see `Shards::replica_for`). These ids give
    // 20, 15 and 29.
    let counts: Vec<usize> = [&a, &b, &c].iter().map(|r| held(r).len()).collect();
    assert_eq!(counts, vec![20, 15, 29]);
    // Each child on the replica holding its bucket, once; the others list
    // it as elsewhere and have no entry for it.
    for replica in [&a, &b, &c] {
        let children = replica.handle.children();
        assert_eq!(children.len(), CHILDREN);
        let here: Vec<&str> = children
            .iter()
            .filter(|c| c.state == SubsystemState::Running)
            .map(|c| c.name.as_str())
            .collect();
        assert!(children
            .iter()
            .all(|c| matches!(c.state, SubsystemState::Running | SubsystemState::Elsewhere)));
        // Only its own children (and the group) are in its registry.
        assert_eq!(replica.registry.len(), here.len() + 1, "{}", replica.id);
        let book = lock(&ledger);
        assert!(here
            .iter()
            .all(|name| book.running.get(*name) == Some(&replica.id)));
        let shards = replica
            .registry
            .get("tenants")
            .unwrap()
            .status()
            .shards
            .unwrap();
        assert_eq!(shards.buckets, BUCKETS);
        assert_eq!(shards.replicas, vec!["replica-a", "replica-b", "replica-c"]);
    }

    // A fourth joins: only the buckets it wins move, and only their
    // children restart.
    let before: Vec<BTreeSet<u32>> = [&a, &b, &c].iter().map(|r| held(r)).collect();
    // Replicas that start together wait a round before they ask for
    // buckets, so none was handed from one to another: one run each.
    let runs_before: HashMap<String, usize> = lock(&ledger)
        .runs
        .iter()
        .map(|(name, runs)| (name.clone(), runs.len()))
        .collect();
    assert!(runs_before.values().all(|&runs| runs == 1));
    let d = replica(&store, "replica-d", &ledger);
    // The rate: each old replica gives up at most 64/16 = 4 buckets a
    // round (ttl/3), so the newcomer gains at most 12 in any round.
    let mut gained: Vec<(Instant, usize)> = Vec::new();
    until(TTL * 6, "four replicas settle", || {
        gained.push((Instant::now(), held(&d).len()));
        settled(&[&a, &b, &c, &d], &ledger)
    })
    .await;
    for (i, (at, count)) in gained.iter().enumerate() {
        let round_later = gained[i..]
            .iter()
            .take_while(|(later, _)| *later < *at + TTL / 3)
            .map(|(_, c)| *c)
            .max()
            .unwrap_or(*count);
        assert!(
            round_later - count <= 12,
            "gained {} in a round",
            round_later - count
        );
    }
    assert!(
        gained.iter().any(|(_, c)| *c > 0 && *c < 20),
        "the 20 buckets came over more than one round: {gained:?}"
    );
    no_overlap(&ledger);
    // Exactly the buckets the fourth wins move, no others: 20 for these
    // ids (a binomial's 64 x 1/4: 16 on average, more than 18 for about a
    // fifth of choices of ids).
    let moved = held(&d);
    let abcd = ["replica-a", "replica-b", "replica-c", "replica-d"];
    assert_eq!(moved, placed(&abcd, "replica-d"));
    assert_eq!(moved.len(), 20);
    for (replica, before) in [&a, &b, &c].iter().zip(&before) {
        let now = held(replica);
        assert!(
            now.is_subset(before),
            "{}: only gave buckets up",
            replica.id
        );
        assert_eq!(
            before.difference(&now).count(),
            before.intersection(&moved).count()
        );
    }
    {
        let book = lock(&ledger);
        let shards = Shards::new(BUCKETS);
        for (name, runs) in &book.runs {
            let bucket = shards.bucket_of(name);
            let expected = if moved.contains(&bucket) { 2 } else { 1 };
            assert_eq!(runs.len(), expected, "{name} (bucket {bucket}): {runs:?}");
            // Fenced: a moved child's epoch grew.
            assert!(runs.windows(2).all(|w| w[1].1 > w[0].1), "{name}: {runs:?}");
        }
    }
    stop_all([a, b, c, d]).await;
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_replica_stops_its_children_before_another_takes_them() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    assert!(!children_on(&ledger, "replica-a").is_empty());

    a.cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    // Its last confirmed renewal was at most ttl/3 ago: every child of it
    // is gone by 4/5 ttl after that, before the membership can expire.
    let on_a_then = children_on(&ledger, "replica-a");
    let gone = until(TTL, "replica-a's children gone", || {
        children_on(&ledger, "replica-a").is_empty()
    })
    .await;
    // Its last confirmed renewal was sent before the cut: each child was
    // cancelled by 3/5 ttl after it, and gone by 4/5 (they flush for
    // longer than that, so the fence dropped them).
    assert!(gone <= TTL * 4 / 5, "{gone:?}");
    {
        let book = lock(&ledger);
        for name in &on_a_then {
            let (replica, at) = &book.cancelled[name];
            assert_eq!(replica, "replica-a");
            let after = at.saturating_duration_since(cut_at);
            assert!(
                after <= TTL * 3 / 5,
                "{name} cancelled {after:?} after the cut"
            );
        }
    }
    assert!(held(&a).is_empty());
    // The others take its buckets once its membership expired: within
    // ttl + ttl/3 of the cut, and a round.
    let back = until(TTL * 2, "the others run everything", || {
        settled(&[&b, &c], &ledger)
    })
    .await;
    assert!(cut_at.elapsed() <= TTL + TTL / 3 + TTL / 3, "{back:?}");
    no_overlap(&ledger);
    assert!(a
        .handle
        .children()
        .iter()
        .all(|c| c.state == SubsystemState::Elsewhere));

    // Back in: it joins again, the buckets spread again, still no overlap.
    a.cut.store(false, Ordering::SeqCst);
    until(TTL * 6, "three again", || settled(&[&a, &b, &c], &ledger)).await;
    no_overlap(&ledger);
    stop_all([a, b, c]).await;
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_stops_its_children_then_frees_every_bucket_at_once() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_test_writer()
        .try_init();
    let store = Memory::new("store");
    let ledger = Shared::default();
    let (a, b) = (
        replica(&store, "replica-a", &ledger),
        replica(&store, "replica-b", &ledger),
    );
    until(TTL * 3, "settle", || settled(&[&a, &b], &ledger)).await;
    let a_buckets = held(&a);
    assert!(!a_buckets.is_empty());
    a.cancel.cancel();
    let report = a.run.await.unwrap();
    assert!(report.unstopped.is_empty(), "{report:?}");
    // Released, not left to expire: the membership is gone at once.
    assert_eq!(store.holder_of("shards/tenants/members/replica-a"), None);
    // Released, not expired: the other takes them within a round or two.
    let took = until(TTL, "b runs everything", || settled(&[&b], &ledger)).await;
    assert!(took < TTL, "{took:?}");
    no_overlap(&ledger);
    assert_eq!(a.registry.len(), 1, "only the group's own entry is left");
    b.cancel.cancel();
    b.run.await.unwrap();
}

/// No backend given and none installed: the children run nowhere (an
/// ERROR says why), listed as elsewhere.
#[tokio::test(start_paused = true)]
async fn without_a_backend_nothing_runs_and_an_error_says_why() {
    let registry = Registry::new();
    let group = Group::new("tenants")
        .registry(&registry)
        .shards(Shards::new(8).ttl(TTL));
    let handle = group.handle();
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    handle
        .add(Child::new("tenant/1", move |cancel: CancellationToken| {
            flag.store(true, Ordering::SeqCst);
            async move { cancel.cancelled().await }
        }))
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(TTL * 2).await;
    assert!(!started.load(Ordering::SeqCst), "no backend: nothing runs");
    assert_eq!(handle.children()[0].state, SubsystemState::Elsewhere);
    cancel.cancel();
    run.await.unwrap();
}

/// The group's entry shows its buckets in `/admin/liveness`, and
/// `/metrics` counts them.
#[cfg(all(feature = "http", feature = "prometheus"))]
#[tokio::test(start_paused = true)]
async fn the_reports_show_the_buckets_held_here() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let store = Memory::new("store");
    let ledger = Shared::default();
    let (a, b) = (
        replica(&store, "replica-a", &ledger),
        replica(&store, "replica-b", &ledger),
    );
    until(TTL * 3, "settle", || settled(&[&a, &b], &ledger)).await;
    let held_a = held(&a);
    let get = |path: &'static str| {
        let router: axum::Router = supervised_core::http::RouterOptions::new()
            .registry(&a.registry)
            .router();
        async move {
            let response = router
                .oneshot(
                    axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let json = get("/admin/liveness?prefix=tenants").await;
    let shards = &json["subsystems"]["tenants"]["shards"];
    assert_eq!(shards["buckets"], BUCKETS);
    assert_eq!(
        shards["replicas"],
        serde_json::json!(["replica-a", "replica-b"])
    );
    let listed: BTreeSet<u32> = shards["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(listed, held_a);
    assert_eq!(shards["acquired"], held_a.len());
    // A child's entry carries its bucket's grant.
    let page = get("/admin/liveness?prefix=tenant%2F&limit=1").await;
    let (name, child) = page["subsystems"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let bucket = Shards::new(BUCKETS).bucket_of(name);
    assert_eq!(
        child["lease"]["name"],
        format!("shards/tenants/buckets/{bucket}")
    );
    assert!(child["lease"]["epoch"].as_u64().unwrap() >= 1);
    assert!(held_a.contains(&bucket));
    let text = supervised_core::metrics::encode_prometheus_text(&a.registry).unwrap();
    assert!(
        text.contains(&format!(
            "supervised_shard_buckets_held{{group=\"tenants\"}} {}",
            held_a.len()
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "supervised_shard_buckets_acquired_total{{group=\"tenants\"}} {}",
        held_a.len()
    )));
    assert!(text.contains("supervised_shard_buckets_released_total{group=\"tenants\"} 0"));
    stop_all([a, b]).await;
}

/// Under `OneForAll`, a child's failure restarts its siblings on this
/// replica only: a temporary sibling that runs elsewhere is neither
/// stopped nor forgotten here, and the failed child runs again.
#[tokio::test(start_paused = true)]
async fn a_restart_with_siblings_leaves_the_children_elsewhere_alone() {
    let store = Memory::new("store");
    let start = |id: &str| {
        let registry = Registry::new();
        let group = Group::new("tenants")
            .registry(&registry)
            .strategy(supervised_core::Strategy::OneForAll)
            .shards(
                Shards::new(BUCKETS)
                    .ttl(TTL)
                    .backend(Arc::new(store.replica(id))),
            );
        let handle = group.handle();
        for i in 0..40 {
            handle
                .add(
                    Child::new(
                        format!("tenant/{i:04}"),
                        |cancel: CancellationToken| async move { cancel.cancelled().await },
                    )
                    .restart(supervised_core::Restart::Temporary),
                )
                .unwrap();
        }
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        handle
            .add(Child::new("boom", move |cancel: CancellationToken| {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run == 0 {
                        sleep(Duration::from_secs(5)).await;
                        panic!("one bad row");
                    }
                    cancel.cancelled().await
                }
            }))
            .unwrap();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(group.run(cancel.clone()));
        (handle, cancel, run, runs)
    };
    let (a, b) = (start("replica-a"), start("replica-b"));
    let elsewhere = |handle: &supervised_core::GroupHandle| -> BTreeSet<String> {
        handle
            .children()
            .into_iter()
            .filter(|c| c.state == SubsystemState::Elsewhere)
            .map(|c| c.name)
            .collect()
    };
    // Settled (a round to join, one to ask), before boom fails at 5 s.
    sleep(Duration::from_secs(3)).await;
    let before = [elsewhere(&a.0), elsewhere(&b.0)];
    assert!(
        before.iter().all(|e| !e.is_empty() && e.len() < 41),
        "{before:?}"
    );
    sleep(Duration::from_secs(9)).await;
    let (ran_a, ran_b) = (a.3.load(Ordering::SeqCst), b.3.load(Ordering::SeqCst));
    assert_eq!(
        ran_a + ran_b,
        2,
        "boom ran, failed, and ran again on its replica"
    );
    // Where boom failed, its local temporary siblings were stopped and
    // forgotten (OTP's rule); the children elsewhere are all still there.
    // The other replica saw nothing of it.
    assert_eq!([elsewhere(&a.0), elsewhere(&b.0)], before);
    let other = if ran_a == 2 { &b.0 } else { &a.0 };
    assert_eq!(other.children().len(), 41);
    for (_, cancel, run, _) in [a, b] {
        cancel.cancel();
        run.await.unwrap();
    }
}

/// A child added on every replica while a join's handoff is under way, for
/// a bucket that has not moved yet, runs on one replica at a time (on the
/// old holder, then on the newcomer once the bucket moves), and ends on
/// the replica that holds its bucket: an add does not race a bucket that
/// is moving.
#[tokio::test(start_paused = true)]
async fn a_child_added_during_a_handoff_runs_once_where_its_bucket_lands() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    let d = replica(&store, "replica-d", &ledger);
    // Mid-handoff: the newcomer holds some of its buckets, not all yet.
    let ids = ["replica-a", "replica-b", "replica-c", "replica-d"];
    let wins = placed(&ids, "replica-d");
    until(TTL * 3, "the newcomer holds its first buckets", || {
        !held(&d).is_empty()
    })
    .await;
    // Late children whose buckets the newcomer wins but does not hold
    // yet (they are still to move), added on every replica as a service
    // adds them.
    let moving: BTreeSet<u32> = wins.difference(&held(&d)).copied().collect();
    assert!(!moving.is_empty(), "the handoff is still under way");
    let shards = Shards::new(BUCKETS);
    let late: Vec<String> = (0..)
        .map(|i| format!("late/{i}"))
        .filter(|name| moving.contains(&shards.bucket_of(name)))
        .take(8)
        .collect();
    for replica in [&a, &b, &c, &d] {
        for name in &late {
            replica
                .handle
                .add(ledger_child(&ledger, &replica.id, name.clone()))
                .unwrap();
        }
    }
    until(TTL * 6, "four replicas settle", || {
        settled_with(&[&a, &b, &c, &d], &ledger, CHILDREN + late.len())
    })
    .await;
    no_overlap(&ledger);
    for name in &late {
        assert_eq!(
            lock(&ledger).running.get(name).map(String::as_str),
            Some("replica-d"),
            "{name} runs where its bucket landed"
        );
    }
    stop_all([a, b, c, d]).await;
}

/// A pause holds on the replica that made it: the child stops there and is
/// listed `Paused`, no replica runs it while its bucket stays, and when a
/// join moves its bucket, the new holder (which did not pause it) runs it.
#[tokio::test(start_paused = true)]
async fn a_pause_holds_on_its_replica_until_the_bucket_moves() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    // A child that a fourth replica would win, and the replica running it.
    let ids = ["replica-a", "replica-b", "replica-c", "replica-d"];
    let shards = Shards::new(BUCKETS);
    let wins = placed(&ids, "replica-d");
    let name = names()
        .into_iter()
        .find(|n| wins.contains(&shards.bucket_of(n)))
        .expect("a child the newcomer wins");
    let holder = lock(&ledger).running.get(&name).cloned().expect("it runs");
    let holder = [&a, &b, &c]
        .into_iter()
        .find(|r| r.id == holder)
        .expect("one of the three");
    let runs_before = lock(&ledger).runs.get(&name).map_or(0, Vec::len);
    holder.handle.pause(&name).await.unwrap();
    let state_on = |replica: &Replica| {
        replica
            .handle
            .children()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.state)
    };
    assert_eq!(state_on(holder), Some(SubsystemState::Paused));
    // No replica runs it, nor starts it again, while its bucket stays put.
    sleep(TTL * 2).await;
    assert_eq!(lock(&ledger).running.get(&name), None);
    assert_eq!(
        lock(&ledger).runs.get(&name).map_or(0, Vec::len),
        runs_before,
        "not started again"
    );
    assert_eq!(state_on(holder), Some(SubsystemState::Paused));

    let d = replica(&store, "replica-d", &ledger);
    until(
        TTL * 6,
        "four replicas settle, the paused child running again",
        || settled_with(&[&a, &b, &c, &d], &ledger, CHILDREN),
    )
    .await;
    no_overlap(&ledger);
    assert_eq!(
        lock(&ledger).running.get(&name).map(String::as_str),
        Some("replica-d")
    );
    assert_eq!(
        lock(&ledger).runs.get(&name).map_or(0, Vec::len),
        runs_before + 1
    );
    assert_eq!(state_on(&d), Some(SubsystemState::Running));
    stop_all([a, b, c, d]).await;
}
