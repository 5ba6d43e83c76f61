//! `Group` with the real attribute: the registry names of children made
//! from one `#[supervised]` fn, which layer restarts a supervised child,
//! and kept arguments as group children. (Signals: `second_signal.rs`.)

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised::{
    supervised, CancellationToken, Child, Group, GroupExit, Lent, Registry, Restart, Strategy,
    SubsystemKind, SubsystemState,
};
use tokio::sync::mpsc;

#[supervised(name = "channel", tick = "1s")]
async fn channel(kind: &'static str, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while !cancel.is_cancelled() {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if kind == "slack" {
            // A supervised fn the child calls keeps its own name.
            helper().await;
        }
    }
}

#[supervised(name = "slack-helper")]
async fn helper() {
    #[allow(clippy::never_loop)]
    for _ in 0..1 {
        break;
    }
}

#[tokio::test(start_paused = true)]
async fn children_made_from_one_supervised_fn_register_under_their_child_names() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("tenants")
            .registry(&registry)
            .child("channel/telegram", |cancel| channel("telegram", cancel))
            .child("channel/slack", |cancel| channel("slack", cancel))
            .run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for name in ["channel/telegram", "channel/slack"] {
        let status = registry
            .get(name)
            .expect("registered under the child's name")
            .status();
        assert_eq!(status.beats, 3, "{name}: beats at 0 s, 1 s and 2 s");
        assert_eq!(
            status.tick,
            Some(Duration::from_secs(1)),
            "{name}: the attribute's tick"
        );
        assert_eq!(
            (status.kind, status.group.as_deref()),
            (SubsystemKind::Subsystem, Some("tenants"))
        );
    }
    assert!(
        registry.get("channel").is_none(),
        "not under the attribute's name in the group's registry"
    );
    assert!(
        supervised::registry().get("channel").is_none(),
        "nor in the process-wide one"
    );
    // The inner fn runs in the process-wide registry, under its own name.
    assert!(supervised::registry().get("slack-helper").is_some());
    assert!(registry.get("slack-helper").is_none());
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[supervised(name = "solo", tick = "1s")]
async fn solo(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        cancel.cancelled().await;
    }
}

#[tokio::test(start_paused = true)]
async fn outside_a_group_the_attribute_name_applies() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    solo(cancel).await;
    let status = supervised::registry()
        .get("solo")
        .expect("the attribute's name")
        .status();
    assert_eq!(
        (status.kind, status.group),
        (SubsystemKind::Subsystem, None)
    );
}

#[tokio::test(start_paused = true)]
async fn a_subsystem_registered_in_the_factory_itself_takes_the_child_name_too() {
    static SUPERVISOR: supervised::Supervisor = supervised::Supervisor::new();
    let registry = Registry::new();
    let report = Group::new("by-hand")
        .registry(&registry)
        .child("hand-written", |cancel| {
            // Registered in the factory call, before any poll.
            let sub = SUPERVISOR.register("its-own-name");
            async move {
                SUPERVISOR
                    .run_registered(cancel, &sub, |_cancel| async {
                        supervised::beat();
                    })
                    .await;
            }
        })
        .run(CancellationToken::new())
        .await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(registry.get("hand-written").map(|s| s.beats()), Some(1));
    assert!(registry.get("its-own-name").is_none());
    assert!(supervised::registry().get("its-own-name").is_none());
}

// ---- one restart authority ---------------------------------------------------

/// Starts of each child, in order.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<&'static str>>>);

impl Starts {
    fn push(&self, name: &'static str) {
        self.0.lock().unwrap().push(name);
    }
    fn count(&self, name: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| **n == name)
            .count()
    }
}

/// A pool loop that panics on its first iteration after 1 s (a tenant's
/// bad row), then ticks until cancelled.
#[supervised(name = "pool", tick = "1s")]
async fn pool(runs: Arc<AtomicU32>, starts: Starts, cancel: CancellationToken) {
    starts.push("pool");
    let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if first {
            panic!("tenant 7's row broke the pool");
        }
    }
}

