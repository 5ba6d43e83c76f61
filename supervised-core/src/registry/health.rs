//! The one health rule, over a snapshot: what `/admin/health`, the systemd
//! watchdog, the liveness report's top-level `healthy` and
//! [`Registry::health`](crate::Registry::health) all answer with.

use super::status::{SubsystemState, SubsystemStatus};

/// The health of a set of subsystems: which critical ones fail.
///
/// The rule, per subsystem, is [`SubsystemStatus::healthy`]: not
/// [`SubsystemState::Failed`], and fresh if it declares a tick. A set is
/// healthy when every *critical* subsystem is: advisory ones
/// ([`Subsystem::set_advisory`](crate::Subsystem::set_advisory)) are
/// reported in every snapshot but never fail the set, so an outage of a
/// dependency they watch cannot cascade into restarts of the whole service.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::Registry;
///
/// let registry = Registry::new();
/// let sweep = registry.subsystem("sweep");
/// sweep.declare_tick(Some(Duration::from_secs(10)), None);
/// assert!(registry.health().is_ok());
///
/// tokio::time::advance(Duration::from_secs(21)).await; // past twice the tick
/// let health = registry.health();
/// assert!(!health.is_ok());
/// assert_eq!(health.stale, ["sweep"]);
/// assert!(health.failed.is_empty());
/// # }
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Critical subsystems that declare a tick and are stale, sorted by name.
    pub stale: Vec<String>,
    /// Critical subsystems whose supervisor gave up, sorted by name.
    pub failed: Vec<String>,
}

impl Health {
    /// Applies the rule to a snapshot (as [`Registry::snapshot`](crate::Registry::snapshot)
    /// returns it, sorted by name).
    pub fn of(snapshot: &[SubsystemStatus]) -> Self {
        let mut health = Health::default();
        for s in snapshot.iter().filter(|s| !s.advisory) {
            if s.stale {
                health.stale.push(s.name.clone());
            }
            if s.state == SubsystemState::Failed {
                health.failed.push(s.name.clone());
            }
        }
        health
    }

    /// Whether no critical subsystem is stale or failed.
    pub fn is_ok(&self) -> bool {
        self.stale.is_empty() && self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Health;
    use crate::{Registry, SubsystemState};

    #[tokio::test(start_paused = true)]
    async fn failed_and_stale_critical_subsystems_fail_advisory_ones_do_not() {
        let registry = Registry::new();
        let fresh = registry.subsystem("fresh");
        fresh.declare_tick(Some(Duration::from_secs(1)), None);
        registry.subsystem("no-tick");
        let stale = registry.subsystem("stale");
        stale.declare_tick(Some(Duration::from_secs(1)), None);
        let advisory = registry.subsystem("advisory");
        advisory.declare_tick(Some(Duration::from_secs(1)), None);
        advisory.set_advisory(true);
        let advisory_failed = registry.subsystem("advisory-failed");
        advisory_failed.set_advisory(true);
        advisory_failed.set_state(SubsystemState::Failed);

        tokio::time::advance(Duration::from_secs(3)).await;
        fresh.beat();
        assert_eq!(
            Health::of(&registry.snapshot()),
            Health {
                stale: vec!["stale".into()],
                failed: vec![]
            }
        );

        stale.beat();
        assert!(Health::of(&registry.snapshot()).is_ok());

        registry
            .subsystem("gave-up")
            .set_state(SubsystemState::Failed);
        let health = Health::of(&registry.snapshot());
        assert!(!health.is_ok());
        assert_eq!(health.failed, vec!["gave-up".to_string()]);
        assert!(health.stale.is_empty());
    }
}
