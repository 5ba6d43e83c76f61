//! Catching a body's panic together with what only the panic hook can see: the
//! source location and the backtrace of the panicking thread at the panic.
//!
//! `catch_unwind` hands back only the payload, so a hook records the rest in a
//! thread-local while a supervised poll is on the stack. It is installed once
//! per process and chains to the hook installed before it, with one
//! exception that makes a caught panic one report, not two: when that hook is
//! std's default and a subscriber takes the crate's ERROR events, std's
//! `panicked at` text for a panic inside a supervised poll is left out (the
//! event says all of it). Without such a subscriber std's text is printed,
//! followed by a note that the panic was caught.

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
    message: String,
    location: Option<String>,
    backtrace: Backtrace,
}

thread_local! {
    /// How many supervised polls are on this thread's stack.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// What the hook saw of the latest panic inside a supervised poll.
    static LAST: RefCell<Option<HookRecord>> = const { RefCell::new(None) };
    /// The hook left std's text out for the latest panic, counting on an
    /// event to report it; cleared when the supervision catches it.
    static SILENCED: Cell<bool> = const { Cell::new(false) };
}

type Hook = Box<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        let previous_is_std = is_std_default(&previous);
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 && !current::is_set() {
                return previous(info);
            }
            let record = HookRecord {
                message: text::bounded(panic_message(info.payload())),
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
            if !previous_is_std {
                // The app's hook (Sentry's, a counter) sees every panic.
                return previous(info);
            }
            if tracing::enabled!(target: "supervised", tracing::Level::ERROR) {
                // The ERROR event that follows is the one report; if the
                // panic is caught before the supervision sees it, the poll
                // reports it instead (`caught_inside`).
                let _ = SILENCED.try_with(|s| s.set(true));
                return;
            }
            previous(info);
            note_caught();
        }));
    });
}

/// Whether `hook` is std's default hook. `take_hook` hands the default out
/// as a fresh box of one function (and leaves the default installed), so a
/// second take is surely the default, and the two are the same hook when
/// their vtables are. A vtable duplicated across codegen units reads as "not
/// the default": std's text is then printed as before, never lost.
fn is_std_default(hook: &Hook) -> bool {
    let default = panic::take_hook();
    #[allow(ambiguous_wide_pointer_comparisons)] // the vtable is the point
    let same = std::ptr::eq(&**hook, &*default);
    same
}

/// Follows std's `panicked at` text when no subscriber takes the crate's
/// events, so a caught panic does not read as a crash. Written to stderr as
/// std's own hook writes (there is no subscriber to log to); `try` because a
/// closed stderr must not turn a caught panic into an abort.
#[cold]
fn note_caught() {
    use std::io::Write as _;
    let name = current::current().map(|s| s.name().to_string());
    let within = match &name {
        Some(name) => format!(" in {name:?}"),
        None => String::new(),
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "note: supervised caught this panic{within}; the process goes on, and \
         its supervisor decides what follows (a restart, a give-up). A tracing \
         subscriber shows its events (target \"supervised\")."
    );
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
/// The panic comes boxed: this is every poll's path, and a result as wide
/// as a [`CaughtPanic`] costs moves on it.
#[inline]
pub(crate) fn catch_in_body<R>(f: impl FnOnce() -> R) -> Result<R, Box<CaughtPanic>> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(polled) => {
            if SILENCED.get() {
                caught_inside();
            }
            Ok(polled)
        }
        Err(payload) => Err(caught_boxed(payload)),
    }
}

#[cold]
#[inline(never)]
fn caught_boxed(payload: Box<dyn Any + Send>) -> Box<CaughtPanic> {
    Box::new(caught(payload))
}

/// A panic inside the poll that something within it caught (the body's own
/// `catch_unwind`, a runtime it polls): no supervision event will report
/// it, and the hook left std's text out, so this WARN is its report.
#[cold]
fn caught_inside() {
    SILENCED.set(false);
    let Some(record) = LAST.with(|last| last.borrow_mut().take()) else {
        return;
    };
    tracing::warn!(
        target: "supervised",
        subsystem = current::current().as_ref().map(|s| s.name()),
        panic_message = %text::Escaped(&record.message),
        location = record.location.as_deref().unwrap_or("<unknown>"),
        "a panic inside a supervised body was caught within the body, before its supervisor saw it"
    );
}

#[cold]
fn caught(payload: Box<dyn Any + Send>) -> CaughtPanic {
    SILENCED.set(false);
    let record = LAST.with(|last| last.borrow_mut().take());
    let (location, backtrace) = match record {
        Some(r) => (r.location, Some(r.backtrace)),
        None => (None, None),
    };
    // The hook's copy of the message is the payload's: the payload is kept.
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
            Err(panic) => Poll::Ready(Err(*panic)),
        }
    })
    .await
}
