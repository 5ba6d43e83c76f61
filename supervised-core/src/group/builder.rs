//! [`Group`], the builder, and what it builds: a [`GroupDef`] that a run
//! borrows, so a nested group can be run again by its parent, its children
//! added at run time included.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::HashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::child::{Child, RunSource};
use super::handle::{Command, GroupHandle, Roster, Shared};
use super::record::{ChildRecord, ChildState};
use super::report::GroupReport;
use super::run::{self, Trigger};
use super::signal::Signals;
use crate::supervisor::{Backoff, RunOutcome};
use crate::{Registry, Restart};

/// Which children a group restarts when one of them must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// That child alone (the default).
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse start order, then all
    /// are started again in start order. For children that cannot work
    /// without each other.
    OneForAll,
    /// That child and the ones started after it: those are stopped in
    /// reverse order, then it and they are started in start order. For a
    /// chain where later children depend on earlier ones.
    RestForOne,
}

impl Strategy {
    /// The snake-case name used in log events: `one_for_one`, `one_for_all`,
    /// `rest_for_one`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// Everything a group is, apart from any run of it.
pub(super) struct GroupDef {
    pub(super) name: String,
    pub(super) strategy: Strategy,
    pub(super) intensity: (u32, Duration),
    pub(super) backoff: Backoff,
    pub(super) shutdown_timeout: Duration,
    pub(super) drain: Duration,
    /// See [`Group::min_healthy_percent`].
    pub(super) min_healthy_percent: Option<u8>,
    /// See [`Group::shards`].
    pub(super) shards: Option<crate::Shards>,
    pub(super) restart: Restart,
    pub(super) registry: Option<Registry>,
    /// Keyed by a sequence number that only grows: iteration order is
    /// start order, and a child added at run time goes last.
    pub(super) members: BTreeMap<u64, ChildRecord>,
    /// Each member's key, by name.
    pub(super) seqs: HashMap<Arc<str>, u64>,
    pub(super) next_seq: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
}

impl GroupDef {
    /// Adds `member` at the end of the start order and returns its key.
    pub(super) fn push(&mut self, member: ChildRecord) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seqs.insert(Arc::clone(&member.name), seq);
        self.members.insert(seq, member);
        seq
    }

    /// Takes member `seq` out of the definition.
    pub(super) fn remove(&mut self, seq: u64) -> Option<ChildRecord> {
        let member = self.members.remove(&seq)?;
        self.seqs.remove(&member.name);
        Some(member)
    }
}

