//! What a sharded group's run shows on its group's entry: its buckets,
//! those held here, the live replicas, and counts of buckets acquired and
//! released. Written by the shard keeper, read by the reports.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::status::ShardsStatus;

/// See the module's docs.
pub(crate) struct ShardFigures {
    pub(crate) buckets: u32,
    held: Mutex<BTreeSet<u32>>,
    replicas: Mutex<Vec<String>>,
    /// This replica's id, once it joined.
    me: Mutex<Option<String>>,
    acquired: AtomicU64,
    released: AtomicU64,
    /// Whether the store is failing now (one WARN per episode).
    pub(crate) outage: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ShardFigures {
    pub(crate) fn new(buckets: u32) -> Self {
        ShardFigures {
            buckets,
            held: Mutex::default(),
            replicas: Mutex::default(),
            me: Mutex::default(),
            acquired: AtomicU64::new(0),
            released: AtomicU64::new(0),
            outage: AtomicBool::new(false),
        }
    }

    pub(crate) fn acquired(&self, bucket: u32) {
        lock(&self.held).insert(bucket);
        self.acquired.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn released(&self, bucket: u32) {
        if lock(&self.held).remove(&bucket) {
            self.released.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every bucket let go at once (a loss, or leaving).
    pub(crate) fn released_all(&self) {
        let mut held = lock(&self.held);
        self.released
            .fetch_add(held.len() as u64, Ordering::Relaxed);
        held.clear();
    }

    pub(crate) fn set_replicas(&self, replicas: Vec<String>) {
        *lock(&self.replicas) = replicas;
    }

    pub(crate) fn set_me(&self, me: &str) {
        *lock(&self.me) = Some(me.to_owned());
    }

    pub(crate) fn me(&self) -> Option<String> {
        lock(&self.me).clone()
    }

    pub(crate) fn status(&self) -> ShardsStatus {
        ShardsStatus {
            buckets: self.buckets,
            held: lock(&self.held).iter().copied().collect(),
            replicas: lock(&self.replicas).clone(),
            acquired: self.acquired.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
        }
    }
}
