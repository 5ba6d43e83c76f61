//! Background loops in async services that cannot be lost silently.
//!
//! `supervised` runs each long-lived loop of a service (a scheduler, a
//! pub/sub relay, a health sweep) under a supervisor that catches its panics,
//! logs them with the backtrace and restarts the loop with exponential
//! backoff, and keeps a liveness registry fed by heartbeats, so "alive and
//! ticking" can be told from "alive but stuck".
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use supervised::{run_with_recover, CancellationToken};
//!
//! let cancel = CancellationToken::new();
//! let task = tokio::spawn(run_with_recover(cancel.clone(), "readme-sweep", |cancel| async move {
//!     let mut ticker = tokio::time::interval(Duration::from_secs(10));
//!     while !cancel.is_cancelled() {
//!         ticker.tick().await;
//!         // ... one sweep ...
//!         supervised::beat();
//!     }
//! }));
//! tokio::time::sleep(Duration::from_secs(25)).await;
//! assert_eq!(supervised::registry().subsystem("readme-sweep").beats(), 3);
//! cancel.cancel();
//! task.await.unwrap();
//! # }
//! ```
//!
//! # Panics and the panic hook
//!
//! A panic in a supervised loop is caught, logged as one ERROR event
//! (target `supervised`: subsystem, message, location, restart count, next
//! backoff) and the loop restarts. To see the location and backtrace, which
//! `catch_unwind` alone cannot, the first supervised run installs a
//! process-wide panic hook. It chains to the hook installed before it, so an
//! app's own hook (a Sentry client's, a counter) sees every panic; install
//! yours first, as one installed later replaces this one. Where the earlier
//! hook is std's default and a tracing subscriber takes the crate's ERROR
//! events, std's `panicked at` text is left out for a caught panic, so each
//! is reported once. Without such a subscriber std's text is printed,
//! followed by a note that the panic was caught. The event carries a
//! backtrace only when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` asks for one.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Named one by one rather than `pub use supervised_core::*`, which would
// also re-export the core's hidden `macro_support` as a second private path.
pub use supervised_core::{
    beat, current, heartbeat, is_healthy, isolate, last_beat, registry, run_with_recover, snapshot,
    AddError, Backoff, Cancelled, Child, ChildInfo, Exit, Failure, Group, GroupExit, GroupHandle,
    GroupReport, Health, ItemPanicked, LastPanic, LeaseStatus, Lent, PauseError, Readiness,
    Registry, RemoveError, Restart, RunOutcome, Shards, ShardsStatus, StallWatchdog, Step,
    Strategy, Subsystem, SubsystemKind, SubsystemState, SubsystemStatus, Supervision, Supervisor,
};

#[allow(deprecated)]
pub use supervised_core::last_tick;
/// Re-exported so users and generated code name one version of it.
#[doc(no_inline)]
pub use supervised_core::CancellationToken;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use supervised_core::http;
pub use supervised_core::lease;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use supervised_core::metrics;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use supervised_core::recorder;
#[cfg(all(feature = "systemd", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "systemd", unix))))]
pub use supervised_core::systemd;

