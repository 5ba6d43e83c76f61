//! Sharded groups: each child of a [`Group`](crate::Group) on exactly one
//! replica, by buckets held as lease grants bound to the replica's
//! membership.
//!
//! - `placement.rs`: a child's bucket (a stable hash of its name), each
//!   bucket's replica (rendezvous hashing over the live members), and a
//!   round's moves, bounded.
//! - `keeper.rs`: the membership loop a sharded run spawns: it holds the
//!   replica's membership grant (one renewal per replica, whatever the
//!   number of children), lists the members, takes the buckets that belong
//!   here as grants bound to the membership, and gives up those that
//!   belong elsewhere once the run has stopped their children. It tells
//!   the run what it gained and lost, and keeps the [`Fence`].
//! - `asks.rs`: the keeper's asks for buckets and what it does with each
//!   answer, a lost one included.
//! - `fence.rs`: the [`Fence`] that every sharded child's task checks
//!   before each poll, and the register of those tasks, which the keeper
//!   aborts if the fence shuts while the run is busy elsewhere.
//! - this file: [`Shards`], the settings.
//!
//! The group's run (`group/run/shards.rs`) starts a bucket's children when
//! the keeper gains the bucket and stops them before the keeper releases
//! it; data flows from the store through the keeper into the run.

mod asks;
mod fence;
pub(crate) mod keeper;
pub(crate) mod placement;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::lease::spec::{DEFAULT_TTL, MIN_TTL};
use crate::lease::Backend;

pub(crate) use fence::Fence;
pub(crate) use keeper::KeeperEvent;

/// How a [`Group`](crate::Group)'s children are sharded across the
/// replicas of a service: given to [`Group::shards`](crate::Group::shards).
///
/// Every replica runs the same code and adds every child; each child runs
/// on exactly one replica. A child belongs to a bucket, a stable hash of
/// its name ([`bucket_of`](Shards::bucket_of)); each replica holds the
/// buckets that rendezvous hashing places on it among the live replicas,
/// and runs exactly their children. A child of a bucket held elsewhere is
/// not started here and not in this replica's registry;
/// [`GroupHandle::children`](crate::GroupHandle::children) lists it as
/// [`Elsewhere`](crate::SubsystemState::Elsewhere).
///
/// The store is a lease [`Backend`] with bound grants (`lease::Memory`,
/// `lease::Postgres`, `lease::Etcd`): one membership grant per replica,
/// renewed every ttl/3, and one grant per held bucket bound to it, never
/// renewed by itself, so the store's load grows with replicas, not
/// children. Inside a child, [`lease::epoch`](crate::lease::epoch) is its
/// bucket's fencing token.
///
/// A replica that joins, at start or again after it lost its membership
/// (a store outage), asks for buckets one round (ttl/3) after the store
/// answered its join, so replicas that join within a round of each other
/// see each other before any takes a bucket that is another's.
///
/// ```
/// use std::time::Duration;
/// use supervised::{Group, Shards};
///
/// let tenants = Group::new("tenants").shards(Shards::new(64).ttl(Duration::from_secs(15)));
/// # let _ = tenants;
/// ```
#[derive(Clone)]
pub struct Shards {
    pub(crate) buckets: u32,
    pub(crate) ttl: Duration,
    pub(crate) backend: Option<Arc<dyn Backend>>,
}

impl fmt::Debug for Shards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shards")
            .field("buckets", &self.buckets)
            .field("ttl", &self.ttl)
            .field(
                "backend",
                &self.backend.as_ref().map(|b| b.holder().to_owned()),
            )
            .finish()
    }
}

impl Shards {
    /// `buckets` buckets, the installed lease backend
    /// ([`lease::install`](crate::lease::install)), a ttl of 15 s.
    ///
    /// Choose several buckets per replica you may run (64 for up to a
    /// dozen replicas): a bucket is what moves between replicas.
    ///
    /// # Panics
    ///
    /// If `buckets` is 0.
    ///
    /// ```
    /// let shards = supervised::Shards::new(64);
    /// assert_eq!(shards.buckets(), 64);
    /// ```
    pub fn new(buckets: u32) -> Self {
        assert!(buckets > 0, "a shard set needs at least one bucket");
        Shards {
            buckets,
            ttl: DEFAULT_TTL,
            backend: None,
        }
    }

