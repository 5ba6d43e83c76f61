//! Catching a body's panic together with what only the panic hook can see: the
//! source location and the backtrace of the panicking thread at the panic.
//!
//! `catch_unwind` hands back only the payload, so a hook records the rest in a
//! thread-local while a supervised poll is on the stack. The hook chains to
//! whichever hook was installed before it (the application's or the default
//! one) and is installed once per process.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Once;
use std::task::Poll;

use super::failure::CaughtPanic;
use crate::registry::current;
use crate::text::{self, panic_message};

struct HookRecord {
    location: Option<String>,
    backtrace: Backtrace,
}

thread_local! {
    /// How many supervised polls are on this thread's stack.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// What the hook saw of the latest panic inside a supervised poll.
    static LAST: RefCell<Option<HookRecord>> = const { RefCell::new(None) };
}

pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 || current::is_set() {
                let record = HookRecord {
                    location: info.location().map(|l| l.to_string()),
                    // Rust's conventions decide: RUST_LIB_BACKTRACE, else
                    // RUST_BACKTRACE. Off by default, so a caught panic is a
                    // readable line, not a 190-line event.
                    backtrace: Backtrace::capture(),
                };
                // `try_with`: the thread may be tearing down its locals.
                let _ = LAST.try_with(|last| {
                    if let Ok(mut last) = last.try_borrow_mut() {
                        *last = Some(record);
                    }
                });
            }
            previous(info);
        }));
    });
}

/// Decrements [`DEPTH`] even when the poll unwinds.
struct DepthGuard;

impl DepthGuard {
    fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        DepthGuard
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Calls `f`, turning a panic in it into `Err` with what the hook saw, for
/// a supervised body's poll: it runs with its subsystem current
/// ([`current::swap_in`]), which tells the hook to record, so the depth
/// counter that [`catch`] keeps is not needed.
#[inline]
pub(crate) fn catch_in_body<R>(f: impl FnOnce() -> R) -> Result<R, CaughtPanic> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(caught)
}

#[cold]
fn caught(payload: Box<dyn Any + Send>) -> CaughtPanic {
    let record = LAST.with(|last| last.borrow_mut().take());
    let (location, backtrace) = match record {
        Some(r) => (r.location, Some(r.backtrace)),
        None => (None, None),
    };
    CaughtPanic {
        message: text::bounded(panic_message(&*payload)),
        payload,
        location,
        backtrace,
    }
}

/// Runs `fut` to completion, turning a panic in any of its polls into `Err`.
pub(crate) async fn catch<F: Future>(fut: F) -> Result<F::Output, CaughtPanic> {
    install_hook();
    let mut fut = pin!(fut);
    std::future::poll_fn(move |cx| {
        let _depth = DepthGuard::enter();
        match catch_in_body(|| fut.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}
