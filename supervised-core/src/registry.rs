//! The liveness registry: which subsystems exist, when each last beat, and
//! what its supervisor is doing.
//!
//! The hot path is [`Subsystem::beat`]: one clock read and two relaxed atomic
//! writes on a pre-registered handle. No lookup, no allocation, no lock. Names
//! are looked up only by the free functions ([`heartbeat`], [`last_tick`]) and
//! through a sharded concurrent map, so no global lock is ever taken.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dashmap::DashMap;

use crate::policy::ResetRule;
use tokio::time::Instant;

/// Sentinel for "no instant recorded" in an [`AtomicInstant`].
const NEVER: i64 = i64::MIN;

/// What a subsystem is doing right now, as its supervisor last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// The body is running (also the state of a name that is only beaten by hand).
    Running,
    /// The body failed and the supervisor is waiting for the backoff to pass.
    BackingOff,
    /// The body returned cleanly or was cancelled; it will not be restarted.
    Stopped,
    /// The supervisor gave up: restart intensity was exceeded.
    Failed,
}

impl State {
    /// The lower-case name used in logs and JSON: `running`, `backing_off`,
    /// `stopped`, `failed`.
    ///
    /// ```
    /// assert_eq!(supervised_core::State::BackingOff.as_str(), "backing_off");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::BackingOff => "backing_off",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    const fn to_u8(self) -> u8 {
        match self {
            State::Running => 0,
            State::BackingOff => 1,
            State::Stopped => 2,
            State::Failed => 3,
        }
    }

    const fn from_u8(v: u8) -> State {
        match v {
            1 => State::BackingOff,
            2 => State::Stopped,
            3 => State::Failed,
            _ => State::Running,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last panic a subsystem's body raised.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastPanic {
    /// The panic message (`&str` and `String` payloads verbatim; other payload
    /// types as `Box<dyn Any>` with their type unknown).
    pub message: String,
    /// `file:line:column` of the panic, when the panic hook saw it.
    pub location: Option<String>,
    /// When the supervisor caught it.
    pub at: Instant,
}

/// A point-in-time copy of one subsystem's liveness, as returned by
/// [`Registry::snapshot`].
///
/// Health rules:
/// - A subsystem that declares a `tick` is *stale* when more than
///   `stale_after` (default twice the tick) has passed since its last beat, or,
///   if it never beat, since it was registered: a loop that started but has not
///   finished its first tick is given `stale_after` to do so.
/// - `healthy` is `false` when the state is [`State::Failed`], or when it
///   declares a tick and is stale. A subsystem without a tick has no staleness
///   check and is healthy unless Failed.
/// - A subsystem that returned cleanly stays listed as [`State::Stopped`], so
///   operators see a loop that quietly ended; with a tick it goes stale and
///   unhealthy once `stale_after` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubsystemStatus {
    /// The subsystem's name.
    pub name: String,
    /// What its supervisor is doing.
    pub state: State,
    /// The declared interval between beats, if any.
    pub tick: Option<Duration>,
    /// How long without a beat makes it stale (explicit, or twice the tick).
    pub stale_after: Option<Duration>,
    /// When it was registered (the reference for staleness before the first beat).
    pub registered_at: Instant,
    /// The last beat, `None` if it never beat.
    pub last_tick: Option<Instant>,
    /// Time since the last beat, at the time of the snapshot.
    pub since_last_tick: Option<Duration>,
    /// Total beats recorded.
    pub beats: u64,
    /// Total restarts scheduled by its supervisor.
    pub restarts: u64,
    /// Failures since the last run that showed progress (see
    /// [`crate::Supervisor::reset_after`]); 0 as soon as the running
    /// generation has shown that progress.
    pub consecutive_failures: u32,
    /// When the next restart is due, while [`State::BackingOff`].
    pub next_restart_at: Option<Instant>,
    /// The last panic its body raised, if any.
    pub last_panic: Option<LastPanic>,
    /// The message of the last `Err` its body returned, if any.
    pub last_error: Option<String>,
    /// Whether it is advisory: reported, but never failing an aggregate
    /// health probe (see [`Subsystem::set_advisory`]).
    pub advisory: bool,
    /// Whether it declares a tick and is stale (see above).
    pub stale: bool,
    /// Since when it has been stale: its last beat (or registration) plus
    /// `stale_after`. `None` while fresh. The stall watchdog
    /// ([`crate::Watchdog`]) logs the start and end of each such episode.
    pub stale_since: Option<Instant>,
    /// Panics caught by [`crate::isolate`] in items of this subsystem: each
    /// cost one item, not the subsystem.
    pub item_panics: u64,
    /// Whether it is healthy (see above).
    pub healthy: bool,
}

