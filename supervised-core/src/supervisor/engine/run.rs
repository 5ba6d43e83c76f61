//! One run's state, and the body's poll and drop inside the run's span,
//! with its subsystem current and its panics caught: what every poll of a
//! running body goes through.

use std::task::{Context, Poll};
use std::time::Duration;

use super::Phase;
use crate::registry::{current, Subsystem};
use crate::supervisor::failure::CaughtPanic;
use crate::supervisor::panic;
use crate::supervisor::report;
use crate::supervisor::supervision::RunBody;
use crate::supervisor::watch::Timer;

/// How a body's run ended, before it is judged.
pub(super) enum BodyEnd {
    /// Returned, with its failure message (`None` for success).
    Returned(Option<String>),
    Panicked(Box<CaughtPanic>),
    Stalled(Duration),
}

/// One run's state (one [`Supervision::run_once`] call).
pub(in crate::supervisor) struct RunState {
    pub(super) phase: Phase,
    /// The `supervised` span of this run, if a subscriber wants it. Boxed:
    /// a span is 40 bytes and most idle loops never need one.
    pub(super) span: Option<Box<tracing::Span>>,
    /// This run's handle, moved into the thread-local current subsystem
    /// while the body is polled.
    pub(super) handle: Option<Subsystem>,
    /// The stall timer while running, then the stop timeout or the backoff.
    pub(super) timer: Option<Timer>,
}

impl RunState {
    pub(in crate::supervisor) fn new() -> Self {
        RunState {
            phase: Phase::Start,
            span: None,
            handle: None,
            timer: None,
        }
    }

    /// Polls the body once inside the run's span, with its subsystem
    /// current and its panics caught. Generic, so the attribute's hot path
    /// calls its body's poll directly rather than through a vtable.
    #[inline]
    pub(super) fn poll_body<B: RunBody + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut B,
    ) -> Poll<BodyEnd> {
        let _entered = self.span.as_deref().map(tracing::Span::enter);
        let previous = current::swap_in(&mut self.handle);
        // Never unwinds, so `leave` always runs.
        let polled = match panic::catch_in_body(|| body.poll_body(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            // Judging the output runs the app's code too (a
            // `RunOutcome::failure`, an error's `Display`): a panic in it is
            // the body's, caught here, with the subsystem still current.
            Ok(Poll::Ready(())) => Poll::Ready(match panic::catch_in_body(|| body.failure()) {
                Ok(failure) => BodyEnd::Returned(failure),
                Err(panic) => BodyEnd::Panicked(panic),
            }),
            Err(panic) => Poll::Ready(BodyEnd::Panicked(panic)),
        };
        current::leave(&mut self.handle, previous);
        polled
    }

    /// Drops the body's future inside the run's span, with its subsystem
    /// current, and what only a running body needs. A panic in the body's
    /// `Drop` is caught and logged: it must not take the supervisor down.
    pub(super) fn drop_body(&mut self, body: &mut dyn RunBody, sub: &Subsystem) {
        let dropped = {
            let _entered = self.span.as_deref().map(tracing::Span::enter);
            let previous = current::swap_in(&mut self.handle);
            // Never unwinds, so `leave` always runs.
            let dropped = panic::catch_in_body(|| body.drop_body());
            current::leave(&mut self.handle, previous);
            dropped
        };
        if let Err(panic) = dropped {
            report::drop_panicked(sub, &panic);
        }
        self.handle = None;
        self.timer = None;
    }
}
