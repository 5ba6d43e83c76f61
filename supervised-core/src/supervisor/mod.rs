//! The recover-and-backoff supervisor: what runs a body, catches its
//! failures and decides whether and when it runs again.
//!
//! - `builder.rs`: [`Supervisor`], every knob as a `const`-buildable value.
//!   What the engine reads of it is a [`Policy`](policy::Policy).
//! - `policy.rs` and `backoff.rs`: the decisions as pure functions of time
//!   and counts (restart intensity, progress-based reset, the delay).
//! - `run.rs`: the entry points, [`Supervisor::run`] and
//!   [`run_with_recover`], which loop over [`Supervision::run_once`].
//! - `supervision.rs`: the generic shim. [`Supervision`] is what the
//!   `#[supervised]` expansion drives; its `RunOnce` future polls the boxed
//!   body and keeps its output, and is the only code compiled per fn.
//! - `engine/`: the non-generic state machine of one run (start, running,
//!   grace, backoff), compiled once; `engine/gated.rs` steps a lease gate
//!   around it.
//! - `watch.rs`: the watchers of a running body (cancellation, the stall
//!   timer), polled only when they wake.
//! - `handoff.rs`: where a group meets the `#[supervised]` fn it runs: the
//!   child's entry offered down to `Supervisor::register`, the failure
//!   handed up when the group is the one that restarts the child.
//! - `panic.rs`: catching a poll's panic together with its location and
//!   backtrace, which only the panic hook sees.
//! - `failure.rs`: every failure type; `report.rs`: how each is logged and
//!   recorded in the registry.
//! - `outcome.rs`: [`RunOutcome`], [`Exit`] and [`Cancelled`].
//! - `isolate.rs`: [`isolate`], per-item panic isolation inside a body.
//!
//! # How a run ends
//!
//! ```text
//! body returns O ─ RunOutcome::failure(&O) ─┐
//! body panics ─── panic hook + catch_unwind ─┼─> engine: BodyEnd ─> Engine::end_run
//! no beat in time ── stall timer (watch.rs) ─┘        │
//!   Ok                         ─> Stopped, RunEnd::Completed
//!   cancelled meanwhile        ─> Stopped, RunEnd::Cancelled
//!   failure, window full       ─> report::give_up: Failed, ERROR ─> RunEnd::GaveUp
//!   failure, window has room   ─> report: one ERROR event, Subsystem::record_restart
//!                                 (BackingOff, last panic or error) ─> Phase::Backoff
//!                                 ─> backoff elapses ─> RunEnd::Restart
//! RunEnd ─> supervision.rs `step` ─> Step::Restart (the caller builds a new body)
//!                                    Step::Exit(Exit::{Completed, Cancelled, GaveUp})
//! ```
//!
//! A panic travels like this: the hook (`panic.rs`) records its location and
//! backtrace in a thread-local while the body's poll is on the stack;
//! `catch_unwind` around that poll (`RunState::poll_body`) returns the
//! payload; the engine joins the two into a `CaughtPanic`, and `report.rs`
//! logs it (target `supervised`) and stores its message and location as the
//! subsystem's [`LastPanic`](crate::LastPanic), which every snapshot copies.

mod backoff;
mod builder;
mod engine;
mod failure;
pub(crate) mod handoff;
mod isolate;
mod outcome;
pub(crate) mod panic;
mod policy;
mod report;
mod run;
mod supervision;
mod watch;

pub use backoff::Backoff;
pub use builder::Supervisor;
pub(crate) use failure::ChildFailure;
pub use failure::{Failure, ItemPanicked};
pub use isolate::isolate;
pub use outcome::{Cancelled, Exit, RunOutcome};
pub(crate) use policy::{Policy, RestartWindow, RunProgress, Verdict};
pub use run::run_with_recover;
pub use supervision::{Step, Supervision};
