//! How a handle keeps its registry's counts (`tally.rs`) and staleness
//! watch (`watch.rs`) right: it counts itself in on registration, moves
//! itself between counts on each change of state or group, and arms the
//! watch again after a change that could make it stale sooner. All under
//! its own lock, never on the beat path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{staleness_reference, Meta, Subsystem};
use crate::registry::instant::deadline;
use crate::registry::{Registry, SubsystemKind, SubsystemState};

/// What the staleness watch reads of a handle, under its lock.
pub(crate) struct Watched {
    /// How many times it was armed: items queued at an older count are
    /// ignored.
    pub(crate) armed: u32,
    /// The instant after which it is stale, unless it beats first; `None`
    /// without a tick, and in standby or paused, when it is never stale.
    pub(crate) stale_after_at: Option<Instant>,
    /// Its group and its silence's start, while it runs with a tick in a
    /// group.
    pub(crate) quiet_since: Option<(Arc<str>, Instant)>,
}

impl Subsystem {
    /// Counts the entry in its registry, once the registry holds it (not
    /// if it was removed first: a removal is final).
    pub(in crate::registry) fn count_in(&self, registry: &Registry) {
        {
            let mut meta = self.meta();
            if meta.removed || meta.counted.is_some() {
                return;
            }
            let tally = registry.tally(group_of(&meta));
            tally.add(self.state(), self.counted_restarts(&meta));
            meta.counted = Some(tally);
        }
        self.arm();
    }

    /// Takes the entry out of its registry's counts for good (its restarts
    /// stay in its group's total) and makes the watch drop it.
    pub(in crate::registry) fn count_out(&self) {
        let mut meta = self.meta();
        meta.removed = true;
        if let Some(tally) = meta.counted.take() {
            tally.remove(self.state());
        }
        self.0.armed.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves a counted entry to the tally of the group its membership now
    /// names, if that changed. Under its lock, with `old_group` the group
    /// it was counted in.
    pub(super) fn recount(&self, meta: &mut Meta, old_group: Option<Arc<str>>) {
        if group_of(meta) == old_group.as_ref() {
            return;
        }
        let Some(old) = meta.counted.take() else {
            return;
        };
        old.remove(self.state());
        let Some(home) = self.home() else { return };
        let tally = home.tally(group_of(meta));
        tally.add(self.state(), self.counted_restarts(meta));
        meta.counted = Some(tally);
    }

    /// Swaps the state in, and moves the entry between its counts; returns
    /// the state before.
    pub(super) fn swap_state(&self, state: SubsystemState) -> SubsystemState {
        let meta = self.meta();
        let old = SubsystemState::from_u8(self.0.state.swap(state.to_u8(), Ordering::Relaxed));
        if let Some(tally) = &meta.counted {
            tally.moved(old, state);
        }
        old
    }

    /// Counts one more restart, in its group's total too.
    pub(super) fn add_restart(&self, meta: &Meta) {
        self.0.restarts.fetch_add(1, Ordering::Relaxed);
        if let Some(tally) = &meta.counted {
            if kind_of(meta) == SubsystemKind::Subsystem {
                tally.count_restart();
            }
        }
    }

    /// Its restarts as its group's total counts them: a nested group's own
    /// count is of its children's, totalled in its own tally.
    fn counted_restarts(&self, meta: &Meta) -> u64 {
        if kind_of(meta) == SubsystemKind::Subsystem {
            self.restarts()
        } else {
            0
        }
    }

    /// Whether a change from `old` to `new` can make it stale sooner, or
    /// start a silence its group's watch must see: it leaves standby or
    /// pause, or it runs again.
    pub(super) fn arms_on(old: SubsystemState, new: SubsystemState) -> bool {
        let watched = |s| !matches!(s, SubsystemState::Standby | SubsystemState::Paused);
        (new == SubsystemState::Running && old != SubsystemState::Running)
            || (watched(new) && !watched(old))
    }

    /// Queues it in its registry's watch afresh (see `watch.rs`). Not under
    /// its lock: a look holds the watch while it reads entries, so the
    /// watch is never taken under an entry's lock.
    pub(super) fn arm(&self) {
        if !cfg!(any(
            feature = "http",
            feature = "prometheus",
            feature = "metrics"
        )) {
            // Nothing reads the watch without a report.
            return;
        }
        let Some(home) = self.home() else { return };
        let armed = self.0.armed.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let Some(watched) = self.watched() else {
            return;
        };
        // An arm (or a removal) since this one's queues its own items: only
        // the last arm queues, so an entry waits in each queue once.
        if watched.armed == armed
            && (watched.stale_after_at.is_some() || watched.quiet_since.is_some())
        {
            home.watch().queue(self, &watched);
        }
    }

    /// How many times it was armed (read without its lock).
    pub(in crate::registry) fn arms(&self) -> u32 {
        self.0.armed.load(Ordering::Relaxed)
    }

    /// What the watch reads of it now; `None` once it was removed or
    /// while it is not counted.
    pub(in crate::registry) fn watched(&self) -> Option<Watched> {
        let meta = self.meta();
        if meta.removed || meta.counted.is_none() {
            return None;
        }
        let armed = self.arms();
        let limit = meta.stale_limit()?;
        let state = self.state();
        let stale_from = meta.lease.as_deref().and_then(|lease| lease.stale_from);
        let since = staleness_reference(self.last_beat(), self.0.registered_at, stale_from);
        let watched = !matches!(state, SubsystemState::Standby | SubsystemState::Paused);
        Some(Watched {
            armed,
            stale_after_at: watched.then(|| deadline(since, limit)),
            quiet_since: group_of(&meta)
                .filter(|_| state == SubsystemState::Running)
                .map(|group| (Arc::clone(group), since)),
        })
    }

    /// Its address, unique while it lives: the watch's key for it.
    #[cfg_attr(
        not(any(feature = "http", feature = "prometheus", feature = "metrics")),
        allow(dead_code)
    )]
    pub(in crate::registry) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The registry that holds it, if it is in one that still exists.
    pub(super) fn home(&self) -> Option<Registry> {
        self.0
            .home
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map(Registry)
    }
}

fn group_of(meta: &Meta) -> Option<&Arc<str>> {
    meta.membership.as_ref().and_then(|m| m.group.as_ref())
}

fn kind_of(meta: &Meta) -> SubsystemKind {
    meta.membership
        .as_ref()
        .map_or(SubsystemKind::Subsystem, |m| m.kind)
}
