//! Replicas of a sharded group in one process, for the paused-time shard
//! tests: each a group `tenants` with every child, on a shared
//! `lease::Memory` behind a store that a test can cut off, and a ledger
//! kept by every child's body of where it runs.

#![allow(dead_code)] // Each test uses a part.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::lease::{
    self, Acquired, Backend, Bound, BoxFuture, Grant, LeaseError, Listed, Memory, Renewal,
};
use supervised_core::{
    CancellationToken, Child, Group, GroupHandle, GroupReport, Registry, Shards,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

pub const TTL: Duration = Duration::from_secs(3);
pub const BUCKETS: u32 = 64;
pub const CHILDREN: usize = 1_000;
/// How long a child takes to finish after its cancellation.
pub const FLUSH: Duration = Duration::from_millis(1_500);

/// Every child's runs, across the replicas.
#[derive(Default)]
pub struct Ledger {
    /// Where each child runs now (a body alive counts until it is dropped).
    pub running: HashMap<String, String>,
    /// Each child's runs: the replica and the bucket's epoch.
    pub runs: HashMap<String, Vec<(String, u64)>>,
    /// A start while the child ran elsewhere: must stay empty.
    pub overlaps: Vec<String>,
    /// When each child's token was last cancelled, and where.
    pub cancelled: HashMap<String, (String, Instant)>,
    /// When each child's body was last dropped (returned or aborted).
    pub dropped: HashMap<String, Instant>,
}

pub type Shared = Arc<Mutex<Ledger>>;

pub fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends a run in the ledger when the body is dropped (returned or aborted).
struct Running {
    ledger: Shared,
    name: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut book = lock(&self.ledger);
        book.running.remove(&self.name);
        book.dropped.insert(self.name.clone(), Instant::now());
    }
}

/// The shared store going down for every replica at once and coming back:
/// a call made while it is down waits for it (a client reconnecting).
/// Either as etcd does, whose leases do not run out while it is down and
/// are extended by a whole ttl when it restarts, or as PostgreSQL does,
/// whose grants expire at the instant stored with them.
#[derive(Clone)]
pub struct Outage {
    down: Arc<watch::Sender<bool>>,
    /// Whether memberships outlive the outage, as etcd's leases do.
    keeps_leases: bool,
    /// The last membership granted to each replica.
    members: Arc<Mutex<HashMap<String, Grant>>>,
}

impl Default for Outage {
    fn default() -> Self {
        Outage::like_postgres()
    }
}

impl Outage {
    /// An outage after which every membership is live for a whole ttl.
    pub fn like_etcd() -> Self {
        Outage {
            down: Arc::new(watch::Sender::new(false)),
            keeps_leases: true,
            members: Arc::default(),
        }
    }

    /// An outage during which memberships expire as they would.
    pub fn like_postgres() -> Self {
        Outage {
            keeps_leases: false,
            ..Outage::like_etcd()
        }
    }

    /// Takes `store` down for `downtime`, then brings it back.
    pub async fn restart(&self, store: &Memory, downtime: Duration) {
        self.down.send_replace(true);
        let back = Instant::now() + downtime;
        loop {
            if self.keeps_leases {
                self.extend_members(store).await;
            }
            if Instant::now() >= back {
                break;
            }
            sleep((back - Instant::now()).min(Duration::from_millis(100))).await;
        }
        self.down.send_replace(false);
    }

    async fn extend_members(&self, store: &Memory) {
        let members: Vec<Grant> = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for grant in members {
            // Refused for one released before the outage: left so.
            let _ = store.replica(grant.holder.clone()).renew(&grant).await;
        }
    }

    async fn reachable(&self) {
        let mut up = self.down.subscribe();
        let _ = up.wait_for(|down| !*down).await;
    }
}

