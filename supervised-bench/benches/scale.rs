//! Benchmarks 4-5 of BENCHMARKS.md: 10,000 idle supervised subsystems on one
//! runtime (heap per subsystem beyond the body's own future, idle CPU),
//! panic-to-restart latency with zero backoff, each side by side with the
//! `task-supervisor` crate in the same run; `snapshot()` over 100,000
//! subsystems and (feature `http`) rendering `/admin/liveness` for 10,000.
//!
//! Run: `cargo bench --all-features --bench scale`. A plain harness, not
//! criterion: memory comes from a counting global allocator, idle CPU from
//! `getrusage`, times from `std::time::Instant` (medians of repeated runs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised::{CancellationToken, Registry, Supervisor};
use task_supervisor::{SupervisedTask, SupervisorBuilder, TaskResult, TaskStatus};

mod common;

use common::{
    invoked_as_bench, live_bytes, median, percentile, process_cpu, quiet_restart_panics, verdict,
    PanickingPeerTask, Timeline, RESTARTS,
};

// ---- 4/5a. 10,000 idle subsystems ---------------------------------------------------

const SUBSYSTEMS: usize = 10_000;
const IDLE_INTERVAL: Duration = Duration::from_secs(3);

/// The body every setup runs: an idle loop that wakes once an hour.
async fn idle_body(cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// `idle_body` under the attribute, for its future's size.
#[supervised::supervised(name = "scale-size-probe")]
async fn annotated_idle_body(cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

#[derive(Clone)]
struct IdlePeerTask;

impl SupervisedTask for IdlePeerTask {
    async fn run(self, cancel: CancellationToken) -> TaskResult {
        idle_body(cancel).await;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// The body alone, `tokio::spawn`ed: the reference.
    Bare,
    /// Each body under `Supervisor::run` (what `#[supervised]` expands to).
    Ours,
    /// Each body a `task-supervisor` task of one supervisor.
    Peer,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Bare => "bare tokio::spawn",
            Setup::Ours => "supervised",
            Setup::Peer => "task-supervisor",
        }
    }
}

struct IdleFigures {
    bytes_per_subsystem: f64,
    cpu_per_second: Duration,
    /// Times a worker thread was woken while idle (tokio's
    /// `worker_park_unpark_count`, summed over workers): nothing polling
    /// means none.
    worker_wakeups: u64,
    /// Time the workers spent running tasks while idle.
    worker_busy: Duration,
}

/// The wakeup counter's control: one task ticking every 10 ms for 1 s
/// must wake the workers about 100 times.
fn control_wakeups() -> u64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ticker = rt.spawn(async {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let (before, _) = worker_activity(&rt);
    std::thread::sleep(Duration::from_secs(1));
    let (after, _) = worker_activity(&rt);
    ticker.abort();
    after - before
}

/// Worker wakeups and busy time so far, summed over the runtime's workers.
fn worker_activity(rt: &tokio::runtime::Runtime) -> (u64, Duration) {
    let metrics = rt.metrics();
    (0..metrics.num_workers()).fold((0, Duration::ZERO), |(wakeups, busy), w| {
        (
            wakeups + metrics.worker_park_unpark_count(w),
            busy + metrics.worker_total_busy_duration(w),
        )
    })
}

fn idle_setup(setup: Setup) -> IdleFigures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let names: Vec<String> = (0..SUBSYSTEMS).map(|i| format!("idle-{i:05}")).collect();
    let static_names: Vec<&'static str> = names
        .iter()
        .map(|n| &*Box::leak(n.clone().into_boxed_str()))
        .collect();
    let cancel = CancellationToken::new();
    // Let the runtime's workers start and allocate what they allocate once.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    let before = live_bytes();

    let registry = Registry::new();
    let mut tasks = Vec::new();
    let mut peer = None;
    rt.block_on(async {
        match setup {
            Setup::Bare => {
                for _ in &names {
                    tasks.push(tokio::spawn(idle_body(cancel.clone())));
                }
            }
            Setup::Ours => {
                // As `#[supervised]` expands: one supervisor shared by every
                // call (the expansion keeps it in a per-fn static) and a
                // `&'static str` name (the attribute's literal).
                let supervisor: &'static Supervisor =
                    Box::leak(Box::new(Supervisor::new().registry(&registry)));
                for name in static_names {
                    let cancel = cancel.clone();
                    tasks.push(tokio::spawn(async move {
                        let _ = supervisor.run(cancel, name, idle_body).await;
                    }));
                }
            }
            Setup::Peer => {
                let mut builder = SupervisorBuilder::new().with_unlimited_restarts();
                for name in &names {
                    builder = builder.with_task(name, IdlePeerTask);
                }
                let handle = builder.spawn();
                loop {
                    let statuses = handle.task_statuses().await.unwrap();
                    if statuses.len() == SUBSYSTEMS
                        && statuses.values().all(|s| *s == TaskStatus::Running)
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                peer = Some(handle);
            }
        }
        // Every body has been polled once and is parked on its timer.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let after = live_bytes();

    // Idle: the main thread sleeps, the runtime has nothing to do.
    let cpu_before = process_cpu();
    let (wakeups_before, busy_before) = worker_activity(&rt);
    std::thread::sleep(IDLE_INTERVAL);
    let (wakeups_after, busy_after) = worker_activity(&rt);
    let cpu = process_cpu() - cpu_before;

    rt.block_on(async {
        cancel.cancel();
        for task in tasks {
            task.await.unwrap();
        }
        if let Some(handle) = peer {
            handle.shutdown().await.unwrap();
        }
    });
    drop(registry);
    drop(rt);
    IdleFigures {
        bytes_per_subsystem: (after as f64 - before as f64) / SUBSYSTEMS as f64,
        cpu_per_second: cpu / IDLE_INTERVAL.as_secs() as u32,
        worker_wakeups: wakeups_after - wakeups_before,
        worker_busy: busy_after - busy_before,
    }
}

// ---- 5b. panic-to-restart latency ------------------------------------------------------

fn restart_latency(peer: bool) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    rt.block_on(async {
        if peer {
            let done = Arc::new(tokio::sync::Notify::new());
            let handle = SupervisorBuilder::new()
                .with_unlimited_restarts()
                .with_base_restart_delay(Duration::ZERO)
                .with_max_restart_delay(Duration::ZERO)
                .with_restart_jitter(0.0)
                .with_task("restart", PanickingPeerTask(timeline.clone(), done.clone()))
                .spawn();
            done.notified().await;
            handle.shutdown().await.unwrap();
        } else {
            let registry = Registry::new();
            let timeline = timeline.clone();
            let _ = Supervisor::new()
                .registry(&registry)
                .initial_backoff(Duration::ZERO)
                .max_backoff(Duration::ZERO)
                .run(CancellationToken::new(), "restart", move |_cancel| {
                    let timeline = timeline.clone();
                    async move { Timeline::run(&timeline) }
                })
                .await;
        }
    });
    let t = timeline.lock().unwrap();
    assert_eq!(t.panics.len(), RESTARTS);
    t.latencies()
}

// ---- 4b. snapshot and liveness rendering ----------------------------------------------

fn registry_of(n: usize) -> Registry {
    // Past the default cap of 10,000 names on purpose.
    let registry = Registry::with_max_subsystems(n);
    for i in 0..n {
        let sub = registry.subsystem(&format!("subsystem-{i:06}"));
        sub.declare_tick(Some(Duration::from_secs(30)), None);
        sub.beat();
    }
    registry
}

fn time_snapshot(n: usize, runs: usize) -> Duration {
    let registry = registry_of(n);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let snapshot = registry.snapshot();
        times.push(start.elapsed());
        assert_eq!(snapshot.len(), n);
    }
    median(times)
}

fn time_liveness(n: usize, runs: usize) -> (Duration, usize) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let registry = registry_of(n);
    let router: axum::Router = supervised::http::RouterOptions::new()
        .registry(&registry)
        .router();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut times = Vec::new();
    let mut len = 0;
    for _ in 0..runs {
        let router = router.clone();
        let start = std::time::Instant::now();
        let body = rt.block_on(async move {
            let request = axum::http::Request::get(supervised::http::LIVENESS_PATH)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap().to_bytes()
        });
        times.push(start.elapsed());
        len = body.len();
    }
    (median(times), len)
}

// ---- report -------------------------------------------------------------------------

fn main() {
    if !invoked_as_bench("scale") {
        return;
    }
    quiet_restart_panics();

    println!("== scale: {SUBSYSTEMS} idle subsystems, 2 worker threads ==");
    let mut idle = Vec::new();
    for setup in [Setup::Bare, Setup::Ours, Setup::Peer] {
        let f = idle_setup(setup);
        println!(
            "{:>18}: {:8.0} heap bytes per subsystem, idle CPU {:?} per second (process), worker wakeups {} and busy time {:?} in {:?} idle",
            setup.name(),
            f.bytes_per_subsystem,
            f.cpu_per_second,
            f.worker_wakeups,
            f.worker_busy,
            IDLE_INTERVAL
        );
        idle.push((setup, f));
    }
    let get = |s: Setup| &idle.iter().find(|(x, _)| *x == s).unwrap().1;
    let (bare, ours, peer) = (get(Setup::Bare), get(Setup::Ours), get(Setup::Peer));
    let ours_extra = ours.bytes_per_subsystem - bare.bytes_per_subsystem;
    let peer_extra = peer.bytes_per_subsystem - bare.bytes_per_subsystem;
    println!(
        "4. memory beyond the body: supervised {ours_extra:.0} B/subsystem (budget <= 1024 B): {}",
        verdict(ours_extra <= 1024.0)
    );
    println!(
        "5. memory beyond the body: task-supervisor {peer_extra:.0} B/subsystem; supervised / task-supervisor = {:.2}x (budget < 1): {}",
        ours_extra / peer_extra,
        verdict(ours_extra < peer_extra)
    );
    let idle_budget = Duration::from_millis(1);
    // Where our bytes go: the registry entry alone, and the future sizes.
    let names: Vec<String> = (0..SUBSYSTEMS).map(|i| format!("entry-{i:05}")).collect();
    let before = live_bytes();
    let registry = Registry::new();
    for name in &names {
        registry.subsystem(name);
    }
    let entry = (live_bytes() - before) as f64 / SUBSYSTEMS as f64;
    drop(registry);
    let supervisor = Supervisor::new();
    let run = supervisor.run(CancellationToken::new(), "size", idle_body);
    let body = idle_body(CancellationToken::new());
    let annotated = annotated_idle_body(CancellationToken::new());
    println!(
        "   breakdown: registry entry {entry:.0} B/subsystem (Registry::subsystem alone); future sizes: body {} B, Supervisor::run(body) {} B, the same body under #[supervised] {} B (the body is boxed per run inside both)",
        std::mem::size_of_val(&body),
        std::mem::size_of_val(&run),
        std::mem::size_of_val(&annotated)
    );
    drop((run, body, annotated));
    println!(
        "4. idle CPU: supervised {:?}/s, bare {:?}/s (budget ~0, taken as <= 1 ms/s): {}",
        ours.cpu_per_second,
        bare.cpu_per_second,
        verdict(ours.cpu_per_second <= idle_budget)
    );
    println!(
        "5. idle CPU: task-supervisor {:?}/s (budget: supervised <= task-supervisor, both ~0): {}",
        peer.cpu_per_second,
        verdict(ours.cpu_per_second <= peer.cpu_per_second.max(idle_budget))
    );
    println!(
        "5. idle runtime work: worker wakeups supervised {} / task-supervisor {} / bare {}, busy {:?} / {:?} / {:?} (budget: supervised <= task-supervisor): {}",
        ours.worker_wakeups,
        peer.worker_wakeups,
        bare.worker_wakeups,
        ours.worker_busy,
        peer.worker_busy,
        bare.worker_busy,
        verdict(ours.worker_wakeups <= peer.worker_wakeups && ours.worker_busy <= peer.worker_busy)
    );
    println!(
        "   control: one task ticking every 10 ms woke the workers {} times in 1 s",
        control_wakeups()
    );

    println!("\n== panic-to-restart latency, zero backoff, {RESTARTS} restarts ==");
    let ours_lat = restart_latency(false);
    let peer_lat = restart_latency(true);
    let (ours_med, peer_med) = (median(ours_lat.clone()), median(peer_lat.clone()));
    println!(
        "        supervised: median {ours_med:?}, p99 {:?}",
        percentile(ours_lat, 0.99)
    );
    println!(
        "   task-supervisor: median {peer_med:?}, p99 {:?}",
        percentile(peer_lat, 0.99)
    );
    println!(
        "5. restart latency: supervised / task-supervisor = {:.2}x (budget <= 1): {}",
        ours_med.as_secs_f64() / peer_med.as_secs_f64(),
        verdict(ours_med <= peer_med)
    );

    println!("\n== snapshot and liveness rendering ==");
    let snap = time_snapshot(100_000, 7);
    println!(
        "4. snapshot() over 100,000 subsystems: median {snap:?} (budget <= 50 ms): {}",
        verdict(snap <= Duration::from_millis(50))
    );
    {
        // For the diagnosis: what sorting and copying 100,000 names costs alone.
        let names: Vec<String> = (0..100_000)
            .map(|i| format!("subsystem-{:06}", (i * 7919) % 100_000))
            .collect();
        let start = std::time::Instant::now();
        let mut copies: Vec<String> = names.to_vec();
        let copy = start.elapsed();
        copies.sort_unstable();
        let sort = start.elapsed() - copy;
        println!(
            "   breakdown: copying 100,000 names into Strings {copy:?}, sorting them {sort:?}"
        );
    }
    {
        let (render, len) = time_liveness(SUBSYSTEMS, 11);
        println!(
            "4. GET /admin/liveness for 10,000 subsystems ({len} bytes of JSON): median {render:?} (budget <= 20 ms): {}",
            verdict(render <= Duration::from_millis(20))
        );
    }
}
