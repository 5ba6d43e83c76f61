//! What a snapshot reports of a subsystem: its state, its last panic and
//! the whole status record.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// What a subsystem is doing right now, as its supervisor last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubsystemState {
    /// The body is running (also the state of a name that is only beaten by hand).
    Running,
    /// The body failed and the supervisor is waiting for the backoff to pass.
    BackingOff,
    /// The body returned cleanly or was cancelled; it will not be restarted.
    Stopped,
    /// The supervisor gave up: restart intensity was exceeded.
    Failed,
    /// A lease-gated subsystem waiting for its lease, which another replica
    /// holds (or the lease backend cannot be reached). It is healthy, never
    /// stale and ready: it is doing what it should. See [`crate::lease`].
    Standby,
    /// A group's child stopped by
    /// [`GroupHandle::pause`](crate::GroupHandle::pause): not restarted until
    /// [`resume`](crate::GroupHandle::resume)d, its entry kept. Neither stale
    /// nor failed, and not waited for by readiness.
    Paused,
    /// A child of a sharded group ([`Group::shards`](crate::Group::shards))
    /// whose bucket another replica holds: it runs there, not here. Only
    /// [`GroupHandle::children`](crate::GroupHandle::children) shows it; such
    /// a child has no entry in this replica's registry.
    Elsewhere,
}

impl SubsystemState {
    /// The lower-case name used in logs and JSON: `running`, `backing_off`,
    /// `stopped`, `failed`, `standby`, `paused`, `elsewhere`.
    ///
    /// ```
    /// assert_eq!(supervised::SubsystemState::BackingOff.as_str(), "backing_off");
    /// ```
    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            SubsystemState::Running => "running",
            SubsystemState::BackingOff => "backing_off",
            SubsystemState::Stopped => "stopped",
            SubsystemState::Failed => "failed",
            SubsystemState::Standby => "standby",
            SubsystemState::Paused => "paused",
            SubsystemState::Elsewhere => "elsewhere",
        }
    }

    /// How many states a registry entry can be in (not `Elsewhere`, which
    /// no entry is).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) const COUNT: usize = 6;

    /// Every state of a registry entry, in the order of their numbers.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) const ALL: [SubsystemState; Self::COUNT] = [
        SubsystemState::Running,
        SubsystemState::BackingOff,
        SubsystemState::Stopped,
        SubsystemState::Failed,
        SubsystemState::Standby,
        SubsystemState::Paused,
    ];

    /// The state [`as_str`](SubsystemState::as_str) names.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn from_name(name: &str) -> Option<SubsystemState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    #[inline]
    pub(crate) const fn to_u8(self) -> u8 {
        match self {
            SubsystemState::Running => 0,
            SubsystemState::BackingOff => 1,
            SubsystemState::Stopped => 2,
            SubsystemState::Failed => 3,
            SubsystemState::Standby => 4,
            SubsystemState::Paused => 5,
            // Never stored in an entry: shown as running if it were.
            SubsystemState::Elsewhere => 0,
        }
    }

    #[inline]
    pub(super) const fn from_u8(v: u8) -> SubsystemState {
        match v {
            1 => SubsystemState::BackingOff,
            2 => SubsystemState::Stopped,
            3 => SubsystemState::Failed,
            4 => SubsystemState::Standby,
            5 => SubsystemState::Paused,
            _ => SubsystemState::Running,
        }
    }
}

impl fmt::Display for SubsystemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a registry entry stands for: a loop, or a [`Group`](crate::Group)
/// of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SubsystemKind {
    /// A supervised loop, a group's child, or a name beaten by hand.
    #[default]
    Subsystem,
    /// A [`Group`](crate::Group): its state is running, stopped or failed,
    /// its `restarts` are the group's restarts, and it declares no tick.
    Group,
}

impl SubsystemKind {
    /// The lower-case name used in JSON: `subsystem` or `group`.
    ///
    /// ```
    /// assert_eq!(supervised::SubsystemKind::Group.as_str(), "group");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            SubsystemKind::Subsystem => "subsystem",
            SubsystemKind::Group => "group",
        }
    }
}

impl fmt::Display for SubsystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last panic a subsystem's body raised.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastPanic {
    /// The panic message (`&str` and `String` payloads verbatim; other payload
    /// types as `Box<dyn Any>` with their type unknown).
    pub message: String,
    /// `file:line:column` of the panic, when the panic hook saw it.
    pub location: Option<String>,
    /// When the supervisor caught it.
    pub at: Instant,
}

