//! `GroupHandle::pause` and `resume`, on paused time: a paused child is
//! stopped, kept with its record, never restarted (not even with its
//! siblings), neither stale nor failed, and not waited for by readiness.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supervised_core::{
    CancellationToken, Child, Group, GroupHandle, PauseError, Registry, Strategy, SubsystemState,
};
use tokio::time::sleep;

/// A child that counts its runs, declares a 1 s tick and beats every
/// second until cancelled; with `panic_first`, its first run panics.
fn counted(name: &'static str, runs: Arc<AtomicU32>, panic_first: bool) -> Child {
    Child::new(name, move |cancel: CancellationToken| {
        let run = runs.fetch_add(1, Ordering::SeqCst);
        async move {
            supervised_core::current()
                .expect("current")
                .declare_tick(Some(Duration::from_secs(1)), None);
            if panic_first && run == 0 {
                sleep(Duration::from_secs(5)).await;
                panic!("tenant data");
            }
            while !cancel.is_cancelled() {
                supervised_core::beat();
                tokio::select! {
                    () = sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => {}
                }
            }
        }
    })
}

fn state_of(handle: &GroupHandle, name: &str) -> SubsystemState {
    handle
        .children()
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.state)
        .unwrap_or_else(|| panic!("no child {name}"))
}

