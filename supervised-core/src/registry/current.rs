//! The subsystem a supervised body belongs to, so code deep inside a long
//! iteration can show progress without naming itself.
//!
//! It is a thread-local set for the duration of each poll of the body, not a
//! `tokio::task_local!`: the supervisor moves the run's handle in before the
//! poll and back out after it, which costs two cell swaps per poll and no
//! reference-count traffic. Within a poll the thread is the task, so what
//! code sees is the same as with a task-local.

use std::cell::Cell;
use std::mem::ManuallyDrop;

use super::Subsystem;

thread_local! {
    // `ManuallyDrop`: a local without drop glue needs no destructor
    // registration, so each access is a plain thread-local address. It holds
    // a handle only during a poll (`enter` restores it, even on unwind), so
    // a thread never exits with one in it.
    static CURRENT: Cell<ManuallyDrop<Option<Subsystem>>> =
        const { Cell::new(ManuallyDrop::new(None)) };
}

/// Makes the handle in `slot` the current subsystem and returns the one it
/// replaces, for [`leave`]. A poll is bracketed by the two without a drop
/// guard: the supervisor's poll catches every unwind between them.
#[inline]
pub(crate) fn swap_in(slot: &mut Option<Subsystem>) -> Option<Subsystem> {
    let handle = ManuallyDrop::new(slot.take());
    ManuallyDrop::into_inner(CURRENT.with(|c| c.replace(handle)))
}

/// Undoes [`swap_in`]: the handle goes back into `slot` and `previous` is
/// current again.
#[inline]
pub(crate) fn leave(slot: &mut Option<Subsystem>, previous: Option<Subsystem>) {
    *slot = ManuallyDrop::into_inner(CURRENT.with(|c| c.replace(ManuallyDrop::new(previous))));
}

/// Whether a supervised body is being polled on this thread.
pub(crate) fn is_set() -> bool {
    with_current(|sub| sub.is_some())
}

/// Calls `f` with the current subsystem, if any, leaving it in place.
fn with_current<R>(f: impl FnOnce(Option<&Subsystem>) -> R) -> R {
    let handle = CURRENT.with(|c| ManuallyDrop::into_inner(c.take()));
    let result = f(handle.as_ref());
    CURRENT.with(|c| c.set(ManuallyDrop::new(handle)));
    result
}

/// Beats the subsystem whose supervised body is running on this task.
///
/// For iterations that take longer than the declared tick: beat mid-way to
/// show progress instead of running a second heartbeat task. Returns `false`,
/// and records nothing, when called outside a supervised body (there is no
/// subsystem to credit); `true` when a beat was recorded.
///
/// Code inside a supervised body that spawns tasks does not carry the
/// subsystem into them: beat through a [`Subsystem`] handle there
/// ([`current`] gives it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use supervised::CancellationToken;
///
/// assert!(!supervised::beat()); // not inside a supervised body
/// supervised::run_with_recover(CancellationToken::new(), "doc-beat", |_cancel| async {
///     assert!(supervised::beat());
/// })
/// .await;
/// assert_eq!(supervised::registry().subsystem("doc-beat").beats(), 1);
/// # }
/// ```
pub fn beat() -> bool {
    with_current(|sub| sub.map(Subsystem::beat).is_some())
}

/// The handle of the subsystem whose supervised body is running on this
/// task, if any.
///
/// ```
/// assert!(supervised::current().is_none());
/// ```
pub fn current() -> Option<Subsystem> {
    with_current(|sub| sub.cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn swap_in_sets_the_handle_until_leave_restores_both_sides() {
        let registry = Registry::new();
        let mut outer_slot = Some(registry.subsystem("outer"));
        let mut inner_slot = Some(registry.subsystem("inner"));
        let outside = swap_in(&mut outer_slot);
        assert!(outside.is_none() && outer_slot.is_none());
        assert_eq!(current().as_ref().map(Subsystem::name), Some("outer"));
        let outer = swap_in(&mut inner_slot);
        assert!(beat());
        assert_eq!(current().as_ref().map(Subsystem::name), Some("inner"));
        assert!(is_set());
        leave(&mut inner_slot, outer);
        assert_eq!(current().as_ref().map(Subsystem::name), Some("outer"));
        leave(&mut outer_slot, outside);
        assert!(current().is_none() && !is_set() && !beat());
        assert_eq!(outer_slot.as_ref().map(Subsystem::beats), Some(0));
        assert_eq!(inner_slot.as_ref().map(Subsystem::beats), Some(1));
    }
}
