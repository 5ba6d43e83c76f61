//! Runtime of [`supervised`](https://docs.rs/supervised): the
//! recover-and-backoff [`Supervisor`] and the liveness [`Registry`].
//!
//! Most users depend on the `supervised` facade, which re-exports everything
//! here along with the `#[supervised]` attribute.
//!
//! - [`run_with_recover`] runs a loop body, catches its panics, logs them
//!   with the backtrace and restarts it with exponential backoff.
//! - [`Supervisor`] is the same with every knob: backoff, jitter, stop
//!   timeout, restart intensity, progress-based backoff reset.
//! - [`Group`] is a supervision tree of such loops: OTP's restart
//!   strategies and policies, restart intensity and escalation, ordered
//!   and bounded shutdown on signals, children added and removed at run
//!   time, and readiness ([`Readiness`]) for load balancers.
//! - [`lease`] gates a loop on a lease ([`Supervisor::lease`],
//!   [`Child::lease`]), so that of several replicas one runs it at a time;
//!   the others stand by. PostgreSQL and etcd are built in.
//! - [`heartbeat`], [`last_beat`], [`snapshot`] and [`is_healthy`] read and
//!   write the process-wide [`Registry`]; a [`Subsystem`] handle beats without
//!   a lookup, and [`beat`] credits the subsystem whose body is running.
//!
//! All time is read through tokio's clock, so tests with paused time control
//! backoff and staleness exactly.
//!
//! Every event and span the runtime emits has the target `supervised`,
//! whichever module emits it, so one filter selects them all:
//! `RUST_LOG=supervised=debug`.
//!
//! # Choosing a registry
//!
//! Everything reports into the process-wide [`registry()`] unless told
//! otherwise, and is told one way: what runs or serves takes
//! `.registry(&registry)` in its builder ([`Group::registry`],
//! [`Supervisor::registry`], `http::RouterOptions::registry`,
//! `http::ServeOptions::registry`); what reads a registry once takes it as
//! its argument (`metrics::Collector::new(&registry)`); a nested group and
//! every child use their root group's.
//!
//! Optional modules, each behind the cargo feature of the same name:
//!
//! | feature | module | what |
//! | --- | --- | --- |
//! | `http` | `http` | `/admin/liveness`, `/admin/health` and `/admin/ready` as an axum router, and a small server with bearer-token auth |
//! | `prometheus` | `metrics` | Prometheus metrics computed at scrape time (`/metrics` on the router with `http`) |
//! | `systemd` | `systemd` | a watchdog that pings systemd only while every critical subsystem is fresh (Unix) |
//! | `postgres` | `lease::Postgres` | leases in a PostgreSQL table |
//! | `etcd` | `lease::Etcd` | leases on etcd's own leases |
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layout, for readers of the source: a one-way chain, each folder
// importing only those below it (text.rs < registry < lease < shard <
// supervisor < group), and readers of a registry beside them.
// - `supervisor/`: runs a body, catches its failures, restarts it with
//   backoff ([`Supervisor`], [`Supervision`], [`run_with_recover`]);
// - `group/`: trees of supervised loops ([`Group`], [`Child`],
//   [`GroupHandle`], [`GroupReport`]);
// - `lease/`: lease-gated runs and the stores behind them ([`lease`]);
// - `shard/`: a sharded group's placement and membership ([`Shards`]);
// - `registry/`: the liveness registry they report into ([`Registry`],
//   [`Subsystem`], [`SubsystemStatus`], [`Health`], [`Readiness`]);
// - readers of a registry: `stall.rs` ([`StallWatchdog`]), `http/`,
//   `metrics.rs`, `systemd.rs`;
// - `macro_support.rs`: what the `#[supervised]` expansion names, which
//   the `supervised` facade re-exports as its one private path.

mod group;
pub mod lease;
mod registry;
mod shard;
mod stall;
mod supervisor;
mod text;

#[doc(hidden)]
pub mod macro_support;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod metrics;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod recorder;
#[cfg(all(feature = "systemd", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "systemd", unix))))]
pub mod systemd;

pub use group::{
    AddError, Child, ChildInfo, Group, GroupExit, GroupHandle, GroupReport, Lent, PauseError,
    RemoveError, Restart, Strategy,
};
#[allow(deprecated)]
pub use registry::last_tick;
pub use registry::{
    beat, current, heartbeat, is_healthy, last_beat, registry, snapshot, Health, LastPanic,
    LeaseStatus, Readiness, Registry, ShardsStatus, Subsystem, SubsystemKind, SubsystemState,
    SubsystemStatus,
};
pub use shard::Shards;
pub use stall::StallWatchdog;
pub use supervisor::{
    isolate, run_with_recover, Backoff, Cancelled, Exit, Failure, ItemPanicked, RunOutcome, Step,
    Supervision, Supervisor,
};

/// Re-exported so users and generated code name one version of it.
#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;
