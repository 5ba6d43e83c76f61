//! The liveness registry: which subsystems exist, when each last beat, and
//! what its supervisor is doing.
//!
//! - `subsystem/`: the [`Subsystem`] handle (`membership.rs` there: its
//!   registry, group and kind, fleet and metric series). Its [`beat`](Subsystem::beat)
//!   is the hot path: one clock read, one atomic add and one atomic store,
//!   no lookup, no allocation, no lock. The supervisor writes states,
//!   restarts and failures through the same handle.
//! - `instant.rs`: how a beat's instant fits one atomic, and deadlines that
//!   saturate instead of overflowing the clock.
//! - `status.rs`: what a snapshot copies out of a handle
//!   ([`SubsystemStatus`], its state and last panic).
//! - `health.rs`: the one health rule, [`Health`], over a snapshot;
//!   `readiness.rs`: whether to send traffic, [`Readiness`].
//! - `progress.rs`: `ResetRule`, when a run counts as having made
//!   progress (the supervisor's rule, which the live check reads too).
//! - `current.rs`: the thread-local current subsystem behind [`beat`] and
//!   [`current`]: the supervisor makes a run's handle current for each
//!   poll of its body.
//! - `fleet.rs`: children added at run time, registered beyond the cap;
//!   the indexes of the entries not running and of those with metric
//!   series of their own; removal.
//! - `tally.rs`: counts by group and state (and each group's restarts),
//!   kept on every change; `watch.rs`: the stale entries and each group's
//!   longest silence, kept by looking only at entries whose time has come.
//!   A handle keeps both right itself (`subsystem/counted.rs`), so the
//!   summary and the metrics of 100,000 entries read neither every entry
//!   nor anything on the beat path.
//! - `query.rs`: the entries that match a filter, a page at a time, and
//!   counts by group and state, for the HTTP reports at scale;
//!   `counts.rs`: the summary of every entry and the metrics' figures,
//!   read from the tallies, the watch and the indexes, without a pass.
//! - `wallclock.rs`: monotonic instants rendered as wall-clock times.
//! - `recent.rs`: the handles each thread last beat by name, which
//!   [`heartbeat(name)`](Registry::heartbeat) tries before the map.
//! - this file: the map from name to handle ([`Registry`]) and the
//!   process-wide free functions over [`registry()`].
//!
//! Data flows one way: supervisors and bodies write through handles, and
//! readers (`snapshot`, the HTTP routes, metrics, the watchdogs) copy
//! statuses out; nothing reads the map on the beat path, and
//! `heartbeat(name)` reads it only for a name its thread has not beat
//! lately or after a removal.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::time::Instant;

use crate::text::Escaped;

#[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
pub(crate) mod counts;
pub(crate) mod current;
mod fleet;
mod health;
mod instant;
mod progress;
#[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
pub(crate) mod query;
mod readiness;
mod recent;
mod shards;
mod status;
mod subsystem;
mod tally;
#[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
mod wallclock;
mod watch;

pub use current::{beat, current};
pub use health::Health;
pub(crate) use instant::deadline;
pub(crate) use progress::ResetRule;
pub use readiness::Readiness;
pub(crate) use shards::ShardFigures;
pub use status::{
    LastPanic, LeaseStatus, ShardsStatus, SubsystemKind, SubsystemState, SubsystemStatus,
};
pub(crate) use subsystem::FailureRecord;
pub use subsystem::Subsystem;
#[cfg(any(feature = "http", feature = "prometheus", feature = "metrics"))]
pub(crate) use wallclock::WallClock;

/// A handle as the key of the registry's map, found by its name: one
/// pointer per entry, and the name stored once, in the subsystem.
struct Key(Subsystem);

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, for lookups through `Borrow<str>`.
        self.0.name().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for Key {}

