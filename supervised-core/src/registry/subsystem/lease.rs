//! A lease-gated subsystem's view of its lease (or a sharded child's view
//! of its bucket's grant): written by the gate or the group's run, read by
//! the reports and by `lease::epoch()`; and standby, the state of a gated
//! subsystem waiting for its lease.

use tokio::time::Instant;

use super::Subsystem;
use crate::registry::SubsystemState;

/// See [`Meta::lease`].
pub(crate) struct LeaseView {
    pub(crate) name: Box<str>,
    pub(crate) leader: bool,
    pub(crate) holder: Option<String>,
    pub(crate) epoch: Option<u64>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) acquisitions: u64,
    /// When the subsystem last left standby: staleness counts from the later
    /// of this and the last beat, so a replica that takes over is given
    /// `stale_after` for its first beat. Here, not in every entry: only a
    /// gated subsystem stands by.
    pub(crate) stale_from: Option<Instant>,
}

impl Subsystem {
    /// Updates the lease view (creating it, named `name`, on first use).
    pub(crate) fn update_lease(&self, name: &str, update: impl FnOnce(&mut LeaseView)) {
        let mut meta = self.meta();
        let view = meta.lease.get_or_insert_with(|| {
            Box::new(LeaseView {
                name: Box::from(name),
                leader: false,
                holder: None,
                epoch: None,
                expires_at: None,
                acquisitions: 0,
                stale_from: None,
            })
        });
        update(view);
    }

    /// The epoch of the lease this process holds for the subsystem, if any.
    pub(crate) fn lease_epoch(&self) -> Option<u64> {
        self.meta()
            .lease
            .as_deref()
            .filter(|lease| lease.leader)
            .and_then(|lease| lease.epoch)
    }

    /// Enters standby: healthy and never stale until it leaves.
    pub(crate) fn enter_standby(&self) {
        self.set_state(SubsystemState::Standby);
    }

    /// Leaves standby at `at`: staleness counts from here. The gate that
    /// stood it by made its lease view first.
    pub(crate) fn leave_standby(&self, at: Instant) {
        if let Some(lease) = self.meta().lease.as_deref_mut() {
            lease.stale_from = Some(at);
        }
    }
}
