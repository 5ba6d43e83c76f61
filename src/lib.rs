//! Background loops in async services that cannot be lost silently.
//!
//! `supervised` runs each long-lived loop of a service (a scheduler, a
//! pub/sub relay, a health sweep) under a supervisor that catches its panics,
//! logs them with the backtrace and restarts the loop with exponential
//! backoff, and keeps a liveness registry fed by heartbeats, so "alive and
//! ticking" can be told from "alive but stuck".
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use supervised::{run_with_recover, CancellationToken};
//!
//! let cancel = CancellationToken::new();
//! let task = tokio::spawn(run_with_recover(cancel.clone(), "readme-sweep", |cancel| async move {
//!     let mut ticker = tokio::time::interval(Duration::from_secs(10));
//!     while !cancel.is_cancelled() {
//!         ticker.tick().await;
//!         // ... one sweep ...
//!         supervised::beat();
//!     }
//! }));
//! tokio::time::sleep(Duration::from_secs(25)).await;
//! assert_eq!(supervised::registry().subsystem("readme-sweep").beats(), 3);
//! cancel.cancel();
//! task.await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use supervised_core::*;

#[doc(inline)]
pub use supervised_macros::supervised;

/// Not a public API: what the `#[supervised]` expansion names.
#[doc(hidden)]
pub mod __private {
    pub use supervised_core::macro_support::*;
}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
