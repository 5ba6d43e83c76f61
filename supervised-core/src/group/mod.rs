//! Supervision trees: a [`Group`] of children (loops or other groups),
//! restarted by a [`Strategy`], shut down in reverse order within a bound.
//!
//! - `builder.rs`: [`Group`] and [`Strategy`]; what they build is a
//!   `GroupDef`, which every run of the group borrows.
//! - `child.rs`: [`Child`] and [`Restart`], and `ChildRun`, the future a
//!   child's task polls: the child's entry current and on offer, its panic
//!   caught.
//! - `claim.rs`: how a `#[supervised]` child takes the child's name.
//! - `run.rs`: one run: starts, ends, restarts, commands, shutdown.
//! - `handle.rs`: [`GroupHandle`], and the book of children it reads.
//! - `report.rs`: [`GroupReport`], [`GroupExit`] and the exit code.
//! - `signal.rs`: SIGINT and SIGTERM for `run_until_signal`.
//!
//! Data flows one way round: handles book adds and send commands to the
//! run; the run spawns each child's `ChildRun` in its `JoinSet`, reads
//! their ends from it, writes states to the registry and the book, and
//! returns a [`GroupReport`].

mod builder;
mod child;
pub(crate) mod claim;
mod handle;
mod report;
mod run;
mod signal;

pub use builder::{Group, Strategy};
pub use child::{Child, Restart};
pub use handle::{AddError, ChildInfo, GroupHandle, RemoveError};
pub use report::{GroupExit, GroupReport};
