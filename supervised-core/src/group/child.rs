//! A group's child: its spec ([`Child`], [`Restart`]) and the task that runs
//! one run of it, with its entry current (for [`beat`](crate::beat)) and on
//! offer to the `#[supervised]` fn inside (`supervisor/handoff.rs`), and its panic caught.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::builder::GroupDef;
use super::report::GroupReport;
use crate::lease::Backend;
use crate::registry::current;
use crate::registry::Subsystem;
use crate::supervisor::{handoff, panic, ChildFailure, RunOutcome};
use crate::{Exit, Step, Supervision, Supervisor};

/// Whether a child is started again after it ends, with OTP's names.
///
/// | policy | after a normal end | after a failure |
/// | --- | --- | --- |
/// | [`Transient`](Restart::Transient) (default) | not restarted | restarted |
/// | [`Permanent`](Restart::Permanent) | restarted | restarted |
/// | [`Temporary`](Restart::Temporary) | not restarted | not restarted |
///
/// A normal end is `()` or `Ok`; a failure is `Err`, a panic, or a
/// `#[supervised]` fn that gave up (and re-raised its last failure). A
/// child the group stopped itself (for a shutdown or a sibling's restart)
/// ended neither way.
///
/// ```
/// assert_eq!(supervised::Restart::default(), supervised::Restart::Transient);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted: a loop that must never end.
    Permanent,
    /// Restarted after a failure only, as `#[supervised]` stops on a clean
    /// return.
    #[default]
    Transient,
    /// Never restarted, not even with its siblings under
    /// [`Strategy::OneForAll`](crate::Strategy::OneForAll) or
    /// [`RestForOne`](crate::Strategy::RestForOne): a one-off job.
    Temporary,
}

impl Restart {
    pub(super) fn after(self, failed: bool) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary => false,
        }
    }
}

/// The future one run of a child is, boxed: the group holds children of
/// many types.
pub(super) type RunFuture = Pin<Box<dyn Future<Output = ChildEnd> + Send>>;
pub(super) type Factory = Box<dyn FnMut(CancellationToken) -> RunFuture + Send>;

/// One run of a child from the future its factory made, judged by its
/// output. A combinator, not an `async` block: the block would hold the
/// run's future twice (as its capture and as what it awaits), doubling
/// every idle child's largest allocation.
pub(super) fn judged<Fut>(run: Fut) -> RunFuture
where
    Fut: Future + Send + 'static,
    Fut::Output: RunOutcome,
{
    Box::pin(run.map(|output| match output.failure() {
        None => ChildEnd::normal(),
        Some(error) => ChildEnd::failed(ChildFailure::Error(error)),
    }))
}

/// How a child's runs are made.
pub(super) enum RunSource {
    Future(Factory),
    /// A nested group, lent to each run's task and handed back when the run
    /// ends or is dropped.
    Group(Arc<Mutex<Option<GroupDef>>>),
}

/// A child of a [`Group`](crate::Group): a name and a factory of runs.
///
/// The factory is called with the run's [`CancellationToken`](https://docs.rs/tokio-util/0.7/tokio_util/sync/struct.CancellationToken.html) (a child
/// token of the group's) each time the child starts, and its future runs
/// in a task of its own. The output is `()` or `Result<T, E>` with
/// `E: Display` ([`RunOutcome`]): the group judges it where the type is
/// generic, so it cannot fall back to `Debug` as `#[supervised]` does.
///
/// ```
/// use std::time::Duration;
/// use supervised::{Child, Restart};
///
/// let sweep = Child::new("health-sweep", |cancel| async move {
///     cancel.cancelled().await;
/// })
/// .restart(Restart::Permanent)
/// .stop_timeout(Duration::from_secs(3));
/// assert_eq!(sweep.name(), "health-sweep");
/// ```
pub struct Child {
    pub(super) name: String,
    pub(super) restart: Restart,
    pub(super) stop_timeout: Duration,
    pub(super) start: RunSource,
    /// Whether it has metric series of its own; `None`: the default for
    /// how it was added.
    pub(super) own_metrics: Option<bool>,
    /// The lease settings of a gated child, shared with its wrapped factory.
    gate: Option<Arc<Mutex<Supervisor>>>,
    gated: bool,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

impl Child {
    /// How long a child may take to finish once its token is cancelled
    /// before its task is aborted, unless told otherwise.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