/// Whole seconds below which a [`Duration`] in nanoseconds fits an `i64`
/// without saturating: `i64::MAX` ns is 9,223,372,036 s and 854,775,807 ns.
const I64_EXACT_SECS: u64 = 9_223_372_036;

/// `d` in nanoseconds, saturated at `i64::MAX`.
///
/// The same value as `i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)`, in
/// one 64-bit multiply-add on the path every beat takes (292 years).
#[inline]
fn saturating_nanos(d: Duration) -> i64 {
    let secs = d.as_secs();
    if secs < I64_EXACT_SECS {
        // At most 9,223,372,035,999,999,999: no overflow, and below i64::MAX.
        (secs * 1_000_000_000 + u64::from(d.subsec_nanos())) as i64
    } else {
        saturating_nanos_far(d)
    }
}

#[cold]
#[inline(never)]
fn saturating_nanos_far(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// An [`Instant`] in an atomic: signed nanoseconds from an epoch (the
/// subsystem's registration; signed because a paused test clock may read
/// earlier than the epoch).
struct AtomicInstant(AtomicI64);

impl AtomicInstant {
    fn never() -> Self {
        AtomicInstant(AtomicI64::new(NEVER))
    }

    /// Saturates rather than wraps: 292 years either side of the epoch
    /// (`-i64::MAX` at the earliest, so never [`NEVER`]).
    #[inline]
    fn encode(epoch: Instant, t: Instant) -> i64 {
        // One comparison and one subtraction of the two instants (`t >=
        // epoch` and then `t - epoch` would be two of each).
        match t.into_std().checked_duration_since(epoch.into_std()) {
            Some(since) => saturating_nanos(since),
            None => Self::encode_before(epoch, t),
        }
    }

    /// `t` earlier than `epoch`: only with a paused test clock.
    #[cold]
    #[inline(never)]
    fn encode_before(epoch: Instant, t: Instant) -> i64 {
        -saturating_nanos(epoch.into_std().duration_since(t.into_std()))
    }

    fn decode(epoch: Instant, v: i64) -> Option<Instant> {
        if v == NEVER {
            None
        } else if v >= 0 {
            Some(epoch + Duration::from_nanos(v.unsigned_abs()))
        } else {
            epoch.checked_sub(Duration::from_nanos(v.unsigned_abs()))
        }
    }

    #[inline]
    fn store(&self, epoch: Instant, t: Instant) {
        self.0.store(Self::encode(epoch, t), Ordering::Relaxed);
    }

    fn load(&self, epoch: Instant) -> Option<Instant> {
        Self::decode(epoch, self.0.load(Ordering::Relaxed))
    }
}

/// The cold, rarely written part of a subsystem: behind a per-subsystem lock
/// that the beat path never touches.
#[derive(Default)]
struct Meta {
    tick: Option<Duration>,
    stale_after: Option<Duration>,
    /// The running generation's start, its beat count then, and the rule
    /// that says when it has shown progress (set by the supervisor).
    run: Option<Run>,
    /// What only a failure sets, boxed so that a subsystem that never failed
    /// pays one pointer for it.
    failures: Option<Box<Failures>>,
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

/// `from + after`, or a point 30 years on where that would overflow the
/// clock: a tick, `stale_after` or backoff of `Duration::MAX` means
/// "never", not a panic (tokio's own timers take 30 years as never).
pub(crate) fn deadline(from: Instant, after: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(after).unwrap_or_else(|| from + FAR_FUTURE)
}

/// See [`Meta::run`].
#[derive(Clone, Copy)]
struct Run {
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
    /// Also the epoch of `last_tick`.
    registered_at: Instant,
    last_tick: AtomicInstant,
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
    meta: Mutex<Meta>,
}

/// A pre-registered handle to one subsystem of a [`Registry`].
///
/// Cloning is cheap (an `Arc`). [`beat`](Subsystem::beat) is the hot path:
/// no lookup, no allocation, no lock.
///
/// ```
/// let registry = supervised_core::Registry::new();
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
    fn new(name: &str) -> Self {
        Subsystem(Arc::new(SubsystemInner {
            registered_at: Instant::now(),
            last_tick: AtomicInstant::never(),
            beats: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            item_panics: AtomicU64::new(0),
            name: Box::from(name),
            consecutive_failures: AtomicU32::new(0),
            supervisors: AtomicU32::new(0),
            state: AtomicU8::new(State::Running.to_u8()),
            advisory: AtomicBool::new(false),
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
        inner.last_tick.store(inner.registered_at, now);
    }

    /// The subsystem's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The last beat, `None` if it never beat.
    pub fn last_tick(&self) -> Option<Instant> {
        self.0.last_tick.load(self.0.registered_at)
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
    pub fn state(&self) -> State {
        State::from_u8(self.0.state.load(Ordering::Relaxed))
    }

    /// Declares the expected interval between beats and, optionally, how long
    /// without a beat makes the subsystem stale (default: twice `tick`, the
    /// seed's alerting rule). `None` for `tick` removes the staleness check.
    ///
    /// ```
    /// use std::time::Duration;
    /// let registry = supervised_core::Registry::new();
    /// let sweep = registry.subsystem("sweep");
    /// sweep.declare_tick(Some(Duration::from_secs(30)), None);
    /// assert_eq!(sweep.status().stale_after, Some(Duration::from_secs(60)));
    /// ```
    pub fn declare_tick(&self, tick: Option<Duration>, stale_after: Option<Duration>) {
        let mut meta = self.meta();
        meta.tick = tick;
        meta.stale_after = stale_after;
    }

    /// Marks the subsystem advisory (or not): it stays in every report with
    /// its own `healthy` flag, but aggregate probes (such as the HTTP
    /// `/admin/health` route) do not fail because of it, so an outage of a
    /// dependency it watches cannot cascade into restarts of the whole
    /// service.
    ///
    /// ```
    /// let registry = supervised_core::Registry::new();
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

    fn status_at(&self, now: Instant) -> SubsystemStatus {
        let inner = &*self.0;
        let meta = self.meta();
        let last_tick = self.last_tick();
        let state = self.state();
        let stale_after = meta.stale_limit();
        let reference = last_tick.unwrap_or(inner.registered_at);
        let stale_since = stale_after
            .map(|limit| deadline(reference, limit))
            .filter(|since| now > *since);
        let failures = meta.failures();
        SubsystemStatus {
            name: inner.name.to_string(),
            state,
            tick: meta.tick,
            stale_after,
            registered_at: inner.registered_at,
            last_tick,
            since_last_tick: last_tick.map(|t| now.saturating_duration_since(t)),
            beats: self.beats(),
            restarts: self.restarts(),
            consecutive_failures: if self.progressing(&meta, state, now) {
                0
            } else {
                inner.consecutive_failures.load(Ordering::Relaxed)
            },
            next_restart_at: failures
                .and_then(|f| f.next_restart_at)
                .filter(|_| state == State::BackingOff),
            last_panic: failures.and_then(|f| f.last_panic.clone()),
            last_error: failures.and_then(|f| f.last_error.clone()),
            advisory: inner.advisory.load(Ordering::Relaxed),
            stale: stale_since.is_some(),
            stale_since,
            item_panics: inner.item_panics.load(Ordering::Relaxed),
            healthy: state != State::Failed && stale_since.is_none(),
        }
    }

    /// Whether the running generation has shown the progress that resets
    /// its failure count: a recovered subsystem reports 0 consecutive
    /// failures while it runs, not only after its next failure.
    fn progressing(&self, meta: &Meta, state: State, now: Instant) -> bool {
        match meta.run {
            Some(Run {
                started,
                beats_then,
                rule,
            }) if state == State::Running => {
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

    pub(crate) fn set_state(&self, state: State) {
        self.0.state.store(state.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn record_restart(
        &self,
        consecutive_failures: u32,
        next_restart_at: Instant,
        failure: FailureRecord,
    ) {
        self.0.restarts.fetch_add(1, Ordering::Relaxed);
        self.record_failure(consecutive_failures, failure);
        self.meta().failures_mut().next_restart_at = Some(next_restart_at);
        self.set_state(State::BackingOff);
    }

    pub(crate) fn record_failure(&self, consecutive_failures: u32, failure: FailureRecord) {
        self.0
            .consecutive_failures
            .store(consecutive_failures, Ordering::Relaxed);
        let mut meta = self.meta();
        let failures = meta.failures_mut();
        match failure {
            FailureRecord::Panic(p) => failures.last_panic = Some(p),
            FailureRecord::Error(e) => failures.last_error = Some(e),
        }
    }

    /// Marks the start of a supervised run, for the live progress check.
    pub(crate) fn start_run(&self, started: Instant, rule: ResetRule) {
        self.set_state(State::Running);
        self.meta().run = Some(Run {
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

    pub(crate) fn reset_failures(&self) {
        self.0.consecutive_failures.store(0, Ordering::Relaxed);
    }
}

/// What the supervisor stores about one failure.
pub(crate) enum FailureRecord {
    Panic(LastPanic),
    Error(String),
}

/// A handle as the key of the registry's map, found by its name: one
/// pointer per entry, and the name stored once, in the subsystem.
struct Key(Subsystem);

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, for lookups through `Borrow<str>`.
        self.0.name().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for Key {}

struct RegistryInner {
    subsystems: DashMap<Key, ()>,
}

/// A set of named subsystems and their liveness.
///
/// The free functions ([`heartbeat`], [`last_tick`], [`snapshot`],
/// [`is_healthy`]) use the process-wide one, [`registry()`]; `Registry::new()`
/// gives an isolated one for tests and embedding. Cloning shares the same set.
///
/// ```
/// use std::time::Duration;
/// use supervised_core::Registry;
///
/// let registry = Registry::new();
/// registry.heartbeat("scheduler");
/// assert!(registry.last_tick("scheduler").is_some());
/// assert!(registry.last_tick("unknown").is_none());
/// let (healthy, stale) = registry.is_healthy(&["scheduler", "relay"], Duration::from_secs(60));
/// assert!(!healthy);
/// assert_eq!(stale, vec!["relay".to_string()]);
/// ```
#[derive(Clone)]
pub struct Registry(Arc<RegistryInner>);

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("subsystems", &self.0.subsystems.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty, isolated registry.
    pub fn new() -> Self {
        Registry(Arc::new(RegistryInner {
            subsystems: DashMap::new(),
        }))
    }

    /// The handle for `name`, registering it (state [`State::Running`], no
    /// tick) if it is new. Keep the handle: beating through it costs no lookup.
    pub fn subsystem(&self, name: &str) -> Subsystem {
        if let Some(existing) = self.0.subsystems.get(name) {
            return existing.key().0.clone();
        }
        // The key is the new handle itself; if another thread registered
        // the name in the meantime, its entry wins and this one is dropped.
        self.0
            .subsystems
            .entry(Key(Subsystem::new(name)))
            .or_insert(())
            .key()
            .0
            .clone()
    }

    /// Looks `name` up without registering it.
    pub fn get(&self, name: &str) -> Option<Subsystem> {
        self.0.subsystems.get(name).map(|s| s.key().0.clone())
    }

    /// Records that `name` is alive now, registering it if needed.
    pub fn heartbeat(&self, name: &str) {
        match self.0.subsystems.get(name) {
            Some(sub) => sub.key().0.beat(),
            None => self.subsystem(name).beat(),
        }
    }

    /// The last heartbeat of `name`, `None` if it never beat or is unknown.
    pub fn last_tick(&self, name: &str) -> Option<Instant> {
        self.0
            .subsystems
            .get(name)
            .and_then(|s| s.key().0.last_tick())
    }

    /// Every known subsystem, sorted by name. The result is a copy: later
    /// beats do not change it.
    pub fn snapshot(&self) -> Vec<SubsystemStatus> {
        let now = Instant::now();
        let mut handles: Vec<Subsystem> = self
            .0
            .subsystems
            .iter()
            .map(|e| e.key().0.clone())
            .collect();
        // Sort the 8-byte handles, not the statuses they expand into.
        handles.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        handles.iter().map(|s| s.status_at(now)).collect()
    }

    /// The seed's health check: each name in `expected` is stale if it never
    /// beat or beat more than `stale_threshold` ago. Returns whether none is
    /// stale, and the stale names in the order given.
    pub fn is_healthy(&self, expected: &[&str], stale_threshold: Duration) -> (bool, Vec<String>) {
        let now = Instant::now();
        let stale: Vec<String> = expected
            .iter()
            .filter(|name| match self.last_tick(name) {
                None => true,
                Some(t) => now.saturating_duration_since(t) > stale_threshold,
            })
            .map(|name| name.to_string())
            .collect();
        (stale.is_empty(), stale)
    }
}

/// The process-wide registry behind the free functions.
///
/// ```
/// supervised_core::registry().heartbeat("doc-registry");
/// assert!(supervised_core::last_tick("doc-registry").is_some());
/// ```
pub fn registry() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

/// Records that `name` is alive now, in the process-wide registry.
///
/// For seed parity and hand-written code; supervised bodies beat through a
/// pre-registered handle instead, and code inside one can call
/// [`crate::beat`] without naming itself.
///
/// ```
/// supervised_core::heartbeat("doc-heartbeat");
/// assert!(supervised_core::last_tick("doc-heartbeat").is_some());
/// ```
pub fn heartbeat(name: &str) {
    registry().heartbeat(name);
}

/// The last heartbeat of `name` in the process-wide registry, `None` if never.
///
/// ```
/// assert!(supervised_core::last_tick("doc-never-beat").is_none());
/// ```
pub fn last_tick(name: &str) -> Option<Instant> {
    registry().last_tick(name)
}

/// Every subsystem of the process-wide registry, sorted by name.
///
/// ```
/// supervised_core::heartbeat("doc-snapshot");
/// assert!(supervised_core::snapshot().iter().any(|s| s.name == "doc-snapshot"));
/// ```
pub fn snapshot() -> Vec<SubsystemStatus> {
    registry().snapshot()
}

/// The seed's health check over the process-wide registry; see
/// [`Registry::is_healthy`].
///
/// ```
/// use std::time::Duration;
/// supervised_core::heartbeat("doc-healthy");
/// assert_eq!(
///     supervised_core::is_healthy(&["doc-healthy"], Duration::from_secs(60)),
///     (true, vec![])
/// );
/// ```
pub fn is_healthy(expected: &[&str], stale_threshold: Duration) -> (bool, Vec<String>) {
    registry().is_healthy(expected, stale_threshold)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The conversion `AtomicInstant::encode` replaced, kept as the reference.
    fn encode_reference(epoch: Instant, t: Instant) -> i64 {
        if t >= epoch {
            i64::try_from((t - epoch).as_nanos()).unwrap_or(i64::MAX)
        } else {
            i64::try_from((epoch - t).as_nanos()).map_or(NEVER + 1, |n| -n)
        }
    }

    /// Epochs with different sub-second parts, so that subtractions borrow
    /// and do not.
    fn epochs() -> Vec<Instant> {
        let now = Instant::now();
        [0, 1, 500_000_000, 999_999_999]
            .into_iter()
            .map(|ns| now + Duration::from_nanos(ns))
            .collect()
    }

    /// `epoch` moved by `offset` either way, when representable.
    fn shifted(epoch: Instant, offset: Duration, later: bool) -> Option<Instant> {
        if later {
            epoch.checked_add(offset)
        } else {
            epoch.checked_sub(offset)
        }
    }

    fn check(epoch: Instant, t: Instant) {
        let encoded = AtomicInstant::encode(epoch, t);
        assert_eq!(encoded, encode_reference(epoch, t), "{t:?} from {epoch:?}");
        assert_ne!(encoded, NEVER);
        let max = Duration::from_nanos(i64::MAX as u64);
        let distance = if t >= epoch { t - epoch } else { epoch - t };
        if distance <= max {
            assert_eq!(AtomicInstant::decode(epoch, encoded), Some(t));
        }
    }

    #[test]
    fn encode_matches_the_reference_at_the_edges() {
        let max_ns = i64::MAX as u64;
        let offsets = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            Duration::from_secs(1),
            Duration::from_nanos(1_000_000_001),
            Duration::from_secs(3600),
            Duration::new(I64_EXACT_SECS - 1, 999_999_999),
            Duration::from_secs(I64_EXACT_SECS),
            Duration::from_nanos(max_ns - 1),
            Duration::from_nanos(max_ns),
            Duration::from_nanos(max_ns) + Duration::from_nanos(1),
            Duration::new(I64_EXACT_SECS, 999_999_999),
            Duration::from_secs(I64_EXACT_SECS + 1),
            Duration::from_secs(2 * I64_EXACT_SECS),
            Duration::from_secs(u64::from(u32::MAX) * 1000),
            Duration::from_secs(i64::MAX as u64 / 4),
            Duration::MAX,
        ];
        let mut checked = 0;
        for epoch in epochs() {
            for offset in offsets {
                for later in [true, false] {
                    if let Some(t) = shifted(epoch, offset, later) {
                        check(epoch, t);
                        checked += 1;
                    }
                }
            }
        }
        // Everything up to the saturation boundary and well past it, at least.
        assert!(
            checked >= 4 * 2 * 14,
            "only {checked} instants representable"
        );
    }

    proptest! {
        #[test]
        fn encode_matches_the_reference(
            secs in 0u64..3 * I64_EXACT_SECS,
            nanos in 0u32..1_000_000_000,
            epoch_nanos in 0u64..1_000_000_000,
            later: bool,
        ) {
            let epoch = Instant::now() + Duration::from_nanos(epoch_nanos);
            if let Some(t) = shifted(epoch, Duration::new(secs, nanos), later) {
                check(epoch, t);
            }
        }

        #[test]
        fn encode_matches_the_reference_near_the_epoch(
            nanos in 0u64..10_000_000_000,
            epoch_nanos in 0u64..1_000_000_000,
            later: bool,
        ) {
            let epoch = Instant::now() + Duration::from_nanos(epoch_nanos);
            let t = shifted(epoch, Duration::from_nanos(nanos), later).unwrap();
            check(epoch, t);
        }
    }

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
        assert_eq!(sub.last_tick(), None);
        let before = Instant::now();
        sub.beat();
        let tick = sub.last_tick().unwrap();
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
