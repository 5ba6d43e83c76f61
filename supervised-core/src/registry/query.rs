//! Reading part of a large registry: the entries that match a filter, and
//! counts by group and state, without copying every entry's status.
//!
//! A filter is checked on a handle's cheap facts (its name, state, group and
//! staleness, read under one lock) before anything is copied out, so an
//! answer about 10 failed entries of 100,000 copies 10 statuses. The
//! summary of every entry and the metrics make no pass at all
//! (`counts.rs`).

// The filters serve the HTTP reports only; the metrics use the one pass.
#![cfg_attr(not(feature = "http"), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::status::{SubsystemKind, SubsystemState, SubsystemStatus};
use super::{Registry, Subsystem};

/// Which entries a reader wants. Every condition that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// A group's path: the group's own entry, its children, and everything
    /// in the groups nested under it.
    pub(crate) group: Option<String>,
    /// Any of these states (a bit per state).
    pub(crate) states: Option<u8>,
    pub(crate) stale: Option<bool>,
    /// The name starts with it.
    pub(crate) prefix: Option<String>,
}

impl Filter {
    pub(crate) fn state_bit(state: SubsystemState) -> u8 {
        1 << state.to_u8()
    }

    fn admits(&self, name: &str, facts: &Facts) -> bool {
        if self.prefix.as_deref().is_some_and(|p| !name.starts_with(p)) {
            return false;
        }
        if self
            .states
            .is_some_and(|bits| bits & Self::state_bit(facts.state) == 0)
        {
            return false;
        }
        if self.stale.is_some_and(|stale| stale != facts.stale) {
            return false;
        }
        match &self.group {
            None => true,
            Some(path) => {
                let own = facts.kind == SubsystemKind::Group && name == path;
                let in_path = |p: &str| {
                    p == path || (p.starts_with(path.as_str()) && p[path.len()..].starts_with('/'))
                };
                own || (facts.kind == SubsystemKind::Group && in_path(name))
                    || facts.group.as_deref().is_some_and(in_path)
            }
        }
    }
}

/// What a filter and a summary read of one handle.
pub(crate) struct Facts {
    pub(crate) state: SubsystemState,
    pub(crate) kind: SubsystemKind,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) stale: bool,
    pub(crate) advisory: bool,
    /// A group's share rule (`Group::min_healthy_percent`).
    pub(crate) min_healthy_percent: Option<u8>,
}

impl Facts {
    /// The health rule of [`Health`](super::Health): a critical entry that
    /// is failed or stale makes the set unhealthy.
    pub(super) fn healthy(&self) -> bool {
        self.advisory || (self.state != SubsystemState::Failed && !self.stale)
    }
}

/// Whether `found` passes the health rule as `Health::of` applies it:
/// every critical entry healthy, and every critical group with a share rule
/// among them at or above its share of healthy children (those among
/// `found`, paused ones left out).
fn healthy<'a>(found: impl Iterator<Item = (&'a str, &'a Facts)> + Clone) -> bool {
    if !found.clone().all(|(_, f)| f.healthy()) {
        return false;
    }
    let mut shares: std::collections::HashMap<&str, (u8, u64, u64)> = found
        .clone()
        .filter(|(_, f)| !f.advisory)
        .filter_map(|(name, f)| Some((name, (f.min_healthy_percent?, 0, 0))))
        .collect();
    if shares.is_empty() {
        return true;
    }
    for (_, f) in found.filter(|(_, f)| f.state != SubsystemState::Paused) {
        if let Some((_, total, passing)) = f.group.as_deref().and_then(|g| shares.get_mut(g)) {
            *total += 1;
            *passing += u64::from(f.state != SubsystemState::Failed && !f.stale);
        }
    }
    shares
        .values()
        .all(|&(percent, total, passing)| total == 0 || passing * 100 >= u64::from(percent) * total)
}

/// One page of matching entries, sorted by name.
pub(crate) struct Page {
    pub(crate) statuses: Vec<SubsystemStatus>,
    /// Whether no critical (not advisory) matching entry, on this page or
    /// a later one, is failed or stale.
    pub(crate) healthy: bool,
    /// The last name on this page when more entries match after it: the
    /// `after` of the next page.
    pub(crate) next: Option<String>,
}

/// Counts of the entries directly in one group (or in none).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GroupCounts {
    pub(crate) total: u64,
    /// Indexed by the state's number: running, backing_off, stopped,
    /// failed, standby, paused.
    pub(crate) states: [u64; SubsystemState::COUNT],
    pub(crate) stale: u64,
}

