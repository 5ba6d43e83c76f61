//! The fence every sharded child's task checks before it is polled, and
//! the register of those tasks that lets the keeper abort them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use foldhash::HashMap;
use tokio::task::{self, AbortHandle};
use tokio::time::Instant;

/// The instant after which no sharded child may be polled: 4/5 ttl after
/// the last confirmed renewal was sent. Shut until the membership is held.
/// It also knows the sharded children's tasks, so the keeper can abort
/// them when it shuts while the run is busy elsewhere.
pub(crate) struct Fence {
    /// Nanoseconds after `epoch`; 0 is shut.
    open_until: AtomicU64,
    epoch: Instant,
    tasks: Mutex<HashMap<task::Id, AbortHandle>>,
}

impl Fence {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Fence {
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
            tasks: Mutex::new(HashMap::default()),
        })
    }

    /// Keeps a sharded child's task, to abort if the fence shuts.
    pub(crate) fn guard(&self, task: AbortHandle) {
        self.lock_tasks().insert(task.id(), task);
    }

    /// The task ended: no longer kept.
    pub(crate) fn forget(&self, task: task::Id) {
        self.lock_tasks().remove(&task);
    }

    /// Aborts every sharded child's task, so their futures (and whatever
    /// their drops do) go as soon as a worker gets to them, not when
    /// something next wakes them: how many were left.
    pub(super) fn abort_all(&self) -> usize {
        // Taken out first: the run's `forget` does not wait on 100,000
        // aborts.
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for task in tasks.values() {
            task.abort();
        }
        tasks.len()
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, HashMap<task::Id, AbortHandle>> {
        // A map of handles: a panic elsewhere cannot leave it half-written.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set(&self, until: Option<Instant>) {
        let nanos = until.map_or(0, |at| {
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
                .unwrap_or(u64::MAX)
                .max(1)
        });
        self.open_until.store(nanos, Ordering::Release);
    }

    /// Whether a sharded child may be polled now.
    pub(crate) fn is_open(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        let now = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        now < until
    }
}
