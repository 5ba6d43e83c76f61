//! Benchmark 6 of BENCHMARKS.md: a `Group` at scale, side by side in one
//! run with `task-supervisor` (0.5, one supervisor, dynamic tasks) and
//! `tokio-graceful-shutdown` (0.20, nested subsystems):
//!
//! - add 10,000 children to a running tree and remove them again;
//! - heap per idle child (a `#[supervised]` fn) against a `task-supervisor`
//!   task;
//! - shutdown of 10,000 idle children, given to the builder (stopped one
//!   at a time, in reverse order) and added at run time (stopped together);
//! - panic-to-restart latency, zero backoff, of a group's child.
//!
//! Run: `cargo bench -p supervised-bench --bench group`. A plain harness:
//! times from `std::time::Instant`, memory from the counting allocator,
//! each figure the median of `ROUNDS` rounds, the setups interleaved
//! within a round so drift hits them alike.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    idle, invoked_as_bench, live_bytes, median, percentile, quiet_restart_panics, runtime, verdict,
    PanickingPeerTask, PeerTask, Started, Timeline, RESTARTS,
};
use supervised::{Backoff, CancellationToken, Child, Group, Registry, Restart};
use task_supervisor::SupervisorBuilder;
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

const CHILDREN: usize = 10_000;
const ROUNDS: usize = 5;

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

fn names() -> Vec<String> {
    (0..CHILDREN).map(|i| format!("tenant-{i:05}")).collect()
}

#[supervised::supervised(name = "group-bench-child")]
async fn supervised_child(started: Arc<Started>, cancel: CancellationToken) {
    started.one();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

fn child(name: &str, started: &Arc<Started>) -> Child {
    let started = Arc::clone(started);
    Child::new(name, move |cancel| {
        supervised_child(Arc::clone(&started), cancel)
    })
}

/// A nested `tokio-graceful-shutdown` subsystem that runs `idle` (a macro:
/// the crate's bound wants the closure's own type, which an `impl` return
/// type hides).
macro_rules! nested {
    ($started:expr) => {{
        let started = Arc::clone($started);
        async move |s: &mut SubsystemHandle| {
            idle(&started, s.create_cancellation_token()).await;
            Ok::<(), BoxedError>(())
        }
    }};
}

// ---- 6a. add and remove 10,000 children --------------------------------------------

/// Time to add every child to a running tree and see all of them started,
/// then to remove them one by one (each removal awaited).
#[derive(Clone, Copy)]
struct Dynamic {
    add: Duration,
    remove: Duration,
}

impl Dynamic {
    fn total(self) -> Duration {
        self.add + self.remove
    }
}

fn dynamic_ours(names: &[String]) -> Dynamic {
    runtime().block_on(async {
        let registry = Registry::new();
        let group = Group::new("dynamic").registry(&registry);
        let handle = group.handle();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(group.run(cancel.clone()));
        let started = Started::new(names.len());
        let t = Instant::now();
        for name in names {
            handle.add(child(name, &started)).unwrap();
        }
        started.wait().await;
        let add = t.elapsed();
        let t = Instant::now();
        for name in names {
            handle.remove(name).await.unwrap();
        }
        let remove = t.elapsed();
        assert!(registry.snapshot().iter().all(|s| s.name == "dynamic"));
        cancel.cancel();
        assert!(run.await.unwrap().is_clean());
        Dynamic { add, remove }
    })
}

fn dynamic_task_supervisor(names: &[String]) -> Dynamic {
    runtime().block_on(async {
        let handle = SupervisorBuilder::new().with_unlimited_restarts().spawn();
        let started = Started::new(names.len());
        let t = Instant::now();
        for name in names {
            handle
                .add_task(name, PeerTask(Arc::clone(&started)))
                .await
                .unwrap();
        }
        started.wait().await;
        let add = t.elapsed();
        let t = Instant::now();
        for name in names {
            handle.kill_task(name).await.unwrap();
        }
        let remove = t.elapsed();
        let _ = handle.shutdown().await;
        Dynamic { add, remove }
    })
}

fn dynamic_graceful_shutdown(names: &[String]) -> Dynamic {
    let names = names.to_vec();
    let figures = Arc::new(Mutex::new(None));
    let out = Arc::clone(&figures);
    runtime().block_on(async move {
        Toplevel::<BoxedError>::new(async move |s: &mut SubsystemHandle| {
            let started = Started::new(names.len());
            let t = Instant::now();
            let mut children = Vec::with_capacity(names.len());
            for name in &names {
                children.push(s.start(SubsystemBuilder::new(name.as_str(), nested!(&started))));
            }
            started.wait().await;
            let add = t.elapsed();
            let t = Instant::now();
            for child in children {
                child.initiate_shutdown();
                child.join().await.unwrap();
            }
            let remove = t.elapsed();
            *out.lock().unwrap() = Some(Dynamic { add, remove });
            s.request_shutdown();
        })
        .handle_shutdown_requests(Duration::from_secs(60))
        .await
        .unwrap();
    });
    let dynamic = figures.lock().unwrap().take();
    dynamic.unwrap()
}

// ---- 6b. heap per idle child; 6c. shutdown of 10,000 ------------------------------

/// Heap per idle child (everything the tree holds for it, its body
/// included), and the time from asking for a shutdown to the tree's end.
#[derive(Clone, Copy)]
struct Idle {
    bytes_per_child: f64,
    shutdown: Duration,
}

fn idle_ours(names: &[String]) -> Idle {
    runtime().block_on(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
        let registry = Registry::new();
        let started = Started::new(names.len());
        let mut group = Group::new("idle").registry(&registry);
        for name in names {
            group = group.spec(child(name, &started));
        }
        let handle = group.handle();
        let run = tokio::spawn(group.run(CancellationToken::new()));
        started.wait().await;
        // Every child has been polled once and is parked on its timer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = live_bytes() as f64 - before as f64;
        let t = Instant::now();
        handle.shutdown();
        let report = run.await.unwrap();
        let shutdown = t.elapsed();
        assert!(report.is_clean() && report.unstopped.is_empty());
        Idle {
            bytes_per_child: bytes / names.len() as f64,
            shutdown,
        }
    })
}

