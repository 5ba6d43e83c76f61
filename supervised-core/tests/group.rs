//! `Group` on paused time: the restart-policy table under every strategy,
//! start and stop order, no overlap between runs, intensity and
//! escalation, the shutdown bounds, dynamic children and readiness.

mod common;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::{
    AddError, CancellationToken, Child, Group, GroupExit, Readiness, Registry, RemoveError,
    Restart, Strategy, SubsystemKind, SubsystemState,
};
use tokio::time::{sleep, Instant};
use tracing::Level;

/// What children did, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
}

/// Pushes `event` when dropped: shows when a run's future is gone.
struct OnDrop(Log, String);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.push(self.1.clone());
    }
}

/// A child that logs `start <name>`, waits for cancellation, and logs
/// `drop <name>` when its future is dropped.
fn waiter(log: &Log, name: &'static str) -> Child {
    let log = log.clone();
    Child::new(name, move |cancel: CancellationToken| {
        let log = log.clone();
        async move {
            log.push(format!("start {name}"));
            let _guard = OnDrop(log.clone(), format!("drop {name}"));
            cancel.cancelled().await;
        }
    })
}

/// A child that ignores cancellation (so only an abort stops it), and logs
/// `drop <name>` when its future is dropped.
fn stubborn(log: &Log, name: &'static str) -> Child {
    let log = log.clone();
    Child::new(name, move |_cancel: CancellationToken| {
        let log = log.clone();
        async move {
            let _guard = OnDrop(log.clone(), format!("drop {name}"));
            std::future::pending::<()>().await;
        }
    })
}

#[derive(Clone, Copy, Debug)]
enum End {
    Normal,
    Error,
    Panic,
}

/// A child that ends its first run after 1 s in the way given, then waits
/// for cancellation on every later run.
fn ends_once(log: &Log, name: &'static str, end: End) -> Child {
    let log = log.clone();
    let mut runs = 0;
    Child::new(name, move |cancel: CancellationToken| {
        runs += 1;
        let first = runs == 1;
        let log = log.clone();
        async move {
            log.push(format!("start {name}"));
            if !first {
                cancel.cancelled().await;
                return Ok(());
            }
            sleep(Duration::from_secs(1)).await;
            match end {
                End::Normal => Ok(()),
                End::Error => Err("bad tenant data"),
                End::Panic => panic!("tenant 7 broke the loop"),
            }
        }
    })
}

fn group(name: &str, registry: &Registry) -> Group {
    Group::new(name).registry(registry)
}

#[tokio::test(start_paused = true)]
async fn every_row_of_the_restart_table_under_every_strategy() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
            for end in [End::Normal, End::Error, End::Panic] {
                let case = format!("{strategy:?} {restart:?} {end:?}");
                let log = Log::default();
                let registry = Registry::new();
                let cancel = CancellationToken::new();
                let table = group("table", &registry)
                    .strategy(strategy)
                    .spec(waiter(&log, "before"))
                    .spec(ends_once(&log, "target", end).restart(restart))
                    .spec(waiter(&log, "after"));
                let handle = table.handle();
                let run = tokio::spawn(table.run(cancel.clone()));
                // The end at 1 s, the 1 s backoff, and room to start.
                sleep(Duration::from_millis(2500)).await;

                let failed = !matches!(end, End::Normal);
                let restarted = match restart {
                    Restart::Permanent => true,
                    Restart::Transient => failed,
                    Restart::Temporary => false,
                };
                let expect = |name: &str| {
                    let with_target = restarted
                        && match strategy {
                            Strategy::OneForOne => name == "target",
                            Strategy::OneForAll => true,
                            Strategy::RestForOne => name != "before",
                        };
                    if with_target {
                        2
                    } else {
                        1
                    }
                };
                for name in ["before", "target", "after"] {
                    assert_eq!(
                        log.count(&format!("start {name}")),
                        expect(name),
                        "{case}: starts of {name}: {:?}",
                        log.events()
                    );
                }
                let listed: Vec<String> = handle.children().into_iter().map(|c| c.name).collect();
                if restart == Restart::Temporary {
                    // Ended, it is forgotten as OTP forgets it: no entry,
                    // not listed, its name free for `add`.
                    assert!(registry.get("target").is_none(), "{case}");
                    assert_eq!(listed, ["before", "after"], "{case}");
                    cancel.cancel();
                    let report = run.await.unwrap();
                    assert_eq!(report.exit, GroupExit::Shutdown, "{case}");
                    assert!(report.failed.is_empty(), "{case}: {report:?}");
                    continue;
                }
                assert_eq!(listed, ["before", "target", "after"], "{case}");
                let target = registry.get("target").unwrap().status();
                let expected_state = match (restarted, failed) {
                    (true, _) => SubsystemState::Running,
                    (false, true) => SubsystemState::Failed,
                    (false, false) => SubsystemState::Stopped,
                };
                assert_eq!(target.state, expected_state, "{case}");
                assert_eq!(target.restarts, u64::from(restarted), "{case}");
                if let End::Panic = end {
                    let panic = target.last_panic.expect("the panic is recorded");
                    assert_eq!(panic.message, "tenant 7 broke the loop", "{case}");
                    assert!(panic.location.unwrap().contains("group.rs"), "{case}");
                }
                if let End::Error = end {
                    assert_eq!(
                        target.last_error.as_deref(),
                        Some("bad tenant data"),
                        "{case}"
                    );
                }
                let group_entry = registry.get("table").unwrap().status();
                assert_eq!(group_entry.restarts, u64::from(restarted), "{case}");

                cancel.cancel();
                let report = run.await.unwrap();
                assert_eq!(report.exit, GroupExit::Shutdown, "{case}");
                assert!(report.unstopped.is_empty(), "{case}");
                assert_eq!(
                    report.failed.is_empty(),
                    restarted || !failed,
                    "{case}: {report:?}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn children_start_in_order_and_stop_in_reverse_nested_groups_depth_first() {
    let log = Log::default();
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("platform", &registry)
            .spec(waiter(&log, "a"))
            .group(
                Group::new("channels")
                    .spec(waiter(&log, "x"))
                    .spec(waiter(&log, "y")),
            )
            .spec(waiter(&log, "b"))
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(log.events(), ["start a", "start x", "start y", "start b"]);
    cancel.cancel();
    let report = run.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        log.events()[4..],
        ["drop b", "drop y", "drop x", "drop a"],
        "reverse start order, the nested group's children before the ones started before it"
    );
    let nested = registry.get("platform/channels").unwrap().status();
    assert_eq!(nested.kind, SubsystemKind::Group);
    assert_eq!(nested.group.as_deref(), Some("platform"));
    assert_eq!(
        registry.get("x").unwrap().status().group.as_deref(),
        Some("platform/channels")
    );
    let root = registry.get("platform").unwrap().status();
    assert_eq!(
        (root.kind, root.group, root.state),
        (SubsystemKind::Group, None, SubsystemState::Stopped)
    );
}