    /// A child named `name` (its registry name, see
    /// [`Group`](crate::Group#names)) whose runs `factory` makes, restarted
    /// [`Restart::Transient`]ly, with a 10 s stop timeout.
    pub fn new<F, Fut>(name: impl Into<String>, mut factory: F) -> Self
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutcome,
    {
        Child::with_start(
            name.into(),
            RunSource::Future(Box::new(move |cancel| judged(factory(cancel)))),
        )
    }

    /// A child with the defaults whose runs `start` makes.
    pub(super) fn with_start(name: String, start: RunSource) -> Self {
        Child {
            name,
            restart: Restart::default(),
            stop_timeout: Self::DEFAULT_STOP_TIMEOUT,
            start,
            own_metrics: None,
            gate: None,
            gated: false,
        }
    }

    /// Whether this child has metric series of its own in
    /// [`metrics`](crate::metrics) (`supervised_up{subsystem=...}` and the
    /// rest), besides being counted in its group's aggregates
    /// (`supervised_group_children{group=...}` and the rest).
    ///
    /// By default a child given to the [`Group`](crate::Group) builder has
    /// them, and a child added through a [`GroupHandle`](crate::GroupHandle)
    /// (the fleet: a worker per tenant) does not, so 100,000 tenants make a
    /// few series per group, not a million. Turn them on for the few fleet
    /// children worth a series each, or off for a static child.
    ///
    /// ```
    /// use supervised::{CancellationToken, Child};
    ///
    /// let vip = Child::new("tenant/acme", |cancel: CancellationToken| async move {
    ///     cancel.cancelled().await;
    /// })
    /// .own_metrics(true);
    /// # let _ = vip;
    /// ```
    pub fn own_metrics(mut self, own: bool) -> Self {
        self.own_metrics = Some(own);
        self
    }

    /// When it is restarted (default [`Restart::Transient`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long it may take to finish after its token is cancelled before
    /// its task is aborted (default 10 s). Within a shutdown, the group's
    /// [`shutdown_timeout`](crate::Group::shutdown_timeout) bounds it too.
    ///
    /// A `#[supervised]` fn run as the child has a stop timeout of its own
    /// (the attribute's `stop_timeout`, default 5 s): how long its body may
    /// take to return before the fn drops it and returns. The child's
    /// bounds the whole: keep the fn's shorter, so the fn ends by itself
    /// before the group aborts its task.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Gates the child on the lease `name`, so that of several replicas
    /// of a service one runs it at a time: each run of the child waits in
    /// [`Standby`](crate::SubsystemState::Standby) until it holds the
    /// lease, and [`Supervisor::lease`](crate::Supervisor::lease) describes
    /// the rest (renewal, loss, release; the ttl is 15 s unless
    /// [`lease_ttl`](Child::lease_ttl) says otherwise). Losing the lease
    /// cancels the factory's token and drops the future before the lease
    /// can expire; the child then stands by again without ending, so the
    /// group restarts it only for a failure of its own.
    ///
    /// A `#[supervised]` fn run by a gated child keeps the child's entry
    /// (standby while waiting, its own states while it runs), and its
    /// failures reach the group as they would without the lease (see
    /// [who restarts a `#[supervised]` child](crate::Group#who-restarts-a-supervised-child)).
    ///
    /// ```
    /// use supervised::Child;
    /// let scheduler = Child::new("scheduler", |cancel| async move { cancel.cancelled().await })
    ///     .lease("scheduler");
    /// # let _ = scheduler;
    /// ```
    pub fn lease(mut self, name: impl Into<String>) -> Self {
        self.configure(|gate| gate.lease_named(name));
        self.wrap_gated();
        self
    }

    /// The lease's ttl (default 15 s; see [`Supervisor::lease_ttl`](crate::Supervisor::lease_ttl)).
    /// Has an effect only with [`lease`](Child::lease).
    ///
    /// # Panics
    /// If `ttl` is under 50 ms.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.configure(|gate| gate.lease_ttl(ttl));
        self
    }

    /// Acquires the lease from `backend` instead of the process-wide one.
    /// Has an effect only with [`lease`](Child::lease).
    pub fn lease_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.configure(|gate| gate.lease_backend(backend));
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Changes the lease settings.
    fn configure(&mut self, change: impl FnOnce(Supervisor) -> Supervisor) {
        let gate = self
            .gate
            .get_or_insert_with(|| Arc::new(Mutex::new(Supervisor::new())));
        let mut gate = gate.lock().unwrap_or_else(|e| e.into_inner());
        *gate = change(gate.clone());
    }

