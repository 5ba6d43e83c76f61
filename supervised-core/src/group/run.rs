//! One run of a group: start the children, wait for their ends, commands
//! and triggers, restart by the strategy, and stop everything in reverse
//! order when told to.
//!
//! Every child's task is in one `JoinSet`, so dropping a run (its parent
//! aborting it, or a caller dropping the future) aborts every child too.
//! A child's end is seen only once its task has finished, which tokio
//! reports after the task's future was dropped: that is what keeps a new
//! run of a child from overlapping the old one.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foldhash::HashMap;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::builder::GroupDef;
use super::child::{ChildFailure, ChildRun, Ended, RunFuture, Start};
use super::handle::{Command, Phase};
use super::report::{GroupExit, GroupReport};
use super::signal::Signals;
use crate::registry::{deadline, FailureRecord, Subsystem};
use crate::supervisor::{panic, ResetRule, RestartWindow};
use crate::{LastPanic, Registry, RemoveError, Restart, SubsystemKind, SubsystemState};

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

/// A nested group as a child's run: the definition is lent to the run and
/// handed back when it ends, or when it is dropped.
pub(super) fn nested_run(
    slot: Arc<Mutex<Option<GroupDef>>>,
    registry: Registry,
    parent: Arc<str>,
    cancel: CancellationToken,
    started: oneshot::Sender<()>,
) -> RunFuture {
    Box::pin(async move {
        let mut lent = Lent::take(slot);
        let Some(def) = lent.def.as_mut() else {
            return Ended::failed(ChildFailure::GaveUp(
                "the nested group's previous run has not ended".to_string(),
            ));
        };
        let mut runner = Runner::new(def, registry, Some(parent), Trigger::Parent(cancel));
        runner.started = Some(started);
        let report = runner.run().await;
        let failure = match &report.exit {
            GroupExit::GaveUp { child, failure } => Some(ChildFailure::GaveUp(format!(
                "the group gave up: its child {child:?} failed: {failure}"
            ))),
            GroupExit::Shutdown | GroupExit::Completed => None,
        };
        Ended {
            failure,
            report: Some(Box::new(report)),
        }
    })
}

struct Lent {
    slot: Arc<Mutex<Option<GroupDef>>>,
    def: Option<GroupDef>,
}

