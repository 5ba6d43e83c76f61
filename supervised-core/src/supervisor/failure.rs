//! Every kind of failure a supervision handles, one type per meaning:
//!
//! - [`Caught`] (with [`CaughtPanic`]): a failure caught in one run, with
//!   all there is of it (a panic's payload, location and backtrace),
//!   before it is logged;
//! - [`Failure`]: the last failure of a supervision that gave up, handed
//!   back to its caller (`Failure<()>` inside, where the caller holds the
//!   output);
//! - [`ChildFailure`]: a failure as the layer above sees it, in text: what
//!   a group logs and records for its child.
//!
//! How a run ended, failed or not, is the engine's `BodyEnd` and a group's
//! `ChildEnd`; what the registry keeps of a failure is its `FailureRecord`.

use std::any::Any;
use std::backtrace::Backtrace;
use std::fmt;
use std::time::Duration;

/// The last failure of a body whose supervisor gave up.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<O> {
    /// The body returned a failing value (an `Err`).
    Returned(O),
    /// The body panicked; the payload can be re-raised with
    /// [`std::panic::resume_unwind`].
    Panicked(Box<dyn Any + Send>),
    /// The body went this long without a beat and was dropped
    /// ([`Supervisor::restart_on_stall`](crate::Supervisor::restart_on_stall)).
    Stalled(Duration),
}

/// A panic caught in a supervised body.
pub(crate) struct CaughtPanic {
    pub(crate) payload: Box<dyn Any + Send>,
    pub(crate) message: String,
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<Backtrace>,
}

/// A failure caught in one run, before it is logged. A failing output
/// stays with the run's body; this is what the log needs of it.
pub(crate) enum Caught {
    Panic(CaughtPanic),
    Error(String),
    /// No beat for this long: the body was dropped (`restart_on_stall`).
    Stall(Duration),
}

/// A failure as the layer above sees it, in text: what a supervision that
/// leaves its failures to its caller hands up (a gated group child's
/// wrapper, or a fn its group restarts), and how a group child's run
/// failed. The one failure type a group logs and records.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    /// An `Err`, by its text.
    Error(String),
    Panic {
        message: String,
        location: Option<String>,
    },
    /// No beat for this long (`restart_on_stall`).
    Stalled(Duration),
    /// A nested group gave up.
    GaveUp(String),
}

impl fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildFailure::Error(error) => f.write_str(error),
            ChildFailure::Panic {
                message,
                location: Some(at),
            } => write!(f, "panicked at {at}: {message}"),
            ChildFailure::Panic { message, .. } => write!(f, "panicked: {message}"),
            ChildFailure::Stalled(silent) => write!(f, "no heartbeat for {silent:?}"),
            ChildFailure::GaveUp(why) => f.write_str(why),
        }
    }
}

/// An item whose future panicked inside [`isolate`](super::isolate).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemPanicked {
    /// The item's label, as given to [`isolate`](super::isolate), formatted.
    pub label: String,
    /// The panic message.
    pub message: String,
    /// `file:line:column` of the panic, when known.
    pub location: Option<String>,
}

impl fmt::Display for ItemPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item `{}` panicked: {}", self.label, self.message)
    }
}

impl std::error::Error for ItemPanicked {}
