//! One record per child: what the group was told about it (its spec) and
//! what the group is doing with it (idle, due to start at an instant, or
//! running with its task), kept together in the definition's one map, in
//! start order. A run keeps only indexes beside it (a task's child, the
//! children due by time), never a second copy of a child.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::child::{Child, RunSource};
use crate::registry::Subsystem;
use crate::Restart;

/// One child of a group, in start order.
pub(super) struct ChildRecord {
    pub(super) name: Arc<str>,
    pub(super) restart: Restart,
    pub(super) stop_timeout: Duration,
    pub(super) start: RunSource,
    /// Added through a handle while the group ran: one of a fleet, which a
    /// shutdown stops all at once rather than one after another.
    pub(super) added_at_run_time: bool,
    /// Stopped by `GroupHandle::pause`: not started until resumed.
    pub(super) paused: bool,
    /// A sharded child whose bucket this replica does not hold: started
    /// when the bucket comes here.
    pub(super) elsewhere: bool,
    /// See [`Child::own_metrics`]; `None`: the default for how it was added.
    pub(super) own_metrics: Option<bool>,
    /// Failures in a row, reset when a run made progress: shown on the
    /// child's entry.
    pub(super) failures: u32,
    /// Its registry entry, made when it first starts.
    pub(super) entry: Option<Subsystem>,
    pub(super) state: ChildState,
}

/// What the group is doing with a child.
pub(super) enum ChildState {
    /// Not running and not due: not started yet, ended, or stopped.
    Idle,
    /// To be started at this instant (a restart's backoff).
    Due(Instant),
    Running(Running),
}

/// A child's run in progress.
pub(super) struct Running {
    pub(super) token: CancellationToken,
    pub(super) abort: AbortHandle,
    pub(super) started: Instant,
    pub(super) beats_then: u64,
}

impl From<Child> for ChildRecord {
    fn from(child: Child) -> Self {
        ChildRecord {
            name: Arc::from(child.name),
            restart: child.restart,
            stop_timeout: child.stop_timeout,
            start: child.start,
            added_at_run_time: false,
            paused: false,
            elsewhere: false,
            own_metrics: child.own_metrics,
            failures: 0,
            entry: None,
            state: ChildState::Idle,
        }
    }
}

impl ChildRecord {
    /// A child added through a handle while the group ran (or before).
    pub(super) fn added(child: Child) -> Self {
        ChildRecord {
            added_at_run_time: true,
            ..ChildRecord::from(child)
        }
    }

    pub(super) fn is_group(&self) -> bool {
        matches!(self.start, RunSource::Group(_))
    }

    pub(super) fn is_running(&self) -> bool {
        matches!(self.state, ChildState::Running(_))
    }
}
