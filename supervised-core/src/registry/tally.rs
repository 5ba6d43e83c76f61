//! Counts by group and state, kept on every change of an entry's state,
//! group or restarts, so that a summary or a scrape of 100,000 entries
//! reads a few counters instead of every entry.
//!
//! Each registered entry is counted in exactly one [`Tally`]: its group's,
//! or the one of entries in no group. The entry moves itself between
//! counts under its own lock (`subsystem/counted.rs`), so a state change,
//! a removal and a move to another group never count it twice or lose it.
//! A reader adds the counters up without any lock of an entry; under
//! concurrent changes it may see one entry between two counts for an
//! instant, never a count that drifts.

// Kept for the reports (the HTTP routes and the metrics), which read it.
#![cfg_attr(
    not(any(feature = "http", feature = "prometheus", feature = "metrics")),
    allow(dead_code)
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Registry, SubsystemState};

/// The entries directly in one group (or in none).
#[derive(Default)]
pub(crate) struct Tally {
    /// By the state's number.
    states: [AtomicU64; SubsystemState::COUNT],
    /// Restarts of its children (not of nested groups' own entries, whose
    /// count is of their own children's restarts, totalled in their own
    /// tally), including those of children since removed: it never goes
    /// down.
    restarts: AtomicU64,
}

impl Tally {
    pub(super) fn add(&self, state: SubsystemState, restarts: u64) {
        self.slot(state).fetch_add(1, Ordering::Relaxed);
        self.restarts.fetch_add(restarts, Ordering::Relaxed);
    }

    pub(super) fn remove(&self, state: SubsystemState) {
        self.slot(state).fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn moved(&self, from: SubsystemState, to: SubsystemState) {
        if from != to {
            self.slot(to).fetch_add(1, Ordering::Relaxed);
            self.slot(from).fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    fn slot(&self, state: SubsystemState) -> &AtomicU64 {
        &self.states[usize::from(state.to_u8())]
    }

    /// Entries by state's number. An entry takes itself off a count only
    /// after it was added to it, under its own lock, so no count reads
    /// below zero.
    pub(crate) fn states(&self) -> [u64; SubsystemState::COUNT] {
        std::array::from_fn(|i| self.states[i].load(Ordering::Relaxed))
    }

    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

impl Registry {
    /// The tally of the entries directly in `group` (`None`: in no group),
    /// made on first use. A group's tally outlives its entries, as its
    /// restart total must: a few words per group path ever used.
    pub(super) fn tally(&self, group: Option<&Arc<str>>) -> Arc<Tally> {
        let mut tallies = self.0.tallies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tally) = tallies.get(&group.cloned()) {
            return Arc::clone(tally);
        }
        Arc::clone(tallies.entry(group.cloned()).or_default())
    }

    /// Every tally, by group path (`None` first: entries in no group).
    pub(crate) fn tallies(&self) -> BTreeMap<Option<Arc<str>>, Arc<Tally>> {
        self.0
            .tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
