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

use super::{Acquired, Backend, Grant, Renewal};

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
