//! What the supervisor's engine runs around a lease-gated body: the
//! acquire loop of standby, the renewal watcher of a running body, and the
//! release. The engine (`supervisor/engine/gated.rs`) decides when each runs;
//! this file does the talking to the backend and the reporting.
//!
//! The renewal watcher shares one value with the engine: the instant the
//! last confirmed request was sent ([`Gate::drop_deadline`] counts from
//! it), behind a lock only these two touch.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spec::LeaseSpec;
use super::{installed, Acquired, Backend, BoxFuture, Grant, Holder, Renewal};
use crate::registry::{deadline, FailureRecord, Subsystem};
use crate::text::Escaped;

/// Where a gated supervision is with its lease.
pub(crate) enum GateStep {
    /// Not asking, not holding: before a run, or after one ended.
    Free,
    /// Asking every ttl/3 until granted.
    Standby(BoxFuture<'static, Held>),
    /// Holding; the future resolves when the lease is lost.
    Holding(BoxFuture<'static, Lost>),
    /// Lost while the body ran: its token is cancelled, and it is dropped
    /// when this timer fires if it has not returned by then.
    Lost(std::pin::Pin<Box<tokio::time::Sleep>>),
    /// Releasing after the body ended.
    Releasing(BoxFuture<'static, ()>),
}

/// A grant and the backend that made it (renewed and released there).
#[derive(Clone)]
pub(crate) struct Held {
    backend: Arc<dyn Backend>,
    grant: Grant,
}

/// How a lease was lost.
pub(crate) enum Lost {
    /// The backend refused a renewal: the grant expired or was replaced.
    Refused(Holder),
    /// No renewal was confirmed in time.
    Unconfirmed(Option<String>),
    /// The subsystem went stale while it led (silent past its
    /// `stale_after`): it gives the lease up rather than renew it, so a
    /// replica that can make progress takes over.
    Stale(Duration),
}

/// What the acquire and renewal futures share with the engine.
struct Shared {
    /// When the last confirmed acquire or renewal was sent.
    confirmed: Mutex<Instant>,
    /// Whether the backend is failing now: errors are logged once per
    /// episode, and its end once.
    outage: AtomicBool,
}

/// One gated supervision's lease, across its runs.
pub(crate) struct Gate {
    pub(crate) spec: LeaseSpec,
    pub(crate) step: GateStep,
    held: Option<Held>,
    /// The body's token for the current run, cancelled when the lease is lost.
    run_token: Option<CancellationToken>,
    /// Set when a stale leader gave its lease up: its next standby asks
    /// only after one acquire interval, so a replica that can make
    /// progress gets the lease first.
    hold_off_until: Option<Instant>,
    shared: Arc<Shared>,
}

impl Gate {
    pub(crate) fn new(spec: LeaseSpec, sub: &Subsystem) -> Self {
        sub.update_lease(&spec.name, |_| {});
        Gate {
            spec,
            step: GateStep::Free,
            held: None,
            run_token: None,
            hold_off_until: None,
            shared: Arc::new(Shared {
                confirmed: Mutex::new(Instant::now()),
                outage: AtomicBool::new(false),
            }),
        }
    }

    /// A token for the next body: a child of `cancel`, also cancelled when
    /// the lease is lost.
    pub(crate) fn run_token(&mut self, cancel: &CancellationToken) -> CancellationToken {
        let token = cancel.child_token();
        self.run_token = Some(token.clone());
        token
    }

    /// Enters standby and starts asking for the lease.
    pub(crate) fn stand_by(&mut self, sub: &Subsystem) {
        sub.enter_standby();
        self.step = GateStep::Standby(Box::pin(acquire(
            self.spec.clone(),
            sub.clone(),
            self.shared.clone(),
            self.hold_off_until.take(),
        )));
    }

    /// Polls the acquire loop of standby.
    pub(crate) fn poll_acquire(&mut self, cx: &mut Context<'_>, sub: &Subsystem) -> Poll<()> {
        let GateStep::Standby(acquiring) = &mut self.step else {
            return Poll::Pending;
        };
        let Poll::Ready(held) = acquiring.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let expires_at = deadline(self.confirmed(), held.grant.ttl);
        sub.update_lease(&self.spec.name, |view| {
            view.leader = true;
            view.holder = Some(held.grant.holder.clone());
            view.epoch = Some(held.grant.epoch);
            view.expires_at = Some(expires_at);
            view.acquisitions += 1;
        });
        tracing::info!(
            target: "supervised", subsystem = %sub.name(), lease = %Escaped(&self.spec.name),
            holder = %Escaped(&held.grant.holder), epoch = held.grant.epoch,
            "acquired lease; running"
        );
        self.step = GateStep::Holding(Box::pin(renew(
            held.clone(),
            self.spec.clone(),
            sub.clone(),
            self.shared.clone(),
        )));
        self.held = Some(held);
        Poll::Ready(())
    }

    /// The instant the last confirmed request was sent.
    fn confirmed(&self) -> Instant {
        *self
            .shared
            .confirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The latest instant the body may still exist: `ttl - margin` after
    /// the last confirmed request was sent.
    pub(crate) fn drop_deadline(&self) -> Instant {
        deadline(self.confirmed(), self.spec.drop_after())
    }

    /// Polls the renewal watcher; `Ready` when the lease is lost, which
    /// is logged (one WARN) and cancels the body's token.
    pub(crate) fn poll_renewal(
        &mut self,
        cx: &mut Context<'_>,
        sub: &Subsystem,
        grace: Duration,
    ) -> Poll<()> {
        let GateStep::Holding(renewing) = &mut self.step else {
            return Poll::Pending;
        };
        let Poll::Ready(lost) = renewing.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let epoch = self.held.as_ref().map(|h| h.grant.epoch);
        match &lost {
            Lost::Refused(by) => tracing::warn!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(&self.spec.name),
                epoch, taken_over_by = %Escaped(by.holder.as_deref().unwrap_or("unknown")),
                "lost lease: the backend refused its renewal; cancelling the body"
            ),
            Lost::Unconfirmed(error) => tracing::warn!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(&self.spec.name),
                epoch, error = %Escaped(error.as_deref().unwrap_or("none")),
                "lost lease: no renewal confirmed in time; cancelling the body before the lease can expire"
            ),
            Lost::Stale(silent) => {
                tracing::warn!(
                    target: "supervised", subsystem = %sub.name(), lease = %Escaped(&self.spec.name),
                    epoch, silent = ?silent,
                    "giving up the lease: the subsystem has been stale for a ttl while it leads, so another replica takes over; cancelling the body, then releasing"
                );
                // Counted and kept like a failure, so a leader that keeps
                // stalling shows in its restarts and last error.
                sub.count_restart();
                sub.note_failure(FailureRecord::Error(format!(
                    "stalled while leading: no heartbeat for {silent:?}; gave the lease up"
                )));
            }
        }
        if let Lost::Stale(_) = &lost {
            // Counted from when the body is gone (`forfeit`).
            self.hold_off_until = Some(Instant::now());
        }
        if let Lost::Refused(by) = &lost {
            self.show_holder(sub, by);
            // Replaced or expired: nothing left to release.
            self.held = None;
        }
        if let Some(token) = &self.run_token {
            token.cancel();
        }
        let until = deadline(Instant::now(), grace).min(self.drop_deadline());
        self.step = GateStep::Lost(Box::pin(tokio::time::sleep_until(until)));
        Poll::Ready(())
    }

    /// Polls the timer of a lost lease: `Ready` when the body must go.
    pub(crate) fn poll_lost(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.step {
            GateStep::Lost(until) => until.as_mut().poll(cx),
            _ => Poll::Ready(()),
        }
    }

    /// The body is gone without its lease (lost, or past the drop
    /// deadline): back to free, and shown as not leading.
    pub(crate) fn forfeit(&mut self, sub: &Subsystem) {
        self.step = GateStep::Free;
        if self.hold_off_until.is_some() {
            self.hold_off_until = Some(deadline(Instant::now(), self.spec.interval()));
        }
        // Not confirmed, so perhaps still live in the store (etcd even
        // extends its leases when it restarts): released as soon as the
        // store answers again, so the replicas need not wait out its ttl.
        // The body is gone already, and a release never ends a newer grant.
        if let (Some(held), Ok(runtime)) = (self.held.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(release_late(held, self.spec.clone(), sub.clone()));
        }
        self.run_token = None;
        sub.update_lease(&self.spec.name, |view| {
            if view.leader {
                view.leader = false;
                view.holder = None;
                view.epoch = None;
                view.expires_at = None;
            }
        });
        sub.enter_standby();
    }

    /// The body ended while the lease was held: release it at once.
    pub(crate) fn release(&mut self, sub: &Subsystem) {
        self.run_token = None;
        let Some(held) = self.held.take() else {
            self.step = GateStep::Free;
            return;
        };
        sub.update_lease(&self.spec.name, |view| {
            view.leader = false;
            view.holder = None;
            view.epoch = None;
            view.expires_at = None;
        });
        self.step = GateStep::Releasing(Box::pin(release(held, self.spec.clone(), sub.clone())));
    }

    /// Polls the release; `Ready` when it is done (or given up).
    pub(crate) fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let GateStep::Releasing(releasing) = &mut self.step {
            std::task::ready!(releasing.as_mut().poll(cx));
        }
        self.step = GateStep::Free;
        Poll::Ready(())
    }

    fn show_holder(&self, sub: &Subsystem, by: &Holder) {
        show_holder(sub, &self.spec.name, by);
    }
}

/// Shows another replica's grant in the registry.
fn show_holder(sub: &Subsystem, name: &str, by: &Holder) {
    let now = Instant::now();
    sub.update_lease(name, |view| {
        view.leader = false;
        view.holder = by.holder.clone();
        view.epoch = by.epoch;
        view.expires_at = by.expires_in.map(|left| deadline(now, left));
    });
}

impl Shared {
    /// A call failed: WARN on the first of an episode, DEBUG after.
    fn failed(&self, sub: &Subsystem, lease: &str, op: &'static str, error: &str) {
        if !self.outage.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(lease), op,
                error = %Escaped(error),
                "lease backend failed; retrying (logged once until it answers again)"
            );
        } else {
            tracing::debug!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(lease), op,
                error = %Escaped(error), "lease backend failed again"
            );
        }
    }

    /// A call was answered: ends an episode of failures.
    fn answered(&self, sub: &Subsystem, lease: &str) {
        if self.outage.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(lease),
                "lease backend answers again"
            );
        }
    }

    fn confirm(&self, sent: Instant) {
        *self.confirmed.lock().unwrap_or_else(|e| e.into_inner()) = sent;
    }
}

