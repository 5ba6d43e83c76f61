//! The registry's figures in the [`metrics`](https://docs.rs/metrics/0.24)
//! crate's recorder (cargo feature `metrics`): for applications whose
//! metrics already go through that facade (`metrics-exporter-prometheus`,
//! StatsD, OpenTelemetry), so there is one registry and one `/metrics`.
//!
//! The figures are those of [`metrics`](crate::metrics) (feature
//! `prometheus`), under the same names without the exporter's suffixes:
//! per entry with series of its own (every loop outside a group and every
//! child given to a [`Group`](crate::Group) builder; see
//! [`Child::own_metrics`](crate::Child::own_metrics)) and per group.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `supervised_up` | gauge | `subsystem` |
//! | `supervised_last_heartbeat_timestamp_seconds` | gauge | `subsystem` (absent until the first beat) |
//! | `supervised_heartbeats_total` | counter | `subsystem` |
//! | `supervised_restarts_total` | counter | `subsystem` |
//! | `supervised_tick_seconds`, `supervised_stale_after_seconds` | gauge | `subsystem` (absent without a tick) |
//! | `supervised_state` | gauge | `subsystem`, `state` (1 for the current one, 0 for the others) |
//! | `supervised_group_children` | gauge | `group`, `state` |
//! | `supervised_group_stale_children` | gauge | `group` |
//! | `supervised_group_restarts_total` | counter | `group` |
//! | `supervised_group_oldest_heartbeat_timestamp_seconds` | gauge | `group` (where its longest silence began; NaN while no running child declares a tick) |
//! | `supervised_shard_buckets_held` | gauge | `group` (a sharded group only) |
//! | `supervised_shard_buckets_acquired_total`, `supervised_shard_buckets_released_total` | counter | `group` (a sharded group only) |
//! | `supervised_ready` | gauge | none |
//! | `supervised_registry_rejected_total` | counter | none |
//!
//! A recorder has no scrape callback, so a [`Reporter`] writes the figures
//! at an interval (10 s by default; match your scrape interval) or when you
//! call [`Reporter::report`]. Counters are set with `absolute`, so they
//! never count twice. A removed subsystem's series keeps its last value in
//! the recorder until the recorder drops it (with
//! `metrics-exporter-prometheus`, set `PrometheusBuilder::idle_timeout`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::registry::WallClock;
use crate::{registry, Registry, SubsystemState};

/// Writes a [`Registry`]'s figures into the installed `metrics` recorder.
///
/// Run it as a child of your root [`Group`](crate::Group):
///
/// ```
/// use supervised::recorder::Reporter;
/// use supervised::{CancellationToken, Group};
///
/// let reporter = Reporter::global();
/// let service = Group::new("service")
///     .child("metrics-reporter", move |cancel: CancellationToken| reporter.clone().run(cancel));
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct Reporter {
    registry: Registry,
    interval: Duration,
}

impl Reporter {
    /// How often [`run`](Reporter::run) reports unless told otherwise.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    /// A reporter of `registry`, every 10 s.
    pub fn new(registry: &Registry) -> Self {
        Reporter {
            registry: registry.clone(),
            interval: Self::DEFAULT_INTERVAL,
        }
    }

    /// A reporter of the process-wide [`registry()`].
    ///
    /// ```
    /// let reporter = supervised::recorder::Reporter::global();
    /// # let _ = reporter;
    /// ```
    pub fn global() -> Self {
        Reporter::new(registry())
    }

    /// How often [`run`](Reporter::run) reports (default 10 s). A zero
    /// interval is taken as one second: a report reads the whole registry.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reporter = supervised::recorder::Reporter::global().interval(Duration::from_secs(15));
    /// # let _ = reporter;
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = if interval.is_zero() {
            Duration::from_secs(1)
        } else {
            interval
        };
        self
    }

    /// Reports now, then every interval, until `cancel` is cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while cancel.run_until_cancelled(ticker.tick()).await.is_some() {
            self.report();
        }
    }

    /// Writes every figure once into the current recorder (the global one,
    /// or a local one set with `metrics::with_local_recorder`).
    ///
    /// ```
    /// let registry = supervised::Registry::new();
    /// registry.heartbeat("relay");
    /// supervised::recorder::Reporter::new(&registry).report(); // no recorder: a no-op
    /// ```
    pub fn report(&self) {
        let view = self.registry.metrics_view();
        let clock = WallClock::now();
        for s in &view.own {
            let name = s.name.clone();
            metrics::gauge!("supervised_up", "subsystem" => name.clone())
                .set(f64::from(u8::from(s.healthy)));
            if let Some(last) = s.last_beat {
                metrics::gauge!("supervised_last_heartbeat_timestamp_seconds", "subsystem" => name.clone())
                    .set(clock.unix_seconds(last));
            }
            metrics::counter!("supervised_heartbeats_total", "subsystem" => name.clone())
                .absolute(s.beats);
            metrics::counter!("supervised_restarts_total", "subsystem" => name.clone())
                .absolute(s.restarts);
            if let Some(tick) = s.tick {
                metrics::gauge!("supervised_tick_seconds", "subsystem" => name.clone())
                    .set(tick.as_secs_f64());
            }
            if let Some(limit) = s.stale_after {
                metrics::gauge!("supervised_stale_after_seconds", "subsystem" => name.clone())
                    .set(limit.as_secs_f64());
            }
            for state in SubsystemState::ALL {
                metrics::gauge!("supervised_state", "subsystem" => name.clone(), "state" => state.as_str())
                    .set(f64::from(u8::from(s.state == state)));
            }
        }
        for (group, figures) in &view.groups {
            let group = group.to_string();
            for state in SubsystemState::ALL {
                let count = figures.counts.states[usize::from(state.to_u8())];
                metrics::gauge!("supervised_group_children", "group" => group.clone(), "state" => state.as_str())
                    .set(count as f64);
            }
            metrics::gauge!("supervised_group_stale_children", "group" => group.clone())
                .set(figures.counts.stale as f64);
            metrics::counter!("supervised_group_restarts_total", "group" => group.clone())
                .absolute(figures.restarts);
            // A recorder keeps a gauge's last value: with no running child
            // with a tick, NaN, so no age is computed from an old timestamp
            // (Prometheus' exposition leaves the series out instead).
            let oldest = figures
                .oldest_beat
                .map_or(f64::NAN, |oldest| clock.unix_seconds(oldest));
            metrics::gauge!("supervised_group_oldest_heartbeat_timestamp_seconds", "group" => group.clone())
                .set(oldest);
            if let Some(shards) = &figures.shards {
                metrics::gauge!("supervised_shard_buckets_held", "group" => group.clone())
                    .set(shards.held.len() as f64);
                metrics::counter!("supervised_shard_buckets_acquired_total", "group" => group.clone())
                    .absolute(shards.acquired);
                metrics::counter!("supervised_shard_buckets_released_total", "group" => group.clone())
                    .absolute(shards.released);
            }
        }
        metrics::gauge!("supervised_ready")
            .set(f64::from(u8::from(self.registry.readiness().is_ready())));
        metrics::counter!("supervised_registry_rejected_total")
            .absolute(self.registry.rejected_subsystems());
    }
}