impl Lent {
    fn take(slot: Arc<Mutex<Option<GroupDef>>>) -> Self {
        let def = lock(&slot).take();
        Lent { slot, def }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(def) = self.def.take() {
            *lock(&self.slot) = Some(def);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child's run in progress.
struct Running {
    token: CancellationToken,
    abort: AbortHandle,
    started: Instant,
    beats_then: u64,
}

/// How a child's task finished.
enum Outcome {
    Ended(Ended),
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
    First,
    /// A second signal, inside a shutdown.
    Second,
    Nothing,
}

/// Why a child is being stopped, for the events.
#[derive(Clone, Copy)]
enum StopReason<'a> {
    Shutdown,
    GiveUp,
    Removed,
    Restart(&'a str),
}

impl StopReason<'_> {
    fn describe(self) -> String {
        match self {
            StopReason::Shutdown => "shutdown".to_string(),
            StopReason::GiveUp => "the group gave up".to_string(),
            StopReason::Removed => "removed".to_string(),
            StopReason::Restart(child) => format!("restarted with {child:?}"),
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
    tasks: JoinSet<Ended>,
    by_task: HashMap<Id, u64>,
    running: HashMap<u64, Running>,
    /// Ends that came while the run waited for another child's.
    ends: VecDeque<(u64, Outcome)>,
    /// Children to start, and when.
    due: BTreeMap<u64, Instant>,
    entries: HashMap<u64, Subsystem>,
    /// The bound of the stop in progress. One timer, reset for each
    /// child rather than made anew: registering a fresh timer wakes the
    /// timer driver's thread (a system call) on almost every stop, a tenth
    /// of a 10,000-child shutdown's time. Between stops it stays armed at
    /// the last bound; when that passes unwatched it wakes the run once,
    /// which finds nothing to do.
    stop_timer: Option<Pin<Box<Sleep>>>,
    window: RestartWindow,
    consecutive: u32,
    failed: Vec<String>,
    unstopped: Vec<String>,
    /// A nested run tells its parent when its children are started, so
    /// the parent's next child starts after them (depth-first, as OTP).
    started: Option<oneshot::Sender<()>>,
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
        entry.set_membership(SubsystemKind::Group, parent.as_deref());
        entry.set_state(SubsystemState::Running);
        let handle_shutdown = {
            let mut book = def.shared.book();
            // A handle's `shutdown` before the first run shuts that run
            // down; one from an earlier run (of a nested group) does not.
            if book.phase == Phase::Ended {
                book.shutdown = CancellationToken::new();
            }
            book.phase = Phase::Running;
            book.shutdown.clone()
        };
        let (max, within) = def.intensity;
        Runner {
            window: RestartWindow::new(max, within),
            def,
            path,
            parent,
            registry,
            entry,
            trigger,
            listen: Listen::First,
            triggered: None,
            handle_shutdown,
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
            by_task: HashMap::default(),
            running: HashMap::default(),
            ends: VecDeque::new(),
            due: BTreeMap::new(),
            entries: HashMap::default(),
            stop_timer: None,
            consecutive: 0,
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
        let seqs: Vec<u64> = self
            .def
            .members
            .iter()
            .filter(|(_, m)| !m.retired)
            .map(|(seq, _)| *seq)
            .collect();
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
            if self.running.is_empty() && self.due.is_empty() && !self.def.members.is_empty() {
                return self.finish(GroupExit::Completed, Instant::now());
            }
            let next_due = self.due.values().min().copied();
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
            }
        }
    }

    // ---- starting ------------------------------------------------------------

    /// The registry entry of member `seq`, created on its first start.
    fn entry_of(&mut self, seq: u64) -> Option<Subsystem> {
        if let Some(entry) = self.entries.get(&seq) {
            return Some(entry.clone());
        }
        let member = self.def.members.get(&seq)?;
        let (name, kind) = if member.is_group() {
            (
                format!("{}/{}", self.path, member.name),
                SubsystemKind::Group,
            )
        } else {
            (member.name.to_string(), SubsystemKind::Subsystem)
        };
        self.warn_if_shared(&name, kind);
        let entry = self.registry.subsystem(&name);
        if kind == SubsystemKind::Subsystem {
            // A nested run marks its own entry.
            entry.set_membership(kind, Some(&self.path));
        }
        self.entries.insert(seq, entry.clone());
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
        let Some(entry) = self.entry_of(seq) else {
            return;
        };
        let token = self.token.child_token();
        let registry = self.registry.clone();
        let path = self.path.clone();
        let Some(member) = self.def.members.get_mut(&seq) else {
            return;
        };
        let mut nested_started = None;
        let run = match &mut member.start {
            Start::Future(factory) => ChildRun::start(factory, token.clone(), &entry),
            Start::Group(slot) => {
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
        let abort = self.tasks.spawn(run);
        self.by_task.insert(abort.id(), seq);
        self.running.insert(
            seq,
            Running {
                token,
                abort,
                started: Instant::now(),
                beats_then: entry.beats(),
            },
        );
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
            .filter(|(_, at)| **at <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in ready {
            self.due.remove(&seq);
            self.start(seq).await;
        }
    }

    // ---- ends ----------------------------------------------------------------

    fn identify(&mut self, joined: Result<(Id, Ended), JoinError>) -> Option<(u64, Outcome)> {
        match joined {
            Ok((id, ended)) => Some((self.by_task.remove(&id)?, Outcome::Ended(ended))),
            Err(error) => {
                let seq = self.by_task.remove(&error.id())?;
                let outcome = if error.is_panic() {
                    // `ChildRun` catches the child's panics; this is one
                    // that got past it (in a nested group's own code).
                    let payload = error.into_panic();
                    Outcome::Ended(Ended::failed(ChildFailure::Panic {
                        message: panic::panic_message(&*payload),
                        location: None,
                    }))
                } else {
                    Outcome::Aborted
                };
                Some((seq, outcome))
            }
        }
    }

    /// Waits for member `seq`'s task to finish, until `until`, keeping the
    /// ends of others for later.
    async fn wait_for(&mut self, seq: u64, until: Option<Instant>) -> Waited {
        if let Some(at) = self.ends.iter().position(|(s, _)| *s == seq) {
            if let Some((_, outcome)) = self.ends.remove(at) {
                return Waited::Joined(outcome);
            }
        }
        loop {
            let listening = match self.listen {
                Listen::First => true,
                Listen::Second => self.trigger.repeats(),
                Listen::Nothing => false,
            };
            tokio::select! {
                biased;
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else {
                        return Waited::Joined(Outcome::Aborted);
                    };
                    if let Some((ended, outcome)) = self.identify(joined) {
                        if ended == seq {
                            return Waited::Joined(outcome);
                        }
                        self.ends.push_back((ended, outcome));
                    }
                }
                why = self.trigger.fired(), if listening => return Waited::Triggered(why),
                () = self.handle_shutdown.cancelled(), if self.listen == Listen::First => {
                    return Waited::Triggered("handle");
                }
                () = bounded(&mut self.stop_timer, until) => return Waited::TimedOut,
            }
        }
    }

    /// Records a shutdown asked for while the run was busy: readiness
    /// turns at once, the shutdown itself begins when the run is free.
    fn note_trigger(&mut self, why: &'static str) {
        self.listen = Listen::Nothing;
        self.triggered = Some(why);
        if self.is_root() {
            self.registry.set_draining();
        }
    }

    /// Stops a running child outside a shutdown (for a restart or a
    /// removal): its token, its stop timeout, then an abort that is waited
    /// for, so its future is gone when this returns.
    async fn stop_now(&mut self, seq: u64, reason: StopReason<'_>) -> Option<Ended> {
        let (run, begun, until) = self.begin_stop(seq)?;
        let mut aborted = false;
        let outcome = loop {
            match self
                .wait_for(seq, if aborted { None } else { Some(until) })
                .await
            {
                Waited::Joined(outcome) => break outcome,
                Waited::Triggered(why) => self.note_trigger(why),
                Waited::TimedOut => {
                    run.abort.abort();
                    aborted = true;
                }
            }
        };
        self.stopped(seq, reason, begun, aborted, "stop_timeout");
        match outcome {
            Outcome::Ended(ended) => Some(ended),
            Outcome::Aborted => None,
        }
    }

    /// Takes member `seq`'s run and cancels its token: the run, when its
    /// stop began, and when its stop timeout ends.
    fn begin_stop(&mut self, seq: u64) -> Option<(Running, Instant, Instant)> {
        let run = self.running.remove(&seq)?;
        run.token.cancel();
        let begun = Instant::now();
        let timeout = self
            .def
            .members
            .get(&seq)
            .map_or(Duration::ZERO, |m| m.stop_timeout);
        Some((run, begun, deadline(begun, timeout)))
    }

    /// The running children, last started first: the stop order.
    fn running_last_first(&self) -> Vec<u64> {
        let mut order: Vec<u64> = self.running.keys().copied().collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        order
    }

    /// Books a child the group stopped, with one event.
    fn stopped(
        &mut self,
        seq: u64,
        reason: StopReason<'_>,
        begun: Instant,
        aborted: bool,
        bound: &str,
    ) {
        let name = self.name_of(seq);
        if let Some(entry) = self.entries.get(&seq) {
            entry.set_state(SubsystemState::Stopped);
        }
        self.def.shared.set_state(&name, SubsystemState::Stopped);
        let took = Instant::now().saturating_duration_since(begun);
        if aborted {
            self.unstopped.push(name.to_string());
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(),
                reason = %reason.describe(), bound, took = ?took,
                "child unstopped: it did not finish within its bound after cancellation, and its task was aborted"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(),
                reason = %reason.describe(), took = ?took,
                "child stopped"
            );
        }
    }

    /// Takes in what a nested group's report says.
    fn absorb(&mut self, ended: &Ended) {
        if let Some(report) = &ended.report {
            self.unstopped.extend(report.unstopped.iter().cloned());
            self.failed.extend(report.failed.iter().cloned());
        }
    }

    /// A child's task finished by itself. `Some` when the run is over.
    async fn on_end(&mut self, seq: u64, outcome: Outcome) -> Option<GroupReport> {
        let run = self.running.remove(&seq)?;
        let ended = match outcome {
            Outcome::Ended(ended) => ended,
            // Only the group aborts, and it waits for those itself.
            Outcome::Aborted => Ended::normal(),
        };
        self.absorb(&ended);
        let member = self.def.members.get_mut(&seq)?;
        let name = member.name.to_string();
        let restart = member.restart;
        let entry = self.entries.get(&seq).cloned()?;
        let now = Instant::now();
        if let Some(failure) = &ended.failure {
            entry.note_failure(match failure {
                ChildFailure::Panic { message, location } => FailureRecord::Panic(LastPanic {
                    message: message.clone(),
                    location: location.clone(),
                    at: now,
                }),
                other => FailureRecord::Error(other.to_string()),
            });
        }
        let reason = match &ended.failure {
            Some(failure) => failure.to_string(),
            None => "ended normally".to_string(),
        };
        if !restart.after(ended.failure.is_some()) {
            if restart == Restart::Temporary {
                member.retired = true;
            }
            let state = if ended.failure.is_some() {
                SubsystemState::Failed
            } else {
                SubsystemState::Stopped
            };
            entry.set_state(state);
            self.def.shared.set_state(&name, state);
            if ended.failure.is_some() {
                self.failed.push(name.clone());
                tracing::error!(
                    target: "supervised",
                    group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                    "child failed and is not restarted ({restart:?})"
                );
            } else {
                tracing::info!(
                    target: "supervised",
                    group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                    "child ended and is not restarted ({restart:?})"
                );
            }
            return None;
        }

        if !self.window.admit(now) {
            return Some(self.give_up(seq, reason).await);
        }
        // The backoff resets when the child that ended had made progress,
        // by the rule a `Supervisor` applies to its body.
        let rule = ResetRule {
            beats: 3,
            running: self.def.backoff.max(),
        };
        let beats = entry.beats();
        if rule.progressed(
            now.saturating_duration_since(run.started),
            beats.saturating_sub(run.beats_then),
            beats,
        ) {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        let delay = self.def.backoff.delay(self.consecutive);
        self.entry.count_restart();

        let together: Vec<u64> = match self.def.strategy {
            super::Strategy::OneForOne => vec![seq],
            super::Strategy::OneForAll => self.def.members.keys().copied().collect(),
            super::Strategy::RestForOne => self.def.members.range(seq..).map(|(s, _)| *s).collect(),
        };
        let siblings: Vec<String> = together
            .iter()
            .filter(|s| **s != seq)
            .map(|s| self.name_of(*s).to_string())
            .collect();
        if ended.failure.is_some() {
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                backoff = ?delay, with = ?siblings,
                "child failed: restarting it after the backoff"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                backoff = ?delay, with = ?siblings,
                "permanent child ended: restarting it after the backoff"
            );
        }
        // Stop the siblings, last started first, each gone before the next.
        for &sibling in together.iter().rev().filter(|s| **s != seq) {
            if self.running.contains_key(&sibling) {
                if let Some(ended) = self.stop_now(sibling, StopReason::Restart(&name)).await {
                    self.absorb(&ended);
                }
            }
        }
        let at = deadline(Instant::now(), delay);
        for s in together {
            let Some(member) = self.def.members.get_mut(&s) else {
                continue;
            };
            if member.restart == Restart::Temporary {
                // Not even with its siblings.
                member.retired = true;
                self.due.remove(&s);
                continue;
            }
            if member.retired {
                continue;
            }
            let name = member.name.clone();
            self.due.insert(s, at);
            if let Some(entry) = self.entries.get(&s) {
                entry.schedule_restart(at);
            }
            self.def.shared.set_state(&name, SubsystemState::BackingOff);
        }
        None
    }

    // ---- commands ------------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Add(child) => {
                let seq = self.def.push(super::builder::Member::from(child));
                self.start(seq).await;
            }
            Command::Remove(name, answer) => {
                let result = self.remove(&name).await;
                // The caller may have stopped waiting; the removal stands.
                let _ = answer.send(result);
            }
        }
    }