struct RegistryInner {
    /// Unique in the process and never reused, unlike an address: what
    /// `recent.rs` checks a remembered handle's registry by.
    id: u64,
    /// Bumped after every removal from `subsystems`: a handle a thread
    /// remembered at an older generation is looked up again.
    generation: AtomicU64,
    /// Hashed with foldhash, seeded per process: a name hashes in a few
    /// nanoseconds instead of SipHash's tens (`heartbeat(name)` hashes on
    /// every call), and a per-process seed still keeps names chosen to
    /// collide from piling into one bucket.
    subsystems: DashMap<Key, (), foldhash::fast::RandomState>,
    /// Entries in `subsystems` that count toward the cap, counted apart so
    /// the cap is exact under concurrent registration (a slot is reserved
    /// before the insert).
    count: AtomicUsize,
    /// A group's children added at run time (its fleet): intended, so not
    /// held to the cap that guards against names made from data.
    fleet: AtomicUsize,
    /// The entries whose state is not `Running` (backing off, failed,
    /// stopped, standby, paused), kept on each state change: a filter on
    /// those states reads this instead of every entry. It may briefly hold
    /// an entry that is running again or was removed (readers check), never
    /// lack one that is not running.
    /// Keyed by name with the handle as the value, so inserting a new
    /// entry's handle replaces a removed one's of the same name.
    attention: DashMap<Key, Subsystem, foldhash::fast::RandomState>,
    /// The entries with metric series of their own (static ones, unless
    /// turned off, and children asked for with `Child::own_metrics`), kept
    /// as `attention` is: the metrics read these, not every entry.
    series: DashMap<Key, Subsystem, foldhash::fast::RandomState>,
    /// See `tally.rs`.
    tallies: std::sync::Mutex<std::collections::BTreeMap<Option<Arc<str>>, Arc<tally::Tally>>>,
    /// See `watch.rs`.
    watch: std::sync::Mutex<watch::Watch>,
    max: AtomicUsize,
    /// New names refused because the registry was full.
    rejected: AtomicU64,
    /// Whether the registry is refusing names now: one WARN per episode.
    refusing: AtomicBool,
    /// See [`Readiness`]: latched once found ready, and once draining.
    ready: AtomicBool,
    draining: AtomicBool,
}

