//! The stall watchdog: one WARN when a subsystem goes stale, one INFO when it
//! recovers, nothing in between.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::registry::{registry, Registry};

/// Scans a registry and logs each stall episode of a subsystem that declares
/// a tick: one WARN when it goes stale (name, seconds since its last beat,
/// declared tick, state), one INFO when it beats again. Nothing is logged
/// between the two, however many scans see the stall. The snapshot shows
/// the stall too: `stale` and `stale_since` on [`crate::SubsystemStatus`].
///
/// The watchdog only reports. To drop and restart a stuck body, turn on
/// [`crate::Supervisor::restart_on_stall`] (`on_stall = "restart"` in the
/// attribute); a body blocked in synchronous code or spinning without an
/// `.await` cannot be preempted, but it is still reported here.
///
/// It has the builder shape of the systemd watchdog
/// (`supervised::systemd::SystemdWatchdog`): settings by value, then
/// [`run`](StallWatchdog::run) or [`spawn`](StallWatchdog::spawn) with the
/// token that stops it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::{CancellationToken, Registry, StallWatchdog};
///
/// let registry = Registry::new();
/// registry.subsystem("sweep").declare_tick(Some(Duration::from_secs(30)), None);
/// let cancel = CancellationToken::new();
/// let watchdog = StallWatchdog::new().registry(&registry).spawn(cancel.clone());
/// tokio::time::sleep(Duration::from_secs(61)).await; // logs one WARN: sweep stalled
/// assert!(registry.subsystem("sweep").status().stale_since.is_some());
/// cancel.cancel();
/// watchdog.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StallWatchdog {
    registry: Registry,
    period: Duration,
}

impl Default for StallWatchdog {
    fn default() -> Self {
        Self::new()
    }
}

impl StallWatchdog {
    /// A watchdog over the process-wide [`registry()`] that scans every
    /// second.
    pub fn new() -> Self {
        StallWatchdog {
            registry: registry().clone(),
            period: Duration::from_secs(1),
        }
    }

    /// Watches `registry` instead of the process-wide one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// How often to scan the registry (default 1 s). A stall is reported at
    /// most one period after it begins.
    ///
    /// # Panics
    /// If `period` is zero: a configuration mistake, reported where it is
    /// made rather than as a task that spins.
    ///
    /// ```should_panic
    /// use std::time::Duration;
    /// let _ = supervised::StallWatchdog::new().period(Duration::ZERO);
    /// ```
    pub fn period(mut self, period: Duration) -> Self {
        assert!(
            !period.is_zero(),
            "the stall watchdog period must be longer than zero"
        );
        self.period = period;
        self
    }

    /// [`run`](StallWatchdog::run) on a new task of the current tokio
    /// runtime.
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(cancel))
    }

    /// Scans every period until `cancel` is cancelled, for callers that
    /// drive it in a task of their own.
    pub async fn run(self, cancel: CancellationToken) {
        let StallWatchdog { registry, period } = self;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Subsystems in a stall episode, and since when.
        let mut stalled: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            for status in registry.snapshot() {
                let Some(tick) = status.tick else { continue };
                match (status.stale_since, stalled.contains_key(&status.name)) {
                    (Some(since), false) => {
                        let silent = status.last_beat.unwrap_or(status.registered_at).elapsed();
                        tracing::warn!(
                            target: "supervised", subsystem = %status.name,
                            seconds_since_last_beat = silent.as_secs(),
                            never_beat = status.last_beat.is_none(),
                            tick = ?tick,
                            state = %status.state,
                            "supervised subsystem stalled: no heartbeat within stale_after"
                        );
                        stalled.insert(status.name, since);
                    }
                    (None, true) => {
                        let began = stalled.remove(&status.name);
                        tracing::info!(
                            target: "supervised", subsystem = %status.name,
                            stalled_for = ?began.map(|b| b.elapsed()),
                            state = %status.state,
                            "supervised subsystem recovered: beating again"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
}
