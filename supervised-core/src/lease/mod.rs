//! Lease-gated singleton subsystems: with several replicas of a service,
//! a subsystem gated by a lease runs on one replica at a time.
//!
//! - the [`Backend`] trait (acquire, renew, release) and the values that
//!   cross it ([`Grant`], [`Holder`], [`Acquired`], [`Renewal`],
//!   [`LeaseError`]);
//! - [`Memory`], an in-process backend for tests;
//! - [`conformance::run`], the rules every backend keeps;
//! - the built-in backends, `Postgres` and `Etcd` (cargo features
//!   `postgres` and `etcd`).
//!
//! A supervision is gated by [`Supervisor::lease`](crate::Supervisor::lease)
//! (what `#[supervised(lease = "..")]` sets) and a group's child by
//! [`Child::lease`](crate::Child::lease).
//!
//! Data flows from the backend into the gate and from the gate into the
//! registry (state [`Standby`](crate::SubsystemState::Standby) and the
//! [`LeaseStatus`](crate::LeaseStatus) of each gated subsystem); the body
//! reads only [`epoch`].
//!
//! # How it runs
//!
//! ```text
//! run_once ─> standby: acquire every ttl/3 ──granted──> running: body polled,
//!   ^            (held elsewhere, backend down)          renewal every ttl/3
//!   │                                                    │         │
//!   │            body ends (any way) <───────────────────┘         │ refused, or not
//!   │            release at once, then as without a lease          │ confirmed by 3/5 ttl
//!   │                                                              v
//!   └──── Step::Restart <── body dropped by 4/5 ttl <── body's token cancelled
//! ```
//!
//! Every timing counts from the moment the last confirmed request was
//! *sent*, so the grant, whose expiry the store decides by its own clock,
//! cannot expire before the body is gone: the body is dropped at most
//! `ttl - ttl/5` after the last successful renewal, even when it ignores
//! its token, and it is never polled again after that point (a process
//! paused with SIGSTOP past its lease wakes up and drops the body unpolled).
//! What cannot be preempted is a body that blocks its thread without
//! `.await`: it is dropped when it next yields.
//!
//! A leader that stops making progress does not keep the lease: a gated
//! subsystem with a tick that has been stale for a whole ttl (reported
//! stale all the while) gives the lease up at its next renewal
//! (cancelled, dropped, released, counted as a restart) and waits one
//! acquire interval before it asks again, so another replica takes over.
//!
//! # Using it
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use supervised::{lease, Registry, SubsystemState, Supervisor};
//! use supervised::CancellationToken;
//!
//! let registry = Registry::new();
//! let replica_a = lease::Memory::new("replica-a");
//! let replica_b = replica_a.replica("replica-b"); // the same store
//! // Replica B holds the lease.
//! assert!(matches!(
//!     lease::Backend::acquire(&replica_b, "scheduler", Duration::from_secs(15)).await,
//!     Ok(lease::Acquired::Granted(_))
//! ));
//!
//! let cancel = CancellationToken::new();
//! let supervisor = Supervisor::new()
//!     .registry(&registry)
//!     .lease("scheduler")
//!     .lease_backend(Arc::new(replica_a));
//! let task = tokio::spawn({
//!     let cancel = cancel.clone();
//!     async move {
//!         supervisor
//!             .run(cancel, "scheduler", |_token| async { assert!(lease::epoch().is_some()) })
//!             .await
//!     }
//! });
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! let status = registry.subsystem("scheduler").status();
//! assert_eq!(status.state, SubsystemState::Standby);
//! assert_eq!(status.lease.unwrap().holder.as_deref(), Some("replica-b"));
//! cancel.cancel();
//! task.await.unwrap();
//! # }
//! ```

// The files: `backend.rs` (the trait and its values), `spec.rs` (a
// supervision's lease settings and the timings derived from the ttl),
// `gate.rs` (what the supervisor's engine runs around a body: acquire in
// standby, renew from the supervisor's watcher, lose, release),
// `memory.rs`, `conformance.rs`, `postgres.rs` and `etcd.rs`.

mod backend;
pub mod conformance;
#[cfg(feature = "etcd")]
mod etcd;
pub(crate) mod gate;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod spec;

use std::sync::{Arc, RwLock};

pub use backend::{
    Acquired, Backend, Bound, BoxFuture, Grant, Holder, LeaseError, Listed, Renewal,
};
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use etcd::Etcd;
pub use memory::Memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::Postgres;

/// The process-wide backend, asked by every lease-gated supervisor that
/// was not given one of its own.
static INSTALLED: RwLock<Option<Arc<dyn Backend>>> = RwLock::new(None);

/// Makes `backend` the process-wide lease backend, used by every
/// lease-gated subsystem without a backend of its own
/// ([`Supervisor::lease_backend`](crate::Supervisor::lease_backend)).
/// Install it once at startup, before the gated subsystems start; a
/// later call replaces it for acquisitions from then on (grants already
/// held are renewed and released where they were made).
///
/// A gated subsystem that finds no backend logs one ERROR and stays in
/// standby, asking again every ttl/3: it never runs without its lease.
///
/// ```
/// supervised::lease::install(supervised::lease::Memory::new("replica-a"));
/// ```
pub fn install(backend: impl Backend) {
    install_arc(Arc::new(backend));
}

/// [`install`] for a backend already behind an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// supervised::lease::install_arc(Arc::new(supervised::lease::Memory::new("replica-a")));
/// ```
pub fn install_arc(backend: Arc<dyn Backend>) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(backend);
}

/// The process-wide backend, if one was installed.
pub(crate) fn installed() -> Option<Arc<dyn Backend>> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The fencing token of the lease the running body holds: inside the body
/// of a lease-gated subsystem, the epoch of its grant, which grows strictly
/// with each grant of that lease. Pass it along with writes to other
/// systems so they can refuse a stale leader's. `None` outside a
/// lease-gated body.
///
/// ```
/// assert_eq!(supervised::lease::epoch(), None); // not in a gated body
/// ```
pub fn epoch() -> Option<u64> {
    crate::registry::current().and_then(|sub| sub.lease_epoch())
}
