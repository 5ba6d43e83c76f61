//! The non-generic engine of a supervision: a hand-written state machine
//! rather than an `async fn`, so an idle supervised loop carries only the
//! state it needs (the cold paths' timers are boxed when they are armed).
//!
//! One [`RunState`] per run goes through [`Phase`]s: `Start` (register the
//! run, arm the watchers), `Running` (poll the body; the hot case is inlined
//! into the caller), then `Grace` after cancellation or `Backoff` after a
//! failure, and `Done`. [`Engine::end_run`] judges how a body ended.
//!
//! - `mod.rs`: the engine, its run state and its phases.
//! - `run.rs`: one run's state, and the body's poll and drop inside its
//!   span, with its subsystem current and its panics caught.
//! - `gated.rs`: the lease gate's steps around those phases, for a
//!   supervision gated on a lease (`lease/mod.rs` has the picture).
//! - `tests.rs`: what a poll of a running body pays, pinned.

mod gated;
mod run;
#[cfg(test)]
mod tests;

use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::failure::{Caught, ChildFailure, Failure};
use super::handoff;
use super::panic;
use super::policy::{Policy, ResetRule, RestartWindow, RunProgress, Verdict};
use super::report::{self, give_up, stop_cancelled};
use super::supervision::RunBody;
use super::watch::{stalled, wait, Watch, Watched};
use crate::lease::gate::Gate;
use crate::registry::{deadline, Subsystem, SubsystemState};
use run::BodyEnd;
pub(super) use run::RunState;

/// How one run ended, for [`RunOnce`] to turn into a [`Step`].
pub(super) enum RunEnd {
    Restart,
    Completed,
    Cancelled(CancelledWith),
    GaveUp(Failure<()>),
}

/// Which failing output a cancelled supervision returns.
pub(super) enum CancelledWith {
    /// The previous run's (cancelled before this one started).
    Previous,
    /// This run's, if it returned one.
    ThisRun,
    /// None (the body was dropped after its stop timeout).
    Nothing,
}

enum Phase {
    Start,
    Running,
    /// Cancelled while running: the body gets its stop timeout.
    Grace,
    /// Failed: waiting out the backoff before the next generation.
    Backoff,
    Done,
}

/// The non-generic part of a supervision: the policy's state across runs.
pub(super) struct Engine<'a> {
    policy: &'a Policy,
    pub(super) sub: Subsystem,
    pub(super) cancel: CancellationToken,
    /// What only some supervisions need; `None` for most.
    extras: Option<Box<Extras>>,
    pub(super) consecutive_failures: u32,
    /// Failures since the last run that completed an iteration: the first
    /// of such a storm is logged in full, the rest as one-line summaries.
    storm: u32,
    pub(super) generation: u64,
    watch: Watch,
}

/// What only some supervisions need, behind one pointer, so that a plain
/// loop's future pays 8 bytes for all of it: tokio allocates a task in
/// steps of 128 bytes, and an idle supervised loop sits just under a step.
#[derive(Default)]
struct Extras {
    /// The restart intensity's window, if the policy sets one.
    window: Option<RestartWindow>,
    /// The lease gating each run (boxed apart: taken out while it is polled).
    gate: Option<Box<Gate>>,
    /// How a gated run ended, kept while its lease is released.
    released_end: Option<RunEnd>,
    /// The failure an escalating supervision (a gated group child's
    /// wrapper) ended with.
    escalated: Option<ChildFailure>,
    /// A group child's fn whose group restarts it after every failure
    /// ([`Subsystem::group_restarts`]): each failure ends the fn and is
    /// handed up (`handoff.rs`).
    hands_up: bool,
}

impl Extras {
    /// The box a supervision under `policy` needs from the start, if any.
    fn of(policy: &Policy, sub: &Subsystem) -> Option<Box<Extras>> {
        let window = policy
            .intensity
            .map(|(max, within)| RestartWindow::new(max, within));
        let gate = policy
            .lease_spec()
            .map(|spec| Box::new(Gate::new(spec, sub)));
        // A gated child's wrapper escalates already; the fn inside hands
        // its failures up to the wrapper's engine by the entry's flag.
        let hands_up = !policy.escalate && sub.group_restarts();
        (window.is_some() || gate.is_some() || hands_up).then(|| {
            Box::new(Extras {
                window,
                gate,
                hands_up,
                ..Extras::default()
            })
        })
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        if !self.policy.escalate {
            self.sub.leave_supervisor();
        }
    }
}

