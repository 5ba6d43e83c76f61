//! The watchers of a running body (cancellation, the stall timer), polled
//! only when they asked to be.
//!
//! `tokio::select!` polls every branch on every wake; polling a pending
//! `cancelled()` future takes its waiter lock each time, which doubled the
//! per-iteration cost of a supervised loop. Here the watchers get a waker of
//! their own that raises a flag and wakes the task.
//!
//! The run's timers are made here too: the stall watch ([`stalled`]), and
//! the stop timeout and the backoff ([`wait`]).

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::task::{waker_ref, ArcWake};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::registry::{deadline, Subsystem};

/// Raised by the watchers' waker; wakes the task that polls the body.
struct Flag {
    woken: AtomicBool,
    /// The task's waker. Not an `AtomicWaker`: that one gives its waker up
    /// on a wake, and the task would have to register again on every poll.
    task: Mutex<Option<Waker>>,
}

impl ArcWake for Flag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        let task = arc_self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// One supervision's cancellation watch, kept across its runs. What every poll reads is inline; the cancellation future,
/// read only when due, is boxed.
pub(crate) struct Watch {
    flag: Arc<Flag>,
    /// The task waker last handed to `flag`, to skip re-registering it.
    registered: Option<WakerId>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Watch {
    pub(crate) fn new(cancel: &CancellationToken) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Watch {
            flag,
            registered: None,
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
        }
    }

    /// Makes the next [`due`](Watch::due) true, so a new run polls its
    /// watchers once and they register the watch's waker.
    pub(crate) fn arm(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Whether a watcher's waker fired since the last call; keeps the task's
    /// waker where the watchers' wake can reach it.
    #[inline]
    pub(crate) fn due(&mut self, cx: &Context<'_>) -> bool {
        let task = WakerId::of(cx.waker());
        if self.registered != Some(task) {
            *self.flag.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            self.registered = Some(task);
        }
        self.flag.woken.load(Ordering::Acquire) && self.flag.woken.swap(false, Ordering::AcqRel)
    }

    /// Polls cancellation, then the stall timer (if armed), with the
    /// watch's own waker; call it when [`due`](Watch::due). The stall timer
    /// is disarmed once it fires.
    pub(crate) fn poll_watchers(&mut self, stall: &mut Option<Timer>) -> Option<Watched> {
        let waker = waker_ref(&self.flag);
        let mut watch_cx = Context::from_waker(&waker);
        if self.cancelled.as_mut().poll(&mut watch_cx).is_ready() {
            return Some(Watched::Cancelled);
        }
        if let Some(timer) = stall {
            if let Poll::Ready(silent) = timer.as_mut().poll(&mut watch_cx) {
                *stall = None;
                return Some(Watched::Stalled(silent));
            }
        }
        None
    }

    /// Polls cancellation with the task's own waker (outside a run).
    pub(crate) fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.cancelled.as_mut().poll(cx)
    }
}

/// What `Waker::will_wake` compares (the data and vtable pointers), taken
/// from the waker the task polls with rather than from a clone: a clone's
/// vtable pointer may be another copy of the same vtable, which makes
/// `will_wake` fail on every poll and costs a clone and a lock each time.
/// The clone kept in the flag keeps the waker's data alive, so an equal
/// pointer cannot belong to a different, newer waker.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId {
    data: usize,
    /// Never zero (a reference), which gives `Option<WakerId>` a niche.
    vtable: NonZeroUsize,
}

impl WakerId {
    fn of(waker: &Waker) -> Self {
        WakerId {
            data: waker.data() as usize,
            vtable: NonZeroUsize::new(std::ptr::from_ref(waker.vtable()) as usize)
                .unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// A run's boxed timer: the stall watch resolves with how long the body went
/// without a beat; the grace period and the backoff with zero.
pub(crate) type Timer = Pin<Box<dyn Future<Output = Duration> + Send + Sync>>;

/// A stop timeout or a backoff as a [`Timer`].
pub(crate) fn wait(until: impl Future<Output = ()> + Send + Sync + 'static) -> Timer {
    Box::pin(async move {
        until.await;
        Duration::ZERO
    })
}

/// Resolves when `sub` has gone its `stale_after` without a beat, counting
/// from the later of its last beat and `started`; never without a tick.
pub(crate) async fn stalled(sub: Subsystem, started: Instant) -> Duration {
    loop {
        let Some(limit) = sub.stale_limit() else {
            return std::future::pending().await;
        };
        let reference = sub.last_beat().map_or(started, |t| t.max(started));
        tokio::time::sleep_until(deadline(reference, limit)).await;
        if sub.last_beat().map_or(started, |t| t.max(started)) == reference {
            return limit;
        }
    }
}

/// What a watcher saw.
pub(crate) enum Watched {
    Cancelled,
    Stalled(Duration),
}
