//! Benchmark 3d of BENCHMARKS.md: what `#[supervised]` adds to each poll of
//! a loop that yields every iteration, over the same loop written by hand
//! with the same beat.
//!
//! Run: `cargo bench -p supervised-bench --bench poll`. Not criterion: the
//! three loops run in turn within each of many rounds (the order reversed
//! every other round), so a drift of the shared machine hits them alike,
//! and the wrapping is the median over the rounds of each round's own
//! difference, with two spreads beside it: the
//! interquartile range of those differences (how much one round varies)
//! and the 95% interval of their median (how sure the figure is, which
//! narrows with more rounds). The budget holds when the median is at most
//! 5 ns and its interval is narrower than 5 ns.
//!
//! Two executors drive the loops:
//! - a bare one that polls again at once (`yield_now` outside a scheduler
//!   wakes its own waker), so an iteration is little more than the loop's
//!   own poll and the wrapping stands out against little noise;
//! - tokio's current-thread `block_on`, as benchmark 3 runs them, where a
//!   yield also goes through the scheduler's tick.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use supervised::Registry;

mod yielding;
use yielding::{annotated_loop, hand_written_beat_loop, hand_written_loop};

const ROUNDS: usize = 151;

/// Polls `f` until it is ready, with a waker that does nothing: nothing
/// between two polls but this loop.
fn bare<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(output) = f.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Nanoseconds per iteration of a loop of `n` iterations run by `run`.
fn per_iteration(n: u64, run: impl FnOnce()) -> f64 {
    let start = std::time::Instant::now();
    run();
    start.elapsed().as_nanos() as f64 / n as f64
}

/// The median of `v`, its interquartile range, and the 95% interval of
/// the median by order statistics: the values of 1-based ranks
/// ⌊n/2 − 0.98 √n⌋ and ⌈n/2 + 1 + 0.98 √n⌉.
fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |q: f64| v[((n - 1) as f64 * q).round() as usize];
    let half = 0.98 * (n as f64).sqrt();
    let low = ((n as f64 / 2.0 - half).floor() as usize).max(1);
    let high = ((n as f64 / 2.0 + 1.0 + half).ceil() as usize).min(n);
    Spread {
        median: at(0.5),
        iqr: at(0.75) - at(0.25),
        interval: (v[low - 1], v[high - 1]),
    }
}

struct Spread {
    median: f64,
    iqr: f64,
    interval: (f64, f64),
}

struct Figures {
    hand: f64,
    hand_beat: f64,
    annotated: f64,
    /// annotated - (hand-written + beat), round by round.
    wrapping: Spread,
    /// (hand-written + beat) - hand-written, round by round.
    beat: Spread,
}

/// `ROUNDS` rounds of the three loops in turn, `n` iterations each, on
/// this thread's executor.
fn measure(n: u64) -> Figures {
    let sub = Registry::new().subsystem("bench-poll-hand-beat");
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut wrapping = Vec::new();
    let mut beat = Vec::new();
    for round in 0..ROUNDS {
        let mut t = [0.0; 3];
        // In turn, and in the reverse order every other round, so an
        // effect of the order cancels out of the medians.
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            t[which] = match which {
                0 => per_iteration(n, || drive(hand_written_loop(black_box(n)))),
                1 => per_iteration(n, || drive(hand_written_beat_loop(black_box(n), &sub))),
                _ => per_iteration(n, || drive(annotated_loop(black_box(n)))),
            };
        }
        for (s, v) in samples.iter_mut().zip(t) {
            s.push(v);
        }
        wrapping.push(t[2] - t[1]);
        beat.push(t[1] - t[0]);
    }
    let [h, hb, a] = samples.map(|s| spread(s).median);
    Figures {
        hand: h,
        hand_beat: hb,
        annotated: a,
        wrapping: spread(wrapping),
        beat: spread(beat),
    }
}

/// Runs `f` on this thread's executor.
fn drive<F: Future>(f: F) -> F::Output {
    EXECUTOR.with(|e| match e.get() {
        Executor::Bare => bare(f),
        Executor::Tokio => RT.with(|rt| rt.block_on(f)),
    })
}

#[derive(Clone, Copy)]
enum Executor {
    Bare,
    Tokio,
}

thread_local! {
    static EXECUTOR: std::cell::Cell<Executor> = const { std::cell::Cell::new(Executor::Bare) };
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

fn report(what: &str, f: &Figures) {
    println!(
        "{what}: hand-written {:.2} ns/iteration, + beat {:.2}, annotated {:.2} (annotated / hand-written + beat = {:.3}x)",
        f.hand,
        f.hand_beat,
        f.annotated,
        f.annotated / f.hand_beat
    );
    let w = &f.wrapping;
    println!(
        "   the beat {:.2} ns (IQR {:.2}); the wrapping per poll {:.2} ns (IQR {:.2}, median within {:.2}..{:.2}), budget 5 ns: {}",
        f.beat.median,
        f.beat.iqr,
        w.median,
        w.iqr,
        w.interval.0,
        w.interval.1,
        if w.median <= 5.0 && w.interval.1 - w.interval.0 < 5.0 {
            "holds"
        } else {
            "DOES NOT HOLD"
        }
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter other than this bench's name
    // skips it.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"poll".contains(&a))
    {
        return;
    }
    println!("== 3d. the wrapping per poll of a loop that yields every iteration ({ROUNDS} interleaved rounds) ==");
    // In a runtime's context, as a loop's beat is in an app: tokio's clock
    // is read through it.
    let runtime = RT.with(|rt| rt.handle().clone());
    let entered = runtime.enter();
    EXECUTOR.with(|e| e.set(Executor::Bare));
    report(
        "bare executor (in a runtime's context)",
        &measure(1_000_000),
    );
    drop(entered);
    EXECUTOR.with(|e| e.set(Executor::Tokio));
    report("tokio current-thread block_on", &measure(200_000));
}
