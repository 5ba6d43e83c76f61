//! Behaviour of the recover-and-backoff supervisor, on paused time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{capture, Captured, DropCounter};
use supervised_core::{run_with_recover, Exit, Failure, Registry, SubsystemState, Supervisor};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Level;

const SEC: Duration = Duration::from_secs(1);

/// Start times of every call of a body, shared with the test.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Instant>>>);

impl Calls {
    fn record(&self) -> usize {
        let mut calls = self.0.lock().unwrap();
        calls.push(Instant::now());
        calls.len()
    }
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.0.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn clean_return_does_not_restart() {
    let calls = Calls::default();
    let c = calls.clone();
    run_with_recover(CancellationToken::new(), "sup-clean-return", move |_| {
        c.record();
        async {}
    })
    .await;
    assert_eq!(calls.count(), 1);
    let status = supervised_core::registry()
        .subsystem("sup-clean-return")
        .status();
    assert_eq!(status.state, SubsystemState::Stopped);
    assert_eq!(status.restarts, 0);
}

#[tokio::test(start_paused = true)]
async fn panics_restart_with_the_default_backoff_gaps() {
    let calls = Calls::default();
    let c = calls.clone();
    run_with_recover(CancellationToken::new(), "sup-seed-gaps", move |_| {
        let n = c.record();
        async move {
            if n <= 7 {
                panic!("tenant 42 sent bad data (run {n})");
            }
        }
    })
    .await;
    let secs: Vec<u64> = calls.gaps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    assert!(
        calls.gaps().iter().all(|g| g.subsec_nanos() == 0),
        "gaps must be exact: {:?}",
        calls.gaps()
    );
    let status = supervised_core::registry()
        .subsystem("sup-seed-gaps")
        .status();
    assert_eq!(status.restarts, 7);
    assert_eq!(status.state, SubsystemState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn panic_at_a_later_await_is_caught_too() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .run(CancellationToken::new(), "late-panic", move |_| {
            let n = c.record();
            async move {
                tokio::time::sleep(SEC).await;
                tokio::task::yield_now().await;
                if n == 1 {
                    panic!("after two awaits");
                }
            }
        })
        .await;
    assert!(matches!(exit, Exit::Completed(())));
    assert_eq!(calls.count(), 2);
    assert_eq!(calls.gaps(), [SEC + SEC]); // 1 s of running, then 1 s backoff
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_backoff_stops_at_once() {
    let cancel = CancellationToken::new();
    let calls = Calls::default();
    let c = calls.clone();
    let task = tokio::spawn(run_with_recover(
        cancel.clone(),
        "sup-cancel-backoff",
        move |_| {
            c.record();
            async { always_panics() }
        },
    ));
    // First run at t=0, restarts at 1 s and 3 s; cancel during the 4 s wait.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(
        Instant::now(),
        cancelled_at,
        "no time may pass after cancellation"
    );
    assert_eq!(calls.count(), 3);
    let status = supervised_core::registry()
        .subsystem("sup-cancel-backoff")
        .status();
    assert_eq!(status.state, SubsystemState::Stopped);
    // Nothing restarts afterwards.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(calls.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_a_run_waits_for_the_body_to_return() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let drops = DropCounter::default();
    let d = drops.clone();
    let sup = Supervisor::new().registry(&registry);
    let cancel2 = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(cancel2, "cooperative", move |cancel| {
            let token = d.token();
            async move {
                let _token = token;
                cancel.cancelled().await;
                // Two seconds of cleanup, inside the 5 s grace period.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
        .await
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let exit = task.await.unwrap();
    assert!(matches!(exit, Exit::Completed(())));
    assert_eq!(Instant::now() - cancelled_at, Duration::from_secs(2));
    assert_eq!((drops.created(), drops.dropped()), (1, 1));
    assert_eq!(
        registry.subsystem("cooperative").state(),
        SubsystemState::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_ignores_cancellation_is_dropped_after_the_grace_period() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let drops = DropCounter::default();
    let d = drops.clone();
    let sup = Supervisor::new()
        .registry(&registry)
        .stop_timeout(Duration::from_secs(3));
    let cancel2 = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(cancel2, "stubborn", move |_| {
            let token = d.token();
            async move {
                let _token = token;
                std::future::pending::<()>().await;
            }
        })
        .await
    });
    tokio::time::sleep(SEC).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let exit = task.await.unwrap();
    assert!(matches!(exit, Exit::Cancelled { last_failure: None }));
    assert_eq!(Instant::now() - cancelled_at, Duration::from_secs(3));
    assert_eq!(
        (drops.created(), drops.dropped()),
        (1, 1),
        "the body future must be dropped"
    );
    assert_eq!(
        registry.subsystem("stubborn").state(),
        SubsystemState::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn panic_payloads_of_every_type_are_recorded() {
    let registry = Registry::new();
    let sup = Supervisor::new().registry(&registry);
    let cases: [(&str, fn(), &str); 3] = [
        ("payload-str", || panic!("a str payload"), "a str payload"),
        (
            "payload-string",
            || panic!("{} payload", "a formatted"),
            "a formatted payload",
        ),
        (
            "payload-other",
            || std::panic::panic_any(42_u32),
            "Box<dyn Any>",
        ),
    ];
    for (name, raise, expected) in cases {
        let calls = Calls::default();
        let c = calls.clone();
        sup.run(CancellationToken::new(), name, move |_| {
            let n = c.record();
            async move {
                if n == 1 {
                    raise();
                }
            }
        })
        .await;
        let panic = registry
            .subsystem(name)
            .status()
            .last_panic
            .expect("panic recorded");
        assert_eq!(panic.message, expected, "{name}");
        let location = panic.location.expect("location captured by the hook");
        assert!(
            location.starts_with("supervised-core/tests/supervisor.rs:"),
            "{location}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn restart_intensity_gives_up_and_marks_failed() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .max_restarts(3, Duration::from_secs(60))
        .run(CancellationToken::new(), "intense", move |_| {
            c.record();
            async { always_panics() }
        })
        .await;
    // 1 run + 3 restarts; the 4th failure gives up.
    assert_eq!(calls.count(), 4);
    let Exit::GaveUp(Failure::Panicked(payload)) = exit else {
        panic!("expected GaveUp(Panicked), got {exit:?}");
    };
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"always"));
    let status = registry.subsystem("intense").status();
    assert_eq!(status.state, SubsystemState::Failed);
    assert!(!status.healthy);
    assert_eq!(status.restarts, 3);
    assert_eq!(status.consecutive_failures, 4);
}

/// A body whose first six runs return `Err` and whose seventh returns `Ok(7)`.
fn err_until_run_7(
    calls: Calls,
) -> impl FnMut(CancellationToken) -> std::future::Ready<Result<usize, String>> {
    move |_| {
        let n = calls.record();
        std::future::ready(if n <= 6 {
            Err(format!("run {n}"))
        } else {
            Ok(n)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn restart_intensity_forgets_restarts_outside_its_window() {
    // At most 2 restarts per 3 s. Restarts are scheduled at t = 0, 1, 3, 7,
    // 11, ...: the one at t=0 is exactly 3 s old at t=3 and leaves the
    // window (it is half-open), so the window never holds 2 when a failure
    // comes and the supervisor never gives up before the body returns.
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(4))
        .max_restarts(2, Duration::from_secs(3))
        .run(CancellationToken::new(), "windowed", err_until_run_7(c))
        .await;
    assert!(matches!(exit, Exit::Completed(Ok(7))), "{exit:?}");

    // And a window one second longer holds three restarts: it gives up.
    let c = Calls::default();
    let c2 = c.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(4))
        .max_restarts(2, Duration::from_secs(4))
        .run(
            CancellationToken::new(),
            "windowed-strict",
            err_until_run_7(c2),
        )
        .await;
    let Exit::GaveUp(Failure::Returned(Err(last))) = exit else {
        panic!("expected GaveUp(Returned(Err)), got {exit:?}");
    };
    // Restarts scheduled at t=0 and t=1 are both within 4 s of the failure
    // at t=3: that failure would be the third in the window.
    assert_eq!(last, "run 3");
    assert_eq!(c.count(), 3);
}

/// A body that beats `beats` times, one per second, then panics; returns
/// cleanly on the run after `runs`.
fn beating_then_panicking(
    calls: Calls,
    beats: u32,
    runs: usize,
) -> impl FnMut(CancellationToken) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
{
    move |_| {
        let n = calls.record();
        Box::pin(async move {
            if n > runs {
                return;
            }
            for _ in 0..beats {
                tokio::time::sleep(SEC).await;
                supervised_core::beat();
            }
            panic!("after {beats} beats");
        })
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_real_progress() {
    // max_backoff 4 s, so progress = 3 beats and 4 s of running.
    let registry = Registry::new();
    let calls = Calls::default();
    let sup = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(4));
    sup.run(
        CancellationToken::new(),
        "progress",
        beating_then_panicking(calls.clone(), 5, 4),
    )
    .await;
    // Each run: 5 s of running with 5 beats, then a panic: progress every time,
    // so every restart waits the initial 1 s.
    let secs: Vec<u64> = calls.gaps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [6, 6, 6, 6]);
    assert_eq!(
        registry.subsystem("progress").status().consecutive_failures,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn uptime_without_enough_beats_does_not_reset_the_backoff() {
    // Two beats per run over 10 s: long enough, but only 2 completed
    // iterations, fewer than the default 3. The backoff keeps growing.
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let sup = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(4));
    sup.run(CancellationToken::new(), "connects-then-fails", move |_| {
        let n = c.record();
        async move {
            if n > 4 {
                return;
            }
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                supervised_core::beat();
            }
            panic!("fails on real work");
        }
    })
    .await;
    let secs: Vec<u64> = calls.gaps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [10 + 1, 10 + 2, 10 + 4, 10 + 4]);
    assert_eq!(
        registry
            .subsystem("connects-then-fails")
            .status()
            .consecutive_failures,
        4
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_beats_resets_on_running_time_alone() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let sup = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(8))
        .reset_after(3, Duration::from_secs(5));
    sup.run(CancellationToken::new(), "never-beats", move |_| {
        let n = c.record();
        async move {
            // Runs 1-2 fail at once; runs 3-4 fail after 5 s (progress);
            // run 5 fails at once again, run 6 returns.
            match n {
                3 | 4 => tokio::time::sleep(Duration::from_secs(5)).await,
                6 => return,
                _ => {}
            }
            panic!("run {n}");
        }
    })
    .await;
    let secs: Vec<u64> = calls.gaps().iter().map(Duration::as_secs).collect();
    // 1 s, 2 s, then reset: 5+1, 5+1, then growing again from the reset: 2 s.
    assert_eq!(secs, [1, 2, 6, 6, 2]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_in_bounds_and_vary() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    Supervisor::new()
        .registry(&registry)
        .jitter(true)
        .run(CancellationToken::new(), "jittery", move |_| {
            let n = c.record();
            async move {
                if n <= 40 {
                    panic!("run {n}");
                }
            }
        })
        .await;
    let gaps = calls.gaps();
    assert_eq!(gaps.len(), 40);
    for (i, gap) in gaps.iter().enumerate() {
        let nominal = supervised_core::Backoff::default().nominal(i as u32 + 1);
        let low = (nominal / 2).max(SEC);
        let high = (nominal * 3 / 2).min(Duration::from_secs(30));
        assert!(
            *gap >= low && *gap <= high,
            "gap {i}: {gap:?} outside [{low:?}, {high:?}]"
        );
    }
    // At the cap (failures 6..) the delays must still differ.
    let at_cap: std::collections::BTreeSet<Duration> = gaps[6..].iter().copied().collect();
    assert!(
        at_cap.len() > 20,
        "jitter at the cap is not random: {at_cap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn err_outputs_restart_and_the_final_ok_comes_back() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .run(CancellationToken::new(), "fallible", move |_| {
            let n = c.record();
            async move {
                if n < 3 {
                    Err(format!("attempt {n} failed"))
                } else {
                    Ok("done")
                }
            }
        })
        .await;
    assert!(matches!(exit, Exit::Completed(Ok("done"))));
    let status = registry.subsystem("fallible").status();
    assert_eq!(status.restarts, 2);
    assert_eq!(status.last_error.as_deref(), Some("attempt 2 failed"));
}

#[tokio::test(start_paused = true)]
async fn cancellation_after_an_err_returns_that_err() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let sup = Supervisor::new().registry(&registry);
    let c2 = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(c2, "err-then-cancel", |_| async { Err::<(), _>("db down") })
            .await
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cancel.cancel();
    let exit = task.await.unwrap();
    assert!(
        matches!(
            exit,
            Exit::Cancelled {
                last_failure: Some(Err("db down"))
            }
        ),
        "{exit:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn beat_inside_the_body_credits_its_subsystem_and_state_tracks_backoff() {
    let registry = Registry::new();
    let sup = Supervisor::new().registry(&registry).tick(SEC);
    let calls = Calls::default();
    let c = calls.clone();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(c2, "beater", move |_| {
            let n = c.record();
            async move {
                for _ in 0..3 {
                    tokio::time::sleep(SEC).await;
                    assert!(supervised_core::beat());
                }
                if n == 1 {
                    panic!("once");
                }
                std::future::pending::<()>().await;
            }
        })
        .await
    });
    let sub = registry.subsystem("beater");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let status = sub.status();
    assert_eq!(status.beats, 3);
    assert_eq!(status.state, SubsystemState::BackingOff);
    assert_eq!(
        status.next_restart_at,
        Some(status.registered_at + Duration::from_secs(4))
    );
    assert_eq!(status.tick, Some(SEC));
    tokio::time::sleep(SEC).await;
    assert_eq!(sub.state(), SubsystemState::Running);
    assert_eq!(sub.status().next_restart_at, None);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_error_event_carries_every_field() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    Supervisor::new()
        .registry(&registry)
        .run(CancellationToken::new(), "logged", move |_| {
            let n = c.record();
            async move {
                if n == 1 {
                    panic!("tenant 7: unexpected null");
                }
            }
        })
        .await;
    let errors = events.at(Level::ERROR);
    assert_eq!(errors.len(), 1, "one event per failure: {errors:?}");
    let e = &errors[0];
    assert_eq!(e.field("subsystem"), Some("logged"));
    assert_eq!(e.field("kind"), Some("panic"));
    assert_eq!(
        e.field("message"),
        Some("supervised body panicked; restarting after backoff")
    );
    assert_eq!(e.field("restart"), Some("1"));
    assert_eq!(e.field("next_backoff"), Some("1s"));
    let location = e.field("location").unwrap();
    assert!(
        location.starts_with("supervised-core/tests/supervisor.rs:"),
        "{location}"
    );
    let backtrace = e.field("backtrace").unwrap();
    if backtraces_enabled() {
        assert!(
            backtrace.contains("the_error_event_carries_every_field"),
            "backtrace of the panicking thread: {backtrace}"
        );
    } else {
        assert_eq!(
            backtrace,
            "<disabled: set RUST_BACKTRACE=1, or RUST_LIB_BACKTRACE=1, to capture one>"
        );
    }
    assert_eq!(e.field("panic_message"), Some("tenant 7: unexpected null"));
}

#[tokio::test(start_paused = true)]
async fn every_run_is_a_span_with_subsystem_and_generation() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    Supervisor::new()
        .registry(&registry)
        .run(CancellationToken::new(), "spanned", move |_| {
            let n = c.record();
            async move {
                if n < 3 {
                    panic!("run {n}");
                }
            }
        })
        .await;
    let spans: Vec<(String, String)> = events
        .spans("supervised")
        .iter()
        .map(|s| {
            (
                s.field("subsystem").unwrap().to_string(),
                s.field("generation").unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = (0..3)
        .map(|g| ("spanned".to_string(), g.to_string()))
        .collect();
    assert_eq!(spans, expected);
}

/// Users filter on one target (`RUST_LOG=supervised=debug`) whatever file
/// of the runtime logs: every event and span of every supervision path
/// carries `target: "supervised"`.
#[tokio::test(start_paused = true)]
async fn every_event_and_span_has_the_supervised_target() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    // A panic, an `Err`, a stall, then giving up.
    let calls = Calls::default();
    let c = calls.clone();
    let exit = Supervisor::new()
        .registry(&registry)
        .initial_backoff(SEC)
        .tick(SEC)
        .restart_on_stall(true)
        .max_restarts(2, Duration::from_secs(600))
        .run(CancellationToken::new(), "targets-failures", move |_| {
            let n = c.record();
            async move {
                match n {
                    1 => panic!("run {n}"),
                    2 => Err::<(), _>("run 2 failed".to_string()),
                    _ => std::future::pending().await,
                }
            }
        })
        .await;
    assert!(matches!(exit, Exit::GaveUp(Failure::Stalled(_))));
    // A body dropped after its grace period, and a clean return.
    let cancel = CancellationToken::new();
    let patient = Supervisor::new().registry(&registry).stop_timeout(SEC);
    let stubborn = patient.run(cancel.clone(), "targets-grace", |_| {
        std::future::pending::<()>()
    });
    let cancel_soon = async {
        tokio::time::sleep(SEC).await;
        cancel.cancel();
    };
    let (exit, ()) = tokio::join!(stubborn, cancel_soon);
    assert!(matches!(exit, Exit::Cancelled { last_failure: None }));
    // The stall watchdog's WARN and INFO, and an isolated item.
    let sweep = registry.subsystem("targets-watchdog");
    sweep.declare_tick(Some(SEC), None);
    let stop = CancellationToken::new();
    let watchdog = supervised_core::StallWatchdog::new()
        .registry(&registry)
        .spawn(stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    sweep.beat();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    watchdog.await.unwrap();
    let item = supervised_core::isolate("tenant-1", async { panic!("bad row") }).await;
    assert!(item.is_err());

    let all = events.all();
    let messages: Vec<&str> = all.iter().map(Captured::message).collect();
    for expected in [
        "supervised body panicked; restarting after backoff",
        "supervised body returned an error; restarting after backoff",
        "supervised body exceeded its restart intensity; giving up",
        "supervised body did not return within its stop timeout after cancellation; dropping it",
        "supervised body stopped by cancellation",
        "supervised subsystem stalled: no heartbeat within stale_after",
        "supervised subsystem recovered: beating again",
        "item panicked; isolated, the loop carries on",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} in {messages:?}"
        );
    }
    assert!(!events.spans("supervised").is_empty());
    let stray: Vec<(&str, &str)> = all
        .iter()
        .filter(|e| e.target != "supervised")
        .map(|e| (e.target.as_str(), e.message()))
        .collect();
    assert!(
        stray.is_empty(),
        "events outside the `supervised` target: {stray:?}"
    );
}

#[test]
fn the_supervisor_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let fut = run_with_recover(CancellationToken::new(), "send-check", |_| async {});
    assert_send(&fut);
    let sup = Supervisor::new();
    let fut = sup.run(CancellationToken::new(), "send-check", |_| async {
        Ok::<_, String>(())
    });
    assert_send(&fut);
}

/// A body step that always panics, typed `()` so the body's output is `()`.
fn always_panics() {
    panic!("always")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_from_another_thread_reaches_a_body_on_a_worker() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let sup = Supervisor::new()
        .registry(&registry)
        .stop_timeout(Duration::ZERO);
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(c, "cross-thread", |_| std::future::pending::<()>())
            .await
    });
    tokio::task::yield_now().await;
    std::thread::spawn(move || cancel.cancel()).join().unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the cancellation woke the supervisor")
        .unwrap();
    assert!(matches!(exit, Exit::Cancelled { last_failure: None }));
    assert_eq!(
        registry.subsystem("cross-thread").state(),
        SubsystemState::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn a_recovered_subsystem_reports_zero_consecutive_failures_while_it_runs() {
    let registry = Registry::new();
    let calls = Calls::default();
    let c = calls.clone();
    let cancel = CancellationToken::new();
    let sup = Supervisor::new()
        .registry(&registry)
        .max_backoff(Duration::from_secs(4));
    let c2 = cancel.clone();
    let task = tokio::spawn(async move {
        sup.run(c2, "recovers", move |cancel| {
            let n = c.record();
            async move {
                if n == 1 {
                    panic!("first run fails");
                }
                while !cancel.is_cancelled() {
                    sleep_then_beat().await;
                }
            }
        })
        .await
    });
    let sub = registry.subsystem("recovers");
    // Restarted at 1 s; beats at 2, 3 s: running, but no progress yet.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        (sub.state(), sub.status().consecutive_failures),
        (SubsystemState::Running, 1)
    );
    // By 5.5 s: 4 beats and 4.5 s of running (>= 3 beats and max_backoff).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sub.status().consecutive_failures, 0);
    cancel.cancel();
    task.await.unwrap();
}

async fn sleep_then_beat() {
    tokio::time::sleep(SEC).await;
    supervised_core::beat();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_current_subsystem_is_set_only_while_a_body_is_polled() {
    let registry = Registry::new();
    let supervisor = Supervisor::new().registry(&registry);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let calls = Calls::default();
    let c = calls.clone();
    let exit = supervisor
        .run(CancellationToken::new(), "sup-current", move |_| {
            let n = c.record();
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push(supervised_core::current().map(|h| h.name().to_owned()));
                tokio::task::yield_now().await;
                assert!(supervised_core::beat());
                if n == 1 {
                    panic!("first run");
                }
            }
        })
        .await;
    assert!(matches!(exit, Exit::Completed(())));
    assert_eq!(calls.count(), 2);
    let expected = Some("sup-current".to_owned());
    assert_eq!(*seen.lock().unwrap(), [expected.clone(), expected]);
    // Neither the panic nor the end of supervision leaves it set.
    assert!(supervised_core::current().is_none());
    assert!(!supervised_core::beat());
    assert_eq!(registry.subsystem("sup-current").beats(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_longest_durations_do_not_overflow_the_clock() {
    // A tick, stale_after or backoff of `Duration::MAX` means "never":
    // deadlines saturate instead of panicking on `Instant` overflow.
    let registry = Registry::new();
    let huge = registry.subsystem("sup-huge-tick");
    huge.declare_tick(Some(Duration::MAX), None);
    let status = huge.status();
    assert_eq!(status.stale_after, Some(Duration::MAX));
    assert_eq!(status.stale_since, None);

    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new()
        .registry(&registry)
        .tick(Duration::MAX)
        .restart_on_stall(true)
        .initial_backoff(Duration::MAX)
        .max_backoff(Duration::MAX);
    let calls = Calls::default();
    let c = calls.clone();
    let stop = cancel.clone();
    let run = tokio::spawn(async move {
        supervisor
            .run(stop, "sup-huge-backoff", move |_| {
                c.record();
                async { Err::<(), _>("fails once, then waits out a backoff of Duration::MAX") }
            })
            .await
    });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let status = registry.subsystem("sup-huge-backoff").status();
    assert_eq!(
        (status.state, status.restarts),
        (SubsystemState::BackingOff, 1)
    );
    assert_eq!(calls.count(), 1);
    cancel.cancel();
    let exit = run.await.unwrap();
    assert!(matches!(
        exit,
        Exit::Cancelled {
            last_failure: Some(Err(_))
        }
    ));
}

/// The future of `Supervisor::run` does not grow with the body (the body
/// is boxed per run) and stays within 232 bytes on a 64-bit target. tokio
/// allocates a task in steps of 128 bytes and a supervised idle loop sits
/// just under one: 24 bytes more cost 128 bytes per idle subsystem once
/// (BENCHMARKS.md, benchmark 4). What only some supervisions need (a
/// restart window, a lease, an escalated failure) lives behind one pointer.
#[cfg(target_pointer_width = "64")]
#[test]
fn a_supervised_loop_future_stays_within_its_task_size_step() {
    async fn small(_cancel: CancellationToken) {}
    async fn large(_cancel: CancellationToken) {
        let buffer = [0u8; 1024];
        tokio::task::yield_now().await;
        std::hint::black_box(&buffer);
    }
    let supervisor = Supervisor::new().registry(&Registry::new());
    let gated = Supervisor::new()
        .registry(&Registry::new())
        .max_restarts(3, SEC)
        .lease("size-probe");
    let small_run = supervisor.run(CancellationToken::new(), "size-small", small);
    let large_run = supervisor.run(CancellationToken::new(), "size-large", large);
    let gated_run = gated.run(CancellationToken::new(), "size-gated", small);
    let (small_size, large_size, gated_size) = (
        std::mem::size_of_val(&small_run),
        std::mem::size_of_val(&large_run),
        std::mem::size_of_val(&gated_run),
    );
    assert_eq!(small_size, large_size, "the body is boxed, not inline");
    assert_eq!(small_size, gated_size, "a window and a lease are boxed");
    assert!(
        small_size <= 232,
        "Supervisor::run's future is {small_size} bytes"
    );
}

/// Whether std captures backtraces in this process: `RUST_LIB_BACKTRACE`,
/// else `RUST_BACKTRACE`, as `Backtrace::capture` reads them.
fn backtraces_enabled() -> bool {
    let on = |v: String| v != "0";
    match std::env::var("RUST_LIB_BACKTRACE") {
        Ok(v) => on(v),
        Err(_) => std::env::var("RUST_BACKTRACE").is_ok_and(on),
    }
}

/// The event's backtrace follows Rust's conventions: this runs
/// `the_error_event_carries_every_field` again in a process of its own
/// with backtraces on, then off, and it checks each (std reads the
/// variables once per process, so one process cannot test both).
#[test]
fn the_event_carries_a_backtrace_only_when_rust_backtrace_asks_for_one() {
    for (var, value) in [
        ("RUST_BACKTRACE", "1"),
        ("RUST_BACKTRACE", "0"),
        ("RUST_LIB_BACKTRACE", "1"),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_error_event_carries_every_field",
                "--nocapture",
            ])
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env(var, value)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{var}={value}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
