//! Cases of Erlang/OTP's own `supervisor_SUITE` (stdlib's test suite for
//! `supervisor`), written for `Group` on paused time. Each test names the
//! OTP case it follows; where `Group` differs on purpose, the test checks
//! the documented difference (see "Differences from OTP" on `Group`).
//!
//! OTP's `terminate_child` + `delete_child` is `GroupHandle::remove`, its
//! `start_child` is `GroupHandle::add`, `which_children` is
//! `GroupHandle::children`, and `simple_one_for_one` children are the ones
//! added at run time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::{
    AddError, CancellationToken, Child, Group, GroupExit, Registry, RemoveError, Restart, Strategy,
    SubsystemState,
};
use tokio::time::{sleep, Instant};

/// A child that waits for its token and counts its starts.
fn waiter(name: &'static str, starts: &Arc<AtomicU32>) -> Child {
    let starts = Arc::clone(starts);
    Child::new(name, move |cancel: CancellationToken| {
        starts.fetch_add(1, Ordering::SeqCst);
        async move { cancel.cancelled().await }
    })
}

/// A child that fails `at` after each start, every time.
fn failing(name: &'static str, at: Duration, starts: &Arc<AtomicU32>) -> Child {
    let starts = Arc::clone(starts);
    Child::new(name, move |_cancel: CancellationToken| {
        starts.fetch_add(1, Ordering::SeqCst);
        async move {
            sleep(at).await;
            Err::<(), _>("abnormal")
        }
    })
}

fn names(group: &supervised_core::GroupHandle) -> Vec<String> {
    group.children().into_iter().map(|c| c.name).collect()
}

/// `sup_stop_timeout` and `sup_stop_brutal_kill`: a child that ends when
/// told stops cleanly; one that does not is killed at its shutdown time; a
/// zero stop timeout (OTP's `brutal_kill`) kills at once.
#[tokio::test(start_paused = true)]
async fn sup_stop_timeout_and_sup_stop_brutal_kill() {
    let starts = Arc::new(AtomicU32::new(0));
    let sleeper = Child::new("child2", |_cancel: CancellationToken| {
        std::future::pending::<()>()
    })
    .stop_timeout(Duration::from_secs(1));
    let brutal = Child::new("child3", |cancel: CancellationToken| async move {
        // Would stop in a second if it were given one.
        cancel.cancelled().await;
        sleep(Duration::from_secs(1)).await;
    })
    .stop_timeout(Duration::ZERO);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("sup_test")
            .registry(&Registry::new())
            .spec(waiter("child1", &starts))
            .spec(sleeper)
            .spec(brutal)
            .run(cancel.clone()),
    );
    sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    let report = run.await.unwrap();
    // Reverse order: child3 killed at once, child2 after its 1 s, child1
    // stopped cleanly.
    assert_eq!(report.unstopped, ["child3", "child2"]);
    assert_eq!(report.took, Duration::from_secs(1));
    assert_eq!(report.exit, GroupExit::Shutdown);
}

