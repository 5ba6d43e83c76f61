//! Benchmark 7 of BENCHMARKS.md: a fleet of 100,000 children in one group,
//! in one run:
//!
//! - 7a. the time to add 100,000 children to a running group (until all
//!   started) and the heap per child, registry entry included, against
//!   `task-supervisor` (0.5) and `tokio-graceful-shutdown` (0.20) with
//!   100,000 tasks;
//! - 7b. `/admin/liveness` with 10 failed of 100,000: the filtered answer
//!   (`state=failed`) and the summary against the unfiltered answer, and
//!   the status page's poll in bytes against the unfiltered answer;
//! - 7c. `/metrics` of the fleet (counted in its group) against the same
//!   fleet with a series each (what every child had before), in time and
//!   series.
//!
//! Run: `cargo bench -p supervised-bench --bench fleet`. A plain harness,
//! as `group`'s: times from `std::time::Instant`, memory from the counting
//! allocator, medians of `ROUNDS` interleaved rounds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use common::{idle, invoked_as_bench, live_bytes, median, runtime, verdict, PeerTask, Started};
use http_body_util::BodyExt;
use supervised::http::RouterOptions;
use supervised::{CancellationToken, Child, Group, Registry, Supervisor};
use task_supervisor::SupervisorBuilder;
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
use tower::ServiceExt;

const CHILDREN: usize = 100_000;
const FAILED: usize = 10;
const ROUNDS: usize = 3;

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

fn names() -> Vec<String> {
    (0..CHILDREN).map(|i| format!("tenant/{i:06}")).collect()
}

/// The time to add every child and see it started, and the heap per child.
#[derive(Clone, Copy)]
struct Added {
    add: Duration,
    bytes_per_child: f64,
}

// ---- 7a ------------------------------------------------------------------------

fn add_ours(names: &[String]) -> Added {
    runtime().block_on(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
        let registry = Registry::new();
        let group = Group::new("fleet").registry(&registry);
        let handle = group.handle();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(group.run(cancel.clone()));
        let started = Started::new(names.len());
        let t = Instant::now();
        for name in names {
            let started = Arc::clone(&started);
            handle
                .add(Child::new(name.as_str(), move |cancel| {
                    let started = Arc::clone(&started);
                    async move { idle(&started, cancel).await }
                }))
                .unwrap();
        }
        started.wait().await;
        let add = t.elapsed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = live_bytes() as f64 - before as f64;
        assert_eq!(registry.len(), names.len() + 1);
        cancel.cancel();
        assert!(run.await.unwrap().is_clean());
        Added {
            add,
            bytes_per_child: bytes / names.len() as f64,
        }
    })
}

fn add_task_supervisor(names: &[String]) -> Added {
    runtime().block_on(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
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
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = live_bytes() as f64 - before as f64;
        let _ = handle.shutdown().await;
        Added {
            add,
            bytes_per_child: bytes / names.len() as f64,
        }
    })
}

fn add_graceful_shutdown(names: &[String]) -> Added {
    let names = names.to_vec();
    let count = names.len();
    let figures = Arc::new(std::sync::Mutex::new(None));
    let out = Arc::clone(&figures);
    runtime().block_on(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = live_bytes();
        Toplevel::<BoxedError>::new(async move |s: &mut SubsystemHandle| {
            let started = Started::new(count);
            let t = Instant::now();
            for name in &names {
                let started = Arc::clone(&started);
                s.start(SubsystemBuilder::new(
                    name.as_str(),
                    async move |s: &mut SubsystemHandle| {
                        idle(&started, s.create_cancellation_token()).await;
                        Ok::<(), BoxedError>(())
                    },
                ));
            }
            started.wait().await;
            let add = t.elapsed();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let bytes = live_bytes() as f64 - before as f64;
            *out.lock().unwrap() = Some(Added {
                add,
                bytes_per_child: bytes / count as f64,
            });
            s.request_shutdown();
        })
        .handle_shutdown_requests(Duration::from_secs(120))
        .await
        .unwrap();
    });
    let added = figures.lock().unwrap().take();
    added.unwrap()
}

// ---- 7b, 7c: the reports over a fleet --------------------------------------------

/// A running group of `CHILDREN` idle tenants with an hourly tick,
/// `FAILED` of them failed for good (their supervisor gave up); `own`
/// gives each a series.
struct Fleet {
    registry: Registry,
    cancel: CancellationToken,
}

