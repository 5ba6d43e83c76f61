//! What every poll of a running body pays, pinned where a test can: the
//! widths of the values it moves, that a pending poll never hands the
//! body to the non-generic engine (whose calls go through a vtable), and
//! which entry into the engine a debug and a release build take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use tokio_util::sync::CancellationToken;

use super::{panic, BodyEnd, Engine, RunState};
use crate::supervisor::supervision::RunBody;
use crate::{Exit, Registry, Step, Supervision, Supervisor};

/// Calls to `Engine::poll_run_dyn`, the debug build's entry.
pub(super) static DYN_ENTRIES: AtomicU64 = AtomicU64::new(0);

/// The size of what `f` returns, read from its type (`f` is not called).
fn returned_size<R>(_f: impl FnOnce() -> R) -> usize {
    std::mem::size_of::<R>()
}

#[cfg(target_pointer_width = "64")]
#[test]
fn what_a_poll_moves_fits_in_registers() {
    // The result of the caught poll: two words, returned in registers (a
    // `CaughtPanic` by value made it 80 bytes, moved through the stack on
    // every poll).
    assert_eq!(
        returned_size(|| panic::catch_in_body(|| Poll::<()>::Pending)),
        16
    );
    // What the body's side returns on every poll: a bare flag.
    assert_eq!(
        returned_size(|| Pending::default().poll_body(&mut Context::from_waker(Waker::noop()))),
        1
    );
    // How a run's poll ended: a failure's text or a duration, not the panic.
    assert!(std::mem::size_of::<Poll<BodyEnd>>() <= 32);
}

/// A supervision's poll enters the engine through the vtable in a debug
/// build (compiled once for every supervised fn) and on the generic path
/// in a release build (`RunOnce::poll`).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_debug_build_enters_the_engine_once_compiled_a_release_build_inline() {
    let supervisor = Supervisor::new().registry(&Registry::new());
    let sub = supervisor.register("engine-entry");
    let mut supervision = Supervision::<()>::new(&supervisor, CancellationToken::new(), &sub);
    let before = DYN_ENTRIES.load(Ordering::Relaxed);
    let step = supervision.run_once(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert!(matches!(step.await, Step::Exit(Exit::Completed(()))));
    let entered = DYN_ENTRIES.load(Ordering::Relaxed) - before;
    if cfg!(debug_assertions) {
        assert!(entered >= 11, "{entered} entries for 11 polls");
    } else {
        assert_eq!(entered, 0, "a release build went through the vtable");
    }
}

/// A body that never ends, counting what the engine asks of it.
#[derive(Default)]
struct Pending {
    polls: u64,
    made_dyn: u64,
}

impl RunBody for Pending {
    fn poll_body(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        self.polls += 1;
        Poll::Pending
    }

    fn failure(&mut self) -> Option<String> {
        None
    }

    fn drop_body(&mut self) {}

    fn as_dyn(&mut self) -> &mut dyn RunBody {
        self.made_dyn += 1;
        self
    }
}

#[test]
fn a_pending_poll_stays_on_the_generic_path() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let supervisor = Supervisor::new().registry(&Registry::new());
    let sub = supervisor.register("engine-hot-path");
    let mut engine = Engine::new(&supervisor.policy, &sub, CancellationToken::new());
    let mut run = RunState::new();
    let mut body = Pending::default();
    let mut cx = Context::from_waker(Waker::noop());
    // The first poll starts the run, whose watchers are then due once, to
    // register their waker: both go through the engine's cold paths.
    for _ in 0..2 {
        assert!(engine.poll_run(&mut run, &mut cx, &mut body).is_pending());
    }
    let cold = body.made_dyn;
    for _ in 0..1_000 {
        assert!(engine.poll_run(&mut run, &mut cx, &mut body).is_pending());
    }
    assert_eq!(body.polls, 1_002);
    assert_eq!(
        body.made_dyn, cold,
        "a pending poll with no watcher due went through the vtable"
    );
}