    /// Runs each of the child's runs inside a lease-gated supervision that
    /// hands every failure up to the group. Done once; the settings are
    /// read when a run starts.
    fn wrap_gated(&mut self) {
        let (Some(gate), false) = (self.gate.clone(), self.gated) else {
            return;
        };
        let placeholder = RunSource::Future(Box::new(|_| {
            Box::pin(std::future::ready(ChildEnd::normal()))
        }));
        let RunSource::Future(factory) = std::mem::replace(&mut self.start, placeholder) else {
            return;
        };
        self.gated = true;
        let factory = Arc::new(Mutex::new(factory));
        let name = self.name.clone();
        self.start = RunSource::Future(Box::new(move |cancel| {
            let supervisor = gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .escalating();
            Box::pin(gated_run(supervisor, name.clone(), factory.clone(), cancel))
        }));
    }
}

/// One run of a lease-gated child: stand by, run the factory's future while
/// the lease is held, stand by again after a loss; end with the future's
/// own end.
async fn gated_run(
    supervisor: Supervisor,
    name: String,
    factory: Arc<Mutex<Factory>>,
    cancel: CancellationToken,
) -> ChildEnd {
    // Polled by the child's task, so this takes the child's entry.
    let sub = supervisor.register(&name);
    let mut supervision = Supervision::new(&supervisor, cancel, &sub);
    loop {
        let token = supervision.body_token();
        let run = (factory.lock().unwrap_or_else(|e| e.into_inner()))(token);
        // The entry on offer again, for a `#[supervised]` fn inside.
        let run = Offered {
            offer: Some(sub.clone()),
            run,
        };
        match supervision.run_once(run).await {
            Step::Restart => {}
            Step::Exit(Exit::Completed(ended)) => return ended,
            Step::Exit(Exit::Cancelled { .. }) => return ChildEnd::normal(),
            Step::Exit(Exit::GaveUp(_)) => {
                return ChildEnd::failed(
                    supervision
                        .take_escalated()
                        .unwrap_or_else(|| ChildFailure::Error("failed".to_owned())),
                )
            }
        }
    }
}

/// A gated child's run, with its entry on offer until a `#[supervised]` fn
/// inside takes it (as [`ChildRun`] offers it to the gate).
struct Offered {
    offer: Option<Subsystem>,
    run: RunFuture,
}

impl Future for Offered {
    type Output = ChildEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ChildEnd> {
        let this = self.get_mut();
        let previous = handoff::offer(&mut this.offer);
        // Restored by a guard: a panic in the poll unwinds through here to
        // the gate's engine, which catches it.
        let _restore = Restore {
            slot: &mut this.offer,
            previous: Some(previous),
        };
        this.run.as_mut().poll(cx)
    }
}

/// Undoes `handoff::offer` when dropped.
struct Restore<'a> {
    slot: &'a mut Option<Subsystem>,
    previous: Option<Option<Subsystem>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        handoff::withdraw(self.slot, self.previous.take().flatten());
    }
}

impl RunOutcome for ChildEnd {
    fn failure(&self) -> Option<String> {
        self.failure.as_ref().map(ToString::to_string)
    }
}

/// How one run of a child ended by itself.
#[derive(Debug)]
pub(super) struct ChildEnd {
    pub(super) failure: Option<ChildFailure>,
    /// A nested group's report. Boxed: a `ChildEnd` is every child task's
    /// output, and tokio sizes each task for it.
    pub(super) report: Option<Box<GroupReport>>,
    /// The run's `supervised` span, if a subscriber wanted one: the group
    /// logs how the run ended (the restart, the give-up) inside it.
    pub(super) span: Option<Box<tracing::Span>>,
}

impl ChildEnd {
    pub(super) fn normal() -> Self {
        ChildEnd {
            failure: None,
            report: None,
            span: None,
        }
    }

    pub(super) fn failed(failure: ChildFailure) -> Self {
        ChildEnd {
            failure: Some(failure),
            report: None,
            span: None,
        }
    }
}

/// One run of a child as its task polls it: the child's entry is current
/// and on offer during every poll, and a panic ends the run as a failure.
pub(super) struct ChildRun {
    run: Option<RunFuture>,
    current: Option<Subsystem>,
    offer: Option<Subsystem>,
    /// One `supervised` span per run, as a `Supervisor`'s runs have; boxed
    /// and only when a subscriber wants it.
    span: Option<Box<tracing::Span>>,
}

