//! The recover-and-backoff supervisor.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::current;
use crate::panic_capture::{self, CaughtPanic};
use crate::policy::{ResetRule, RestartWindow};
use crate::race::{race, Raced};
use crate::registry::{registry, FailureRecord, LastPanic, Registry, State, Subsystem};

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
    backoff: Backoff,
    grace: Duration,
    intensity: Option<(u32, Duration)>,
    reset_beats: u64,
    reset_running: Option<Duration>,
    tick: Option<Duration>,
    stale_after: Option<Duration>,
    restart_on_stall: bool,
    registry: Option<Registry>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with the seed's defaults (see the type's docs).
    pub fn new() -> Self {
        Supervisor {
            backoff: Backoff::default(),
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
    pub fn initial_backoff(mut self, initial: Duration) -> Self {
        self.backoff.initial = initial;
        self
    }

    /// The cap on the restart delay (default 30 s). If it is below the
    /// initial delay, the initial delay is used for every restart.
    pub fn max_backoff(mut self, max: Duration) -> Self {
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
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// Replaces the whole backoff policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a running body gets to return by itself after cancellation
    /// before its future is dropped (default 5 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Restart intensity: at most `max_restarts` restarts within any window
    /// of `within`. The failure that would need one more gives up: state
    /// [`State::Failed`], an ERROR event, and [`Exit::GaveUp`]. Default:
    /// unlimited (the seed's behaviour). `max_restarts = 0` gives up on the
    /// first failure.
    pub fn max_restarts(mut self, max_restarts: u32, within: Duration) -> Self {
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
    pub fn reset_after(mut self, beats: u64, running: Duration) -> Self {
        self.reset_beats = beats;
        self.reset_running = Some(running);
        self
    }

    /// The expected interval between beats, registered when the run starts so
    /// a subsystem that has not beaten yet is already listed with it.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = Some(tick);
        self
    }

    /// How long without a beat makes the subsystem stale (default twice the
    /// tick). Has an effect only with a tick.
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
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
    pub fn restart_on_stall(mut self, restart: bool) -> Self {
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
            tracing::warn!("a supervised subsystem is registered with an empty name");
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
            let body = f(supervision.cancel.clone());
            if let Step::Exit(exit) = supervision.run_once(body).await {
                return exit;
            }
        }
    }
}

/// What to do after one supervised run: see [`Supervision::run_once`].
#[derive(Debug)]
#[must_use = "a `Step::Exit` carries the supervisor's result"]
pub enum Step<O> {
    /// The run failed and its backoff has passed: build the next body and run it.
    Restart,
    /// Supervision is over.
    Exit(Exit<O>),
}

/// One supervision in progress, driven one run at a time.
///
/// [`Supervisor::run`] takes a closure that builds each run's body, which
/// cannot lend the body a fresh `&mut` borrow per run. `Supervision` turns
/// the loop inside out so the caller builds each body in its own scope; the
/// `#[supervised]` attribute expands to this.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use supervised_core::{Exit, Registry, Step, Supervision, Supervisor};
/// use tokio_util::sync::CancellationToken;
///
/// let registry = Registry::new();
/// let supervisor = Supervisor::new().registry(&registry);
/// let subsystem = supervisor.register("inside-out");
/// let mut attempts = Vec::new();
/// let mut supervision = Supervision::new(&supervisor, &subsystem, CancellationToken::new());
/// let exit = loop {
///     let log = &mut attempts; // a fresh reborrow for each run
///     let body = async move {
///         log.push(log.len());
///         if log.len() < 3 { Err("again") } else { Ok(log.len()) }
///     };
///     match supervision.run_once(body).await {
///         Step::Restart => continue,
///         Step::Exit(exit) => break exit,
///     }
/// };
/// assert!(matches!(exit, Exit::Completed(Ok(3))));
/// assert_eq!(attempts, [0, 1, 2]);
/// # }
/// ```
#[derive(Debug)]
pub struct Supervision<'a, O> {
    supervisor: &'a Supervisor,
    sub: Subsystem,
    cancel: CancellationToken,
    reset: ResetRule,
    window: Option<RestartWindow>,
    consecutive_failures: u32,
    last_failure: Option<O>,
    generation: u64,
    /// Failures since the last run that completed an iteration: the first
    /// of such a storm is logged in full, the rest as one-line summaries.
    storm: u32,
}

