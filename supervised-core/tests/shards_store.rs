//! Sharded groups on paused time when the store misbehaves: answers
//! lost, releases unanswered, a replica cut off, the store restarting.
//! Several replicas in one process share a `lease::Memory` store, and a
//! ledger kept by every child's body checks that no child ever runs on
//! two replicas at once.

mod sharded;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sharded::*;
use supervised_core::lease::Memory;
use tokio::time::{sleep, Instant};

/// Bound-grant asks that were granted in the store but whose answers were
/// lost: the replica takes the buckets as its own when the store says it
/// holds them, and their children run.
#[tokio::test(start_paused = true)]
async fn a_grant_whose_answer_was_lost_is_taken_up_on_the_next_ask() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let a = replica(&store, "replica-a", &ledger);
    a.lose_answers.store(5, Ordering::SeqCst);
    until(TTL * 3, "settle", || settled(&[&a], &ledger)).await;
    assert_eq!(
        a.lose_answers.load(Ordering::SeqCst),
        0,
        "five answers were lost"
    );
    no_overlap(&ledger);
    stop_all([a]).await;
}

/// Asks granted in the store whose answers were lost, for buckets that
/// are placed on another replica by the next round (it joined meanwhile):
/// the replica asks again, finds them its own, and gives them back at
/// once, rather than keep them from their new owner for as long as its
/// membership lives.
#[tokio::test(start_paused = true)]
async fn a_grant_whose_answer_was_lost_is_given_back_if_placed_elsewhere() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let a = replica(&store, "replica-a", &ledger);
    // Alone, it asks for all 64 buckets a round after it joined: every
    // answer is lost.
    a.lose_answers.store(64, Ordering::SeqCst);
    sleep(TTL / 2).await;
    let b = replica(&store, "replica-b", &ledger);
    until(TTL * 3, "two replicas settle", || {
        settled(&[&a, &b], &ledger)
    })
    .await;
    assert_eq!(a.lose_answers.load(Ordering::SeqCst), 0, "64 answers lost");
    no_overlap(&ledger);
    stop_all([a, b]).await;
}

/// A handoff whose bucket releases the store does not answer: the old
/// holder's children stay stopped, it releases the buckets again at its
/// next rounds, and the newcomer takes them then. No child runs on two
/// replicas meanwhile.
#[tokio::test(start_paused = true)]
async fn a_release_the_store_did_not_answer_is_made_again() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    for replica in [&a, &b, &c] {
        replica.unanswered_releases.store(3, Ordering::SeqCst);
    }
    let d = replica(&store, "replica-d", &ledger);
    until(TTL * 6, "four replicas settle", || {
        settled(&[&a, &b, &c, &d], &ledger)
    })
    .await;
    for replica in [&a, &b, &c] {
        assert_eq!(
            replica.unanswered_releases.load(Ordering::SeqCst),
            0,
            "{}: three releases went unanswered",
            replica.id
        );
    }
    no_overlap(&ledger);
    stop_all([a, b, c, d]).await;
}

/// A replica cut off and then shut down while its children are still
/// flushing (a shutdown gives each its stop timeout): their tasks are gone
/// by 4/5 ttl after its last confirmed renewal, as they would be without
/// the shutdown, before another replica can take their buckets.
#[tokio::test(start_paused = true)]
async fn a_shutdown_does_not_keep_children_past_the_fence() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    let on_a: BTreeSet<String> = children_on(&ledger, "replica-a");
    assert!(!on_a.is_empty());
    // Cut right after a renewal, so the membership is given up (3/5 ttl)
    // only after the shutdown has begun (ttl/2), and the children flush
    // past the fence (4/5 ttl).
    let calls = a.calls.load(Ordering::SeqCst);
    while a.calls.load(Ordering::SeqCst) == calls {
        sleep(Duration::from_millis(1)).await;
    }
    a.cut.store(true, Ordering::SeqCst);
    let fence = Instant::now() + TTL * 4 / 5;
    sleep(TTL / 2).await;
    let shutdown = Instant::now();
    a.cancel.cancel();
    until(TTL, "replica-a's children gone", || {
        children_on(&ledger, "replica-a").is_empty()
    })
    .await;
    // Gone from replica-a, not taken by another while alive there.
    no_overlap(&ledger);
    {
        let book = lock(&ledger);
        for name in &on_a {
            // Cancelled by the shutdown, not by the loss: the run was busy.
            assert_eq!(book.cancelled[name], ("replica-a".to_string(), shutdown));
            let dropped = book.dropped[name];
            assert!(
                dropped <= fence,
                "{name} dropped {:?} past the fence",
                dropped - fence
            );
        }
    }
    until(TTL * 2, "the others run everything", || {
        settled(&[&b, &c], &ledger)
    })
    .await;
    a.run.await.unwrap();
    no_overlap(&ledger);
    stop_all([b, c]).await;
}

