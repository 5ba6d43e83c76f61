//! What a run's body returns and how a supervision ends: [`RunOutcome`]
//! tells a failing output from a value, [`Exit`] is the supervisor's
//! result, and [`Cancelled`] is the error a cancelled `Result` fn returns.

use std::fmt;

use super::Failure;
use crate::text::displayed;

/// How a body's return value tells success from failure.
///
/// `()` always succeeds. `Result<T, E>` fails with `Err`, and `E`'s `Display`
/// is what the log line and the snapshot show (as `#[instrument(err)]` does).
///
/// ```
/// use supervised::RunOutcome;
/// assert_eq!(().failure(), None);
/// assert_eq!(Err::<(), _>("disk full").failure().as_deref(), Some("disk full"));
/// ```
pub trait RunOutcome {
    /// `None` on success, the failure's message otherwise.
    fn failure(&self) -> Option<String>;
}

impl RunOutcome for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

/// The message is cut to 4 KiB (on a char boundary, with a marker), and an
/// `E` whose `Display` panics gives a placeholder instead of unwinding.
impl<T, E: fmt::Display> RunOutcome for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(|e| displayed(e))
    }
}

/// How a supervised run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit<O> {
    /// The body returned successfully; it was not restarted.
    Completed(O),
    /// Cancellation stopped the supervisor, during a backoff or after the
    /// grace period, without a successful value. `last_failure` is the body's
    /// last output if its last run returned a failure (`Err`), `None` if it
    /// panicked, was dropped, or never failed.
    Cancelled {
        /// The last failing output, if the last run returned one.
        last_failure: Option<O>,
    },
    /// Restart intensity was exceeded; the last failure, in its own form.
    GaveUp(Failure<O>),
}

/// Cancellation stopped a supervised body before it produced a value.
///
/// A `#[supervised]` fn returning `Result<T, E>` that takes a
/// `CancellationToken` needs `E: From<Cancelled>`. It converts into
/// `String`, `std::io::Error` (kind `Interrupted`) and
/// `Box<dyn Error + Send + Sync>` (and so into `anyhow::Error`).
///
/// ```
/// use supervised::Cancelled;
///
/// let s: String = Cancelled.into();
/// assert_eq!(s, "supervised subsystem was cancelled before it produced a value");
/// let io: std::io::Error = Cancelled.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::Interrupted);
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Cancelled.into();
/// assert!(boxed.is::<Cancelled>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("supervised subsystem was cancelled before it produced a value")
    }
}

impl std::error::Error for Cancelled {}

impl From<Cancelled> for String {
    fn from(c: Cancelled) -> String {
        c.to_string()
    }
}

impl From<Cancelled> for std::io::Error {
    fn from(c: Cancelled) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Interrupted, c)
    }
}
