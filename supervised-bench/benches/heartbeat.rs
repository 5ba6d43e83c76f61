//! Benchmarks 1-3 (and 3b) of BENCHMARKS.md: the cost of a heartbeat and of the
//! `#[supervised]` attribute per loop iteration, side by side with the seed's
//! design (a global `Mutex<HashMap<String, Instant>>`, insert per beat) and
//! with the floor (reading the clock), and where in a loop the beat is taken.
//!
//! Run: `cargo bench --bench heartbeat`. After criterion's own report, the
//! harness reads the point estimates criterion just wrote
//! (`<target>/criterion/<group>/<bench>/new/estimates.json`) and prints every
//! ratio and budget verdict, so all ratios come from the same run.
// The attribute's expansion turns the loop fn into a supervisor loop; the
// loop bodies below are deliberately trivial.
#![allow(clippy::never_loop)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use supervised::{supervised, CancellationToken, Registry, Subsystem};
use tokio::time::Instant;

// ---- the seed's design, ported literally ----------------------------------------

/// The seed's registry: one global lock around a map from name to last tick.
fn seed_registry() -> &'static Mutex<HashMap<String, Instant>> {
    static SEED: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    SEED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `Heartbeat(name)` of the seed: lock, insert (allocating the key), unlock.
fn seed_heartbeat(name: &str) {
    seed_registry()
        .lock()
        .unwrap()
        .insert(name.to_string(), Instant::now());
}

/// `Snapshot()` of the seed: lock and copy the whole map.
fn seed_snapshot() -> HashMap<String, Instant> {
    seed_registry().lock().unwrap().clone()
}

// ---- 1. single thread --------------------------------------------------------------

fn single_thread(c: &mut Criterion) {
    let registry = Registry::new();
    let handle = registry.subsystem("bench-handle");
    supervised::heartbeat("bench-free");
    seed_heartbeat("bench-seed");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("beat_single");
    group.bench_function("floor_tokio_instant_now", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    group.bench_function("std_instant_now", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    group.bench_function("handle", |b| b.iter(|| black_box(&handle).beat()));
    group.bench_function("heartbeat_name", |b| {
        b.iter(|| supervised::heartbeat(black_box("bench-free")))
    });
    group.bench_function("seed_mutex_hashmap", |b| {
        b.iter(|| seed_heartbeat(black_box("bench-seed")))
    });
    // Inside a runtime context, as a supervised body beats (see BENCHMARKS.md
    // on tokio's `test-util` feature).
    {
        let _entered = rt.enter();
        group.bench_function("floor_in_runtime", |b| b.iter(|| black_box(Instant::now())));
        group.bench_function("handle_in_runtime", |b| {
            b.iter(|| black_box(&handle).beat())
        });
    }
    group.finish();
}

// ---- 2. two beating threads and a snapshotting one -----------------------------------

/// Subsystems registered besides the two beating ones, so a snapshot has
/// something to copy.
const IDLE_NAMES: usize = 100;

/// Runs `beat_a` and `beat_b` `iters` times each on two threads while a third
/// snapshots, pausing `pause` between snapshots (none: back to back); returns
/// the wall time until both beaters finish.
fn contended(
    iters: u64,
    pause: Option<Duration>,
    beat_a: impl Fn() + Sync,
    beat_b: impl Fn() + Sync,
    snapshot: impl Fn() + Sync,
) -> Duration {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let snapshots = s.spawn(|| {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                snapshot();
                n += 1;
                if let Some(pause) = pause {
                    std::thread::sleep(pause);
                }
            }
            n
        });
        let start = std::time::Instant::now();
        let a = s.spawn(|| (0..iters).for_each(|_| beat_a()));
        let b = s.spawn(|| (0..iters).for_each(|_| beat_b()));
        a.join().unwrap();
        b.join().unwrap();
        let elapsed = start.elapsed();
        done.store(true, Ordering::Relaxed);
        black_box(snapshots.join().unwrap());
        elapsed
    })
}

