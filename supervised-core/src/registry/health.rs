//! The strict health rule shared by `/admin/health` and the systemd watchdog.

use crate::{State, SubsystemStatus};

/// Which critical (non-advisory) subsystems fail the strict probe.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Critical subsystems that declare a tick and missed it (sorted by name).
    pub(crate) stale: Vec<String>,
    /// Critical subsystems whose supervisor gave up (sorted by name).
    pub(crate) failed: Vec<String>,
}

impl Verdict {
    /// Applies the rule to a snapshot: no critical subsystem is
    /// [`State::Failed`], and every critical one that declares a tick is fresh.
    /// Advisory subsystems are ignored.
    pub(crate) fn of(snapshot: &[SubsystemStatus]) -> Self {
        let mut verdict = Verdict::default();
        for s in snapshot.iter().filter(|s| !s.advisory) {
            if s.stale {
                verdict.stale.push(s.name.clone());
            }
            if s.state == State::Failed {
                verdict.failed.push(s.name.clone());
            }
        }
        verdict
    }

    /// Whether nothing critical is stale or failed.
    pub(crate) fn ok(&self) -> bool {
        self.stale.is_empty() && self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Verdict;
    use crate::{Registry, State};

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
        advisory_failed.set_state(State::Failed);

        tokio::time::advance(Duration::from_secs(3)).await;
        fresh.beat();
        assert_eq!(
            Verdict::of(&registry.snapshot()),
            Verdict {
                stale: vec!["stale".into()],
                failed: vec![]
            }
        );

        stale.beat();
        assert!(Verdict::of(&registry.snapshot()).ok());

        registry.subsystem("gave-up").set_state(State::Failed);
        let verdict = Verdict::of(&registry.snapshot());
        assert!(!verdict.ok());
        assert_eq!(verdict.failed, vec!["gave-up".to_string()]);
        assert!(verdict.stale.is_empty());
    }
}
