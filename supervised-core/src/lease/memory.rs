//! [`Memory`]: an in-process lease store on tokio's clock, for tests of
//! lease-gated code (paused time included) and as the reference the
//! conformance suite is written against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{Acquired, Backend, Bound, BoxFuture, Grant, Holder, LeaseError, Listed, Renewal};
use crate::registry::deadline;

/// An in-process lease store. Replicas made with [`replica`](Memory::replica)
/// share it, so a test can run several "replicas" in one process; expiry
/// follows tokio's clock, so paused time controls it.
///
/// It can also misbehave on demand: [`set_down`](Memory::set_down) makes
/// every call fail as an unreachable server would, and
/// [`revoke`](Memory::revoke) ends a grant as an operator (or a store that
/// lost its data) would.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::lease::{Acquired, Backend, Memory};
///
/// let a = Memory::new("replica-a");
/// let b = a.replica("replica-b");
/// let ttl = Duration::from_secs(15);
/// let Ok(Acquired::Granted(grant)) = a.acquire("scheduler", ttl).await else { panic!() };
/// assert!(matches!(b.acquire("scheduler", ttl).await, Ok(Acquired::Held(_))));
/// a.release(&grant).await.unwrap();
/// let Ok(Acquired::Granted(next)) = b.acquire("scheduler", ttl).await else { panic!() };
/// assert!(next.epoch > grant.epoch);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Memory {
    holder: String,
    store: Arc<Mutex<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    leases: HashMap<String, Live>,
    /// The last epoch granted per name; never goes back.
    epochs: HashMap<String, u64>,
    /// Bound grants by name (a namespace apart), live while their member is.
    bound: HashMap<String, BoundLive>,
    bound_epochs: HashMap<String, u64>,
    down: bool,
    calls: u64,
}

#[derive(Debug)]
struct Live {
    holder: String,
    epoch: u64,
    expires_at: Instant,
}

#[derive(Debug)]
struct BoundLive {
    holder: String,
    epoch: u64,
    member: String,
    member_epoch: u64,
}

impl Store {
    /// The live plain grant of `name`.
    fn live(&self, name: &str, now: Instant) -> Option<&Live> {
        self.leases.get(name).filter(|live| live.expires_at > now)
    }

    /// The live bound grant of `name`: its member is live at its epoch.
    fn live_bound(&self, name: &str, now: Instant) -> Option<(&BoundLive, &Live)> {
        let bound = self.bound.get(name)?;
        let member = self
            .live(&bound.member, now)
            .filter(|member| member.epoch == bound.member_epoch)?;
        Some((bound, member))
    }
}

impl Memory {
    /// A new, empty store, used as `holder`.
    pub fn new(holder: impl Into<String>) -> Self {
        Memory {
            holder: holder.into(),
            store: Arc::default(),
        }
    }

    /// Another replica, `holder`, on the same store.
    pub fn replica(&self, holder: impl Into<String>) -> Self {
        Memory {
            holder: holder.into(),
            store: self.store.clone(),
        }
    }

    /// Makes every call of every replica fail (`true`) or answer again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use supervised::lease::{Backend, Memory};
    /// let store = Memory::new("a");
    /// store.set_down(true);
    /// assert!(store.acquire("x", std::time::Duration::from_secs(1)).await.is_err());
    /// # }
    /// ```
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Ends the live grant of `name`, whoever holds it: its holder's next
    /// renewal is refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use supervised::lease::{Acquired, Backend, Memory, Renewal};
    /// let store = Memory::new("a");
    /// let Ok(Acquired::Granted(grant)) = store.acquire("x", std::time::Duration::from_secs(9)).await else { panic!() };
    /// store.revoke("x");
    /// assert!(matches!(store.renew(&grant).await, Ok(Renewal::Lost(_))));
    /// # }
    /// ```
    pub fn revoke(&self, name: &str) {
        self.lock().leases.remove(name);
    }

