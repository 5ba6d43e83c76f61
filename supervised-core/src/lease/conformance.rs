//! The rules every lease backend keeps ([`Backend`]'s docs), as a suite to
//! run against one: both built-ins pass it, and a backend of your own
//! (Consul, Redis, the Kubernetes Lease API) should too.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let store = supervised::lease::Memory::new("replica-a");
//! supervised::lease::conformance::run(&store).await.unwrap();
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use super::{Acquired, Backend, Bound, Grant, Renewal};

/// The ttl the suite asks for: short, so the suite takes about 7 s of real
/// time, and a whole number of seconds, which every store can express.
pub const TTL: Duration = Duration::from_secs(2);

/// A rule the backend broke: which check, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonconformance {
    /// The check, such as `"exclusive"`.
    pub check: &'static str,
    /// What the backend did instead.
    pub detail: String,
}

impl fmt::Display for Nonconformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease backend broke `{}`: {}", self.check, self.detail)
    }
}

impl std::error::Error for Nonconformance {}

fn broke(check: &'static str, detail: impl fmt::Display) -> Nonconformance {
    Nonconformance {
        check,
        detail: detail.to_string(),
    }
}

/// A name no earlier run used, so runs against a shared store do not meet.
fn fresh_name() -> String {
    format!("supervised-conformance-{:016x}", fastrand::u64(..))
}

async fn granted(
    backend: &dyn Backend,
    name: &str,
    check: &'static str,
) -> Result<Grant, Nonconformance> {
    match backend.acquire(name, TTL).await {
        Ok(Acquired::Granted(grant)) => Ok(grant),
        Ok(Acquired::Held(by)) => Err(broke(check, format!("acquire answered Held({by:?})"))),
        Err(e) => Err(broke(check, format!("acquire failed: {e}"))),
    }
}

async fn held(
    backend: &dyn Backend,
    name: &str,
    check: &'static str,
) -> Result<(), Nonconformance> {
    match backend.acquire(name, TTL).await {
        Ok(Acquired::Held(_)) => Ok(()),
        Ok(Acquired::Granted(grant)) => Err(broke(
            check,
            format!("a second grant while one was live: {grant:?}"),
        )),
        Err(e) => Err(broke(check, format!("acquire failed: {e}"))),
    }
}

/// Runs every check against `backend`, on tokio's clock (about 7 s; under
/// paused time, at once for the in-memory store). Each run uses fresh
/// lease names, so it can share a store with live services.
///
/// The checks: a grant names the lease, the holder and the ttl; a live
/// grant excludes a second one, even to the same holder, and the answer
/// names the holder when the store knows it; renewal keeps a grant alive
/// past its first ttl; release frees it at once; an unrenewed grant
/// expires; epochs grow strictly over grants; a replaced grant's renewal
/// is refused; a replaced grant's release leaves the new grant alone.
pub async fn run(backend: &dyn Backend) -> Result<(), Nonconformance> {
    let name = fresh_name();

    let first = granted(backend, &name, "grant").await?;
    if first.name != name || first.holder != backend.holder() || first.ttl < TTL {
        return Err(broke("grant", format!("the grant says {first:?}")));
    }
    match backend.acquire(&name, TTL).await {
        Ok(Acquired::Held(by)) => {
            if by.holder.as_deref().is_some_and(|h| h != backend.holder()) {
                return Err(broke(
                    "exclusive",
                    format!("held by {by:?}, not by {}", backend.holder()),
                ));
            }
        }
        Ok(Acquired::Granted(grant)) => {
            return Err(broke(
                "exclusive",
                format!("a second grant while one was live: {grant:?}"),
            ))
        }
        Err(e) => return Err(broke("exclusive", format!("acquire failed: {e}"))),
    }

    // Renewed at half the ttl, it is still live at 1.25 ttl.
    tokio::time::sleep(TTL / 2).await;
    match backend.renew(&first).await {
        Ok(Renewal::Renewed) => {}
        other => {
            return Err(broke(
                "renew",
                format!("renewing a live grant answered {other:?}"),
            ))
        }
    }
    tokio::time::sleep(TTL * 3 / 4).await;
    held(backend, &name, "renew extends").await?;

    backend
        .release(&first)
        .await
        .map_err(|e| broke("release", format!("release failed: {e}")))?;
    let second = granted(backend, &name, "release frees").await?;
    if second.epoch <= first.epoch {
        return Err(broke(
            "epochs grow",
            format!("epoch {} after {}", second.epoch, first.epoch),
        ));
    }

    // Left alone, it expires.
    tokio::time::sleep(TTL + TTL / 2).await;
    let third = granted(backend, &name, "expiry").await?;
    if third.epoch <= second.epoch {
        return Err(broke(
            "epochs grow",
            format!("epoch {} after {}", third.epoch, second.epoch),
        ));
    }
    match backend.renew(&second).await {
        Ok(Renewal::Lost(_)) => {}
        other => {
            return Err(broke(
                "replaced grant",
                format!("renewing an expired, replaced grant answered {other:?}"),
            ))
        }
    }
    backend
        .release(&second)
        .await
        .map_err(|e| broke("replaced grant", format!("release failed: {e}")))?;
    held(backend, &name, "replaced grant").await?;

    backend
        .release(&third)
        .await
        .map_err(|e| broke("release", format!("release failed: {e}")))?;
    Ok(())
}

