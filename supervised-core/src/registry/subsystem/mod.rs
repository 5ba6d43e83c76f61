//! The handle to one subsystem: the lock-free beat, the reads, and what the
//! supervisor writes (this file); `membership.rs`, where it stands (its
//! registry, group, fleet and series); `counted.rs`, how it keeps its
//! registry's counts and staleness watch right; `lease.rs`, its view of
//! its lease, and standby.

mod counted;
mod lease;
mod membership;

pub(crate) use counted::Watched;
pub(crate) use lease::LeaseView;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::instant::{deadline, AtomicInstant};
use super::progress::ResetRule;
use super::status::{LastPanic, LeaseStatus, SubsystemKind, SubsystemState, SubsystemStatus};

/// The cold, rarely written part of a subsystem: behind a per-subsystem lock
/// that the beat path never touches.
#[derive(Default)]
struct Meta {
    tick: Option<Duration>,
    stale_after: Option<Duration>,
    /// The running generation's start, its beat count then, and the rule
    /// that says when it has shown progress (set by the supervisor).
    run: Option<RunRecord>,
    /// What only a failure sets, boxed so that a subsystem that never failed
    /// pays one pointer for it.
    failures: Option<Box<Failures>>,
    /// Set by a [`Group`](crate::Group) for its own entry and its children's.
    membership: Option<Box<Membership>>,
    /// Set by the supervisor of a lease-gated subsystem.
    lease: Option<Box<LeaseView>>,
    /// The WARN that a `#[supervised]` loop declares no tick was logged.
    warned_undeclared_tick: bool,
    /// A group's `min_healthy_percent`.
    min_healthy_percent: Option<u8>,
    /// Set by a sharded group's run on its own entry.
    shards: Option<Arc<super::ShardFigures>>,
    /// The registry's count it is in now (see `counted.rs`).
    counted: Option<Arc<super::tally::Tally>>,
    /// Removed from its registry: counted out for good.
    removed: bool,
}

/// See [`Meta::membership`].
struct Membership {
    kind: SubsystemKind,
    /// Shared with the group's run and its other children: a reader
    /// counting by group clones a pointer, not the path.
    group: Option<Arc<str>>,
}

impl Meta {
    /// `stale_after`, defaulting to twice the tick; `None` without a tick.
    fn stale_limit(&self) -> Option<Duration> {
        self.tick
            .map(|tick| self.stale_after.unwrap_or(tick.saturating_mul(2)))
    }

    fn failures(&self) -> Option<&Failures> {
        self.failures.as_deref()
    }

    fn failures_mut(&mut self) -> &mut Failures {
        self.failures.get_or_insert_with(Box::default)
    }
}

/// See [`Meta::run`].
#[derive(Clone, Copy)]
struct RunRecord {
    started: Instant,
    beats_then: u64,
    rule: ResetRule,
}

/// See [`Meta::failures`].
#[derive(Default)]
struct Failures {
    next_restart_at: Option<Instant>,
    last_panic: Option<LastPanic>,
    last_error: Option<String>,
}

struct SubsystemInner {
    /// Also the epoch of `last_beat`.
    registered_at: Instant,
    last_beat: AtomicInstant,
    beats: AtomicU64,
    restarts: AtomicU64,
    item_panics: AtomicU64,
    /// Not an `Arc<str>`: the registry's map is keyed by the handle itself
    /// (see [`Key`]), so the name has one owner and one allocation.
    name: Box<str>,
    consecutive_failures: AtomicU32,
    /// Supervisors running this subsystem right now (more than one is a
    /// mistake that merges their beats and states, and is warned about).
    supervisors: AtomicU32,
    state: AtomicU8,
    /// Outside `meta`, where it fits in padding.
    advisory: AtomicBool,
    /// See [`Subsystem::group_restarts`]; in padding too.
    group_restarts: AtomicBool,
    /// One of a group's fleet: not under the registry's cap. In padding.
    fleet: AtomicBool,
    /// The registry that holds it, told of its state changes (see
    /// `Registry::index_state`); unset for a handle in no registry.
    home: std::sync::OnceLock<std::sync::Weak<super::RegistryInner>>,
    /// Whether it has metric series of its own (a fleet's children are
    /// counted in their group's instead, unless asked for). In padding.
    series: AtomicBool,
    /// How many times its registry's staleness watch was armed for it
    /// (see `counted.rs`).
    armed: AtomicU32,
    meta: Mutex<Meta>,
}

/// A pre-registered handle to one subsystem of a [`Registry`](crate::Registry).
///
/// Cloning is cheap (an `Arc`). [`beat`](Subsystem::beat) is the hot path:
/// no lookup, no allocation, no lock.
///
/// ```
/// let registry = supervised::Registry::new();
/// let relay = registry.subsystem("relay");
/// relay.beat();
/// assert_eq!(relay.status().beats, 1);
/// ```
#[derive(Clone)]
pub struct Subsystem(Arc<SubsystemInner>);