    /// Who holds `name` now, and at which epoch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use supervised::lease::{Backend, Memory};
    /// let store = Memory::new("a");
    /// store.acquire("x", std::time::Duration::from_secs(9)).await.unwrap();
    /// assert_eq!(store.holder_of("x"), Some(("a".to_owned(), 1)));
    /// # }
    /// ```
    pub fn holder_of(&self, name: &str) -> Option<(String, u64)> {
        let now = Instant::now();
        let store = self.lock();
        store
            .leases
            .get(name)
            .filter(|live| live.expires_at > now)
            .map(|live| (live.holder.clone(), live.epoch))
    }

    /// How many calls (answered or failed) every replica made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store, counted and refused while down.
    fn answer(&self) -> Result<MutexGuard<'_, Store>, LeaseError> {
        let mut store = self.lock();
        store.calls += 1;
        if store.down {
            return Err(LeaseError::new("memory lease store is down"));
        }
        Ok(store)
    }
}

fn holder_of(live: &Live, now: Instant) -> Holder {
    Holder::new(
        &live.holder,
        live.epoch,
        live.expires_at.saturating_duration_since(now),
    )
}

impl Backend for Memory {
    fn holder(&self) -> &str {
        &self.holder
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, LeaseError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut store = self.answer()?;
            if let Some(live) = store.leases.get(name).filter(|l| l.expires_at > now) {
                return Ok(Acquired::Held(holder_of(live, now)));
            }
            let epoch = store.epochs.get(name).copied().unwrap_or(0) + 1;
            store.epochs.insert(name.to_owned(), epoch);
            store.leases.insert(
                name.to_owned(),
                Live {
                    holder: self.holder.clone(),
                    epoch,
                    expires_at: deadline(now, ttl),
                },
            );
            Ok(Acquired::Granted(Grant::new(
                name,
                &self.holder,
                epoch,
                ttl,
            )))
        })
    }

    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut store = self.answer()?;
            match store.leases.get_mut(&grant.name) {
                Some(live) if live.epoch == grant.epoch && live.expires_at > now => {
                    live.expires_at = deadline(now, grant.ttl);
                    Ok(Renewal::Renewed)
                }
                Some(live) if live.expires_at > now => Ok(Renewal::Lost(holder_of(live, now))),
                _ => Ok(Renewal::Lost(Holder::default())),
            }
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let mut store = self.answer()?;
            if store
                .leases
                .get(&grant.name)
                .is_some_and(|live| live.epoch == grant.epoch)
            {
                store.leases.remove(&grant.name);
            }
            Ok(())
        })
    }

    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut store = self.answer()?;
            if store
                .live(&member.name, now)
                .is_none_or(|live| live.epoch != member.epoch)
            {
                return Ok(Bound::MemberLost);
            }
            if let Some((bound, member)) = store.live_bound(name, now) {
                return Ok(Bound::Held(Holder::new(
                    &bound.holder,
                    bound.epoch,
                    member.expires_at.saturating_duration_since(now),
                )));
            }
            let epoch = store.bound_epochs.get(name).copied().unwrap_or(0) + 1;
            store.bound_epochs.insert(name.to_owned(), epoch);
            store.bound.insert(
                name.to_owned(),
                BoundLive {
                    holder: self.holder.clone(),
                    epoch,
                    member: member.name.clone(),
                    member_epoch: member.epoch,
                },
            );
            Ok(Bound::Granted(Grant::new(
                name,
                &self.holder,
                epoch,
                member.ttl,
            )))
        })
    }

    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let mut store = self.answer()?;
            if store
                .bound
                .get(&grant.name)
                .is_some_and(|bound| bound.epoch == grant.epoch)
            {
                store.bound.remove(&grant.name);
            }
            Ok(())
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        Box::pin(async move {
            let now = Instant::now();
            let store = self.answer()?;
            Ok(store
                .leases
                .iter()
                .filter(|(name, live)| name.starts_with(prefix) && live.expires_at > now)
                .map(|(name, live)| {
                    Listed::new(name, &live.holder, live.epoch)
                        .with_expires_in(live.expires_at.saturating_duration_since(now))
                })
                .collect())
        })
    }
}