fn two_threads(c: &mut Criterion) {
    let registry = Registry::new();
    for i in 0..IDLE_NAMES {
        registry.subsystem(&format!("idle-{i}"));
        seed_heartbeat(&format!("idle-{i}"));
    }
    let a: Subsystem = registry.subsystem("contended-a");
    let b: Subsystem = registry.subsystem("contended-b");
    // The same two beats on subsystems registered apart (so their heap
    // blocks are not neighbours): a diagnostic for false sharing.
    let apart_a: Subsystem = registry.subsystem("apart-a");
    let spacers: Vec<Subsystem> = (0..32)
        .map(|i| registry.subsystem(&format!("spacer-{i}")))
        .collect();
    let apart_b: Subsystem = registry.subsystem("apart-b");

    let mut group = c.benchmark_group("beat_contended");
    // Time per beat of one thread: both threads beat `iters` times each.
    group.throughput(Throughput::Elements(2));
    // A snapshot every millisecond (already far more often than any liveness
    // scrape), and back to back (a third busy thread on a 2-core machine).
    group.bench_function("handle_apart", |bench| {
        bench.iter_custom(|iters| {
            contended(
                iters,
                Some(Duration::from_millis(1)),
                || apart_a.beat(),
                || apart_b.beat(),
                || drop(black_box(registry.snapshot())),
            )
        })
    });
    for (suffix, pause) in [("", Some(Duration::from_millis(1))), ("_continuous", None)] {
        group.bench_function(format!("handle{suffix}"), |bench| {
            bench.iter_custom(|iters| {
                contended(
                    iters,
                    pause,
                    || a.beat(),
                    || b.beat(),
                    || drop(black_box(registry.snapshot())),
                )
            })
        });
        group.bench_function(format!("heartbeat_name{suffix}"), |bench| {
            bench.iter_custom(|iters| {
                contended(
                    iters,
                    pause,
                    || registry.heartbeat("contended-a"),
                    || registry.heartbeat("contended-b"),
                    || drop(black_box(registry.snapshot())),
                )
            })
        });
        group.bench_function(format!("seed_mutex_hashmap{suffix}"), |bench| {
            bench.iter_custom(|iters| {
                contended(
                    iters,
                    pause,
                    || seed_heartbeat("contended-a"),
                    || seed_heartbeat("contended-b"),
                    || drop(black_box(seed_snapshot())),
                )
            })
        });
    }
    group.finish();
    drop(spacers);
}

// ---- 3. the attribute per loop iteration -----------------------------------------

mod yielding;
use yielding::{annotated_loop, hand_written_beat_loop, hand_written_loop};

const LOOP_ITERATIONS: u64 = 1_000_000;

/// The loop that never yields: the whole loop is one poll of the body.
#[supervised(name = "bench-annotated-tight-loop")]
async fn annotated_tight_loop(n: u64) {
    let mut i = 0;
    while i < n {
        i += 1;
        black_box(i);
    }
}

async fn hand_written_tight_loop(n: u64) {
    let mut i = 0;
    while i < n {
        i += 1;
        black_box(i);
    }
}

async fn hand_written_tight_beat_loop(n: u64, sub: &Subsystem) {
    let mut i = 0;
    while i < n {
        i += 1;
        black_box(i);
        sub.beat();
    }
}

/// The hand-written loop plus a beat, raced against cancellation in a
/// `tokio::select!` the way the supervisor races a body: every wake of the
/// body polls `cancelled()` too (a diagnostic, not a budget).
async fn hand_written_beat_select_loop(n: u64, sub: &Subsystem, cancel: &CancellationToken) {
    tokio::select! {
        biased;
        () = hand_written_beat_loop(n, sub) => {}
        () = cancel.cancelled() => {}
    }
}

