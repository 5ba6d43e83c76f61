//! The [`Backend`] trait every lease store implements, and the values that
//! cross it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, as [`Backend`]'s methods return (so the trait stays
/// object-safe: the supervisor holds an `Arc<dyn Backend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store of named, expiring, exclusive leases: PostgreSQL
/// ([`Postgres`](super::Postgres)), etcd ([`Etcd`](super::Etcd)), the
/// in-memory [`Memory`](super::Memory), or your own (Consul, Redis, the
/// Kubernetes Lease API).
///
/// The rules, which [`conformance::run`](super::conformance::run) checks:
/// - **Exclusive.** At most one unexpired grant per name exists at a time,
///   whoever asks: a second `acquire` while a grant is live answers
///   [`Acquired::Held`], even to the same holder.
/// - **Expiring.** A grant not renewed within its ttl expires, and the next
///   `acquire` succeeds. The store's own clock decides expiry: the
///   supervisor never compares clocks across machines.
/// - **Fenced.** Each grant of a name carries an `epoch` strictly greater
///   than every earlier grant's of that name.
/// - **Renewal** extends a live grant by its ttl, and answers
///   [`Renewal::Lost`] once the grant has expired or another replaced it.
/// - **Release** ends a grant at once, so the next `acquire` succeeds; it
///   never ends a newer grant.
///
/// An `Err` means the store could not answer (down, unreachable, refused);
/// the supervisor retries and never runs the subsystem on an error.
///
/// # Bound grants
///
/// Sharded groups (many small grants that must not each be renewed) need
/// three more methods, which the built-in stores implement and a store of
/// your own may leave to their defaults (which answer `Err`):
/// - [`acquire_bound`](Backend::acquire_bound) takes a grant *bound* to a
///   live grant of this process (its membership): exclusive and fenced as
///   a grant is, in a namespace of its own, never renewed by itself, and
///   gone when the membership expires or is released;
/// - [`release_bound`](Backend::release_bound) ends one at once;
/// - [`list`](Backend::list) names the live grants under a prefix (the
///   members of a shard set).
///
/// [`conformance::run_bound`](super::conformance::run_bound) checks them.
///
/// ```
/// use std::time::Duration;
/// use supervised::lease::{Acquired, Backend, BoxFuture, Grant, LeaseError, Renewal};
///
/// /// A store that never grants anything.
/// struct Never;
///
/// impl Backend for Never {
///     fn holder(&self) -> &str {
///         "replica-a"
///     }
///     fn acquire<'a>(&'a self, _name: &'a str, _ttl: Duration) -> BoxFuture<'a, Result<Acquired, LeaseError>> {
///         Box::pin(async { Err(LeaseError::new("never grants")) })
///     }
///     fn renew<'a>(&'a self, _grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
///         Box::pin(async { Ok(Renewal::Lost(Default::default())) })
///     }
///     fn release<'a>(&'a self, _grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// # let _ = Never;
/// ```
pub trait Backend: Send + Sync + 'static {
    /// Who this process acquires as (its replica id), shown as the holder.
    fn holder(&self) -> &str;

    /// Takes the lease `name` for `ttl` if no live grant of it exists.
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, LeaseError>>;

    /// Extends `grant` by its ttl, if it is still the live grant.
    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>>;

    /// Ends `grant` now, if it is still the live grant; the grants bound
    /// to it end with it.
    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>>;

    /// Takes `name` bound to `member`, a live grant of this process: the
    /// new grant lives exactly as long as `member` (each renewal of
    /// `member` extends it) unless it is released first. Bound names are a
    /// namespace apart from plain ones. Exclusive: answers
    /// [`Bound::Held`] while a bound grant of `name` lives, even this
    /// process's. Fenced: each grant of `name` has a greater epoch than
    /// every earlier one. [`Bound::MemberLost`] when `member` is no longer
    /// live.
    ///
    /// A holder makes its calls for one member one at a time (the
    /// PostgreSQL store relies on it).
    ///
    /// The default answers `Err`: the store does not support bound grants.
    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        let _ = (name, member);
        Box::pin(async { Err(unsupported()) })
    }

    /// Ends the bound `grant` now, if it is still live; never a newer one.
    ///
    /// The default answers `Err`, as [`acquire_bound`](Backend::acquire_bound)'s does.
    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        let _ = grant;
        Box::pin(async { Err(unsupported()) })
    }

    /// The live plain grants whose names start with `prefix`, in no order.
    ///
    /// The default answers `Err`, as [`acquire_bound`](Backend::acquire_bound)'s does.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        let _ = prefix;
        Box::pin(async { Err(unsupported()) })
    }
}