/// Runs an async loop fn under the recover-and-backoff supervisor and beats
/// its subsystem at the end of every loop iteration.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::{supervised, CancellationToken};
///
/// #[derive(Clone)]
/// struct Db;
/// async fn fire_due_jobs(_db: &Db) {}
///
/// #[supervised(name = "scheduler", tick = "60s")]
/// async fn scheduler(db: Db, cancel: CancellationToken) {
///     let mut ticker = tokio::time::interval(Duration::from_secs(60));
///     while !cancel.is_cancelled() {
///         ticker.tick().await;
///         fire_due_jobs(&db).await;
///     }
/// }
///
/// let cancel = CancellationToken::new();
/// let task = tokio::spawn(scheduler(Db, cancel.clone()));
/// tokio::time::sleep(Duration::from_secs(150)).await;
/// let status = supervised::registry().subsystem("scheduler").status();
/// assert_eq!((status.beats, status.healthy), (3, true));
/// cancel.cancel();
/// task.await.unwrap();
/// # }
/// ```
///
/// # Keys
///
/// All optional. Durations are string literals in the humantime grammar
/// (`"250ms"`, `"60s"`, `"1m30s"`), parsed at compile time; a bad or zero
/// one is a compile error at the literal.
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `name = "..."` | the fn's name | the subsystem's name in the registry and logs (not empty) |
/// | `tick = "60s"` | none, with one WARN per subsystem | expected interval between beats, registered at the first call so the subsystem is listed before it beats. Without it the loop is never reported stale, which the first call logs as a WARN; `tick = "none"` says that is meant (a loop that waits on events) and logs nothing |
/// | `stale_after = "2m"` | twice `tick` | how long without a beat makes it stale; needs `tick`, at least `tick` |
/// | `initial_backoff = "1s"` | `1s` | first restart delay (not zero, at most `max_backoff`) |
/// | `max_backoff = "30s"` | `30s` | cap on the restart delay |
/// | `jitter` / `jitter = true` | `false` | randomize delays within `[d/2, 3d/2]` ∩ `[initial, max]` |
/// | `stop_timeout = "5s"` | `5s` | after cancellation, how long a running body may take to return before it is dropped (`"0s"` drops it at once); `grace` is its old name, still accepted |
/// | `max_restarts = 5, within = "1m"` | unlimited | restart intensity: give up on the failure that would need a sixth restart within a minute (both or neither) |
/// | `on_stall = "restart"` | `"report"` | drop and restart (with backoff) a body that goes `stale_after` without a beat; needs `tick` (see [`Supervisor::restart_on_stall`]) |
/// | `lease = "scheduler"` | none: runs on every replica | run only while this replica holds the named lease, in standby otherwise (see [`lease`] and [`Supervisor::lease`]) |
/// | `lease_ttl = "15s"` | `15s` | the lease's time to live; needs `lease`, at least `50ms` |
/// | `keep(rx, self)` | none | owned arguments moved once into the supervisor and lent to each run as `&mut` (see below) |
/// | `crate = "path"` | `::supervised` | where this crate is when re-exported under another name, as an absolute path (`"::my_facade::supervised"`, `"crate::platform::liveness"`) |
///
/// # What it does
///
/// - **Signature unchanged.** Visibility, generics, where-clauses,
///   lifetimes, receiver, return type, attributes and docs stay; callers
///   still `.await` it, and the future is `Send` when the body's is.
/// - **Restarts.** A panic anywhere in the body is caught and logged (see
///   [`Supervisor::run`]); after the backoff the body runs again from its
///   first statement. Each run gets a fresh clone of every owned argument
///   (including `self` and `self: Arc<Self>`), unless it is named in
///   `keep(...)`; a non-`Clone` one is a compile error at that argument
///   that points to `keep`. `&T` arguments are reused and `&mut T` ones
///   (and `&mut self`) reborrowed for each run.
/// - **Returns.** The fn returns `()` or a `Result<T, E>`, however it is
///   spelled: the type checker decides, so `io::Result<()>`, a crate's own
///   `type AppResult<T> = Result<T, AppError>` and a prelude's `Result<()>`
///   all work (any other type is one error at the return type). The error is
///   logged and recorded by its `Display`, or by its `Debug` when it has no
///   `Display` (so `Result<(), ()>` works too); an error type with neither
///   is one compile error at that type.
///   A normal return resolves the future, no restart. An `Err` is a failure:
///   logged and restarted. When restart intensity is exceeded, the last
///   failure is re-raised in its own form: a last `Err` is returned, a last
///   panic resumed in the caller. When the supervisor finishes without a
///   value (cancelled during a backoff, or the body dropped after its stop
///   timeout), a `()` fn returns `()` and a `Result` fn its last `Err`, or
///   `Err(Cancelled.into())`, so `E: From<`[`Cancelled`]`>` is needed only
///   for fns that take a `CancellationToken`.
/// - **Cancellation.** An argument of type `CancellationToken` is watched:
///   no restart once it is cancelled, and a running body gets its stop
///   timeout before it is dropped. Without one, dropping the future (aborting
///   its task) stops everything, backoff included.
/// - **Heartbeats.** Each outermost loop (`loop`, `while`, `while let`,
///   `for` not inside another loop, closure, async block or nested item; one
///   inside `if`, `match` or a block counts) beats once for every iteration
///   that ends by reaching the end of its body or by a `continue` that
///   targets it, however that `continue` was written: `continue 'label`
///   from a nested loop, in a `tokio::select!` arm, or produced by a
///   `macro_rules!` of your own such as `unwrap_or_continue!`. The beat is
///   taken when control comes back to the loop's head (before a `while`
///   condition or a `for` loop's next item), so it is at the instant the
///   iteration ends, before the next one awaits anything. `break`, `return`,
///   `?` and panics do not beat. A body without a loop is a compile error:
///   call [`beat`] yourself and use [`Supervisor::run`] instead. Code deep in
///   a long iteration can call [`beat`] to show progress mid-tick.
/// - **Tracing.** Every run is an INFO `supervised` span with `subsystem`,
///   `group` (the path of the group it runs in, absent outside one) and
///   `generation` (0 for the first run). How the run ended, its failure and
///   the restart or give-up, is an ERROR event inside that span, so a tracer
///   such as `tracing-opentelemetry` shows one span per run with its end.
///   Run as a [`Group`] child, these spans sit inside the child's own
///   `supervised` span, which the group opens for each run of every child.
/// - **`panic = "abort"`.** Such a crate cannot recover panics, so the
///   expansion is a compile error there rather than a silent no-op.
///
/// # Keeping state across restarts: `keep(...)`
///
/// A worker usually owns what it reads from: `mut rx: mpsc::Receiver<Job>`,
/// a `TcpStream`, or `mut self` on a struct that holds them. These are not
/// `Clone`, and a clone would not help anyway: the messages queued in a
/// receiver must survive the panic of the run that was reading it. Name
/// such arguments in `keep(...)`:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use supervised::supervised;
/// use tokio::sync::mpsc;
///
/// #[supervised(name = "relay", keep(rx))]
/// async fn relay(mut rx: mpsc::Receiver<u32>, out: mpsc::UnboundedSender<u32>) {
///     // Here `rx` is a `&mut mpsc::Receiver<u32>` lent by the supervisor.
///     while let Some(job) = rx.recv().await {
///         if job == 0 {
///             panic!("bad job"); // the next run gets the same receiver
///         }
///         let _ = out.send(job);
///     }
/// }
///
/// let (tx, rx) = mpsc::channel(8);
/// let (out, mut done) = mpsc::unbounded_channel();
/// for job in [0, 1, 2] {
///     tx.send(job).await.unwrap();
/// }
/// drop(tx);
/// // Still a `'static`, `Send` future: it can be spawned.
/// tokio::spawn(relay(rx, out)).await.unwrap();
/// assert_eq!((done.recv().await, done.recv().await), (Some(1), Some(2)));
/// # }
/// ```
///
/// - Each kept argument (`self` by value too, as `keep(self)`) is moved once
///   into the fn's own future, and each run gets `&mut` to it: `rx` is a
///   `&mut Receiver<T>` in the body, so `rx.recv().await` reads as before,
///   and `self.rx` works through the reference.
/// - A run cannot move a kept argument away, since the next run needs it:
///   passing `*rx` by value or calling a method that takes `self` is the
///   compiler's "cannot move out of `*rx` which is behind a mutable
///   reference". Lend it (`&mut *rx`) or keep what it would become instead.
/// - Only owned arguments bound to a plain name can be kept: a name that is
///   not one, a reference (already shared by every run), the
///   `CancellationToken` (each run gets one the supervisor can cancel) and a
///   name given twice are compile errors at that name.
/// - **What a panic leaves behind is kept too.** The message being handled
///   when the panic hit is gone, and a connection may be half-used: a frame
///   half written, a request sent without its reply read, a transaction
///   left open. Keep what stays consistent after any panic (a channel
///   receiver, a buffer you reset at the top of the loop), and let the body
///   reconnect or resynchronise state that a panic can corrupt, for example
///   by keeping an `Option<Conn>` and taking it out while it is in use, so a
///   panic leaves `None` and the next run connects afresh.
///
/// # With `#[tracing::instrument]`
///
/// Put `#[supervised]` above `#[tracing::instrument]`: the attribute then
/// sees your own body, and instrument wraps the whole supervision, every
/// run, in its span. The other order is a compile error that says so:
/// instrument has already moved the body into a future by then, and a loop
/// inside a future cannot be supervised from outside it.
///
/// # In an `#[async_trait]` impl
///
/// `#[supervised]` works on the methods of an `#[async_trait]` or
/// `#[async_trait(?Send)]` impl (or a trait's default methods), written
/// as the `async fn` they are:
///
/// ```
/// use async_trait::async_trait;
/// use supervised::{supervised, CancellationToken};
///
/// #[async_trait]
/// trait Sweep {
///     async fn sweep(&self, cancel: CancellationToken);
/// }
///
/// struct Sweeper;
///
/// #[async_trait]
/// impl Sweep for Sweeper {
///     #[supervised(name = "sweeper", tick = "30s")]
///     async fn sweep(&self, cancel: CancellationToken) {
///         while !cancel.is_cancelled() {
///             tokio::task::yield_now().await;
///         }
///     }
/// }
/// # let _ = Sweeper.sweep(CancellationToken::new());
/// ```
///
/// `#[async_trait]` expands first and hands this attribute a method whose
/// body is `Box::pin(async move { .. })`; the attribute reads your method
/// back out of it and supervises the future inside, so everything above
/// (keys, `keep`, returns, beats) applies unchanged. A fn that returns some
/// other boxed future is one compile error at its `Box::pin`: put the
/// attribute on a plain `async fn` and box that fn's future instead.
///
/// # Callers that retry
///
/// A supervised fn that returns `Result` handles its own `Err`s: it logs
/// and restarts the body, and returns an `Err` to its caller only when it
/// gives up (restart intensity exceeded) or is cancelled. A caller's retry
/// loop around it therefore no longer sees each failure, and retrying on
/// top of the supervisor multiplies the restarts. Move the retry policy
/// into the attribute (`initial_backoff`, `max_backoff`, `max_restarts` +
/// `within`) and keep the caller's handling for the final `Err`.
///
/// # The same code without `#[supervised]`
///
/// The scheduler above expands to this (names simplified; the real locals
/// are hygienic, and the real supervisor is built once, on the first call,
/// in a `static` the fn's future only points to):
///
/// ```
/// # #[derive(Clone)] struct Db;
/// # async fn fire_due_jobs(_db: &Db) {}
/// use std::time::Duration;
/// use supervised::{CancellationToken, Step, Supervision, Supervisor};
///
/// async fn scheduler(db: Db, cancel: CancellationToken) {
///     let supervisor = Supervisor::new().tick(Duration::from_secs(60));
///     let subsystem = supervisor.register("scheduler");
///     let mut supervision = Supervision::new(&supervisor, cancel.clone(), &subsystem);
///     let exit = loop {
///         let db = db.clone(); // a fresh clone for each run
///         let cancel = cancel.clone();
///         let body = async {
///             let db = db;
///             let cancel = cancel;
///             let mut ticker = tokio::time::interval(Duration::from_secs(60));
///             while !cancel.is_cancelled() {
///                 ticker.tick().await;
///                 fire_due_jobs(&db).await;
///                 subsystem.beat(); // end of every iteration
///             }
///         };
///         match supervision.run_once(body).await {
///             Step::Restart => {}
///             Step::Exit(exit) => break exit,
///         }
///     };
///     // Re-raise a panic if restart intensity was exceeded.
///     if let supervised::Exit::GaveUp(supervised::Failure::Panicked(p)) = exit {
///         std::panic::resume_unwind(p);
///     }
/// }
/// # let _ = scheduler(Db, CancellationToken::new());
/// ```
///
/// # A fallible loop
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use supervised::{supervised, CancellationToken};
///
/// #[supervised(name = "relay", max_restarts = 3, within = "1m", jitter)]
/// async fn relay(
///     messages: Vec<&'static str>,
///     cancel: CancellationToken,
/// ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
///     let mut relayed = 0;
///     for message in &messages {
///         if cancel.is_cancelled() {
///             break;
///         }
///         let _n: u32 = message.parse()?; // an `Err` restarts the body
///         relayed += 1;
///     }
///     Ok(relayed)
/// }
///
/// let result = relay(vec!["1", "2", "x"], CancellationToken::new()).await;
/// // Every run fails on "x": after 3 restarts the last `Err` comes back.
/// assert_eq!(result.unwrap_err().to_string(), "invalid digit found in string");
/// # }
/// ```
#[doc(inline)]
pub use supervised_macros::supervised;

