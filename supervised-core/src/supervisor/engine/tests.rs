//! What every poll of a running body pays, pinned where a test can: the
//! widths of the values it moves, and that a pending poll never hands the
//! body to the non-generic engine (whose calls go through a vtable).

use std::task::{Context, Poll, Waker};

use tokio_util::sync::CancellationToken;

use super::{BodyEnd, Engine, RunState};
use crate::supervisor::failure::CaughtPanic;
use crate::supervisor::supervision::RunBody;
use crate::{Registry, Supervisor};

#[cfg(target_pointer_width = "64")]
#[test]
fn what_a_poll_moves_fits_in_registers() {
    // The result of the caught poll: two words, returned in registers (a
    // `CaughtPanic` by value made it 80 bytes, moved through the stack on
    // every poll).
    assert_eq!(
        std::mem::size_of::<Result<Poll<()>, Box<CaughtPanic>>>(),
        16
    );
    // What the body's side returns on every poll: a bare flag.
    assert_eq!(std::mem::size_of::<Poll<()>>(), 1);
    // How a run's poll ended: a failure's text or a duration, not the panic.
    assert!(std::mem::size_of::<Poll<BodyEnd>>() <= 32);
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

    fn failure(&self) -> Option<String> {
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
