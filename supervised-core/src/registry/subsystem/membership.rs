//! What a handle knows of where it stands: its registry, its group and
//! kind, whether it is one of a fleet, and whether it has metric series of
//! its own. Written when a group or the registry takes it in, read by the
//! reports; never on the beat path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Membership, Subsystem};
use crate::SubsystemKind;

impl Subsystem {
    /// Records the registry that holds it (once: a handle is in one).
    pub(in crate::registry) fn set_home(&self, registry: &crate::Registry) {
        let _ = self.0.home.set(Arc::downgrade(&registry.0));
    }

    /// Which kind of entry this is and the path of the group it is in.
    pub(crate) fn set_membership(&self, kind: SubsystemKind, group: Option<Arc<str>>) {
        {
            let mut meta = self.meta();
            let old = meta.membership.take().and_then(|m| m.group);
            meta.membership = Some(Box::new(Membership { kind, group }));
            self.recount(&mut meta, old);
        }
        self.arm();
    }

    /// The path of the group this entry is in, if any.
    pub(crate) fn group_path(&self) -> Option<String> {
        self.meta()
            .membership
            .as_ref()
            .and_then(|m| m.group.as_deref().map(str::to_string))
    }

    /// Marks a new handle as one of a fleet (see `Registry::fleet_subsystem`).
    pub(in crate::registry) fn mark_fleet(&self, series: bool) {
        self.0.fleet.store(true, Ordering::Relaxed);
        self.0.series.store(series, Ordering::Relaxed);
    }

    /// A sharded group's figures, shown on its entry.
    pub(crate) fn set_shards(&self, figures: Arc<crate::registry::ShardFigures>) {
        self.meta().shards = Some(figures);
    }

    /// A sharded group's buckets here, if it is one.
    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    pub(crate) fn shards(&self) -> Option<crate::ShardsStatus> {
        self.meta()
            .shards
            .as_deref()
            .map(crate::registry::ShardFigures::status)
    }

    /// A group entry's share rule (see `Group::min_healthy_percent`).
    pub(crate) fn set_min_healthy_percent(&self, percent: Option<u8>) {
        self.meta().min_healthy_percent = percent;
    }

    /// Turns its own metric series off (see `Child::own_metrics`).
    pub(crate) fn set_own_series(&self, own: bool) {
        self.0.series.store(own, Ordering::Relaxed);
        if let Some(home) = self.home() {
            home.index_series(self);
        }
    }

    pub(crate) fn in_fleet(&self) -> bool {
        self.0.fleet.load(Ordering::Relaxed)
    }

    /// Whether it has metric series of its own.
    pub(crate) fn has_series(&self) -> bool {
        self.0.series.load(Ordering::Relaxed)
    }

    /// The path of its group, shared (no copy of the path).
    pub(crate) fn group_arc(&self) -> Option<Arc<str>> {
        self.meta()
            .membership
            .as_ref()
            .and_then(|m| m.group.clone())
    }
}