fn attribute(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("attribute_loop");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements(LOOP_ITERATIONS));
    // One criterion iteration = one call of the fn, running 1,000,000 loop
    // iterations.
    let sub = Registry::new().subsystem("bench-hand-beat");
    group.bench_function("hand_written", |b| {
        b.iter(|| rt.block_on(hand_written_loop(black_box(LOOP_ITERATIONS))))
    });
    group.bench_function("hand_written_plus_beat", |b| {
        b.iter(|| rt.block_on(hand_written_beat_loop(black_box(LOOP_ITERATIONS), &sub)))
    });
    group.bench_function("annotated", |b| {
        b.iter(|| rt.block_on(annotated_loop(black_box(LOOP_ITERATIONS))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    targets = single_thread, two_threads, attribute
}

// ---- the ratios, from this run's estimates ------------------------------------------

/// Where criterion writes its results (the same rule criterion uses).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // <target>/release/deps/heartbeat-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("criterion")
}

/// The median estimate of `group/bench` in nanoseconds per criterion
/// iteration, `None` if it was not run (filtered out, or test mode).
fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(bench)
        .join("new")
        .join("estimates.json");
    // Only this run's results: a filtered run leaves older files behind.
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < *STARTED.get()? {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn verdict(holds: bool) -> &'static str {
    if holds {
        "HOLDS"
    } else {
        "FAILS"
    }
}

/// Nanoseconds per call of `f`, timed over `n` calls.
fn per_op(n: u64, mut f: impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Benchmark 1 side by side: every variant timed in turn within each round,
/// so drift on a shared machine hits all alike; medians over the rounds.
fn interleaved_single() -> [f64; 6] {
    const ROUNDS: usize = 41;
    const OPS: u64 = 200_000;
    let registry = Registry::new();
    let handle = registry.subsystem("interleaved-handle");
    supervised::heartbeat("interleaved-free");
    seed_heartbeat("interleaved-seed");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..ROUNDS {
        samples[0].push(per_op(OPS, || {
            black_box(Instant::now());
        }));
        samples[1].push(per_op(OPS, || black_box(&handle).beat()));
        samples[2].push(per_op(OPS, || {
            supervised::heartbeat(black_box("interleaved-free"))
        }));
        samples[3].push(per_op(OPS, || {
            seed_heartbeat(black_box("interleaved-seed"))
        }));
        let _entered = rt.enter();
        samples[4].push(per_op(OPS, || {
            black_box(Instant::now());
        }));
        samples[5].push(per_op(OPS, || black_box(&handle).beat()));
    }
    samples.map(median_of)
}

// ---- 3b. where the beat is taken: the end of the body, or the loop's head ---------

/// What the attribute injected until the beat moved to the head: a beat at
/// the end of the body (and before each `continue` it could see).
fn while_beat_at_end(n: u64, sub: &Subsystem) {
    let mut i = 0;
    while i < n {
        i += 1;
        black_box(i);
        sub.beat();
    }
}

/// What it injects now: the head beats on every pass but the first.
fn while_beat_at_head(n: u64, sub: &Subsystem) {
    let mut head = supervised::__private::LoopHead::default();
    let mut i = 0;
    while {
        head.pass(sub);
        i < n
    } {
        i += 1;
        black_box(i);
    }
}

fn for_beat_at_end(n: u64, sub: &Subsystem) {
    for i in 0..n {
        black_box(i);
        sub.beat();
    }
}

fn for_beating(n: u64, sub: &Subsystem) {
    for i in supervised::__private::beating(0..n, sub) {
        black_box(i);
    }
}

/// Benchmark 3's loop under the same supervisor as the attribute's, with
/// the beat written by hand at the end of the body (the old expansion) or
/// at the head (the new one): the loop shape alone, inside the wrapping.
async fn supervised_shape(n: u64, at_head: bool) {
    static SUPERVISOR: supervised::Supervisor = supervised::Supervisor::new();
    let sub = SUPERVISOR.register(if at_head {
        "bench-shape-head"
    } else {
        "bench-shape-end"
    });
    let sub = &sub;
    SUPERVISOR
        .run_registered(CancellationToken::new(), sub, |_cancel| async move {
            let mut i = 0;
            if at_head {
                let mut head = supervised::__private::LoopHead::default();
                while {
                    head.pass(sub);
                    i < n
                } {
                    i += 1;
                    tokio::task::yield_now().await;
                }
            } else {
                while i < n {
                    i += 1;
                    tokio::task::yield_now().await;
                    sub.beat();
                }
            }
        })
        .await;
}

/// Benchmark 3b in a supervised async loop: ns per iteration, interleaved.
fn interleaved_supervised_shapes() -> [f64; 2] {
    const ROUNDS: usize = 9;
    const N: u64 = 200_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut samples: [Vec<f64>; 2] = Default::default();
    for _ in 0..ROUNDS {
        samples[0]
            .push(per_op(1, || rt.block_on(supervised_shape(black_box(N), false))) / N as f64);
        samples[1].push(per_op(1, || rt.block_on(supervised_shape(black_box(N), true))) / N as f64);
    }
    samples.map(median_of)
}

/// Benchmark 3b side by side, interleaved rounds: ns per iteration of the
/// same loop with the beat at the end of the body and at the head, for
/// `while` and for `for`.
fn interleaved_loop_shapes() -> [f64; 4] {
    const ROUNDS: usize = 15;
    const N: u64 = 200_000;
    let sub = Registry::new().subsystem("interleaved-loop-shapes");
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        samples[0].push(per_op(1, || while_beat_at_end(black_box(N), &sub)) / N as f64);
        samples[1].push(per_op(1, || while_beat_at_head(black_box(N), &sub)) / N as f64);
        samples[2].push(per_op(1, || for_beat_at_end(black_box(N), &sub)) / N as f64);
        samples[3].push(per_op(1, || for_beating(black_box(N), &sub)) / N as f64);
    }
    samples.map(median_of)
}

/// Benchmark 3 side by side: hand-written, hand-written plus a beat, and
/// annotated, in turn within each round; medians of ns per loop iteration.
fn interleaved_attribute() -> [f64; 4] {
    const ROUNDS: usize = 9;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sub = Registry::new().subsystem("interleaved-hand-beat");
    let cancel = CancellationToken::new();
    let n = LOOP_ITERATIONS;
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        samples[0].push(per_op(1, || rt.block_on(hand_written_loop(black_box(n)))) / n as f64);
        samples[1].push(
            per_op(1, || {
                rt.block_on(hand_written_beat_loop(black_box(n), &sub))
            }) / n as f64,
        );
        samples[2].push(per_op(1, || rt.block_on(annotated_loop(black_box(n)))) / n as f64);
        samples[3].push(
            per_op(1, || {
                rt.block_on(hand_written_beat_select_loop(black_box(n), &sub, &cancel))
            }) / n as f64,
        );
    }
    samples.map(median_of)
}

/// Benchmark 3 for a loop that never yields: hand-written, + beat,
/// annotated, in ns per iteration.
fn interleaved_tight_attribute() -> [f64; 3] {
    const ROUNDS: usize = 9;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sub = Registry::new().subsystem("interleaved-tight-beat");
    let n = LOOP_ITERATIONS;
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        samples[0]
            .push(per_op(1, || rt.block_on(hand_written_tight_loop(black_box(n)))) / n as f64);
        samples[1].push(
            per_op(1, || {
                rt.block_on(hand_written_tight_beat_loop(black_box(n), &sub))
            }) / n as f64,
        );
        samples[2].push(per_op(1, || rt.block_on(annotated_tight_loop(black_box(n)))) / n as f64);
    }
    samples.map(median_of)
}

