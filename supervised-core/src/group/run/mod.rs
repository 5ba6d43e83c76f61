//! One run of a group: start the children, wait for their ends, commands
//! and triggers, restart by the strategy, and stop everything when told to.
//!
//! - `mod.rs`: the [`Runner`] and its loop: starting children and reading
//!   their ends off the `JoinSet`.
//! - `commands.rs`: the handles' commands (add, remove, pause, resume).
//! - `restart.rs`: what an end means: restart (with whom, after which
//!   backoff, by [`RestartRule`](crate::supervisor::RestartRule)), forget
//!   (a temporary child), or give up.
//! - `records.rs`: each child's state (idle, due, running) changed in its
//!   record and in the run's indexes together.
//! - `stop.rs`: stopping one child, a fleet at once, or everything for a
//!   shutdown, within the bounds, and the run's report.
//! - `nested.rs`: a nested group as its parent's child.
//!
//! Every child's task is in one `JoinSet`, so dropping a run (its parent
//! aborting it, or a caller dropping the future) aborts every child too.
//! A child's end is seen only once its task has finished, which tokio
//! reports after the task's future was dropped: that is what keeps a new
//! run of a child from overlapping the old one.

mod commands;
mod nested;
mod records;
mod restart;
mod shards;
mod stop;

use shards::{next_event, ShardRun};

use nested::nested_run;

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foldhash::HashMap;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::builder::GroupDef;
use super::child::{ChildEnd, ChildRun, RunFuture, RunSource};
use super::handle::RunPhase;
use super::record::{ChildRecord, ChildState, Running};
use super::report::{GroupExit, GroupReport};
use super::signal::Signals;
use crate::registry::{deadline, FailureRecord, Subsystem};
use crate::supervisor::ChildFailure;
use crate::supervisor::{Policy, RestartWindow, RunProgress, Verdict};
use crate::{LastPanic, Registry, Restart, SubsystemKind, SubsystemState};

/// What shuts a run down.
pub(super) enum Trigger {
    /// The token given to `Group::run`.
    Token(CancellationToken),
    /// SIGINT and SIGTERM, for `Group::run_until_signal`.
    Signals(Signals),
    /// A nested group's token from its parent.
    Parent(CancellationToken),
}

impl Trigger {
    /// Resolves with the trigger's name when it fires; for signals, each
    /// call waits for the next one.
    async fn fired(&mut self) -> &'static str {
        match self {
            Trigger::Token(token) => {
                token.cancelled().await;
                "token"
            }
            Trigger::Parent(token) => {
                token.cancelled().await;
                "parent"
            }
            Trigger::Signals(signals) => signals.next().await,
        }
    }

    /// Whether it can fire a second time (only signals can).
    fn repeats(&self) -> bool {
        matches!(self, Trigger::Signals(_))
    }
}

/// Runs a root group: the one `run` or `run_until_signal` was called on.
pub(super) async fn run_root(def: &mut GroupDef, trigger: Trigger) -> GroupReport {
    let registry = def
        .registry
        .clone()
        .unwrap_or_else(|| crate::registry().clone());
    Runner::new(def, registry, None, trigger).run().await
}

/// How a child's task finished.
enum Outcome {
    Ended(ChildEnd),
    /// Aborted by the group.
    Aborted,
}

/// What waiting for one child's end gave.
enum Waited {
    Joined(Outcome),
    TimedOut,
    /// The trigger fired (the first time outside a shutdown, again inside one).
    Triggered(&'static str),
}

/// What the run listens to its trigger for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// A shutdown.
    ForShutdown,
    /// A second signal, inside a shutdown.
    ForSecondSignal,
    /// Neither: a shutdown asked for while busy is noted and waits.
    Not,
}

/// Why a child is being stopped, for the events.
#[derive(Clone, Copy)]
enum StopReason<'a> {
    Shutdown,
    GiveUp,
    Removed,
    Paused,
    Restart(&'a str),
    /// Its bucket moved to another replica.
    HandedOff,
    /// This replica could not confirm its shard membership.
    ShardLost,
}

impl StopReason<'_> {
    fn describe(self) -> String {
        match self {
            StopReason::Shutdown => "shutdown".to_string(),
            StopReason::GiveUp => "the group gave up".to_string(),
            StopReason::Removed => "removed".to_string(),
            StopReason::Paused => "paused".to_string(),
            StopReason::Restart(child) => format!("restarted with {child:?}"),
            StopReason::HandedOff => "its bucket moved to another replica".to_string(),
            StopReason::ShardLost => "shard membership lost".to_string(),
        }
    }
}

