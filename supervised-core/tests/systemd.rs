//! Behaviour of the `systemd` feature, against a fake `NOTIFY_SOCKET`: a Unix
//! datagram socket the test binds, as systemd does.
#![cfg(all(feature = "systemd", unix))]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use supervised_core::systemd::{spawn_watchdog, SystemdWatchdog};
use supervised_core::{CancellationToken, Exit, Registry, SubsystemState, Supervisor};
use tokio::net::UnixDatagram;
use tokio::sync::{Mutex, MutexGuard};

/// The notify socket and the watchdog variables live in the process
/// environment: tests that set them run one at a time.
static ENV: Mutex<()> = Mutex::const_new(());

/// systemd's end of the notify socket.
struct FakeSystemd {
    socket: UnixDatagram,
    path: PathBuf,
    _env: MutexGuard<'static, ()>,
}

impl FakeSystemd {
    async fn bind() -> FakeSystemd {
        static N: AtomicUsize = AtomicUsize::new(0);
        let env = ENV.lock().await;
        let path = std::env::temp_dir().join(format!(
            "supervised-notify-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
        FakeSystemd {
            socket,
            path,
            _env: env,
        }
    }

    /// The next watchdog notification within `within`, `None` if none came;
    /// lifecycle ones (`READY=1`, `STOPPING=1`, tested on their own) are
    /// passed over.
    async fn recv(&self, within: Duration) -> Option<String> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let message = self.recv_any(until).await?;
            if message != READY && message != STOPPING {
                return Some(message);
            }
        }
    }

    /// Every notification within `within`.
    async fn drain(&self, within: Duration) -> Vec<String> {
        let until = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        while let Some(message) = self.recv_any(until).await {
            all.push(message);
        }
        all
    }

    /// Any next notification before `until`.
    async fn recv_any(&self, until: tokio::time::Instant) -> Option<String> {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout_at(until, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(String::from_utf8(buf[..n].to_vec()).unwrap())
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
        let _ = std::fs::remove_file(&self.path);
    }
}

const PING: &str = "WATCHDOG=1\n";
const READY: &str = "READY=1\n";
const STOPPING: &str = "STOPPING=1\n";

/// The lifecycle notifications among `messages`.
fn lifecycle(messages: &[String]) -> Vec<&str> {
    messages
        .iter()
        .map(String::as_str)
        .filter(|m| *m == READY || *m == STOPPING)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn says_ready_once_the_registry_is_ready_and_stopping_when_it_drains() {
    let systemd = FakeSystemd::bind().await;
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_secs(1)), None);
    let shutdown = CancellationToken::new();
    let task = SystemdWatchdog::new(Duration::from_secs(60))
        .registry(&registry)
        .spawn(shutdown.clone());
    // Not ready before the scheduler's first beat: nothing but pings.
    assert!(!systemd
        .drain(Duration::from_secs(1))
        .await
        .contains(&READY.to_string()));
    scheduler.beat();
    assert_eq!(
        lifecycle(&systemd.drain(Duration::from_millis(150)).await),
        [READY]
    );
    // Once: later checks say nothing more until the drain.
    assert!(lifecycle(&systemd.drain(Duration::from_secs(1)).await).is_empty());
    registry.set_draining();
    assert_eq!(
        lifecycle(&systemd.drain(Duration::from_millis(150)).await),
        [STOPPING]
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pings_only_while_every_critical_subsystem_is_fresh() {
    let systemd = FakeSystemd::bind().await;
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_secs(1)), None); // stale after 2 s
                                                                // An advisory subsystem that never beats is stale, and never withholds a ping.
    let probe = registry.subsystem("upstream-probe");
    probe.set_advisory(true);
    probe.declare_tick(Some(Duration::from_secs(1)), None);

