//! The recover-and-backoff supervisor.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::registry::{registry, Registry, Subsystem};
use crate::supervision::{Step, Supervision};

/// How a body's return value tells success from failure.
///
/// `()` always succeeds. `Result<T, E>` fails with `Err`, and `E`'s `Display`
/// is what the log line and the snapshot show (as `#[instrument(err)]` does).
///
/// ```
/// use supervised_core::RunOutcome;
/// assert_eq!(().failure(), None);
/// assert_eq!(Err::<(), _>("disk full").failure().as_deref(), Some("disk full"));
/// ```
pub trait RunOutcome {
    /// `None` on success, the failure's message otherwise.
    fn failure(&self) -> Option<String>;
}

impl RunOutcome for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: fmt::Display> RunOutcome for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

/// How a supervised run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit<O> {
    /// The body returned successfully; it was not restarted.
    Completed(O),
    /// Cancellation stopped the supervisor, during a backoff or after the
    /// grace period, without a successful value. `last_failure` is the body's
    /// last output if its last run returned a failure (`Err`), `None` if it
    /// panicked, was dropped, or never failed.
    Cancelled {
        /// The last failing output, if the last run returned one.
        last_failure: Option<O>,
    },
    /// Restart intensity was exceeded; the last failure, in its own form.
    GaveUp(Failure<O>),
}

