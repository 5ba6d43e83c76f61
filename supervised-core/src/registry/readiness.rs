//! Readiness, the other half of Kubernetes' probes: whether the process
//! should be sent traffic, as opposed to whether it should be restarted
//! ([`Health`](super::Health)).

use super::status::{SubsystemState, SubsystemStatus};

/// Whether a service should be sent traffic, from its registry
/// ([`Registry::readiness`](crate::Registry::readiness), `GET /admin/ready`,
/// `supervised_ready`).
///
/// It moves one way: `Starting`, then `Ready`, then `Draining`.
///
/// - **Starting** until every critical (not advisory) subsystem that
///   declares a tick has beaten once. One that stopped without beating is
///   not waited for, nor is a lease-gated one in standby (another replica
///   runs it); one that failed or is backing off before its first beat is.
/// - **Ready** from the first time it is found so. It then stays ready: a
///   subsystem registered later (a worker for a new tenant, say) does not
///   take the whole process out of rotation while it starts. Staleness and
///   failures are the health probe's concern, which restarts the process.
/// - **Draining** from the moment a shutdown begins
///   ([`Registry::set_draining`](crate::Registry::set_draining), which a
///   [`Group`](crate::Group) calls first thing), so load balancers stop
///   sending work before anything stops.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::{Readiness, Registry};
///
/// let registry = Registry::new();
/// let sweep = registry.subsystem("sweep");
/// sweep.declare_tick(Some(Duration::from_secs(10)), None);
/// assert_eq!(registry.readiness(), Readiness::Starting { waiting: vec!["sweep".into()] });
/// sweep.beat();
/// assert_eq!(registry.readiness(), Readiness::Ready);
/// registry.set_draining();
/// assert_eq!(registry.readiness(), Readiness::Draining);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Critical subsystems with a tick that have not beaten yet, sorted by name.
    Starting {
        /// Their names.
        waiting: Vec<String>,
    },
    /// Every critical subsystem with a tick has beaten once.
    Ready,
    /// A shutdown has begun.
    Draining,
}

/// Whether `s` has a tick and has not beaten once, in a state that runs.
fn waits(s: &SubsystemStatus) -> bool {
    s.tick.is_some()
        && s.last_beat.is_none()
        && s.state != SubsystemState::Stopped
        && s.state != SubsystemState::Standby
        && s.state != SubsystemState::Paused
}

impl Readiness {
    /// Whether traffic should be sent: `Ready` only.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    /// The lower-case name used in JSON: `starting`, `ready` or `draining`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Readiness::Starting { .. } => "starting",
            Readiness::Ready => "ready",
            Readiness::Draining => "draining",
        }
    }

    /// The subsystems a snapshot is still waiting for (see the type's docs).
    pub(super) fn waiting(snapshot: &[SubsystemStatus]) -> Vec<String> {
        let mut waiting: Vec<String> = snapshot
            .iter()
            .filter(|s| !s.advisory && waits(s))
            .map(|s| s.name.clone())
            .collect();
        // A group judged by share waits until that share of its children
        // with a tick has beaten once (its children are advisory).
        let with_tick: Vec<SubsystemStatus> = snapshot
            .iter()
            .filter(|s| s.min_healthy_percent.is_some() || s.tick.is_some())
            .cloned()
            .collect();
        waiting.extend(super::health::below_share(&with_tick, |s| !waits(s)));
        waiting.sort();
        waiting
    }
}
