//! The lease gate's state machine on paused time, against the in-memory
//! backend: acquire, renew, loss (refused and unconfirmed), release, a body
//! that ignores cancellation, a paused process, and what standby looks
//! like to health, readiness, `/admin/liveness` and `/metrics`.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::lease::{self, Acquired, Backend, Memory};
use supervised_core::{CancellationToken, Exit, Readiness, Registry, SubsystemState, Supervisor};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

const TTL: Duration = Duration::from_secs(15);

fn gated(registry: &Registry, store: &Memory) -> Supervisor {
    Supervisor::new()
        .registry(registry)
        .lease("scheduler")
        .lease_backend(Arc::new(store.clone()))
        .tick(Duration::from_secs(1))
}

/// Takes the lease for `store`'s holder, as another replica would.
async fn take(store: &Memory) -> lease::Grant {
    match store.acquire("scheduler", TTL).await {
        Ok(Acquired::Granted(grant)) => grant,
        other => panic!("{other:?}"),
    }
}

/// Runs a body that beats every second until its token is cancelled,
/// recording the epoch it saw at each start.
fn spawn_loop(
    supervisor: Supervisor,
    cancel: &CancellationToken,
    epochs: Arc<Mutex<Vec<Option<u64>>>>,
) -> JoinHandle<Exit<()>> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        supervisor
            .run(cancel, "scheduler", move |token| {
                let epochs = epochs.clone();
                async move {
                    epochs.lock().unwrap().push(lease::epoch());
                    while !token.is_cancelled() {
                        supervised_core::beat();
                        tokio::select! {
                            () = sleep(Duration::from_secs(1)) => {}
                            () = token.cancelled() => {}
                        }
                    }
                }
            })
            .await
    })
}

#[tokio::test(start_paused = true)]
async fn standby_while_another_holds_then_takes_over_on_release() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let theirs = take(&b).await;

    let cancel = CancellationToken::new();
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let task = spawn_loop(gated(&registry, &a), &cancel, epochs.clone());

    // Far past the 2 s staleness limit: standby is neither stale nor waited
    // for. B keeps renewing, as a live leader would.
    for _ in 0..12 {
        sleep(Duration::from_secs(5)).await;
        assert!(matches!(
            b.renew(&theirs).await,
            Ok(lease::Renewal::Renewed)
        ));
    }
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Standby);
    assert!(status.healthy && !status.stale, "{status:?}");
    assert_eq!(status.beats, 0);
    assert!(epochs.lock().unwrap().is_empty(), "the body never ran");
    let view = status.lease.clone().unwrap();
    assert!(!view.leader);
    assert_eq!(view.holder.as_deref(), Some("replica-b"));
    assert_eq!(view.epoch, Some(theirs.epoch));
    assert_eq!(view.acquisitions, 0);
    assert!(registry.health().is_ok());
    assert_eq!(registry.readiness(), Readiness::Ready);

    // B releases: A takes over within one acquire interval (ttl/3).
    b.release(&theirs).await.unwrap();
    let released = Instant::now();
    while registry.subsystem("scheduler").state() != SubsystemState::Running {
        sleep(Duration::from_millis(100)).await;
    }
    assert!(released.elapsed() <= TTL / 3, "{:?}", released.elapsed());
    sleep(Duration::from_millis(10)).await;
    let status = registry.subsystem("scheduler").status();
    let view = status.lease.unwrap();
    assert!(view.leader);
    assert_eq!(view.holder.as_deref(), Some("replica-a"));
    assert_eq!(view.epoch, Some(theirs.epoch + 1));
    assert_eq!(view.acquisitions, 1);
    assert_eq!(*epochs.lock().unwrap(), [Some(theirs.epoch + 1)]);

    // Staleness counts from the takeover, not from registration.
    assert!(!status.stale);

    cancel.cancel();
    // The body returns when its token is cancelled: a clean end.
    assert!(matches!(task.await.unwrap(), Exit::Completed(())));
    // Released at once on shutdown: B gets it without waiting for expiry.
    assert!(matches!(
        b.acquire("scheduler", TTL).await,
        Ok(Acquired::Granted(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn renews_every_third_of_the_ttl_and_keeps_the_lease() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let cancel = CancellationToken::new();
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let task = spawn_loop(gated(&registry, &a), &cancel, epochs.clone());
    sleep(Duration::from_millis(10)).await;
    let calls_at_start = a.calls();

    sleep(TTL * 10).await;
    assert_eq!(a.holder_of("scheduler"), Some(("replica-a".to_owned(), 1)));
    assert!(matches!(
        b.acquire("scheduler", TTL).await,
        Ok(Acquired::Held(_))
    ));
    // One renewal per 5 s over 150 s (and B's one attempt).
    let renewals = a.calls() - calls_at_start - 1;
    assert_eq!(renewals, 30);
    assert_eq!(epochs.lock().unwrap().len(), 1, "never restarted");
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Running);
    let expires_in = status.lease.unwrap().expires_in.unwrap();
    assert!(
        expires_in > TTL * 2 / 3 && expires_in <= TTL,
        "{expires_in:?}"
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_renewal_cancels_the_body_and_goes_back_to_standby() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let cancel = CancellationToken::new();
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let task = spawn_loop(gated(&registry, &a), &cancel, epochs.clone());
    sleep(Duration::from_secs(1)).await;

    // The store loses A's grant and B takes the lease.
    a.revoke("scheduler");
    let theirs = take(&b).await;
    // A's next renewal (at 5 s) is refused: the body's token is cancelled.
    sleep(Duration::from_secs(5)).await;
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Standby);
    let view = status.lease.unwrap();
    assert!(!view.leader);
    assert_eq!(view.holder.as_deref(), Some("replica-b"));
    let losses: Vec<_> = events
        .at(tracing::Level::WARN)
        .into_iter()
        .filter(|e| e.message().starts_with("lost lease"))
        .collect();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0].field("taken_over_by"), Some("replica-b"));
    assert_eq!(losses[0].target, "supervised");

    // B releases; A runs again under a new epoch, and counts no failure.
    b.release(&theirs).await.unwrap();
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Running);
    assert_eq!(status.restarts, 0);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(*epochs.lock().unwrap(), [Some(1), Some(3)]);
    cancel.cancel();
    task.await.unwrap();
}

