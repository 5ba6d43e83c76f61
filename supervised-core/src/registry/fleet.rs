//! A group's fleet in the registry: children added at run time, registered
//! beyond the cap; the index of the entries not running, which state
//! filters read; the index of the entries with metric series of their
//! own, which the metrics read; and removal, which takes an entry out of
//! the map, the indexes and the counts.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use dashmap::mapref::entry::Entry;

use super::{Key, Registry, Subsystem, SubsystemState};

impl Registry {
    /// The handle for `name` as one of a group's fleet (a child added at run
    /// time), registering it without taking a slot of the cap if it is new.
    /// `series`: whether it gets metric series of its own.
    pub(crate) fn fleet_subsystem(&self, name: &str, series: bool) -> Subsystem {
        if let Some(existing) = self.0.subsystems.get(name) {
            return existing.key().0.clone();
        }
        let handle = Subsystem::new(name);
        handle.mark_fleet(series);
        match self.0.subsystems.entry(Key(handle)) {
            Entry::Occupied(existing) => existing.key().0.clone(),
            Entry::Vacant(slot) => {
                self.0.fleet.fetch_add(1, Ordering::Relaxed);
                let handle = slot.insert(()).key().0.clone();
                self.took_in(&handle);
                handle
            }
        }
    }

    /// Whether `sub` is the entry registered under its name.
    pub(super) fn holds(&self, sub: &Subsystem) -> bool {
        self.0
            .subsystems
            .get(sub.name())
            .is_some_and(|key| key.key().0.same_as(sub))
    }

    /// Puts `sub` in the `attention` index or takes it out, by its state
    /// now; again if the state changed meanwhile, so the last change always
    /// leaves the index right.
    pub(super) fn index_state(&self, sub: &Subsystem) {
        loop {
            let attentive = sub.state() != SubsystemState::Running;
            if attentive && self.holds(sub) {
                self.0.attention.insert(Key(sub.clone()), sub.clone());
            } else if !attentive {
                self.0
                    .attention
                    .remove_if(sub.name(), |_, held| held.same_as(sub));
            }
            if (sub.state() != SubsystemState::Running) == attentive {
                return;
            }
        }
    }

    /// The entries that are not running, as the index has them, each
    /// checked to still be this registry's.
    #[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
    pub(crate) fn not_running(&self) -> Vec<Subsystem> {
        self.0
            .attention
            .iter()
            .map(|e| e.value().clone())
            .filter(|sub| self.holds(sub))
            .collect()
    }

    /// Puts `sub` in the index of entries with series of their own or
    /// takes it out, as `index_state` does for states.
    pub(super) fn index_series(&self, sub: &Subsystem) {
        loop {
            let wanted = sub.has_series();
            if wanted && self.holds(sub) {
                self.0.series.insert(Key(sub.clone()), sub.clone());
            } else if !wanted {
                self.0
                    .series
                    .remove_if(sub.name(), |_, held| held.same_as(sub));
            }
            if sub.has_series() == wanted {
                return;
            }
        }
    }

    /// The entries with series of their own, each checked to still be
    /// this registry's and to want them.
    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    pub(crate) fn with_series(&self) -> Vec<Subsystem> {
        self.0
            .series
            .iter()
            .map(|e| e.value().clone())
            .filter(|sub| sub.has_series() && self.holds(sub))
            .collect()
    }

    /// The staleness watch (see `watch.rs`), locked. Never taken under an
    /// entry's lock.
    pub(super) fn watch(&self) -> MutexGuard<'_, super::watch::Watch> {
        self.0.watch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `sub`'s entry, if the entry under its name is `sub` itself
    /// (not another handle registered under the same name since).
    pub(crate) fn forget(&self, sub: &Subsystem) {
        if self
            .0
            .subsystems
            .remove_if(sub.name(), |key, _| key.0.same_as(sub))
            .is_some()
        {
            let counter = if sub.in_fleet() {
                &self.0.fleet
            } else {
                &self.0.count
            };
            counter.fetch_sub(1, Ordering::Relaxed);
            self.0
                .attention
                .remove_if(sub.name(), |_, held| held.same_as(sub));
            self.0
                .series
                .remove_if(sub.name(), |_, held| held.same_as(sub));
            // Its restarts stay in its group's total, which never goes down.
            sub.count_out();
            // After the removal, so a handle remembered from before it is
            // never taken for current.
            self.0.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Removes every entry in the group at `path` or in a group nested in
    /// it: a removed nested group takes its children with it.
    pub(crate) fn forget_group(&self, path: &str) {
        let nested = format!("{path}/");
        let members: Vec<Subsystem> = self
            .0
            .subsystems
            .iter()
            .map(|e| e.key().0.clone())
            .filter(|s| {
                s.group_path()
                    .is_some_and(|g| g == path || g.starts_with(&nested))
            })
            .collect();
        for member in members {
            self.forget(&member);
        }
    }
}