    async fn remove(&mut self, name: &str) -> Result<(), RemoveError> {
        let Some(&seq) = self.def.seqs.get(name) else {
            return Err(RemoveError::NotFound(name.to_string()));
        };
        if self.running.contains_key(&seq) {
            if let Some(ended) = self.stop_now(seq, StopReason::Removed).await {
                self.absorb(&ended);
            }
        }
        self.due.remove(&seq);
        let member = self.def.remove(seq);
        if let Some(entry) = self.entries.remove(&seq) {
            self.registry.forget(&entry);
            if member.as_ref().is_some_and(|m| m.is_group()) {
                self.registry.forget_group(entry.name());
            }
        }
        self.def.shared.book().remove(name);
        tracing::info!(target: "supervised", group = %self.path, child = %name, "child removed");
        Ok(())
    }

    // ---- the end -------------------------------------------------------------

    async fn give_up(&mut self, seq: u64, failure: String) -> GroupReport {
        let begun = Instant::now();
        let child = self.name_of(seq).to_string();
        let (max, within) = self.def.intensity;
        tracing::error!(
            target: "supervised",
            group = %self.path, child = %child, strategy = self.strategy(), reason = %failure,
            max_restarts = max, within = ?within,
            "group gave up: restart intensity exceeded; stopping every child"
        );
        if let Some(entry) = self.entries.get(&seq) {
            entry.set_state(SubsystemState::Failed);
        }
        self.def.shared.set_state(&child, SubsystemState::Failed);
        self.failed.push(child.clone());
        self.def.shared.book().phase = Phase::ShuttingDown;
        if self.is_root() {
            self.registry.set_draining();
        }
        self.listen = Listen::Second;
        let until = deadline(begun, self.def.shutdown_timeout);
        self.stop_all(StopReason::GiveUp, until).await;
        self.entry.set_state(SubsystemState::Failed);
        self.finish(GroupExit::GaveUp { child, failure }, begun)
    }