/// The lease of a lease-gated subsystem, as its supervisor last saw it
/// (see [`crate::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseStatus {
    /// The lease's name.
    pub name: String,
    /// Whether this process holds it (the subsystem runs) or not (it is in
    /// [`SubsystemState::Standby`]).
    pub leader: bool,
    /// Who holds it, if known: this process's holder id while leader,
    /// another replica's while that one holds it.
    pub holder: Option<String>,
    /// The fencing token of the holder's grant, if known.
    pub epoch: Option<u64>,
    /// How long the holder's grant has left, if known, at the time of the
    /// snapshot. For this process's own grant, counted from the last
    /// confirmed renewal (the grant cannot expire sooner).
    pub expires_in: Option<Duration>,
    /// How many times this process acquired it.
    pub acquisitions: u64,
}

/// A point-in-time copy of one subsystem's liveness, as returned by
/// [`Registry::snapshot`](crate::Registry::snapshot).
///
/// Health rules:
/// - A subsystem that declares a `tick` is *stale* when more than
///   `stale_after` (default twice the tick) has passed since its last beat, or,
///   if it never beat, since it was registered: a loop that started but has not
///   finished its first tick is given `stale_after` to do so.
/// - `healthy` is `false` when the state is [`SubsystemState::Failed`], or when it
///   declares a tick and is stale. A subsystem without a tick has no staleness
///   check and is healthy unless Failed.
/// - A lease-gated subsystem in [`SubsystemState::Standby`] is never stale
///   and is healthy; when it takes the lease, staleness counts from then.
/// - A subsystem that returned cleanly stays listed as [`SubsystemState::Stopped`], so
///   operators see a loop that quietly ended; with a tick it goes stale and
///   unhealthy once `stale_after` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubsystemStatus {
    /// The subsystem's name.
    pub name: String,
    /// A loop or a [`Group`](crate::Group).
    pub kind: SubsystemKind,
    /// The path of the [`Group`](crate::Group) it runs in (such as
    /// `platform/channels`), `None` outside any group (and for a root group).
    pub group: Option<String>,
    /// What its supervisor is doing.
    pub state: SubsystemState,
    /// The declared interval between beats, if any.
    pub tick: Option<Duration>,
    /// How long without a beat makes it stale (explicit, or twice the tick).
    pub stale_after: Option<Duration>,
    /// When it was registered (the reference for staleness before the first beat).
    pub registered_at: Instant,
    /// The last beat, `None` if it never beat.
    pub last_beat: Option<Instant>,
    /// Time since the last beat, at the time of the snapshot.
    pub since_last_beat: Option<Duration>,
    /// Total beats recorded.
    pub beats: u64,
    /// Total restarts scheduled by its supervisor.
    pub restarts: u64,
    /// Failures since the last run that showed progress (see
    /// [`crate::Supervisor::reset_after`]); 0 as soon as the running
    /// generation has shown that progress.
    pub consecutive_failures: u32,
    /// When the next restart is due, while [`SubsystemState::BackingOff`].
    pub next_restart_at: Option<Instant>,
    /// The last panic its body raised, if any.
    pub last_panic: Option<LastPanic>,
    /// The message of the last `Err` its body returned, if any.
    pub last_error: Option<String>,
    /// Whether it is advisory: reported, but never failing an aggregate
    /// health probe (see [`Subsystem::set_advisory`](crate::Subsystem::set_advisory)).
    pub advisory: bool,
    /// Whether it declares a tick and is stale (see above).
    pub stale: bool,
    /// Since when it has been stale: its last beat (or registration) plus
    /// `stale_after`. `None` while fresh. The stall watchdog
    /// ([`crate::StallWatchdog`]) logs the start and end of each such episode.
    pub stale_since: Option<Instant>,
    /// Panics caught by [`crate::isolate`] in items of this subsystem: each
    /// cost one item, not the subsystem.
    pub item_panics: u64,
    /// Whether it is healthy (see above).
    pub healthy: bool,
    /// For a group with
    /// [`min_healthy_percent`](crate::Group::min_healthy_percent): the
    /// share of its children, in percent, that must be healthy.
    pub min_healthy_percent: Option<u8>,
    /// Its lease, if it is lease-gated (for a child of a sharded group,
    /// its bucket's grant).
    pub lease: Option<LeaseStatus>,
    /// For a sharded group ([`Group::shards`](crate::Group::shards)): its
    /// buckets here.
    pub shards: Option<ShardsStatus>,
}

/// A sharded group's buckets as this replica sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardsStatus {
    /// How many buckets the shard set has.
    pub buckets: u32,
    /// The buckets this replica holds, in order.
    pub held: Vec<u32>,
    /// The ids of the live replicas (this one included), as last listed.
    pub replicas: Vec<String>,
    /// Buckets this replica acquired since it started.
    pub acquired: u64,
    /// Buckets this replica released (handed off, lost, or left).
    pub released: u64,
}
