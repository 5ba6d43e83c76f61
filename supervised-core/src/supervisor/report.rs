//! Reporting a failed run: the one structured log event per failure, what
//! the registry keeps of it, and how a supervision that ends is recorded.

use std::backtrace::BacktraceStatus;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::failure::{Caught, CaughtPanic, Failure};
use crate::registry::{FailureRecord, LastPanic, Subsystem, SubsystemState};
use crate::text::Escaped;

impl Caught {
    /// Logs the failure as one structured ERROR event and returns what the
    /// registry keeps of it.
    ///
    /// A storm (consecutive failures without a completed iteration) logs the
    /// full backtrace for its first panic only; later panics of the same
    /// storm log a one-line summary with the running count in `storm`.
    pub(crate) fn log(
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
                    target: "supervised", subsystem = %name,
                    kind = "panic",
                    panic_message = %Escaped(&panic.message),
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
            Caught::Error(message) => {
                tracing::error!(
                    target: "supervised", subsystem = %name,
                    kind = "error",
                    error = %Escaped(message),
                    restart,
                    consecutive_failures = failures,
                    storm,
                    next_backoff = ?delay,
                    "supervised body returned an error; restarting after backoff"
                );
                FailureRecord::Error(message.clone())
            }
            Caught::Stall(silent) => {
                tracing::error!(
                    target: "supervised", subsystem = %name,
                    kind = "stall",
                    silent_for = ?silent,
                    restart,
                    consecutive_failures = failures,
                    storm,
                    next_backoff = ?delay,
                    "supervised body stalled; dropped it, restarting after backoff"
                );
                FailureRecord::Error(stall_message(*silent))
            }
        }
    }
}

/// What the event says when backtraces are off (the default, as for std's
/// own panic message).
pub(crate) const BACKTRACE_DISABLED: &str =
    "<disabled: set RUST_BACKTRACE=1, or RUST_LIB_BACKTRACE=1, to capture one>";

/// The backtrace of a storm's first panic; a one-line note for the rest.
struct LazyBacktrace<'a> {
    backtrace: Option<&'a std::backtrace::Backtrace>,
    storm: u32,
}

impl fmt::Display for LazyBacktrace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backtrace {
            Some(backtrace) if backtrace.status() == BacktraceStatus::Captured => backtrace.fmt(f),
            Some(_) => f.write_str(BACKTRACE_DISABLED),
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

/// Records the last failure, marks the subsystem failed and logs that its
/// restart intensity was exceeded.
pub(crate) fn give_up(
    sub: &Subsystem,
    consecutive_failures: u32,
    failure: Caught,
    restarts: usize,
    within: Duration,
) -> Failure<()> {
    let now = Instant::now();
    let (message, record, with) = match failure {
        Caught::Error(message) => (
            message.clone(),
            FailureRecord::Error(message),
            Failure::Returned(()),
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
    sub.set_state(SubsystemState::Failed);
    tracing::error!(
        target: "supervised", subsystem = %sub.name(),
        last_failure = %Escaped(&message),
        restarts,
        within = ?within,
        "supervised body exceeded its restart intensity; giving up"
    );
    with
}

fn last_panic_of(panic: &CaughtPanic, at: Instant) -> LastPanic {
    LastPanic {
        message: panic.message.clone(),
        location: panic.location.clone(),
        at,
    }
}

/// Marks the subsystem stopped by cancellation and logs why.
pub(crate) fn stop_cancelled(sub: &Subsystem, why: &'static str) {
    sub.set_state(SubsystemState::Stopped);
    tracing::info!(target: "supervised", subsystem = %sub.name(), reason = why, "supervised body stopped by cancellation");
}

/// Logs a panic raised while a body's future was being dropped (a `Drop`
/// that panics, outside any unwinding): caught, so the supervision goes on
/// to stop or restart as it would have.
pub(crate) fn drop_panicked(sub: &Subsystem, panic: &CaughtPanic) {
    tracing::error!(
        target: "supervised",
        subsystem = %sub.name(),
        kind = "drop_panic",
        panic_message = %Escaped(&panic.message),
        location = panic.location.as_deref().unwrap_or("<unknown>"),
        "supervised body panicked while it was dropped; the panic is contained"
    );
}

/// Logs a panic raised after the supervision was cancelled (in the body's
/// cleanup on its way out): not restarted, so not judged, but reported and
/// kept as the entry's last panic.
pub(crate) fn panicked_after_cancel(sub: &Subsystem, panic: &CaughtPanic) {
    tracing::error!(
        target: "supervised",
        subsystem = %sub.name(),
        kind = "panic",
        panic_message = %Escaped(&panic.message),
        location = panic.location.as_deref().unwrap_or("<unknown>"),
        "supervised body panicked after cancellation; not restarting"
    );
    sub.note_failure(FailureRecord::Panic(LastPanic {
        message: panic.message.clone(),
        location: panic.location.clone(),
        at: Instant::now(),
    }));
}