    /// How long a replica's membership lives without a renewal (default
    /// 15 s). A replica that cannot renew cancels its children by 3/5 of
    /// it and drops them by 4/5; another takes their buckets over after it.
    ///
    /// # Panics
    ///
    /// Below 50 ms, where the renewal timings fall under the timer's
    /// resolution.
    ///
    /// ```
    /// use std::time::Duration;
    /// let shards = supervised::Shards::new(64).ttl(Duration::from_secs(5));
    /// assert_eq!(shards.ttl_of(), Duration::from_secs(5));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        assert!(ttl >= MIN_TTL, "a shard set's ttl must be at least 50 ms");
        self.ttl = ttl;
        self
    }

    /// Uses `backend` instead of the installed one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use supervised::{lease::Memory, Shards};
    /// let shards = Shards::new(64).backend(Arc::new(Memory::new("replica-a")));
    /// # let _ = shards;
    /// ```
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// How many buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The membership ttl.
    pub fn ttl_of(&self) -> Duration {
        self.ttl
    }

    /// The bucket of the child `name`: a stable function of the name's
    /// UTF-8 bytes, the same in every version and on every platform, so a
    /// script can compute it. It is `mix(fnv1a64(name)) % buckets`, where
    /// `fnv1a64` is 64-bit FNV-1a (offset `0xcbf29ce484222325`, prime
    /// `0x100000001b3`) and `mix` is splitmix64's finalizer, all in
    /// wrapping 64-bit arithmetic:
    ///
    /// ```text
    /// def fnv1a64(data):
    ///     h = 0xcbf29ce484222325
    ///     for byte in data:
    ///         h = ((h ^ byte) * 0x100000001b3) % 2**64
    ///     return h
    ///
    /// def mix(x):
    ///     x ^= x >> 30; x = (x * 0xbf58476d1ce4e5b9) % 2**64
    ///     x ^= x >> 27; x = (x * 0x94d049bb133111eb) % 2**64
    ///     return x ^ (x >> 31)
    ///
    /// def bucket_of(name, buckets):   # bucket_of("tenant/42", 64) == 13
    ///     return mix(fnv1a64(name.encode("utf-8"))) % buckets
    /// ```
    ///
    /// ```
    /// let shards = supervised::Shards::new(64);
    /// assert_eq!(shards.bucket_of("tenant/42"), 13);
    /// ```
    pub fn bucket_of(&self, name: &str) -> u32 {
        placement::bucket_of(name, self.buckets)
    }

    /// The replica among `replicas` (their ids) that `bucket` belongs on:
    /// rendezvous (highest random weight) hashing, so adding a replica
    /// moves only the buckets it wins, and removing one only its own.
    /// Each replica's weight for a bucket is
    /// `mix(fnv1a64(id) ^ mix(bucket + 0x9e3779b97f4a7c15))`, with the
    /// functions of [`bucket_of`](Shards::bucket_of) and wrapping
    /// arithmetic; the highest wins, a tie going to the smaller id. `None`
    /// without replicas.
    ///
    /// Each bucket goes to each replica with the same chance, so the
    /// counts spread as a uniform random assignment would: with 64 buckets
    /// over 3 replicas, the largest and smallest count differ by at most
    /// 15 for 95% of choices of ids, 19 for 99%, 23 for 99.9%; a fourth
    /// replica wins 16 on average (a binomial's 64 x 1/4, standard
    /// deviation 3.5), and those are all that move.
    ///
    /// ```
    /// let shards = supervised::Shards::new(64);
    /// let home = shards.replica_for(7, &["replica-a", "replica-b", "replica-c"]);
    /// assert!(home.is_some());
    /// assert_eq!(shards.replica_for(7, &[]), None);
    /// ```
    pub fn replica_for<'a>(&self, bucket: u32, replicas: &[&'a str]) -> Option<&'a str> {
        placement::preferred(bucket, replicas.iter().copied())
    }
}
