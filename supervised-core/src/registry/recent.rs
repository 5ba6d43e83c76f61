//! The last few names each thread beat by name, so that
//! [`Registry::heartbeat`](super::Registry::heartbeat) usually finds its
//! handle without the map: no shard lock, no reference-count traffic, only
//! a comparison of the name.
//!
//! A remembered handle is trusted only for the registry it came from (by
//! its id, never reused) and only while that registry has removed nothing
//! since (its generation): a removal makes every thread look its names up
//! in the map again, so a beat never goes to a removed entry that a later
//! registration replaced.

use std::cell::RefCell;

use super::Subsystem;

/// Enough for a thread that beats a handful of names in turn; more names
/// than this on one thread only means more trips to the map.
const SLOTS: usize = 4;

struct Remembered {
    registry: u64,
    generation: u64,
    sub: Subsystem,
}

struct Recent {
    slots: [Option<Remembered>; SLOTS],
    /// The slot the next new name replaces, round robin.
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            slots: [const { None }; SLOTS],
            next: 0,
        })
    };
}

/// Beats `name` through a handle this thread remembered for `registry` at
/// `generation`; `false` if it has none, and the caller goes to the map.
#[inline]
pub(super) fn beat(registry: u64, generation: u64, name: &str) -> bool {
    // `try_`: a thread being torn down, or a beat from inside `remember`
    // (it runs no user code, but nothing here may panic), goes to the map.
    RECENT
        .try_with(|recent| {
            let Ok(recent) = recent.try_borrow() else {
                return false;
            };
            let found = recent.slots.iter().flatten().find(|r| {
                r.registry == registry
                    && r.generation == generation
                    && same_name(r.sub.name().as_bytes(), name.as_bytes())
            });
            match found {
                Some(remembered) => {
                    remembered.sub.beat();
                    true
                }
                None => false,
            }
        })
        .unwrap_or(false)
}

/// `a == b`, with names of 8 to 16 bytes (most: `scheduler`,
/// `tenant-00042`) compared as two overlapping words rather than by a call
/// to `memcmp`, a tenth of a remembered beat.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if !(8..=16).contains(&len) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(word)
    };
    word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8)
}

/// Remembers `sub`, found in the map of `registry` at `generation`.
pub(super) fn remember(registry: u64, generation: u64, sub: &Subsystem) {
    let _ = RECENT.try_with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return;
        };
        let remembered = Remembered {
            registry,
            generation,
            sub: sub.clone(),
        };
        // A stale slot for the same name is replaced in place, so a name
        // never takes two slots.
        let slot = recent
            .slots
            .iter()
            .position(|r| {
                r.as_ref()
                    .is_some_and(|r| r.registry == registry && r.sub.name() == sub.name())
            })
            .unwrap_or(recent.next);
        if slot == recent.next {
            recent.next = (recent.next + 1) % SLOTS;
        }
        recent.slots[slot] = Some(remembered);
    });
}

#[cfg(test)]
mod tests {
    use crate::Registry;

    fn beats(registry: &Registry, name: &str) -> Option<u64> {
        registry.get(name).map(|sub| sub.beats())
    }

    #[test]
    fn names_compare_equal_exactly_when_their_bytes_do() {
        let names = [
            "",
            "a",
            "relay",
            "schedule",
            "scheduler",
            "schedulers",
            "tenant-00042",
            "tenant-00043",
            "tenant-10042",
            "0123456789abcdef",
            "0123456789abcdeF",
            "0123456789abcdef0",
            "x123456789abcdef0",
            "ünïcödé-ñame",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    super::same_name(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn a_remembered_name_beats_the_entry_in_the_map() {
        let registry = Registry::new();
        for _ in 0..3 {
            registry.heartbeat("relay");
        }
        assert_eq!(beats(&registry, "relay"), Some(3));
    }

    #[test]
    fn after_a_removal_a_name_beats_its_new_entry_not_the_removed_one() {
        let registry = Registry::new();
        registry.heartbeat("tenant-7");
        let removed = registry.get("tenant-7").unwrap();
        registry.forget(&removed);
        registry.heartbeat("tenant-7");
        assert_eq!(removed.beats(), 1, "the removed entry beat again");
        assert_eq!(
            beats(&registry, "tenant-7"),
            Some(1),
            "the name is registered again"
        );
        registry.heartbeat("tenant-7");
        assert_eq!(beats(&registry, "tenant-7"), Some(2));
    }

    #[test]
    fn each_registry_beats_its_own_entry_for_one_name() {
        let first = Registry::new();
        let second = Registry::new();
        first.heartbeat("sweep");
        second.heartbeat("sweep");
        second.heartbeat("sweep");
        assert_eq!(beats(&first, "sweep"), Some(1));
        assert_eq!(beats(&second, "sweep"), Some(2));
        // A registry made after another was dropped (perhaps at the same
        // address) is not taken for it.
        drop(first);
        let third = Registry::new();
        third.heartbeat("sweep");
        assert_eq!(beats(&third, "sweep"), Some(1));
        assert_eq!(beats(&second, "sweep"), Some(2));
    }

    #[test]
    fn more_names_than_slots_on_one_thread_lose_no_beat() {
        let registry = Registry::new();
        let names: Vec<String> = (0..3 * super::SLOTS).map(|i| format!("n{i}")).collect();
        for _ in 0..5 {
            for name in &names {
                registry.heartbeat(name);
            }
        }
        for name in &names {
            assert_eq!(beats(&registry, name), Some(5), "{name}");
        }
    }

    #[test]
    fn a_full_registry_remembers_no_handle_for_a_refused_name() {
        let registry = Registry::with_max_subsystems(1);
        registry.heartbeat("kept");
        registry.heartbeat("refused");
        registry.heartbeat("refused");
        assert_eq!(beats(&registry, "refused"), None);
        assert_eq!(registry.rejected_subsystems(), 2);
        assert_eq!(beats(&registry, "kept"), Some(1));
    }
}