// ---- 7. what a beat could cost: the clock sources and the atomics ----------------------

/// `CLOCK_MONOTONIC_COARSE` (the kernel's last tick, a memory load in the
/// vDSO), in nanoseconds; measured to say what a coarse-clock beat would
/// save, not used by the library.
#[allow(unsafe_code)] // a C call, in the bench crate only
fn coarse_now_ns() -> u64 {
    // SAFETY: `clock_gettime` only writes into the zeroed struct we pass.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The resolution of `CLOCK_MONOTONIC_COARSE` on this machine.
#[allow(unsafe_code)] // a C call, in the bench crate only
fn coarse_resolution() -> Duration {
    // SAFETY: `clock_getres` only writes into the zeroed struct we pass.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Interleaved medians, ns per op: tokio's `Instant::now()` (the floor),
/// std's, the coarse clock, a relaxed `fetch_add` (what a count-only beat
/// would be), a relaxed store, a handle beat.
fn interleaved_clock_sources() -> [f64; 6] {
    const ROUNDS: usize = 41;
    const OPS: u64 = 200_000;
    let count = std::sync::atomic::AtomicU64::new(0);
    let cell = std::sync::atomic::AtomicU64::new(0);
    let handle = Registry::new().subsystem("interleaved-clock-handle");
    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..ROUNDS {
        samples[0].push(per_op(OPS, || {
            black_box(Instant::now());
        }));
        samples[1].push(per_op(OPS, || {
            black_box(std::time::Instant::now());
        }));
        samples[2].push(per_op(OPS, || {
            black_box(coarse_now_ns());
        }));
        samples[3].push(per_op(OPS, || {
            black_box(&count).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        samples[4].push(per_op(OPS, || {
            black_box(&cell).store(black_box(7), std::sync::atomic::Ordering::Relaxed);
        }));
        samples[5].push(per_op(OPS, || black_box(&handle).beat()));
    }
    samples.map(median_of)
}

fn summary(filtered: bool) {
    let single = |b: &str| median_ns("beat_single", b);
    let contended = |b: &str| median_ns("beat_contended", b);
    let attr = |b: &str| median_ns("attribute_loop", b);
    println!("\n== heartbeat summary: criterion medians of this run ==");

    if let (Some(floor), Some(std_now), Some(handle), Some(free), Some(seed)) = (
        single("floor_tokio_instant_now"),
        single("std_instant_now"),
        single("handle"),
        single("heartbeat_name"),
        single("seed_mutex_hashmap"),
    ) {
        println!("1. single thread: floor (tokio Instant::now) {floor:.2} ns, std Instant::now {std_now:.2} ns, handle {handle:.2} ns, heartbeat(name) {free:.2} ns, seed-style {seed:.2} ns");
        println!(
            "   handle / floor = {:.2}x, heartbeat(name) / handle = {:.2}x, seed-style / handle = {:.2}x",
            handle / floor,
            free / handle,
            seed / handle
        );
    }
    if let (Some(floor), Some(handle)) = (single("floor_in_runtime"), single("handle_in_runtime")) {
        println!(
            "   inside a runtime context: floor {floor:.2} ns, handle {handle:.2} ns, handle / floor = {:.2}x",
            handle / floor
        );
    }
    for (suffix, what) in [
        ("", "a snapshot every 1 ms"),
        ("_continuous", "snapshots back to back"),
    ] {
        if let (Some(handle), Some(free), Some(seed)) = (
            contended(&format!("handle{suffix}")),
            contended(&format!("heartbeat_name{suffix}")),
            contended(&format!("seed_mutex_hashmap{suffix}")),
        ) {
            // Each criterion iteration is one beat on each of the two threads.
            println!("2. two beating threads, {what}: wall time per beat on both threads {handle:.2} ns (handle), {free:.2} ns (heartbeat(name)), {seed:.2} ns (seed-style)");
            let r = seed / handle;
            println!(
                "   handle throughput / seed-style = {r:.1}x (budget >= 5x): {}; heartbeat(name) / seed-style = {:.1}x",
                verdict(r >= 5.0),
                seed / free
            );
        }
    }
    if let (Some(adjacent), Some(apart)) = (contended("handle"), contended("handle_apart")) {
        println!("   diagnostic: handles registered one after the other {adjacent:.2} ns, registered apart {apart:.2} ns (false sharing if apart is much faster)");
    }
    if let (Some(hand), Some(hand_beat), Some(annotated), Some(beat)) = (
        attr("hand_written"),
        attr("hand_written_plus_beat"),
        attr("annotated"),
        single("handle_in_runtime"),
    ) {
        let n = LOOP_ITERATIONS as f64;
        let (hand, hand_beat, annotated) = (hand / n, hand_beat / n, annotated / n);
        println!("3. 1,000,000 iterations: hand-written {hand:.2} ns/iteration, hand-written + beat {hand_beat:.2}, annotated {annotated:.2}; difference {:.2} ns (handle beat in a runtime {beat:.2} ns)", annotated - hand);
    }
    if filtered {
        return;
    }

    println!("\n== side by side, interleaved rounds (std::time::Instant; the verdicts) ==");
    let [floor, handle, free, seed, floor_rt, handle_rt] = interleaved_single();
    println!("1. floor {floor:.2} ns, handle {handle:.2} ns, heartbeat(name) {free:.2} ns, seed-style {seed:.2} ns; in a runtime context: floor {floor_rt:.2} ns, handle {handle_rt:.2} ns");
    let r = handle / floor;
    println!(
        "   handle / floor = {r:.2}x (budget <= 1.3x): {}",
        verdict(r <= 1.3)
    );
    let r = handle_rt / floor_rt;
    println!(
        "   in a runtime context: handle / floor = {r:.2}x (budget <= 1.3x): {}",
        verdict(r <= 1.3)
    );
    let r = free / handle;
    println!(
        "   heartbeat(name) / handle = {r:.2}x (budget <= 3x): {}",
        verdict(r <= 3.0)
    );
    println!("   seed-style / handle = {:.2}x", seed / handle);
    let [hand, hand_beat, annotated, hand_select] = interleaved_attribute();
    let diff = annotated - hand;
    println!("3. hand-written {hand:.2} ns/iteration, hand-written + beat {hand_beat:.2}, annotated {annotated:.2} (ratio {:.3}x)", annotated / hand);
    println!(
        "   difference {diff:.2} ns: the beat inside the loop (hand-written + beat - hand-written) {:.2} ns, the supervisor's wrapping (annotated - hand-written + beat) {:.2} ns",
        hand_beat - hand,
        annotated - hand_beat
    );
    println!(
        "   a diagnostic: 9 rounds under block_on vary by about the budget; the verdict on the wrapping per poll is benchmark 3d's (`--bench poll`)"
    );
    println!(
        "   diagnostic: hand-written + beat raced with cancel.cancelled() in select! {hand_select:.2} ns/iteration: the race alone costs {:.2} ns",
        hand_select - hand_beat
    );
    let [tight, tight_beat, tight_annotated] = interleaved_tight_attribute();
    let tight_diff = tight_annotated - tight;
    println!("3c. a loop that never yields, 1,000,000 iterations: hand-written {tight:.2} ns/iteration, hand-written + beat {tight_beat:.2}, annotated {tight_annotated:.2}; difference {tight_diff:.2} ns");
    println!(
        "   budget one handle beat in a runtime ({handle_rt:.2} ns) + 5 ns = {:.2} ns: {}",
        handle_rt + 5.0,
        verdict(tight_diff <= handle_rt + 5.0),
    );
    println!(
        "1b. heartbeat(name) / seed-style, one thread = {:.2}x (budget <= 0.5x): {}",
        free / seed,
        verdict(free / seed <= 0.5)
    );
    let [tokio_now, std_now, coarse, fetch_add, store, beat] = interleaved_clock_sources();
    println!("7. clock sources, ns per call: tokio Instant::now {tokio_now:.2}, std Instant::now {std_now:.2}, CLOCK_MONOTONIC_COARSE {coarse:.2} (resolution {:?}); atomics: relaxed fetch_add {fetch_add:.2}, relaxed store {store:.2}; a handle beat {beat:.2}", coarse_resolution());
    println!(
        "   beat / tokio Instant::now = {:.2}x (budget <= 0.3x): {}; a count-only beat (one fetch_add) would be {:.2}x, a coarse-clock beat (coarse read + fetch_add + store) about {:.2}x",
        beat / tokio_now,
        verdict(beat / tokio_now <= 0.3),
        fetch_add / tokio_now,
        (coarse + fetch_add + store) / tokio_now
    );
    let [while_end, while_head, for_end, for_head] = interleaved_loop_shapes();
    let (r_while, r_for) = (while_head / while_end, for_head / for_end);
    println!("3b. the beat at the loop's head against the end of the body, ns/iteration: while {while_end:.2} -> {while_head:.2} ({r_while:.3}x), for {for_end:.2} -> {for_head:.2} ({r_for:.3}x)");
    let [end, head] = interleaved_supervised_shapes();
    let r_supervised = head / end;
    println!("    under the supervisor, with an await per iteration: {end:.2} -> {head:.2} ({r_supervised:.3}x)");
    println!(
        "   budget: no growth beyond this machine's noise (<= 1.05x): {}",
        verdict(r_while <= 1.05 && r_for <= 1.05 && r_supervised <= 1.05)
    );
}

/// Criterion's flags that take no value (the others take one).
const BOOLEAN_FLAGS: [&str; 9] = [
    "--bench",
    "--test",
    "--list",
    "--exact",
    "--ignored",
    "--verbose",
    "--quiet",
    "--noplot",
    "--discard-baseline",
];

/// When this process started: estimates older than that are from another run.
static STARTED: OnceLock<std::time::SystemTime> = OnceLock::new();

fn main() {
    STARTED.get_or_init(std::time::SystemTime::now);
    benches();
    Criterion::default().configure_from_args().final_summary();
    // A filtered run (`cargo bench --bench heartbeat -- beat_single`) gets
    // the criterion part only.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().enumerate().any(|(i, a)| {
        let after_value_option = i > 0
            && args[i - 1].starts_with("--")
            && !BOOLEAN_FLAGS.contains(&args[i - 1].as_str());
        !a.starts_with('-') && !after_value_option
    });
    summary(filtered);
}