/// A set of named subsystems and their liveness.
///
/// The free functions ([`heartbeat`], [`last_beat`], [`snapshot`],
/// [`is_healthy`]) use the process-wide one, [`registry()`]; `Registry::new()`
/// gives an isolated one for tests and embedding. Cloning shares the same set.
///
/// ```
/// use std::time::Duration;
/// use supervised::Registry;
///
/// let registry = Registry::new();
/// registry.heartbeat("scheduler");
/// assert!(registry.last_beat("scheduler").is_some());
/// assert!(registry.last_beat("unknown").is_none());
/// let (healthy, stale) = registry.is_healthy(&["scheduler", "relay"], Duration::from_secs(60));
/// assert!(!healthy);
/// assert_eq!(stale, vec!["relay".to_string()]);
/// ```
///
/// # A cap on names
///
/// A registry holds at most [`max_subsystems`](Registry::max_subsystems)
/// names (default [`Registry::DEFAULT_MAX_SUBSYSTEMS`], 10,000), so a bug
/// such as `heartbeat(&format!("tenant-{id}"))` cannot grow memory without
/// bound. A group's fleet, the children added through its
/// [`GroupHandle`](crate::GroupHandle) while it runs, is intended and not
/// held to that cap: 100,000 tenants added with
/// [`GroupHandle::add`](crate::GroupHandle::add) are all registered (see
/// [`len`](Registry::len)), while the bug is still refused. Past it, a new name is refused and counted
/// ([`rejected_subsystems`](Registry::rejected_subsystems), and
/// `supervised_registry_rejected_total` in the metrics), one WARN is logged
/// per episode, and the subsystems already registered are unaffected.
///
/// ```
/// let registry = supervised::Registry::with_max_subsystems(2);
/// registry.heartbeat("a");
/// registry.heartbeat("b");
/// registry.heartbeat("c"); // refused: logged once, counted
/// registry.heartbeat("a"); // a known name still beats
/// assert_eq!(registry.snapshot().len(), 2);
/// assert_eq!(registry.rejected_subsystems(), 1);
/// assert_eq!(registry.get("a").unwrap().beats(), 2);
/// ```
#[derive(Clone)]
pub struct Registry(Arc<RegistryInner>);

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("subsystems", &self.0.subsystems.len())
            .field("fleet", &self.0.fleet.load(Ordering::Relaxed))
            .field("max_subsystems", &self.max_subsystems())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// How many names a registry holds unless told otherwise.
    pub const DEFAULT_MAX_SUBSYSTEMS: usize = 10_000;

    /// An empty, isolated registry that holds at most
    /// [`DEFAULT_MAX_SUBSYSTEMS`](Registry::DEFAULT_MAX_SUBSYSTEMS) names.
    pub fn new() -> Self {
        Self::with_max_subsystems(Self::DEFAULT_MAX_SUBSYSTEMS)
    }

    /// An empty, isolated registry that holds at most `max` names.
    pub fn with_max_subsystems(max: usize) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Registry(Arc::new(RegistryInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            subsystems: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            count: AtomicUsize::new(0),
            fleet: AtomicUsize::new(0),
            attention: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            series: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            tallies: std::sync::Mutex::default(),
            watch: std::sync::Mutex::default(),
            max: AtomicUsize::new(max),
            rejected: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }))
    }

    /// Changes the cap on names, for instance of the process-wide
    /// [`registry()`]. Lowering it below the names already registered
    /// removes none; it only refuses new ones.
    pub fn set_max_subsystems(&self, max: usize) {
        self.0.max.store(max, Ordering::Relaxed);
    }

    /// The cap on names (see the type's docs).
    pub fn max_subsystems(&self) -> usize {
        self.0.max.load(Ordering::Relaxed)
    }

    /// How many new names were refused because the registry was full.
    pub fn rejected_subsystems(&self) -> u64 {
        self.0.rejected.load(Ordering::Relaxed)
    }

    /// The handle for `name`, registering it (state [`SubsystemState::Running`], no
    /// tick) if it is new. Keep the handle: beating through it costs no lookup.
    ///
    /// When the registry is full (see the type's docs), a new name gets a
    /// handle that is in no registry: it works, but nothing reports it.
    pub fn subsystem(&self, name: &str) -> Subsystem {
        self.registered(name)
            .unwrap_or_else(|| Subsystem::new(name))
    }

    /// The handle for `name`, registering it if it is new and there is room.
    fn registered(&self, name: &str) -> Option<Subsystem> {
        if let Some(existing) = self.0.subsystems.get(name) {
            return Some(existing.key().0.clone());
        }
        if !self.reserve(name) {
            return None;
        }
        // The key is the new handle itself; if another thread registered
        // the name in the meantime, its entry wins, this one is dropped and
        // its slot given back.
        Some(match self.0.subsystems.entry(Key(Subsystem::new(name))) {
            Entry::Occupied(existing) => {
                self.0.count.fetch_sub(1, Ordering::Relaxed);
                existing.key().0.clone()
            }
            Entry::Vacant(slot) => {
                let handle = slot.insert(()).key().0.clone();
                self.took_in(&handle);
                handle
            }
        })
    }

    /// Tells a handle just inserted in the map that it is in, and indexes
    /// it: counted, watched, and among the entries with series if it has
    /// them.
    fn took_in(&self, handle: &Subsystem) {
        handle.set_home(self);
        handle.count_in(self);
        self.index_series(handle);
    }

    /// How many entries the registry holds: those under the cap, and the
    /// groups' fleets, which are not.
    ///
    /// ```
    /// let registry = supervised::Registry::new();
    /// registry.heartbeat("relay");
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.0.subsystems.len()
    }

    /// Whether the registry holds no entry.
    ///
    /// ```
    /// assert!(supervised::Registry::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.subsystems.is_empty()
    }

    /// Takes a slot for a new name, or refuses it when the registry is full.
    fn reserve(&self, name: &str) -> bool {
        let max = self.max_subsystems();
        let reserved = self
            .0
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            if self.0.refusing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    target: "supervised",
                    max_subsystems = max,
                    "the registry takes new subsystem names again"
                );
            }
        } else {
            self.0.rejected.fetch_add(1, Ordering::Relaxed);
            if !self.0.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "supervised",
                    max_subsystems = max,
                    first_refused = %Escaped(name),
                    "the registry is full: refusing new subsystem names (a name built from data, such as a tenant id, is the usual cause); known subsystems are unaffected"
                );
            }
        }
        reserved
    }

    /// Looks `name` up without registering it.
    pub fn get(&self, name: &str) -> Option<Subsystem> {
        self.0.subsystems.get(name).map(|s| s.key().0.clone())
    }

    /// Records that `name` is alive now, registering it if needed (and if
    /// there is room: see the type's docs).
    ///
    /// Each thread remembers the last few handles it beat this way, so a
    /// loop beating its own name goes to the map only for its first beat
    /// and after a removal from this registry.
    #[inline]
    pub fn heartbeat(&self, name: &str) {
        // Read before the lookup: a removal after it makes what is
        // remembered below stale at once.
        let generation = self.0.generation.load(Ordering::Acquire);
        if !recent::beat(self.0.id, generation, name) {
            self.heartbeat_in_map(name, generation);
        }
    }

    /// [`heartbeat`](Registry::heartbeat) of a name this thread does not
    /// remember: out of line, so the remembered path inlines small.
    #[inline(never)]
    fn heartbeat_in_map(&self, name: &str, generation: u64) {
        let found = match self.0.subsystems.get(name) {
            Some(sub) => Some(sub.key().0.clone()),
            None => self.registered(name),
        };
        if let Some(sub) = found {
            sub.beat();
            recent::remember(self.0.id, generation, &sub);
        }
    }

    /// The last beat of `name`, `None` if it never beat or is unknown.
    #[doc(alias = "last_tick")]
    pub fn last_beat(&self, name: &str) -> Option<Instant> {
        self.0
            .subsystems
            .get(name)
            .and_then(|s| s.key().0.last_beat())
    }

    /// Every known subsystem, sorted by name. The result is a copy: later
    /// beats do not change it.
    pub fn snapshot(&self) -> Vec<SubsystemStatus> {
        let now = Instant::now();
        let mut handles: Vec<Subsystem> = self
            .0
            .subsystems
            .iter()
            .map(|e| e.key().0.clone())
            .collect();
        // Sort the 8-byte handles, not the statuses they expand into.
        handles.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        handles.iter().map(|s| s.status_at(now)).collect()
    }

    /// Whether to send this process traffic (see [`Readiness`]).
    pub fn readiness(&self) -> Readiness {
        if self.is_draining() {
            return Readiness::Draining;
        }
        if self.0.ready.load(Ordering::Relaxed) {
            return Readiness::Ready;
        }
        let waiting = Readiness::waiting(&self.snapshot());
        if waiting.is_empty() {
            self.0.ready.store(true, Ordering::Relaxed);
            Readiness::Ready
        } else {
            Readiness::Starting { waiting }
        }
    }

    /// Marks the process as shutting down: from now on
    /// [`readiness`](Registry::readiness) is [`Readiness::Draining`] (and
    /// `/admin/ready` answers 503). A [`Group`](crate::Group) calls it the
    /// moment its shutdown begins; call it yourself when you stop without one.
    /// There is no way back: a process that began to shut down is not sent
    /// traffic again.
    pub fn set_draining(&self) {
        if !self.0.draining.swap(true, Ordering::Relaxed) {
            tracing::info!(target: "supervised", "draining: readiness now answers 503");
        }
    }

    /// Whether [`set_draining`](Registry::set_draining) was called.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// The health of every subsystem, by the one rule that `/admin/health`
    /// and the systemd watchdog apply too (see [`Health`]).
    pub fn health(&self) -> Health {
        Health::of(&self.snapshot())
    }

    /// A check over names the caller lists, with a threshold the caller
    /// chooses: each name in `expected` is stale if it never beat or beat
    /// more than `stale_threshold` ago (a name never registered counts as
    /// never beaten). Returns whether none is stale, and the stale names in
    /// the order given. It ignores states and declared ticks; for the rule
    /// the probes apply, use [`health`](Registry::health).
    pub fn is_healthy(&self, expected: &[&str], stale_threshold: Duration) -> (bool, Vec<String>) {
        let now = Instant::now();
        let stale: Vec<String> = expected
            .iter()
            .filter(|name| match self.last_beat(name) {
                None => true,
                Some(t) => now.saturating_duration_since(t) > stale_threshold,
            })
            .map(|name| name.to_string())
            .collect();
        (stale.is_empty(), stale)
    }
}