impl ChildRun {
    /// Calls `factory` (catching a panic in the call itself) for a run
    /// whose entry is `entry`.
    pub(super) fn start(
        factory: &mut Factory,
        cancel: CancellationToken,
        entry: &Subsystem,
    ) -> Self {
        panic::install_hook();
        // The fields are read only when a subscriber wants the span.
        let span = tracing::info_span!(
            target: "supervised", "supervised",
            subsystem = %entry.name(),
            group = entry.group_path().as_deref(),
            generation = entry.restarts()
        );
        let span = (!span.is_disabled()).then(|| Box::new(span));
        let _entered = span.as_deref().map(tracing::Span::enter);
        let mut current = Some(entry.clone());
        // On offer during the call too: a factory may register
        // synchronously (`Supervisor::run`) rather than in an async body.
        let mut offer = Some(entry.clone());
        let outside = current::swap_in(&mut current);
        let offered = handoff::offer(&mut offer);
        let run = panic::catch_in_body(|| factory(cancel));
        handoff::withdraw(&mut offer, offered);
        current::leave(&mut current, outside);
        let run = match run {
            Ok(run) => run,
            Err(caught) => Box::pin(std::future::ready(ChildEnd::failed(ChildFailure::Panic {
                message: caught.message,
                location: caught.location,
            }))),
        };
        drop(_entered);
        // Claimed in the call (see `poll`): the fn's engine has its spans.
        let span = span.filter(|_| offer.is_some());
        ChildRun {
            run: Some(run),
            current,
            offer,
            span,
        }
    }

    /// A run that is not polled under a child's entry (a nested group's).
    pub(super) fn plain(run: RunFuture) -> Self {
        ChildRun {
            run: Some(run),
            current: None,
            offer: None,
            span: None,
        }
    }
}

impl Future for ChildRun {
    type Output = ChildEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ChildEnd> {
        let this = self.get_mut();
        let Some(run) = this.run.as_mut() else {
            return Poll::Pending;
        };
        let entered = this.span.as_deref().map(tracing::Span::enter);
        let outside = current::swap_in(&mut this.current);
        let offered = handoff::offer(&mut this.offer);
        let polled = panic::catch_in_body(|| run.as_mut().poll(cx));
        handoff::withdraw(&mut this.offer, offered);
        current::leave(&mut this.current, outside);
        drop(entered);
        if this.offer.is_none() && this.current.is_some() {
            // A supervised fn claimed the entry: its engine opens a span
            // per run of its own, and a second span of the same name and
            // fields around it would double every log line's prefix.
            this.span = None;
        }
        let ended = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(ended)) => ended,
            Err(caught) => ChildEnd::failed(ChildFailure::Panic {
                message: caught.message,
                location: caught.location,
            }),
        };
        // The future is dropped here, in the task, before the group hears
        // of the end.
        this.run = None;
        let mut ended = this.with_handed_up(ended);
        ended.span = this.span.take();
        Poll::Ready(ended)
    }
}

impl ChildRun {
    /// A `#[supervised]` fn that ended at a failure for its group to
    /// restart re-raised only its payload or error; the failure it handed
    /// up as it was caught (a panic's location included) says more.
    fn with_handed_up(&self, mut ended: ChildEnd) -> ChildEnd {
        let Some(entry) = self.current.as_ref() else {
            return ended;
        };
        let handed_up = handoff::take_handed_up(entry);
        if let (Some(failure), Some(_)) = (handed_up, &ended.failure) {
            ended.failure = Some(failure);
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a child's task holds while it is idle: each run's boxed future
    /// is the user's future and little more, and the task's output is small
    /// (tokio sizes every task for the larger of its future and output).
    #[test]
    fn an_idle_childs_allocations_stay_close_to_its_own_future() {
        let user_future = |cancel: CancellationToken| {
            let state = [7u8; 512];
            async move {
                cancel.cancelled().await;
                std::hint::black_box(state);
            }
        };
        let own = std::mem::size_of_val(&user_future(CancellationToken::new()));
        let RunSource::Future(mut factory) = Child::new("sized", user_future).start else {
            unreachable!("Child::new makes a future child");
        };
        let run = factory(CancellationToken::new());
        let boxed = std::mem::size_of_val(&*run);
        assert!(
            boxed <= own + 16,
            "a run's box is {boxed} B for a {own}-byte future: held twice?"
        );
        assert!(
            std::mem::size_of::<ChildEnd>() <= 64,
            "ChildEnd is {} B",
            std::mem::size_of::<ChildEnd>()
        );
    }
}
