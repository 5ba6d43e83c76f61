//! Prometheus metrics of the registry (cargo feature `prometheus`), encoded
//! by the official [`prometheus-client`](prometheus_client) crate.
//!
//! Everything is computed at scrape time from a [`Registry::snapshot`]:
//! nothing is stored twice and nothing can drift. With the `http` feature
//! too, the router serves them at `GET /metrics` (OpenMetrics when the
//! scraper asks for it in `Accept`, as Prometheus does; the classic text
//! format otherwise). Without it, register a [`Collector`] in your own
//! `prometheus_client` registry.
//!
//! | metric | type | labels | value |
//! | --- | --- | --- | --- |
//! | `supervised_up` | gauge | `subsystem` | 1 healthy, 0 not |
//! | `supervised_last_heartbeat_timestamp_seconds` | gauge | `subsystem` | Unix time of the last beat; absent until the first |
//! | `supervised_heartbeats_total` | counter | `subsystem` | beats recorded |
//! | `supervised_restarts_total` | counter | `subsystem` | restarts scheduled |
//! | `supervised_tick_seconds` | gauge | `subsystem` | the declared tick; absent without one |
//! | `supervised_stale_after_seconds` | gauge | `subsystem` | the staleness limit; absent without a tick |
//! | `supervised_state` | gauge | `subsystem`, `state` | 1 for the current state, 0 for the others |
//! | `supervised_subsystem_info` | gauge | `subsystem`, `group` | 1 for every entry that runs in a [`Group`](crate::Group): `group` is the group's path (the info-metric convention: join on `subsystem` to add it to the other families) |
//! | `supervised_lease_held` | gauge | `subsystem`, `lease` | 1 while this process holds the lease of a lease-gated subsystem, 0 in standby; absent unless gated |
//! | `supervised_lease_acquisitions_total` | counter | `subsystem`, `lease` | times this process acquired that lease |
//! | `supervised_group_children` | gauge | `group`, `state` | entries directly in the group (children and nested groups), by state |
//! | `supervised_group_stale_children` | gauge | `group` | those of them that are stale |
//! | `supervised_group_restarts_total` | counter | `group` | their restarts, those of removed children included (it never goes down) |
//! | `supervised_group_oldest_heartbeat_timestamp_seconds` | gauge | `group` | Unix time where its longest silence began: the oldest last beat among its running children with a tick, or the start (or lease takeover) of one that has not beaten since; absent when no running child declares a tick. `time() - x` is the longest a running child has been silent |
//! | `supervised_shard_buckets_held` | gauge | `group` | for a sharded group ([`Group::shards`](crate::Group::shards)): the buckets this replica holds |
//! | `supervised_shard_buckets_acquired_total` | counter | `group` | buckets this replica acquired |
//! | `supervised_shard_buckets_released_total` | counter | `group` | buckets it released: handed off, lost, or left |
//! | `supervised_ready` | gauge | none | 1 when [`Registry::readiness`] is ready, 0 while starting or draining |
//! | `supervised_registry_rejected_total` | counter | none | new subsystem names refused because the registry was full ([`Registry::max_subsystems`]) |
//!
//! # Which entries have series of their own
//!
//! The `subsystem`-labelled families cover every loop outside a group and
//! every child given to a [`Group`](crate::Group) builder. Children added
//! through a [`GroupHandle`](crate::GroupHandle) (the fleet: a worker per
//! tenant) have none by default; their group's `supervised_group_*`
//! families count them, so 100,000 tenants make a few series per group,
//! not a million. [`Child::own_metrics`](crate::Child::own_metrics) turns
//! a child's own series on (a fleet child worth watching alone) or off.
//!
//! A fleet alerts on a dead loop with
//! `time() - supervised_last_heartbeat_timestamp_seconds > supervised_stale_after_seconds`,
//! or simply `supervised_up == 0` (which also covers a loop that never beat
//! within its grace and one whose supervisor gave up).
//!
//! The registry keeps monotonic [`tokio::time::Instant`](https://docs.rs/tokio/1/tokio/time/struct.Instant.html)s only: the Unix
//! time is derived at scrape time as `SystemTime::now()` minus the distance
//! of the last beat from `Instant::now()`.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use std::collections::BTreeMap;

use crate::registry::counts::GroupMetrics;
use crate::registry::WallClock;
use crate::{registry, Registry, SubsystemState, SubsystemStatus};

/// `Content-Type` of [`encode_openmetrics`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of [`encode_prometheus_text`]'s output.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every state, for `supervised_state`.
const STATES: [SubsystemState; SubsystemState::COUNT] = SubsystemState::ALL;

