//! What the plain-harness benches share: a counting global allocator (the
//! heap figures), the process's CPU time, and medians. Each bench uses a
//! part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use supervised::CancellationToken;
use task_supervisor::{SupervisedTask, TaskResult};

// ---- counting allocator ----------------------------------------------------------

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is only
// bookkeeping.
#[allow(unsafe_code)] // a global allocator cannot be written without it
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// User plus system CPU time of the whole process.
#[allow(unsafe_code)] // `getrusage` is a C call
pub fn process_cpu() -> Duration {
    // SAFETY: `getrusage` only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

// ---- the restart-latency probe -------------------------------------------------------

/// Restarts each restart-latency figure is the median of.
pub const RESTARTS: usize = 2_000;

/// When each run of a restarting child started and when it panicked.
#[derive(Default)]
pub struct Timeline {
    pub starts: Vec<Instant>,
    pub panics: Vec<Instant>,
}

impl Timeline {
    pub fn run(this: &Mutex<Timeline>) {
        let mut t = this.lock().unwrap();
        t.starts.push(Instant::now());
        if t.panics.len() < RESTARTS {
            t.panics.push(Instant::now());
            drop(t);
            panic!("restart me");
        }
    }

    pub fn latencies(&self) -> Vec<Duration> {
        self.panics
            .iter()
            .zip(&self.starts[1..])
            .map(|(panic, next)| *next - *panic)
            .collect()
    }
}

#[derive(Clone)]
pub struct PanickingPeerTask(pub Arc<Mutex<Timeline>>, pub Arc<tokio::sync::Notify>);

impl SupervisedTask for PanickingPeerTask {
    async fn run(self, _cancel: CancellationToken) -> TaskResult {
        Timeline::run(&self.0);
        self.1.notify_one();
        Ok(())
    }
}

/// Whether the bench was started by `cargo bench` (`cargo test --benches`
/// runs bench targets without `--bench`, and there is nothing to do then).
pub fn invoked_as_bench(name: &str) -> bool {
    let invoked = std::env::args().any(|a| a == "--bench");
    if !invoked {
        println!("{name}: run with `cargo bench --bench {name}`");
    }
    invoked
}

/// Panics are the subject of the restart figures: keeps stderr quiet about
/// those for every library measured (ours chains its capture hook to this
/// one).
pub fn quiet_restart_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"restart me") {
            default_hook(info);
        }
    }));
}

pub fn verdict(holds: bool) -> &'static str {
    if holds {
        "holds"
    } else {
        "DOES NOT HOLD"
    }
}

// ---- the fleets of the group and fleet benches -----------------------------------

/// The runtime of the group and fleet benches: two workers, as the machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Counts children that started; `wait` resolves once `target` have.
pub struct Started {
    count: AtomicUsize,
    target: usize,
    all: tokio::sync::Notify,
}

impl Started {
    pub fn new(target: usize) -> Arc<Self> {
        Arc::new(Started {
            count: AtomicUsize::new(0),
            target,
            all: tokio::sync::Notify::new(),
        })
    }

    pub fn one(&self) {
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 == self.target {
            self.all.notify_one();
        }
    }

    pub async fn wait(&self) {
        if self.count.load(Ordering::SeqCst) < self.target {
            self.all.notified().await;
        }
    }
}

/// The idle child every setup runs: it says it started, then waits for
/// its token (an hourly timer, like the scale bench's idle loop).
pub async fn idle(started: &Started, cancel: CancellationToken) {
    started.one();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// `idle` as a `task-supervisor` task.
#[derive(Clone)]
pub struct PeerTask(pub Arc<Started>);

impl SupervisedTask for PeerTask {
    async fn run(self, cancel: CancellationToken) -> TaskResult {
        idle(&self.0, cancel).await;
        Ok(())
    }
}