/// A child that takes `linger` to finish after cancellation.
fn slow_to_stop(log: &Log, name: &'static str, linger: Duration) -> Child {
    let log = log.clone();
    let mut run = 0;
    Child::new(name, move |cancel: CancellationToken| {
        let log = log.clone();
        let n = run;
        run += 1;
        async move {
            log.push(format!("start {name}{n}"));
            let _guard = OnDrop(log.clone(), format!("drop {name}{n}"));
            cancel.cancelled().await;
            sleep(linger).await;
        }
    })
    .stop_timeout(Duration::from_secs(60))
}

#[tokio::test(start_paused = true)]
async fn no_child_starts_again_before_the_old_runs_are_dropped() {
    let log = Log::default();
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let failing = {
        let log = log.clone();
        let mut run = 0;
        Child::new("pool", move |_cancel: CancellationToken| {
            let log = log.clone();
            let n = run;
            run += 1;
            async move {
                log.push(format!("start pool{n}"));
                let _guard = OnDrop(log.clone(), format!("drop pool{n}"));
                sleep(Duration::from_secs(5)).await;
                if n < 1_000 {
                    panic!("pool lost its connection");
                }
            }
        })
    };
    let run = tokio::spawn(
        group("overlap", &registry)
            .strategy(Strategy::OneForAll)
            .backoff(supervised_core::Backoff::new(
                Duration::ZERO,
                Duration::ZERO,
            ))
            .spec(failing)
            .spec(slow_to_stop(&log, "user", Duration::from_secs(3)))
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(9)).await;
    cancel.cancel();
    run.await.unwrap();
    let events = log.events();
    let at = |e: &str| {
        events
            .iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("{e} in {events:?}"))
    };
    // Even with no backoff, the new runs start only after both old futures
    // are gone, the sibling's 3 s of cleanup included.
    assert!(at("drop pool0") < at("start pool1"), "{events:?}");
    assert!(at("drop user0") < at("start pool1"), "{events:?}");
    assert!(at("drop user0") < at("start user1"), "{events:?}");
    assert!(
        at("start pool1") < at("start user1"),
        "start order again: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_beyond_the_intensity_gives_up_and_stops_every_child() {
    let log = Log::default();
    let registry = Registry::new();
    let started = Instant::now();
    let always_fails = Child::new("flaky", |_cancel: CancellationToken| async {
        Err::<(), _>("connection refused")
    });
    let report = group("intense", &registry)
        .max_restarts(2, Duration::from_secs(60))
        .spec(waiter(&log, "bystander"))
        .spec(always_fails)
        .run(CancellationToken::new())
        .await;
    assert_eq!(
        report.exit,
        GroupExit::GaveUp {
            child: "flaky".into(),
            failure: "connection refused".into()
        }
    );
    assert_eq!(report.failed, ["flaky"]);
    assert!(report.unstopped.is_empty());
    assert_eq!(ExitCode::from(&report), ExitCode::FAILURE);
    // Two restarts, after 1 s and 2 s of backoff; the third failure gives up.
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(log.events(), ["start bystander", "drop bystander"]);
    let entry = registry.get("intense").unwrap().status();
    assert_eq!((entry.state, entry.restarts), (SubsystemState::Failed, 2));
    assert_eq!(
        registry.get("flaky").unwrap().state(),
        SubsystemState::Failed
    );
    assert_eq!(
        registry.get("bystander").unwrap().state(),
        SubsystemState::Stopped
    );
    assert!(
        !registry.health().is_ok(),
        "a failed group fails the health probe"
    );
    assert_eq!(
        registry.readiness(),
        Readiness::Draining,
        "the root group ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nested_group_that_gives_up_escalates_through_two_levels() {
    let registry = Registry::new();
    let leaf_runs = Arc::new(Mutex::new(0));
    let runs = leaf_runs.clone();
    let leaf = Child::new("leaf", move |_cancel: CancellationToken| {
        *runs.lock().unwrap() += 1;
        async {
            if true {
                panic!("leaf broke");
            }
        }
    });
    let report = group("root", &registry)
        .max_restarts(1, Duration::from_secs(600))
        .group(
            Group::new("mid")
                .max_restarts(1, Duration::from_secs(600))
                .spec(leaf),
        )
        .run(CancellationToken::new())
        .await;
    let GroupExit::GaveUp { child, failure } = &report.exit else {
        panic!("the root gives up: {report:?}");
    };
    assert_eq!(child, "mid");
    assert!(
        failure.contains("\"leaf\"") && failure.contains("leaf broke"),
        "{failure}"
    );
    // mid: run, restart, give up; root restarts mid once: the same again.
    assert_eq!(*leaf_runs.lock().unwrap(), 4);
    assert_eq!(report.failed, ["leaf", "leaf", "mid"]);
    assert_eq!(registry.get("root").unwrap().status().restarts, 1);
    assert_eq!(
        registry.get("root/mid").unwrap().state(),
        SubsystemState::Failed
    );
    assert_eq!(
        registry.get("root").unwrap().state(),
        SubsystemState::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_cancellation_is_aborted_and_reported_unstopped() {
    let log = Log::default();
    let registry = Registry::new();
    let stubborn = |name| stubborn(&log, name);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("bounded", &registry)
            .shutdown_timeout(Duration::from_secs(5))
            .spec(waiter(&log, "polite"))
            .spec(stubborn("deaf").stop_timeout(Duration::from_secs(60)))
            .spec(stubborn("slow").stop_timeout(Duration::from_secs(2)))
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    let report = run.await.unwrap();
    // `slow` is aborted at its own 2 s; `deaf` at what is left of the
    // group's 5 s; `polite` gets no time at all and is aborted too.
    assert_eq!(report.exit, GroupExit::Shutdown);
    assert_eq!(report.unstopped, ["slow", "deaf", "polite"]);
    assert_eq!(report.took, Duration::from_secs(5));
    assert_eq!(ExitCode::from(&report), ExitCode::FAILURE);
    tokio::task::yield_now().await;
    let events = log.events();
    for name in ["drop slow", "drop deaf", "drop polite"] {
        assert!(
            events.iter().any(|e| e == name),
            "{name}: aborted tasks are dropped: {events:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_starts_turns_ready_and_drains_at_the_first_moment_of_a_shutdown() {
    let registry = Registry::new();
    let log = Log::default();
    let ticking = {
        let registry = registry.clone();
        Child::new("ticking", move |cancel: CancellationToken| {
            let sub = registry.subsystem("ticking");
            sub.declare_tick(Some(Duration::from_secs(10)), None);
            async move {
                sleep(Duration::from_secs(3)).await;
                supervised_core::beat();
                cancel.cancelled().await;
            }
        })
    };
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("ready", &registry)
            .drain(Duration::from_secs(5))
            .spec(ticking)
            .spec(waiter(&log, "untimed"))
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        registry.readiness(),
        Readiness::Starting {
            waiting: vec!["ticking".into()]
        }
    );
    sleep(Duration::from_secs(3)).await;
    assert_eq!(registry.readiness(), Readiness::Ready);
    // Latched: a subsystem that appears later does not take it back.
    registry
        .subsystem("late")
        .declare_tick(Some(Duration::from_secs(1)), None);
    assert_eq!(registry.readiness(), Readiness::Ready);

    cancel.cancel();
    tokio::task::yield_now().await;
    assert_eq!(registry.readiness(), Readiness::Draining);
    sleep(Duration::from_secs(4)).await;
    assert_eq!(
        log.events(),
        ["start untimed"],
        "nothing stops during the drain"
    );
    let report = run.await.unwrap();
    assert!(report.is_clean());
    assert_eq!(report.took, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn children_added_and_removed_at_run_time() {
    let registry = Registry::new();
    let log = Log::default();
    let group = group("channels", &registry).spec(waiter(&log, "static"));
    let handle = group.handle();
    handle.add(waiter(&log, "queued")).unwrap();
    assert_eq!(
        handle.add(waiter(&log, "static")),
        Err(AddError::Duplicate("static".into()))
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    handle.add(waiter(&log, "telegram")).unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        log.events(),
        ["start static", "start queued", "start telegram"]
    );
    let names: Vec<_> = handle
        .children()
        .into_iter()
        .map(|c| (c.name, c.state))
        .collect();
    assert_eq!(
        names,
        [
            ("static".to_string(), SubsystemState::Running),
            ("queued".to_string(), SubsystemState::Running),
            ("telegram".to_string(), SubsystemState::Running)
        ]
    );
    assert_eq!(
        registry.get("telegram").unwrap().status().group.as_deref(),
        Some("channels")
    );

    handle.remove("telegram").await.unwrap();
    assert_eq!(
        log.events().last().map(String::as_str),
        Some("drop telegram")
    );
    assert!(
        registry.get("telegram").is_none(),
        "a removed child leaves the registry"
    );
    assert_eq!(
        handle.remove("telegram").await,
        Err(RemoveError::NotFound("telegram".into()))
    );
    // The name is free again, and goes to the end of the start order.
    handle.add(waiter(&log, "telegram")).unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(log.count("start telegram"), 2);

    cancel.cancel();
    let report = run.await.unwrap();
    assert!(report.is_clean());
    assert_eq!(
        log.events()[5..],
        ["drop telegram", "drop queued", "drop static"],
        "a re-added child stops first"
    );
    assert_eq!(handle.add(waiter(&log, "late")), Err(AddError::Ended));
    assert_eq!(handle.remove("static").await, Err(RemoveError::Ended));
}

#[tokio::test(start_paused = true)]
async fn a_handle_shuts_its_group_down_and_a_nested_one_ends_normally() {
    let registry = Registry::new();
    let log = Log::default();
    let nested = Group::new("tenants").spec(waiter(&log, "tenant-1"));
    let nested_handle = nested.handle();
    let root = group("svc", &registry)
        .spec(waiter(&log, "core"))
        .group(nested);
    let root_handle = root.handle();
    let run = tokio::spawn(root.run(CancellationToken::new()));
    sleep(Duration::from_secs(1)).await;
    nested_handle.shutdown();
    sleep(Duration::from_secs(1)).await;
    // Transient, ended normally: not restarted; the root keeps running.
    assert_eq!(
        log.events(),
        ["start core", "start tenant-1", "drop tenant-1"]
    );
    assert_eq!(
        registry.get("svc/tenants").unwrap().state(),
        SubsystemState::Stopped
    );
    assert_eq!(
        registry.readiness(),
        Readiness::Ready,
        "only the root drains"
    );
    root_handle.shutdown();
    let report = run.await.unwrap();
    assert_eq!(report.exit, GroupExit::Shutdown);
    assert_eq!(registry.readiness(), Readiness::Draining);
}

#[tokio::test(start_paused = true)]
async fn a_plain_future_child_beats_its_own_entry_and_a_factory_panic_is_a_failure() {
    let registry = Registry::new();
    let calls = Arc::new(Mutex::new(0));
    let counted = calls.clone();
    let report = group("plain", &registry)
        .max_restarts(1, Duration::from_secs(60))
        .child("beating", |_cancel: CancellationToken| async {
            assert!(supervised_core::beat());
            assert_eq!(supervised_core::current().unwrap().name(), "beating");
        })
        .child(
            "bad-factory",
            move |_cancel: CancellationToken| -> std::future::Ready<()> {
                *counted.lock().unwrap() += 1;
                panic!("factory refused");
            },
        )
        .run(CancellationToken::new())
        .await;
    assert_eq!(registry.get("beating").unwrap().beats(), 1);
    let GroupExit::GaveUp { child, failure } = report.exit else {
        panic!("gives up on the factory");
    };
    assert_eq!(child, "bad-factory");
    assert!(failure.contains("factory refused"), "{failure}");
    // Its first start and the one restart `max_restarts(1)` allows.
    assert_eq!(*calls.lock().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_group_whose_children_all_ended_completes_and_an_empty_one_waits() {
    let registry = Registry::new();
    let report = group("batch", &registry)
        .child("once", |_cancel: CancellationToken| async {
            Ok::<_, String>(())
        })
        .spec(
            Child::new("job", |_c: CancellationToken| async { Err::<(), _>("no") })
                .restart(Restart::Temporary),
        )
        .run(CancellationToken::new())
        .await;
    assert_eq!(report.exit, GroupExit::Completed);
    // A temporary child that failed is forgotten (its ERROR event says it
    // failed), so a group that runs a job per request keeps no list of them.
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(registry.get("job").is_none());
    assert!(report.is_clean());

    let empty = group("empty", &registry);
    let handle = empty.handle();
    let run = tokio::spawn(empty.run(CancellationToken::new()));
    sleep(Duration::from_secs(3600)).await;
    assert!(!run.is_finished(), "an empty group waits for children");
    handle.shutdown();
    assert_eq!(run.await.unwrap().exit, GroupExit::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn adding_and_removing_ten_thousand_children_leaves_nothing_behind() {
    let registry = Registry::new();
    let group = group("churn", &registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline_tasks = metrics.num_alive_tasks();
    let worker = |cancel: CancellationToken| async move { cancel.cancelled().await };
    for round in 0..10 {
        for i in 0..1_000 {
            handle
                .add(Child::new(format!("tenant-{round}-{i}"), worker))
                .unwrap();
        }
        tokio::task::yield_now().await;
        sleep(Duration::from_millis(1)).await;
        assert_eq!(
            registry.snapshot().len(),
            1 + 1_000,
            "round {round}: the group and its children"
        );
        assert_eq!(metrics.num_alive_tasks(), baseline_tasks + 1_000);
        for i in 0..1_000 {
            handle.remove(&format!("tenant-{round}-{i}")).await.unwrap();
        }
        assert!(handle.children().is_empty());
        assert_eq!(
            registry.snapshot().len(),
            1,
            "round {round}: only the group is left"
        );
        assert_eq!(
            metrics.num_alive_tasks(),
            baseline_tasks,
            "round {round}: no task left"
        );
    }
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn every_group_decision_is_one_event_with_group_child_strategy_and_reason() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let log = Log::default();
    let report = group("evented", &registry)
        .strategy(Strategy::RestForOne)
        .max_restarts(1, Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(1))
        .spec(ends_once(&log, "once", End::Error))
        .spec(waiter(&log, "after"))
        .spec(Child::new("always", |_cancel: CancellationToken| async {
            sleep(Duration::from_secs(5)).await;
            Err::<(), _>("still broken")
        }))
        .run(CancellationToken::new())
        .await;
    assert!(
        matches!(report.exit, GroupExit::GaveUp { .. }),
        "{report:?}"
    );
    let all = events.all();
    let find = |message: &str| -> Vec<&common::Captured> {
        all.iter()
            .filter(|e| e.message().starts_with(message))
            .collect()
    };
    let restart = find("child failed: restarting it after the backoff");
    assert_eq!(restart.len(), 1, "{all:#?}");
    assert_eq!(restart[0].level, Level::ERROR);
    assert_eq!(restart[0].field("group"), Some("evented"));
    assert_eq!(restart[0].field("child"), Some("once"));
    assert_eq!(restart[0].field("strategy"), Some("rest_for_one"));
    assert_eq!(restart[0].field("reason"), Some("bad tenant data"));
    let stopped = find("child stopped");
    assert!(
        stopped.iter().any(|e| e.field("child") == Some("after")
            && e.field("reason") == Some("restarted with \"once\"")
            && e.field("took").is_some()),
        "the sibling restarted with it: {stopped:#?}"
    );
    let gave_up = find("group gave up");
    assert_eq!(gave_up.len(), 1);
    assert_eq!(gave_up[0].level, Level::ERROR);
    assert_eq!(
        (
            gave_up[0].field("child"),
            gave_up[0].field("reason"),
            gave_up[0].field("strategy")
        ),
        (Some("always"), Some("still broken"), Some("rest_for_one"))
    );
    assert!(all
        .iter()
        .all(|e| e.target == "supervised" || e.field("span").is_some()));

    // A shutdown: its beginning with the trigger, and an unstopped child.
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("evented-shutdown", &registry)
            .shutdown_timeout(Duration::from_secs(1))
            .child("deaf", |_cancel: CancellationToken| {
                std::future::pending::<()>()
            })
            .run(cancel.clone()),
    );
    sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    run.await.unwrap();
    let all = events.all();
    let begun: Vec<_> = all
        .iter()
        .filter(|e| e.message() == "shutdown begun")
        .collect();
    assert_eq!(begun.len(), 1);
    assert_eq!(
        (
            begun[0].field("group"),
            begun[0].field("trigger"),
            begun[0].field("reason")
        ),
        (Some("evented-shutdown"), Some("token"), Some("shutdown"))
    );
    let unstopped: Vec<_> = all
        .iter()
        .filter(|e| e.message().starts_with("child unstopped"))
        .collect();
    assert_eq!(unstopped.len(), 1);
    assert_eq!(unstopped[0].level, Level::ERROR);
    // It says why and what to do, not only what happened.
    let message = unstopped[0].message();
    assert!(
        message.contains("does not watch the CancellationToken")
            && message.contains("stop_timeout"),
        "{message}"
    );
    assert_eq!(
        (unstopped[0].field("child"), unstopped[0].field("bound")),
        (Some("deaf"), Some("shutdown_timeout"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_temporary_sibling_is_stopped_with_the_others_and_not_started_again() {
    let registry = Registry::new();
    let log = Log::default();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("temporary-sibling", &registry)
            .strategy(Strategy::OneForAll)
            .spec(waiter(&log, "one-off").restart(Restart::Temporary))
            .spec(ends_once(&log, "pool", End::Panic))
            .spec(waiter(&log, "user"))
            .run(cancel.clone()),
    );
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(log.count("start one-off"), 1, "{:?}", log.events());
    assert_eq!(log.count("drop one-off"), 1, "stopped with the others");
    assert_eq!(log.count("start pool"), 2);
    assert_eq!(log.count("start user"), 2);
    assert!(
        registry.get("one-off").is_none(),
        "stopped with its siblings, a temporary child is forgotten"
    );
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn adds_during_a_shutdown_are_refused_and_a_shutdown_asked_before_the_run_ends_it_at_once() {
    let registry = Registry::new();
    let log = Log::default();
    let draining = group("draining", &registry)
        .drain(Duration::from_secs(5))
        .spec(waiter(&log, "a"));
    let handle = draining.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(draining.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        handle.add(waiter(&log, "late")),
        Err(AddError::ShuttingDown)
    );
    assert_eq!(handle.remove("a").await, Err(RemoveError::Ended));
    assert!(run.await.unwrap().is_clean());
    assert_eq!(log.count("start late"), 0);

    let early = group("early", &registry).spec(waiter(&log, "never"));
    early.handle().shutdown();
    let report = early.run(CancellationToken::new()).await;
    assert_eq!(report.exit, GroupExit::Shutdown);
    assert_eq!(report.took, Duration::ZERO);
}

#[test]
#[should_panic(expected = "group \"dup\" has a child named \"twice\" already")]
fn a_name_given_twice_in_the_builder_panics_with_both_names() {
    let worker = |cancel: CancellationToken| async move { cancel.cancelled().await };
    let _ = Group::new("dup")
        .child("twice", worker)
        .child("twice", worker);
}

#[test]
fn handles_are_clone_send_and_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<supervised_core::GroupHandle>();
}

#[tokio::test(start_paused = true)]
async fn a_restarted_nested_group_keeps_its_run_time_children_and_removing_it_takes_them_along() {
    let registry = Registry::new();
    let log = Log::default();
    let tenants = Group::new("tenants")
        .max_restarts(0, Duration::from_secs(60))
        .spec(ends_once(&log, "sync", End::Panic));
    let tenants_handle = tenants.handle();
    tenants_handle.add(waiter(&log, "tenant-7")).unwrap();
    let root = group("svc", &registry).group(tenants);
    let root_handle = root.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(root.run(cancel.clone()));

    // `sync` panics at 1 s; `tenants` allows no restart and gives up; the
    // root restarts it after its 1 s backoff, with the tenant it was given.
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(log.count("start tenant-7"), 2, "{:?}", log.events());
    assert_eq!(log.count("start sync"), 2);
    assert_eq!(registry.get("svc").unwrap().status().restarts, 1);
    assert_eq!(
        tenants_handle
            .children()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["sync", "tenant-7"]
    );

    root_handle.remove("tenants").await.unwrap();
    for gone in ["svc/tenants", "sync", "tenant-7"] {
        assert!(registry.get(gone).is_none(), "{gone} left the registry");
    }
    assert_eq!(log.count("drop tenant-7"), 2);
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_removal_sent_as_a_nested_run_ends_is_answered_not_left_waiting() {
    let registry = Registry::new();
    let log = Log::default();
    // Transient, shut down through its handle: it ends normally and is not
    // restarted, so no later run would ever read a command left queued.
    let nested = Group::new("tenants").spec(waiter(&log, "tenant-1"));
    let handle = nested.handle();
    let cancel = CancellationToken::new();
    // A child of its own keeps the root running (and the nested group's
    // definition alive) after the nested group ends.
    let root = group("svc", &registry)
        .spec(waiter(&log, "core"))
        .group(nested);
    let run = tokio::spawn(root.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    // Sent before the nested run sees its shutdown: the handle still says
    // it runs, and the run reads its trigger first.
    handle.shutdown();
    let removal = tokio::time::timeout(Duration::from_secs(60), handle.remove("tenant-1")).await;
    assert_eq!(
        removal,
        Ok(Err(RemoveError::Ended)),
        "answered, not left waiting"
    );
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn an_add_sent_as_a_nested_run_ends_starts_with_its_next_run() {
    let registry = Registry::new();
    let log = Log::default();
    let nested = Group::new("tenants")
        .restart(Restart::Permanent)
        .spec(waiter(&log, "tenant-1"));
    let handle = nested.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group("svc", &registry).group(nested).run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    handle.shutdown();
    handle.add(waiter(&log, "tenant-2")).unwrap();
    // The parent restarts the permanent nested group after its 1 s backoff,
    // with the child that was added meanwhile.
    sleep(Duration::from_secs(2)).await;
    assert_eq!(log.count("start tenant-1"), 2, "{:?}", log.events());
    assert_eq!(log.count("start tenant-2"), 1, "{:?}", log.events());
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_child_whose_registry_name_is_taken_by_another_entry_is_warned_about() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let log = Log::default();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        group("svc", &registry)
            .spec(waiter(&log, "svc"))
            .group(Group::new("a").spec(waiter(&log, "worker")))
            .group(Group::new("b").spec(waiter(&log, "worker")))
            .spec(waiter(&log, "fine"))
            .run(cancel.clone()),
    );
    sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
    let shared: Vec<_> = events
        .at(Level::WARN)
        .into_iter()
        .filter(|e| e.message().starts_with("a child's registry name is taken"))
        .map(|e| {
            (
                e.field("group").map(str::to_string),
                e.field("child").map(str::to_string),
                e.field("other_kind").map(str::to_string),
                e.field("other_group").map(str::to_string),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        shared,
        [
            (some("svc"), some("svc"), some("group"), some("")),
            (
                some("svc/b"),
                some("worker"),
                some("subsystem"),
                some("svc/a")
            ),
        ],
        "the child named as its group, and the second `worker`; nothing else"
    );
}

/// A zero backoff restarts at once: not at the timer's next tick, a
/// millisecond on, which auto-advancing paused time would show.
#[tokio::test(start_paused = true)]
async fn a_zero_backoff_restarts_without_waiting_for_the_timer() {
    let registry = Registry::new();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&starts);
    let group = Group::new("zero-backoff")
        .registry(&registry)
        .backoff(supervised_core::Backoff::new(
            Duration::ZERO,
            Duration::ZERO,
        ))
        .max_restarts(10, Duration::from_secs(60))
        .spec(
            Child::new("flaky", move |_cancel: CancellationToken| {
                let seen = Arc::clone(&seen);
                async move {
                    let runs = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(Instant::now());
                        seen.len()
                    };
                    if runs < 4 {
                        panic!("run {runs} fails");
                    }
                }
            })
            .restart(Restart::Transient),
        );
    // Off the millisecond grid, so that a timer would round up to the
    // next tick and paused time would advance to it.
    tokio::time::advance(Duration::from_micros(500)).await;
    let report = group.run(CancellationToken::new()).await;
    assert!(
        matches!(report.exit, GroupExit::Completed),
        "{:?}",
        report.exit
    );
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 4);
    assert!(
        starts.iter().all(|at| *at == starts[0]),
        "every restart at the instant of the failure: {starts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_stop_in_a_row_is_bounded_by_its_own_stop_timeout() {
    let log = Log::default();
    let registry = Registry::new();
    let stubborn = |name, timeout| stubborn(&log, name).stop_timeout(Duration::from_secs(timeout));
    let group = group("bounds", &registry)
        .spec(stubborn("two", 2))
        .spec(waiter(&log, "polite"))
        .spec(stubborn("three", 3))
        .spec(stubborn("four", 4));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;

    // One after another, each removal from the moment it begins: a bound
    // that passed (the last removal's) cuts no later stop short, and a
    // later one does not stretch an earlier stop.
    let mut took = Vec::new();
    for name in ["two", "polite", "three"] {
        let begun = Instant::now();
        handle.remove(name).await.unwrap();
        took.push((name, Instant::now() - begun));
    }
    assert_eq!(
        took,
        [
            ("two", Duration::from_secs(2)),
            ("polite", Duration::ZERO),
            ("three", Duration::from_secs(3))
        ]
    );
    // The shutdown's stop of `four` gets its full 4 s too; the report
    // lists the removals' aborts as well.
    cancel.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.unstopped, ["two", "three", "four"]);
    assert_eq!(report.took, Duration::from_secs(4));
    tokio::task::yield_now().await;
    assert_eq!(
        log.events()[1..],
        ["drop two", "drop polite", "drop three", "drop four"]
    );
}

#[tokio::test(start_paused = true)]
async fn an_ended_temporary_child_is_forgotten_its_name_free_and_its_captures_dropped() {
    let registry = Registry::new();
    let group = group("jobs", &registry).spec(waiter(&Log::default(), "static"));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));

    for end in [End::Normal, End::Error, End::Panic] {
        // What the factory captures: dropped with the spec when it ends.
        let captured = Arc::new(());
        let held = Arc::clone(&captured);
        let job = Child::new("job", move |_cancel: CancellationToken| {
            let _held = Arc::clone(&held);
            async move {
                sleep(Duration::from_secs(1)).await;
                match end {
                    End::Normal => Ok(()),
                    End::Error => Err("bad row"),
                    End::Panic => panic!("bad row"),
                }
            }
        })
        .restart(Restart::Temporary);
        handle.add(job).unwrap();
        sleep(Duration::from_millis(500)).await;
        assert!(
            registry.get("job").is_some(),
            "{end:?}: listed while it runs"
        );
        sleep(Duration::from_secs(1)).await;
        let names: Vec<String> = handle.children().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["static"], "{end:?}: gone from children()");
        assert!(
            registry.get("job").is_none(),
            "{end:?}: gone from the registry"
        );
        assert_eq!(
            Arc::strong_count(&captured),
            1,
            "{end:?}: the factory and what it captured are dropped"
        );
        // Its name is free for the next one (the loop's next pass adds it).
    }
    cancel.cancel();
    let report = run.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fleet_added_at_run_time_stops_together_and_the_builders_children_after_it() {
    let registry = Registry::new();
    let log = Log::default();
    let group = group("fleet", &registry)
        .spec(waiter(&log, "pool"))
        .shutdown_timeout(Duration::from_secs(30));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    // 1,000 tenant workers that each take a second to flush once told to
    // stop, and one that never stops, bounded by its own stop timeout.
    for tenant in 0..1000 {
        let log = log.clone();
        handle
            .add(Child::new(
                format!("tenant/{tenant}"),
                move |cancel: CancellationToken| {
                    let log = log.clone();
                    async move {
                        cancel.cancelled().await;
                        sleep(Duration::from_secs(1)).await;
                        if tenant == 999 {
                            log.push("tenant flushed");
                        }
                    }
                },
            ))
            .unwrap();
    }
    handle
        .add(stubborn(&log, "stuck").stop_timeout(Duration::from_secs(2)))
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(handle.children().len(), 1002);

    let begun = Instant::now();
    cancel.cancel();
    let report = run.await.unwrap();
    // All at once: the slowest of the fleet (the stuck one's 2 s bound),
    // not 1,000 s one after another.
    assert_eq!(Instant::now() - begun, Duration::from_secs(2));
    assert_eq!(report.took, Duration::from_secs(2));
    assert_eq!(report.unstopped, ["stuck"]);
    // The builder's child stops after the whole fleet.
    tokio::task::yield_now().await;
    let events = log.events();
    let flushed = events.iter().position(|e| e == "tenant flushed").unwrap();
    let stuck = events.iter().position(|e| e == "drop stuck").unwrap();
    let pool = events.iter().position(|e| e == "drop pool").unwrap();
    assert!(flushed < pool && stuck < pool, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fleet_stop_ends_at_the_shutdown_timeout_and_a_builder_child_still_keeps_its_order() {
    let registry = Registry::new();
    let log = Log::default();
    let group = group("bounded-fleet", &registry)
        .spec(waiter(&log, "first"))
        .spec(waiter(&log, "second"))
        .shutdown_timeout(Duration::from_secs(5));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    for n in 0..3 {
        handle
            .add(stubborn(&log, ["a", "b", "c"][n]).stop_timeout(Duration::from_secs(60)))
            .unwrap();
    }
    sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    let report = run.await.unwrap();
    // The fleet's own 60 s bounds are cut to the shutdown's 5 s, which
    // bounds the whole shutdown: the builder's children, stopped after the
    // fleet, find no time left and are aborted too, last started first.
    assert_eq!(report.took, Duration::from_secs(5));
    assert_eq!(report.unstopped, ["a", "b", "c", "second", "first"]);
    tokio::task::yield_now().await;
    let events = log.events();
    let stops: Vec<&String> = events.iter().filter(|e| e.starts_with("drop")).collect();
    assert_eq!(stops[3..], ["drop second", "drop first"], "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn under_rest_for_one_removing_a_child_that_backs_off_leaves_the_later_ones_stopped() {
    let registry = Registry::new();
    let log = Log::default();
    let group = group("chain", &registry)
        .strategy(Strategy::RestForOne)
        .spec(waiter(&log, "before"))
        .spec(ends_once(&log, "pool", End::Panic))
        .spec(waiter(&log, "user"));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    // The pool fails at 1 s; `user` is stopped for the 1 s backoff.
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        registry.get("user").unwrap().state(),
        SubsystemState::BackingOff
    );
    handle.remove("pool").await.unwrap();
    sleep(Duration::from_secs(10)).await;
    assert_eq!(log.count("start user"), 1, "{:?}", log.events());
    assert_eq!(log.count("start before"), 1);
    assert_eq!(
        registry.get("user").unwrap().state(),
        SubsystemState::Stopped
    );
    let states: Vec<(String, SubsystemState)> = handle
        .children()
        .into_iter()
        .map(|c| (c.name, c.state))
        .collect();
    assert_eq!(
        states,
        [
            ("before".to_string(), SubsystemState::Running),
            ("user".to_string(), SubsystemState::Stopped)
        ]
    );
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_kept_receiver_loses_no_queued_message_when_the_group_restarts_its_child() {
    let registry = Registry::new();
    let (send, jobs) = tokio::sync::mpsc::channel::<u32>(64);
    let received = Log::default();
    let seen = received.clone();
    let relay = Child::keep(
        "relay",
        jobs,
        move |mut jobs: supervised_core::Lent<tokio::sync::mpsc::Receiver<u32>>,
              cancel: CancellationToken| {
            let seen = seen.clone();
            async move {
                seen.push("start");
                // One job a second, so jobs queue up behind it.
                while let Some(Some(job)) = cancel.run_until_cancelled(jobs.recv()).await {
                    seen.push(job.to_string());
                    if cancel
                        .run_until_cancelled(sleep(Duration::from_secs(1)))
                        .await
                        .is_none()
                    {
                        break;
                    }
                }
            }
        },
    );
    let group = group("relays", &registry)
        .strategy(Strategy::OneForAll)
        .spec(relay)
        .spec(ends_once(&Log::default(), "pool", End::Panic));
    let cancel = CancellationToken::new();
    for job in 1..=6 {
        send.send(job).await.unwrap();
    }
    let run = tokio::spawn(group.run(cancel.clone()));
    // The pool panics at 1 s: the relay is stopped with jobs still queued,
    // and started again after the 1 s backoff with the same receiver.
    sleep(Duration::from_secs(10)).await;
    let events = received.events();
    assert_eq!(
        events.iter().filter(|e| *e == "start").count(),
        2,
        "{events:?}"
    );
    let jobs: Vec<&String> = events.iter().filter(|e| *e != "start").collect();
    assert_eq!(jobs, ["1", "2", "3", "4", "5", "6"], "{events:?}");
    // And the channel is still open to the relay.
    send.send(7).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(received.events().last().map(String::as_str), Some("7"));
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}
