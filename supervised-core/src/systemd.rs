//! The systemd watchdog, fed by the registry (cargo feature `systemd`, Unix
//! only).
//!
//! Under a unit with `WatchdogSec=`, systemd restarts the service when no
//! `WATCHDOG=1` arrives in time. A timer thread that pings unconditionally
//! would hide a dead loop; this [`SystemdWatchdog`] pings (every half of the
//! timeout, as `sd_watchdog_enabled(3)` advises) only while every critical
//! subsystem passes the strict rule of `/admin/health`: none is
//! [`SubsystemState::Failed`](crate::SubsystemState::Failed), and every one that declares a
//! tick is fresh. Advisory subsystems
//! ([`Subsystem::set_advisory`](crate::Subsystem::set_advisory)) never
//! withhold a ping. When a check fails, the pings stop (logged once at
//! ERROR), so systemd restarts the service after `WatchdogSec=`; they resume
//! by themselves if the subsystems recover first.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() {
//! let shutdown = supervised::CancellationToken::new();
//! // `None` outside systemd; under a `Type=notify` unit without
//! // `WatchdogSec=`, it only says READY=1 and STOPPING=1.
//! let watchdog = supervised::systemd::spawn_watchdog(shutdown.clone());
//! // ... spawn the supervised subsystems, wait for a signal ...
//! shutdown.cancel();
//! if let Some(task) = watchdog {
//!     let _ = task.await;
//! }
//! # }
//! ```
//!
//! Notifications go to the socket named by `NOTIFY_SOCKET`, through the
//! `sd-notify` crate; without that variable they are silently skipped.

use std::io;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::{registry, CancellationToken, Registry};

/// How often the watchdog looks for readiness and draining.
const LIFECYCLE_PERIOD: Duration = Duration::from_millis(100);

/// The shortest ping period, so a tiny timeout cannot spin.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Pings the systemd watchdog while every critical subsystem is fresh.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use supervised::{systemd::SystemdWatchdog, CancellationToken, Registry};
///
/// let registry = Registry::new();
/// let watchdog = SystemdWatchdog::new(Duration::from_secs(30)).registry(&registry);
/// assert_eq!(watchdog.period(), Duration::from_secs(15));
/// let shutdown = CancellationToken::new();
/// let task = watchdog.spawn(shutdown.clone());
/// shutdown.cancel();
/// task.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SystemdWatchdog {
    registry: Registry,
    timeout: Duration,
    /// `false` for a unit without `WatchdogSec=`: only `READY=1` and
    /// `STOPPING=1` are sent.
    pings: bool,
}

impl SystemdWatchdog {
    /// The watchdog systemd asked for, over the process-wide [`registry()`]:
    /// `Some` when `WATCHDOG_USEC` is set to a positive value and
    /// `WATCHDOG_PID`, if set, is this process.
    ///
    /// ```
    /// // Outside systemd (and in doctests) there is no watchdog.
    /// # std::env::remove_var("WATCHDOG_USEC");
    /// assert!(supervised::systemd::SystemdWatchdog::from_env().is_none());
    /// ```
    pub fn from_env() -> Option<Self> {
        sd_notify::watchdog_enabled()
            .filter(|timeout| !timeout.is_zero())
            .map(SystemdWatchdog::new)
    }

    /// A watchdog for a `WatchdogSec=` of `timeout`, over the process-wide
    /// [`registry()`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let watchdog = supervised::systemd::SystemdWatchdog::new(Duration::from_secs(10));
    /// assert_eq!(watchdog.timeout(), Duration::from_secs(10));
    /// ```
    pub fn new(timeout: Duration) -> Self {
        SystemdWatchdog {
            registry: registry().clone(),
            timeout,
            pings: true,
        }
    }

