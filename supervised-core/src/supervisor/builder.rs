//! The [`Supervisor`] builder: every knob of a supervision, as a value that
//! can be a `static`. What the engine reads of it is the [`Policy`].

use std::time::Duration;

use super::backoff::Backoff;
use super::policy::{BackendRef, Policy};
use crate::lease::spec::MIN_TTL;
use crate::lease::Backend;
use crate::registry::{registry, Registry, Subsystem};
use std::sync::Arc;

/// A configurable recover-and-backoff supervisor.
///
/// What it cannot catch: a panic while another panic is unwinding (a `Drop`
/// that panics during unwinding) aborts the process, by Rust's rules, before
/// any handler runs; so does any panic in a crate built with
/// `panic = "abort"`. A body that blocks in synchronous code or spins without
/// an `.await` cannot be preempted, only reported stale. Panic payloads of
/// any type are caught; those that are not `&str` or `String` are reported
/// as `Box<dyn Any>`.
///
/// [`run_with_recover`](crate::run_with_recover) is `Supervisor::new()` with its defaults: backoff
/// 1 s doubling to 30 s without jitter, a 5 s grace period on cancellation,
/// unlimited restarts, and the progress-based reset described at
/// [`reset_after`](Supervisor::reset_after).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::{Exit, Registry, Supervisor};
/// use supervised::CancellationToken;
///
/// let registry = Registry::new();
/// let supervisor = Supervisor::new()
///     .registry(&registry)
///     .initial_backoff(Duration::from_millis(100))
///     .max_backoff(Duration::from_secs(5))
///     .jitter(true)
///     .max_restarts(3, Duration::from_secs(60))
///     .tick(Duration::from_secs(1));
///
/// let mut runs = 0;
/// let exit = supervisor
///     .run(CancellationToken::new(), "flaky", |_cancel| {
///         runs += 1;
///         let ok = runs == 3;
///         async move { if ok { Ok(runs) } else { Err("not yet") } }
///     })
///     .await;
/// assert!(matches!(exit, Exit::Completed(Ok(3))));
/// assert_eq!(registry.subsystem("flaky").status().restarts, 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub(crate) policy: Policy,
    tick: Option<Duration>,
    stale_after: Option<Duration>,
    registry: Option<Registry>,
    /// Set by `#[supervised]` without `tick`: say once that the loop can
    /// never be reported stale.
    undeclared_tick: bool,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with the defaults (see the type's docs).
    ///
    /// `new` and the setters are `const fn` (all but
    /// [`multiplier`](Supervisor::multiplier), which validates its argument,
    /// and [`registry`](Supervisor::registry)), so a configured supervisor
    /// can be a `static`; the `#[supervised]` expansion keeps one per fn.
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervised::Supervisor;
    ///
    /// static SCHEDULER: Supervisor = Supervisor::new()
    ///     .tick(Duration::from_secs(60))
    ///     .max_restarts(5, Duration::from_secs(600));
    /// assert_eq!(SCHEDULER.register("doc-static").status().tick, Some(Duration::from_secs(60)));
    /// ```
    pub const fn new() -> Self {
        Supervisor {
            policy: Policy::DEFAULT,
            tick: None,
            stale_after: None,
            registry: None,
            undeclared_tick: false,
        }
    }

    /// The first restart delay (default 1 s).
    pub const fn initial_backoff(mut self, initial: Duration) -> Self {
        self.policy.backoff.initial = initial;
        self
    }

    /// The cap on the restart delay (default 30 s). If it is below the
    /// initial delay, the initial delay is used for every restart.
    pub const fn max_backoff(mut self, max: Duration) -> Self {
        self.policy.backoff.max = max;
        self
    }

    /// The growth factor between consecutive delays (default 2).
    ///
    /// # Panics
    /// If `multiplier` is below 1.0 or not finite.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.policy.backoff = self.policy.backoff.multiplier(multiplier);
        self
    }

    /// Randomizes each delay (default off); see [`Backoff`] for the range.
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.policy.backoff.jitter = jitter;
        self
    }

    /// Replaces the whole backoff policy.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// How long a running body gets to return by itself after cancellation
    /// before its future is dropped (default 5 s): the same idea, and the
    /// same word, as a group child's [`Child::stop_timeout`](crate::Child::stop_timeout).
    pub const fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.policy.stop_timeout = timeout;
        self
    }

    /// The old name of [`stop_timeout`](Supervisor::stop_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `stop_timeout`, as `Child::stop_timeout`"
    )]
    pub const fn grace(self, grace: Duration) -> Self {
        self.stop_timeout(grace)
    }

    /// Restart intensity: at most `max_restarts` restarts within any window
    /// of `within`. The failure that would need one more gives up: state
    /// [`SubsystemState::Failed`](crate::SubsystemState::Failed), an ERROR event, and [`Exit::GaveUp`](crate::Exit::GaveUp). Default:
    /// unlimited. `max_restarts = 0` gives up on the
    /// first failure.
    pub const fn max_restarts(mut self, max_restarts: u32, within: Duration) -> Self {
        self.policy.intensity = Some((max_restarts, within));
        self
    }

    /// The progress rule that resets the backoff to its initial value.
    ///
    /// A run that fails after showing progress restarts after the initial
    /// delay, and its failure count starts again at one. Progress is measured
    /// since the run's start, not as uptime alone: at least `beats` completed
    /// iterations (heartbeats) *and* at least `running` of running time. A
    /// subsystem that has never beaten at all needs only the running time.
    /// Default: 3 beats and `max_backoff` of running, so a loop that
    /// "connects" and then fails on its first real piece of work keeps
    /// backing off instead of hammering its dependency every second.
    pub const fn reset_after(mut self, beats: u64, running: Duration) -> Self {
        self.policy.reset_beats = beats;
        self.policy.reset_running = Some(running);
        self
    }

    /// The expected interval between beats, registered when the run starts so
    /// a subsystem that has not beaten yet is already listed with it.
    pub const fn tick(mut self, tick: Duration) -> Self {
        self.tick = Some(tick);
        self
    }

    /// How long without a beat makes the subsystem stale (default twice the
    /// tick). Has an effect only with a tick.
    pub const fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = Some(stale_after);
        self
    }

    /// What to do when a running body stops beating (default: only report).
    ///
    /// With `true`, a body that declares a tick and goes `stale_after`
    /// without a beat (counted from its last beat or, after a restart, from
    /// the run's start) is treated as failed: its future is dropped, the
    /// stall is logged at ERROR, and it restarts with backoff like any other
    /// failure. A body blocked in synchronous code or spinning without an
    /// `.await` cannot be preempted: it is dropped only when it next yields.
    /// The [`StallWatchdog`](crate::StallWatchdog) still reports it as stalled.
    ///
    /// For iterations that are long but healthy, call [`crate::beat`]
    /// mid-iteration or raise `stale_after` (it doubles as the longest
    /// iteration the subsystem may take).
    pub const fn restart_on_stall(mut self, restart: bool) -> Self {
        self.policy.restart_on_stall = restart;
        self
    }

    /// Gates every run on the lease `name`, so that of several replicas of
    /// a service only one runs the body at a time (see [`crate::lease`]).
    ///
    /// Before each run the supervisor acquires the lease; while another
    /// replica holds it the subsystem is in
    /// [`SubsystemState::Standby`](crate::SubsystemState::Standby)
    /// (healthy, never stale, ready) and asks again every ttl/3. While the
    /// body runs, the supervisor renews the lease every ttl/3. If the lease
    /// is lost, the body's token is cancelled and the body is dropped at
    /// most `ttl - ttl/5` after the last confirmed renewal, then the
    /// subsystem is back in standby. When the body ends for any reason the
    /// lease is released at once, so a standby replica takes over within
    /// ttl/3; a failed body's backoff is then waited out without the lease.
    ///
    /// A leader that goes stale (with a [`tick`](Supervisor::tick), silent
    /// past its `stale_after`) is reported stale while it keeps its lease
    /// for one more ttl, then gives the lease up at its next renewal: its
    /// body is cancelled and dropped as after a loss, the lease released,
    /// a restart and a last error recorded, and it asks again only one
    /// acquire interval later, so a replica that can make progress takes
    /// over. Without a tick a leader is never stale and keeps its lease
    /// while it runs.
    ///
    /// The token a lease-gated body gets is a child of the supervision's,
    /// cancelled also when the lease is lost. The body's future is made
    /// before the lease is acquired but not polled until it is held.
    ///
    /// ```
    /// use supervised::Supervisor;
    /// static SCHEDULER: Supervisor = Supervisor::new().lease("scheduler");
    /// # let _ = &SCHEDULER;
    /// ```
    pub const fn lease(mut self, name: &'static str) -> Self {
        self.policy.lease_static = Some(name);
        self
    }

    /// [`lease`](Supervisor::lease) with a name made at run time (such as a
    /// per-tenant lease).
    ///
    /// ```
    /// let tenant = "acme";
    /// let supervisor = supervised::Supervisor::new().lease_named(format!("billing-{tenant}"));
    /// # let _ = supervisor;
    /// ```
    pub fn lease_named(mut self, name: impl Into<String>) -> Self {
        self.policy.lease_owned = Some(Arc::from(name.into()));
        self
    }

    /// How long each grant of the lease lives without a renewal (default
    /// 15 s). Renewals are due every ttl/3; a lost lease's body is gone
    /// by `ttl - ttl/5`. Has an effect only with a lease.
    ///
    /// # Panics
    /// If `ttl` is under 50 ms (in a `static`, at compile time).
    pub const fn lease_ttl(mut self, ttl: Duration) -> Self {
        assert!(
            ttl.as_nanos() >= MIN_TTL.as_nanos(),
            "a lease ttl must be at least 50 ms"
        );
        self.policy.lease_ttl = ttl;
        self
    }

    /// Acquires the lease from `backend` instead of the process-wide one
    /// ([`lease::install`](crate::lease::install)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use supervised::{lease::Memory, Supervisor};
    /// let supervisor = Supervisor::new()
    ///     .lease("scheduler")
    ///     .lease_backend(Arc::new(Memory::new("replica-a")));
    /// # let _ = supervisor;
    /// ```
    pub fn lease_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.policy.lease_backend = Some(BackendRef(backend));
        self
    }

    /// Hands every failure up unlogged: the run ends with it (see
    /// [`Supervision::take_escalated`](crate::Supervision)), for a group to
    /// judge.
    pub(crate) fn escalating(mut self) -> Self {
        self.policy.escalate = true;
        self
    }

    /// Reports into `registry` instead of the process-wide one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The registry this supervisor reports into.
    pub fn registry_ref(&self) -> &Registry {
        self.registry.as_ref().unwrap_or_else(|| registry())
    }

    /// Marks a supervisor that `#[supervised]` was given no `tick` for: the
    /// first registration of each subsystem under it logs one WARN that the
    /// loop can never be reported stale. Not a public API: the expansion's.
    #[doc(hidden)]
    pub const fn undeclared_tick(mut self) -> Self {
        self.undeclared_tick = true;
        self
    }

    /// Registers `name` (with the tick, if one was set) and returns its handle.
    ///
    /// Any string is a valid name, the empty one included (it is logged
    /// with a WARN: it makes logs and reports hard to read).
    ///
    /// Called while a [`Group`](crate::Group) runs a child, the first
    /// registration of that child (its outermost supervised fn) gets the
    /// child's entry instead: the child's name, in the group's registry.
    /// Supervised fns it calls in turn register their own names.
    pub fn register(&self, name: &str) -> Subsystem {
        if name.is_empty() {
            tracing::warn!(target: "supervised", "a supervised subsystem is registered with an empty name");
        }
        // Run as a group's child, the outermost supervised fn takes the
        // child's entry (its name, in the group's registry).
        let sub = super::handoff::claim().unwrap_or_else(|| self.registry_ref().subsystem(name));
        if self.undeclared_tick && self.tick.is_none() && sub.first_undeclared_tick() {
            tracing::warn!(
                target: "supervised", subsystem = %sub.name(),
                "supervised loop declares no tick, so it can never be reported stale: give it `#[supervised(tick = \"60s\")]` (about one iteration's period), or `tick = \"none\"` for a loop that waits on events"
            );
        }
        if self.tick.is_some() {
            sub.declare_tick(self.tick, self.stale_after);
        }
        sub
    }
}