impl fmt::Debug for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subsystem")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl Subsystem {
    pub(super) fn new(name: &str) -> Self {
        Subsystem(Arc::new(SubsystemInner {
            registered_at: Instant::now(),
            last_beat: AtomicInstant::never(),
            beats: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            item_panics: AtomicU64::new(0),
            name: Box::from(name),
            consecutive_failures: AtomicU32::new(0),
            supervisors: AtomicU32::new(0),
            state: AtomicU8::new(SubsystemState::Running.to_u8()),
            advisory: AtomicBool::new(false),
            group_restarts: AtomicBool::new(false),
            fleet: AtomicBool::new(false),
            home: std::sync::OnceLock::new(),
            series: AtomicBool::new(true),
            armed: AtomicU32::new(0),
            meta: Mutex::new(Meta::default()),
        }))
    }

    /// Records that the subsystem is alive now.
    #[inline]
    pub fn beat(&self) {
        let inner = &*self.0;
        let now = Instant::now();
        // The count before the tick: the locked add does not then wait for
        // the tick's store to drain, and the conversion of `now` overlaps it.
        inner.beats.fetch_add(1, Ordering::Relaxed);
        inner.last_beat.store(inner.registered_at, now);
    }

    /// The subsystem's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The last beat, `None` if it never beat.
    pub fn last_beat(&self) -> Option<Instant> {
        self.0.last_beat.load(self.0.registered_at)
    }

    /// Total beats recorded.
    pub fn beats(&self) -> u64 {
        self.0.beats.load(Ordering::Relaxed)
    }

    /// Total restarts scheduled by its supervisor.
    pub fn restarts(&self) -> u64 {
        self.0.restarts.load(Ordering::Relaxed)
    }

    /// The current state.
    pub fn state(&self) -> SubsystemState {
        SubsystemState::from_u8(self.0.state.load(Ordering::Relaxed))
    }

    /// Declares the expected interval between beats and, optionally, how long
    /// without a beat makes the subsystem stale (default: twice `tick`, the
    /// usual alerting rule). `None` for `tick` removes the staleness check.
    ///
    /// ```
    /// use std::time::Duration;
    /// let registry = supervised::Registry::new();
    /// let sweep = registry.subsystem("sweep");
    /// sweep.declare_tick(Some(Duration::from_secs(30)), None);
    /// assert_eq!(sweep.status().stale_after, Some(Duration::from_secs(60)));
    /// ```
    pub fn declare_tick(&self, tick: Option<Duration>, stale_after: Option<Duration>) {
        {
            let mut meta = self.meta();
            meta.tick = tick;
            meta.stale_after = stale_after;
        }
        self.arm();
    }

    /// Marks the subsystem advisory (or not): it stays in every report with
    /// its own `healthy` flag, but aggregate probes (such as the HTTP
    /// `/admin/health` route) do not fail because of it, so an outage of a
    /// dependency it watches cannot cascade into restarts of the whole
    /// service.
    ///
    /// ```
    /// let registry = supervised::Registry::new();
    /// let probe = registry.subsystem("upstream-probe");
    /// probe.set_advisory(true);
    /// assert!(probe.status().advisory);
    /// ```
    pub fn set_advisory(&self, advisory: bool) {
        self.0.advisory.store(advisory, Ordering::Relaxed);
    }

    /// A copy of this subsystem's liveness now.
    pub fn status(&self) -> SubsystemStatus {
        self.status_at(Instant::now())
    }

    /// How long it has been silent, if it is stale at `now` (as its status
    /// would say): for a lease-gated leader that gives its lease up.
    pub(crate) fn stale_for(&self, now: Instant) -> Option<Duration> {
        let meta = self.meta();
        let (reference, _) = self.stale_at(&meta, self.last_beat(), self.state(), now)?;
        Some(now.saturating_duration_since(reference))
    }

    /// The one staleness rule, for [`status`](Subsystem::status) and
    /// [`stale_for`](Subsystem::stale_for): if it is stale at `now`, the
    /// instant silence counts from and the instant it became stale. Never
    /// without a tick, never in standby.
    fn stale_at(
        &self,
        meta: &Meta,
        last_beat: Option<Instant>,
        state: SubsystemState,
        now: Instant,
    ) -> Option<(Instant, Instant)> {
        let limit = meta.stale_limit()?;
        if matches!(state, SubsystemState::Standby | SubsystemState::Paused) {
            return None;
        }
        let stale_from = meta.lease.as_deref().and_then(|lease| lease.stale_from);
        let reference = staleness_reference(last_beat, self.0.registered_at, stale_from);
        let since = deadline(reference, limit);
        (now > since).then_some((reference, since))
    }

    pub(super) fn status_at(&self, now: Instant) -> SubsystemStatus {
        let inner = &*self.0;
        let meta = self.meta();
        let last_beat = self.last_beat();
        let state = self.state();
        let stale_after = meta.stale_limit();
        let stale_since = self
            .stale_at(&meta, last_beat, state, now)
            .map(|(_, since)| since);
        let failures = meta.failures();
        let membership = meta.membership.as_deref();
        SubsystemStatus {
            name: inner.name.to_string(),
            kind: membership.map_or(SubsystemKind::Subsystem, |m| m.kind),
            group: membership.and_then(|m| m.group.as_deref().map(str::to_string)),
            state,
            tick: meta.tick,
            stale_after,
            registered_at: inner.registered_at,
            last_beat,
            since_last_beat: last_beat.map(|t| now.saturating_duration_since(t)),
            beats: self.beats(),
            restarts: self.restarts(),
            consecutive_failures: if self.progressing(&meta, state, now) {
                0
            } else {
                inner.consecutive_failures.load(Ordering::Relaxed)
            },
            next_restart_at: failures
                .and_then(|f| f.next_restart_at)
                .filter(|_| state == SubsystemState::BackingOff),
            last_panic: failures.and_then(|f| f.last_panic.clone()),
            last_error: failures.and_then(|f| f.last_error.clone()),
            advisory: inner.advisory.load(Ordering::Relaxed),
            stale: stale_since.is_some(),
            stale_since,
            item_panics: inner.item_panics.load(Ordering::Relaxed),
            healthy: state != SubsystemState::Failed && stale_since.is_none(),
            min_healthy_percent: meta.min_healthy_percent,
            shards: meta.shards.as_deref().map(super::ShardFigures::status),
            lease: meta.lease.as_deref().map(|lease| LeaseStatus {
                name: lease.name.to_string(),
                leader: lease.leader,
                holder: lease.holder.clone(),
                epoch: lease.epoch,
                expires_in: lease.expires_at.map(|at| at.saturating_duration_since(now)),
                acquisitions: lease.acquisitions,
            }),
        }
    }

    /// What a filter or a summary reads (`query.rs`), under one lock and
    /// without copying the rest of the status.
    #[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
    pub(super) fn facts(&self, now: Instant) -> super::query::Facts {
        let meta = self.meta();
        let state = self.state();
        let membership = meta.membership.as_deref();
        super::query::Facts {
            state,
            kind: membership.map_or(SubsystemKind::Subsystem, |m| m.kind),
            group: membership.and_then(|m| m.group.clone()),
            stale: self.stale_at(&meta, self.last_beat(), state, now).is_some(),
            advisory: self.0.advisory.load(Ordering::Relaxed),
            min_healthy_percent: meta.min_healthy_percent,
        }
    }

    /// Whether the running generation has shown the progress that resets
    /// its failure count: a recovered subsystem reports 0 consecutive
    /// failures while it runs, not only after its next failure.
    fn progressing(&self, meta: &Meta, state: SubsystemState, now: Instant) -> bool {
        match meta.run {
            Some(RunRecord {
                started,
                beats_then,
                rule,
            }) if state == SubsystemState::Running => {
                let beats = self.beats();
                rule.progressed(
                    now.saturating_duration_since(started),
                    beats.saturating_sub(beats_then),
                    beats,
                )
            }
            _ => false,
        }
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        // A poisoned lock only means a panic happened while it was held; the
        // plain data inside is still consistent enough to report.
        self.0.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- written by the supervisor ------------------------------------------

    pub(crate) fn set_state(&self, state: SubsystemState) {
        let old = self.swap_state(state);
        // Only a change between running and not running moves the entry in
        // its registry's index: a supervisor's transition, never a beat.
        if (old == SubsystemState::Running) != (state == SubsystemState::Running) {
            if let Some(home) = self.home() {
                home.index_state(self);
            }
        }
        if Self::arms_on(old, state) {
            self.arm();
        }
    }

    pub(crate) fn record_restart(
        &self,
        consecutive_failures: u32,
        next_restart_at: Instant,
        failure: FailureRecord,
    ) {
        self.record_failure(consecutive_failures, failure);
        self.schedule_restart(next_restart_at);
    }

    /// A restart that no failure caused (a permanent child that ended, or a
    /// sibling restarted with it): counted and shown as backing off.
    pub(crate) fn schedule_restart(&self, next_restart_at: Instant) {
        {
            let mut meta = self.meta();
            self.add_restart(&meta);
            meta.failures_mut().next_restart_at = Some(next_restart_at);
        }
        self.set_state(SubsystemState::BackingOff);
    }

    /// Counts a group's restart on the group's own entry, whose state stays
    /// running.
    pub(crate) fn count_restart(&self) {
        self.add_restart(&self.meta());
    }

    /// Whether `self` and `other` are the same entry.
    pub(crate) fn same_as(&self, other: &Subsystem) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Stores a failure's text without touching the failure count (which
    /// is the supervisor's).
    pub(crate) fn note_failure(&self, failure: FailureRecord) {
        let mut meta = self.meta();
        let failures = meta.failures_mut();
        match failure {
            FailureRecord::Panic(p) => failures.last_panic = Some(p),
            FailureRecord::Error(e) => failures.last_error = Some(e),
        }
    }

    /// Starts its count of failures in a row again (a resumed child); the
    /// last failure stays on record.
    pub(crate) fn reset_failures(&self) {
        self.0.consecutive_failures.store(0, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self, consecutive_failures: u32, failure: FailureRecord) {
        self.0
            .consecutive_failures
            .store(consecutive_failures, Ordering::Relaxed);
        self.note_failure(failure);
    }

    /// Marks the start of a supervised run, for the live progress check.
    pub(crate) fn start_run(&self, started: Instant, rule: ResetRule) {
        self.set_state(SubsystemState::Running);
        self.meta().run = Some(RunRecord {
            started,
            beats_then: self.beats(),
            rule,
        });
    }

    /// When the current supervised run started and the beat count then,
    /// as [`start_run`](Subsystem::start_run) recorded them.
    pub(crate) fn run_started(&self) -> Option<(Instant, u64)> {
        self.meta().run.map(|run| (run.started, run.beats_then))
    }

    pub(crate) fn record_item_panic(&self) {
        self.0.item_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one more supervisor running this subsystem; returns how many
    /// were running before.
    pub(crate) fn enter_supervisor(&self) -> u32 {
        self.0.supervisors.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn leave_supervisor(&self) {
        self.0.supervisors.fetch_sub(1, Ordering::Relaxed);
    }

    /// How long without a beat makes it stale (`None` without a tick).
    pub(crate) fn stale_limit(&self) -> Option<Duration> {
        self.meta().stale_limit()
    }

    /// Whether this entry is a group child that its group restarts after
    /// every failure (under `OneForAll` or `RestForOne`, or a temporary
    /// child): a `#[supervised]` fn running it hands each failure up rather
    /// than restarting itself, so one layer decides every restart.
    /// `true` the first time only: the WARN that a loop declares no tick
    /// is logged once per subsystem, not at every call of its fn.
    pub(crate) fn first_undeclared_tick(&self) -> bool {
        !std::mem::replace(&mut self.meta().warned_undeclared_tick, true)
    }

    pub(crate) fn group_restarts(&self) -> bool {
        self.0.group_restarts.load(Ordering::Relaxed)
    }

    /// Set by the group when it makes the child's entry.
    pub(crate) fn set_group_restarts(&self, restarts: bool) {
        self.0.group_restarts.store(restarts, Ordering::Relaxed);
    }
}

/// Where staleness counts from: the last beat (or registration), or the
/// moment the subsystem left standby if that is later.
fn staleness_reference(
    last_beat: Option<Instant>,
    registered_at: Instant,
    stale_from: Option<Instant>,
) -> Instant {
    let reference = last_beat.unwrap_or(registered_at);
    stale_from.map_or(reference, |from| reference.max(from))
}

/// What the supervisor stores about one failure.
pub(crate) enum FailureRecord {
    Panic(LastPanic),
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn declared_ticks_round_trip() {
        let durations = [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_nanos(1)),
            Some(Duration::new(1, 999_999_999)),
            Some(Duration::from_secs(30)),
        ];
        let sub = Registry::new().subsystem("declared");
        for tick in durations {
            for stale_after in durations {
                sub.declare_tick(tick, stale_after);
                let meta = sub.meta();
                assert_eq!((meta.tick, meta.stale_after), (tick, stale_after));
            }
        }
        assert_eq!(Meta::default().tick, None);
        assert_eq!(Meta::default().stale_after, None);
    }

    #[test]
    fn beats_and_ticks_round_trip() {
        let registry = Registry::new();
        let sub = registry.subsystem("round-trip");
        assert_eq!(sub.last_beat(), None);
        let before = Instant::now();
        sub.beat();
        let tick = sub.last_beat().unwrap();
        assert!(tick >= before && tick <= Instant::now());
        assert_eq!(sub.beats(), 1);
        // One entry per name, and the same subsystem behind every handle.
        let again = registry.subsystem("round-trip");
        again.beat();
        assert_eq!(sub.beats(), 2);
        assert_eq!(registry.snapshot().len(), 1);
        assert_eq!(registry.get("round-trip").unwrap().beats(), 2);
        assert!(registry.get("round-trip-2").is_none());
    }
}