/// Counts by group and state of the matching entries, and the first failed
/// and stale names.
pub(crate) struct Summary {
    pub(crate) total: u64,
    /// By group path; `None` for entries in no group.
    pub(crate) groups: BTreeMap<Option<Arc<str>>, GroupCounts>,
    /// Whether no critical (not advisory) matching entry is failed or stale.
    pub(crate) healthy: bool,
    /// Failed entries, sorted by name, at most the limit asked for.
    pub(crate) failed: Vec<String>,
    pub(crate) failed_total: u64,
    pub(crate) stale: Vec<String>,
    pub(crate) stale_total: u64,
    /// Matching entries that are failed or stale (each counted once).
    pub(crate) unhealthy: u64,
}

impl Registry {
    /// The handles that match `filter`, in no order.
    fn matching(&self, filter: &Filter, now: Instant) -> Vec<(Subsystem, Facts)> {
        // The name and the state need no lock: check them first.
        let check = |handle: &Subsystem| {
            if filter
                .prefix
                .as_deref()
                .is_some_and(|p| !handle.name().starts_with(p))
            {
                return None;
            }
            if filter
                .states
                .is_some_and(|bits| bits & Filter::state_bit(handle.state()) == 0)
            {
                return None;
            }
            let facts = handle.facts(now);
            filter
                .admits(handle.name(), &facts)
                .then(|| (handle.clone(), facts))
        };
        let running = Filter::state_bit(SubsystemState::Running);
        if filter.states.is_some_and(|bits| bits & running == 0) {
            // Only states other than running: the registry's index of the
            // entries not running holds every one of them, so `state=failed`
            // over 100,000 entries reads the few that are not running.
            return self.not_running().iter().filter_map(check).collect();
        }
        self.0
            .subsystems
            .iter()
            .filter_map(|e| check(&e.key().0))
            .collect()
    }

    /// The entries matching `filter` whose names sort after `after`, at
    /// most `limit` of them (all without one).
    pub(crate) fn page(&self, filter: &Filter, after: Option<&str>, limit: Option<usize>) -> Page {
        let now = Instant::now();
        let found = self.matching(filter, now);
        let healthy = healthy(found.iter().map(|(h, f)| (h.name(), f)));
        let mut rest: Vec<&Subsystem> = found
            .iter()
            .map(|(h, _)| h)
            .filter(|h| after.is_none_or(|after| h.name() > after))
            .collect();
        let take = limit.unwrap_or(rest.len()).min(rest.len());
        // Only the page is put in order: a page of 200 from 100,000 entries
        // selects its 200 in linear time, then sorts those.
        let by_name = |a: &&Subsystem, b: &&Subsystem| a.name().cmp(b.name());
        if take < rest.len() {
            rest.select_nth_unstable_by(take, by_name);
        }
        rest[..take].sort_unstable_by(by_name);
        let statuses: Vec<SubsystemStatus> =
            rest[..take].iter().map(|h| h.status_at(now)).collect();
        let next = (take < rest.len())
            .then(|| statuses.last().map(|s| s.name.clone()))
            .flatten();
        Page {
            statuses,
            healthy,
            next,
        }
    }

    /// Counts of the entries matching `filter`, and the first `names` failed
    /// and stale names.
    pub(crate) fn summary(&self, filter: &Filter, names: usize) -> Summary {
        if *filter == Filter::default() {
            return self.summary_of_all(names);
        }
        self.summary_by_pass(filter, names)
    }