/// Counts one down from `left`; `false` at 0.
fn take_one(left: &AtomicU32) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A store that a test can cut off from one replica, or make lose the
/// answers to its next bound-grant asks (granted in the store, an error
/// to the replica, as a timeout would), or take down with an [`Outage`].
struct Cut {
    inner: Memory,
    cut: Arc<AtomicBool>,
    lose_answers: Arc<AtomicU32>,
    outage: Outage,
    calls: Arc<AtomicU64>,
    unanswered_releases: Arc<AtomicU32>,
    panic_next: Arc<AtomicBool>,
}

impl Cut {
    /// A cut-off replica's call fails at once (its connection refused);
    /// during an outage, another's waits for the store to come back.
    async fn check(&self) -> Result<(), LeaseError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("a lease backend's own code panicked");
        }
        if self.cut.load(Ordering::SeqCst) {
            return Err(LeaseError::new("cut off"));
        }
        self.outage.reachable().await;
        Ok(())
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
            self.check().await?;
            let answer = self.inner.acquire(name, ttl).await;
            if let Ok(Acquired::Granted(grant)) = &answer {
                if name.contains("/members/") {
                    let mut members = self
                        .outage
                        .members
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    members.insert(grant.holder.clone(), grant.clone());
                }
            }
            answer
        })
    }
    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
        Box::pin(async move {
            self.check().await?;
            self.inner.renew(grant).await
        })
    }
    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            self.check().await?;
            self.inner.release(grant).await
        })
    }
    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        Box::pin(async move {
            self.check().await?;
            let answer = self.inner.acquire_bound(name, member).await;
            if take_one(&self.lose_answers) {
                return Err(LeaseError::new("the answer was lost"));
            }
            answer
        })
    }
    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            self.check().await?;
            if take_one(&self.unanswered_releases) {
                return Err(LeaseError::new("no answer to the release"));
            }
            self.inner.release_bound(grant).await
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        Box::pin(async move {
            self.check().await?;
            self.inner.list(prefix).await
        })
    }
}

pub struct Replica {
    pub id: String,
    pub registry: Registry,
    pub handle: GroupHandle,
    pub cancel: CancellationToken,
    pub run: JoinHandle<GroupReport>,
    pub cut: Arc<AtomicBool>,
    pub lose_answers: Arc<AtomicU32>,
    /// The store calls it made, answered or not.
    pub calls: Arc<AtomicU64>,
    /// Its next this many bucket releases go unanswered, and are not made.
    pub unanswered_releases: Arc<AtomicU32>,
    /// Its store's next call panics.
    pub panic_next: Arc<AtomicBool>,
}

pub fn names() -> Vec<String> {
    (0..CHILDREN).map(|i| format!("tenant/{i:04}")).collect()
}

/// A replica `id` of the service: a sharded group `tenants` with every child.
pub fn replica(store: &Memory, id: &str, ledger: &Shared) -> Replica {
    replica_with(store, &Outage::default(), id, ledger)
}

/// [`replica`] on a store that `outage` can take down.
pub fn replica_with(store: &Memory, outage: &Outage, id: &str, ledger: &Shared) -> Replica {
    let registry = Registry::new();
    let cut = Arc::new(AtomicBool::new(false));
    let lose_answers = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let unanswered_releases = Arc::new(AtomicU32::new(0));
    let panic_next = Arc::new(AtomicBool::new(false));
    let backend = Arc::new(Cut {
        inner: store.replica(id),
        cut: Arc::clone(&cut),
        lose_answers: Arc::clone(&lose_answers),
        outage: outage.clone(),
        calls: Arc::clone(&calls),
        unanswered_releases: Arc::clone(&unanswered_releases),
        panic_next: Arc::clone(&panic_next),
    });
    let group = Group::new("tenants")
        .registry(&registry)
        .shards(Shards::new(BUCKETS).ttl(TTL).backend(backend));
    let handle = group.handle();
    for name in names() {
        handle.add(ledger_child(ledger, id, name)).unwrap();
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
        calls,
        unanswered_releases,
        panic_next,
    }
}

