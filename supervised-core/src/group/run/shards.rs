//! A sharded run ([`Group::shards`](crate::Group::shards)): only the
//! children of the buckets this replica holds run here. The keeper
//! (`shard/keeper.rs`) holds the membership and the buckets and tells the
//! run what it gained and what it must give up; the run starts and stops
//! the children, and tells the keeper when a bucket's children are gone.
//!
//! A child of a bucket not held here is `Elsewhere`: not started, not in
//! this replica's registry (its entry is removed when its bucket leaves),
//! listed by `GroupHandle::children`. Nested groups are not sharded: they
//! run on every replica.

use std::collections::HashMap as StdHashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::*;
use crate::registry::ShardFigures;
use crate::shard::keeper::{keep, KeeperSpec};
use crate::shard::{placement, Fence, KeeperEvent, Shards};

/// The run's side of sharding.
pub(super) struct ShardRun {
    buckets: u32,
    /// Held here, with their epochs.
    held: StdHashMap<u32, u64>,
    /// `None` once the run has left the shard set.
    /// Unbounded: the keeper never waits on the run to send (it must go on
    /// renewing); its events are a few per bucket and round.
    events: Option<mpsc::UnboundedReceiver<KeeperEvent>>,
    leave: mpsc::Sender<oneshot::Sender<()>>,
    fence: Arc<Fence>,
    view: Arc<ShardFigures>,
    keeper: AbortHandle,
    ttl: Duration,
    path: Arc<str>,
}

impl Drop for ShardRun {
    /// A run dropped without leaving: the keeper goes with it, and the
    /// membership expires by itself (its buckets with it).
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl ShardRun {
    /// Spawns the keeper for a run at `path`, shown on `entry`.
    pub(super) fn start(shards: &Shards, path: &Arc<str>, entry: &Subsystem) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (leave, leave_rx) = mpsc::channel(1);
        let fence = Fence::new();
        let view = Arc::new(ShardFigures::new(shards.buckets));
        entry.set_shards(Arc::clone(&view));
        let spec = KeeperSpec {
            path: Arc::clone(path),
            buckets: shards.buckets,
            ttl: shards.ttl,
            backend: shards.backend.clone(),
        };
        let keeper = tokio::spawn(keep(
            spec,
            events_tx,
            leave_rx,
            Arc::clone(&fence),
            Arc::clone(&view),
        ))
        .abort_handle();
        ShardRun {
            buckets: shards.buckets,
            held: StdHashMap::new(),
            events: Some(events),
            leave,
            fence,
            view,
            keeper,
            ttl: shards.ttl,
            path: Arc::clone(path),
        }
    }

    /// A child's task ended: the fence no longer keeps it to abort.
    pub(super) fn task_ended(&self, task: Id) {
        self.fence.forget(task);
    }

    fn lease_name(&self, bucket: u32) -> String {
        format!("shards/{}/buckets/{bucket}", self.path)
    }
}

/// A sharded child's task: polled only while the fence is open, so a
/// replica that could not confirm its membership in time (a paused
/// process, a cut-off one) never polls it again. Shut, it ends unpolled.
struct Fenced {
    fence: Arc<Fence>,
    run: ChildRun,
}

impl Future for Fenced {
    type Output = ChildEnd;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ChildEnd> {
        if !self.fence.is_open() {
            return Poll::Ready(ChildEnd::normal());
        }
        Pin::new(&mut self.run).poll(cx)
    }
}

/// Spawns a child's task, behind `fence` if it has one.
pub(super) fn spawn(
    tasks: &mut JoinSet<ChildEnd>,
    fence: Option<Arc<Fence>>,
    run: ChildRun,
) -> AbortHandle {
    match fence {
        Some(fence) => {
            let task = tasks.spawn(Fenced {
                fence: Arc::clone(&fence),
                run,
            });
            fence.guard(task.clone());
            task
        }
        None => tasks.spawn(run),
    }
}