impl<O> Drop for Supervision<'_, O> {
    fn drop(&mut self) {
        self.sub.leave_supervisor();
    }
}

impl<'a, O: RunOutcome> Supervision<'a, O> {
    /// Starts supervising `sub` under `supervisor`'s policy, stopped by `cancel`.
    ///
    /// Supervising one subsystem from two places at once merges their beats
    /// and states into one report; it works, but is logged with a WARN.
    pub fn new(supervisor: &'a Supervisor, sub: &Subsystem, cancel: CancellationToken) -> Self {
        let already = sub.enter_supervisor();
        if already > 0 {
            tracing::warn!(
                subsystem = %sub.name(),
                supervisors = already + 1,
                "subsystem is supervised more than once at the same time; their beats, restarts and states are merged"
            );
        }
        Supervision {
            supervisor,
            sub: sub.clone(),
            cancel,
            reset: ResetRule {
                beats: supervisor.reset_beats,
                running: supervisor.reset_running.unwrap_or(supervisor.backoff.max()),
            },
            window: supervisor
                .intensity
                .map(|(max, within)| RestartWindow::new(max, within)),
            consecutive_failures: 0,
            last_failure: None,
            generation: 0,
            storm: 0,
        }
    }

    /// Runs one body to its end and, if it failed, logs the failure and waits
    /// out the backoff. Returns [`Step::Restart`] when the caller should run
    /// a fresh body, [`Step::Exit`] when supervision is over. A body passed
    /// after cancellation is dropped unpolled.
    pub fn run_once<'s, Fut>(
        &'s mut self,
        body: Fut,
    ) -> impl Future<Output = Step<O>> + use<'a, 's, O, Fut>
    where
        Fut: Future<Output = O> + 's,
        O: 's,
    {
        // Boxed before the state machine exists, so a supervised fn's future
        // holds a pointer to its body rather than a second copy of it.
        self.run_boxed(Box::pin(body))
    }

    async fn run_boxed<Fut>(&mut self, body: Pin<Box<Fut>>) -> Step<O>
    where
        Fut: Future<Output = O>,
    {
        let sub = &self.sub;
        let name = sub.name();
        let cancel = &self.cancel;
        if cancel.is_cancelled() {
            return Step::Exit(stop_cancelled(
                sub,
                "cancelled before restart",
                self.last_failure.take(),
            ));
        }
        let started = Instant::now();
        let beats_at_start = sub.beats();
        sub.start_run(started, self.reset);
        let generation = self.generation;
        self.generation += 1;

        let span = tracing::info_span!("supervised", subsystem = %name, generation);
        let body = current::scope(sub.clone(), panic_capture::catch(body));
        // Boxed so it can be dropped before the backoff (a stalled body must
        // not linger); one allocation per run, none per beat.
        let mut body = Box::pin(body.instrument(span));

        // Timers and cancellation futures that are not always armed live on
        // the heap, so an idle supervised subsystem's future stays small
        // (each inline `Sleep` is over 100 bytes).
        let stall_timer: Option<Pin<Box<dyn Future<Output = Duration> + Send + '_>>> =
            if self.supervisor.restart_on_stall {
                Some(Box::pin(stalled(sub, started)))
            } else {
                None
            };
        let stall_watch = async move {
            match stall_timer {
                Some(timer) => timer.await,
                None => std::future::pending().await,
            }
        };
        let watcher = async {
            tokio::select! {
                biased;
                () = cancel.cancelled() => Ended::Cancelled,
                silent = stall_watch => Ended::Stalled(silent),
            }
        };
        let finished = match race(body.as_mut(), std::pin::pin!(watcher)).await {
            Raced::Body(result) => Ended::Finished(result),
            Raced::Watcher(ended) => ended,
        };
        let grace = self.supervisor.grace;
        let result = match finished {
            Ended::Finished(result) => Ok(result),
            Ended::Stalled(silent) => Err(silent),
            Ended::Cancelled => match Box::pin(tokio::time::timeout(grace, &mut body)).await {
                Ok(result) => Ok(result),
                Err(_elapsed) => {
                    tracing::warn!(
                        subsystem = %name,
                        grace = ?grace,
                        "supervised body did not return within the grace period after cancellation; dropping it"
                    );
                    return Step::Exit(stop_cancelled(sub, "dropped after grace period", None));
                }
            },
        };

        // The body's future ends here: a stalled one is dropped before the backoff.
        drop(body);
        let failure = match result {
            Err(silent) => Caught::Stall(silent),
            Ok(Err(panic)) => Caught::Panic(panic),
            Ok(Ok(output)) => match output.failure() {
                None => {
                    sub.set_state(State::Stopped);
                    tracing::info!(subsystem = %name, "supervised body returned; not restarting");
                    return Step::Exit(Exit::Completed(output));
                }
                Some(message) => Caught::Error { message, output },
            },
        };

        if cancel.is_cancelled() {
            return Step::Exit(stop_cancelled(
                sub,
                "failed after cancellation",
                failure.into_output(),
            ));
        }

        let now = Instant::now();
        let beats_in_run = sub.beats().saturating_sub(beats_at_start);
        if beats_in_run > 0 {
            self.storm = 0;
        }
        self.storm = self.storm.saturating_add(1);
        if self.reset.progressed(
            now.saturating_duration_since(started),
            beats_in_run,
            sub.beats(),
        ) {
            self.consecutive_failures = 0;
            sub.reset_failures();
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let failures = self.consecutive_failures;

        if let (Some(window), Some((_, within))) = (&mut self.window, self.supervisor.intensity) {
            if !window.admit(now) {
                return Step::Exit(give_up(sub, failures, failure, window.len(), within));
            }
        }

        let delay = self.supervisor.backoff.delay(failures);
        let next_restart_at = now + delay;
        let record = failure.log(name, sub.restarts() + 1, failures, self.storm, delay, now);
        sub.record_restart(failures, next_restart_at, record);
        self.last_failure = failure.into_output();

        let backoff = Box::pin(async move {
            if delay.is_zero() {
                // A zero backoff restarts at once (the timer would round it
                // up to its 1 ms tick), yielding once so a crash loop still
                // lets other tasks run.
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep_until(next_restart_at).await;
            }
        });
        tokio::select! {
            biased;
            () = Box::pin(cancel.cancelled()) => {
                Step::Exit(stop_cancelled(sub, "cancelled during backoff", self.last_failure.take()))
            }
            () = backoff => {
                tracing::debug!(subsystem = %name, generation = generation + 1, "restarting supervised body");
                Step::Restart
            }
        }
    }
}