/// The last failure of a body whose supervisor gave up.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<O> {
    /// The body returned a failing value (an `Err`).
    Returned(O),
    /// The body panicked; the payload can be re-raised with
    /// [`std::panic::resume_unwind`].
    Panicked(Box<dyn Any + Send>),
    /// The body went this long without a beat and was dropped
    /// ([`Supervisor::restart_on_stall`]).
    Stalled(Duration),
}

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
/// [`run_with_recover`] is `Supervisor::new()` with its defaults: backoff
/// 1 s doubling to 30 s without jitter, a 5 s grace period on cancellation,
/// unlimited restarts, and the progress-based reset described at
/// [`reset_after`](Supervisor::reset_after).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised_core::{Exit, Registry, Supervisor};
/// use tokio_util::sync::CancellationToken;
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
///     .run("flaky", CancellationToken::new(), |_cancel| {
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
    pub(crate) backoff: Backoff,
    pub(crate) grace: Duration,
    pub(crate) intensity: Option<(u32, Duration)>,
    pub(crate) reset_beats: u64,
    pub(crate) reset_running: Option<Duration>,
    tick: Option<Duration>,
    stale_after: Option<Duration>,
    pub(crate) restart_on_stall: bool,
    registry: Option<Registry>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with the seed's defaults (see the type's docs).
    ///
    /// `new` and the setters are `const fn` (all but
    /// [`multiplier`](Supervisor::multiplier), which validates its argument,
    /// and [`registry`](Supervisor::registry)), so a configured supervisor
    /// can be a `static`; the `#[supervised]` expansion keeps one per fn.
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervised_core::Supervisor;
    ///
    /// static SCHEDULER: Supervisor = Supervisor::new()
    ///     .tick(Duration::from_secs(60))
    ///     .max_restarts(5, Duration::from_secs(600));
    /// assert_eq!(SCHEDULER.register("doc-static").status().tick, Some(Duration::from_secs(60)));
    /// ```
    pub const fn new() -> Self {
        Supervisor {
            backoff: Backoff::SEED,
            grace: Duration::from_secs(5),
            intensity: None,
            reset_beats: 3,
            reset_running: None,
            tick: None,
            stale_after: None,
            restart_on_stall: false,
            registry: None,
        }
    }

    /// The first restart delay (default 1 s).
    pub const fn initial_backoff(mut self, initial: Duration) -> Self {
        self.backoff.initial = initial;
        self
    }

    /// The cap on the restart delay (default 30 s). If it is below the
    /// initial delay, the initial delay is used for every restart.
    pub const fn max_backoff(mut self, max: Duration) -> Self {
        self.backoff.max = max;
        self
    }

    /// The growth factor between consecutive delays (default 2).
    ///
    /// # Panics
    /// If `multiplier` is below 1.0 or not finite.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.backoff = self.backoff.with_multiplier(multiplier);
        self
    }

    /// Randomizes each delay (default off); see [`Backoff`] for the range.
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// Replaces the whole backoff policy.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a running body gets to return by itself after cancellation
    /// before its future is dropped (default 5 s).
    pub const fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Restart intensity: at most `max_restarts` restarts within any window
    /// of `within`. The failure that would need one more gives up: state
    /// [`State::Failed`](crate::State::Failed), an ERROR event, and [`Exit::GaveUp`]. Default:
    /// unlimited (the seed's behaviour). `max_restarts = 0` gives up on the
    /// first failure.
    pub const fn max_restarts(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Some((max_restarts, within));
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
        self.reset_beats = beats;
        self.reset_running = Some(running);
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
    /// The [`Watchdog`](crate::Watchdog) still reports it as stalled.
    ///
    /// For iterations that are long but healthy, call [`crate::beat`]
    /// mid-iteration or raise `stale_after` (it doubles as the longest
    /// iteration the subsystem may take).
    pub const fn restart_on_stall(mut self, restart: bool) -> Self {
        self.restart_on_stall = restart;
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

    /// Registers `name` (with the tick, if one was set) and returns its handle.
    ///
    /// Any string is a valid name, the empty one included (it is logged
    /// with a WARN: it makes logs and reports hard to read).
    pub fn register(&self, name: &str) -> Subsystem {
        if name.is_empty() {
            tracing::warn!(target: "supervised", "a supervised subsystem is registered with an empty name");
        }
        let sub = self.registry_ref().subsystem(name);
        if self.tick.is_some() {
            sub.declare_tick(self.tick, self.stale_after);
        }
        sub
    }

    /// Runs `f(cancel.clone())` under supervision until it completes, the
    /// supervisor gives up, or `cancel` stops it.
    ///
    /// A panic (in the first poll or at any later `.await`) or a failing
    /// output ([`RunOutcome`]) is logged at ERROR as one structured event and
    /// `f` is called again after the backoff. Cancellation stops at once
    /// during a backoff; a running body gets the grace period to return by
    /// itself, then its future is dropped. Nothing restarts after
    /// cancellation. Each run is instrumented with a `supervised` span
    /// carrying `subsystem` and `generation` (0 for the first run), and code
    /// inside it can call [`crate::beat`].
    pub async fn run<F, Fut>(
        &self,
        name: &str,
        cancel: CancellationToken,
        f: F,
    ) -> Exit<Fut::Output>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future,
        Fut::Output: RunOutcome,
    {
        let sub = self.register(name);
        self.run_registered(&sub, cancel, f).await
    }

    /// [`run`](Supervisor::run) for a subsystem registered beforehand, so
    /// the body's own code can hold the same handle.
    pub async fn run_registered<F, Fut>(
        &self,
        sub: &Subsystem,
        cancel: CancellationToken,
        mut f: F,
    ) -> Exit<Fut::Output>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future,
        Fut::Output: RunOutcome,
    {
        let mut supervision = Supervision::new(self, sub, cancel);
        loop {
            let body = f(supervision.cancel().clone());
            if let Step::Exit(exit) = supervision.run_once(body).await {
                return exit;
            }
        }
    }
}

/// Runs `f(cancel.clone())` under the default [`Supervisor`], reporting into
/// the process-wide registry as `name`.
///
/// A panic in the body is caught, logged at ERROR with the subsystem name,
/// panic message, source location, restart count, next backoff and the
/// backtrace of the panicking thread, and `f` is called again after 1 s,
/// 2 s, 4 s, … capped at 30 s. A clean return ends it without a restart.
/// Cancelling `cancel` ends it at once during a backoff; a running body gets
/// 5 s to return by itself before its future is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use supervised_core::run_with_recover;
/// use tokio_util::sync::CancellationToken;
///
/// let calls = AtomicU32::new(0);
/// run_with_recover(CancellationToken::new(), "doc-relay", |_cancel| {
///     let n = calls.fetch_add(1, Ordering::SeqCst);
///     async move {
///         if n == 0 {
///             panic!("bad tenant data");
///         }
///     }
/// })
/// .await;
/// assert_eq!(calls.load(Ordering::SeqCst), 2); // restarted once, then returned
/// # }
/// ```
pub async fn run_with_recover<F, Fut>(cancel: CancellationToken, name: &str, f: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    // Without restart intensity the default supervisor never gives up, and
    // `()` carries no value: every exit means "stopped".
    let _exit = Supervisor::new().run(name, cancel, f).await;
}
