//! [`Etcd`]: leases on etcd's own leases, taken by a transaction on the
//! key's revision.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};

use super::{Acquired, Backend, Bound, BoxFuture, Grant, Holder, LeaseError, Listed, Renewal};

/// The key prefix of every lease.
const PREFIX: &str = "supervised/leases/";

/// The key prefix of every bound grant.
const BOUND_PREFIX: &str = "supervised/bound/";

/// Leases on etcd (cargo feature `etcd`), through the `etcd-client` crate.
///
/// A grant is the key `supervised/leases/<name>`, holding the holder's id,
/// attached to an etcd lease of the ttl (rounded up to whole seconds, as
/// etcd counts). It is taken by one transaction, "create the key if its
/// `create_revision` is 0", so two replicas cannot both win, and etcd's
/// own clock expires it. The fencing epoch is the key's creation revision,
/// which grows strictly with every grant. Renewal is a keep-alive of the
/// etcd lease, then a check that the key is still this grant's; release
/// revokes the etcd lease, which deletes the key.
///
/// A bound grant is the key `supervised/bound/<name>`, attached to its
/// member's etcd lease: etcd deletes it when the member expires or is
/// released, and the member's keep-alive keeps it. It is taken by one
/// transaction that also checks the member's key is still that grant's.
///
/// ```no_run
/// # async fn start() -> Result<(), supervised::lease::LeaseError> {
/// let leases = supervised::lease::Etcd::connect(["http://etcd:2379"], "replica-a").await?;
/// supervised::lease::install(leases);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    holder: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

fn etcd(e: etcd_client::Error) -> LeaseError {
    LeaseError::new(format!("etcd: {e}"))
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn bound_key(name: &str) -> String {
    format!("{BOUND_PREFIX}{name}")
}

/// A key's creation revision: the epoch of the grant it is.
fn created(kv: &KeyValue) -> Option<u64> {
    u64::try_from(kv.create_revision()).ok()
}

impl Etcd {
    /// A client of the etcd cluster at `endpoints`, acquiring as `holder`.
    ///
    /// `Err` for endpoints that are not URLs. A cluster that cannot be
    /// reached is not an error here: every lease call reports it with
    /// etcd's message and the gated subsystems stand by until it answers.
    /// Each call gives up after 5 s.
    pub async fn connect<E: AsRef<str>, S: AsRef<[E]>>(
        endpoints: S,
        holder: &str,
    ) -> Result<Etcd, LeaseError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(etcd)?;
        Ok(Etcd {
            client,
            holder: holder.to_owned(),
        })
    }

    /// Who holds the key `kv`, and how long its etcd lease has left.
    async fn holder_of(&self, kv: &KeyValue) -> Holder {
        let mut holder = Holder {
            holder: kv.value_str().ok().map(str::to_owned),
            epoch: u64::try_from(kv.create_revision()).ok(),
            expires_in: None,
        };
        if let Ok(left) = self
            .client
            .clone()
            .lease_time_to_live(kv.lease(), None)
            .await
        {
            holder.expires_in = u64::try_from(left.ttl()).ok().map(Duration::from_secs);
        }
        holder
    }

    /// One keep-alive of the etcd lease `id`: whether it is still alive.
    async fn keep_alive(&self, id: i64) -> Result<bool, LeaseError> {
        let (mut keeper, mut answers) = self
            .client
            .clone()
            .lease_keep_alive(id)
            .await
            .map_err(etcd)?;
        keeper.keep_alive().await.map_err(etcd)?;
        Ok(answers
            .message()
            .await
            .map_err(etcd)?
            .is_some_and(|answer| answer.ttl() > 0))
    }

    /// The key of `name` now, if it exists.
    async fn current(&self, name: &str) -> Result<Option<KeyValue>, LeaseError> {
        let got = self
            .client
            .clone()
            .get(key(name), None::<GetOptions>)
            .await
            .map_err(etcd)?;
        Ok(got.kvs().first().cloned())
    }
}

/// The etcd lease id a grant carries.
fn lease_id(grant: &Grant) -> Result<i64, LeaseError> {
    grant
        .token
        .parse()
        .map_err(|_| LeaseError::new(format!("not an etcd grant (token {:?})", grant.token)))
}