    async fn shut_down(&mut self, trigger: &'static str) -> GroupReport {
        let begun = Instant::now();
        self.def.shared.book().phase = Phase::ShuttingDown;
        if self.is_root() {
            self.registry.set_draining();
        }
        tracing::info!(
            target: "supervised",
            group = %self.path, strategy = self.strategy(), reason = "shutdown", trigger,
            children = self.running.len(), drain = ?self.def.drain, timeout = ?self.def.shutdown_timeout,
            "shutdown begun"
        );
        self.listen = Listen::Second;
        self.due.clear();
        let until = deadline(begun, self.def.shutdown_timeout);
        let drained = deadline(begun, self.def.drain).min(until);
        let second = if self.def.drain.is_zero() {
            None
        } else {
            tokio::select! {
                why = self.trigger.fired(), if self.trigger.repeats() => Some(why),
                () = tokio::time::sleep_until(drained) => None,
            }
        };
        if let Some(why) = second {
            self.abort_all(why);
        } else {
            self.stop_all(StopReason::Shutdown, until).await;
        }
        self.finish(GroupExit::Shutdown, begun)
    }

    /// Stops every running child, last started first, within `until`.
    async fn stop_all(&mut self, reason: StopReason<'_>, until: Instant) {
        for seq in self.running_last_first() {
            let Some((run, begun, own)) = self.begin_stop(seq) else {
                continue;
            };
            let bound = if own < until {
                "stop_timeout"
            } else {
                "shutdown_timeout"
            };
            match self.wait_for(seq, Some(own.min(until))).await {
                Waited::Joined(outcome) => {
                    if let Outcome::Ended(ended) = &outcome {
                        self.absorb(ended);
                    }
                    self.stopped(seq, reason, begun, false, bound);
                }
                Waited::TimedOut => {
                    // Not waited for: the shutdown's bound is a hard one.
                    run.abort.abort();
                    self.stopped(seq, reason, begun, true, bound);
                }
                Waited::Triggered(why) => {
                    run.abort.abort();
                    self.stopped(seq, reason, begun, true, why);
                    self.abort_all(why);
                    return;
                }
            }
        }
    }

