//! The engine of a lease-gated supervision: the gate's steps (stand by,
//! hold and renew, lose, release) around the phases of `mod.rs`, which run
//! only while the lease is held.

use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::{cancelled, BodyEnd, CancelledWith, Engine, Phase, RunEnd, RunState};
use crate::lease::gate::{Gate, GateStep};
use crate::supervisor::supervision::RunBody;
use crate::text::Escaped;

impl Engine<'_> {
    /// [`poll_run`](Engine::poll_run) of a lease-gated supervision: the
    /// gate's steps around the phases (see `lease/mod.rs` for the picture).
    #[inline(never)]
    pub(super) fn poll_gated(
        &mut self,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut dyn RunBody,
    ) -> Poll<RunEnd> {
        let Some(mut gate) = self.extras.as_mut().and_then(|extras| extras.gate.take()) else {
            return self.poll_phases(run, cx, body);
        };
        let polled = self.poll_gate(&mut gate, run, cx, body);
        self.extras_mut().gate = Some(gate);
        polled
    }

    fn poll_gate(
        &mut self,
        gate: &mut Gate,
        run: &mut RunState,
        cx: &mut Context<'_>,
        body: &mut dyn RunBody,
    ) -> Poll<RunEnd> {
        loop {
            match gate.step {
                GateStep::Free => {
                    if matches!(run.phase, Phase::Start) && !self.cancel.is_cancelled() {
                        gate.stand_by(&self.sub);
                        continue;
                    }
                    // Cancelled before a run, the backoff after a released
                    // run, or a finished one: as without a lease.
                    return self.poll_phases(run, cx, body);
                }
                GateStep::Standby(_) => {
                    if self.watch.poll_cancelled(cx).is_ready() {
                        gate.step = GateStep::Free;
                        run.drop_body(body, &self.sub);
                        let end =
                            cancelled(&self.sub, "cancelled in standby", CancelledWith::Previous);
                        return self.finish(run, end);
                    }
                    ready!(gate.poll_acquire(cx, &self.sub));
                    self.sub.leave_standby(Instant::now());
                    self.start(run);
                }
                GateStep::Holding(_) => {
                    // Checked before the body is polled: a process that was
                    // paused past its lease never lets the body run again.
                    if Instant::now() >= gate.drop_deadline() {
                        tracing::warn!(
                            target: "supervised", subsystem = %self.sub.name(),
                            lease = %Escaped(&gate.spec.name),
                            "lease may have expired (no renewal confirmed in time; was the process paused?); dropping the body unpolled"
                        );
                        run.drop_body(body, &self.sub);
                        gate.forfeit(&self.sub);
                        return self.finish(run, RunEnd::Restart);
                    }
                    if gate
                        .poll_renewal(cx, &self.sub, self.policy.stop_timeout)
                        .is_ready()
                    {
                        continue;
                    }
                    let polled = match run.phase {
                        Phase::Running => match self.poll_running(run, cx, body) {
                            Some(polled) => polled,
                            None => self.poll_phases(run, cx, body),
                        },
                        _ => self.poll_phases(run, cx, body),
                    };
                    match polled {
                        Poll::Ready(end) => {
                            self.extras_mut().released_end = Some(end);
                            gate.release(&self.sub);
                        }
                        // Failed: released before the backoff is waited out.
                        Poll::Pending if matches!(run.phase, Phase::Backoff) => {
                            gate.release(&self.sub);
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                GateStep::Lost(_) => {
                    let polled = run.poll_body(cx, body);
                    // How it ended no longer decides anything (the run goes
                    // back to standby), but a failure is still reported.
                    match &polled {
                        Poll::Ready(BodyEnd::Panicked(panic)) => tracing::error!(
                            target: "supervised", subsystem = %self.sub.name(),
                            lease = %Escaped(&gate.spec.name),
                            kind = "panic",
                            panic_message = %Escaped(&panic.message),
                            location = panic.location.as_deref().unwrap_or("<unknown>"),
                            "body panicked after losing its lease"
                        ),
                        Poll::Ready(BodyEnd::Returned(Some(error))) => tracing::warn!(
                            target: "supervised", subsystem = %self.sub.name(),
                            lease = %Escaped(&gate.spec.name), error = %Escaped(error),
                            "body returned an error after losing its lease"
                        ),
                        _ => {}
                    }
                    if polled.is_pending() {
                        ready!(gate.poll_lost(cx));
                        tracing::warn!(
                            target: "supervised", subsystem = %self.sub.name(),
                            lease = %Escaped(&gate.spec.name),
                            "body did not return after losing its lease; dropping it before the lease can expire"
                        );
                    }
                    run.drop_body(body, &self.sub);
                    gate.forfeit(&self.sub);
                    return self.finish(run, RunEnd::Restart);
                }
                GateStep::Releasing(_) => {
                    ready!(gate.poll_release(cx));
                    if let Some(end) = self
                        .extras
                        .as_mut()
                        .and_then(|extras| extras.released_end.take())
                    {
                        return Poll::Ready(end);
                    }
                }
            }
        }
    }
}