/// 6e: the time to shut down a fleet of `names` children added at run
/// time through the handle (a tenant worker each), which stop together.
fn fleet_ours(names: &[String]) -> Duration {
    runtime().block_on(async {
        let registry = Registry::new();
        let group = Group::new("fleet").registry(&registry);
        let handle = group.handle();
        let run = tokio::spawn(group.run(CancellationToken::new()));
        let started = Started::new(names.len());
        for name in names {
            handle.add(child(name, &started)).unwrap();
        }
        started.wait().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        handle.shutdown();
        let report = run.await.unwrap();
        let shutdown = t.elapsed();
        assert!(report.is_clean() && report.unstopped.is_empty());
        shutdown
    })
}

fn idle_task_supervisor(names: &[String]) -> Idle {
    runtime().block_on(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
        let started = Started::new(names.len());
        let mut builder = SupervisorBuilder::new().with_unlimited_restarts();
        for name in names {
            builder = builder.with_task(name, PeerTask(Arc::clone(&started)));
        }
        let handle = builder.spawn();
        started.wait().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = live_bytes() as f64 - before as f64;
        let t = Instant::now();
        let _ = handle.shutdown().await;
        Idle {
            bytes_per_child: bytes / names.len() as f64,
            shutdown: t.elapsed(),
        }
    })
}

fn idle_graceful_shutdown(names: &[String]) -> Idle {
    let names = names.to_vec();
    let count = names.len();
    runtime().block_on(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
        let started = Started::new(count);
        let shutdown_token = CancellationToken::new();
        let in_tree = Arc::clone(&started);
        let toplevel = Toplevel::<BoxedError>::new_with_shutdown_token(
            async move |s: &mut SubsystemHandle| {
                for name in &names {
                    s.start(SubsystemBuilder::new(name.as_str(), nested!(&in_tree)));
                }
            },
            shutdown_token.clone(),
        );
        let tree = tokio::spawn(toplevel.handle_shutdown_requests(Duration::from_secs(60)));
        started.wait().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = live_bytes() as f64 - before as f64;
        let t = Instant::now();
        shutdown_token.cancel();
        tree.await.unwrap().unwrap();
        Idle {
            bytes_per_child: bytes / count as f64,
            shutdown: t.elapsed(),
        }
    })
}

// ---- 6d. panic-to-restart latency of a group's child -----------------------------

fn restart_latency(peer: bool) -> Vec<Duration> {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    runtime().block_on(async {
        let done = Arc::new(tokio::sync::Notify::new());
        if peer {
            let handle = SupervisorBuilder::new()
                .with_unlimited_restarts()
                .with_base_restart_delay(Duration::ZERO)
                .with_max_restart_delay(Duration::ZERO)
                .with_restart_jitter(0.0)
                .with_task("restart", PanickingPeerTask(timeline.clone(), done.clone()))
                .spawn();
            done.notified().await;
            let _ = handle.shutdown().await;
        } else {
            let registry = Registry::new();
            let (runs, finished) = (timeline.clone(), done.clone());
            let group = Group::new("restarts")
                .registry(&registry)
                .backoff(Backoff::new(Duration::ZERO, Duration::ZERO))
                .max_restarts(u32::MAX, Duration::from_secs(1))
                .spec(
                    Child::new("restart", move |_cancel| {
                        let (runs, finished) = (runs.clone(), finished.clone());
                        async move {
                            Timeline::run(&runs);
                            finished.notify_one();
                        }
                    })
                    .restart(Restart::Transient),
                );
            let handle = group.handle();
            let run = tokio::spawn(group.run(CancellationToken::new()));
            done.notified().await;
            handle.shutdown();
            run.await.unwrap();
        }
    });
    let t = timeline.lock().unwrap();
    assert_eq!(t.panics.len(), RESTARTS);
    t.latencies()
}

