//! Sharded groups on paused time, several replicas in one process sharing
//! a `lease::Memory` store: placement, handoff on a join, loss of a
//! cut-off replica, shutdown, and fencing epochs. A ledger kept by every
//! child's body checks that no child ever runs on two replicas at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::lease::{
    self, Acquired, Backend, Bound, BoxFuture, Grant, LeaseError, Listed, Memory, Renewal,
};
use supervised_core::{
    CancellationToken, Child, Group, GroupHandle, GroupReport, Registry, Shards, SubsystemState,
};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

const TTL: Duration = Duration::from_secs(3);
const BUCKETS: u32 = 64;
const CHILDREN: usize = 1_000;
/// How long a child takes to finish after its cancellation.
const FLUSH: Duration = Duration::from_millis(1_500);

/// Every child's runs, across the replicas.
#[derive(Default)]
struct Ledger {
    /// Where each child runs now (a body alive counts until it is dropped).
    running: HashMap<String, String>,
    /// Each child's runs: the replica and the bucket's epoch.
    runs: HashMap<String, Vec<(String, u64)>>,
    /// A start while the child ran elsewhere: must stay empty.
    overlaps: Vec<String>,
    /// When each child's token was last cancelled, and where.
    cancelled: HashMap<String, (String, Instant)>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends a run in the ledger when the body is dropped (returned or aborted).
struct Running {
    ledger: Shared,
    name: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.ledger).running.remove(&self.name);
    }
}

/// A store that a test can cut off from one replica, or make lose the
/// answers to its next bound-grant asks (granted in the store, an error
/// to the replica, as a timeout would).
struct Cut {
    inner: Memory,
    cut: Arc<AtomicBool>,
    lose_answers: Arc<std::sync::atomic::AtomicU32>,
}

impl Cut {
    fn check(&self) -> Result<(), LeaseError> {
        if self.cut.load(Ordering::SeqCst) {
            Err(LeaseError::new("cut off"))
        } else {
            Ok(())
        }
    }
}

impl Backend for Cut {
    fn holder(&self) -> &str {
        self.inner.holder()
    }
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, LeaseError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.acquire(name, ttl).await
        })
    }
    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.renew(grant).await
        })
    }
    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release(grant).await
        })
    }
    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        Box::pin(async move {
            self.check()?;
            let answer = self.inner.acquire_bound(name, member).await;
            let lost = self
                .lose_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if lost {
                return Err(LeaseError::new("the answer was lost"));
            }
            answer
        })
    }
    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release_bound(grant).await
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.list(prefix).await
        })
    }
}

struct Replica {
    id: String,
    registry: Registry,
    handle: GroupHandle,
    cancel: CancellationToken,
    run: JoinHandle<GroupReport>,
    cut: Arc<AtomicBool>,
    lose_answers: Arc<std::sync::atomic::AtomicU32>,
}

fn names() -> Vec<String> {
    (0..CHILDREN).map(|i| format!("tenant/{i:04}")).collect()
}

/// A replica `id` of the service: a sharded group `tenants` with every child.
fn replica(store: &Memory, id: &str, ledger: &Shared) -> Replica {
    let registry = Registry::new();
    let cut = Arc::new(AtomicBool::new(false));
    let lose_answers = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let backend = Arc::new(Cut {
        inner: store.replica(id),
        cut: Arc::clone(&cut),
        lose_answers: Arc::clone(&lose_answers),
    });
    let group = Group::new("tenants")
        .registry(&registry)
        .shards(Shards::new(BUCKETS).ttl(TTL).backend(backend));
    let handle = group.handle();
    for name in names() {
        let (ledger, me, child) = (Arc::clone(ledger), id.to_string(), name.clone());
        handle
            .add(Child::new(name, move |cancel: CancellationToken| {
                let (ledger, me, name) = (Arc::clone(&ledger), me.clone(), child.clone());
                async move {
                    let epoch = lease::epoch().expect("a sharded child has its bucket's epoch");
                    {
                        let mut book = lock(&ledger);
                        if let Some(other) = book.running.insert(name.clone(), me.clone()) {
                            book.overlaps
                                .push(format!("{name} on {me} while on {other}"));
                        }
                        book.runs
                            .entry(name.clone())
                            .or_default()
                            .push((me.clone(), epoch));
                    }
                    let running = Running { ledger, name };
                    cancel.cancelled().await;
                    lock(&running.ledger)
                        .cancelled
                        .insert(running.name.clone(), (me, Instant::now()));
                    // Flushes for a while before it ends, as a worker
                    // finishing its batch does: a handoff that did not
                    // wait for it would overlap the next holder.
                    sleep(FLUSH).await;
                }
            }))
            .unwrap();
    }
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    Replica {
        id: id.to_string(),
        registry,
        handle,
        cancel,
        run,
        cut,
        lose_answers,
    }
}