/// A supervision tree: children (loops, or other groups) started in order,
/// restarted by a [`Strategy`] within a restart intensity, and stopped in
/// reverse order on a shutdown that is bounded in time.
///
/// ```no_run
/// use std::process::ExitCode;
/// use std::time::Duration;
/// use supervised::{CancellationToken, Child, Group, Restart, Strategy};
///
/// async fn broadcaster(cancel: CancellationToken) { cancel.cancelled().await }
/// async fn scheduler(cancel: CancellationToken) { cancel.cancelled().await }
/// async fn channel(kind: &'static str, cancel: CancellationToken) { cancel.cancelled().await }
///
/// #[tokio::main]
/// async fn main() -> ExitCode {
///     let report = Group::new("platform")
///         .strategy(Strategy::OneForOne)
///         .max_restarts(5, Duration::from_secs(60))
///         .shutdown_timeout(Duration::from_secs(30))
///         .child("broadcaster", broadcaster)
///         .spec(Child::new("scheduler", scheduler).restart(Restart::Permanent))
///         .group(Group::new("channels").child("telegram", |cancel| channel("telegram", cancel)))
///         .run_until_signal()
///         .await;
///     ExitCode::from(&report)
/// }
/// ```
///
/// # Children
///
/// Each child runs in its own tokio task, with a child token of the
/// group's [`CancellationToken`](https://docs.rs/tokio-util/0.7/tokio_util/sync/struct.CancellationToken.html). A child is usually a `#[supervised]` fn;
/// any future works: the group catches its panics. A fn whose argument
/// cannot be made again for each run (an `mpsc::Receiver`, a connection,
/// `mut self`) runs as a child through [`Child::keep`]. Children start in the order they
/// were given (a child added at run time goes last). A child is started
/// when its task is spawned, and a nested group when its own children are:
/// the order is depth-first. The group does not wait for a child to be
/// ready before starting the next (readiness is the registry's, see
/// [`Readiness`](crate::Readiness)).
///
/// # Names
///
/// A child's name is its registry name. A `#[supervised]` fn run as a child
/// registers under the child's name, not the attribute's `name`, and in the
/// group's registry: one fn can run as `channel/telegram` and
/// `channel/slack`. Only the outermost supervised fn of a child does;
/// supervised fns it calls keep their own names. A plain future child is
/// listed under its name as well, and [`beat`](crate::beat) inside it beats
/// that entry. Every child's entry names its group's path
/// ([`SubsystemStatus::group`](crate::SubsystemStatus::group), such as
/// `platform/channels`). The group itself is listed under its path with
/// [`SubsystemKind::Group`](crate::SubsystemKind::Group): running, stopped or
/// failed, its `restarts` the group's, never stale. Names are one namespace
/// across the registry: two children of the same name in different groups,
/// or a child named as its own group, share one entry (a WARN says so when
/// the child starts), so give them distinct names.
///
/// # Who restarts a `#[supervised]` child
///
/// One layer decides each restart, and which one depends on what the group
/// says:
///
/// | the group | a failure of the fn (panic, `Err`, stall) | the fn's `max_restarts` and backoff |
/// | --- | --- | --- |
/// | [`Strategy::OneForOne`], child not temporary | the fn restarts itself in its task; the group sees only its give-up | used |
/// | [`Strategy::OneForAll`] or [`Strategy::RestForOne`] | handed to the group, which applies the strategy with its backoff and intensity | not used: the group's win |
/// | a [`Restart::Temporary`] child, any strategy | handed to the group, which does not restart it | not used |
///
/// Under `OneForOne` the restart is the child's alone either way, and a
/// loop that panics on every tick (one tenant's bad row) keeps restarting
/// with capped backoff without taking the service down, as it does outside
/// a group; give the fn `max_restarts` for it to give up and let the group
/// count that. Under the other strategies the group's intensity counts
/// every failure, as OTP's does. Whichever layer restarts it, the child's
/// registry entry shows its restarts, consecutive failures, next restart
/// and last panic (with its location) or error.
///
/// # Restarts
///
/// A child's [`Restart`] policy says whether it must be restarted after it
/// ends; the [`Strategy`] says which children restart with it. No child
/// starts again before the previous run of every child being restarted has
/// finished and its future been dropped. A restart waits for a backoff (by
/// default 1 s doubling to 30 s: [`Group::backoff`]), reset, as for a
/// [`Supervisor`](crate::Supervisor), when the child that ended had run at
/// least the backoff's cap and beaten 3 times (or never beaten at all).
/// Siblings stopped for the restart are not running during the backoff; a
/// [`Restart::Temporary`] sibling is stopped and forgotten.
///
/// A temporary child is forgotten when it ends, however it ends (as OTP
/// forgets it): it leaves [`GroupHandle::children`] and the registry, its
/// name is free for [`GroupHandle::add`], and its factory, with all it
/// captured, is dropped. A group that adds a temporary child per job keeps
/// nothing of the jobs that ended. Its failure is logged at ERROR, and is
/// not listed in [`GroupReport::failed`](crate::GroupReport::failed).
/// Under `OneForAll`, every child that is not temporary starts again,
/// including one that had ended normally before: the group restarts from
/// its start, as OTP's does. A nested group that its parent restarts
/// starts every child it had, those added at run time included (OTP's
/// would start only its static ones): a tenant's worker is not lost
/// because its group restarted. Removing a nested group removes the
/// registry entries of everything in it.
///
/// Each restart counts toward the group's intensity
/// ([`Group::max_restarts`], default 5 within 60 s). The restart that would
/// exceed it makes the group give up: it stops every child, its state
/// becomes failed, it logs one ERROR event naming the child and the
/// failure, and it ends with [`GroupExit::GaveUp`](crate::GroupExit::GaveUp).
/// A nested group that gives up is a failed child of its parent, so
/// escalation climbs the tree.
///
/// When every child has ended and none is to be restarted, the run ends
/// with [`GroupExit::Completed`](crate::GroupExit::Completed). A group with
/// no children (yet) waits for [`GroupHandle::add`] or a shutdown instead,
/// and so does one whose children were all temporary and have all ended
/// (they are forgotten): a group that runs a temporary child per job
/// outlives its jobs.
///
/// # Shutdown
///
/// Triggers: SIGINT or SIGTERM for [`run_until_signal`](Group::run_until_signal)
/// (Ctrl-C off Unix), the token given to [`run`](Group::run), or
/// [`GroupHandle::shutdown`]. Then:
///
/// 1. The registry is marked draining at once
///    ([`Registry::set_draining`]): `/admin/ready` answers 503. The root
///    group does this, also when it gives up or completes: a process whose
///    tree has ended serves no more.
/// 2. The group waits [`drain`](Group::drain) (default 0 s), for load
///    balancers to catch up.
/// 3. It stops the children added at run time (through [`GroupHandle::add`]:
///    the fleet of tenant workers) all at once, as OTP stops a
///    `simple_one_for_one` supervisor's children: every token is cancelled
///    together, and each child has up to its own
///    [`stop_timeout`](Child::stop_timeout) (default 10 s) to finish before
///    its task is aborted. A thousand workers that each take a second to
///    flush stop in about a second.
/// 4. Then it stops the children given to the builder in reverse start
///    order, one at a time, nested groups depth-first, each within its stop
///    timeout.
///
/// The whole shutdown, drain included, is bounded by
/// [`shutdown_timeout`](Group::shutdown_timeout) (default 30 s); a nested
/// group gets its own shutdown timeout, within what is left of its
/// parent's. A child that had to be aborted (at its stop timeout, at the
/// shutdown timeout, or at a second signal) is listed as unstopped in the
/// [`GroupReport`] with one ERROR event, and makes the exit code 1. A second
/// SIGINT or SIGTERM during a shutdown aborts every child left at once.
///
/// # Differences from OTP
///
/// The semantics follow OTP's `supervisor` (strategies, restart types with
/// normal, abnormal and shutdown ends, intensity and escalation, shutdown
/// order and timeouts, dynamic children, temporary children forgotten).
/// Where they differ, on purpose:
///
/// - **Backoff.** OTP restarts at once; a group waits a backoff (1 s
///   doubling to 30 s), reset by progress, so a crash loop does not spin.
/// - **Who restarts a `#[supervised]` child under `OneForOne`.** The fn
///   restarts itself, and the group's intensity counts only its give-ups
///   (see above): in OTP every failure counts. A tenant's bad row must
///   not take the service down under the defaults.
/// - **The shutdown bound.** [`shutdown_timeout`](Group::shutdown_timeout)
///   bounds the whole shutdown, drain included; OTP bounds each child
///   alone. A child that misses it is aborted (OTP's `brutal_kill`), and
///   listed as unstopped.
/// - **Dynamic children of a nested group survive its restart.** OTP's
///   restarted supervisor starts only its static children; here the
///   children added at run time start again too (a tenant's worker is not
///   lost because its group restarted), and they stop all at once, before
///   the static ones.
/// - **`RestForOne`, a child removed while it backs off.** The children
///   after it, stopped to restart with it, stay stopped (what they depend
///   on is gone) until the group restarts them for an earlier child or runs
///   again. OTP restarts synchronously, so the case does not arise there.
/// - **A group completes.** When every child has ended and none is to be
///   restarted, the run ends with `Completed`; an OTP supervisor keeps
///   running (unless told otherwise with significant children).
/// - **A sibling failing during another's restart.** A sibling that ends,
///   failed or not, while the group stops it for another child's restart
///   counts as stopped: it starts no second restart and uses no intensity.
///   OTP logs such an exit and also restarts it only once.
///
/// # Events
///
/// Each decision is one tracing event (target `supervised`) with `group`,
/// `child`, `strategy` and `reason`: a child restart (ERROR after a
/// failure, INFO after a normal end), a give-up (ERROR), the shutdown's
/// beginning with its `trigger` (INFO; it names no child), each child
/// stopped with how long it `took` (INFO), and each child unstopped (ERROR,
/// with the `bound` it missed). A shutdown asked for while the group is
/// busy stopping a child (a removal, a restart's siblings) marks the
/// registry draining at once and begins when that child is stopped.
///
/// # Panics
///
/// [`child`](Group::child), [`spec`](Group::spec) and [`group`](Group::group)
/// panic on a name the group has already, as axum's router does on a route
/// given twice: a tree is written once, in code. Children added at run time
/// get an [`AddError`](crate::AddError) instead.
pub struct Group(pub(super) GroupDef);

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.0.name)
            .field("strategy", &self.0.strategy)
            .field("children", &self.0.members.len())
            .finish_non_exhaustive()
    }
}