/// A body that never looks at its token, and records when it is dropped.
struct DropClock(Arc<Mutex<Option<Instant>>>);

impl Drop for DropClock {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_ignoring_cancellation_is_dropped_before_the_lease_can_expire() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let dropped = Arc::new(Mutex::new(None));
    let polls = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let supervisor = gated(&registry, &a).stop_timeout(Duration::from_secs(60));
    let task = tokio::spawn({
        let (cancel, dropped, polls) = (cancel.clone(), dropped.clone(), polls.clone());
        async move {
            supervisor
                .run(cancel, "scheduler", move |_token| {
                    let guard = DropClock(dropped.clone());
                    let polls = polls.clone();
                    async move {
                        let _guard = guard;
                        loop {
                            polls.fetch_add(1, Ordering::Relaxed);
                            // Making progress: only the store's outage
                            // takes the lease away.
                            supervised_core::beat();
                            sleep(Duration::from_millis(100)).await;
                        }
                        #[allow(unreachable_code)]
                        ()
                    }
                })
                .await
        }
    });
    // Renewed at 5 s; the store goes down at 6 s.
    sleep(Duration::from_secs(6)).await;
    let last_confirmed = Instant::now() - Duration::from_secs(1);
    a.set_down(true);
    sleep(TTL * 2).await;
    let dropped_at = dropped.lock().unwrap().expect("the body was dropped");
    let held_for = dropped_at - last_confirmed;
    // Gone by ttl - ttl/5 after the last confirmed renewal, whatever the
    // 60 s grace period says; its token was cancelled at 3/5 of the ttl.
    assert!(held_for <= TTL - TTL / 5, "{held_for:?}");
    assert!(held_for >= TTL * 3 / 5, "{held_for:?}");
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Standby
    );
    // Never running without the lease: no poll after the drop.
    let polls_then = polls.load(Ordering::Relaxed);
    sleep(TTL).await;
    assert_eq!(polls.load(Ordering::Relaxed), polls_then);

    // The store comes back: the subsystem recovers by itself.
    a.set_down(false);
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Running
    );
    assert!(polls.load(Ordering::Relaxed) > polls_then);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_process_paused_past_its_lease_drops_the_body_unpolled() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    // Polls of the first body, and the epoch each body started under.
    let first_polls = Arc::new(AtomicU64::new(0));
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let supervisor = gated(&registry, &a);
        let (cancel, first_polls, epochs) = (cancel.clone(), first_polls.clone(), epochs.clone());
        async move {
            supervisor
                .run(cancel, "scheduler", move |_token| {
                    let (first_polls, epochs) = (first_polls.clone(), epochs.clone());
                    async move {
                        let first = {
                            let mut epochs = epochs.lock().unwrap();
                            epochs.push(lease::epoch());
                            epochs.len() == 1
                        };
                        loop {
                            if first {
                                first_polls.fetch_add(1, Ordering::Relaxed);
                            }
                            sleep(Duration::from_secs(1)).await;
                        }
                        #[allow(unreachable_code)]
                        ()
                    }
                })
                .await
        }
    });
    sleep(Duration::from_millis(1500)).await;
    let polls_before = first_polls.load(Ordering::Relaxed);
    assert_eq!(polls_before, 2);
    // The whole runtime jumps 20 s at once, as a process does after
    // SIGSTOP and SIGCONT: every timer is due when the task next runs.
    tokio::time::advance(Duration::from_secs(20)).await;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(
        first_polls.load(Ordering::Relaxed),
        polls_before,
        "polled after the lease could have expired"
    );
    // Nobody else took it meanwhile, so it was acquired again, under a new epoch.
    assert_eq!(*epochs.lock().unwrap(), [Some(1), Some(2)]);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_releases_the_lease_before_its_backoff() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let runs = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let supervisor = gated(&registry, &a).initial_backoff(Duration::from_secs(10));
    let task = tokio::spawn({
        let (cancel, runs) = (cancel.clone(), runs.clone());
        async move {
            supervisor
                .run(cancel, "scheduler", move |_token| {
                    let n = runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            Err("bad tenant data")
                        } else {
                            std::future::pending::<Result<(), &str>>().await
                        }
                    }
                })
                .await
        }
    });
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::BackingOff
    );
    assert_eq!(
        a.holder_of("scheduler"),
        None,
        "released before the backoff"
    );
    // Another replica may take it meanwhile; this one then stands by.
    let theirs = take(&b).await;
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Standby
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the next body is made, not polled"
    );
    b.release(&theirs).await.unwrap();
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Running
    );
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(a.holder_of("scheduler"), None, "released on shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_backend_down_at_startup_keeps_standby_and_logs_once() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    a.set_down(true);
    let cancel = CancellationToken::new();
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let task = spawn_loop(gated(&registry, &a), &cancel, epochs.clone());
    sleep(Duration::from_secs(60)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Standby
    );
    assert!(epochs.lock().unwrap().is_empty());
    assert!(a.calls() >= 12, "kept asking: {}", a.calls());
    let failures: Vec<_> = events
        .at(tracing::Level::WARN)
        .into_iter()
        .filter(|e| e.message().starts_with("lease backend failed"))
        .collect();
    assert_eq!(failures.len(), 1, "once per episode: {failures:?}");
    assert_eq!(
        failures[0].field("error"),
        Some("memory lease store is down")
    );

    a.set_down(false);
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Running
    );
    assert_eq!(
        events
            .at(tracing::Level::INFO)
            .iter()
            .filter(|e| e.message() == "lease backend answers again")
            .count(),
        1
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelled_in_standby_stops_at_once() {
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let _theirs = take(&a.replica("replica-b")).await;
    let cancel = CancellationToken::new();
    let task = spawn_loop(gated(&registry, &a), &cancel, Arc::default());
    sleep(Duration::from_secs(3)).await;
    let at = Instant::now();
    cancel.cancel();
    assert!(matches!(
        task.await.unwrap(),
        Exit::Cancelled { last_failure: None }
    ));
    assert_eq!(at.elapsed(), Duration::ZERO);
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn two_replicas_never_run_at_once() {
    let registry_a = Registry::new();
    let registry_b = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let running = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    for (registry, store) in [(&registry_a, &a), (&registry_b, &b)] {
        let supervisor = gated(registry, store);
        let (cancel, running, overlap) = (cancel.clone(), running.clone(), overlap.clone());
        tasks.push(tokio::spawn(async move {
            supervisor
                .run(cancel, "scheduler", move |token| {
                    let (running, overlap) = (running.clone(), overlap.clone());
                    async move {
                        if running.fetch_add(1, Ordering::SeqCst) > 0 {
                            overlap.fetch_add(1, Ordering::SeqCst);
                        }
                        // Runs for a while, beating (a leader that is
                        // stale gives its lease up, which is another
                        // test's), then hands over by returning an error.
                        for _ in 0..7 {
                            supervised_core::beat();
                            tokio::select! {
                                () = sleep(Duration::from_secs(1)) => {}
                                () = token.cancelled() => break,
                            }
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        Err::<(), _>("hand over")
                    }
                })
                .await
        }));
    }
    for _ in 0..20 {
        sleep(Duration::from_secs(3)).await;
        // Now and then the store loses the grant under the leader.
        a.revoke("scheduler");
    }
    cancel.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(overlap.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_passes_the_conformance_suite() {
    lease::conformance::run(&Memory::new("replica-a"))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_passes_the_bound_grant_suite() {
    lease::conformance::run_bound(&Memory::new("replica-a"))
        .await
        .unwrap();
}

/// A store of one's own that implements only the plain calls: bound grants
/// are refused with a message, never granted by accident.
#[tokio::test(start_paused = true)]
async fn a_store_without_bound_grants_says_so() {
    struct Plain(Memory);
    impl lease::Backend for Plain {
        fn holder(&self) -> &str {
            self.0.holder()
        }
        fn acquire<'a>(
            &'a self,
            name: &'a str,
            ttl: Duration,
        ) -> lease::BoxFuture<'a, Result<lease::Acquired, lease::LeaseError>> {
            self.0.acquire(name, ttl)
        }
        fn renew<'a>(
            &'a self,
            grant: &'a lease::Grant,
        ) -> lease::BoxFuture<'a, Result<lease::Renewal, lease::LeaseError>> {
            self.0.renew(grant)
        }
        fn release<'a>(
            &'a self,
            grant: &'a lease::Grant,
        ) -> lease::BoxFuture<'a, Result<(), lease::LeaseError>> {
            self.0.release(grant)
        }
    }
    let store = Plain(Memory::new("replica-a"));
    let error = lease::conformance::run_bound(&store).await.unwrap_err();
    assert_eq!(error.check, "bound grant", "{error}");
    assert!(
        error.detail.contains("does not support bound grants"),
        "{error}"
    );
    assert!(store.list("").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_gated_group_child_stands_by_and_fails_up_to_its_group() {
    use supervised_core::{Child, Group, Restart};

    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let theirs = take(&b).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let child = Child::new("scheduler", {
        let runs = runs.clone();
        move |token: CancellationToken| {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(lease::epoch().is_some(), "polled only with the lease");
                if n == 1 {
                    return Err("bad tenant data");
                }
                token.cancelled().await;
                Ok(())
            }
        }
    })
    .restart(Restart::Permanent)
    .lease("scheduler")
    .lease_ttl(TTL)
    .lease_backend(Arc::new(a.clone()));
    let group = Group::new("platform").registry(&registry).spec(child);
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { group.run(cancel).await }
    });
    sleep(Duration::from_secs(1)).await;
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Standby);
    assert_eq!(status.group.as_deref(), Some("platform"));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "made, not polled");

    // Free: the first run takes it.
    b.release(&theirs).await.unwrap();
    sleep(TTL / 3).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Running
    );

    // Lost: the run's token is cancelled and it stands by again inside
    // the same child run; the group restarts nothing.
    a.revoke("scheduler");
    let theirs = take(&b).await;
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Standby);
    assert_eq!(status.restarts, 0);
    assert_eq!(registry.subsystem("platform").status().restarts, 0);

    // The second run fails: that failure is the group's to handle.
    b.release(&theirs).await.unwrap();
    sleep(TTL).await;
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.restarts, 1, "{status:?}");
    assert_eq!(status.last_error.as_deref(), Some("bad tenant data"));
    assert!(runs.load(Ordering::SeqCst) >= 3);
    sleep(TTL).await;
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Running
    );

    cancel.cancel();
    let report = task.await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(a.holder_of("scheduler"), None, "released on shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_panics_after_losing_its_lease_is_still_reported() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let (supervisor, cancel) = (gated(&registry, &a), cancel.clone());
        async move {
            supervisor
                .run(cancel, "scheduler", |token| async move {
                    token.cancelled().await;
                    panic!("cleanup failed for tenant 7");
                    #[allow(unreachable_code)]
                    ()
                })
                .await
        }
    });
    sleep(Duration::from_secs(1)).await;
    a.revoke("scheduler");
    let _theirs = take(&a.replica("replica-b")).await;
    sleep(TTL / 3 + Duration::from_millis(10)).await;
    let panics: Vec<_> = events
        .at(tracing::Level::ERROR)
        .into_iter()
        .filter(|e| e.message() == "body panicked after losing its lease")
        .collect();
    assert_eq!(panics.len(), 1, "{:?}", events.all());
    assert_eq!(
        panics[0].field("panic_message"),
        Some("cleanup failed for tenant 7")
    );
    assert_eq!(
        registry.subsystem("scheduler").state(),
        SubsystemState::Standby
    );
    cancel.cancel();
    task.await.unwrap();
}

