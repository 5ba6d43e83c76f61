//! The membership loop of a sharded run: one membership grant per
//! replica, the buckets that belong here as grants bound to it (asked for
//! in `asks.rs`), and the fence (`fence.rs`) every sharded child's task
//! checks before it is polled.
//!
//! Each round (every ttl/3) it renews the membership, lists the members,
//! hands off (at most [`releases_per_round`] at a time) buckets that
//! belong elsewhere now, and asks for those that belong here. A handoff
//! runs beside the rounds: the run stops the buckets' children together
//! while the keeper goes on renewing, and the keeper releases the buckets
//! the moment the run says they are stopped. Every timing counts from when the last
//! confirmed renewal was *sent*, as a lease-gated loop's does: unconfirmed
//! by 3/5 ttl, the run is told to stop every sharded child, and the fence
//! shuts at 4/5 ttl, after which no sharded child is polled again, even
//! in a process that was paused (SIGSTOP) past its membership. The
//! membership expires at 1 ttl in the store, and the buckets with it;
//! only then can another replica take them. So no two replicas run one
//! bucket's children at once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::fence::Fence;
use super::placement::{mine, releases_per_round, round};
use crate::lease::{installed, Backend, Grant, Renewal};
use crate::registry::{deadline, ShardFigures};
use crate::text::Escaped;

/// What the keeper tells the run.
pub(crate) enum KeeperEvent {
    /// The bucket is held at `epoch`: start its children.
    Gained { bucket: u32, epoch: u64 },
    /// Stop these buckets' children together, then answer: the buckets
    /// are released only after.
    Give {
        buckets: Vec<u32>,
        done: oneshot::Sender<()>,
    },
    /// The membership could not be confirmed: stop every sharded child
    /// now, abort what is left at `drop_at`, then answer.
    LostAll {
        drop_at: Instant,
        done: oneshot::Sender<()>,
    },
}

/// What the keeper needs to run.
pub(crate) struct KeeperSpec {
    /// The group's path: it names the shard set in the store.
    pub(crate) path: Arc<str>,
    pub(crate) buckets: u32,
    pub(crate) ttl: Duration,
    pub(crate) backend: Option<Arc<dyn Backend>>,
}

impl KeeperSpec {
    fn interval(&self) -> Duration {
        self.ttl / 3
    }

    fn cancel_after(&self) -> Duration {
        self.ttl * 3 / 5
    }

    fn drop_after(&self) -> Duration {
        self.ttl * 4 / 5
    }

    fn members(&self) -> String {
        format!("shards/{}/members/", self.path)
    }

    pub(crate) fn bucket_lease(&self, bucket: u32) -> String {
        format!("shards/{}/buckets/{bucket}", self.path)
    }
}

/// The membership held, and when its last confirmed renewal was sent.
struct Member {
    grant: Grant,
    confirmed: Instant,
}

/// The keeper's state between rounds.
pub(super) struct Keeper {
    pub(super) spec: KeeperSpec,
    backend: Option<Arc<dyn Backend>>,
    pub(super) events: mpsc::UnboundedSender<KeeperEvent>,
    fence: Arc<Fence>,
    pub(super) view: Arc<ShardFigures>,
    member: Option<Member>,
    pub(super) held: BTreeMap<u32, Grant>,
    /// Buckets whose children are stopped, not released yet (the store
    /// did not answer): released again each round.
    pub(super) unreleased: Vec<Grant>,
    /// The handoff in progress: its buckets, and the run's answer once
    /// their children are stopped.
    handoff: Option<(Vec<u32>, oneshot::Receiver<()>)>,
    /// When another member's grant runs out, as the last listing said:
    /// the keeper looks again then (and every ttl/12 after, until the
    /// store has let it go), not only at its next round, so a dead
    /// replica's buckets move as soon as they can.
    recheck: Option<Instant>,
    /// When a replica that just joined may first ask for buckets: one
    /// round after the store answered the join, so replicas that join
    /// together (at start, or after a store outage) see each other first
    /// instead of the first one taking every bucket and handing most back
    /// (Kafka's initial rebalance delay, for the same reason). Counted
    /// from the answer, not from the round's start: a join that waited
    /// out an outage must still leave the others a round to come back.
    asks_from: Option<Instant>,
    /// The membership lost last. It may still be live in the store (etcd
    /// gives every lease a whole ttl again when it restarts, however long
    /// it was down), and the store refuses a second grant of its name even
    /// to the same holder: it is released before each ask to join, until
    /// the store answers the release or grants the new membership.
    stale: Option<Grant>,
    /// Left the shard set (every way the keeper ends by itself).
    left: bool,
    /// Buckets asked for whose answers were lost: perhaps granted here
    /// unbeknownst, so asked again until the store says, even once they
    /// are placed elsewhere.
    pub(super) unanswered: BTreeSet<u32>,
}

