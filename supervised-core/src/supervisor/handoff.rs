//! The one place a group and the `#[supervised]` fn it runs as a child meet,
//! both ways through thread-locals that live only within the child's polls.
//!
//! - **Down: the child's entry.** While the group polls a child's future,
//!   the child's registry entry is on offer. The first
//!   [`Supervisor::register`] on that stack (the outermost supervised fn of
//!   the child) takes it instead of registering its own name; later ones
//!   find the offer empty and keep theirs. The pattern is `current.rs`'s:
//!   moved in before each poll, back out after.
//! - **Up: the failure.** A child whose group restarts it on every failure
//!   (see [`Subsystem::group_restarts`]) has its supervised fn end at its
//!   first failure. The fn can re-raise only a payload (a panic's location
//!   is gone by then), so its engine leaves the failure here as it was
//!   caught, and the group takes it when the child's run ends in the same
//!   poll.
//!
//! [`Supervisor::register`]: crate::Supervisor::register

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;

use super::failure::ChildFailure;
use crate::registry::Subsystem;

thread_local! {
    static OFFER: Cell<ManuallyDrop<Option<Subsystem>>> =
        const { Cell::new(ManuallyDrop::new(None)) };
    static HANDED_UP: RefCell<Option<(Subsystem, ChildFailure)>> = const { RefCell::new(None) };
}

/// Offers the entry in `slot` for the duration of a poll; returns what it
/// replaces, for [`withdraw`].
pub(crate) fn offer(slot: &mut Option<Subsystem>) -> Option<Subsystem> {
    let offered = ManuallyDrop::new(slot.take());
    ManuallyDrop::into_inner(OFFER.with(|c| c.replace(offered)))
}

/// Undoes [`offer`]: an unclaimed entry goes back into `slot` (for the
/// child's next poll) and `previous` is offered again.
pub(crate) fn withdraw(slot: &mut Option<Subsystem>, previous: Option<Subsystem>) {
    *slot = ManuallyDrop::into_inner(OFFER.with(|c| c.replace(ManuallyDrop::new(previous))));
}

/// Takes the entry on offer, if any: called by `Supervisor::register`.
pub(crate) fn claim() -> Option<Subsystem> {
    OFFER.with(|c| ManuallyDrop::into_inner(c.replace(ManuallyDrop::new(None))))
}

/// Leaves `failure`, the one that ends `sub`'s supervised fn, for its group.
pub(crate) fn hand_up(sub: &Subsystem, failure: ChildFailure) {
    // `try_with`: the thread may be tearing down its locals.
    let _ = HANDED_UP.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some((sub.clone(), failure));
        }
    });
}

/// The failure handed up for `entry`, if the fn that ran it left one. One
/// left for another entry (a fn whose caller caught its re-raise) is
/// dropped: it belongs to nobody now.
pub(crate) fn take_handed_up(entry: &Subsystem) -> Option<ChildFailure> {
    let (sub, failure) = HANDED_UP
        .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten()?;
    sub.same_as(entry).then_some(failure)
}
