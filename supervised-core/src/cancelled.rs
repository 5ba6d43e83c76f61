//! The error a supervised `Result` fn returns when cancellation stops it
//! before its body produced a value.

use std::fmt;

/// Cancellation stopped a supervised body before it produced a value.
///
/// A `#[supervised]` fn returning `Result<T, E>` that takes a
/// `CancellationToken` needs `E: From<Cancelled>`. It converts into
/// `String`, `std::io::Error` (kind `Interrupted`) and
/// `Box<dyn Error + Send + Sync>` (and so into `anyhow::Error`).
///
/// ```
/// use supervised_core::Cancelled;
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