impl Drop for Keeper {
    /// However the keeper ends (a leave, the run gone, the task aborted, a
    /// panic in the store's code), no sharded child outlives it: nothing
    /// would renew their membership, nor drop them when it lapses.
    fn drop(&mut self) {
        self.fence.set(None);
        let aborted = self.fence.abort_all();
        if !self.left {
            tracing::error!(
                target: "supervised", group = %self.spec.path, children = aborted,
                "shard keeper stopped without leaving the shard set (a panic in the lease backend's code, the group's run dropped, or a sharded child blocking its thread past the ttl): every sharded child here is aborted, and the membership left to expire"
            );
        }
    }
}

/// Runs the keeper until the run says `leave` (or is gone): then releases
/// the membership, which ends every bucket it holds at once.
pub(crate) async fn keep(
    spec: KeeperSpec,
    events: mpsc::UnboundedSender<KeeperEvent>,
    mut leave: mpsc::Receiver<oneshot::Sender<()>>,
    fence: Arc<Fence>,
    view: Arc<ShardFigures>,
) {
    let mut keeper = Keeper {
        backend: spec.backend.clone(),
        spec,
        events,
        fence,
        view,
        member: None,
        held: BTreeMap::new(),
        unreleased: Vec::new(),
        handoff: None,
        recheck: None,
        asks_from: None,
        stale: None,
        left: false,
        unanswered: BTreeSet::new(),
    };
    loop {
        let next = deadline(Instant::now(), keeper.spec.interval());
        if !keeper.round().await {
            // The run is gone.
            keeper.leave().await;
            return;
        }
        let wake = keeper.member.as_ref().map_or(next, |m| {
            next.min(deadline(m.confirmed, keeper.spec.cancel_after()))
        });
        // A past `asks_from` (its round could not list) waits for the
        // next round, not a busy loop.
        let now = Instant::now();
        let wake = [keeper.recheck, keeper.asks_from.filter(|at| *at > now)]
            .into_iter()
            .flatten()
            .fold(wake, Instant::min);
        loop {
            tokio::select! {
                biased;
                answer = leave.recv() => {
                    keeper.leave().await;
                    if let Some(answer) = answer {
                        let _ = answer.send(());
                    }
                    return;
                }
                stopped = handed_off(&mut keeper.handoff) => {
                    if !keeper.release_handed_off(stopped).await {
                        keeper.leave().await;
                        return;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            break;
        }
    }
}

/// Resolves when the run answers the handoff in progress (`false`: the
/// run is gone); never without one.
async fn handed_off(handoff: &mut Option<(Vec<u32>, oneshot::Receiver<()>)>) -> bool {
    match handoff {
        Some((_, stopped)) => stopped.await.is_ok(),
        None => std::future::pending().await,
    }
}

impl Keeper {
    /// One round; `false` once the run stopped listening.
    async fn round(&mut self) -> bool {
        // Set again by this round's listing, if it gets one.
        self.recheck = None;
        let Some(backend) = self.backend() else {
            return true;
        };
        if let Some(member) = &self.member {
            if Instant::now() >= deadline(member.confirmed, self.spec.cancel_after()) {
                return self
                    .lose("no renewal of the membership confirmed in time", false)
                    .await;
            }
        }
        if !self.confirm(&backend).await {
            return false;
        }
        let Some(member) = self.member.as_ref().map(|m| m.grant.clone()) else {
            return true;
        };
        let me = backend.holder().to_owned();
        let Some(listed) = self.call(backend.list(&self.spec.members())).await else {
            // Unknown this round: hold what is held, ask for nothing.
            return true;
        };
        let now = Instant::now();
        // Not before ttl/12 from now: a store that is late to let an
        // expired grant go (etcd sweeps every 500 ms) is asked again then.
        let soonest = deadline(now, self.spec.ttl / 12);
        self.recheck = listed
            .iter()
            .filter(|l| l.holder != me)
            .filter_map(|l| l.expires_in)
            .map(|left| deadline(now, left).max(soonest))
            .min();
        let replicas: BTreeSet<String> = listed
            .into_iter()
            .filter_map(|l| l.name.strip_prefix(&self.spec.members()).map(str::to_owned))
            // A nested group's shard set lists under a longer path.
            .filter(|id| !id.contains('/'))
            .chain(std::iter::once(me.clone()))
            .collect();
        self.view.set_replicas(replicas.iter().cloned().collect());
        if let Some(from) = self.asks_from {
            if now < from {
                return true;
            }
            self.asks_from = None;
        }
        let wanted = mine(self.spec.buckets, &replicas, &me);
        let held: BTreeSet<u32> = self.held.keys().copied().collect();
        let (release, acquire) = round(&held, &wanted, releases_per_round(self.spec.buckets));
        if self.handoff.is_none() && !release.is_empty() {
            let (done, stopped) = oneshot::channel();
            let buckets = release.clone();
            if self
                .events
                .send(KeeperEvent::Give { buckets, done })
                .is_err()
            {
                return false;
            }
            self.handoff = Some((release, stopped));
        }
        self.release_unreleased(&backend).await;
        self.ask(&backend, &member, &wanted, acquire).await
    }

    /// The backend, the installed one if none was given: one ERROR while
    /// there is none, then asked again each round.
    fn backend(&mut self) -> Option<Arc<dyn Backend>> {
        if self.backend.is_none() {
            self.backend = installed();
            if self.backend.is_none() && !self.view.outage.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    target: "supervised", group = %self.spec.path,
                    "sharded group without a lease backend: none given to `Shards::backend` and none installed with `lease::install`; its children run nowhere until one is"
                );
            }
        }
        self.backend.clone()
    }

    /// Takes the membership, or renews it: `false` once the run is gone.
    async fn confirm(&mut self, backend: &Arc<dyn Backend>) -> bool {
        if self.member.is_none() {
            if let Some(old) = self.stale.clone() {
                // Asked to join even when this goes unanswered: a store
                // that answers the join but not the release of a grant
                // it no longer has must not keep this replica out.
                if self.call(backend.release(&old)).await.is_some() {
                    self.stale = None;
                }
            }
        }
        // Taken after the release: a new membership counts from its own ask.
        let sent = Instant::now();
        match &self.member {
            None => {
                let name = format!("{}{}", self.spec.members(), backend.holder());
                if let Some(crate::lease::Acquired::Granted(grant)) =
                    self.call(backend.acquire(&name, self.spec.ttl)).await
                {
                    tracing::info!(
                        target: "supervised", group = %self.spec.path,
                        replica = %Escaped(backend.holder()), epoch = grant.epoch,
                        "joined the shard set"
                    );
                    self.view.set_me(backend.holder());
                    self.stale = None;
                    self.asks_from = Some(deadline(Instant::now(), self.spec.interval()));
                    self.member = Some(Member {
                        grant,
                        confirmed: sent,
                    });
                    self.fence.set(Some(deadline(sent, self.spec.drop_after())));
                }
                true
            }
            Some(member) => {
                let grant = member.grant.clone();
                match self.call(backend.renew(&grant)).await {
                    // Answered after the fence shut (a renewal sent before
                    // 3/5 ttl, answered after 4/5): children may have been
                    // dropped unpolled meanwhile, so the fence is not
                    // opened again; the replica joins afresh.
                    Some(Renewal::Renewed)
                        if Instant::now() >= deadline(member.confirmed, self.spec.drop_after()) =>
                    {
                        self.lose(
                            "the membership's renewal was answered after the fence shut",
                            false,
                        )
                        .await
                    }
                    Some(Renewal::Renewed) => {
                        if let Some(member) = &mut self.member {
                            member.confirmed = sent;
                        }
                        self.fence.set(Some(deadline(sent, self.spec.drop_after())));
                        true
                    }
                    Some(Renewal::Lost(_)) => {
                        self.lose("the store refused the membership's renewal", true)
                            .await
                    }
                    // Unconfirmed: lost at 3/5 ttl if it stays so.
                    None => true,
                }
            }
        }
    }

    /// The run stopped the handoff's children (`stopped`; `false`: the run
    /// is gone): its buckets are released now. `false` once the run is gone.
    async fn release_handed_off(&mut self, stopped: bool) -> bool {
        let Some((buckets, _)) = self.handoff.take() else {
            return true;
        };
        if !stopped {
            return false;
        }
        for bucket in buckets {
            let Some(grant) = self.held.remove(&bucket) else {
                continue;
            };
            self.view.released(bucket);
            tracing::debug!(
                target: "supervised", group = %self.spec.path, bucket, epoch = grant.epoch,
                "bucket handed off: its children stopped, releasing it"
            );
            match self.backend.clone() {
                Some(backend) if self.call(backend.release_bound(&grant)).await.is_some() => {}
                _ => self.unreleased.push(grant),
            }
        }
        true
    }

    async fn release_unreleased(&mut self, backend: &Arc<dyn Backend>) {
        for grant in std::mem::take(&mut self.unreleased) {
            if self.call(backend.release_bound(&grant)).await.is_none() {
                self.unreleased.push(grant);
            }
        }
    }

    /// The membership is lost (or cannot be confirmed): every sharded
    /// child stops, by 4/5 ttl after the last confirmation at the latest,
    /// and the keeper joins again from scratch. `false` once the run is gone.
    /// `refused`: the store said the membership is gone, so other replicas
    /// may take its buckets now: the fence shuts at once (no child is
    /// polled again) instead of at 4/5 ttl.
    pub(super) async fn lose(&mut self, why: &str, refused: bool) -> bool {
        let Some(member) = self.member.take() else {
            return true;
        };
        let drop_at = if refused {
            self.fence.set(None);
            Instant::now()
        } else {
            deadline(member.confirmed, self.spec.drop_after())
        };
        tracing::warn!(
            target: "supervised", group = %self.spec.path, epoch = member.grant.epoch,
            buckets = self.held.len(), reason = why,
            "lost the shard set's membership: stopping every sharded child before another replica can take its bucket"
        );
        let (done, mut stopped) = oneshot::channel();
        let told = self
            .events
            .send(KeeperEvent::LostAll { drop_at, done })
            .is_ok();
        let answered = told
            && tokio::select! {
                biased;
                answer = &mut stopped => answer.is_ok(),
                // The run may be busy elsewhere (stopping children for a
                // shutdown or a handoff, each within its own timeout):
                // the tasks past the fence are aborted here, so no child's
                // future outlives the fence while another can take its
                // bucket.
                () = tokio::time::sleep_until(drop_at) => {
                    let aborted = self.fence.abort_all();
                    if aborted > 0 {
                        tracing::warn!(
                            target: "supervised", group = %self.spec.path, children = aborted,
                            "sharded children aborted at the fence: the group was busy stopping others when the membership was lost"
                        );
                    }
                    stopped.await.is_ok()
                }
            };
        self.fence.set(None);
        self.view.released_all();
        self.held.clear();
        self.handoff = None;
        self.unreleased.clear();
        self.unanswered.clear();
        self.asks_from = None;
        // Perhaps still live in the store: released at the next round,
        // before joining again, so the others need not wait out its ttl.
        // Nothing runs by now.
        self.stale = Some(member.grant);
        answered
    }

    /// Leaves the shard set: releases the membership, which ends every
    /// bucket bound to it at once.
    async fn leave(&mut self) {
        self.left = true;
        self.fence.set(None);
        // Released on the way out unless the store is known unreachable,
        // where asking would only hold the shutdown up.
        if let (Some(old), Some(backend)) = (self.stale.take(), self.backend.clone()) {
            if !self.view.outage.load(Ordering::Relaxed) {
                self.call(backend.release(&old)).await;
            }
        }
        let Some(member) = self.member.take() else {
            return;
        };
        if let Some(backend) = self.backend.clone() {
            let released = self.call(backend.release(&member.grant)).await.is_some();
            tracing::info!(
                target: "supervised", group = %self.spec.path, buckets = self.held.len(),
                released, "left the shard set"
            );
        }
        self.view.released_all();
        self.held.clear();
        self.handoff = None;
        self.unanswered.clear();
    }

    /// One store call, bounded by ttl/3; `None` when it failed (one WARN
    /// per outage, and one line when it ends).
    pub(super) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, crate::lease::LeaseError>>,
    ) -> Option<T> {
        // Bounded by ttl/3, and by when the membership must be given up
        // (3/5 ttl after its last confirmed renewal), so a slow store
        // cannot hold a round past that.
        let mut bound = self.spec.interval();
        if let Some(member) = &self.member {
            let give_up = deadline(member.confirmed, self.spec.cancel_after());
            bound = bound.min(give_up.saturating_duration_since(Instant::now()));
        }
        if bound.is_zero() {
            // Past the point of giving the membership up: not asked.
            return None;
        }
        let answer = match tokio::time::timeout(bound, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(error.message().to_owned()),
            Err(_) => Err("no answer within ttl/3".to_owned()),
        };
        match answer {
            Ok(answer) => {
                if self.view.outage.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "supervised", group = %self.spec.path, "shard store answers again");
                }
                Some(answer)
            }
            Err(error) => {
                if !self.view.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "supervised", group = %self.spec.path, error = %Escaped(&error),
                        "shard store unreachable: holding what is held until the membership cannot be confirmed, asking for nothing"
                    );
                }
                None
            }
        }
    }
}