/// The next event of the keeper, if the run is sharded (never otherwise).
pub(super) async fn next_event(shards: &mut Option<ShardRun>) -> Option<KeeperEvent> {
    match shards.as_mut().and_then(|s| s.events.as_mut()) {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

impl Runner<'_> {
    /// Member `seq`'s bucket, if it is sharded (a child, not a nested
    /// group, of a sharded group).
    pub(super) fn bucket_of(&self, seq: u64) -> Option<u32> {
        let shards = self.shards.as_ref()?;
        let member = self.def.members.get(&seq)?;
        (!member.is_group()).then(|| placement::bucket_of(&member.name, shards.buckets))
    }

    /// Whether member `seq` may run here: not sharded, or its bucket held
    /// and the fence open.
    pub(super) fn runs_here(&self, seq: u64) -> bool {
        match (self.bucket_of(seq), &self.shards) {
            (Some(bucket), Some(shards)) => {
                shards.held.contains_key(&bucket) && shards.fence.is_open()
            }
            _ => true,
        }
    }

    /// The fence member `seq`'s task is polled behind, if it is sharded.
    pub(super) fn fence_for(&self, seq: u64) -> Option<Arc<Fence>> {
        self.bucket_of(seq)?;
        self.shards.as_ref().map(|shards| Arc::clone(&shards.fence))
    }

    /// Shows member `seq`'s bucket as its lease: `lease::epoch()` inside
    /// it is the bucket's epoch.
    pub(super) fn show_bucket(&self, seq: u64, entry: &Subsystem) {
        let (Some(bucket), Some(shards)) = (self.bucket_of(seq), &self.shards) else {
            return;
        };
        let Some(&epoch) = shards.held.get(&bucket) else {
            return;
        };
        let holder = shards.view.me();
        entry.update_lease(&shards.lease_name(bucket), |view| {
            view.leader = true;
            view.epoch = Some(epoch);
            view.holder = holder;
        });
    }

    /// Member `seq` runs elsewhere: out of this replica's registry, listed
    /// as `Elsewhere`. It is not running.
    pub(super) fn set_elsewhere(&mut self, seq: u64) {
        self.clear_due(seq);
        let Some(member) = self.def.members.get_mut(&seq) else {
            return;
        };
        member.elsewhere = true;
        member.paused = false;
        if let Some(entry) = member.entry.take() {
            self.registry.forget(&entry);
        }
        let name = Arc::clone(&member.name);
        self.def.shared.set_state(&name, SubsystemState::Elsewhere);
    }

    /// The keeper's news.
    pub(super) async fn on_keeper(&mut self, event: KeeperEvent) {
        match event {
            KeeperEvent::Gained { bucket, epoch } => {
                if let Some(shards) = &mut self.shards {
                    shards.held.insert(bucket, epoch);
                }
                for seq in self.in_buckets(Some(&[bucket])) {
                    let elsewhere = self.def.members.get(&seq).is_some_and(|m| m.elsewhere);
                    if elsewhere {
                        self.start(seq).await;
                    }
                }
            }
            KeeperEvent::Give { buckets, done } => {
                if let Some(shards) = &mut self.shards {
                    for bucket in &buckets {
                        shards.held.remove(bucket);
                    }
                }
                self.stop_buckets(Some(&buckets), StopReason::HandedOff, None)
                    .await;
                // The keeper may have stopped waiting; the stop stands.
                let _ = done.send(());
            }
            KeeperEvent::LostAll { drop_at, done } => {
                if let Some(shards) = &mut self.shards {
                    shards.held.clear();
                }
                self.stop_buckets(None, StopReason::ShardLost, Some(drop_at))
                    .await;
                let _ = done.send(());
            }
        }
    }

    /// The sharded members of `buckets` (of every bucket with `None`): one
    /// pass over the records, hashing each name.
    fn in_buckets(&self, buckets: Option<&[u32]>) -> Vec<u64> {
        let Some(shards) = &self.shards else {
            return Vec::new();
        };
        self.def
            .members
            .iter()
            .filter(|(_, member)| !member.is_group())
            .filter(|(_, member)| {
                buckets.is_none_or(|wanted| {
                    wanted.contains(&placement::bucket_of(&member.name, shards.buckets))
                })
            })
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Stops the running children of `buckets` (every bucket with `None`)
    /// together, each within its stop timeout and `until`, and moves all
    /// of their children elsewhere.
    async fn stop_buckets(
        &mut self,
        buckets: Option<&[u32]>,
        reason: StopReason<'_>,
        until: Option<Instant>,
    ) {
        let members = self.in_buckets(buckets);
        let running: Vec<u64> = members
            .iter()
            .copied()
            .filter(|&seq| self.is_running(seq))
            .collect();
        if !running.is_empty() {
            let until = until.unwrap_or_else(|| deadline(Instant::now(), Duration::MAX));
            // A shutdown asked for meanwhile waits until the buckets'
            // children are stopped (the signal stays pending), rather
            // than abort every child of the group.
            let listen = std::mem::replace(&mut self.listen, Listen::Not);
            self.stop_together(running, reason, until).await;
            self.listen = listen;
        }
        // A task aborted at its bound ends only when its poll returns (a
        // child that blocks its thread): the bucket is given up only once
        // none of its tasks is left.
        self.wait_gone(&members, None).await;
        // A pause holds where it was made: the bucket's new holder runs
        // the child.
        for seq in members {
            self.set_elsewhere(seq);
        }
    }

    /// Waits until no task of `seqs` is left (their ends queued for
    /// nothing: they are stopped already), until `until`: whether none is.
    async fn wait_gone(&mut self, seqs: &[u64], until: Option<Instant>) -> bool {
        let wanted: std::collections::HashSet<u64> = seqs.iter().copied().collect();
        let mut left: std::collections::HashSet<Id> = self
            .by_task
            .iter()
            .filter(|(_, seq)| wanted.contains(seq))
            .map(|(id, _)| *id)
            .collect();
        while !left.is_empty() {
            let joined = tokio::select! {
                joined = self.tasks.join_next_with_id() => joined,
                () = sleep_until(until) => return false,
            };
            let Some(joined) = joined else { break };
            let id = match &joined {
                Ok((id, _)) => *id,
                Err(error) => error.id(),
            };
            left.remove(&id);
            if let Some((seq, outcome)) = self.identify(joined) {
                if !wanted.contains(&seq) {
                    self.ends.push_back((seq, outcome));
                }
            }
        }
        true
    }

    /// Leaves the shard set once no sharded child runs: the keeper releases
    /// the membership, which ends every bucket at once, so the other
    /// replicas take them over without waiting for them to expire.
    pub(super) async fn leave_shards(&mut self) {
        let Some(shards) = &self.shards else {
            return;
        };
        // Released only once no sharded child's task is left; one that
        // blocks its thread past a ttl keeps the membership, which then
        // expires by itself (the others wait that long, never overlap).
        let ttl = shards.ttl;
        let sharded = self.in_buckets(None);
        if !self
            .wait_gone(&sharded, Some(deadline(Instant::now(), ttl)))
            .await
        {
            tracing::warn!(
                target: "supervised", group = %self.path,
                "a sharded child's task outlived its abort: leaving the membership to expire rather than release it"
            );
            if let Some(shards) = &mut self.shards {
                shards.keeper.abort();
                shards.events = None;
                shards.held.clear();
            }
            for seq in sharded {
                self.set_elsewhere(seq);
            }
            return;
        }
        let Some(shards) = &mut self.shards else {
            return;
        };
        // The keeper may be waiting on the run (a loss during the
        // shutdown): closing its events ends that wait.
        shards.events = None;
        let (answer, left) = oneshot::channel();
        if shards.leave.send(answer).await.is_ok() {
            let _ = tokio::time::timeout(shards.ttl, left).await;
        }
        shards.held.clear();
        // Their buckets are the others' now: not in this registry.
        for seq in self.in_buckets(None) {
            self.set_elsewhere(seq);
        }
    }
}
