//! The entry points that drive a whole supervision: [`Supervisor::run`],
//! [`Supervisor::run_registered`] and [`run_with_recover`].

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::{Exit, RunOutcome, Step, Supervision, Supervisor};
use crate::registry::Subsystem;

impl Supervisor {
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
        cancel: CancellationToken,
        name: &str,
        f: F,
    ) -> Exit<Fut::Output>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future,
        Fut::Output: RunOutcome,
    {
        let sub = self.register(name);
        self.run_registered(cancel, &sub, f).await
    }

    /// [`run`](Supervisor::run) for a subsystem registered beforehand, so
    /// the body's own code can hold the same handle.
    pub async fn run_registered<F, Fut>(
        &self,
        cancel: CancellationToken,
        sub: &Subsystem,
        mut f: F,
    ) -> Exit<Fut::Output>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future,
        Fut::Output: RunOutcome,
    {
        let mut supervision = Supervision::new(self, cancel, sub);
        loop {
            let body = f(supervision.body_token());
            if let Step::Exit(exit) = supervision.run_once(body).await {
                return exit;
            }
        }
    }
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
/// use supervised::run_with_recover;
/// use supervised::CancellationToken;
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
    let _exit = Supervisor::new().run(cancel, name, f).await;
}
