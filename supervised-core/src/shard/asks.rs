//! A replica's asks for the buckets placed on it, and what it does with
//! each answer. An answer can be lost on the way (a timeout) after the
//! store granted the bucket: the bucket is asked for again until the store
//! says whose it is, even once it is placed elsewhere, so a grant made
//! unbeknownst is given back instead of holding the bucket from its new
//! owner for as long as this replica's membership lives.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::keeper::{Keeper, KeeperEvent};
use crate::lease::{Backend, Bound, Grant};

/// What an answer to an ask says of the bucket.
enum Answer {
    /// This replica holds it, under this grant.
    Mine(Grant),
    /// Another holds it (or the store says no more than that it is held).
    Theirs,
    /// No answer: it may be held here without this replica knowing.
    Unknown,
    /// The store no longer has the membership.
    MemberLost,
}

impl Keeper {
    /// Asks for `buckets` (placed here, not held), and again for those
    /// whose earlier answers were lost but which are placed elsewhere now:
    /// one this replica holds (granted then, or by this very ask) is
    /// released at once, since no child of it started here. `false` once
    /// the run is gone.
    pub(super) async fn ask(
        &mut self,
        backend: &Arc<dyn Backend>,
        member: &Grant,
        wanted: &BTreeSet<u32>,
        buckets: Vec<u32>,
    ) -> bool {
        let strays: Vec<u32> = self
            .unanswered
            .iter()
            .filter(|bucket| !wanted.contains(bucket) && !self.held.contains_key(bucket))
            .copied()
            .collect();
        for bucket in strays {
            match self.ask_one(backend, member, bucket).await {
                Answer::Mine(grant) => {
                    tracing::debug!(
                        target: "supervised", group = %self.spec.path, bucket, epoch = grant.epoch,
                        "a bucket granted with its answer lost is placed elsewhere now: released"
                    );
                    if self.call(backend.release_bound(&grant)).await.is_none() {
                        self.unreleased.push(grant);
                    }
                }
                Answer::Theirs | Answer::Unknown => {}
                Answer::MemberLost => {
                    return self
                        .lose("the store no longer has the membership", true)
                        .await
                }
            }
        }
        for bucket in buckets {
            match self.ask_one(backend, member, bucket).await {
                Answer::Mine(grant) => {
                    let epoch = grant.epoch;
                    // A release of it still pending (unanswered, perhaps
                    // never made) would free it under the children that
                    // start now.
                    self.unreleased.retain(|pending| pending.name != grant.name);
                    self.held.insert(bucket, grant);
                    self.view.acquired(bucket);
                    tracing::debug!(
                        target: "supervised", group = %self.spec.path, bucket, epoch,
                        "bucket acquired"
                    );
                    if self
                        .events
                        .send(KeeperEvent::Gained { bucket, epoch })
                        .is_err()
                    {
                        return false;
                    }
                }
                // Held elsewhere until its holder hands it off; or no
                // answer: asked again next round.
                Answer::Theirs | Answer::Unknown => {}
                Answer::MemberLost => {
                    return self
                        .lose("the store no longer has the membership", true)
                        .await
                }
            }
        }
        true
    }

    /// One ask for `bucket`, kept among the unanswered while it has none.
    async fn ask_one(&mut self, backend: &Arc<dyn Backend>, member: &Grant, bucket: u32) -> Answer {
        let name = self.spec.bucket_lease(bucket);
        let answer = match self.call(backend.acquire_bound(&name, member)).await {
            None => Answer::Unknown,
            Some(Bound::Granted(grant)) => Answer::Mine(grant),
            Some(Bound::MemberLost) => Answer::MemberLost,
            // Held by this replica: an earlier ask was granted, but its
            // answer was lost. Its grant, with the epoch the store reports.
            Some(Bound::Held(by)) => match (by.holder.as_deref(), by.epoch) {
                (Some(holder), Some(epoch)) if holder == backend.holder() => Answer::Mine(
                    Grant::new(&name, holder, epoch, member.ttl).with_token(member.token.clone()),
                ),
                _ => Answer::Theirs,
            },
        };
        if matches!(answer, Answer::Unknown) {
            self.unanswered.insert(bucket);
        } else {
            self.unanswered.remove(&bucket);
        }
        answer
    }
}