/// `name` bound to `member`, which must be granted.
async fn bound(
    backend: &dyn Backend,
    name: &str,
    member: &Grant,
    check: &'static str,
) -> Result<Grant, Nonconformance> {
    match backend.acquire_bound(name, member).await {
        Ok(Bound::Granted(grant)) => Ok(grant),
        other => Err(broke(check, format!("acquire_bound answered {other:?}"))),
    }
}

/// `name` must be held: a bound grant of it is live.
async fn bound_held(
    backend: &dyn Backend,
    name: &str,
    member: &Grant,
    check: &'static str,
) -> Result<(), Nonconformance> {
    match backend.acquire_bound(name, member).await {
        Ok(Bound::Held(_)) => Ok(()),
        other => Err(broke(
            check,
            format!("acquire_bound of a live bound grant answered {other:?}"),
        )),
    }
}

fn grew(check: &'static str, later: &Grant, earlier: &Grant) -> Result<(), Nonconformance> {
    if later.epoch <= earlier.epoch {
        return Err(broke(
            check,
            format!("epoch {} after {}", later.epoch, earlier.epoch),
        ));
    }
    Ok(())
}

/// Runs the checks of bound grants ([`Backend`]'s "Bound grants") against
/// `backend`, on tokio's clock (about 6 s; at once on paused time for the
/// in-memory store), with fresh names.
///
/// The checks: a bound grant names its lease and holder; a live one
/// excludes a second, even to the same holder; [`Backend::list`] names a
/// live member under its prefix and leaves out an expired one; the
/// member's renewal keeps its bound grants past their first ttl; release
/// of a bound grant frees it at once; release of the member ends its bound
/// grants; a member that expires takes them with it; binding to a member
/// no longer live answers [`Bound::MemberLost`]; epochs grow strictly; a
/// replaced bound grant's release leaves the new one alone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let store = supervised::lease::Memory::new("replica-a");
/// supervised::lease::conformance::run_bound(&store).await.unwrap();
/// # }
/// ```
pub async fn run_bound(backend: &dyn Backend) -> Result<(), Nonconformance> {
    let set = fresh_name();
    let (members, bucket) = (format!("{set}/members/"), format!("{set}/buckets/0"));
    let member_name = format!("{members}{}", backend.holder());
    let member = granted(backend, &member_name, "member").await?;

    let first = bound(backend, &bucket, &member, "bound grant").await?;
    if first.name != bucket || first.holder != backend.holder() {
        return Err(broke("bound grant", format!("the grant says {first:?}")));
    }
    bound_held(backend, &bucket, &member, "bound exclusive").await?;
    let listed = backend
        .list(&members)
        .await
        .map_err(|e| broke("list", format!("list failed: {e}")))?;
    if !listed
        .iter()
        .any(|l| l.name == member_name && l.holder == backend.holder() && l.epoch == member.epoch)
    {
        return Err(broke(
            "list",
            format!("the live member is not in {listed:?}"),
        ));
    }

    // The member's renewal at half the ttl keeps its bound grant at 1.25 ttl.
    tokio::time::sleep(TTL / 2).await;
    match backend.renew(&member).await {
        Ok(Renewal::Renewed) => {}
        other => return Err(broke("member renew", format!("answered {other:?}"))),
    }
    tokio::time::sleep(TTL * 3 / 4).await;
    bound_held(backend, &bucket, &member, "member renewal extends").await?;

    backend
        .release_bound(&first)
        .await
        .map_err(|e| broke("bound release", format!("release_bound failed: {e}")))?;
    let second = bound(backend, &bucket, &member, "bound release frees").await?;
    grew("bound epochs grow", &second, &first)?;

    // Releasing the member ends what is bound to it.
    backend
        .release(&member)
        .await
        .map_err(|e| broke("member release", format!("release failed: {e}")))?;
    match backend.acquire_bound(&bucket, &member).await {
        Ok(Bound::MemberLost) => {}
        other => {
            return Err(broke(
                "member lost",
                format!("binding to a released member answered {other:?}"),
            ))
        }
    }
    let member = granted(backend, &member_name, "member again").await?;
    let third = bound(backend, &bucket, &member, "member release ends bound").await?;
    grew("bound epochs grow", &third, &second)?;

    // Left unrenewed, the member expires and takes its bound grant along.
    tokio::time::sleep(TTL + TTL / 2).await;
    let listed = backend
        .list(&members)
        .await
        .map_err(|e| broke("list", format!("list failed: {e}")))?;
    if listed.iter().any(|l| l.name == member_name) {
        return Err(broke("list", format!("an expired member is in {listed:?}")));
    }
    let other_name = format!("{members}{}-2", backend.holder());
    let other = granted(backend, &other_name, "member").await?;
    let fourth = bound(backend, &bucket, &other, "member expiry ends bound").await?;
    grew("bound epochs grow", &fourth, &third)?;
    backend
        .release_bound(&third)
        .await
        .map_err(|e| broke("replaced bound grant", format!("release_bound failed: {e}")))?;
    bound_held(backend, &bucket, &other, "replaced bound grant").await?;

    backend
        .release(&other)
        .await
        .map_err(|e| broke("member release", format!("release failed: {e}")))?;
    Ok(())
}
