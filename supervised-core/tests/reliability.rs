//! Reliability under stalls, storms and herds, on paused time.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{capture, DropCounter};
use supervised_core::{isolate, Registry, StallWatchdog, SubsystemState, Supervisor};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Level;

const SEC: Duration = Duration::from_secs(1);

/// Types a body that never returns normally as a `()` body.
fn unit<F: std::future::Future<Output = ()>>(body: F) -> F {
    body
}

fn warns_about(events: &common::Events, level: Level, subsystem: &str) -> usize {
    events
        .at(level)
        .iter()
        .filter(|e| e.field("subsystem") == Some(subsystem))
        .count()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_watchdog_logs_one_warn_per_stall_and_one_info_per_recovery() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let sweep = registry.subsystem("sweep");
    sweep.declare_tick(Some(Duration::from_secs(10)), None);
    sweep.beat();
    let cancel = CancellationToken::new();
    let watchdog = StallWatchdog::new()
        .registry(&registry)
        .spawn(cancel.clone());

    sleep(Duration::from_secs(50)).await; // stale from t=20 on; 30 scans see it
    assert_eq!(warns_about(&events, Level::WARN, "sweep"), 1);
    let status = sweep.status();
    assert_eq!(
        status.stale_since,
        Some(status.last_beat.unwrap() + Duration::from_secs(20))
    );

    sweep.beat();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(warns_about(&events, Level::INFO, "sweep"), 1);
    assert_eq!(sweep.status().stale_since, None);

    sleep(Duration::from_secs(30)).await; // a second episode
    assert_eq!(warns_about(&events, Level::WARN, "sweep"), 2);
    let warn = events.at(Level::WARN).into_iter().last().unwrap();
    assert_eq!(warn.field("seconds_since_last_beat"), Some("21"));
    assert_eq!(warn.field("tick"), Some("10s"));
    assert_eq!(warn.field("state"), Some("running"));
    cancel.cancel();
    watchdog.await.unwrap();
}