impl Backend for Etcd {
    fn holder(&self) -> &str {
        &self.holder
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, LeaseError>> {
        Box::pin(async move {
            // A cheap read first, so standby replicas do not make an etcd
            // lease on every attempt.
            if let Some(kv) = self.current(name).await? {
                return Ok(Acquired::Held(self.holder_of(&kv).await));
            }
            let mut client = self.client.clone();
            let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
                .unwrap_or(i64::MAX)
                .max(1);
            let lease = client.lease_grant(seconds, None).await.map_err(etcd)?;
            let key = key(name);
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    self.holder.clone(),
                    Some(PutOptions::new().with_lease(lease.id())),
                )])
                .or_else([TxnOp::get(key, None)]);
            let answer = match client.txn(txn).await {
                Ok(answer) => answer,
                Err(e) => {
                    let _ = client.lease_revoke(lease.id()).await;
                    return Err(etcd(e));
                }
            };
            if answer.succeeded() {
                let revision = answer.header().map_or(0, |h| h.revision());
                let granted = Duration::from_secs(u64::try_from(lease.ttl()).unwrap_or(0));
                return Ok(Acquired::Granted(
                    Grant::new(
                        name,
                        &self.holder,
                        u64::try_from(revision).unwrap_or(0),
                        granted.max(ttl),
                    )
                    .with_token(lease.id().to_string()),
                ));
            }
            // Lost the race: the unused etcd lease goes.
            let _ = client.lease_revoke(lease.id()).await;
            let theirs = answer.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(got) => got.kvs().first().cloned(),
                _ => None,
            });
            Ok(Acquired::Held(match theirs {
                Some(kv) => self.holder_of(&kv).await,
                None => Holder::default(),
            }))
        })
    }

    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
        Box::pin(async move {
            let id = lease_id(grant)?;
            let alive = match self.keep_alive(id).await {
                Ok(alive) => alive,
                // An expired etcd lease is "not found": lost, if the key
                // says so too (an unreachable cluster stays an error).
                Err(e) => match self.current(&grant.name).await {
                    Ok(Some(kv))
                        if u64::try_from(kv.create_revision()).ok() == Some(grant.epoch) =>
                    {
                        return Err(e)
                    }
                    Ok(Some(kv)) => return Ok(Renewal::Lost(self.holder_of(&kv).await)),
                    Ok(None) => return Ok(Renewal::Lost(Holder::default())),
                    Err(_) => return Err(e),
                },
            };
            let current = self.current(&grant.name).await?;
            match current {
                Some(kv)
                    if alive && u64::try_from(kv.create_revision()).ok() == Some(grant.epoch) =>
                {
                    Ok(Renewal::Renewed)
                }
                Some(kv) if u64::try_from(kv.create_revision()).ok() != Some(grant.epoch) => {
                    Ok(Renewal::Lost(self.holder_of(&kv).await))
                }
                _ => Ok(Renewal::Lost(Holder::default())),
            }
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let id = lease_id(grant)?;
            match self.client.clone().lease_revoke(id).await {
                Ok(_) => Ok(()),
                // Already expired (etcd says "not found"): nothing to end,
                // unless the key is somehow still this grant's.
                Err(e) => match self.current(&grant.name).await? {
                    Some(kv) if u64::try_from(kv.create_revision()).ok() == Some(grant.epoch) => {
                        Err(etcd(e))
                    }
                    _ => Ok(()),
                },
            }
        })
    }

    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        Box::pin(async move {
            let lease = lease_id(member)?;
            let mut client = self.client.clone();
            let (key, member_key) = (bound_key(name), key(&member.name));
            let member_revision = i64::try_from(member.epoch).unwrap_or(i64::MAX);
            let txn = Txn::new()
                .when([
                    Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                    Compare::create_revision(member_key.clone(), CompareOp::Equal, member_revision),
                ])
                .and_then([TxnOp::put(
                    key.clone(),
                    self.holder.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key, None), TxnOp::get(member_key, None)]);
            let answer = client.txn(txn).await.map_err(etcd)?;
            if answer.succeeded() {
                let revision = answer.header().map_or(0, |h| h.revision());
                return Ok(Bound::Granted(
                    Grant::new(
                        name,
                        &self.holder,
                        u64::try_from(revision).unwrap_or(0),
                        member.ttl,
                    )
                    .with_token(lease.to_string()),
                ));
            }
            let mut got = answer.op_responses().into_iter().map(|op| match op {
                TxnOpResponse::Get(got) => got.kvs().first().cloned(),
                _ => None,
            });
            let (theirs, member_now) = (got.next().flatten(), got.next().flatten());
            if member_now.as_ref().and_then(created) != Some(member.epoch) {
                return Ok(Bound::MemberLost);
            }
            Ok(Bound::Held(match theirs {
                Some(kv) => self.holder_of(&kv).await,
                None => Holder::default(),
            }))
        })
    }

    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let key = bound_key(&grant.name);
            let revision = i64::try_from(grant.epoch).unwrap_or(i64::MAX);
            let txn = Txn::new()
                .when([Compare::create_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::delete(key, None)]);
            self.client.clone().txn(txn).await.map_err(etcd)?;
            Ok(())
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        Box::pin(async move {
            let got = self
                .client
                .clone()
                .get(key(prefix), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(etcd)?;
            let mut listed = Vec::new();
            for kv in got.kvs() {
                let (Some(name), Ok(holder), Some(epoch)) = (
                    kv.key_str().ok().and_then(|k| k.strip_prefix(PREFIX)),
                    kv.value_str(),
                    created(kv),
                ) else {
                    continue;
                };
                // What its etcd lease has left (whole seconds, as etcd
                // counts): one more call per member, none per child.
                let left = self
                    .client
                    .clone()
                    .lease_time_to_live(kv.lease(), None)
                    .await
                    .ok()
                    .and_then(|answer| u64::try_from(answer.ttl()).ok());
                let member = Listed::new(name, holder, epoch);
                listed.push(match left {
                    Some(left) => member.with_expires_in(Duration::from_secs(left)),
                    None => member,
                });
            }
            Ok(listed)
        })
    }
}