#[tokio::test(start_paused = true)]
async fn a_paused_child_stops_keeps_its_record_and_resumes() {
    let registry = Registry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let group =
        Group::new("tenants")
            .registry(&registry)
            .spec(counted("tenant/acme", runs.clone(), true));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    // Its first run panics at 5 s; the group restarts it.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let entry = registry.get("tenant/acme").expect("an entry");
    assert_eq!(entry.restarts(), 1);

    handle.pause("tenant/acme").await.unwrap();
    assert_eq!(state_of(&handle, "tenant/acme"), SubsystemState::Paused);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "never restarted while paused"
    );
    let status = entry.status();
    assert_eq!(status.state, SubsystemState::Paused);
    assert!(
        !status.stale,
        "silent for a minute with a 1 s tick, but paused"
    );
    assert!(status.healthy);
    assert_eq!(status.restarts, 1, "its record is kept");
    assert!(status.last_panic.is_some());
    assert!(registry.health().is_ok(), "{:?}", registry.health());
    assert!(registry.readiness().is_ready());
    // Pausing again does nothing.
    handle.pause("tenant/acme").await.unwrap();

    handle.resume("tenant/acme").await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(state_of(&handle, "tenant/acme"), SubsystemState::Running);
    sleep(Duration::from_secs(3)).await;
    assert!(entry.status().healthy);
    assert_eq!(entry.status().consecutive_failures, 0);
    // Resuming a running child does nothing.
    handle.resume("tenant/acme").await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn siblings_restarting_together_leave_a_paused_child_stopped() {
    let registry = Registry::new();
    let (a, b, c) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let group = Group::new("all")
        .registry(&registry)
        .strategy(Strategy::OneForAll)
        .spec(counted("a", a.clone(), true))
        .spec(counted("b", b.clone(), false))
        .spec(counted("c", c.clone(), false));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    handle.pause("b").await.unwrap();
    // `a` panics at 5 s: the group restarts a and c, not b.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(a.load(Ordering::SeqCst), 2);
    assert_eq!(c.load(Ordering::SeqCst), 2);
    assert_eq!(b.load(Ordering::SeqCst), 1, "b stays paused");
    assert_eq!(state_of(&handle, "b"), SubsystemState::Paused);
    assert_eq!(registry.get("b").unwrap().state(), SubsystemState::Paused);
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_group_whose_children_are_all_paused_keeps_running() {
    let runs = Arc::new(AtomicU32::new(0));
    let group =
        Group::new("one")
            .registry(&Registry::new())
            .spec(counted("only", runs.clone(), false));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    handle.pause("only").await.unwrap();
    sleep(Duration::from_secs(30)).await;
    assert!(!run.is_finished(), "a paused child is kept to be resumed");
    handle.resume("only").await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[tokio::test(start_paused = true)]
async fn pause_and_resume_say_why_they_cannot() {
    let registry = Registry::new();
    let nested = Group::new("inner").child("x", |cancel: CancellationToken| async move {
        cancel.cancelled().await;
    });
    let group = Group::new("outer").registry(&registry).group(nested);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        handle.pause("nobody").await,
        Err(PauseError::NotFound("nobody".into()))
    );
    assert_eq!(
        handle.resume("nobody").await,
        Err(PauseError::NotFound("nobody".into()))
    );
    assert_eq!(
        handle.pause("inner").await,
        Err(PauseError::NestedGroup("inner".into()))
    );
    cancel.cancel();
    run.await.unwrap();
    assert_eq!(handle.pause("inner").await, Err(PauseError::Ended));
    assert!(PauseError::Ended.to_string().contains("ended"));
}

/// A child that declares a 1 s tick, beats first after `first`, then every
/// second.
fn tenant(name: String, first: Duration) -> Child {
    Child::new(name, move |cancel: CancellationToken| async move {
        supervised_core::current()
            .expect("current")
            .declare_tick(Some(Duration::from_secs(1)), None);
        sleep(first).await;
        while !cancel.is_cancelled() {
            supervised_core::beat();
            tokio::select! {
                () = sleep(Duration::from_secs(1)) => {}
                () = cancel.cancelled() => {}
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_group_judged_by_share_is_healthy_and_ready_while_enough_children_are() {
    let registry = Registry::new();
    let mut group = Group::new("tenants")
        .registry(&registry)
        .min_healthy_percent(80);
    // Ten tenants; 8 beat at once, 2 only after 10 s.
    for t in 0..10 {
        let first = if t < 8 {
            Duration::ZERO
        } else {
            Duration::from_secs(10)
        };
        group = group.spec(tenant(format!("tenant/{t}"), first));
    }
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_millis(100)).await;
    // 8 of 10 beat: ready at 80%, though two have not.
    assert!(
        registry.readiness().is_ready(),
        "{:?}",
        registry.readiness()
    );
    sleep(Duration::from_secs(3)).await;
    // The two silent ones are stale now, and advisory: 80% healthy is enough.
    let health = registry.health();
    assert_eq!(health.stale, Vec::<String>::new(), "children are advisory");
    assert!(health.is_ok(), "{health:?}");
    assert!(registry.get("tenant/9").unwrap().status().stale);
    assert!(registry.get("tenant/9").unwrap().status().advisory);

    // Pausing a healthy one leaves it out of the count: 7 healthy of 9 is
    // 77%, below 80%.
    handle.pause("tenant/0").await.unwrap();
    let health = registry.health();
    assert_eq!(health.below_min_healthy, ["tenants"], "{health:?}");
    assert!(!health.is_ok());
    // Once the late two beat, 9 of 9.
    sleep(Duration::from_secs(8)).await;
    assert!(registry.health().is_ok(), "{:?}", registry.health());
    cancel.cancel();
    run.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_the_share_of_first_beats() {
    let registry = Registry::new();
    let mut group = Group::new("fleet")
        .registry(&registry)
        .min_healthy_percent(50);
    for t in 0..4 {
        let first = Duration::from_secs(1 + t);
        group = group.spec(tenant(format!("w/{t}"), first));
    }
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_millis(1_500)).await;
    // One of four has beaten: the group is waited for, not its children.
    match registry.readiness() {
        supervised_core::Readiness::Starting { waiting } => assert_eq!(waiting, ["fleet"]),
        other => panic!("{other:?}"),
    }
    sleep(Duration::from_secs(1)).await;
    assert!(registry.readiness().is_ready(), "two of four: 50%");
    cancel.cancel();
    run.await.unwrap();
}

#[test]
#[should_panic(expected = "Group::min_healthy_percent takes 1 to 100, got 101")]
fn a_share_above_100_is_refused() {
    let _ = Group::new("g").min_healthy_percent(101);
}

/// A child that panics in its cleanup while the group stops it (here, a
/// pause) is not restarted, but its panic is kept on its entry (and
/// logged), never dropped.
#[tokio::test(start_paused = true)]
async fn a_panic_while_being_stopped_is_kept_on_the_entry() {
    let registry = Registry::new();
    let group = Group::new("g").registry(&registry).child(
        "flushes",
        |cancel: CancellationToken| async move {
            cancel.cancelled().await;
            if cancel.is_cancelled() {
                panic!("flush failed");
            }
        },
    );
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_secs(1)).await;
    handle.pause("flushes").await.unwrap();
    let status = registry.get("flushes").unwrap().status();
    assert_eq!(status.state, SubsystemState::Paused);
    let panic = status.last_panic.expect("the panic is kept");
    assert_eq!(panic.message, "flush failed");
    assert!(panic.location.is_some_and(|l| l.contains("group_pause.rs")));
    cancel.cancel();
    run.await.unwrap();
}

/// Pausing a child that backs off before its restart cancels the restart;
/// a paused child of the fleet can be removed, and its name reused.
#[tokio::test(start_paused = true)]
async fn a_backing_off_child_paused_is_not_restarted_and_a_paused_one_can_be_removed() {
    let registry = Registry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let group = Group::new("g")
        .registry(&registry)
        .backoff(supervised_core::Backoff::new(
            Duration::from_secs(30),
            Duration::from_secs(30),
        ));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    // Added at run time (the fleet); panics at 5 s, then backs off 30 s.
    handle.add(counted("tenant/x", runs.clone(), true)).unwrap();
    sleep(Duration::from_secs(6)).await;
    assert_eq!(state_of(&handle, "tenant/x"), SubsystemState::BackingOff);
    handle.pause("tenant/x").await.unwrap();
    assert_eq!(state_of(&handle, "tenant/x"), SubsystemState::Paused);
    let status = registry.get("tenant/x").unwrap().status();
    assert_eq!(status.state, SubsystemState::Paused);
    assert_eq!(status.next_restart_at, None, "no restart is due");
    sleep(Duration::from_secs(60)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the due restart was cancelled"
    );

    handle.remove("tenant/x").await.unwrap();
    assert!(registry.get("tenant/x").is_none());
    assert!(handle.children().is_empty());
    handle
        .add(counted("tenant/x", runs.clone(), false))
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(state_of(&handle, "tenant/x"), SubsystemState::Running);
    cancel.cancel();
    run.await.unwrap();
}

/// A nested group restarted by its parent keeps its paused child paused.
#[tokio::test(start_paused = true)]
async fn a_nested_group_restarted_keeps_its_paused_child_paused() {
    let registry = Registry::new();
    let (kept, crasher) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let inner = Group::new("inner")
        .max_restarts(0, Duration::from_secs(60))
        .spec(counted("kept", kept.clone(), false))
        .spec(counted("crasher", crasher.clone(), true));
    let inner_handle = inner.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("outer")
            .registry(&registry)
            .group(inner.restart(supervised_core::Restart::Permanent))
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(1)).await;
    inner_handle.pause("kept").await.unwrap();
    // `crasher` panics at 5 s: `inner` gives up at once and `outer`
    // restarts it; `kept` stays paused through it.
    sleep(Duration::from_secs(10)).await;
    assert!(crasher.load(Ordering::SeqCst) >= 2, "inner was restarted");
    assert_eq!(kept.load(Ordering::SeqCst), 1, "kept never ran again");
    assert_eq!(
        registry.get("kept").unwrap().state(),
        SubsystemState::Paused
    );
    cancel.cancel();
    run.await.unwrap();
}
