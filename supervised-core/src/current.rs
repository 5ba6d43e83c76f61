//! The subsystem a supervised body belongs to, as a task-local, so code deep
//! inside a long iteration can show progress without naming itself.

use std::future::Future;

use crate::registry::Subsystem;

tokio::task_local! {
    static CURRENT: Subsystem;
}

/// Runs `fut` with `subsystem` as the current one.
pub(crate) fn scope<F: Future>(subsystem: Subsystem, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(subsystem, fut)
}

/// Beats the subsystem whose supervised body is running on this task.
///
/// For iterations that take longer than the declared tick: beat mid-way to
/// show progress instead of running a second heartbeat task. Returns `false`,
/// and records nothing, when called outside a supervised body (there is no
/// subsystem to credit); `true` when a beat was recorded.
///
/// Code inside a supervised body that spawns tasks does not carry the scope
/// into them: beat through a [`Subsystem`] handle there ([`current`] gives it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tokio_util::sync::CancellationToken;
///
/// assert!(!supervised_core::beat()); // not inside a supervised body
/// supervised_core::run_with_recover(CancellationToken::new(), "doc-beat", |_cancel| async {
///     assert!(supervised_core::beat());
/// })
/// .await;
/// assert_eq!(supervised_core::registry().subsystem("doc-beat").beats(), 1);
/// # }
/// ```
pub fn beat() -> bool {
    CURRENT.try_with(Subsystem::beat).is_ok()
}

/// The handle of the subsystem whose supervised body is running on this
/// task, if any.
///
/// ```
/// assert!(supervised_core::current().is_none());
/// ```
pub fn current() -> Option<Subsystem> {
    CURRENT.try_with(Subsystem::clone).ok()
}
