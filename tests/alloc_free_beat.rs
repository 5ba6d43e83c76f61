//! A beat allocates nothing: through a pre-registered handle, and through the
//! free `heartbeat(name)` (and `Registry::heartbeat`) on a name that is
//! already registered. Neither does a poll of a supervised body, which also
//! keeps the task's waker instead of cloning it again. A counting global
//! allocator counts the allocations made by the current thread around a loop
//! of beats or polls.

// A counting global allocator and a hand-made raw waker cannot be written
// without `unsafe`; the workspace denies it everywhere else.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// The system allocator, counting the allocations of each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread may be tearing down its locals.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded to `System` unchanged; the counter is only
// bookkeeping in a const-initialized thread-local (which does not allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const BEATS: u64 = 10_000;

#[test]
fn the_counter_sees_an_allocation() {
    // The measurement itself can fail: a loop that allocates is counted.
    let n = allocations_in(|| {
        for i in 0..BEATS {
            std::hint::black_box(i.to_string());
        }
    });
    assert_eq!(n, BEATS);
}

#[test]
fn a_handle_beat_allocates_nothing() {
    let registry = supervised::Registry::new();
    let handle = registry.subsystem("alloc-handle");
    handle.beat();
    let n = allocations_in(|| {
        for _ in 0..BEATS {
            handle.beat();
        }
    });
    assert_eq!(n, 0, "{n} allocations in {BEATS} handle beats");
    assert_eq!(handle.beats(), BEATS + 1);
}

#[test]
fn a_handle_beat_inside_a_runtime_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let registry = supervised::Registry::new();
    let handle = registry.subsystem("alloc-handle-rt");
    let _entered = rt.enter();
    handle.beat();
    let n = allocations_in(|| {
        for _ in 0..BEATS {
            handle.beat();
        }
    });
    assert_eq!(n, 0, "{n} allocations in {BEATS} handle beats");
}

#[test]
fn heartbeat_by_name_on_a_registered_name_allocates_nothing() {
    // The first beat registers the name (and may allocate); later ones must not.
    supervised::heartbeat("alloc-free-fn");
    let n = allocations_in(|| {
        for _ in 0..BEATS {
            supervised::heartbeat("alloc-free-fn");
        }
    });
    assert_eq!(n, 0, "{n} allocations in {BEATS} heartbeat(name) calls");
    assert_eq!(
        supervised::registry().subsystem("alloc-free-fn").beats(),
        BEATS + 1
    );
}

#[test]
fn registry_heartbeat_on_a_registered_name_allocates_nothing() {
    let registry = supervised::Registry::new();
    registry.heartbeat("alloc-registry");
    let n = allocations_in(|| {
        for _ in 0..BEATS {
            registry.heartbeat("alloc-registry");
        }
    });
    assert_eq!(n, 0, "{n} allocations in {BEATS} Registry::heartbeat calls");
}

// A waker whose clones carry another copy of its vtable, as clones of
// tokio's `block_on` waker can: `Waker::will_wake` between a clone and the
// original is then false, and a supervisor that compared against a clone
// would clone (and lock) on every poll.
static ORIGINAL: RawWakerVTable = RawWakerVTable::new(clone_waker, noop, noop, noop);
static CLONED: RawWakerVTable = RawWakerVTable::new(clone_waker, noop, noop, noop);
static WAKER_CLONES: AtomicU64 = AtomicU64::new(0);

unsafe fn clone_waker(_: *const ()) -> RawWaker {
    WAKER_CLONES.fetch_add(1, Ordering::Relaxed);
    RawWaker::new(std::ptr::null(), &CLONED)
}

unsafe fn noop(_: *const ()) {}

#[test]
fn polling_a_supervised_body_allocates_nothing_and_keeps_the_waker() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let registry = supervised::Registry::new();
    let supervisor = supervised::Supervisor::new().registry(&registry);
    let sub = supervisor.register("alloc-poll");
    let mut supervision =
        supervised::Supervision::new(&supervisor, supervised::CancellationToken::new(), &sub);
    // One iteration per poll: beat, then wait (nothing will wake it, the
    // test polls by hand).
    let body = std::future::poll_fn(|_| {
        sub.beat();
        Poll::<()>::Pending
    });
    let mut run = std::pin::pin!(supervision.run_once(body));
    // SAFETY: the vtable's functions ignore the data pointer, and never
    // free anything.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &ORIGINAL)) };
    let mut cx = Context::from_waker(&waker);
    // The first poll starts the run, which may allocate.
    assert!(run.as_mut().poll(&mut cx).is_pending());
    let clones_before = WAKER_CLONES.load(Ordering::Relaxed);
    let n = allocations_in(|| {
        for _ in 0..BEATS {
            assert!(run.as_mut().poll(&mut cx).is_pending());
        }
    });
    let clones = WAKER_CLONES.load(Ordering::Relaxed) - clones_before;
    assert_eq!(
        n, 0,
        "{n} allocations in {BEATS} polls of a supervised body"
    );
    assert_eq!(
        clones, 0,
        "the task waker was cloned {clones} times in {BEATS} polls"
    );
    assert_eq!(sub.beats(), BEATS + 1);
}
