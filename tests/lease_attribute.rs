//! `#[supervised(lease = ..)]` on paused time, with the process-wide
//! backend (`lease::install`): standby while another replica holds the
//! lease, running with `lease::epoch()` once it is free, and the body's
//! token cancelled when the lease is lost. Its own binary: it installs a
//! process-wide backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised::lease::{self, Acquired, Backend, Memory};
use supervised::{supervised, CancellationToken, SubsystemState};
use tokio::time::sleep;

/// What each run saw: its epoch, and whether its token was cancelled.
type Seen = Arc<Mutex<Vec<(Option<u64>, bool)>>>;

#[supervised(
    name = "attr-leased",
    tick = "1s",
    lease = "attr-leased",
    lease_ttl = "3s"
)]
async fn leased(seen: Seen, cancel: CancellationToken) {
    let epoch = lease::epoch();
    loop {
        if cancel.is_cancelled() {
            seen.lock().unwrap().push((epoch, true));
            break;
        }
        tokio::select! {
            () = sleep(Duration::from_millis(100)) => {}
            () = cancel.cancelled() => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_leased_fn_stands_by_runs_and_is_cancelled_on_loss() {
    let ours = Memory::new("replica-a");
    let theirs = ours.replica("replica-b");
    lease::install(ours.clone());
    let Ok(Acquired::Granted(grant)) = theirs.acquire("attr-leased", Duration::from_secs(3)).await
    else {
        panic!("replica-b takes it first")
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(leased(seen.clone(), cancel.clone()));
    sleep(Duration::from_millis(500)).await;
    let status = supervised::registry().subsystem("attr-leased").status();
    assert_eq!(status.state, SubsystemState::Standby);
    assert_eq!(status.lease.unwrap().holder.as_deref(), Some("replica-b"));

    theirs.release(&grant).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        supervised::registry().subsystem("attr-leased").state(),
        SubsystemState::Running
    );
    // The store loses the grant: the body's own token is cancelled (the
    // caller's is not), and it returns by itself.
    ours.revoke("attr-leased");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(*seen.lock().unwrap(), [(Some(grant.epoch + 1), true)]);
    assert!(!cancel.is_cancelled());
    cancel.cancel();
    task.await.unwrap();
}

#[supervised(name = "attr-inner", tick = "1s")]
async fn inner(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        tokio::select! {
            () = sleep(Duration::from_millis(100)) => {}
            () = cancel.cancelled() => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervised_fn_in_a_gated_child_keeps_the_childs_entry() {
    use supervised::{Child, Group};

    // Its own store: the other test installs the process-wide one.
    let cancel = CancellationToken::new();
    let group = Group::new("attr-gated-group").spec(
        Child::new("attr-gated-child", inner)
            .lease("attr-gated-child")
            .lease_ttl(Duration::from_secs(3))
            .lease_backend(Arc::new(Memory::new("replica-a"))),
    );
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { group.run(cancel).await }
    });
    sleep(Duration::from_millis(1500)).await;
    let status = supervised::registry()
        .subsystem("attr-gated-child")
        .status();
    assert_eq!(status.state, SubsystemState::Running);
    assert!(
        status.beats > 5,
        "the fn beats the child's entry: {status:?}"
    );
    assert!(status.lease.unwrap().leader);
    assert!(
        supervised::registry().get("attr-inner").is_none(),
        "the fn took the child's entry instead of its own name"
    );
    cancel.cancel();
    assert!(task.await.unwrap().is_clean());
}