/// `temporary_normal`, `temporary_abnormal` and `temporary_shutdown`: a
/// temporary child is never restarted and leaves `which_children` however
/// it ends, and `start_child` of the same spec works again.
#[tokio::test(start_paused = true)]
async fn temporary_normal_abnormal_and_shutdown() {
    let registry = Registry::new();
    let group = Group::new("sup_test").registry(&registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    let starts = Arc::new(AtomicU32::new(0));

    // Normal, then abnormal.
    let normal = Child::new("child1", |_c: CancellationToken| async {}).restart(Restart::Temporary);
    handle.add(normal).unwrap();
    sleep(Duration::from_millis(1)).await;
    assert!(names(&handle).is_empty());
    handle
        .add(failing("child1", Duration::from_millis(5), &starts).restart(Restart::Temporary))
        .unwrap();
    sleep(Duration::from_secs(5)).await;
    assert!(names(&handle).is_empty());
    assert_eq!(starts.load(Ordering::SeqCst), 1, "never restarted");

    // Shut down by the supervisor (terminate_child): gone as well.
    handle
        .add(waiter("child1", &starts).restart(Restart::Temporary))
        .unwrap();
    sleep(Duration::from_millis(1)).await;
    assert_eq!(names(&handle), ["child1"]);
    handle.remove("child1").await.unwrap();
    assert!(names(&handle).is_empty());
    assert!(registry.get("child1").is_none());
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

/// `temporary_bystander`: a temporary child stopped by a `one_for_all` or
/// `rest_for_one` restart is not restarted, so the supervisor neither
/// crashes nor reaches its intensity for it.
#[tokio::test(start_paused = true)]
async fn temporary_bystander() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let starts = Arc::new(AtomicU32::new(0));
        let bystander_starts = Arc::new(AtomicU32::new(0));
        let group = Group::new("sup_test")
            .registry(&Registry::new())
            .strategy(strategy)
            .max_restarts(2, Duration::from_secs(300))
            .spec(
                Child::new("child1", {
                    let starts = Arc::clone(&starts);
                    move |cancel: CancellationToken| {
                        let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
                        async move {
                            if first {
                                sleep(Duration::from_millis(100)).await;
                                return;
                            }
                            cancel.cancelled().await;
                        }
                    }
                })
                .restart(Restart::Permanent),
            )
            .spec(waiter("child2", &bystander_starts).restart(Restart::Temporary));
        let handle = group.handle();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(group.run(cancel.clone()));
        sleep(Duration::from_millis(3500)).await;
        assert!(!run.is_finished(), "{strategy:?}: the supervisor is alive");
        assert_eq!(names(&handle), ["child1"], "{strategy:?}");
        assert_eq!(starts.load(Ordering::SeqCst), 2, "{strategy:?}");
        assert_eq!(bystander_starts.load(Ordering::SeqCst), 1, "{strategy:?}");
        cancel.cancel();
        assert!(run.await.unwrap().is_clean(), "{strategy:?}");
    }
}

/// `multiple_restarts`: restarts spaced beyond the period never add up to
/// the intensity (1 restart a second here).
#[tokio::test(start_paused = true)]
async fn multiple_restarts() {
    let starts = Arc::new(AtomicU32::new(0));
    let report = Group::new("sup_test")
        .registry(&Registry::new())
        .max_restarts(1, Duration::from_secs(1))
        .backoff(supervised_core::Backoff::new(
            Duration::ZERO,
            Duration::ZERO,
        ))
        .spec(failing("child1", Duration::from_millis(2100), &starts).restart(Restart::Permanent))
        .run({
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                sleep(Duration::from_millis(2100 * 4 + 50)).await;
                stop.cancel();
            });
            cancel
        })
        .await;
    assert_eq!(report.exit, GroupExit::Shutdown, "{report:?}");
    assert_eq!(starts.load(Ordering::SeqCst), 5);
}

/// `one_for_one` and `one_for_one_escalation`, `one_for_all_escalation`,
/// `rest_for_one_escalation`: the restart past the intensity makes the
/// supervisor give up and stop every child.
#[tokio::test(start_paused = true)]
async fn escalation_under_every_strategy() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        let (starts, other) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let report = Group::new("sup_test")
            .registry(&Registry::new())
            .strategy(strategy)
            .max_restarts(2, Duration::from_secs(3600))
            .spec(failing("child1", Duration::from_secs(1), &starts))
            .spec(waiter("child2", &other))
            .run(CancellationToken::new())
            .await;
        assert!(
            matches!(&report.exit, GroupExit::GaveUp { child, .. } if child == "child1"),
            "{strategy:?}: {report:?}"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 3, "{strategy:?}");
        assert!(report.unstopped.is_empty(), "{strategy:?}");
    }
}