/// A `prometheus_client` collector of a [`Registry`]'s metrics, computed on
/// each scrape.
///
/// ```
/// use prometheus_client::encoding::text::encode;
///
/// let registry = supervised::Registry::new();
/// registry.heartbeat("relay");
///
/// let mut metrics = prometheus_client::registry::Registry::default();
/// metrics.register_collector(Box::new(supervised::metrics::Collector::new(&registry)));
/// let mut out = String::new();
/// encode(&mut out, &metrics).unwrap();
/// assert!(out.contains(r#"supervised_heartbeats_total{subsystem="relay"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct Collector {
    registry: Registry,
}

impl Collector {
    /// A collector of `registry`.
    pub fn new(registry: &Registry) -> Self {
        Collector {
            registry: registry.clone(),
        }
    }

    /// A collector of the process-wide [`registry()`].
    ///
    /// ```
    /// let collector = supervised::metrics::Collector::global();
    /// # let _ = collector;
    /// ```
    pub fn global() -> Self {
        Collector::new(registry())
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let view = self.registry.metrics_view();
        let snapshot = view.own;
        let clock = WallClock::now();

        let seconds = Some(&Unit::Seconds);
        let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
        per_subsystem(&mut encoder, &snapshot, ("supervised_up",
            "Whether the subsystem is healthy (1) or not (0): not failed and, with a declared tick, not stale.",
            None, gauge), |s| Some(Sample::Gauge(i64::from(s.healthy))))?;
        per_subsystem(
            &mut encoder,
            &snapshot,
            (
                "supervised_last_heartbeat_timestamp",
                "Unix time of the subsystem's last heartbeat; absent until the first.",
                seconds,
                gauge,
            ),
            |s| {
                s.last_beat
                    .map(|last| Sample::Seconds(clock.unix_seconds(last)))
            },
        )?;
        per_subsystem(
            &mut encoder,
            &snapshot,
            (
                "supervised_heartbeats",
                "Heartbeats the subsystem recorded.",
                None,
                counter,
            ),
            |s| Some(Sample::Counter(s.beats)),
        )?;
        per_subsystem(
            &mut encoder,
            &snapshot,
            (
                "supervised_restarts",
                "Restarts the subsystem's supervisor scheduled.",
                None,
                counter,
            ),
            |s| Some(Sample::Counter(s.restarts)),
        )?;
        per_subsystem(
            &mut encoder,
            &snapshot,
            (
                "supervised_tick",
                "The subsystem's declared interval between heartbeats; absent without one.",
                seconds,
                gauge,
            ),
            |s| s.tick.map(|tick| Sample::Seconds(tick.as_secs_f64())),
        )?;
        per_subsystem(
            &mut encoder,
            &snapshot,
            (
                "supervised_stale_after",
                "How long without a heartbeat makes the subsystem stale; absent without a tick.",
                seconds,
                gauge,
            ),
            |s| {
                s.stale_after
                    .map(|limit| Sample::Seconds(limit.as_secs_f64()))
            },
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "supervised_state",
                "The subsystem's state: 1 for the current one, 0 for the others.",
                None,
                MetricType::Gauge,
            )?;
            for s in &snapshot {
                for state in STATES {
                    let labels = [("subsystem", s.name.as_str()), ("state", state.as_str())];
                    ConstGauge::new(i64::from(s.state == state))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "supervised_subsystem_info",
                "The group a subsystem runs in (value 1; join on subsystem).",
                None,
                MetricType::Gauge,
            )?;
            for s in &snapshot {
                if let Some(group) = &s.group {
                    let labels = [("subsystem", s.name.as_str()), ("group", group.as_str())];
                    ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "supervised_lease_held",
                "Whether this process holds the subsystem's lease (1) or stands by (0); absent unless lease-gated.",
                None,
                MetricType::Gauge,
            )?;
            for s in &snapshot {
                if let Some(lease) = &s.lease {
                    let labels = [
                        ("subsystem", s.name.as_str()),
                        ("lease", lease.name.as_str()),
                    ];
                    ConstGauge::new(i64::from(lease.leader))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "supervised_lease_acquisitions",
                "Times this process acquired the subsystem's lease; absent unless lease-gated.",
                None,
                MetricType::Counter,
            )?;
            for s in &snapshot {
                if let Some(lease) = &s.lease {
                    let labels = [
                        ("subsystem", s.name.as_str()),
                        ("lease", lease.name.as_str()),
                    ];
                    ConstCounter::new(lease.acquisitions).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        encode_groups(&mut encoder, &view.groups, &clock)?;
        let ready = encoder.encode_descriptor(
            "supervised_ready",
            "Whether the process should be sent traffic (1) or is starting or draining (0).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.registry.readiness().is_ready())).encode(ready)?;
        let rejected = encoder.encode_descriptor(
            "supervised_registry_rejected",
            "New subsystem names the registry refused because it held max_subsystems already.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.registry.rejected_subsystems()).encode(rejected)?;
        Ok(())
    }
}

/// The per-group aggregates: a few series per group, however many
/// children it has.
fn encode_groups(
    encoder: &mut DescriptorEncoder<'_>,
    groups: &BTreeMap<std::sync::Arc<str>, GroupMetrics>,
    clock: &WallClock,
) -> Result<(), fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "supervised_group_children",
            "Entries directly in the group (children and nested groups), by state.",
            None,
            MetricType::Gauge,
        )?;
        for (group, metrics) in groups {
            for state in STATES {
                let labels = [("group", &**group), ("state", state.as_str())];
                let count = metrics.counts.states[usize::from(state.to_u8())];
                ConstGauge::new(clamp(count)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "supervised_group_stale_children",
            "Entries directly in the group that are stale.",
            None,
            MetricType::Gauge,
        )?;
        for (group, metrics) in groups {
            let labels = [("group", &**group)];
            ConstGauge::new(clamp(metrics.counts.stale)).encode(family.encode_family(&labels)?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "supervised_group_restarts",
            "Restarts of the entries directly in the group, those removed since included.",
            None,
            MetricType::Counter,
        )?;
        for (group, metrics) in groups {
            let labels = [("group", &**group)];
            ConstCounter::new(metrics.restarts).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "supervised_group_oldest_heartbeat_timestamp",
        "Unix time where the longest silence among the group's running children that declare a tick began: the oldest last heartbeat, or the start of a child that has not beaten since.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (group, metrics) in groups {
        if let Some(oldest) = metrics.oldest_beat {
            let labels = [("group", &**group)];
            ConstGauge::new(clock.unix_seconds(oldest)).encode(family.encode_family(&labels)?)?;
        }
    }
    let sharded: Vec<(&std::sync::Arc<str>, &crate::ShardsStatus)> = groups
        .iter()
        .filter_map(|(group, metrics)| Some((group, metrics.shards.as_ref()?)))
        .collect();
    if !sharded.is_empty() {
        {
            let mut family = encoder.encode_descriptor(
                "supervised_shard_buckets_held",
                "Buckets of the sharded group that this replica holds.",
                None,
                MetricType::Gauge,
            )?;
            for (group, shards) in &sharded {
                let labels = [("group", &***group)];
                ConstGauge::new(clamp(shards.held.len() as u64))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, count) in [
            (
                "supervised_shard_buckets_acquired",
                "Buckets of the sharded group this replica acquired.",
                (|s: &crate::ShardsStatus| s.acquired) as fn(&crate::ShardsStatus) -> u64,
            ),
            (
                "supervised_shard_buckets_released",
                "Buckets of the sharded group this replica released (handed off, lost, or left).",
                |s: &crate::ShardsStatus| s.released,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (group, shards) in &sharded {
                let labels = [("group", &***group)];
                ConstCounter::new(count(shards)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

/// A count as a gauge's value.
fn clamp(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// One subsystem's value in a single-label family.
enum Sample {
    Gauge(i64),
    Seconds(f64),
    Counter(u64),
}

/// Encodes one family labelled by `subsystem`, skipping subsystems for which
/// `value` gives `None` (e.g. no tick declared).
fn per_subsystem(
    encoder: &mut DescriptorEncoder<'_>,
    snapshot: &[SubsystemStatus],
    (name, help, unit, kind): (&str, &str, Option<&Unit>, MetricType),
    value: impl Fn(&SubsystemStatus) -> Option<Sample>,
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
    for s in snapshot {
        let Some(sample) = value(s) else { continue };
        let labels = [("subsystem", s.name.as_str())];
        let metric = family.encode_family(&labels)?;
        match sample {
            Sample::Gauge(v) => ConstGauge::new(v).encode(metric)?,
            Sample::Seconds(v) => ConstGauge::new(v).encode(metric)?,
            Sample::Counter(v) => ConstCounter::new(v).encode(metric)?,
        }
    }
    Ok(())
}

fn scrape_registry(registry: &Registry) -> prometheus_client::registry::Registry {
    let mut metrics = prometheus_client::registry::Registry::default();
    metrics.register_collector(Box::new(Collector::new(registry)));
    metrics
}

/// The metrics of `registry` now, in the OpenMetrics text format (ending in
/// `# EOF`); serve it as [`OPENMETRICS_CONTENT_TYPE`].
///
/// ```
/// let registry = supervised::Registry::new();
/// registry.heartbeat("relay");
/// let text = supervised::metrics::encode_openmetrics(&registry).unwrap();
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn encode_openmetrics(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &scrape_registry(registry))?;
    Ok(out)
}

/// The metrics of `registry` now, in the classic Prometheus text format
/// (version 0.0.4); serve it as [`PROMETHEUS_TEXT_CONTENT_TYPE`].
///
/// ```
/// let registry = supervised::Registry::new();
/// registry.heartbeat("relay");
/// let text = supervised::metrics::encode_prometheus_text(&registry).unwrap();
/// assert!(text.contains("# TYPE supervised_up gauge"));
/// ```
pub fn encode_prometheus_text(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &scrape_registry(registry))?;
    Ok(out)
}