fn waiter(starts: &Starts, name: &'static str) -> Child {
    let starts = starts.clone();
    Child::new(name, move |cancel: CancellationToken| {
        let starts = starts.clone();
        async move {
            starts.push(name);
            cancel.cancelled().await;
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_supervised_childs_panic_applies_the_groups_strategy() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let registry = Registry::new();
        let starts = Starts::default();
        let runs = Arc::new(AtomicU32::new(0));
        let (runs_in, starts_in) = (runs.clone(), starts.clone());
        let cancel = CancellationToken::new();
        let run = tokio::spawn(
            Group::new("platform")
                .registry(&registry)
                .strategy(strategy)
                .spec(waiter(&starts, "before"))
                .child("pool", move |cancel| {
                    pool(runs_in.clone(), starts_in.clone(), cancel)
                })
                .spec(waiter(&starts, "user"))
                .run(cancel.clone()),
        );
        // The panic at 1 s; the group's backoff is 1 s.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = registry.get("pool").unwrap().status();
        assert_eq!(status.state, SubsystemState::BackingOff, "{strategy:?}");
        assert_eq!(status.restarts, 1, "{strategy:?}");
        assert_eq!(status.consecutive_failures, 1, "{strategy:?}");
        assert!(status.next_restart_at.is_some(), "{strategy:?}");
        let panic = status.last_panic.expect("the panic is recorded");
        assert_eq!(panic.message, "tenant 7's row broke the pool");
        assert!(
            panic
                .location
                .as_deref()
                .is_some_and(|at| at.contains("tests/group.rs")),
            "{strategy:?}: the panic's own location: {:?}",
            panic.location
        );
        assert_eq!(
            registry.get("user").unwrap().state(),
            SubsystemState::BackingOff,
            "{strategy:?}: the sibling after it is stopped for the restart"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            starts.count("pool"),
            2,
            "{strategy:?}: restarted once, by the group"
        );
        assert_eq!(starts.count("user"), 2, "{strategy:?}: restarted with it");
        let before = match strategy {
            Strategy::OneForAll => 2,
            _ => 1,
        };
        assert_eq!(starts.count("before"), before, "{strategy:?}");
        assert_eq!(registry.get("platform").unwrap().status().restarts, 1);
        assert_eq!(
            registry.get("pool").unwrap().state(),
            SubsystemState::Running
        );
        cancel.cancel();
        assert!(run.await.unwrap().is_clean(), "{strategy:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn under_one_for_one_a_supervised_child_restarts_itself_and_its_siblings_run_on() {
    let registry = Registry::new();
    let starts = Starts::default();
    let runs = Arc::new(AtomicU32::new(0));
    let (runs_in, starts_in) = (runs.clone(), starts.clone());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("platform")
            .registry(&registry)
            .child("pool", move |cancel| {
                pool(runs_in.clone(), starts_in.clone(), cancel)
            })
            .spec(waiter(&starts, "user"))
            .run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The fn's own backoff (1 s) restarted it; the group saw nothing.
    assert_eq!(starts.count("pool"), 2);
    assert_eq!(starts.count("user"), 1);
    let status = registry.get("pool").unwrap().status();
    assert_eq!(
        (status.restarts, status.state),
        (1, SubsystemState::Running)
    );
    assert!(status.last_panic.is_some());
    assert_eq!(registry.get("platform").unwrap().status().restarts, 0);
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

/// Panics a second into every run; on its own, it would restart itself up
/// to 100 times a minute.
#[supervised(name = "flaky", max_restarts = 100, within = "1m")]
async fn flaky(starts: Starts, cancel: CancellationToken) {
    starts.push("flaky");
    while !cancel.is_cancelled() {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => panic!("always"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn under_one_for_all_the_groups_intensity_gives_up_not_the_fns_own() {
    let registry = Registry::new();
    let starts = Starts::default();
    let starts_in = starts.clone();
    let report = Group::new("strict")
        .registry(&registry)
        .strategy(Strategy::OneForAll)
        .max_restarts(2, Duration::from_secs(60))
        .child("flaky", move |cancel| flaky(starts_in.clone(), cancel))
        .run(CancellationToken::new())
        .await;
    // Three runs: two restarts admitted, the third failure gives up.
    assert_eq!(starts.count("flaky"), 3);
    assert!(
        matches!(&report.exit, GroupExit::GaveUp { child, failure }
            if child == "flaky" && failure.contains("always")),
        "{report:?}"
    );
    let status = registry.get("flaky").unwrap().status();
    assert_eq!(status.state, SubsystemState::Failed);
    assert_eq!(status.consecutive_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn a_temporary_supervised_child_is_not_restarted_by_its_own_fn() {
    let registry = Registry::new();
    let starts = Starts::default();
    let starts_in = starts.clone();
    let group = Group::new("jobs").registry(&registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    handle
        .add(
            Child::new("job", move |cancel| flaky(starts_in.clone(), cancel))
                .restart(Restart::Temporary),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(starts.count("flaky"), 1, "a temporary child runs once");
    assert!(registry.get("job").is_none(), "and is forgotten");
    assert!(handle.children().is_empty());
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

// ---- kept state --------------------------------------------------------------

/// A relay that handles one job a second and panics on job 3.
#[supervised(name = "relay", keep(jobs))]
async fn relay(
    mut jobs: Lent<mpsc::Receiver<u32>>,
    seen: Arc<Mutex<Vec<u32>>>,
    cancel: CancellationToken,
) {
    while let Some(Some(job)) = cancel.run_until_cancelled(jobs.recv()).await {
        seen.lock().unwrap().push(job);
        if job == 3 {
            panic!("job 3 is malformed");
        }
        if cancel
            .run_until_cancelled(tokio::time::sleep(Duration::from_secs(1)))
            .await
            .is_none()
        {
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_kept_receiver_loses_no_queued_job_whichever_layer_restarts_the_relay() {
    for strategy in [Strategy::OneForOne, Strategy::OneForAll] {
        let registry = Registry::new();
        let (send, jobs) = mpsc::channel(64);
        for job in 1..=8 {
            send.send(job).await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_in = seen.clone();
        let starts = Starts::default();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(
            Group::new("relays")
                .registry(&registry)
                .strategy(strategy)
                .spec(Child::keep("relay", jobs, move |jobs, cancel| {
                    relay(jobs, seen_in.clone(), cancel)
                }))
                .spec(waiter(&starts, "sibling"))
                .run(cancel.clone()),
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        // Job 3's panic is the only failure; every queued job is handled
        // once, in order, by the same receiver.
        assert_eq!(
            *seen.lock().unwrap(),
            (1..=8).collect::<Vec<_>>(),
            "{strategy:?}"
        );
        let status = registry.get("relay").unwrap().status();
        assert_eq!(status.restarts, 1, "{strategy:?}");
        let siblings = match strategy {
            Strategy::OneForOne => 1,
            _ => 2,
        };
        assert_eq!(starts.count("sibling"), siblings, "{strategy:?}");
        send.send(9).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().unwrap().last(), Some(&9), "{strategy:?}");
        cancel.cancel();
        assert!(run.await.unwrap().is_clean(), "{strategy:?}");
    }
}

/// A lease-gated `#[supervised]` child under `OneForAll`: the group is the
/// authority, and the failure it records still carries the panic's own
/// location, though the child's end reaches it only after the lease is
/// released, polls later.
#[tokio::test(start_paused = true)]
async fn a_gated_supervised_childs_failure_keeps_its_location() {
    let registry = Registry::new();
    let starts = Starts::default();
    let runs = Arc::new(AtomicU32::new(0));
    let (runs_in, starts_in) = (runs.clone(), starts.clone());
    let leases: Arc<dyn supervised::lease::Backend> =
        Arc::new(supervised::lease::Memory::new("replica-a"));
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("platform")
            .registry(&registry)
            .strategy(Strategy::OneForAll)
            .spec(
                Child::new("pool", move |cancel| {
                    pool(runs_in.clone(), starts_in.clone(), cancel)
                })
                .lease("pool")
                .lease_backend(leases),
            )
            .spec(waiter(&starts, "user"))
            .run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = registry.get("pool").unwrap().status();
    let panic = status.last_panic.expect("the panic is recorded");
    assert_eq!(panic.message, "tenant 7's row broke the pool");
    assert!(
        panic
            .location
            .as_deref()
            .is_some_and(|at| at.contains("tests/group.rs")),
        "{:?}",
        panic.location
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(starts.count("user"), 2, "restarted with it by the group");
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}