/// The buckets `replica` holds, as its group's entry shows them.
pub fn held(replica: &Replica) -> BTreeSet<u32> {
    replica
        .registry
        .get("tenants")
        .and_then(|group| group.status().shards)
        .map(|shards| shards.held.into_iter().collect())
        .unwrap_or_default()
}

/// Waits (on paused time) until `settled` holds, at most `within`.
pub async fn until(within: Duration, what: &str, mut settled: impl FnMut() -> bool) -> Duration {
    let begun = Instant::now();
    while !settled() {
        assert!(begun.elapsed() < within, "not within {within:?}: {what}");
        sleep(Duration::from_millis(50)).await;
    }
    begun.elapsed()
}

/// The buckets rendezvous hashing places on `id` among `ids`.
pub fn placed(ids: &[&str], id: &str) -> BTreeSet<u32> {
    let shards = Shards::new(BUCKETS);
    (0..BUCKETS)
        .filter(|&b| shards.replica_for(b, ids) == Some(id))
        .collect()
}

/// Each of `replicas` holds exactly the buckets placed on it, and every
/// child runs (once).
pub fn settled(replicas: &[&Replica], ledger: &Shared) -> bool {
    settled_with(replicas, ledger, CHILDREN)
}

/// [`settled`] with `children` children in all. Fails at once on an
/// overlap, rather than when the wait for settling runs out.
pub fn settled_with(replicas: &[&Replica], ledger: &Shared, children: usize) -> bool {
    no_overlap(ledger);
    let ids: Vec<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
    replicas.iter().all(|r| held(r) == placed(&ids, &r.id))
        && lock(ledger).running.len() == children
}

/// The children whose bodies are alive on `replica`.
pub fn children_on(ledger: &Shared, replica: &str) -> BTreeSet<String> {
    lock(ledger)
        .running
        .iter()
        .filter(|(_, on)| *on == replica)
        .map(|(name, _)| name.clone())
        .collect()
}

pub fn no_overlap(ledger: &Shared) {
    let book = lock(ledger);
    assert!(
        book.overlaps.is_empty(),
        "{:?}",
        &book.overlaps[..book.overlaps.len().min(5)]
    );
}

/// Child `name` on replica `id`: runs until cancelled, keeping `ledger`
/// of where and under which epoch, then flushes for [`FLUSH`].
pub fn ledger_child(ledger: &Shared, id: &str, name: String) -> Child {
    let (ledger, me, child) = (Arc::clone(ledger), id.to_string(), name.clone());
    Child::new(name, move |cancel: CancellationToken| {
        let (ledger, me, name) = (Arc::clone(&ledger), me.clone(), child.clone());
        async move {
            // A sharded child runs only under its bucket's grant: a start
            // without one is a start where the bucket is not held.
            let Some(epoch) = lease::epoch() else {
                lock(&ledger)
                    .overlaps
                    .push(format!("{name} started on {me} without its bucket"));
                return;
            };
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
            // Flushes for a while before it ends, as a worker finishing
            // its batch does: a handoff that did not wait for it would
            // overlap the next holder.
            sleep(FLUSH).await;
        }
    })
}

/// Three replicas `replica-a` to `replica-c` on `store`, once each holds
/// the buckets placed on it and every child runs.
pub async fn three_settled(store: &Memory, ledger: &Shared) -> [Replica; 3] {
    three_settled_with(store, &Outage::default(), ledger).await
}

/// [`three_settled`] on a store that `outage` can take down.
pub async fn three_settled_with(store: &Memory, outage: &Outage, ledger: &Shared) -> [Replica; 3] {
    let replicas =
        ["replica-a", "replica-b", "replica-c"].map(|id| replica_with(store, outage, id, ledger));
    until(TTL * 3, "three replicas settle", || {
        settled(&replicas.iter().collect::<Vec<_>>(), ledger)
    })
    .await;
    replicas
}

/// Shuts `replicas` down, each to the end of its group's run.
pub async fn stop_all(replicas: impl IntoIterator<Item = Replica>) {
    for replica in replicas {
        replica.cancel.cancel();
        replica.run.await.unwrap();
    }
}