/// Standby: asks for the lease every ttl/3 until it is granted, and sooner
/// when the holder's grant is about to run out.
async fn acquire(
    spec: LeaseSpec,
    sub: Subsystem,
    shared: Arc<Shared>,
    hold_off_until: Option<Instant>,
) -> Held {
    let interval = spec.interval();
    if let Some(at) = hold_off_until {
        tokio::time::sleep_until(at).await;
    }
    // The holder last logged, so standby is logged once per holder.
    let mut logged: Option<Option<String>> = None;
    let mut missing_logged = false;
    loop {
        let mut pause = interval;
        let backend = spec.backend.clone().or_else(installed);
        match backend {
            None => {
                if !missing_logged {
                    missing_logged = true;
                    tracing::error!(
                        target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
                        "no lease backend installed (call `supervised::lease::install` at startup); standing by"
                    );
                }
            }
            Some(backend) => {
                let sent = Instant::now();
                match tokio::time::timeout(interval, backend.acquire(&spec.name, spec.ttl)).await {
                    Ok(Ok(Acquired::Granted(grant))) => {
                        shared.answered(&sub, &spec.name);
                        shared.confirm(sent);
                        return Held { backend, grant };
                    }
                    Ok(Ok(Acquired::Held(by))) => {
                        shared.answered(&sub, &spec.name);
                        show_holder(&sub, &spec.name, &by);
                        // Asked again when the holder's grant runs out, if
                        // that is sooner, but no more often than 4 times
                        // per interval (stores report expiry coarsely).
                        if let Some(left) = by.expires_in {
                            pause = left.clamp(interval / 4, interval);
                        }
                        if logged.as_ref() != Some(&by.holder) {
                            tracing::info!(
                                target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
                                holder = %Escaped(by.holder.as_deref().unwrap_or("unknown")), epoch = by.epoch,
                                "lease held by another holder; standing by"
                            );
                            logged = Some(by.holder);
                        }
                    }
                    Ok(Err(error)) => shared.failed(&sub, &spec.name, "acquire", error.message()),
                    Err(_) => shared.failed(&sub, &spec.name, "acquire", "timed out"),
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// The renewal watcher: renews every ttl/3 after the last confirmed
/// request, retrying failures until 3/5 of the ttl has passed since it.
async fn renew(held: Held, spec: LeaseSpec, sub: Subsystem, shared: Arc<Shared>) -> Lost {
    loop {
        let confirmed = *shared.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        tokio::time::sleep_until(deadline(confirmed, spec.interval())).await;
        // A leader that makes no progress gives the lease up instead of
        // keeping it from a replica that could: once it has been reported
        // stale for a whole ttl, so its staleness shows (and alerts) first.
        if let Some(silent) = sub.stale_for(Instant::now()) {
            let limit = sub.stale_limit().unwrap_or_default();
            if silent > limit.saturating_add(spec.ttl) {
                return Lost::Stale(silent);
            }
        }
        let give_up_at = deadline(confirmed, spec.give_up_after());
        let mut last_error = None;
        loop {
            let sent = Instant::now();
            if sent >= give_up_at {
                return Lost::Unconfirmed(last_error);
            }
            match tokio::time::timeout_at(give_up_at, held.backend.renew(&held.grant)).await {
                Ok(Ok(Renewal::Renewed)) => {
                    shared.answered(&sub, &spec.name);
                    shared.confirm(sent);
                    sub.update_lease(&spec.name, |view| {
                        view.expires_at = Some(deadline(sent, held.grant.ttl));
                    });
                    break;
                }
                Ok(Ok(Renewal::Lost(by))) => {
                    shared.answered(&sub, &spec.name);
                    return Lost::Refused(by);
                }
                Ok(Err(error)) => {
                    shared.failed(&sub, &spec.name, "renew", error.message());
                    last_error = Some(error.message().to_owned());
                    let pause = deadline(Instant::now(), spec.retry()).min(give_up_at);
                    tokio::time::sleep_until(pause).await;
                }
                Err(_) => {
                    last_error = Some("renewal timed out".to_owned());
                }
            }
        }
    }
}

/// Releases a grant whose renewal was not confirmed, retrying until it
/// gets through or twice the ttl has passed (by then it expired anyway).
async fn release_late(held: Held, spec: LeaseSpec, sub: Subsystem) {
    let until = deadline(Instant::now(), spec.ttl * 2);
    while Instant::now() < until {
        if let Ok(Ok(())) =
            tokio::time::timeout(spec.interval(), held.backend.release(&held.grant)).await
        {
            tracing::debug!(
                target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
                epoch = held.grant.epoch, "released a lost lease once the backend answered"
            );
            return;
        }
        tokio::time::sleep(spec.retry()).await;
    }
}

/// Releases a grant, bounded by ttl/3: a release that does not get through
/// leaves the grant to expire by itself.
async fn release(held: Held, spec: LeaseSpec, sub: Subsystem) {
    match tokio::time::timeout(spec.interval(), held.backend.release(&held.grant)).await {
        Ok(Ok(())) => tracing::debug!(
            target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
            epoch = held.grant.epoch, "released lease"
        ),
        Ok(Err(error)) => tracing::warn!(
            target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
            epoch = held.grant.epoch, error = %Escaped(error.message()),
            "could not release lease; it expires by itself within its ttl"
        ),
        Err(_) => tracing::warn!(
            target: "supervised", subsystem = %sub.name(), lease = %Escaped(&spec.name),
            epoch = held.grant.epoch,
            "releasing lease timed out; it expires by itself within its ttl"
        ),
    }
}
