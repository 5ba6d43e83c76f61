//! The liveness registry: which subsystems exist, when each last beat, and
//! what its supervisor is doing.
//!
//! - `subsystem.rs`: the [`Subsystem`] handle. Its [`beat`](Subsystem::beat)
//!   is the hot path: one clock read, one atomic add and one atomic store,
//!   no lookup, no allocation, no lock. The supervisor writes states,
//!   restarts and failures through the same handle.
//! - `instant.rs`: how a beat's instant fits one atomic, and deadlines that
//!   saturate instead of overflowing the clock.
//! - `status.rs`: what a snapshot copies out of a handle
//!   ([`SubsystemStatus`], its state and last panic).
//! - `health.rs`: the one health rule, [`Health`], over a snapshot.
//! - `wallclock.rs`: monotonic instants rendered as wall-clock times.
//! - this file: the map from name to handle ([`Registry`]) and the
//!   process-wide free functions over [`registry()`].
//!
//! Data flows one way: supervisors and bodies write through handles, and
//! readers (`snapshot`, the HTTP routes, metrics, the watchdogs) copy
//! statuses out; nothing reads the map on the beat path.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

mod health;
mod instant;
mod status;
mod subsystem;
#[cfg(any(feature = "http", feature = "prometheus"))]
mod wallclock;

pub use health::Health;
pub(crate) use instant::deadline;
pub use status::{LastPanic, SubsystemState, SubsystemStatus};
pub(crate) use subsystem::FailureRecord;
pub use subsystem::Subsystem;
#[cfg(any(feature = "http", feature = "prometheus"))]
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
    subsystems: DashMap<Key, ()>,
}

/// A set of named subsystems and their liveness.
///
/// The free functions ([`heartbeat`], [`last_tick`], [`snapshot`],
/// [`is_healthy`]) use the process-wide one, [`registry()`]; `Registry::new()`
/// gives an isolated one for tests and embedding. Cloning shares the same set.
///
/// ```
/// use std::time::Duration;
/// use supervised_core::Registry;
///
/// let registry = Registry::new();
/// registry.heartbeat("scheduler");
/// assert!(registry.last_beat("scheduler").is_some());
/// assert!(registry.last_beat("unknown").is_none());
/// let (healthy, stale) = registry.is_healthy(&["scheduler", "relay"], Duration::from_secs(60));
/// assert!(!healthy);
/// assert_eq!(stale, vec!["relay".to_string()]);
/// ```
#[derive(Clone)]
pub struct Registry(Arc<RegistryInner>);

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("subsystems", &self.0.subsystems.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty, isolated registry.
    pub fn new() -> Self {
        Registry(Arc::new(RegistryInner {
            subsystems: DashMap::new(),
        }))
    }

    /// The handle for `name`, registering it (state [`SubsystemState::Running`], no
    /// tick) if it is new. Keep the handle: beating through it costs no lookup.
    pub fn subsystem(&self, name: &str) -> Subsystem {
        if let Some(existing) = self.0.subsystems.get(name) {
            return existing.key().0.clone();
        }
        // The key is the new handle itself; if another thread registered
        // the name in the meantime, its entry wins and this one is dropped.
        self.0
            .subsystems
            .entry(Key(Subsystem::new(name)))
            .or_insert(())
            .key()
            .0
            .clone()
    }

    /// Looks `name` up without registering it.
    pub fn get(&self, name: &str) -> Option<Subsystem> {
        self.0.subsystems.get(name).map(|s| s.key().0.clone())
    }

    /// Records that `name` is alive now, registering it if needed.
    pub fn heartbeat(&self, name: &str) {
        match self.0.subsystems.get(name) {
            Some(sub) => sub.key().0.beat(),
            None => self.subsystem(name).beat(),
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
/// supervised_core::registry().heartbeat("doc-registry");
/// assert!(supervised_core::last_tick("doc-registry").is_some());
/// ```
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
/// supervised_core::heartbeat("doc-heartbeat");
/// assert!(supervised_core::last_tick("doc-heartbeat").is_some());
/// ```
pub fn heartbeat(name: &str) {
    registry().heartbeat(name);
}

/// The last beat of `name` in the process-wide registry, `None` if it never
/// beat ([`Registry::last_beat`]).
///
/// ```
/// assert!(supervised_core::last_tick("doc-never-beat").is_none());
/// ```
pub fn last_tick(name: &str) -> Option<Instant> {
    registry().last_beat(name)
}

/// Every subsystem of the process-wide registry, sorted by name.
///
/// ```
/// supervised_core::heartbeat("doc-snapshot");
/// assert!(supervised_core::snapshot().iter().any(|s| s.name == "doc-snapshot"));
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
/// supervised_core::heartbeat("doc-healthy");
/// assert_eq!(
///     supervised_core::is_healthy(&["doc-healthy"], Duration::from_secs(60)),
///     (true, vec![])
/// );
/// ```
pub fn is_healthy(expected: &[&str], stale_threshold: Duration) -> (bool, Vec<String>) {
    registry().is_healthy(expected, stale_threshold)
}
