//! [`Child::keep`]: a value that outlives every run of a group child, lent
//! to each run as a [`Lent`] and home again when that run's future is
//! dropped, however the run ended.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::child::{judged, Child, ChildEnd, RunSource};
use crate::supervisor::ChildFailure;
use crate::supervisor::RunOutcome;

/// Where a kept value waits between runs.
type Home<T> = Arc<Mutex<Option<T>>>;

fn lock<T>(home: &Mutex<Option<T>>) -> MutexGuard<'_, Option<T>> {
    // Only the value is behind it, moved in and out whole.
    home.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value that a group child keeps across its runs, lent to one run: see
/// [`Child::keep`]. It derefs to the value, and goes back to the child
/// when dropped (when the run's future is dropped: it ended, panicked, was
/// stopped by the group, or its task was aborted).
///
/// ```
/// use supervised::{CancellationToken, Child, Lent};
/// use tokio::sync::mpsc;
///
/// async fn relay(mut jobs: Lent<mpsc::Receiver<u32>>, cancel: CancellationToken) {
///     while let Some(Some(job)) = cancel.run_until_cancelled(jobs.recv()).await {
///         let _ = job;
///     }
/// }
///
/// let (_send, jobs) = mpsc::channel(16);
/// let child = Child::keep("relay", jobs, relay);
/// assert_eq!(child.name(), "relay");
/// ```
pub struct Lent<T> {
    value: Option<T>,
    home: Home<T>,
}

impl<T> Lent<T> {
    /// Takes the value out of `home`, if no run holds it.
    fn take(home: &Home<T>) -> Option<Self> {
        let value = lock(home).take()?;
        Some(Lent {
            value: Some(value),
            home: Arc::clone(home),
        })
    }
}

impl<T> Deref for Lent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Some from `take` until `drop`.
        self.value.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T> DerefMut for Lent<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            *lock(&self.home) = Some(value);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Lent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lent").field(&self.value).finish()
    }
}

impl Child {
    /// A child that keeps `value` across all its runs, for a fn that takes
    /// something it cannot get again: the receiver of a channel, a
    /// connection, `mut self`. Each run gets the value as a [`Lent`], which
    /// derefs to it and comes back when the run's future is dropped, so the
    /// next run (after a failure, or when the group restarts the child with
    /// its siblings) gets the same value: an `mpsc::Receiver` loses none of
    /// the messages queued in its channel.
    ///
    /// With `#[supervised]`, take the `Lent` and name it in `keep(...)`, so
    /// that the fn's own restarts keep it too:
    /// `#[supervised(name = "relay", keep(jobs))] async fn relay(mut jobs: Lent<Receiver<Job>>, cancel: CancellationToken)`.
    ///
    /// ```
    /// use supervised::{CancellationToken, Child, Group, Lent, Strategy};
    /// use tokio::sync::mpsc;
    ///
    /// async fn relay(mut jobs: Lent<mpsc::Receiver<u32>>, cancel: CancellationToken) {
    ///     while let Some(Some(job)) = cancel.run_until_cancelled(jobs.recv()).await {
    ///         assert_ne!(job, 0);
    ///     }
    /// }
    ///
    /// let (send, jobs) = mpsc::channel(64);
    /// let group = Group::new("relays")
    ///     .strategy(Strategy::OneForAll)
    ///     .spec(Child::keep("relay", jobs, relay));
    /// # let _ = (group, send);
    /// ```
    ///
    /// For `mut self`, keep the value and call an `&mut self` method from
    /// the factory: `Child::keep("poller", poller, |mut p, cancel| async move { p.run(cancel).await })`.
    ///
    /// A group never runs two runs of one child at once, so a run always
    /// finds the value home. If it does not (the factory was given to
    /// another child too), that run fails with an error that says so,
    /// and the group restarts it by its policy: nothing panics.
    pub fn keep<T, F, Fut>(name: impl Into<String>, value: T, mut factory: F) -> Self
    where
        T: Send + 'static,
        F: FnMut(Lent<T>, CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutcome,
    {
        let name = name.into();
        let home: Home<T> = Arc::new(Mutex::new(Some(value)));
        let owner = name.clone();
        Child::with_start(
            name,
            RunSource::Future(Box::new(move |cancel| match Lent::take(&home) {
                Some(lent) => judged(factory(lent, cancel)),
                None => {
                    let why = format!("child {owner:?}'s kept value is still lent to another run");
                    Box::pin(std::future::ready(ChildEnd::failed(ChildFailure::Error(
                        why,
                    ))))
                }
            })),
        )
    }
}
