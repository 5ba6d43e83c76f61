//! The generic shim: [`Supervision`] drives one run at a time, and
//! [`RunOnce`] polls the body and keeps its output. Everything else is the
//! non-generic engine (`engine/`), compiled once in this crate instead of
//! once per supervised fn in the user's crate.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio_util::sync::CancellationToken;

use super::engine::{CancelledWith, Engine, RunEnd, RunState};
use super::failure::ChildFailure;
use super::{Exit, Failure, RunOutcome, Supervisor};
use crate::macro_support::Judged;
use crate::registry::Subsystem;

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
/// use supervised::{Exit, Registry, Step, Supervision, Supervisor};
/// use supervised::CancellationToken;
///
/// let registry = Registry::new();
/// let supervisor = Supervisor::new().registry(&registry);
/// let subsystem = supervisor.register("inside-out");
/// let mut attempts = Vec::new();
/// let mut supervision = Supervision::new(&supervisor, CancellationToken::new(), &subsystem);
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
pub struct Supervision<'a, O> {
    engine: Engine<'a>,
    /// The last run's failing output, returned if cancellation stops the
    /// supervision before another run produces one.
    last_failure: Option<O>,
}

impl<O> fmt::Debug for Supervision<'_, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervision")
            .field("subsystem", &self.engine.sub.name())
            .field("generation", &self.engine.generation)
            .field("consecutive_failures", &self.engine.consecutive_failures)
            .finish_non_exhaustive()
    }
}

impl<'a, O: RunOutcome> Supervision<'a, O> {
    /// Starts supervising `sub` under `supervisor`'s policy, stopped by
    /// `cancel`. The arguments come in the order of
    /// [`Supervisor::run`]: what stops it, then what it supervises.
    ///
    /// Supervising one subsystem from two places at once merges their beats
    /// and states into one report; it works, but is logged with a WARN.
    pub fn new(supervisor: &'a Supervisor, cancel: CancellationToken, sub: &Subsystem) -> Self {
        Supervision {
            engine: Engine::new(&supervisor.policy, sub, cancel),
            last_failure: None,
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
        RunOnce {
            supervision: self,
            // Boxed so a supervised fn's future holds a pointer to its body
            // rather than a second copy of it, and so a stalled body can be
            // dropped before the backoff.
            body: BodySlot {
                future: Some(Box::pin(body)),
                output: None,
            },
            run: RunState::new(),
        }
    }

    /// The failure an escalating supervision ended with.
    pub(crate) fn take_escalated(&mut self) -> Option<ChildFailure> {
        self.engine.take_escalated()
    }

    /// The token to give the next body: the supervision's own, or for a
    /// lease-gated supervision ([`Supervisor::lease`]) a child of it that
    /// is also cancelled when the lease is lost. Call it once per body.
    ///
    /// ```
    /// use supervised::{Supervision, Supervisor};
    /// use supervised::CancellationToken;
    ///
    /// let supervisor = Supervisor::new();
    /// let sub = supervisor.register("doc-body-token");
    /// let cancel = CancellationToken::new();
    /// let mut supervision = Supervision::<()>::new(&supervisor, cancel.clone(), &sub);
    /// let token = supervision.body_token();
    /// cancel.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn body_token(&mut self) -> CancellationToken {
        self.engine.body_token()
    }
}

/// The future of [`Supervision::run_once`] (and of `run_judged`, the
/// attribute's), over the slot `S` that holds the body.
struct RunOnce<'s, 'a, O, S> {
    supervision: &'s mut Supervision<'a, O>,
    body: S,
    run: RunState,
}

// Nothing is pinned structurally: the body is behind its own `Pin<Box<_>>`.
impl<O, S> Unpin for RunOnce<'_, '_, O, S> {}

impl<O, S: Slot<O>> Future for RunOnce<'_, '_, O, S> {
    type Output = Step<O>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Step<O>> {
        let this = self.get_mut();
        let engine = &mut this.supervision.engine;
        // A release build polls the body on the engine's generic hot path,
        // inlined here: no call through a vtable, a few ns less per poll.
        // A debug build makes one call into the engine, compiled once in
        // this crate: the generic path would be compiled again for every
        // supervised fn, and a debug build is for compiling fast.
        #[cfg(not(debug_assertions))]
        let end = ready!(engine.poll_run(&mut this.run, cx, &mut this.body));
        #[cfg(debug_assertions)]
        let end = ready!(engine.poll_run_dyn(&mut this.run, cx, &mut this.body));
        Poll::Ready(step(
            end,
            this.body.take_output(),
            &mut this.supervision.last_failure,
        ))
    }
}

/// A body's slot: the engine polls it, [`RunOnce`] takes its output.
trait Slot<O>: RunBody {
    fn take_output(&mut self) -> Option<O>;
}