fn unsupported() -> LeaseError {
    LeaseError::new("this lease store does not support bound grants (sharded groups need them)")
}

/// What [`Backend::acquire_bound`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// The bound grant is this process's.
    Granted(Grant),
    /// A live bound grant of the name exists (perhaps this process's own).
    Held(Holder),
    /// The membership it was to be bound to is no longer live.
    MemberLost,
}

/// A live grant that [`Backend::list`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listed {
    /// The lease's name.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// Its epoch.
    pub epoch: u64,
    /// How long it has left unless renewed, if the store says: a sharded
    /// group looks again when a member's grant runs out, rather than at
    /// its next round, so a dead replica's buckets move sooner.
    pub expires_in: Option<Duration>,
}

impl Listed {
    /// A live grant of `name` to `holder` at `epoch`.
    ///
    /// ```
    /// let member = supervised::lease::Listed::new("shards/tenants/a", "a", 3);
    /// assert_eq!(member.holder, "a");
    /// ```
    pub fn new(name: &str, holder: &str, epoch: u64) -> Self {
        Listed {
            name: name.to_owned(),
            holder: holder.to_owned(),
            epoch,
            expires_in: None,
        }
    }

    /// The same, with how long it has left.
    ///
    /// ```
    /// use std::time::Duration;
    /// let member = supervised::lease::Listed::new("shards/tenants/a", "a", 3)
    ///     .with_expires_in(Duration::from_secs(9));
    /// assert_eq!(member.expires_in, Some(Duration::from_secs(9)));
    /// ```
    pub fn with_expires_in(mut self, left: Duration) -> Self {
        self.expires_in = Some(left);
        self
    }
}

/// One grant of a lease to this process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The lease's name.
    pub name: String,
    /// Who holds it ([`Backend::holder`]).
    pub holder: String,
    /// The fencing token: strictly greater than every earlier grant's of
    /// this name.
    pub epoch: u64,
    /// How long the grant lives without a renewal.
    pub ttl: Duration,
    /// What the backend needs to renew and release this grant, if more
    /// than the name and epoch (etcd's lease id, say). Not shown anywhere.
    pub token: String,
}

impl Grant {
    /// A grant of `name` to `holder` at `epoch`, for `ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let grant = supervised::lease::Grant::new("scheduler", "replica-a", 7, Duration::from_secs(15));
    /// assert_eq!(grant.epoch, 7);
    /// ```
    pub fn new(name: &str, holder: &str, epoch: u64, ttl: Duration) -> Self {
        Grant {
            name: name.to_owned(),
            holder: holder.to_owned(),
            epoch,
            ttl,
            token: String::new(),
        }
    }

    /// The same grant with the backend's own `token`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let grant = supervised::lease::Grant::new("scheduler", "a", 1, Duration::from_secs(15))
    ///     .with_token("lease-42");
    /// assert_eq!(grant.token, "lease-42");
    /// ```
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }
}

/// Who holds a lease that this process did not get, as far as the backend
/// knows (every field may be unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Holder {
    /// The holder's id.
    pub holder: Option<String>,
    /// The holder's epoch.
    pub epoch: Option<u64>,
    /// How long the holder's grant has left.
    pub expires_in: Option<Duration>,
}

impl Holder {
    /// A holder with every field known.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let other = supervised::lease::Holder::new("replica-b", 3, Duration::from_secs(9));
    /// assert_eq!(other.holder.as_deref(), Some("replica-b"));
    /// ```
    pub fn new(holder: &str, epoch: u64, expires_in: Duration) -> Self {
        Holder {
            holder: Some(holder.to_owned()),
            epoch: Some(epoch),
            expires_in: Some(expires_in),
        }
    }
}

/// What [`Backend::acquire`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is this process's.
    Granted(Grant),
    /// A live grant exists (perhaps this process's own).
    Held(Holder),
}

/// What [`Backend::renew`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The grant lives another ttl.
    Renewed,
    /// The grant expired or was replaced; the new holder if known.
    Lost(Holder),
}

/// A lease store that could not answer: its own message, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseError {
    message: String,
}

impl LeaseError {
    /// An error with the backend's `message`.
    ///
    /// ```
    /// let e = supervised::lease::LeaseError::new("connection refused");
    /// assert_eq!(e.to_string(), "connection refused");
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        LeaseError {
            message: crate::text::displayed(&message),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LeaseError {}