/// The process-wide registry behind the free functions.
///
/// ```
/// supervised::registry().heartbeat("doc-registry");
/// assert!(supervised::last_beat("doc-registry").is_some());
/// ```
#[inline]
pub fn registry() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

/// Records that `name` is alive now, in the process-wide registry.
///
/// For hand-written code that names its subsystem; supervised bodies beat
/// through a pre-registered handle instead, and code inside one can call
/// [`crate::beat`] without naming itself.
///
/// ```
/// supervised::heartbeat("doc-heartbeat");
/// assert!(supervised::last_beat("doc-heartbeat").is_some());
/// ```
#[inline]
pub fn heartbeat(name: &str) {
    registry().heartbeat(name);
}

/// The last beat of `name` in the process-wide registry, `None` if it never
/// beat ([`Registry::last_beat`]).
///
/// ```
/// assert!(supervised::last_beat("doc-never-beat").is_none());
/// ```
pub fn last_beat(name: &str) -> Option<Instant> {
    registry().last_beat(name)
}

/// The old name of [`last_beat`], kept so code written against it builds.
///
/// ```
/// #[allow(deprecated)]
/// let never = supervised::last_tick("doc-never-ticked");
/// assert!(never.is_none());
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed `last_beat`, as `Registry::last_beat`"
)]
pub fn last_tick(name: &str) -> Option<Instant> {
    last_beat(name)
}

/// Every subsystem of the process-wide registry, sorted by name.
///
/// ```
/// supervised::heartbeat("doc-snapshot");
/// assert!(supervised::snapshot().iter().any(|s| s.name == "doc-snapshot"));
/// ```
pub fn snapshot() -> Vec<SubsystemStatus> {
    registry().snapshot()
}

/// The name-list check over the process-wide registry; see
/// [`Registry::is_healthy`]. For the rule the probes apply, use
/// `registry().health()`.
///
/// ```
/// use std::time::Duration;
/// supervised::heartbeat("doc-healthy");
/// assert_eq!(
///     supervised::is_healthy(&["doc-healthy"], Duration::from_secs(60)),
///     (true, vec![])
/// );
/// ```
pub fn is_healthy(expected: &[&str], stale_threshold: Duration) -> (bool, Vec<String>) {
    registry().is_healthy(expected, stale_threshold)
}