    /// The summary of the entries matching `filter`, by a pass over them.
    pub(super) fn summary_by_pass(&self, filter: &Filter, names: usize) -> Summary {
        let now = Instant::now();
        let mut summary = Summary {
            total: 0,
            groups: BTreeMap::new(),
            healthy: true,
            failed: Vec::new(),
            failed_total: 0,
            stale: Vec::new(),
            stale_total: 0,
            unhealthy: 0,
        };
        let found = self.matching(filter, now);
        summary.healthy = healthy(found.iter().map(|(h, f)| (h.name(), f)));
        for (handle, facts) in found {
            let failed = facts.state == SubsystemState::Failed;
            summary.unhealthy += u64::from(failed || facts.stale);
            summary.total += 1;
            let counts = summary.groups.entry(facts.group).or_default();
            counts.total += 1;
            counts.states[usize::from(facts.state.to_u8())] += 1;
            if facts.stale {
                counts.stale += 1;
                summary.stale_total += 1;
                summary.stale.push(handle.name().to_string());
            }
            if failed {
                summary.failed_total += 1;
                summary.failed.push(handle.name().to_string());
            }
        }
        // The first `names` of each list by name (the lists are short
        // unless something is badly wrong).
        for list in [&mut summary.failed, &mut summary.stale] {
            list.sort_unstable();
            list.truncate(names);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: SubsystemKind, group: Option<&str>) -> Facts {
        Facts {
            state: SubsystemState::Running,
            kind,
            group: group.map(Arc::from),
            stale: false,
            advisory: false,
            min_healthy_percent: None,
        }
    }

    #[test]
    fn a_group_filter_takes_the_group_its_children_and_nested_groups_only() {
        let filter = Filter {
            group: Some("app/tenants".into()),
            ..Filter::default()
        };
        let child = facts(SubsystemKind::Subsystem, Some("app/tenants"));
        let nested_group = facts(SubsystemKind::Group, Some("app/tenants"));
        let nested_child = facts(SubsystemKind::Subsystem, Some("app/tenants/eu"));
        let own = facts(SubsystemKind::Group, Some("app"));
        assert!(filter.admits("tenant/1", &child));
        assert!(filter.admits("app/tenants/eu", &nested_group));
        assert!(filter.admits("tenant/2", &nested_child));
        assert!(filter.admits("app/tenants", &own));
        // A sibling whose path only starts with the same letters.
        let sibling = facts(SubsystemKind::Subsystem, Some("app/tenants-old"));
        assert!(!filter.admits("tenant/3", &sibling));
        assert!(!filter.admits("app/tenants-old", &facts(SubsystemKind::Group, Some("app"))));
        // A loop named like the group is not the group.
        assert!(!filter.admits("app/tenants", &facts(SubsystemKind::Subsystem, None)));
        assert!(!filter.admits("x", &facts(SubsystemKind::Subsystem, None)));
    }

    /// The index of entries not running agrees with their states after
    /// any sequence of state changes and removals, so a filter on states
    /// other than running, which reads only the index, misses nothing.
    #[test]
    fn the_not_running_index_follows_every_state_change_and_removal() {
        let registry = Registry::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut handles: Vec<Subsystem> = (0..50)
            .map(|i| registry.subsystem(&format!("s{i}")))
            .collect();
        let not_running = Filter {
            states: Some(
                SubsystemState::ALL
                    .iter()
                    .filter(|s| **s != SubsystemState::Running)
                    .fold(0, |bits, s| bits | Filter::state_bit(*s)),
            ),
            ..Filter::default()
        };
        for step in 0..2_000 {
            let i = rng.usize(..handles.len());
            if rng.u8(..20) == 0 {
                registry.forget(&handles[i]);
                // The name comes back as a new entry, running.
                handles[i] = registry.subsystem(&format!("s{i}"));
            } else {
                handles[i].set_state(SubsystemState::ALL[rng.usize(..SubsystemState::COUNT)]);
            }
            let mut expected: Vec<String> = registry
                .snapshot()
                .into_iter()
                .filter(|s| s.state != SubsystemState::Running)
                .map(|s| s.name)
                .collect();
            expected.sort();
            let found: Vec<String> = registry
                .page(&not_running, None, None)
                .statuses
                .into_iter()
                .map(|s| s.name)
                .collect();
            assert_eq!(found, expected, "after step {step}");
        }
        // A removed entry that changes state afterwards stays out.
        let gone = handles[0].clone();
        registry.forget(&gone);
        gone.set_state(SubsystemState::Failed);
        assert!(registry.not_running().iter().all(|s| !s.same_as(&gone)));
    }

    #[test]
    fn state_stale_and_prefix_must_all_hold() {
        let filter = Filter {
            states: Some(
                Filter::state_bit(SubsystemState::Failed)
                    | Filter::state_bit(SubsystemState::BackingOff),
            ),
            stale: Some(false),
            prefix: Some("tenant/".into()),
            ..Filter::default()
        };
        let mut f = facts(SubsystemKind::Subsystem, None);
        f.state = SubsystemState::Failed;
        assert!(filter.admits("tenant/1", &f));
        assert!(!filter.admits("other", &f));
        f.stale = true;
        assert!(!filter.admits("tenant/1", &f));
        f.stale = false;
        f.state = SubsystemState::Running;
        assert!(!filter.admits("tenant/1", &f));
    }
}