    let alive = CancellationToken::new();
    let beater = tokio::spawn({
        let alive = alive.clone();
        let scheduler = scheduler.clone();
        async move {
            loop {
                scheduler.beat();
                tokio::select! {
                    () = alive.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    });
    let shutdown = CancellationToken::new();
    let watchdog = SystemdWatchdog::new(Duration::from_secs(4)).registry(&registry);
    assert_eq!(watchdog.period(), Duration::from_secs(2));
    let task = watchdog.spawn(shutdown.clone());

    for _ in 0..3 {
        assert_eq!(
            systemd.recv(Duration::from_secs(3)).await.as_deref(),
            Some(PING)
        );
    }

    // The loop dies: at most the ping of a tick before it goes stale, then none.
    alive.cancel();
    beater.await.unwrap();
    let mut late = 0;
    while let Some(message) = systemd.recv(Duration::from_secs(20)).await {
        assert_eq!(message, PING);
        late += 1;
        assert!(late <= 2, "pings go on while the scheduler is stale");
    }
    assert!(scheduler.status().stale);

    // It recovers by itself: the pings resume.
    scheduler.beat();
    assert_eq!(
        systemd.recv(Duration::from_secs(3)).await.as_deref(),
        Some(PING)
    );

    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_critical_subsystem_withholds_pings_an_advisory_one_does_not() {
    let systemd = FakeSystemd::bind().await;
    let registry = Registry::new();
    registry.heartbeat("relay");
    let advisory = registry.subsystem("upstream-probe");
    advisory.set_advisory(true);
    give_up(&registry, "upstream-probe").await;

    let watchdog = SystemdWatchdog::new(Duration::from_secs(2)).registry(&registry);
    assert!(watchdog.notify_if_fresh().unwrap());
    assert_eq!(
        systemd.recv(Duration::from_secs(1)).await.as_deref(),
        Some(PING)
    );

    give_up(&registry, "scheduler").await;
    assert!(!watchdog.notify_if_fresh().unwrap());
    let shutdown = CancellationToken::new();
    let task = watchdog.spawn(shutdown.clone());
    assert_eq!(systemd.recv(Duration::from_secs(30)).await, None);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn the_watchdog_systemd_asked_for_is_read_from_the_environment() {
    let systemd = FakeSystemd::bind().await;
    assert!(SystemdWatchdog::from_env().is_none());

    std::env::set_var("WATCHDOG_USEC", "3000000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    let watchdog = SystemdWatchdog::from_env().expect("a watchdog for this process");
    assert_eq!(watchdog.timeout(), Duration::from_secs(3));
    assert_eq!(watchdog.period(), Duration::from_millis(1500));

    std::env::remove_var("WATCHDOG_PID");
    assert!(
        SystemdWatchdog::from_env().is_some(),
        "WATCHDOG_PID is optional"
    );

    std::env::set_var("WATCHDOG_PID", "1");
    assert!(
        SystemdWatchdog::from_env().is_none(),
        "meant for another process"
    );

    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    std::env::set_var("WATCHDOG_USEC", "0");
    assert!(
        SystemdWatchdog::from_env().is_none(),
        "zero disables the watchdog"
    );

    // spawn_watchdog watches the process-wide registry, which is fresh here.
    std::env::set_var("WATCHDOG_USEC", "200000");
    let shutdown = CancellationToken::new();
    let task = spawn_watchdog(shutdown.clone()).expect("spawned");
    assert_eq!(
        systemd.recv(Duration::from_secs(5)).await.as_deref(),
        Some(PING)
    );
    shutdown.cancel();
    task.await.unwrap();

    // A Type=notify unit without WatchdogSec=: no pings, but READY=1
    // (without it the unit never starts) and STOPPING=1.
    std::env::remove_var("WATCHDOG_USEC");
    let shutdown = CancellationToken::new();
    let task = spawn_watchdog(shutdown.clone()).expect("READY=1 is still owed");
    let messages = systemd.drain(Duration::from_secs(1)).await;
    assert_eq!(messages, [READY], "no pings: {messages:?}");
    supervised_core::registry().set_draining();
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(systemd.drain(Duration::from_millis(200)).await, [STOPPING]);

    std::env::remove_var("NOTIFY_SOCKET");
    assert!(spawn_watchdog(CancellationToken::new()).is_none());
}

/// Cancelled at the first moment of a shutdown (the watchdog is often the
/// last child started, so the first stopped), it still says STOPPING=1.
#[tokio::test(start_paused = true)]
async fn stopping_is_said_even_when_the_watchdog_is_stopped_first() {
    let systemd = FakeSystemd::bind().await;
    let registry = Registry::new();
    let shutdown = CancellationToken::new();
    let task = SystemdWatchdog::new(Duration::from_secs(60))
        .registry(&registry)
        .spawn(shutdown.clone());
    assert_eq!(
        lifecycle(&systemd.drain(Duration::from_millis(150)).await),
        [READY]
    );
    // Draining and cancelled at once, before its next look.
    registry.set_draining();
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        lifecycle(&systemd.drain(Duration::from_millis(150)).await),
        [STOPPING]
    );
}

/// Ends `name` in [`SubsystemState::Failed`]: a supervisor that gives up on the
/// first failure.
async fn give_up(registry: &Registry, name: &str) {
    let exit = Supervisor::new()
        .registry(registry)
        .max_restarts(0, Duration::from_secs(60))
        .run(CancellationToken::new(), name, |_| async {
            Err::<(), _>("unreachable")
        })
        .await;
    assert!(matches!(exit, Exit::GaveUp(_)));
    assert_eq!(registry.subsystem(name).state(), SubsystemState::Failed);
}