impl Group {
    /// How long a shutdown may take unless told otherwise.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

    /// An empty group named `name`: [`Strategy::OneForOne`], at most 5
    /// restarts within 60 s, restarts after 1 s doubling to 30 s, a 30 s
    /// shutdown timeout, no drain, in the process-wide registry.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let (commands, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            name: name.clone(),
            commands,
            roster: Mutex::new(Roster::new()),
        });
        Group(GroupDef {
            name,
            strategy: Strategy::default(),
            intensity: (5, Duration::from_secs(60)),
            backoff: Backoff::DEFAULT,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            drain: Duration::ZERO,
            min_healthy_percent: None,
            shards: None,
            restart: Restart::default(),
            registry: None,
            members: BTreeMap::new(),
            seqs: HashMap::default(),
            next_seq: 0,
            shared,
            commands: receiver,
        })
    }

    /// Which children restart together (default [`Strategy::OneForOne`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.0.strategy = strategy;
        self
    }

    /// Restart intensity: the restart that would be the `max + 1`-th within
    /// any window of `within` makes the group give up (default 5 within
    /// 60 s). `max = 0` gives up at the first restart.
    pub fn max_restarts(mut self, max: u32, within: Duration) -> Self {
        self.0.intensity = (max, within);
        self
    }

    /// The delay before a restart (default 1 s doubling to 30 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.0.backoff = backoff;
        self
    }

    /// The bound on a whole shutdown, drain included (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.0.shutdown_timeout = timeout;
        self
    }

    /// How long to wait after marking the registry draining before stopping
    /// anything (default 0 s): the time load balancers need to stop sending
    /// new work once `/admin/ready` answers 503.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.0.drain = drain;
        self
    }

    /// Counts this group toward health and readiness by the share of its
    /// children that are healthy, rather than child by child: a fleet of
    /// tenant workers where one tenant's failure must not fail the
    /// process's probes, but most failing must.
    ///
    /// With it, each child loop is advisory (listed with its own `healthy`,
    /// but never failing [`Registry::health`](crate::Registry::health)
    /// alone; a nested group keeps its own rule),
    /// and the group fails it (listed in
    /// [`Health::below_min_healthy`](crate::Health::below_min_healthy),
    /// `/admin/health` answering 503) while fewer than `percent` of its
    /// children are healthy (not failed, not stale). Readiness waits until
    /// that share of its children with a tick has beaten once. Paused
    /// children are left out of both counts; a group with no children
    /// counts as healthy.
    ///
    /// ```
    /// use supervised::Group;
    ///
    /// let tenants = Group::new("tenants").min_healthy_percent(90);
    /// # let _ = tenants;
    /// ```
    ///
    /// # Panics
    ///
    /// If `percent` is 0 or above 100.
    pub fn min_healthy_percent(mut self, percent: u8) -> Self {
        assert!(
            (1..=100).contains(&percent),
            "Group::min_healthy_percent takes 1 to 100, got {percent}"
        );
        self.0.min_healthy_percent = Some(percent);
        self
    }

    /// Shards this group's children across the replicas of the service:
    /// each runs on exactly one replica, the one that holds its bucket (see
    /// [`Shards`](crate::Shards)). Every replica runs the same group and
    /// adds every child, through the builder or a [`GroupHandle`].
    ///
    /// - A child whose bucket another replica holds is not started here
    ///   and has no entry in this replica's registry;
    ///   [`GroupHandle::children`] lists it as
    ///   [`SubsystemState::Elsewhere`](crate::SubsystemState::Elsewhere).
    /// - When a bucket moves (a replica joined or left), its holder stops
    ///   the bucket's children together, each within its stop timeout,
    ///   and only then releases the bucket; the children of buckets that
    ///   stay are not touched. A replica gives up at most one sixteenth of
    ///   the buckets (at least one) per round of ttl/3.
    /// - A replica that cannot confirm its membership cancels every
    ///   sharded child by 3/5 of the ttl and drops them unpolled by 4/5
    ///   (at once, if the store says its membership is gone);
    ///   the membership, and every bucket with it, expires at the ttl,
    ///   and only then can another replica take the buckets. So a paused
    ///   or cut-off replica never polls a child another replica runs. What
    ///   no process can preempt is a poll under way at the instant it was
    ///   paused (SIGSTOP, a VM stall): it finishes when the process
    ///   resumes. Send the bucket's [`lease::epoch`](crate::lease::epoch)
    ///   with each write, so the store can refuse a stale holder's.
    /// - A shutdown stops the sharded children with the others, then
    ///   releases the membership, which frees every bucket at once.
    /// - The strategy applies among the children running here. Nested
    ///   groups are not sharded: they run on every replica.
    /// - A pause holds on the replica that made it, until the child's
    ///   bucket moves.
    ///
    /// The group's entry in `/admin/liveness` gains `"shards"`: the number
    /// of buckets, those held here, and the live replicas.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use supervised::{lease::Memory, Group, Shards};
    ///
    /// let store = Arc::new(Memory::new("replica-a"));
    /// let tenants = Group::new("tenants")
    ///     .shards(Shards::new(64).ttl(Duration::from_secs(15)).backend(store));
    /// # let _ = tenants;
    /// ```
    pub fn shards(mut self, shards: crate::Shards) -> Self {
        self.0.shards = Some(shards);
        self
    }

    /// When this group, as a child of another, is restarted (default
    /// [`Restart::Transient`]: after it gives up, not after it completes).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.0.restart = restart;
        self
    }

    /// Reports into `registry` instead of the process-wide one. A nested
    /// group and every child use their root group's registry.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.0.registry = Some(registry.clone());
        self
    }

    /// Adds a child named `name` whose runs `factory` makes, with the
    /// defaults of [`Child::new`].
    ///
    /// # Panics
    ///
    /// If the group has a child named `name` already.
    pub fn child<F, Fut>(self, name: impl Into<String>, factory: F) -> Self
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutcome,
    {
        self.spec(Child::new(name, factory))
    }

    /// Adds a child built with [`Child`]'s options.
    ///
    /// # Panics
    ///
    /// If the group has a child of that name already.
    pub fn spec(mut self, child: Child) -> Self {
        self.insert(ChildRecord::from(child));
        self
    }

    /// Adds a nested group as a child, under the nested group's name. It
    /// is stopped depth-first and, by its own [`restart`](Group::restart)
    /// policy, restarted when it gives up.
    ///
    /// # Panics
    ///
    /// If the group has a child of that name already.
    pub fn group(mut self, group: Group) -> Self {
        let nested = group.0;
        self.insert(ChildRecord {
            name: Arc::from(nested.name.as_str()),
            restart: nested.restart,
            // A nested group bounds its own stop: its shutdown timeout, and
            // a second to hand its report back.
            stop_timeout: nested
                .shutdown_timeout
                .saturating_add(Duration::from_secs(1)),
            start: RunSource::Group(Arc::new(Mutex::new(Some(nested)))),
            added_at_run_time: false,
            paused: false,
            elsewhere: false,
            own_metrics: None,
            failures: 0,
            entry: None,
            state: ChildState::Idle,
        });
        self
    }

    fn insert(&mut self, member: ChildRecord) {
        let booked = self.0.shared.roster().insert(Arc::clone(&member.name));
        assert!(
            booked,
            "group {:?} has a child named {:?} already: every child of a group needs its own name",
            self.0.name, &*member.name,
        );
        self.0.push(member);
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// A handle to add, remove and list children and to shut the group
    /// down, usable before and after the run begins.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle(self.0.shared.clone())
    }

    /// Runs the group until `cancel` is cancelled (then shuts it down), it
    /// gives up, or it completes.
    pub async fn run(mut self, cancel: CancellationToken) -> GroupReport {
        run::run_root(&mut self.0, Trigger::Token(cancel)).await
    }

    /// Runs the group until SIGINT or SIGTERM (Ctrl-C off Unix), then shuts
    /// it down; a second signal during the shutdown aborts what is left.
    /// The signal handlers are installed before any child starts; if they
    /// cannot be, that is logged at ERROR and the group runs until it gives
    /// up, completes or is shut down through its handle.
    pub async fn run_until_signal(mut self) -> GroupReport {
        let signals = Signals::install();
        run::run_root(&mut self.0, Trigger::Signals(signals)).await
    }
}
