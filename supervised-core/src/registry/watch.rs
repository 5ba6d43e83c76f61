//! Which entries are stale, and where each group's longest silence began,
//! without a pass over every entry.
//!
//! Staleness changes with time, not by a supervisor's transition, so the
//! counts of `tally.rs` cannot hold it. Instead each entry with a tick
//! waits in two queues:
//! - `due`, by the earliest instant it could go stale (its silence's start
//!   plus its `stale_after`);
//! - its group's `quiet`, by its silence's start (its last beat, or its
//!   registration or takeover before its first), while it runs.
//!
//! A beat never touches them (the beat path stays one clock read and two
//! atomics): a queued instant is a lower bound, which a beat only moves
//! later. A reader ([`Watch::look`]) takes the entries whose instant has
//! come, reads each one's real instant, and queues it again there, or
//! moves it to the `stale` set, which it checks again at every look. So a
//! look costs the entries that could have changed since the last one
//! (about one per entry per `stale_after` when all beat), not the entries.
//!
//! A change that could make an entry's instant earlier (a tick declared,
//! a return from standby or pause, a restart, a move to another group)
//! arms it again (`Subsystem::arm` in `subsystem/counted.rs`): its count
//! of arms goes up, its items queued before are ignored, and new ones are
//! queued. Ignored items are dropped when they come up or when a queue
//! has doubled since it was last swept.

// Kept for the reports (the HTTP routes and the metrics), which read it.
#![cfg_attr(
    not(any(feature = "http", feature = "prometheus", feature = "metrics")),
    allow(dead_code)
)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tokio::time::Instant;

use super::subsystem::Watched;
use super::Subsystem;

/// See the module's docs.
#[derive(Default)]
pub(crate) struct Watch {
    due: Queue,
    /// Stale at the last look, by the handle's address.
    stale: HashMap<usize, Item>,
    /// By group path.
    quiet: HashMap<Arc<str>, Queue>,
}

/// A min-queue of items that sweeps out the ones armed over.
#[derive(Default)]
struct Queue {
    items: BinaryHeap<Reverse<Item>>,
    /// Its length after the last sweep.
    swept: usize,
}

impl Queue {
    fn push(&mut self, item: Item) {
        self.items.push(Reverse(item));
        if self.items.len() > 2 * self.swept + 1024 {
            self.items.retain(|Reverse(item)| item.current());
            self.swept = self.items.len();
        }
    }

    fn peek(&self) -> Option<&Item> {
        self.items.peek().map(|Reverse(item)| item)
    }

    fn pop(&mut self) -> Option<Item> {
        self.items.pop().map(|Reverse(item)| item)
    }
}

/// One entry queued at an instant, as armed the `armed`th time.
#[derive(Clone)]
struct Item {
    at: Instant,
    armed: u32,
    sub: Subsystem,
}

impl Item {
    /// Whether the entry was not armed again since (without its lock).
    fn current(&self) -> bool {
        self.sub.arms() == self.armed
    }

    /// What the entry says now, if this item is still its own.
    fn read(&self) -> Option<Watched> {
        self.sub.watched().filter(|w| w.armed == self.armed)
    }

    fn at(&self, at: Instant) -> Item {
        Item {
            at,
            armed: self.armed,
            sub: self.sub.clone(),
        }
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl Watch {
    /// Queues `sub` as armed the `watched.armed`th time.
    pub(super) fn queue(&mut self, sub: &Subsystem, watched: &Watched) {
        if let Some(at) = watched.stale_after_at {
            self.due.push(Item {
                at,
                armed: watched.armed,
                sub: sub.clone(),
            });
        }
        if let Some((group, since)) = &watched.quiet_since {
            self.quiet.entry(Arc::clone(group)).or_default().push(Item {
                at: *since,
                armed: watched.armed,
                sub: sub.clone(),
            });
        }
    }

    /// Brings the stale set and every group's longest silence up to `now`;
    /// returns how many entries it read.
    pub(super) fn look(&mut self, now: Instant) -> usize {
        let mut read = self.stale.len();
        // The stale ones first: one that beat since goes back to waiting.
        let mut fresh = Vec::new();
        self.stale.retain(|_, item| match item.read() {
            Some(Watched {
                stale_after_at: Some(at),
                ..
            }) => {
                if now > at {
                    true
                } else {
                    fresh.push(item.at(at));
                    false
                }
            }
            _ => false,
        });
        for item in fresh {
            self.due.push(item);
        }
        // Then those whose time has come. Each goes to the stale set, back
        // in the queue at an instant not before `now`, or away: the loop
        // ends.
        while self.due.peek().is_some_and(|item| item.at < now) {
            let Some(item) = self.due.pop() else { break };
            read += 1;
            let Some(at) = item.read().and_then(|w| w.stale_after_at) else {
                continue;
            };
            if now > at {
                self.stale.insert(item.sub.addr(), item.at(at));
            } else {
                self.due.push(item.at(at));
            }
        }
        // Each group's longest silence: its first item, once that item's
        // instant is its entry's real one.
        for (group, queue) in &mut self.quiet {
            while let Some(item) = queue.peek() {
                read += 1;
                let since = item
                    .read()
                    .and_then(|w| w.quiet_since)
                    .filter(|(g, _)| g == group)
                    .map(|(_, since)| since);
                match since {
                    Some(since) if since <= item.at => break,
                    Some(since) => {
                        let moved = item.at(since);
                        queue.pop();
                        queue.push(moved);
                    }
                    None => {
                        queue.pop();
                    }
                }
            }
        }
        read
    }

    /// How many items wait in its queues.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.due.items.len() + self.quiet.values().map(|q| q.items.len()).sum::<usize>()
    }

    /// The entries stale at the last look.
    pub(super) fn stale(&self) -> impl Iterator<Item = &Subsystem> {
        self.stale.values().map(|item| &item.sub)
    }

    /// Where `group`'s longest silence began at the last look: the earliest
    /// last beat (or start, before a first beat) among its running
    /// children with a tick.
    #[cfg(any(feature = "prometheus", feature = "metrics"))]
    pub(super) fn quiet_since(&self, group: &str) -> Option<Instant> {
        self.quiet.get(group)?.peek().map(|item| item.at)
    }
}

#[cfg(test)]
mod tests {
    use super::Item;

    /// A ticked entry waits in two queues: its items stay small.
    #[test]
    fn an_item_is_an_instant_an_arm_count_and_a_pointer() {
        assert!(
            std::mem::size_of::<Item>() <= 32,
            "{}",
            std::mem::size_of::<Item>()
        );
    }
}