/// `one_for_all_other_child_fails_restart`, in `Group`'s terms: a sibling
/// that fails while it is being stopped for another child's restart
/// starts no second restart and uses no intensity.
#[tokio::test(start_paused = true)]
async fn a_sibling_failing_during_another_childs_restart() {
    let (starts, sibling_starts) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let sibling = {
        let starts = Arc::clone(&sibling_starts);
        Child::new("child2", move |cancel: CancellationToken| {
            starts.fetch_add(1, Ordering::SeqCst);
            async move {
                cancel.cancelled().await;
                // Fails as it is stopped.
                sleep(Duration::from_millis(500)).await;
                Err::<(), _>("failed while stopping")
            }
        })
    };
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("sup_test")
            .registry(&registry)
            .strategy(Strategy::OneForAll)
            // One restart allowed: a second would give up.
            .max_restarts(1, Duration::from_secs(3600))
            .spec(Child::new("child1", {
                let starts = Arc::clone(&starts);
                move |cancel: CancellationToken| {
                    let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
                    async move {
                        if first {
                            sleep(Duration::from_secs(1)).await;
                            return Err("abnormal");
                        }
                        cancel.cancelled().await;
                        Ok(())
                    }
                }
            }))
            .spec(sibling)
            .run(cancel.clone()),
    );
    sleep(Duration::from_secs(5)).await;
    assert!(!run.is_finished(), "no second restart, no give-up");
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(sibling_starts.load(Ordering::SeqCst), 2);
    assert_eq!(registry.get("sup_test").unwrap().status().restarts, 1);
    assert_eq!(
        registry.get("child2").unwrap().state(),
        SubsystemState::Running
    );
    cancel.cancel();
    // Its failure on this stop too is a stop, not a failure to report.
    let report = run.await.unwrap();
    assert_eq!(report.exit, GroupExit::Shutdown);
}

/// `child_adm`: start, terminate and delete by name; a name given twice is
/// refused; a deleted child's name is free again; an unknown name is
/// `not_found`.
#[tokio::test(start_paused = true)]
async fn child_adm() {
    let starts = Arc::new(AtomicU32::new(0));
    let group = Group::new("sup_test")
        .registry(&Registry::new())
        .spec(waiter("child1", &starts));
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(
        handle.add(waiter("child1", &starts)),
        Err(AddError::Duplicate("child1".to_string()))
    );
    assert_eq!(
        handle.remove("hej").await,
        Err(RemoveError::NotFound("hej".to_string()))
    );
    handle.remove("child1").await.unwrap();
    assert!(names(&handle).is_empty());
    assert_eq!(
        handle.remove("child1").await,
        Err(RemoveError::NotFound("child1".to_string()))
    );
    handle.add(waiter("child1", &starts)).unwrap();
    sleep(Duration::from_millis(1)).await;
    assert_eq!(names(&handle), ["child1"]);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

/// `simple_one_for_one_shutdown`: children added at run time stop
/// together: two that take 1 s and one that would take 5 s against a 2 s
/// stop timeout end the shutdown at 2 s, not 1 + 1 + 2.
#[tokio::test(start_paused = true)]
async fn simple_one_for_one_shutdown() {
    let group = Group::new("sup_test").registry(&Registry::new());
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    for (name, linger) in [("a", 1), ("b", 1), ("c", 5)] {
        let child = Child::new(name, move |cancel: CancellationToken| async move {
            cancel.cancelled().await;
            sleep(Duration::from_secs(linger)).await;
        })
        .stop_timeout(Duration::from_secs(2));
        handle.add(child).unwrap();
    }
    sleep(Duration::from_millis(1)).await;
    let begun = Instant::now();
    cancel.cancel();
    let report = run.await.unwrap();
    assert_eq!(Instant::now() - begun, Duration::from_secs(2));
    assert_eq!(report.unstopped, ["c"]);
}

/// `simple_one_for_one_scale_many_temporary_children` and
/// `do_not_save_child_specs_for_temporary_children`: ten thousand
/// temporary children that ended leave no spec, entry or capture behind.
#[tokio::test(start_paused = true)]
async fn simple_one_for_one_scale_many_temporary_children() {
    let registry = Registry::new();
    let group = Group::new("sup_test").registry(&registry);
    let handle = group.handle();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(group.run(cancel.clone()));
    let captured = Arc::new(Mutex::new(()));
    for n in 0..10_000 {
        let held = Arc::clone(&captured);
        let job = Child::new(format!("job-{n}"), move |_c: CancellationToken| {
            let _held = Arc::clone(&held);
            async move {
                sleep(Duration::from_millis(10)).await;
            }
        })
        .restart(Restart::Temporary);
        handle.add(job).unwrap();
    }
    sleep(Duration::from_secs(1)).await;
    assert!(names(&handle).is_empty());
    assert_eq!(registry.snapshot().len(), 1, "only the group's own entry");
    assert_eq!(Arc::strong_count(&captured), 1, "every factory dropped");
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}