    /// A second signal: every child left is aborted at once.
    fn abort_all(&mut self, why: &'static str) {
        let now = Instant::now();
        for seq in self.running_last_first() {
            if let Some(run) = self.running.remove(&seq) {
                run.abort.abort();
                self.stopped(seq, StopReason::Shutdown, now, true, why);
            }
        }
    }

    fn finish(&mut self, exit: GroupExit, begun: Instant) -> GroupReport {
        if !matches!(exit, GroupExit::GaveUp { .. }) {
            self.entry.set_state(SubsystemState::Stopped);
        }
        if self.is_root() {
            self.registry.set_draining();
        }
        self.token.cancel();
        self.def.shared.book().phase = Phase::Ended;
        self.settle_commands();
        let took = match exit {
            GroupExit::Completed => Duration::ZERO,
            _ => Instant::now().saturating_duration_since(begun),
        };
        tracing::info!(
            target: "supervised",
            group = %self.path, strategy = self.strategy(), reason = ?exit,
            unstopped = ?self.unstopped, failed = ?self.failed, took = ?took,
            "group ended"
        );
        GroupReport {
            exit,
            unstopped: std::mem::take(&mut self.unstopped),
            failed: std::mem::take(&mut self.failed),
            took,
        }
    }
}

impl Runner<'_> {
    /// Commands sent before the handles saw the run end: a removal is
    /// answered (nothing is running to remove), an add is kept for the
    /// group's next run (a nested group's parent may restart it), so no
    /// caller waits on a command nobody will read.
    fn settle_commands(&mut self) {
        while let Ok(command) = self.def.commands.try_recv() {
            match command {
                Command::Add(child) => {
                    self.def.push(super::builder::Member::from(child));
                }
                Command::Remove(_, answer) => {
                    let _ = answer.send(Err(RemoveError::Ended));
                }
            }
        }
    }
}

impl Drop for Runner<'_> {
    /// A run dropped before its end (its parent aborted it): its children
    /// are aborted with the `JoinSet`, and its handles see it ended.
    fn drop(&mut self) {
        let mut book = self.def.shared.book();
        if book.phase != Phase::Ended {
            book.phase = Phase::Ended;
            drop(book);
            self.entry.set_state(SubsystemState::Stopped);
            self.settle_commands();
        }
    }
}

/// Sleeps on `timer` until `at` (forever without one), resetting it only
/// when its deadline differs.
async fn bounded(timer: &mut Option<Pin<Box<Sleep>>>, at: Option<Instant>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if timer.deadline() != at {
        timer.as_mut().reset(at);
    }
    timer.as_mut().await;
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