async fn fleet(names: &[String], own: bool) -> Fleet {
    let registry = Registry::new();
    let group = Group::new("fleet").registry(&registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    tokio::spawn(group.run(cancel.clone()));
    let started = Started::new(names.len());
    for (i, name) in names.iter().enumerate() {
        let started = Arc::clone(&started);
        let fails = i % (CHILDREN / FAILED) == 7;
        let (registry, name_) = (registry.clone(), name.clone());
        handle
            .add(
                Child::new(name.as_str(), move |cancel: CancellationToken| {
                    let (started, registry, name) =
                        (Arc::clone(&started), registry.clone(), name_.clone());
                    async move {
                        if fails {
                            let _ = Supervisor::new()
                                .registry(&registry)
                                .max_restarts(0, Duration::from_secs(60))
                                .run(cancel.clone(), &name, |_| async { Err::<(), _>("bad row") })
                                .await;
                        }
                        idle(&started, cancel).await
                    }
                })
                .own_metrics(own),
            )
            .unwrap();
    }
    started.wait().await;
    // Each declares an hourly tick and beats once, as a tenant's worker
    // under the attribute does at its first iteration: the reports then
    // judge each one's staleness, and the service is ready (until every
    // ticked entry has beaten once, readiness reads every entry; see
    // BENCHMARKS.md).
    for name in names {
        if let Some(entry) = registry.get(name) {
            entry.declare_tick(Some(Duration::from_secs(3600)), None);
            entry.beat();
        }
    }
    Fleet { registry, cancel }
}

async fn get(registry: &Registry, path: &str) -> (Duration, usize) {
    let router: axum::Router = RouterOptions::new().registry(registry).router();
    let t = Instant::now();
    let response = router
        .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len();
    (t.elapsed(), bytes)
}

fn series(registry: &Registry) -> usize {
    supervised::metrics::encode_prometheus_text(registry)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn main() {
    if !invoked_as_bench("fleet") {
        return;
    }
    let names = names();
    // `FLEET_BENCH=reports`: only 7b and 7c (for a profiler).
    if std::env::var("FLEET_BENCH").as_deref() != Ok("reports") {
        add_figures(&names);
    }
    report_figures(&names);
}

fn add_figures(names: &[String]) {
    println!(
        "== 7a. add {CHILDREN} children to one group, {ROUNDS} interleaved rounds (medians) =="
    );
    let (mut ours, mut ts, mut tgs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(add_ours(names));
        ts.push(add_task_supervisor(names));
        tgs.push(add_graceful_shutdown(names));
    }
    let med_add = |v: &[Added]| median(v.iter().map(|a| a.add).collect());
    let med_bytes = |v: &[Added]| {
        let mut b: Vec<f64> = v.iter().map(|a| a.bytes_per_child).collect();
        b.sort_by(f64::total_cmp);
        b[b.len() / 2]
    };
    for (label, v) in [
        ("supervised Group", &ours),
        ("task-supervisor", &ts),
        ("tokio-graceful-shutdown", &tgs),
    ] {
        println!(
            "{label:>24}: add {:?}, {:.0} B per child",
            med_add(v),
            med_bytes(v)
        );
    }
    println!(
        "ratios: add {:.2}x task-supervisor, {:.2}x tokio-graceful-shutdown; heap {:.2}x, {:.2}x",
        ratio(med_add(&ours), med_add(&ts)),
        ratio(med_add(&ours), med_add(&tgs)),
        med_bytes(&ours) / med_bytes(&ts),
        med_bytes(&ours) / med_bytes(&tgs),
    );
}

fn report_figures(names: &[String]) {
    println!("\n== 7b, 7c. the reports over {CHILDREN} children, {FAILED} failed ({ROUNDS} rounds, medians) ==");
    let rt = runtime();
    rt.block_on(async {
        let plain = fleet(names, false).await;
        let owned = fleet(names, true).await;
        // Let the failing ones give up.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (mut all, mut failed, mut summary, mut poll, mut metrics_fleet, mut metrics_each) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut all_bytes, mut poll_bytes, mut failed_found) = (0, 0, 0);
        for _ in 0..ROUNDS {
            let (t, b) = get(&plain.registry, "/admin/liveness").await;
            all.push(t);
            all_bytes = b;
            let (t, b) = get(&plain.registry, "/admin/liveness?state=failed").await;
            failed.push(t);
            failed_found = b;
            summary.push(get(&plain.registry, "/admin/liveness/summary").await.0);
            let t = Instant::now();
            let mut bytes = 0;
            for path in [
                "/admin/liveness/summary?limit=20",
                "/admin/liveness?state=failed%2Cbacking_off&limit=100",
                "/admin/liveness?stale=true&limit=100",
                "/admin/liveness?limit=200",
            ] {
                bytes += get(&plain.registry, path).await.1;
            }
            poll.push(t.elapsed());
            poll_bytes = bytes;
            metrics_fleet.push(get(&plain.registry, "/metrics").await.0);
            metrics_each.push(get(&owned.registry, "/metrics").await.0);
        }
        let (all, failed, summary, poll) = (median(all), median(failed), median(summary), median(poll));
        let (mf, me) = (median(metrics_fleet), median(metrics_each));
        println!("unfiltered /admin/liveness: {all:?}, {all_bytes} bytes");
        println!(
            "state=failed ({failed_found} bytes): {failed:?}, {:.4}x (budget <= 0.05x: {})",
            ratio(failed, all),
            verdict(ratio(failed, all) <= 0.05)
        );
        println!(
            "summary: {summary:?}, {:.5}x (budget <= 0.1x: {})",
            ratio(summary, all),
            verdict(ratio(summary, all) <= 0.1)
        );
        println!(
            "status page poll (4 requests): {poll:?}, {poll_bytes} bytes, {:.4}x the bytes (budget <= 0.1x: {})",
            poll_bytes as f64 / all_bytes as f64,
            verdict(poll_bytes * 10 <= all_bytes)
        );
        let (sf, se) = (series(&plain.registry), series(&owned.registry));
        println!(
            "/metrics, fleet in its group: {mf:?}, {sf} series; a series each: {me:?}, {se} series; {:.5}x the time (budget <= 0.05x: {}), series <= 500: {}",
            ratio(mf, me),
            verdict(ratio(mf, me) <= 0.05),
            verdict(sf <= 500)
        );
        plain.cancel.cancel();
        owned.cancel.cancel();
    });
}