struct Runner<'d> {
    def: &'d mut GroupDef,
    path: Arc<str>,
    parent: Option<Arc<str>>,
    registry: Registry,
    entry: Subsystem,
    trigger: Trigger,
    listen: Listen,
    /// A trigger that fired while the run was busy stopping a child.
    triggered: Option<&'static str>,
    /// Cancelled by a handle's `shutdown`.
    handle_shutdown: CancellationToken,
    /// The parent of every child's token.
    token: CancellationToken,
    tasks: JoinSet<ChildEnd>,
    /// Indexes beside the children's records: the child each task runs,
    /// how many run, and the children due to start, by time.
    by_task: HashMap<Id, u64>,
    running: usize,
    due: BTreeSet<(Instant, u64)>,
    /// Ends that came while the run waited for another child's.
    ends: VecDeque<(u64, Outcome)>,
    /// The bound of the stop in progress. One timer, reset for each
    /// child rather than made anew: registering a fresh timer wakes the
    /// timer driver's thread (a system call) on almost every stop, a tenth
    /// of a 10,000-child shutdown's time. Between stops it stays armed at
    /// the last bound; when that passes unwatched it wakes the run once,
    /// which finds nothing to do.
    stop_timer: Option<Pin<Box<Sleep>>>,
    window: RestartWindow,
    consecutive: u32,
    /// The span of the run whose end is being judged, taken from its
    /// `ChildEnd`: the restart or give-up is logged inside it.
    ending: Option<Box<tracing::Span>>,
    failed: Vec<String>,
    unstopped: Vec<String>,
    /// A nested run tells its parent when its children are started, so
    /// the parent's next child starts after them (depth-first, as OTP).
    started: Option<oneshot::Sender<()>>,
    /// A sharded run's side of sharding (see `shards.rs`).
    shards: Option<ShardRun>,
}

impl<'d> Runner<'d> {
    fn new(
        def: &'d mut GroupDef,
        registry: Registry,
        parent: Option<Arc<str>>,
        trigger: Trigger,
    ) -> Self {
        let path: Arc<str> = match &parent {
            Some(parent) => Arc::from(format!("{parent}/{}", def.name)),
            None => Arc::from(def.name.as_str()),
        };
        let entry = registry.subsystem(&path);
        entry.set_membership(SubsystemKind::Group, parent.clone());
        entry.set_min_healthy_percent(def.min_healthy_percent);
        entry.set_state(SubsystemState::Running);
        let handle_shutdown = {
            let mut roster = def.shared.roster();
            // A handle's `shutdown` before the first run shuts that run
            // down; one from an earlier run (of a nested group) does not.
            if roster.phase == RunPhase::Ended {
                roster.shutdown = CancellationToken::new();
            }
            roster.phase = RunPhase::Running;
            roster.shutdown.clone()
        };
        let (max, within) = def.intensity;
        let shards = def
            .shards
            .as_ref()
            .map(|shards| ShardRun::start(shards, &path, &entry));
        Runner {
            shards,
            window: RestartWindow::new(max, within),
            def,
            path,
            parent,
            registry,
            entry,
            trigger,
            listen: Listen::ForShutdown,
            triggered: None,
            handle_shutdown,
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
            by_task: HashMap::default(),
            running: 0,
            due: BTreeSet::new(),
            ends: VecDeque::new(),
            stop_timer: None,
            consecutive: 0,
            ending: None,
            failed: Vec::new(),
            unstopped: Vec::new(),
            started: None,
        }
    }

    fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    fn strategy(&self) -> &'static str {
        self.def.strategy.as_str()
    }

    fn name_of(&self, seq: u64) -> Arc<str> {
        self.def
            .members
            .get(&seq)
            .map_or_else(|| Arc::from(""), |m| Arc::clone(&m.name))
    }

    async fn run(mut self) -> GroupReport {
        let seqs: Vec<u64> = self.def.members.keys().copied().collect();
        for seq in seqs {
            self.start(seq).await;
        }
        if let Some(started) = self.started.take() {
            // The parent may have been dropped meanwhile; nothing to tell.
            let _ = started.send(());
        }
        loop {
            if let Some(why) = self.triggered.take() {
                return self.shut_down(why).await;
            }
            if let Some((seq, outcome)) = self.ends.pop_front() {
                if let Some(report) = self.on_end(seq, outcome).await {
                    return report;
                }
                continue;
            }
            // A paused child is kept to be resumed, and a sharded one that
            // runs elsewhere may come here: the group runs on.
            if self.running == 0
                && self.due.is_empty()
                && !self.def.members.is_empty()
                && !self.def.members.values().any(|m| m.paused || m.elsewhere)
            {
                self.leave_shards().await;
                return self.finish(GroupExit::Completed, Instant::now());
            }
            let next_due = self.due.first().map(|(at, _)| *at);
            if next_due.is_some_and(|at| at <= Instant::now()) {
                // Due already (a zero backoff): started now, not at the
                // timer's next tick, a millisecond away. The trigger is
                // still checked first on the next pass.
                self.start_due().await;
                continue;
            }
            tokio::select! {
                biased;
                why = self.trigger.fired() => return self.shut_down(why).await,
                () = self.handle_shutdown.cancelled() => return self.shut_down("handle").await,
                Some(command) = self.def.commands.recv() => self.on_command(command).await,
                Some(joined) = self.tasks.join_next_with_id() => {
                    if let Some((seq, outcome)) = self.identify(joined) {
                        if let Some(report) = self.on_end(seq, outcome).await {
                            return report;
                        }
                    }
                }
                () = sleep_until(next_due) => self.start_due().await,
                Some(event) = next_event(&mut self.shards) => self.on_keeper(event).await,
            }
        }
    }

    // ---- starting ------------------------------------------------------------

    /// The registry entry of member `seq`, created on its first start.
    fn entry_of(&mut self, seq: u64) -> Option<Subsystem> {
        let member = self.def.members.get(&seq)?;
        if let Some(entry) = &member.entry {
            return Some(entry.clone());
        }
        let (name, kind) = if member.is_group() {
            (
                format!("{}/{}", self.path, member.name),
                SubsystemKind::Group,
            )
        } else {
            (member.name.to_string(), SubsystemKind::Subsystem)
        };
        self.warn_if_shared(&name, kind);
        let entry = if member.added_at_run_time && kind == SubsystemKind::Subsystem {
            // The fleet: intended, so not held to the registry's cap, and
            // counted in the group's series rather than its own.
            self.registry
                .fleet_subsystem(&name, member.own_metrics.unwrap_or(false))
        } else {
            let entry = self.registry.subsystem(&name);
            if member.own_metrics == Some(false) {
                entry.set_own_series(false);
            }
            entry
        };
        if self.def.min_healthy_percent.is_some() && kind == SubsystemKind::Subsystem {
            // The group is judged by its share of healthy children instead.
            // A nested group is not made advisory: it stays judged by its
            // own rule (its own share, or its children one by one).
            entry.set_advisory(true);
        }
        if kind == SubsystemKind::Subsystem {
            // A nested run marks its own entry.
            entry.set_membership(kind, Some(Arc::clone(&self.path)));
            // One restart authority: where the strategy restarts siblings
            // too, or the child must not be restarted at all, a
            // `#[supervised]` fn running it leaves every failure to the
            // group instead of restarting itself.
            entry.set_group_restarts(
                self.def.strategy != crate::Strategy::OneForOne
                    || member.restart == Restart::Temporary,
            );
        }
        if let Some(member) = self.def.members.get_mut(&seq) {
            member.entry = Some(entry.clone());
        }
        Some(entry)
    }

    /// Names are one namespace across the registry: a child whose entry
    /// exists already as something else (its own group, a child of another
    /// group, a loop outside any group) would share it, merging beats and
    /// states. Said as a WARN when the child first starts, not silently.
    fn warn_if_shared(&self, name: &str, kind: SubsystemKind) {
        let Some(existing) = self.registry.get(name) else {
            return;
        };
        let existing = existing.status();
        if existing.kind != kind || existing.group.as_deref() != Some(&*self.path) {
            tracing::warn!(
                target: "supervised",
                group = %self.path,
                child = %name,
                other_kind = existing.kind.as_str(),
                other_group = existing.group.as_deref().unwrap_or(""),
                "a child's registry name is taken by another entry: the two share one entry (its beats, state and restarts); give the child a name of its own"
            );
        }
    }

    async fn start(&mut self, seq: u64) {
        if self.def.members.get(&seq).is_some_and(|m| m.paused) {
            // Not even with its siblings: only `resume` starts it.
            return;
        }
        if !self.runs_here(seq) {
            self.set_elsewhere(seq);
            return;
        }
        let Some(entry) = self.entry_of(seq) else {
            return;
        };
        let token = self.token.child_token();
        let registry = self.registry.clone();
        let path = self.path.clone();
        self.show_bucket(seq, &entry);
        let fence = self.fence_for(seq);
        let Some(member) = self.def.members.get_mut(&seq) else {
            return;
        };
        member.elsewhere = false;
        let mut nested_started = None;
        let run = match &mut member.start {
            RunSource::Future(factory) => ChildRun::start(factory, token.clone(), &entry),
            RunSource::Group(slot) => {
                let (started, on_started) = oneshot::channel();
                nested_started = Some(on_started);
                ChildRun::plain(nested_run(
                    slot.clone(),
                    registry,
                    path,
                    token.clone(),
                    started,
                ))
            }
        };
        entry.set_state(SubsystemState::Running);
        let abort = shards::spawn(&mut self.tasks, fence, run);
        self.by_task.insert(abort.id(), seq);
        member.state = ChildState::Running(Running {
            token,
            abort,
            started: Instant::now(),
            beats_then: entry.beats(),
        });
        self.running += 1;
        let name = member.name.clone();
        self.def.shared.set_state(&name, SubsystemState::Running);
        tracing::debug!(target: "supervised", group = %self.path, child = %name, "child started");
        if let Some(on_started) = nested_started {
            // An error means the nested run ended first; its end is in the set.
            let _ = on_started.await;
        }
    }

    async fn start_due(&mut self) {
        let now = Instant::now();
        let ready: Vec<u64> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, seq)| *seq)
            .collect();
        for seq in ready {
            self.clear_due(seq);
            self.start(seq).await;
        }
    }

    // ---- ends (their judging is in restart.rs) --------------------------------

    fn identify(&mut self, joined: Result<(Id, ChildEnd), JoinError>) -> Option<(u64, Outcome)> {
        if let Some(shards) = &self.shards {
            shards.task_ended(match &joined {
                Ok((id, _)) => *id,
                Err(error) => error.id(),
            });
        }
        match joined {
            Ok((id, ended)) => Some((self.by_task.remove(&id)?, Outcome::Ended(ended))),
            Err(error) => {
                let seq = self.by_task.remove(&error.id())?;
                let outcome = if error.is_panic() {
                    // `ChildRun` catches the child's panics; this is one
                    // that got past it (in a nested group's own code).
                    let payload = error.into_panic();
                    Outcome::Ended(ChildEnd::failed(ChildFailure::Panic {
                        message: crate::text::panic_message(&*payload),
                        location: None,
                    }))
                } else {
                    Outcome::Aborted
                };
                Some((seq, outcome))
            }
        }
    }

    /// Takes in what a nested group's report says.
    fn absorb(&mut self, ended: &ChildEnd) {
        if let Some(report) = &ended.report {
            self.unstopped.extend(report.unstopped.iter().cloned());
            self.failed.extend(report.failed.iter().cloned());
        }
    }

    /// [`absorb`](Self::absorb) for a child the group stopped: a failure on
    /// its way out (a panic in its cleanup after the token was cancelled)
    /// is not judged, since the child is not restarted, but it is logged in
    /// the run's span and kept on its entry, never dropped. (std's own
    /// panic text was left out for it: this event is its one report.)
    pub(super) fn absorb_stopped(&mut self, seq: u64, ended: &ChildEnd) {
        self.absorb(ended);
        let Some(failure) = &ended.failure else {
            return;
        };
        let name = self.name_of(seq);
        let _entered = ended.span.as_deref().map(tracing::Span::enter);
        match failure {
            ChildFailure::Panic { message, location } => {
                tracing::error!(
                    target: "supervised",
                    group = %self.path, child = %name,
                    panic_message = %crate::text::Escaped(message),
                    location = location.as_deref().unwrap_or("<unknown>"),
                    "child panicked while it was being stopped"
                );
                if let Some(entry) = self.entry(seq) {
                    entry.note_failure(FailureRecord::Panic(LastPanic {
                        message: message.clone(),
                        location: location.clone(),
                        at: Instant::now(),
                    }));
                }
            }
            other => {
                tracing::warn!(
                    target: "supervised",
                    group = %self.path, child = %name, reason = %other,
                    "child failed while it was being stopped"
                );
                if let Some(entry) = self.entry(seq) {
                    entry.note_failure(FailureRecord::Error(other.to_string()));
                }
            }
        }
    }
}

impl Drop for Runner<'_> {
    /// A run dropped before its end (its parent aborted it): its children
    /// are aborted with the `JoinSet`, and its handles see it ended.
    fn drop(&mut self) {
        let mut roster = self.def.shared.roster();
        if roster.phase != RunPhase::Ended {
            roster.phase = RunPhase::Ended;
            drop(roster);
            self.settle_records();
            self.forget_temporaries();
            self.entry.set_state(SubsystemState::Stopped);
            self.settle_commands();
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
