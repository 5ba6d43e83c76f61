//! Items the `#[supervised]` expansion names through
//! `::supervised::__private`, the one path the facade re-exports them
//! under. Not a public API: no semver guarantees (the facade pins this
//! crate's exact version).

use std::fmt;
use std::future::Future;

pub use crate::{CancellationToken, Cancelled, Step, Subsystem, Supervision, Supervisor};
pub use core::time::Duration;

use crate::supervisor::{Exit, Failure, RunOutcome};
use crate::text::{debugged, displayed};

/// Pins the output type of a body's async block to the fn's return type, so
/// `return` and `?` inside it infer as they would in the fn itself.
#[inline]
pub fn body<R, F: Future<Output = R>>(f: F) -> F {
    f
}

/// Restart intensity exceeded after a stall: there is no value or payload
/// to re-raise, so the stall itself is escalated as a panic in the caller.
pub fn escalate_stall(silent: Duration) -> ! {
    std::panic::panic_any(format!(
        "supervised subsystem gave up after stalling: no heartbeat for {silent:?}"
    ))
}

/// The head of an outermost loop of a `#[supervised]` body: every pass but
/// the first is the end of an iteration, however the iteration ended (the
/// end of the body, or a `continue` from anywhere, macros included), so it
/// beats. `break`, `return`, `?` and panics never come back to the head.
#[derive(Default)]
pub struct LoopHead {
    entered: bool,
}

impl LoopHead {
    /// Called at the top of `loop`'s body and before a `while` condition
    /// is evaluated.
    #[inline(always)]
    pub fn pass(&mut self, sub: &Subsystem) {
        if self.entered {
            sub.beat();
        } else {
            self.entered = true;
        }
    }
}

/// `for`'s iterator, beating at every `next` but the first: a `for` loop
/// comes back to `next` after each iteration, the last one included (the
/// call that finds the iterator exhausted), and never after a `break`.
pub fn beating<I: IntoIterator>(iter: I, sub: &Subsystem) -> Beating<'_, I::IntoIter> {
    Beating {
        iter: iter.into_iter(),
        sub,
        head: LoopHead::default(),
    }
}

/// See [`beating`].
pub struct Beating<'a, I> {
    iter: I,
    sub: &'a Subsystem,
    head: LoopHead,
}

impl<I: Iterator> Iterator for Beating<'_, I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.head.pass(self.sub);
        self.iter.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

// ---- return types, judged by the type checker --------------------------------

/// A run's output with its failure text, worked out where the output's
/// type is concrete (the `describe` given to `Supervision::run_judged`),
/// so the engine needs no bound on it.
pub struct Judged<R> {
    /// The run's output.
    pub output: R,
    failure: Option<String>,
}

impl<R> Judged<R> {
    pub(crate) fn new(output: R, failure: Option<String>) -> Self {
        Judged { output, failure }
    }
}

impl<R> RunOutcome for Judged<R> {
    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

/// An error's text by its `Display`: bounded, and a placeholder naming the
/// panic if that `Display` panics. The facade's `Describe` picks this or
/// [`debug_text`].
pub fn display_text(error: &dyn fmt::Display) -> String {
    displayed(error)
}

/// [`display_text`] by `Debug`, for error types without `Display`.
pub fn debug_text(error: &dyn fmt::Debug) -> String {
    debugged(error)
}

/// [`Exit`] of a judged run, back to the run's own output.
pub fn unjudged<R>(exit: Exit<Judged<R>>) -> Exit<R> {
    match exit {
        Exit::Completed(judged) => Exit::Completed(judged.output),
        Exit::Cancelled { last_failure } => Exit::Cancelled {
            last_failure: last_failure.map(|judged| judged.output),
        },
        Exit::GaveUp(Failure::Returned(judged)) => Exit::GaveUp(Failure::Returned(judged.output)),
        Exit::GaveUp(Failure::Panicked(payload)) => Exit::GaveUp(Failure::Panicked(payload)),
        Exit::GaveUp(Failure::Stalled(silent)) => Exit::GaveUp(Failure::Stalled(silent)),
    }
}
