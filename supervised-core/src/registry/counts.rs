//! The summary of every entry and the metrics, without a pass over the
//! entries: they read the counts by group and state (`tally.rs`), the
//! stale entries and each group's longest silence (`watch.rs`), and the
//! few entries that are failed, stale or have series of their own (the
//! indexes in `fleet.rs`). Under concurrent changes those reads are a
//! moment apart, as a scrape's series always are. `query.rs` has the
//! filters, which read the entries they match.

#![cfg_attr(not(feature = "http"), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::query::{Facts, GroupCounts, Summary};
use super::status::SubsystemState;
#[cfg(any(feature = "prometheus", feature = "metrics"))]
use super::status::SubsystemStatus;
use super::{Registry, Subsystem};

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

    /// The summary of every entry, without a pass: the tallies, the stale
    /// entries of the watch, and the index of entries not running.
    pub(super) fn summary_of_all(&self, names: usize) -> Summary {
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
    use crate::registry::query::Filter;
    use crate::registry::SubsystemKind;
    use std::time::Duration;

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