fn ratio(ours: Duration, peer: Duration) -> f64 {
    ours.as_secs_f64() / peer.as_secs_f64()
}

fn main() {
    if !invoked_as_bench("group") {
        return;
    }
    quiet_restart_panics();
    let names = names();

    println!("== 6a. add + remove {CHILDREN} children, {ROUNDS} interleaved rounds (medians) ==");
    let (mut ours, mut ts, mut tgs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(dynamic_ours(&names));
        ts.push(dynamic_task_supervisor(&names));
        tgs.push(dynamic_graceful_shutdown(&names));
    }
    let med = |v: &[Dynamic], f: fn(Dynamic) -> Duration| median(v.iter().map(|d| f(*d)).collect());
    for (label, v) in [
        ("supervised Group", &ours),
        ("task-supervisor", &ts),
        ("tokio-graceful-shutdown", &tgs),
    ] {
        println!(
            "{label:>24}: add {:?}, remove {:?}, total {:?}",
            med(v, |d| d.add),
            med(v, |d| d.remove),
            med(v, Dynamic::total)
        );
    }
    let (o, t, g) = (
        med(&ours, Dynamic::total),
        med(&ts, Dynamic::total),
        med(&tgs, Dynamic::total),
    );
    println!(
        "6a. add + remove: Group / task-supervisor = {:.2}x, Group / tokio-graceful-shutdown = {:.2}x (budget <= 1 each): {}",
        ratio(o, t),
        ratio(o, g),
        verdict(o <= t && o <= g)
    );

    println!("\n== 6b/6c. {CHILDREN} idle children: heap per child, shutdown ({ROUNDS} interleaved rounds) ==");
    let (mut ours, mut ts, mut tgs, mut fleet) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(idle_ours(&names));
        ts.push(idle_task_supervisor(&names));
        tgs.push(idle_graceful_shutdown(&names));
        fleet.push(fleet_ours(&names));
    }
    let bytes = |v: &[Idle]| {
        let mut b: Vec<f64> = v.iter().map(|i| i.bytes_per_child).collect();
        b.sort_by(f64::total_cmp);
        b[b.len() / 2]
    };
    let stop = |v: &[Idle]| median(v.iter().map(|i| i.shutdown).collect());
    for (label, v) in [
        ("supervised Group", &ours),
        ("task-supervisor", &ts),
        ("tokio-graceful-shutdown", &tgs),
    ] {
        println!(
            "{label:>24}: {:.0} B per idle child, shutdown {:?}",
            bytes(v),
            stop(v)
        );
    }
    println!(
        "6b. heap per idle child: Group / task-supervisor = {:.2}x (budget <= 1): {}",
        bytes(&ours) / bytes(&ts),
        verdict(bytes(&ours) <= bytes(&ts))
    );
    println!(
        "6c. shutdown of {CHILDREN}: Group / tokio-graceful-shutdown = {:.2}x (budget <= 1), Group {:?} (sanity < 100 ms): {}",
        ratio(stop(&ours), stop(&tgs)),
        stop(&ours),
        verdict(stop(&ours) <= stop(&tgs) && stop(&ours) < Duration::from_millis(100))
    );

    let fleet = median(fleet);
    println!(
        "6e. shutdown of {CHILDREN} added at run time: Group {fleet:?}; Group / task-supervisor = {:.2}x, Group / tokio-graceful-shutdown = {:.2}x (budget <= 1 each): {}",
        ratio(fleet, stop(&ts)),
        ratio(fleet, stop(&tgs)),
        verdict(fleet <= stop(&ts) && fleet <= stop(&tgs))
    );

    println!("\n== 6d. panic-to-restart latency of a child, zero backoff, {RESTARTS} restarts ==");
    let ours = restart_latency(false);
    let peer = restart_latency(true);
    let (o, p) = (median(ours.clone()), median(peer.clone()));
    println!(
        "        supervised Group: median {o:?}, p99 {:?}",
        percentile(ours, 0.99)
    );
    println!(
        "         task-supervisor: median {p:?}, p99 {:?}",
        percentile(peer, 0.99)
    );
    println!(
        "6d. restart latency: Group / task-supervisor = {:.2}x (budget <= 1): {}",
        ratio(o, p),
        verdict(o <= p)
    );
}