/// A leader that stops making progress gives its lease up: at the first
/// renewal after it goes stale it cancels and drops its body, releases the
/// lease and waits one acquire interval before asking again, so another
/// replica takes over instead of waiting for this process to restart.
#[tokio::test(start_paused = true)]
async fn a_stale_leader_gives_its_lease_up_to_another_replica() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let a = Memory::new("replica-a");
    let b = a.replica("replica-b");
    let cancel = CancellationToken::new();
    // Beats twice, then waits forever on something that never comes,
    // deaf to its token: a stuck leader.
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let supervisor = gated(&registry, &a);
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        supervisor
            .run(token, "scheduler", move |_token| {
                let counted = counted.clone();
                async move {
                    // Counted when the body runs (it is built before its
                    // run stands by).
                    counted.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..2 {
                        supervised_core::beat();
                        sleep(Duration::from_secs(1)).await;
                    }
                    std::future::pending::<()>().await;
                }
            })
            .await
    });
    sleep(Duration::from_secs(1)).await;
    assert!(
        registry
            .subsystem("scheduler")
            .status()
            .lease
            .unwrap()
            .leader
    );

    // Stale from 3 s (last beat at 1 s, stale_after 2 s with a 1 s tick),
    // and reported so while it keeps the lease, for a whole ttl: the
    // renewal at 20 s (silent 19 s, over 2 + 15) gives up; the deaf body is
    // dropped at its 5 s stop timeout, and the lease released. B, asking
    // every second, gets it before A asks again.
    sleep(Duration::from_secs(9)).await;
    let status = registry.subsystem("scheduler").status();
    assert!(status.stale, "reported stale while it leads: {status:?}");
    assert!(status.lease.as_ref().unwrap().leader, "{status:?}");
    let mut took_over = None;
    for second in 11..40 {
        sleep(Duration::from_secs(1)).await;
        if let Ok(Acquired::Granted(grant)) = b.acquire("scheduler", TTL).await {
            took_over = Some((second, grant));
            break;
        }
    }
    let (second, grant) = took_over.expect("another replica takes the lease over");
    assert!((20..=27).contains(&second), "taken over at {second} s");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "A did not take it back first"
    );
    let gave_up = events
        .all()
        .into_iter()
        .filter(|e| e.message().starts_with("giving up the lease"))
        .count();
    assert_eq!(gave_up, 1);
    // Counted and kept like a failure.
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.restarts, 1);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("stalled while leading")),
        "{status:?}"
    );

    // A stands by behind B, and is healthy there (standby is never stale).
    for _ in 0..6 {
        sleep(Duration::from_secs(3)).await;
        assert!(matches!(b.renew(&grant).await, Ok(lease::Renewal::Renewed)));
    }
    let status = registry.subsystem("scheduler").status();
    assert_eq!(status.state, SubsystemState::Standby, "{status:?}");
    assert!(status.healthy);
    cancel.cancel();
    let _ = task.await.unwrap();
}
