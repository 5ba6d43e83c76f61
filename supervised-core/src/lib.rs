//! Runtime of [`supervised`](https://docs.rs/supervised): the
//! recover-and-backoff [`Supervisor`] and the liveness [`Registry`].
//!
//! Most users depend on the `supervised` facade, which re-exports everything
//! here along with the `#[supervised]` attribute.
//!
//! - [`run_with_recover`] runs a loop body, catches its panics, logs them
//!   with the backtrace and restarts it with exponential backoff.
//! - [`Supervisor`] is the same with every knob: backoff, jitter, grace
//!   period, restart intensity, progress-based backoff reset.
//! - [`heartbeat`], [`last_tick`], [`snapshot`] and [`is_healthy`] read and
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
//! Optional modules, each behind the cargo feature of the same name:
//!
//! | feature | module | what |
//! | --- | --- | --- |
//! | `http` | `http` | `/admin/liveness` and `/admin/health` as an axum router, and a small server with bearer-token auth |
//! | `prometheus` | `metrics` | Prometheus metrics computed at scrape time (`/metrics` on the router with `http`) |
//! | `systemd` | `systemd` | a watchdog that pings systemd only while every critical subsystem is fresh (Unix) |
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backoff;
mod cancelled;
mod current;
mod failure;
mod isolate;
#[doc(hidden)]
pub mod macro_support;
mod panic_capture;
mod policy;
mod registry;
mod supervision;
mod supervisor;
mod watch;
mod watchdog;

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "prometheus")]
pub mod metrics;
#[cfg(all(feature = "systemd", unix))]
pub mod systemd;

#[cfg(any(feature = "http", all(feature = "systemd", unix)))]
mod probe;
#[cfg(any(feature = "http", feature = "prometheus"))]
mod wallclock;

pub use backoff::Backoff;
pub use cancelled::Cancelled;
pub use current::{beat, current};
pub use isolate::{isolate, ItemPanicked};
pub use registry::{
    heartbeat, is_healthy, last_tick, registry, snapshot, LastPanic, Registry, State, Subsystem,
    SubsystemStatus,
};
pub use supervision::{Step, Supervision};
pub use supervisor::{run_with_recover, Exit, Failure, RunOutcome, Supervisor};
pub use watchdog::{Watchdog, WatchdogOptions};

/// Re-exported so users and generated code name one version of it.
pub use tokio_util::sync::CancellationToken;
