//! Supervision trees: a [`Group`] of children (loops or other groups),
//! restarted by a [`Strategy`], shut down within a bound: the fleet added at
//! run time all at once, then the rest in reverse order.
//!
//! - `builder.rs`: [`Group`] and [`Strategy`]; what they build is a
//!   `GroupDef`, which every run of the group borrows.
//! - `child.rs`: [`Child`] and [`Restart`], and `ChildRun`, the future a
//!   child's task polls: the child's entry current and on offer to the
//!   `#[supervised]` fn inside (`supervisor/handoff.rs`), its panic caught,
//!   and a failure that fn handed up taken back.
//! - `run/`: one run. `mod.rs` is the loop (starts, ends, commands);
//!   `restart.rs` decides what an end means (the child's entry says whether
//!   the group or the fn inside restarts it); `stop.rs` stops one child,
//!   the fleet added at run time at once, or everything in reverse order;
//!   `nested.rs` runs a nested group as a child.
//! - `record.rs`: `ChildRecord`, the one record of a child: its spec and
//!   its state (idle, due, running with its task), in the definition's map.
//! - `kept.rs`: [`Child::keep`] and [`Lent`], a value a child keeps across
//!   its runs.
//! - `handle.rs`: [`GroupHandle`], and the roster of children (names and states) it reads.
//! - `report.rs`: [`GroupReport`], [`GroupExit`] and the exit code.
//! - `signal.rs`: SIGINT and SIGTERM for `run_until_signal`.
//!
//! Data flows one way round: handles list adds and send commands to the
//! run; the run spawns each child's `ChildRun` in its `JoinSet`, reads
//! their ends from it, writes states to the registry and the roster, and
//! returns a [`GroupReport`].

mod builder;
mod child;
mod handle;
mod kept;
mod record;
mod report;
mod run;
mod signal;

pub use builder::{Group, Strategy};
pub use child::{Child, Restart};
pub use handle::{AddError, ChildInfo, GroupHandle, PauseError, RemoveError};
pub use kept::Lent;
pub use report::{GroupExit, GroupReport};