/// Not a public API: what the `#[supervised]` expansion names, and its only
/// path. The core's own `macro_support` is not reachable from this crate:
///
/// ```compile_fail
/// use supervised::macro_support::LoopHead;
/// ```
#[doc(hidden)]
pub mod __private {
    pub use supervised_core::macro_support::*;
    use supervised_core::{Exit, Failure};

    /// Implemented for every `Clone` type; exists for its diagnostic, which
    /// names the argument that cannot be cloned for a restart. Defined here,
    /// in the crate users depend on, so the compiler's "required by a bound"
    /// note names `supervised::__private`, not a file of an inner crate.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not `Clone`, so `#[supervised]` cannot give each run a fresh copy: name this argument in `keep(...)` to keep one value across restarts",
        label = "each run gets a fresh clone of this argument, unless it is kept",
        note = "`#[supervised(keep(name))]` moves the argument once into the supervisor and lends each run `&mut` to it, so what one run leaves in it (queued messages, a buffer) is there for the next; `keep(self)` does the same for `self`",
        note = "or take it by reference, wrap it in an `Arc`, or implement `Clone` for it"
    )]
    pub trait SupervisedArgument: Clone {}

    impl<T: Clone> SupervisedArgument for T {}

    /// A fresh clone of an owned argument for one run.
    #[inline]
    pub fn fresh_clone<T: SupervisedArgument>(value: &T) -> T {
        value.clone()
    }

    /// The describer behind a run's recorded error: a `Display` error is
    /// described by its `Display`, one with only `Debug` by its `Debug`.
    /// Chosen at the call site by method resolution, where the error type
    /// is concrete: `(&&Describe(e)).text()` finds the `Display` impl on
    /// `&Describe` one step before the inherent method on `Describe`, whose
    /// bound gives a type with neither its own error.
    pub struct Describe<'a, E>(pub &'a E);

    /// The first choice of [`Describe`].
    pub trait DescribeDisplay {
        /// The error's text.
        fn text(&self) -> String;
    }

    impl<E: std::fmt::Display> DescribeDisplay for &Describe<'_, E> {
        fn text(&self) -> String {
            display_text(self.0)
        }
    }

    impl<E> Describe<'_, E> {
        /// The second choice: the error's text by its `Debug`. The bound
        /// is on the method, not the impl, so that method resolution still
        /// picks it for an error with neither trait and the bound's own
        /// diagnostic explains.
        pub fn text(&self) -> String
        where
            E: SupervisedError,
        {
            debug_text(self.0)
        }
    }

    /// The error types a `#[supervised]` fn can return: what the supervisor
    /// logs and records for an `Err` is its text.
    #[diagnostic::on_unimplemented(
        message = "`#[supervised]` logs and records each `Err` by its text, but the error type `{Self}` implements neither `Display` nor `Debug`",
        label = "this `Result`'s error type has no text",
        note = "derive `Debug` for `{Self}` (`#[derive(Debug)]`), or implement `Display`, which is used when both exist"
    )]
    pub trait SupervisedError: std::fmt::Debug {}

    impl<E: std::fmt::Debug> SupervisedError for E {}

    /// The return types of a `#[supervised]` fn, decided by the type
    /// checker (aliases such as `io::Result<()>` included), not by how the
    /// type is spelled. Defined here for the same reason as
    /// [`SupervisedArgument`].
    #[diagnostic::on_unimplemented(
        message = "a `#[supervised]` fn returns `()` or a `Result<T, E>`, not `{Self}`",
        label = "not `()` or a `Result`",
        note = "the supervisor tells a failure it restarts (an `Err`, a panic) from a value it returns, and a run cancelled or dropped before it produced a value must still return something: `()`, or the last `Err`; a plain value has nothing to give back then"
    )]
    pub trait SupervisedReturn: Sized {
        /// `E` of a `Result`; `Cancelled` for `()`, which has no error.
        type Error;
        /// The error, if this output is a failure.
        fn error(&self) -> Option<&Self::Error>;
        /// The output that stands for `error`.
        fn from_error(error: Self::Error) -> Self;

        /// The value of a supervised fn without a `CancellationToken`: its
        /// private token is never cancelled, so every exit carries a value.
        /// (Methods, not free fns: called as `<Ret as SupervisedReturn>::..`,
        /// a refused type gets its one error at the type the user wrote.)
        fn finish(exit: Exit<Judged<Self>>) -> Self {
            settle(exit, || {
                unreachable!(
                    "a supervised fn without a CancellationToken argument is never cancelled"
                )
            })
        }

        /// The value of a supervised fn that watches a `CancellationToken`:
        /// cancelled without a value, it returns `from_error(Cancelled.into())`
        /// (`()`, or `Err(Cancelled.into())`).
        fn finish_cancellable(exit: Exit<Judged<Self>>) -> Self
        where
            Self::Error: FromCancelled,
        {
            settle(exit, || Self::from_error(FromCancelled::from_cancelled()))
        }
    }

    /// The value an exit carries; `cancelled` gives the one for a
    /// cancellation that left none. A last panic is resumed, a stall
    /// escalated as one.
    fn settle<R>(exit: Exit<Judged<R>>, cancelled: impl FnOnce() -> R) -> R {
        match unjudged(exit) {
            Exit::Completed(output)
            | Exit::GaveUp(Failure::Returned(output))
            | Exit::Cancelled {
                last_failure: Some(output),
            } => output,
            Exit::GaveUp(Failure::Panicked(payload)) => std::panic::resume_unwind(payload),
            Exit::GaveUp(Failure::Stalled(silent)) => escalate_stall(silent),
            _ => cancelled(),
        }
    }

    /// `From<Cancelled>`, with a diagnostic that says why a fn with a
    /// `CancellationToken` needs it.
    #[diagnostic::on_unimplemented(
        message = "a `#[supervised]` fn that takes a `CancellationToken` needs its error type `{Self}` to implement `From<supervised::Cancelled>`",
        label = "cancelled before its first value, this fn returns `Err(Cancelled.into())`",
        note = "`Cancelled` converts into `String`, `std::io::Error` and `Box<dyn Error + Send + Sync>` (so `anyhow::Error`); or implement `From<supervised::Cancelled>` for `{Self}`"
    )]
    pub trait FromCancelled {
        /// `Cancelled.into()`.
        fn from_cancelled() -> Self;
    }

    impl<E: From<Cancelled>> FromCancelled for E {
        fn from_cancelled() -> Self {
            Cancelled.into()
        }
    }

    impl SupervisedReturn for () {
        type Error = Cancelled;
        fn error(&self) -> Option<&Cancelled> {
            None
        }
        fn from_error(_: Cancelled) {}
    }

    impl<T, E> SupervisedReturn for Result<T, E> {
        type Error = E;
        fn error(&self) -> Option<&E> {
            self.as_ref().err()
        }
        fn from_error(error: E) -> Self {
            Err(error)
        }
    }
}

/// The README's examples, compiled and run as doctests so they cannot rot
/// (with the `http` feature, which one of them uses, as CI runs them).
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