/// Turns how a run ended into the caller's [`Step`]. Generic over the
/// output alone, so supervised fns with the same return type share it.
fn step<O>(end: RunEnd, this_run: Option<O>, last_failure: &mut Option<O>) -> Step<O> {
    match end {
        RunEnd::Restart => {
            // A failing output is kept; a panic or a stall leaves none.
            *last_failure = this_run;
            Step::Restart
        }
        RunEnd::Completed => Step::Exit(Exit::Completed(
            this_run.expect("a run that completed keeps its output"),
        )),
        RunEnd::Cancelled(keep) => Step::Exit(Exit::Cancelled {
            last_failure: match keep {
                CancelledWith::Previous => last_failure.take(),
                CancelledWith::ThisRun => this_run,
                CancelledWith::Nothing => None,
            },
        }),
        RunEnd::GaveUp(with) => Step::Exit(Exit::GaveUp(match with {
            Failure::Returned(()) => {
                Failure::Returned(this_run.expect("a run that returned a failure keeps its output"))
            }
            Failure::Panicked(payload) => Failure::Panicked(payload),
            Failure::Stalled(silent) => Failure::Stalled(silent),
        })),
    }
}

/// The body's side of a run, as the engine sees it.
pub(super) trait RunBody {
    /// Polls the body; when it returns, keeps its output, for
    /// [`failure`](RunBody::failure). A dropped body stays pending. Returns
    /// nothing more: this is every poll's path, and a wider value costs
    /// moves on it.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// The kept output's failure message (`None` for success or no
    /// output). It may run the app's code (`RunOutcome::failure`): if that
    /// panics, the output is dropped, as a panic in the body drops it.
    fn failure(&mut self) -> Option<String>;
    /// The slot as the engine's cold paths take it, through a vtable:
    /// compiled once, not once per supervised fn.
    fn as_dyn(&mut self) -> &mut dyn RunBody;
    /// Drops the body's future (its output, if any, is kept).
    fn drop_body(&mut self);
}

struct BodySlot<O, Fut> {
    future: Option<Pin<Box<Fut>>>,
    output: Option<O>,
}

impl<O: RunOutcome, Fut: Future<Output = O>> Slot<O> for BodySlot<O, Fut> {
    fn take_output(&mut self) -> Option<O> {
        self.output.take()
    }
}

/// The attribute's slot: the body's raw output `R`, judged by `describe`
/// (a plain fn pointer, so no closure type is instantiated per fn) when it
/// is ready.
struct JudgedSlot<R, Fut> {
    future: Option<Pin<Box<Fut>>>,
    output: Option<Judged<R>>,
    describe: fn(&R) -> Option<String>,
}

impl<R, Fut: Future<Output = R>> RunBody for JudgedSlot<R, Fut> {
    // Into `RunOnce::poll` in a release build (see there).
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let output = ready!(future.as_mut().poll(cx));
        self.future = None;
        let failure = (self.describe)(&output);
        self.output = Some(Judged::new(output, failure));
        Poll::Ready(())
    }

    fn failure(&mut self) -> Option<String> {
        self.output.as_ref().and_then(RunOutcome::failure)
    }

    fn as_dyn(&mut self) -> &mut dyn RunBody {
        self
    }

    fn drop_body(&mut self) {
        self.future = None;
    }
}

impl<R, Fut: Future<Output = R>> Slot<Judged<R>> for JudgedSlot<R, Fut> {
    fn take_output(&mut self) -> Option<Judged<R>> {
        self.output.take()
    }
}

impl<'a, R> Supervision<'a, Judged<R>> {
    /// [`run_once`](Supervision::run_once) for the `#[supervised]`
    /// expansion: the body returns its own type, and `describe` gives an
    /// output's failure text. Not a public API.
    #[doc(hidden)]
    pub fn run_judged<'s, Fut>(
        &'s mut self,
        body: Fut,
        describe: fn(&R) -> Option<String>,
    ) -> impl Future<Output = Step<Judged<R>>> + use<'a, 's, R, Fut>
    where
        Fut: Future<Output = R> + 's,
        R: 's,
    {
        RunOnce {
            supervision: self,
            body: JudgedSlot {
                future: Some(Box::pin(body)),
                output: None,
                describe,
            },
            run: RunState::new(),
        }
    }
}

impl<O: RunOutcome, Fut: Future<Output = O>> RunBody for BodySlot<O, Fut> {
    #[inline]
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let output = ready!(future.as_mut().poll(cx));
        self.future = None;
        self.output = Some(output);
        Poll::Ready(())
    }

    fn failure(&mut self) -> Option<String> {
        // Taken out while the app's `failure` runs: a panic there drops it.
        let output = self.output.take()?;
        let failure = output.failure();
        self.output = Some(output);
        failure
    }

    fn as_dyn(&mut self) -> &mut dyn RunBody {
        self
    }

    fn drop_body(&mut self) {
        self.future = None;
    }
}