impl<'a> Engine<'a> {
    pub(super) fn new(policy: &'a Policy, sub: &Subsystem, cancel: CancellationToken) -> Self {
        panic::install_hook();
        // An escalating wrapper shares its entry with the fn it gates
        // (a gated group child's `#[supervised]` fn): one supervisor.
        let already = if policy.escalate {
            0
        } else {
            sub.enter_supervisor()
        };
        if already > 0 {
            tracing::warn!(
                target: "supervised", subsystem = %sub.name(),
                supervisors = already + 1,
                "subsystem is supervised more than once at the same time; their beats, restarts and states are merged"
            );
        }
        Engine {
            policy,
            sub: sub.clone(),
            watch: Watch::new(&cancel),
            cancel,
            extras: Extras::of(policy, sub),
            consecutive_failures: 0,
            storm: 0,
            generation: 0,
        }
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The token a run's body gets: the caller's, or for a gated run a
    /// child of it that losing the lease cancels too.
    pub(super) fn body_token(&mut self) -> CancellationToken {
        let cancel = &self.cancel;
        match self
            .extras
            .as_mut()
            .and_then(|extras| extras.gate.as_deref_mut())
        {
            Some(gate) => gate.run_token(cancel),
            None => cancel.clone(),
        }
    }

    /// The failure an escalating supervision ended with, once.
    pub(super) fn take_escalated(&mut self) -> Option<ChildFailure> {
        self.extras
            .as_mut()
            .and_then(|extras| extras.escalated.take())
    }

    fn reset_rule(&self) -> ResetRule {
        self.policy.reset_rule()
    }

    /// Polls the run. The hot case, a running body that stays pending with
    /// no watcher due, is inlined into [`RunOnce::poll`] so an iteration
    /// pays no call into the engine; everything else is out of line.
    #[inline]
    pub(super) fn poll_run<B: RunBody + ?Sized>(
        &mut self,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut B,
    ) -> Poll<RunEnd> {
        if self
            .extras
            .as_ref()
            .is_some_and(|extras| extras.gate.is_some())
        {
            return self.poll_gated(run, cx, body.as_dyn());
        }
        if let Phase::Running = run.phase {
            if let Some(poll) = self.poll_running(run, cx, body) {
                return poll;
            }
        }
        self.poll_phases(run, cx, body.as_dyn())
    }

    /// [`poll_run`](Engine::poll_run) through the vtable, compiled once:
    /// what a debug build's supervised fns call (see `RunOnce::poll`).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    #[inline(never)]
    pub(super) fn poll_run_dyn(
        &mut self,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut dyn RunBody,
    ) -> Poll<RunEnd> {
        #[cfg(test)]
        tests::DYN_ENTRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.poll_run(run, cx, body)
    }

    /// One poll of a running body: `Some` is the poll's result, `None`
    /// means the phase changed and the state machine goes on.
    #[inline]
    fn poll_running<B: RunBody + ?Sized>(
        &mut self,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut B,
    ) -> Option<Poll<RunEnd>> {
        let polled = match run.poll_body(cx, body) {
            Poll::Pending if !self.watch.due(cx) => return Some(Poll::Pending),
            Poll::Pending => None,
            Poll::Ready(ended) => Some(ended),
        };
        self.after_poll(run, body.as_dyn(), polled)
    }

    /// What follows a poll of a running body that ended (`Some`) or is
    /// pending with a watcher due (`None`); returns as
    /// [`poll_running`](Engine::poll_running) does.
    #[inline(never)]
    fn after_poll(
        &mut self,
        run: &mut RunState,
        body: &mut dyn RunBody,
        ended: Option<BodyEnd>,
    ) -> Option<Poll<RunEnd>> {
        let ended = match ended {
            Some(ended) => ended,
            None => match self.watch.poll_watchers(&mut run.timer) {
                None => return Some(Poll::Pending),
                Some(Watched::Cancelled) => {
                    run.timer = Some(wait(tokio::time::sleep(self.policy.stop_timeout)));
                    run.phase = Phase::Grace;
                    return None;
                }
                Some(Watched::Stalled(silent)) => BodyEnd::Stalled(silent),
            },
        };
        self.end_run(run, body, ended)
            .map(|end| self.finish(run, end))
    }

    /// Every phase, out of line: a run's start, a running body after a
    /// watcher fired or the body ended, the stop timeout and the backoff.
    #[inline(never)]
    fn poll_phases(
        &mut self,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut dyn RunBody,
    ) -> Poll<RunEnd> {
        loop {
            match run.phase {
                Phase::Start => {
                    if self.cancel.is_cancelled() {
                        run.drop_body(body, &self.sub);
                        return self.finish(
                            run,
                            cancelled(
                                &self.sub,
                                "cancelled before restart",
                                CancelledWith::Previous,
                            ),
                        );
                    }
                    self.start(run);
                }
                Phase::Running => {
                    if let Some(poll) = self.poll_running(run, cx, body) {
                        return poll;
                    }
                }
                Phase::Grace => {
                    if let Poll::Ready(ended) = run.poll_body(cx, body) {
                        if let Some(end) = self.end_run(run, body, ended) {
                            return self.finish(run, end);
                        }
                        continue;
                    }
                    let grace_over = run
                        .timer
                        .as_mut()
                        .is_some_and(|grace| grace.as_mut().poll(cx).is_ready());
                    if !grace_over {
                        return Poll::Pending;
                    }
                    tracing::warn!(
                        target: "supervised", subsystem = %self.sub.name(),
                        stop_timeout = ?self.policy.stop_timeout,
                        "supervised body did not return within its stop timeout after cancellation; dropping it"
                    );
                    run.drop_body(body, &self.sub);
                    return self.finish(
                        run,
                        cancelled(
                            &self.sub,
                            "dropped after its stop timeout",
                            CancelledWith::Nothing,
                        ),
                    );
                }
                Phase::Backoff => {
                    if self.watch.poll_cancelled(cx).is_ready() {
                        return self.finish(
                            run,
                            cancelled(
                                &self.sub,
                                "cancelled during backoff",
                                CancelledWith::ThisRun,
                            ),
                        );
                    }
                    if let Some(backoff) = run.timer.as_mut() {
                        ready!(backoff.as_mut().poll(cx));
                    }
                    tracing::debug!(
                        target: "supervised", subsystem = %self.sub.name(),
                        generation = self.generation,
                        "restarting supervised body"
                    );
                    return self.finish(run, RunEnd::Restart);
                }
                Phase::Done => panic!("`Supervision::run_once` polled after it completed"),
            }
        }
    }

    /// Ends `run`'s state machine with `end`.
    fn finish(&self, run: &mut RunState, end: RunEnd) -> Poll<RunEnd> {
        run.phase = Phase::Done;
        run.timer = None;
        Poll::Ready(end)
    }

    fn start(&mut self, run: &mut RunState) {
        let sub = &self.sub;
        let at = Instant::now();
        sub.start_run(at, self.reset_rule());
        // The fields are read only when a subscriber wants the span. A
        // group's child has a run span of the group's around its first poll
        // (dropped once this engine claims the entry, see `ChildRun`); this
        // one is not made its child, so no line carries both prefixes.
        // The shared path (a pointer copy): a run start allocates nothing
        // for the span when no subscriber wants it.
        let group = sub.group_arc();
        let span = if group.is_some() {
            tracing::info_span!(
                target: "supervised", parent: None, "supervised",
                subsystem = %sub.name(),
                group = group.as_deref(),
                generation = self.generation
            )
        } else {
            tracing::info_span!(
                target: "supervised", "supervised",
                subsystem = %sub.name(),
                generation = self.generation
            )
        };
        run.span = (!span.is_disabled()).then(|| Box::new(span));
        self.generation += 1;
        run.handle = Some(sub.clone());
        if self.policy.restart_on_stall {
            run.timer = Some(Box::pin(stalled(sub.clone(), at)));
        }
        self.watch.arm();
        run.phase = Phase::Running;
    }

    /// Judges a run that ended: `Some` ends the supervision or completes the
    /// step; `None` means the backoff is armed and the run is in
    /// [`Phase::Backoff`].
    fn end_run(
        &mut self,
        run: &mut RunState,
        body: &mut dyn RunBody,
        ended: BodyEnd,
    ) -> Option<RunEnd> {
        // The body's future ends here: a stalled one is dropped before the backoff.
        run.drop_body(body, &self.sub);
        // How the run ended (its failure, the restart or the give-up) is an
        // event of the run's span: a tracer shows it on the run it ended.
        let span = run.span.as_deref().cloned();
        let _entered = span.as_ref().map(tracing::Span::enter);
        let sub = &self.sub;
        let name = sub.name();
        let failure = match ended {
            BodyEnd::Returned(None) => {
                sub.set_state(SubsystemState::Stopped);
                if self.cancel.is_cancelled() {
                    // Asked to stop, and did: whoever cancelled logs the stop
                    // (a group's fleet of 100,000 would be a line each).
                    tracing::debug!(target: "supervised", subsystem = %name, "supervised body returned after cancellation");
                } else {
                    tracing::info!(target: "supervised", subsystem = %name, "supervised body returned; not restarting");
                }
                return Some(RunEnd::Completed);
            }
            BodyEnd::Returned(Some(message)) => Caught::Error(message),
            BodyEnd::Panicked(panic) => Caught::Panic(*panic),
            BodyEnd::Stalled(silent) => Caught::Stall(silent),
        };

        if self.cancel.is_cancelled() {
            // Not restarted, so not judged; but a panic on the way out is
            // reported (std's own text was left out for it) and kept.
            if let Caught::Panic(panic) = &failure {
                report::panicked_after_cancel(sub, panic);
            }
            return Some(cancelled(
                sub,
                "failed after cancellation",
                CancelledWith::ThisRun,
            ));
        }

        // A group child's lease wrapper, or a fn its group restarts after
        // every failure: the group judges, logs and restarts, so the
        // failure goes up as it is.
        let hands_up = self.extras.as_ref().is_some_and(|extras| extras.hands_up);
        if self.policy.escalate || hands_up {
            let (with, escalated) = match failure {
                Caught::Error(message) => (Failure::Returned(()), ChildFailure::Error(message)),
                Caught::Panic(panic) => (
                    Failure::Panicked(panic.payload),
                    ChildFailure::Panic {
                        message: panic.message,
                        location: panic.location,
                    },
                ),
                Caught::Stall(silent) => (Failure::Stalled(silent), ChildFailure::Stalled(silent)),
            };
            if hands_up {
                handoff::hand_up(sub, escalated);
            } else {
                // A gated child's wrapper: the fn inside, on the same
                // entry, may have handed up its failure as it was caught
                // (with its location) in this very poll; that one is kept,
                // since the wrapper's end reaches the group polls later,
                // after the lease is released.
                let escalated = handoff::take_handed_up(sub).unwrap_or(escalated);
                self.extras_mut().escalated = Some(escalated);
            }
            return Some(RunEnd::GaveUp(with));
        }

        let now = Instant::now();
        // Recorded by `start`; read back only here, on the cold path, so a
        // running loop's future does not carry it.
        let (started_at, beats_then) = sub.run_started().unwrap_or((now, sub.beats()));
        let beats_in_run = sub.beats().saturating_sub(beats_then);
        if beats_in_run > 0 {
            self.storm = 0;
        }
        self.storm = self.storm.saturating_add(1);
        let progress = RunProgress {
            ran: now.saturating_duration_since(started_at),
            beats_in_run,
            beats_ever: sub.beats(),
        };
        let window = self
            .extras
            .as_mut()
            .and_then(|extras| extras.window.as_mut());
        let verdict =
            self.policy
                .restart_rule()
                .judge(&mut self.consecutive_failures, window, progress, now);
        let (delay, failures) = match verdict {
            Verdict::Restart { after, failures } => (after, failures),
            Verdict::GiveUp {
                failures,
                in_window,
            } => {
                let within = self.policy.intensity.map_or(Duration::ZERO, |(_, w)| w);
                let with = give_up(sub, failures, failure, in_window, within);
                return Some(RunEnd::GaveUp(with));
            }
        };
        let next_restart_at = deadline(now, delay);
        let record = failure.log(name, sub.restarts() + 1, failures, self.storm, delay, now);
        sub.record_restart(failures, next_restart_at, record);
        run.timer = Some(if delay.is_zero() {
            // A zero backoff restarts at once (the timer would round it up to
            // its 1 ms tick), yielding once so a crash loop still lets other
            // tasks run.
            wait(tokio::task::yield_now())
        } else {
            wait(tokio::time::sleep_until(next_restart_at))
        });
        run.phase = Phase::Backoff;
        None
    }
}

/// Marks `sub` stopped by cancellation, for the reason `why`.
fn cancelled(sub: &Subsystem, why: &'static str, keep: CancelledWith) -> RunEnd {
    stop_cancelled(sub, why);
    RunEnd::Cancelled(keep)
}