/// A lease backend whose own code panics takes the keeper down: every
/// sharded child of that replica is aborted with it, before its membership
/// expires and another replica takes the buckets.
#[tokio::test(start_paused = true)]
async fn a_panicking_backend_leaves_no_child_behind() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    assert!(!children_on(&ledger, "replica-a").is_empty());
    a.panic_next.store(true, Ordering::SeqCst);
    until(TTL, "replica-a's children gone", || {
        children_on(&ledger, "replica-a").is_empty()
    })
    .await;
    until(TTL * 2, "the others run everything", || {
        settled(&[&b, &c], &ledger)
    })
    .await;
    no_overlap(&ledger);
    stop_all([a, b, c]).await;
}

/// Buckets handed off whose releases the store never made, placed back on
/// their old holder (the newcomer left) and taken up again there: the
/// pending releases are dropped, so a later one cannot free a bucket
/// under the children now running, and a newcomer gets it only by a
/// handoff.
#[tokio::test(start_paused = true)]
async fn a_release_still_pending_does_not_free_a_bucket_taken_up_again() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let [a, b, c] = three_settled(&store, &ledger).await;
    let abc = ["replica-a", "replica-b", "replica-c"];
    let abcd = ["replica-a", "replica-b", "replica-c", "replica-d"];
    a.unanswered_releases.store(u32::MAX, Ordering::SeqCst);
    let d = replica(&store, "replica-d", &ledger);
    until(TTL * 6, "replica-a hands off what is replica-d's", || {
        held(&a) == placed(&abcd, "replica-a")
    })
    .await;
    stop_all([d]).await;
    until(TTL * 3, "replica-a takes them up again", || {
        settled(&[&a, &b, &c], &ledger)
    })
    .await;
    assert_eq!(held(&a), placed(&abc, "replica-a"));
    // Its releases are answered again: none is left to make.
    a.unanswered_releases.store(0, Ordering::SeqCst);
    sleep(TTL).await;
    let d = replica(&store, "replica-d", &ledger);
    until(TTL * 6, "four replicas settle", || {
        settled(&[&a, &b, &c, &d], &ledger)
    })
    .await;
    no_overlap(&ledger);
    stop_all([a, b, c, d]).await;
}

/// After a store restart, each replica joins again, and asks for buckets
/// only a round after the store answered its join, so none takes a bucket
/// placed on another only to hand it back; all run again within ttl +
/// ttl/3 of the store's return. On a store whose memberships outlive the
/// outage (etcd extends its leases when it restarts), each first releases
/// its old membership, which the store would not grant it again. During
/// the outage, replica-b's calls fail at once while the others' wait for
/// the store. Run for ten downtimes a tenth of a round apart, so the store
/// comes back at ten points of the replicas' rounds, and for an outage
/// longer than any wait for an old membership to run out.
#[tokio::test(start_paused = true)]
async fn after_a_store_restart_the_replicas_rejoin_before_taking_buckets() {
    for tenths in 0..10 {
        // Long enough that every replica gives its membership up (3/5 ttl
        // after its last renewal, which was at most ttl/3 before) and has
        // stopped its children (by 4/5 ttl).
        let downtime = TTL * 6 / 5 + TTL / 30 * tenths;
        rejoin_after_restart(Outage::like_etcd(), downtime).await;
        // Long enough that every membership expires in the store.
        rejoin_after_restart(Outage::like_postgres(), downtime + TTL / 3).await;
    }
    // Longer than any wait for the old membership to run out: etcd gives
    // each lease a whole ttl again when it comes back.
    rejoin_after_restart(Outage::like_etcd(), TTL * 3).await;
}

async fn rejoin_after_restart(outage: Outage, downtime: Duration) {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let abc = ["replica-a", "replica-b", "replica-c"];
    let a = replica_with(&store, &outage, abc[0], &ledger);
    let c = replica_with(&store, &outage, abc[2], &ledger);
    // Replica-b's rounds run half a round out of step with the others'.
    sleep(TTL / 6).await;
    let b = replica_with(&store, &outage, abc[1], &ledger);
    until(TTL * 3, "three replicas settle", || {
        settled(&[&a, &b, &c], &ledger)
    })
    .await;
    let replicas = [a, b, c];
    replicas[1].cut.store(true, Ordering::SeqCst);
    outage.restart(&store, downtime).await;
    replicas[1].cut.store(false, Ordering::SeqCst);
    for replica in &replicas {
        assert!(held(replica).is_empty(), "{} held on", replica.id);
    }
    let took = until(TTL * 3, "all run again after the restart", || {
        for replica in &replicas {
            let strays: Vec<u32> = held(replica)
                .difference(&placed(&abc, &replica.id))
                .copied()
                .collect();
            assert!(
                strays.is_empty(),
                "down {downtime:?}: {} took {strays:?}, placed on another",
                replica.id
            );
        }
        settled(&replicas.iter().collect::<Vec<_>>(), &ledger)
    })
    .await;
    assert!(took <= TTL + TTL / 3, "down {downtime:?}: {took:?}");
    no_overlap(&ledger);
    stop_all(replicas).await;
}

