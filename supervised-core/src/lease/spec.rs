//! A lease-gated supervision's settings, and the timings derived from the
//! ttl.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Backend;

/// The default ttl of a lease.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The smallest ttl a supervisor accepts: below it the renewal timings
/// (thirds and fifths of the ttl) fall under the timer's resolution.
pub(crate) const MIN_TTL: Duration = Duration::from_millis(50);

/// Which lease gates a supervision, for how long each grant lives, and the
/// backend to ask (the installed one when `None`).
#[derive(Clone)]
pub(crate) struct LeaseSpec {
    pub(crate) name: Cow<'static, str>,
    pub(crate) ttl: Duration,
    pub(crate) backend: Option<Arc<dyn Backend>>,
}

impl fmt::Debug for LeaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseSpec")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field(
                "backend",
                &self.backend.as_ref().map(|b| b.holder().to_owned()),
            )
            .finish()
    }
}

impl LeaseSpec {
    /// A renewal is due a third of the ttl after the last confirmed one; a
    /// standby replica asks again this often.
    pub(crate) fn interval(&self) -> Duration {
        self.ttl / 3
    }

    /// The safety margin kept before the grant's earliest possible expiry
    /// (a fifth of the ttl): the body is gone by `ttl - margin` after the
    /// last confirmed renewal.
    pub(crate) fn margin(&self) -> Duration {
        self.ttl / 5
    }

    /// How long after the last confirmed renewal the lease counts as lost
    /// if no renewal got through: the body's token is cancelled then, and
    /// it has until the drop deadline to return.
    pub(crate) fn give_up_after(&self) -> Duration {
        self.ttl.saturating_sub(self.margin() * 2)
    }

    /// How long after the last confirmed renewal the body is dropped at the
    /// latest.
    pub(crate) fn drop_after(&self) -> Duration {
        self.ttl.saturating_sub(self.margin())
    }

    /// The pause between renewal attempts that failed.
    pub(crate) fn retry(&self) -> Duration {
        (self.ttl / 15).max(Duration::from_millis(1))
    }
}
