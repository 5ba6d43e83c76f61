//! Reading part of a large registry: the entries that match a filter, and
//! counts by group and state, without copying every entry's status.
//!
//! A filter is checked on a handle's cheap facts (its name, state, group and
//! staleness, read under one lock) before anything is copied out, so an
//! answer about 10 failed entries of 100,000 copies 10 statuses.
//!
//! The summary of every entry and the metrics make no pass at all: they
//! read the counts by group and state (`tally.rs`), the stale entries and
//! each group's longest silence (`watch.rs`), and the few entries that are
//! failed, stale or have series of their own. Under concurrent changes
//! those reads are a moment apart, as a scrape's series always are.

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
    fn healthy(&self) -> bool {
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

/// What the metrics read of a registry in one pass: the statuses of the
/// entries with series of their own, and every group's aggregates.
#[cfg(any(feature = "prometheus", feature = "metrics"))]
pub(crate) struct MetricsView {
    /// Sorted by name.
    pub(crate) own: Vec<SubsystemStatus>,
    /// By group path: the entries directly in it.
    pub(crate) groups: BTreeMap<Arc<str>, GroupMetrics>,
}

/// One group's aggregates for the metrics.
#[cfg(any(feature = "prometheus", feature = "metrics"))]
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupMetrics {
    pub(crate) counts: GroupCounts,
    /// Restarts of its children now in the registry and of those removed.
    pub(crate) restarts: u64,
    /// Where its longest silence began: the oldest last beat among its
    /// running children that declare a tick, or the start of one that has
    /// not beaten since it started (or took its lease over); `None` when
    /// no running child declares a tick.
    pub(crate) oldest_beat: Option<Instant>,
    /// A sharded group's buckets here.
    pub(crate) shards: Option<super::ShardsStatus>,
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
    /// What the metrics read (see [`MetricsView`]), without a pass over
    /// the entries.
    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    pub(crate) fn metrics_view(&self) -> MetricsView {
        let now = Instant::now();
        let tallies = self.tallies();
        let (stale, quiet) = {
            let mut watch = self.watch();
            watch.look(now);
            let stale: Vec<Subsystem> = watch.stale().cloned().collect();
            let quiet: BTreeMap<&Arc<str>, Instant> = tallies
                .keys()
                .flatten()
                .filter_map(|group| Some((group, watch.quiet_since(group)?)))
                .collect();
            (stale, quiet)
        };
        let stale = stale_by_group(&stale, now);
        let mut groups = BTreeMap::new();
        for (group, tally) in &tallies {
            let Some(group) = group else { continue };
            let states = tally.states();
            let restarts = tally.restarts();
            let total = states.iter().sum();
            let shards = self.get(group).and_then(|entry| entry.shards());
            if total == 0 && restarts == 0 && shards.is_none() {
                continue;
            }
            let metrics = GroupMetrics {
                counts: GroupCounts {
                    total,
                    states,
                    stale: stale.get(&Some(Arc::clone(group))).map_or(0, Vec::len) as u64,
                },
                restarts,
                oldest_beat: quiet.get(group).copied(),
                shards,
            };
            groups.insert(Arc::clone(group), metrics);
        }
        let mut own: Vec<SubsystemStatus> = self
            .with_series()
            .iter()
            .map(|sub| sub.status_at(now))
            .collect();
        own.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        MetricsView { own, groups }
    }

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

    /// The summary of every entry, without a pass: the tallies, the stale
    /// entries of the watch, and the index of entries not running.
    fn summary_of_all(&self, names: usize) -> Summary {
        let now = Instant::now();
        let tallies = self.tallies();
        let stale: Vec<Subsystem> = {
            let mut watch = self.watch();
            watch.look(now);
            watch.stale().cloned().collect()
        };
        // Read again at `now`: one removed or beaten since the look is out.
        let stale = stale_by_group(&stale, now);
        let failed = by_group(
            self.not_running()
                .into_iter()
                .filter(|sub| sub.state() == SubsystemState::Failed),
            now,
            |facts| facts.state == SubsystemState::Failed,
        );
        let mut summary = Summary {
            total: 0,
            groups: BTreeMap::new(),
            healthy: stale
                .values()
                .chain(failed.values())
                .flatten()
                .all(|(_, facts)| facts.healthy()),
            failed: Vec::new(),
            failed_total: 0,
            stale: Vec::new(),
            stale_total: 0,
            unhealthy: 0,
        };
        for (group, tally) in tallies {
            let states = tally.states();
            let total: u64 = states.iter().sum();
            if total == 0 {
                continue;
            }
            let stale_here = in_group(&stale, &group);
            let failed_here = in_group(&failed, &group);
            // A failed entry that is stale too is unhealthy once.
            let failing = failed_here.len() as u64
                + stale_here
                    .iter()
                    .filter(|(_, f)| f.state != SubsystemState::Failed)
                    .count() as u64;
            summary.unhealthy += failing;
            summary.total += total;
            if let Some(path) = &group {
                // The share rule of `Health::of`, on the counts: paused
                // children left out.
                let rule = self.get(path).map(|own| own.facts(now));
                if let Some(percent) = rule
                    .filter(|own| !own.advisory)
                    .and_then(|own| own.min_healthy_percent)
                {
                    let counted = total - states[usize::from(SubsystemState::Paused.to_u8())];
                    let passing = counted.saturating_sub(failing);
                    summary.healthy &=
                        counted == 0 || passing * 100 >= u64::from(percent) * counted;
                }
            }
            summary.groups.insert(
                group,
                GroupCounts {
                    total,
                    states,
                    stale: stale_here.len() as u64,
                },
            );
        }
        for (list, lists, count) in [
            (&mut summary.failed, &failed, &mut summary.failed_total),
            (&mut summary.stale, &stale, &mut summary.stale_total),
        ] {
            list.extend(
                lists
                    .values()
                    .flatten()
                    .map(|(sub, _)| sub.name().to_string()),
            );
            *count = list.len() as u64;
            list.sort_unstable();
            list.truncate(names);
        }
        summary
    }

    /// The summary of the entries matching `filter`, by a pass over them.
    fn summary_by_pass(&self, filter: &Filter, names: usize) -> Summary {
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

/// `subs` with their facts at `now`, those that `keep` holds for, by group.
fn by_group(
    subs: impl IntoIterator<Item = Subsystem>,
    now: Instant,
    keep: impl Fn(&Facts) -> bool,
) -> Lists {
    let mut lists = Lists::new();
    for sub in subs {
        let facts = sub.facts(now);
        if keep(&facts) {
            lists
                .entry(facts.group.clone())
                .or_default()
                .push((sub, facts));
        }
    }
    lists
}

/// The list of `group` in `lists`.
fn in_group<'a>(lists: &'a Lists, group: &Option<Arc<str>>) -> &'a [(Subsystem, Facts)] {
    lists.get(group).map_or(&[][..], Vec::as_slice)
}

/// Entries with their facts, by group.
type Lists = BTreeMap<Option<Arc<str>>, Vec<(Subsystem, Facts)>>;

/// The watch's stale entries still stale at `now`, by group.
fn stale_by_group(stale: &[Subsystem], now: Instant) -> Lists {
    by_group(stale.iter().cloned(), now, |facts| facts.stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    /// A summary of `found`'s fields, to compare two summaries whole.
    fn summary_fields(s: &Summary) -> String {
        format!(
            "total {} groups {:?} healthy {} failed {:?}/{} stale {:?}/{} unhealthy {}",
            s.total,
            s.groups,
            s.healthy,
            s.failed,
            s.failed_total,
            s.stale,
            s.stale_total,
            s.unhealthy
        )
    }

    /// The metrics' group aggregates by a pass over every status, with the
    /// restarts of entries removed (or moved away) as the test counted them.
    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    fn groups_by_pass(
        registry: &Registry,
        retired: &BTreeMap<Arc<str>, u64>,
    ) -> BTreeMap<Arc<str>, GroupMetrics> {
        let mut groups: BTreeMap<Arc<str>, GroupMetrics> = BTreeMap::new();
        for status in registry.snapshot() {
            let Some(group) = status.group.as_deref() else {
                continue;
            };
            let metrics = groups.entry(Arc::from(group)).or_default();
            metrics.counts.total += 1;
            metrics.counts.states[usize::from(status.state.to_u8())] += 1;
            metrics.counts.stale += u64::from(status.stale);
            if status.kind == SubsystemKind::Subsystem {
                metrics.restarts += status.restarts;
            }
            if status.tick.is_some() && status.state == SubsystemState::Running {
                let since = status.last_beat.unwrap_or(status.registered_at);
                metrics.oldest_beat = Some(
                    metrics
                        .oldest_beat
                        .map_or(since, |oldest| oldest.min(since)),
                );
            }
        }
        for (group, restarts) in retired {
            groups.entry(Arc::clone(group)).or_default().restarts += restarts;
        }
        groups.retain(|_, m| m.counts.total > 0 || m.restarts > 0);
        groups
    }

    /// The summary of every entry and the metrics, which read the tallies
    /// and the watch, say what a pass over every entry says, after any
    /// sequence of registrations, removals, moves between groups, ticks,
    /// beats, state changes, restarts, share rules and time passing.
    #[tokio::test(start_paused = true)]
    async fn the_counts_and_the_watch_agree_with_a_pass_over_every_entry() {
        let registry = Registry::new();
        let groups: [Option<Arc<str>>; 4] = [
            None,
            Some("g1".into()),
            Some("g2".into()),
            Some("g1/n".into()),
        ];
        // The groups' own entries: `g1/n` nested in `g1`.
        for (name, parent) in [("g1", None), ("g2", None), ("g1/n", Some("g1"))] {
            registry
                .subsystem(name)
                .set_membership(SubsystemKind::Group, parent.map(Arc::from));
        }
        let mut retired: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        let retire = |retired: &mut BTreeMap<Arc<str>, u64>, sub: &Subsystem| {
            if let Some(group) = sub.group_arc() {
                *retired.entry(group).or_default() += sub.restarts();
            }
        };
        let ticks = [
            (None, None),
            (Some(Duration::from_secs(1)), None),
            (
                Some(Duration::from_secs(2)),
                Some(Duration::from_millis(2500)),
            ),
            (Some(Duration::from_millis(300)), None),
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for step in 0..4_000 {
            let name = format!("e{}", rng.usize(..40));
            let sub = match registry.get(&name) {
                Some(sub) => sub,
                None => {
                    let sub = if rng.bool() {
                        registry.fleet_subsystem(&name, rng.bool())
                    } else {
                        registry.subsystem(&name)
                    };
                    let group = groups[rng.usize(..groups.len())].clone();
                    sub.set_membership(SubsystemKind::Subsystem, group);
                    sub
                }
            };
            match rng.u8(..11) {
                0 | 1 => sub.beat(),
                2 => {
                    let (tick, stale_after) = ticks[rng.usize(..ticks.len())];
                    sub.declare_tick(tick, stale_after);
                }
                3 | 4 => sub.set_state(SubsystemState::ALL[rng.usize(..SubsystemState::COUNT)]),
                5 => sub.schedule_restart(Instant::now() + Duration::from_secs(1)),
                6 => {
                    retire(&mut retired, &sub);
                    registry.forget(&sub);
                }
                7 => {
                    let group = groups[rng.usize(..groups.len())].clone();
                    if sub.group_arc() != group {
                        retire(&mut retired, &sub);
                    }
                    sub.set_membership(SubsystemKind::Subsystem, group);
                }
                8 => tokio::time::advance(Duration::from_millis(rng.u64(..1_500))).await,
                9 => {
                    let group = ["g1", "g2", "g1/n"][rng.usize(..3)];
                    let percent = [None, Some(50), Some(90)][rng.usize(..3)];
                    registry
                        .get(group)
                        .unwrap()
                        .set_min_healthy_percent(percent);
                    sub.set_advisory(rng.u8(..4) == 0);
                }
                _ => sub.set_own_series(rng.bool()),
            }
            let names = rng.usize(..4);
            assert_eq!(
                summary_fields(&registry.summary_of_all(names)),
                summary_fields(&registry.summary_by_pass(&Filter::default(), names)),
                "summary after step {step}"
            );
            #[cfg(any(feature = "prometheus", feature = "metrics"))]
            {
                let view = registry.metrics_view();
                assert_eq!(
                    view.groups,
                    groups_by_pass(&registry, &retired),
                    "after step {step}"
                );
                let own: Vec<String> = view.own.into_iter().map(|s| s.name).collect();
                let mut expected: Vec<String> = registry
                    .0
                    .subsystems
                    .iter()
                    .map(|e| e.key().0.clone())
                    .filter(Subsystem::has_series)
                    .map(|s| s.name().to_string())
                    .collect();
                expected.sort();
                assert_eq!(own, expected, "series after step {step}");
            }
        }
    }

    /// A look reads only what could have changed: nothing at the same
    /// instant, nothing before the first entry could go stale; and the
    /// queues stay bounded while an entry is armed again and again behind
    /// one that never moves.
    #[tokio::test(start_paused = true)]
    async fn a_look_reads_only_the_entries_whose_time_has_come() {
        let registry = Registry::new();
        let group: Arc<str> = Arc::from("tenants");
        let tick = Some(Duration::from_secs(60));
        for i in 0..10_000 {
            let sub = registry.fleet_subsystem(&format!("t{i}"), false);
            sub.set_membership(SubsystemKind::Subsystem, Some(Arc::clone(&group)));
            sub.declare_tick(tick, None);
        }
        let look = |registry: &Registry| registry.watch().look(Instant::now());
        // The first look settles each group's first item only.
        assert!(look(&registry) <= 2, "{}", look(&registry));
        assert_eq!(
            look(&registry),
            1,
            "a second look reads the group's first item"
        );
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(look(&registry), 1, "none can be stale before 120 s");
        // Half beat; at 121 s the other half are stale, read once each.
        for i in (0..10_000).step_by(2) {
            registry.get(&format!("t{i}")).unwrap().beat();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        // Each due item once; in the group's queue, the entries that beat
        // and tie with the first that did not (all started together).
        let read = look(&registry);
        assert!((10_000..=15_001).contains(&read), "{read}");
        // Then each look reads the stale ones and the group's first item.
        assert_eq!(look(&registry), 5_001);
        assert_eq!(registry.summary_of_all(0).stale_total, 5_000);
        // The queues hold about one item per entry and queue, not one per
        // arm, while one entry flaps and the group's oldest never moves.
        let flapping = registry.get("t1").unwrap();
        for _ in 0..100_000 {
            flapping.set_state(SubsystemState::BackingOff);
            flapping.set_state(SubsystemState::Running);
        }
        let queued = registry.watch().queued();
        assert!(queued <= 2 * 20_000 + 3 * 1024, "{queued}");
    }
}