/// A real incident's shape: a 130 s tick with `tick = "30s"`.
async fn slow_tick_scheduler(registry: Registry, name: &'static str, beat_mid_tick: bool) {
    let _ = Supervisor::new()
        .registry(&registry)
        .tick(Duration::from_secs(30))
        .run(CancellationToken::new(), name, move |_| {
            unit(async move {
                loop {
                    for _ in 0..13 {
                        sleep(Duration::from_secs(10)).await; // fire one tenant's jobs
                        if beat_mid_tick {
                            supervised_core::beat();
                        }
                    }
                    supervised_core::beat(); // end of the 130 s tick
                }
            })
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_long_tick_stays_healthy_when_it_beats_mid_tick_and_goes_stale_when_not() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    tokio::spawn(slow_tick_scheduler(
        registry.clone(),
        "beats-mid-tick",
        true,
    ));
    tokio::spawn(slow_tick_scheduler(registry.clone(), "silent-tick", false));
    let cancel = CancellationToken::new();
    let _watchdog = StallWatchdog::new()
        .registry(&registry)
        .spawn(cancel.clone());

    let mut worst_gap_seen = Duration::ZERO;
    for _ in 0..60 {
        sleep(Duration::from_secs(7)).await;
        let healthy = registry.subsystem("beats-mid-tick").status();
        assert!(healthy.healthy, "{healthy:?}");
        worst_gap_seen = worst_gap_seen.max(healthy.since_last_beat.unwrap_or_default());
    }
    assert!(worst_gap_seen < Duration::from_secs(60));
    assert_eq!(warns_about(&events, Level::WARN, "beats-mid-tick"), 0);

    // 420 s: the silent one beat at 130, 260, 390 and was stale from 60 to
    // 130, 190 to 260 and 320 to 390: three episodes, three WARNs.
    assert_eq!(warns_about(&events, Level::WARN, "silent-tick"), 3);
    assert_eq!(warns_about(&events, Level::INFO, "silent-tick"), 3);
    cancel.cancel();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn restart_on_stall_drops_the_stuck_body_and_restarts_it() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let drops = DropCounter::default();
    let d = drops.clone();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let cancel = CancellationToken::new();
    let sup = Supervisor::new()
        .registry(&registry)
        .tick(Duration::from_secs(5))
        .restart_on_stall(true);
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(c, "stuck", move |_| {
            let token = d.token();
            let run = r.fetch_add(1, Ordering::SeqCst);
            unit(async move {
                let _token = token;
                for _ in 0..2 {
                    sleep(Duration::from_secs(5)).await;
                    supervised_core::beat();
                }
                if run < 2 {
                    std::future::pending::<()>().await; // a deadlock
                }
                loop {
                    sleep(Duration::from_secs(5)).await;
                    supervised_core::beat();
                }
            })
        })
        .await
    });
    // Run 0: beats at 5, 10; stalls; dropped at 20; backoff 1 s.
    // Run 1: starts 21, beats at 26, 31; dropped at 41; backoff 2 s.
    // Run 2: starts 43 and keeps beating.
    sleep(Duration::from_secs(42)).await;
    assert_eq!(drops.dropped(), 2, "both stuck bodies were dropped");
    let status = registry.subsystem("stuck").status();
    assert_eq!(
        (status.restarts, status.state),
        (2, SubsystemState::BackingOff)
    );
    assert_eq!(
        status.last_error.as_deref(),
        Some("stalled: no heartbeat for 10s")
    );
    let stalls: Vec<_> = events
        .at(Level::ERROR)
        .into_iter()
        .filter(|e| e.field("kind") == Some("stall"))
        .collect();
    assert_eq!(stalls.len(), 2);
    sleep(Duration::from_secs(60)).await;
    let status = registry.subsystem("stuck").status();
    assert_eq!(
        (status.restarts, status.state, status.healthy),
        (2, SubsystemState::Running, true)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(drops.created(), drops.dropped());
}

#[tokio::test(start_paused = true)]
async fn isolate_costs_one_item_not_the_subsystem() {
    let registry = Registry::new();
    let completed = Arc::new(Mutex::new(Vec::new()));
    let done = completed.clone();
    let sup = Supervisor::new().registry(&registry);
    let exit = sup
        .run(CancellationToken::new(), "fan-out", move |_| {
            let done = done.clone();
            async move {
                let jobs = (0..20u32).map(|tenant| {
                    let done = done.clone();
                    isolate(format!("tenant-{tenant}"), async move {
                        sleep(Duration::from_millis(u64::from(tenant) * 10)).await;
                        if tenant % 3 == 0 {
                            panic!("tenant {tenant} has bad data");
                        }
                        done.lock().unwrap().push(tenant);
                    })
                });
                let results = futures_util::future::join_all(jobs).await;
                let failed: Vec<String> = results
                    .into_iter()
                    .filter_map(Result::err)
                    .map(|e| e.label)
                    .collect();
                assert_eq!(failed.len(), 7);
                assert_eq!(failed[0], "tenant-0");
            }
        })
        .await;
    assert!(matches!(exit, supervised_core::Exit::Completed(())));
    let mut completed = completed.lock().unwrap().clone();
    completed.sort_unstable();
    let healthy: Vec<u32> = (0..20).filter(|t| t % 3 != 0).collect();
    assert_eq!(completed, healthy, "every healthy item completed");
    let status = registry.subsystem("fan-out").status();
    assert_eq!((status.item_panics, status.restarts), (7, 0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panic_storm_logs_one_backtrace_then_one_line_summaries() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .max_restarts(9, Duration::from_secs(3600))
        .run(CancellationToken::new(), "stormy", move |_| {
            let run = r.fetch_add(1, Ordering::SeqCst);
            unit(async move {
                // Run 5 completes an iteration before panicking: a new storm.
                if run == 5 {
                    supervised_core::beat();
                }
                panic!("run {run}");
            })
        })
        .await;
    assert!(matches!(exit, supervised_core::Exit::GaveUp(_)));
    let failures: Vec<_> = events
        .at(Level::ERROR)
        .into_iter()
        .filter(|e| e.field("kind") == Some("panic"))
        .collect();
    assert_eq!(failures.len(), 9);
    let with_backtrace: Vec<usize> = failures
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.field("backtrace").unwrap().starts_with("<omitted"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(with_backtrace, [0, 5], "one full backtrace per storm");
    let storm: Vec<&str> = failures.iter().map(|e| e.field("storm").unwrap()).collect();
    assert_eq!(storm, ["1", "2", "3", "4", "5", "1", "2", "3", "4"]);
}

/// Restart instants of `n` subsystems that all fail at the same instants.
async fn herd(n: usize, failures_per_subsystem: u32) -> Vec<Vec<Instant>> {
    let registry = Registry::new();
    let starts: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); n]));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let starts = starts.clone();
        let sup = Supervisor::new().registry(&registry).jitter(true);
        tasks.push(tokio::spawn(async move {
            sup.run(CancellationToken::new(), &format!("herd-{i}"), move |_| {
                let starts = starts.clone();
                async move {
                    let now = Instant::now();
                    let runs = {
                        let mut starts = starts.lock().unwrap();
                        starts[i].push(now);
                        starts[i].len() as u32
                    };
                    if runs > failures_per_subsystem {
                        return;
                    }
                    // One beat so the run counts as a subsystem that beats
                    // (no progress reset), then fail on the next 100 s
                    // boundary: every subsystem fails at the same instant.
                    supervised_core::beat();
                    let elapsed = (now - epoch).as_secs() / 100 * 100 + 100;
                    if runs > 1 {
                        tokio::time::sleep_until(epoch + Duration::from_secs(elapsed)).await;
                    }
                    panic!("shared dependency down");
                }
            })
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(starts).unwrap().into_inner().unwrap()
}

fn spread_ms(restarts: impl Iterator<Item = Duration>) -> (usize, Duration, Duration) {
    let ms: Vec<u128> = restarts.map(|d| d.as_millis()).collect();
    let distinct: BTreeSet<u128> = ms.iter().copied().collect();
    let min = ms.iter().min().copied().unwrap_or(0);
    let max = ms.iter().max().copied().unwrap_or(0);
    (
        distinct.len(),
        Duration::from_millis(min as u64),
        Duration::from_millis(max as u64),
    )
}

#[tokio::test(start_paused = true)]
async fn a_thousand_subsystems_failing_together_do_not_restart_together() {
    const N: usize = 1000;
    // Eight failures each: the first at t=0, then at shared 100 s boundaries,
    // so the 8th restart is drawn at the 30 s cap.
    let starts = herd(N, 8).await;
    let first = spread_ms(starts.iter().map(|s| s[1] - s[0]));
    // Everyone's 8th failure is at t=700 s; its restart is drawn from [15 s, 30 s].
    let earliest = starts.iter().map(|s| s[8]).min().unwrap();
    let at_cap = spread_ms(starts.iter().map(|s| s[8] - earliest));
    println!("herd of {N}: first restart spread over {:?}..{:?} in {} distinct ms; at the cap over {:?}..{:?} in {} distinct ms",
        first.1, first.2, first.0, at_cap.1, at_cap.2, at_cap.0);
    // First restart: [1 s, 1.5 s] has 501 distinct milliseconds; expect
    // most of them used and no millisecond shared by many.
    assert!(first.1 >= SEC && first.2 <= Duration::from_millis(1500));
    assert!(first.0 >= 350, "first restarts bunched into {} ms", first.0);
    assert!(
        at_cap.2 > Duration::from_secs(10),
        "at the cap the spread stays wide: {:?}",
        at_cap.2
    );
    assert!(
        at_cap.0 >= 900,
        "restarts at the cap bunched into {} ms",
        at_cap.0
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn supervising_one_name_twice_and_an_empty_name_are_warned_about() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let sup = Supervisor::new().registry(&registry);
    let cancel = CancellationToken::new();
    let body = |cancel: CancellationToken| async move { cancel.cancelled().await };
    let a = sup.run(cancel.clone(), "twice", body);
    let b = sup.run(cancel.clone(), "twice", body);
    let c = sup.run(cancel.clone(), "", body);
    let stop = async {
        sleep(SEC).await;
        cancel.cancel();
    };
    tokio::join!(a, b, c, stop);
    let warns = events.at(Level::WARN);
    assert_eq!(
        warns
            .iter()
            .filter(|e| e.field("subsystem") == Some("twice"))
            .count(),
        1
    );
    assert!(warns.iter().any(|e| e.message().contains("empty name")));
    assert_eq!(registry.subsystem("twice").state(), SubsystemState::Stopped);
    assert!(
        registry.get("").is_some(),
        "the empty name is still registered"
    );
}
