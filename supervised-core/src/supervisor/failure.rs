//! Every kind of failure a supervision handles, from the panic caught in a
//! poll to what a supervisor that gave up hands back.

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

/// The last failure of a supervision that gave up, without the output
/// (which the caller holds).
pub(crate) enum GaveUpWith {
    Returned,
    Panicked(Box<dyn Any + Send>),
    Stalled(Duration),
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