/// A failure caught in one run, before it is logged.
enum Caught<O> {
    Panic(CaughtPanic),
    Error {
        message: String,
        output: O,
    },
    /// No beat for this long: the body was dropped (`restart_on_stall`).
    Stall(Duration),
}

/// How the race between a run, cancellation and the stall watch ended.
enum Ended<T> {
    Finished(T),
    Cancelled,
    Stalled(Duration),
}

/// Resolves when `sub` has gone its `stale_after` without a beat, counting
/// from the later of its last beat and `started`; never without a tick.
async fn stalled(sub: &Subsystem, started: Instant) -> Duration {
    loop {
        let Some(limit) = sub.stale_limit() else {
            return std::future::pending().await;
        };
        let reference = sub.last_tick().map_or(started, |t| t.max(started));
        tokio::time::sleep_until(reference + limit).await;
        if sub.last_tick().map_or(started, |t| t.max(started)) == reference {
            return limit;
        }
    }
}

impl<O> Caught<O> {
    /// The failing output, kept to be returned if the supervisor stops
    /// without a later value; a panic leaves nothing to return.
    fn into_output(self) -> Option<O> {
        match self {
            Caught::Panic(_) | Caught::Stall(_) => None,
            Caught::Error { output, .. } => Some(output),
        }
    }

