//! The one health rule, over a snapshot: what `/admin/health`, the systemd
//! watchdog, the liveness report's top-level `healthy` and
//! [`Registry::health`](crate::Registry::health) all answer with.

use std::collections::HashMap;

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
    /// Critical groups with
    /// [`min_healthy_percent`](crate::Group::min_healthy_percent) whose share
    /// of healthy children is below it, sorted by path.
    pub below_min_healthy: Vec<String>,
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
        health.below_min_healthy = below_share(snapshot, |s| s.healthy);
        health
    }

    /// Whether no critical subsystem is stale or failed, and no critical
    /// group is below its share of healthy children.
    pub fn is_ok(&self) -> bool {
        self.stale.is_empty() && self.failed.is_empty() && self.below_min_healthy.is_empty()
    }
}

/// The critical groups with a `min_healthy_percent` whose direct children
/// (paused ones left out) pass `counts` in a smaller share than that, in
/// the snapshot's order. A group with no such children is not below.
pub(super) fn below_share(
    snapshot: &[SubsystemStatus],
    counts: impl Fn(&SubsystemStatus) -> bool,
) -> Vec<String> {
    let mut shares: HashMap<&str, (u64, u64)> = snapshot
        .iter()
        .filter(|s| !s.advisory && s.min_healthy_percent.is_some())
        .map(|s| (s.name.as_str(), (0, 0)))
        .collect();
    if shares.is_empty() {
        return Vec::new();
    }
    for s in snapshot
        .iter()
        .filter(|s| s.state != SubsystemState::Paused)
    {
        if let Some((total, passing)) = s.group.as_deref().and_then(|g| shares.get_mut(g)) {
            *total += 1;
            *passing += u64::from(counts(s));
        }
    }
    snapshot
        .iter()
        .filter_map(|s| {
            let percent = u64::from(s.min_healthy_percent?);
            let &(total, passing) = shares.get(s.name.as_str())?;
            (total > 0 && passing * 100 < percent * total).then(|| s.name.clone())
        })
        .collect()
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
                failed: vec![],
                below_min_healthy: vec![],
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
