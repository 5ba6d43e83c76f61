//! How a group child's name reaches the `#[supervised]` fn it runs.
//!
//! While the group polls a child's future, the child's registry entry sits
//! in a thread-local "claim". The first [`Supervisor::register`] on that
//! stack (the outermost supervised fn of the child) takes it instead of
//! registering its own name; later ones find it empty and keep theirs. The
//! pattern is `current.rs`'s: moved in before each poll, back out after, so
//! it is visible only within the child's own polls.
//!
//! [`Supervisor::register`]: crate::Supervisor::register

use std::cell::Cell;
use std::mem::ManuallyDrop;

use crate::registry::Subsystem;

thread_local! {
    static CLAIM: Cell<ManuallyDrop<Option<Subsystem>>> =
        const { Cell::new(ManuallyDrop::new(None)) };
}

/// Offers the entry in `slot` for the duration of a poll; returns what it
/// replaces, for [`leave`].
pub(super) fn swap_in(slot: &mut Option<Subsystem>) -> Option<Subsystem> {
    let offered = ManuallyDrop::new(slot.take());
    ManuallyDrop::into_inner(CLAIM.with(|c| c.replace(offered)))
}

/// Undoes [`swap_in`]: an unclaimed entry goes back into `slot` (for the
/// child's next poll) and `previous` is offered again.
pub(super) fn leave(slot: &mut Option<Subsystem>, previous: Option<Subsystem>) {
    *slot = ManuallyDrop::into_inner(CLAIM.with(|c| c.replace(ManuallyDrop::new(previous))));
}

/// Takes the entry on offer, if any: called by `Supervisor::register`.
pub(crate) fn take() -> Option<Subsystem> {
    CLAIM.with(|c| ManuallyDrop::into_inner(c.replace(ManuallyDrop::new(None))))
}