/// A replica cut off between its join and its first ask for buckets keeps
/// to its rounds (a few calls each ttl/3), rather than asking again at
/// once, and asks once it is back.
#[tokio::test(start_paused = true)]
async fn a_replica_cut_off_before_its_first_ask_keeps_to_its_rounds() {
    let store = Memory::new("store");
    let ledger = Shared::default();
    let a = replica(&store, "replica-a", &ledger);
    until(TTL, "replica-a joins", || {
        a.registry
            .get("tenants")
            .and_then(|group| group.status().shards)
            .is_some_and(|shards| shards.replicas == ["replica-a"])
    })
    .await;
    a.cut.store(true, Ordering::SeqCst);
    let before = a.calls.load(Ordering::SeqCst);
    // Moved by hand: a keeper that asked again at once would keep the
    // runtime busy, and paused time moves by itself only when it idles.
    for _ in 0..30 {
        tokio::time::advance(TTL / 10).await;
    }
    let made = a.calls.load(Ordering::SeqCst) - before;
    // Nine rounds in 3 ttl, of at most two calls each (renew or join, and
    // list), and one a round to release the lost membership.
    assert!(made <= 27, "{made} store calls in 3 ttl");
    assert!(held(&a).is_empty());
    a.cut.store(false, Ordering::SeqCst);
    until(TTL * 2, "replica-a takes every bucket", || {
        settled(&[&a], &ledger)
    })
    .await;
    stop_all([a]).await;
}

/// Random faults over many rounds: replicas cut off and back, stopped and
/// started again, store answers lost, and the store restarting, with time
/// passing between. After every step no child has run on two replicas at
/// once; at the end, with every fault healed, the live replicas settle,
/// and each child's runs carry growing epochs. Odd seeds restart the store
/// as etcd does, even ones as PostgreSQL does.
#[tokio::test(start_paused = true)]
async fn random_faults_over_many_rounds_never_run_a_child_twice() {
    for seed in 1..=8 {
        random_faults(seed, 40).await;
    }
}

async fn random_faults(seed: u64, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let store = Memory::new("store");
    let ledger = Shared::default();
    let outage = if seed % 2 == 1 {
        Outage::like_etcd()
    } else {
        Outage::like_postgres()
    };
    let ids = ["replica-a", "replica-b", "replica-c", "replica-d"];
    let mut live: Vec<Option<Replica>> = ids
        .iter()
        .map(|id| (*id != "replica-d").then(|| replica_with(&store, &outage, id, &ledger)))
        .collect();
    let mut story = Vec::new();
    for _ in 0..steps {
        let slot = rng.usize(..ids.len());
        let running = live.iter().flatten().count();
        match (rng.u8(..5), live[slot].take()) {
            (0, Some(replica)) => {
                let cut = !replica.cut.load(Ordering::SeqCst);
                replica.cut.store(cut, Ordering::SeqCst);
                story.push(format!("{} cut {cut}", ids[slot]));
                live[slot] = Some(replica);
            }
            (1, Some(replica)) if running > 1 => {
                story.push(format!("{} stopped", ids[slot]));
                stop_all([replica]).await;
            }
            (1 | 2, None) => {
                story.push(format!("{} started", ids[slot]));
                live[slot] = Some(replica_with(&store, &outage, ids[slot], &ledger));
            }
            (3, replica) => {
                let downtime = Duration::from_millis(rng.u64(300..4_000));
                story.push(format!("store down {downtime:?}"));
                outage.restart(&store, downtime).await;
                live[slot] = replica;
            }
            (4, Some(replica)) => {
                let lost = rng.u32(1..4);
                story.push(format!("{} loses {lost} answers and releases", ids[slot]));
                replica.lose_answers.store(lost, Ordering::SeqCst);
                replica.unanswered_releases.store(lost, Ordering::SeqCst);
                live[slot] = Some(replica);
            }
            (_, replica) => live[slot] = replica,
        }
        sleep(Duration::from_millis(rng.u64(100..3_000))).await;
        let book = lock(&ledger);
        assert!(
            book.overlaps.is_empty(),
            "seed {seed}: {:?} after {story:?}",
            &book.overlaps[..book.overlaps.len().min(3)]
        );
    }
    let replicas: Vec<Replica> = live.into_iter().flatten().collect();
    for replica in &replicas {
        replica.cut.store(false, Ordering::SeqCst);
    }
    let what = format!("seed {seed}: the live replicas settle after {story:?}");
    until(TTL * 10, &what, || {
        settled(&replicas.iter().collect::<Vec<_>>(), &ledger)
    })
    .await;
    {
        let book = lock(&ledger);
        for (name, runs) in &book.runs {
            assert!(
                runs.windows(2).all(|w| w[1].1 > w[0].1),
                "seed {seed}: {name}'s epochs: {runs:?}"
            );
        }
    }
    stop_all(replicas).await;
}