    /// What a unit asks of the process: the watchdog of
    /// [`from_env`](SystemdWatchdog::from_env) under `WatchdogSec=`; else,
    /// under any `Type=notify` unit (`NOTIFY_SOCKET` set), one that only
    /// says `READY=1` and `STOPPING=1` (without them a `Type=notify` unit
    /// never starts); else `None`.
    ///
    /// ```
    /// # std::env::remove_var("WATCHDOG_USEC");
    /// # std::env::remove_var("NOTIFY_SOCKET");
    /// assert!(supervised::systemd::SystemdWatchdog::from_unit().is_none());
    /// ```
    pub fn from_unit() -> Option<Self> {
        Self::from_env().or_else(|| {
            // A process that inherited a unit's environment but is not its
            // main process (WATCHDOG_PID names another) says nothing.
            let another = std::env::var("WATCHDOG_PID")
                .ok()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != std::process::id());
            std::env::var_os("NOTIFY_SOCKET")
                .filter(|_| !another)
                .map(|_| SystemdWatchdog {
                    pings: false,
                    ..SystemdWatchdog::new(Duration::ZERO)
                })
        })
    }

    /// Whether it pings the watchdog (`false` for a unit without
    /// `WatchdogSec=`, where it only says `READY=1` and `STOPPING=1`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let watchdog = supervised::systemd::SystemdWatchdog::new(Duration::from_secs(10));
    /// assert!(watchdog.pings());
    /// ```
    pub fn pings(&self) -> bool {
        self.pings
    }

    /// Watches `registry` instead of the process-wide one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervised::{systemd::SystemdWatchdog, Registry};
    /// let watchdog = SystemdWatchdog::new(Duration::from_secs(10)).registry(&Registry::new());
    /// # let _ = watchdog;
    /// ```
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// The watchdog timeout (`WatchdogSec=`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let watchdog = supervised::systemd::SystemdWatchdog::new(Duration::from_secs(4));
    /// assert_eq!(watchdog.timeout(), Duration::from_secs(4));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often it checks and pings: half the timeout (at least 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// let watchdog = supervised::systemd::SystemdWatchdog::new(Duration::from_secs(4));
    /// assert_eq!(watchdog.period(), Duration::from_secs(2));
    /// ```
    pub fn period(&self) -> Duration {
        (self.timeout / 2).max(MIN_PERIOD)
    }

    /// Checks the registry once and pings if every critical subsystem is
    /// fresh. Returns whether it pinged. The send is a single non-blocking
    /// datagram, so this is fine to call from async code.
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervised::{systemd::SystemdWatchdog, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.heartbeat("relay");
    /// let watchdog = SystemdWatchdog::new(Duration::from_secs(10)).registry(&registry);
    /// // Without NOTIFY_SOCKET the ping itself is skipped, but the check runs.
    /// assert!(watchdog.notify_if_fresh().unwrap());
    /// ```
    pub fn notify_if_fresh(&self) -> io::Result<bool> {
        let health = self.registry.health();
        if !health.is_ok() {
            return Ok(false);
        }
        sd_notify::notify(&[NotifyState::Watchdog])?;
        Ok(true)
    }

    /// Checks and pings every [`period`](SystemdWatchdog::period) until `cancel`
    /// is cancelled. Withholding the ping is logged at ERROR once per
    /// episode, with the stale and failed names; recovery at INFO.
    ///
    /// It also tells systemd the service's lifecycle, for a `Type=notify`
    /// unit: `READY=1` once the registry is ready
    /// ([`Registry::readiness`](crate::Registry::readiness): every critical
    /// subsystem with a tick has beaten once), and `STOPPING=1` when it
    /// starts draining; each once, looked for every 100 ms.
    pub async fn run(self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.period());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            target: "supervised", timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            pings = self.pings,
            "systemd notifications started"
        );
        let mut withholding = false;
        // READY=1 and STOPPING=1 are looked for more often than the pings
        // are due: a `Type=notify` unit waits for the first one to start.
        let mut lifecycle = tokio::time::interval(LIFECYCLE_PERIOD);
        lifecycle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut ready_sent, mut stopping_sent) = (false, false);
        loop {
            let (ping_due, stop) = tokio::select! {
                biased;
                // Cancelled first thing in a shutdown (it may be the last
                // child started, so the first stopped): the drain has begun,
                // so STOPPING=1 still goes out below.
                () = cancel.cancelled() => (false, true),
                _ = ticker.tick(), if self.pings => (true, false),
                _ = lifecycle.tick(), if !stopping_sent => (false, false),
            };
            if !ready_sent && self.registry.readiness().is_ready() {
                ready_sent = true;
                tracing::info!(target: "supervised", "registry ready; sending READY=1 to systemd");
                if let Err(error) = sd_notify::notify(&[NotifyState::Ready]) {
                    tracing::warn!(target: "supervised", %error, "sending READY=1 to systemd failed");
                }
            }
            if !stopping_sent && self.registry.is_draining() {
                stopping_sent = true;
                if let Err(error) = sd_notify::notify(&[NotifyState::Stopping]) {
                    tracing::warn!(target: "supervised", %error, "sending STOPPING=1 to systemd failed");
                }
            }
            if stop {
                break;
            }
            if !ping_due {
                continue;
            }
            let health = self.registry.health();
            if health.is_ok() {
                if withholding {
                    tracing::info!(
                        target: "supervised", "critical subsystems are fresh again; resuming systemd watchdog pings"
                    );
                    withholding = false;
                }
                if let Err(error) = sd_notify::notify(&[NotifyState::Watchdog]) {
                    tracing::warn!(target: "supervised", %error, "sending WATCHDOG=1 to systemd failed");
                }
            } else if !withholding {
                tracing::error!(
                    target: "supervised", stale = ?health.stale,
                    failed = ?health.failed,
                    "withholding systemd watchdog pings: critical subsystems are stale or failed, \
                     systemd will restart the service unless they recover"
                );
                withholding = true;
            }
        }
        tracing::debug!(target: "supervised", "systemd watchdog stopped");
    }

    /// [`run`](SystemdWatchdog::run) on a new tokio task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use supervised::{systemd::SystemdWatchdog, CancellationToken};
    /// let shutdown = CancellationToken::new();
    /// let task = SystemdWatchdog::new(Duration::from_secs(20)).spawn(shutdown.clone());
    /// shutdown.cancel();
    /// task.await.unwrap();
    /// # }
    /// ```
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(cancel))
    }
}

/// Spawns what the unit asked for ([`SystemdWatchdog::from_unit`]) over
/// the process-wide registry: the watchdog under `WatchdogSec=`, the
/// `READY=1` and `STOPPING=1` notifications alone under any other
/// `Type=notify` unit; `None`, and nothing spawned, outside systemd.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # std::env::remove_var("WATCHDOG_USEC");
/// # std::env::remove_var("NOTIFY_SOCKET");
/// let shutdown = supervised::CancellationToken::new();
/// assert!(supervised::systemd::spawn_watchdog(shutdown).is_none());
/// # }
/// ```
pub fn spawn_watchdog(cancel: CancellationToken) -> Option<JoinHandle<()>> {
    SystemdWatchdog::from_unit().map(|watchdog| watchdog.spawn(cancel))
}
