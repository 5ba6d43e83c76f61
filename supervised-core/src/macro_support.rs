//! Items the `#[supervised]` expansion names through
//! `::supervised::__private`, the one path the facade re-exports them
//! under. Not a public API: no semver guarantees (the facade pins this
//! crate's exact version).

use std::future::Future;

pub use crate::{CancellationToken, Cancelled, Step, Subsystem, Supervision, Supervisor};
pub use core::time::Duration;

use crate::supervisor::{Exit, Failure};

/// Pins the output type of a body's async block to the fn's return type, so
/// `return` and `?` inside it infer as they would in the fn itself.
#[inline]
pub fn body<R, F: Future<Output = R>>(f: F) -> F {
    f
}

/// Restart intensity exceeded after a stall: there is no value or payload
/// to re-raise, so the stall itself is escalated as a panic in the caller.
fn escalate_stall(silent: Duration) -> ! {
    std::panic::panic_any(format!(
        "supervised subsystem gave up after stalling: no heartbeat for {silent:?}"
    ))
}

/// The value of a supervised fn returning `()`.
pub fn finish_unit(exit: Exit<()>) {
    match exit {
        // Restart intensity exceeded: escalate the last panic to the caller.
        Exit::GaveUp(Failure::Panicked(payload)) => std::panic::resume_unwind(payload),
        Exit::GaveUp(Failure::Stalled(silent)) => escalate_stall(silent),
        _ => {}
    }
}

/// The value of a supervised fn returning `Result` that watches a
/// `CancellationToken`: cancellation without a value becomes `Err(Cancelled)`.
pub fn finish_result<T, E: From<Cancelled>>(exit: Exit<Result<T, E>>) -> Result<T, E> {
    match exit {
        Exit::Completed(output) => output,
        Exit::GaveUp(Failure::Returned(output)) => output,
        Exit::GaveUp(Failure::Panicked(payload)) => std::panic::resume_unwind(payload),
        Exit::GaveUp(Failure::Stalled(silent)) => escalate_stall(silent),
        Exit::Cancelled {
            last_failure: Some(output),
        } => output,
        Exit::Cancelled { last_failure: None } => Err(E::from(Cancelled)),
    }
}

/// The value of a supervised fn returning `Result` without a
/// `CancellationToken`: its private token is never cancelled, so every exit
/// carries a value.
pub fn finish_result_uncancellable<T, E>(exit: Exit<Result<T, E>>) -> Result<T, E> {
    match exit {
        Exit::Completed(output)
        | Exit::GaveUp(Failure::Returned(output))
        | Exit::Cancelled {
            last_failure: Some(output),
        } => output,
        Exit::GaveUp(Failure::Panicked(payload)) => std::panic::resume_unwind(payload),
        Exit::GaveUp(Failure::Stalled(silent)) => escalate_stall(silent),
        Exit::Cancelled { last_failure: None } => {
            unreachable!("a supervised fn without a CancellationToken argument is never cancelled")
        }
    }
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