/// The buckets `replica` holds, as its group's entry shows them.
fn held(replica: &Replica) -> BTreeSet<u32> {
    replica
        .registry
        .get("tenants")
        .and_then(|group| group.status().shards)
        .map(|shards| shards.held.into_iter().collect())
        .unwrap_or_default()
}

/// Waits (on paused time) until `settled` holds, at most `within`.
async fn until(within: Duration, what: &str, mut settled: impl FnMut() -> bool) -> Duration {
    let begun = Instant::now();
    while !settled() {
        assert!(begun.elapsed() < within, "not within {within:?}: {what}");
        sleep(Duration::from_millis(50)).await;
    }
    begun.elapsed()
}

/// The buckets rendezvous hashing places on `id` among `ids`.
fn placed(ids: &[&str], id: &str) -> BTreeSet<u32> {
    let shards = Shards::new(BUCKETS);
    (0..BUCKETS)
        .filter(|&b| shards.replica_for(b, ids) == Some(id))
        .collect()
}

/// Each of `replicas` holds exactly the buckets placed on it, and every
/// child runs (once).
fn settled(replicas: &[&Replica], ledger: &Shared) -> bool {
    let ids: Vec<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
    replicas.iter().all(|r| held(r) == placed(&ids, &r.id))
        && lock(ledger).running.len() == CHILDREN
}

fn no_overlap(ledger: &Shared) {
    let book = lock(ledger);
    assert!(
        book.overlaps.is_empty(),
        "{:?}",
        &book.overlaps[..book.overlaps.len().min(5)]
    );
}

#[tokio::test(start_paused = true)]
async fn each_child_runs_on_exactly_one_replica_and_a_join_moves_only_what_it_must() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let (a, b, c) = (
        replica(&store, "replica-a", &ledger),
        replica(&store, "replica-b", &ledger),
        replica(&store, "replica-c", &ledger),
    );
    until(TTL * 3, "three replicas settle", || {
        settled(&[&a, &b, &c], &ledger)
    })
    .await;
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
    for replica in [a, b, c, d] {
        replica.cancel.cancel();
        replica.run.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_replica_stops_its_children_before_another_takes_them() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let (a, b, c) = (
        replica(&store, "replica-a", &ledger),
        replica(&store, "replica-b", &ledger),
        replica(&store, "replica-c", &ledger),
    );
    until(TTL * 3, "settle", || settled(&[&a, &b, &c], &ledger)).await;
    let on_a = |ledger: &Shared| {
        lock(ledger)
            .running
            .values()
            .filter(|r| *r == "replica-a")
            .count()
    };
    assert!(on_a(&ledger) > 0);

    a.cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    // Its last confirmed renewal was at most ttl/3 ago: every child of it
    // is gone by 4/5 ttl after that, before the membership can expire.
    let on_a_then: BTreeSet<String> = lock(&ledger)
        .running
        .iter()
        .filter(|(_, r)| *r == "replica-a")
        .map(|(name, _)| name.clone())
        .collect();
    let gone = until(TTL, "replica-a's children gone", || on_a(&ledger) == 0).await;
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
    for replica in [a, b, c] {
        replica.cancel.cancel();
        replica.run.await.unwrap();
    }
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
    for replica in [a, b] {
        replica.cancel.cancel();
        replica.run.await.unwrap();
    }
}

/// Bound-grant asks that were granted in the store but whose answers were
/// lost: the replica takes the buckets as its own when the store says it
/// holds them, and their children run.
#[tokio::test(start_paused = true)]
async fn a_grant_whose_answer_was_lost_is_taken_up_on_the_next_ask() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let a = replica(&store, "replica-a", &ledger);
    a.lose_answers.store(5, Ordering::SeqCst);
    until(TTL * 3, "settle", || settled(&[&a], &ledger)).await;
    assert_eq!(
        a.lose_answers.load(Ordering::SeqCst),
        0,
        "five answers were lost"
    );
    no_overlap(&ledger);
    a.cancel.cancel();
    a.run.await.unwrap();
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