    /// Logs the failure as one structured ERROR event and returns what the
    /// registry keeps of it.
    ///
    /// A storm (consecutive failures without a completed iteration) logs the
    /// full backtrace for its first panic only; later panics of the same
    /// storm log a one-line summary with the running count in `storm`.
    fn log(
        &self,
        name: &str,
        restart: u64,
        failures: u32,
        storm: u32,
        delay: Duration,
        now: Instant,
    ) -> FailureRecord {
        match self {
            Caught::Panic(panic) => {
                let first = storm <= 1;
                // Rendered only if a subscriber takes the event: resolving
                // symbols is the expensive part of a backtrace.
                let backtrace = LazyBacktrace {
                    backtrace: panic.backtrace.as_ref().filter(|_| first),
                    storm,
                };
                tracing::error!(
                    subsystem = %name,
                    kind = "panic",
                    panic_message = %panic.message,
                    location = panic.location.as_deref().unwrap_or("<unknown>"),
                    restart,
                    consecutive_failures = failures,
                    storm,
                    next_backoff = ?delay,
                    backtrace = %backtrace,
                    "{}",
                    if first {
                        "supervised body panicked; restarting after backoff"
                    } else {
                        "supervised body panicked again before completing an iteration; restarting after backoff"
                    }
                );
                FailureRecord::Panic(last_panic_of(panic, now))
            }
            Caught::Error { message, .. } => {
                tracing::error!(
                    subsystem = %name,
                    kind = "error",
                    error = %message,
                    restart,
                    consecutive_failures = failures,
                    storm,
                    next_backoff = ?delay,
                    "supervised body returned an error; restarting after backoff"
                );
                FailureRecord::Error(message.clone())
            }
            Caught::Stall(silent) => {
                let message = stall_message(*silent);
                tracing::error!(
                    subsystem = %name,
                    kind = "stall",
                    silent_for = ?silent,
                    restart,
                    consecutive_failures = failures,
                    storm,
                    next_backoff = ?delay,
                    "supervised body stalled; dropped it, restarting after backoff"
                );
                FailureRecord::Error(message)
            }
        }
    }
}

/// The backtrace of a storm's first panic; a one-line note for the rest.
struct LazyBacktrace<'a> {
    backtrace: Option<&'a std::backtrace::Backtrace>,
    storm: u32,
}

impl fmt::Display for LazyBacktrace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backtrace {
            Some(backtrace) => backtrace.fmt(f),
            None if self.storm > 1 => write!(
                f,
                "<omitted: failure {} of a storm; its first panic carries the backtrace>",
                self.storm
            ),
            None => f.write_str("<not captured>"),
        }
    }
}

fn stall_message(silent: Duration) -> String {
    format!("stalled: no heartbeat for {silent:?}")
}

fn give_up<O>(
    sub: &Subsystem,
    consecutive_failures: u32,
    failure: Caught<O>,
    restarts: usize,
    within: Duration,
) -> Exit<O> {
    let now = Instant::now();
    let (message, record, exit) = match failure {
        Caught::Error { message, output } => (
            message.clone(),
            FailureRecord::Error(message),
            Failure::Returned(output),
        ),
        Caught::Panic(panic) => (
            panic.message.clone(),
            FailureRecord::Panic(last_panic_of(&panic, now)),
            Failure::Panicked(panic.payload),
        ),
        Caught::Stall(silent) => (
            stall_message(silent),
            FailureRecord::Error(stall_message(silent)),
            Failure::Stalled(silent),
        ),
    };
    sub.record_failure(consecutive_failures, record);
    sub.set_state(State::Failed);
    tracing::error!(
        subsystem = %sub.name(),
        last_failure = %message,
        restarts,
        within = ?within,
        "supervised body exceeded its restart intensity; giving up"
    );
    Exit::GaveUp(exit)
}

fn last_panic_of(panic: &CaughtPanic, at: Instant) -> LastPanic {
    LastPanic {
        message: panic.message.clone(),
        location: panic.location.clone(),
        at,
    }
}

fn stop_cancelled<O>(sub: &Subsystem, why: &'static str, last_failure: Option<O>) -> Exit<O> {
    sub.set_state(State::Stopped);
    tracing::info!(subsystem = %sub.name(), reason = why, "supervised body stopped by cancellation");
    Exit::Cancelled { last_failure }
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
