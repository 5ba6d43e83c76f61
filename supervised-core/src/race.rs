//! Racing a body against its watchers (cancellation, the stall timer)
//! without paying for the watchers on every wake of the body.
//!
//! `tokio::select!` polls every branch on every wake; polling a
//! `cancelled()` future takes its waiter lock each time, which doubled the
//! per-iteration cost of a supervised loop. Here the watchers get a waker of
//! their own that raises a flag and wakes the task: they are polled only
//! after they asked to be.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_util::task::{waker, ArcWake};

/// How the race ended.
pub(crate) enum Raced<B, W> {
    Body(B),
    Watcher(W),
}

struct Flag {
    woken: AtomicBool,
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

/// Polls `body` on every wake and `watcher` only when its own waker fired
/// (and on the first poll). The body wins a tie.
pub(crate) async fn race<B, W>(
    body: Pin<&mut B>,
    watcher: Pin<&mut W>,
) -> Raced<B::Output, W::Output>
where
    B: Future + ?Sized,
    W: Future + ?Sized,
{
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let watcher_waker = waker(flag.clone());
    let mut body = body;
    let mut watcher = watcher;
    let mut registered: Option<Waker> = None;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = body.as_mut().poll(cx) {
            return Poll::Ready(Raced::Body(out));
        }
        // Keep the task's waker where the watchers' wake can reach it; a
        // pointer comparison when it has not changed.
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *flag.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            registered = Some(cx.waker().clone());
        }
        if flag.woken.load(Ordering::Acquire) && flag.woken.swap(false, Ordering::AcqRel) {
            let mut watcher_cx = Context::from_waker(&watcher_waker);
            if let Poll::Ready(out) = watcher.as_mut().poll(&mut watcher_cx) {
                return Poll::Ready(Raced::Watcher(out));
            }
        }
        Poll::Pending
    })
    .await
}
