//! The liveness registry, on paused time.

use std::time::Duration;

use supervised_core::{Registry, SubsystemState};
use tokio::time::{advance, Instant};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn beat_then_last_beat_and_unknown_names_are_none() {
    let registry = Registry::new();
    assert_eq!(registry.last_beat("scheduler"), None);
    advance(SEC).await;
    registry.heartbeat("scheduler");
    assert_eq!(registry.last_beat("scheduler"), Some(Instant::now()));
    assert_eq!(registry.last_beat("relay"), None);
    assert!(
        registry.get("relay").is_none(),
        "a lookup must not register"
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_free_functions_share_one_registry() {
    assert_eq!(supervised_core::last_beat("reg-global"), None);
    supervised_core::heartbeat("reg-global");
    assert_eq!(
        supervised_core::last_beat("reg-global"),
        Some(Instant::now())
    );
    assert_eq!(
        supervised_core::registry().subsystem("reg-global").beats(),
        1
    );
    assert!(supervised_core::snapshot()
        .iter()
        .any(|s| s.name == "reg-global"));
}

#[tokio::test(start_paused = true)]
async fn is_healthy_lists_exactly_the_stale_names() {
    let registry = Registry::new();
    registry.heartbeat("scheduler");
    registry.heartbeat("relay");
    assert_eq!(
        registry.is_healthy(&["scheduler", "relay"], Duration::from_secs(120)),
        (true, vec![])
    );

    advance(Duration::from_secs(100)).await;
    registry.heartbeat("relay");
    // Exactly at the threshold is still fresh; one nanosecond past is stale.
    advance(Duration::from_secs(20)).await;
    assert_eq!(
        registry.is_healthy(&["scheduler", "relay"], Duration::from_secs(120)),
        (true, vec![])
    );
    advance(Duration::from_nanos(1)).await;
    assert_eq!(
        registry.is_healthy(&["scheduler", "relay", "sweep"], Duration::from_secs(120)),
        (false, vec!["scheduler".to_string(), "sweep".to_string()])
    );
}

#[tokio::test(start_paused = true)]
async fn snapshot_is_a_sorted_copy() {
    let registry = Registry::new();
    for name in ["sweep", "relay", "scheduler"] {
        registry.heartbeat(name);
    }
    let before = registry.snapshot();
    let names: Vec<&str> = before.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["relay", "scheduler", "sweep"]);

    advance(SEC).await;
    registry.heartbeat("relay");
    registry.heartbeat("new");
    assert_eq!(before.len(), 3);
    assert_eq!(before[0].beats, 1);
    assert_eq!(before[0].since_last_beat, Some(Duration::ZERO));
    let after = registry.snapshot();
    assert_eq!(after.len(), 4);
    assert_eq!(after[1].name, "relay");
    assert_eq!(after[1].beats, 2);
}

#[tokio::test(start_paused = true)]
async fn a_declared_tick_makes_a_subsystem_stale_after_twice_the_tick() {
    let registry = Registry::new();
    let sweep = registry.subsystem("sweep");
    sweep.declare_tick(Some(Duration::from_secs(30)), None);

    // Started, first tick not finished: fresh until stale_after since registration.
    advance(Duration::from_secs(60)).await;
    let s = sweep.status();
    assert_eq!((s.stale, s.healthy, s.last_beat), (false, true, None));
    advance(Duration::from_nanos(1)).await;
    let s = sweep.status();
    assert_eq!((s.stale, s.healthy), (true, false));

    sweep.beat();
    let s = sweep.status();
    assert_eq!((s.stale, s.healthy, s.beats), (false, true, 1));
    advance(Duration::from_secs(61)).await;
    assert!(!sweep.status().healthy);
}

#[tokio::test(start_paused = true)]
async fn explicit_stale_after_and_no_tick_means_no_staleness_check() {
    let registry = Registry::new();
    let relay = registry.subsystem("relay");
    relay.declare_tick(Some(Duration::from_secs(10)), Some(Duration::from_secs(15)));
    let free = registry.subsystem("free");
    advance(Duration::from_secs(16)).await;
    assert!(relay.status().stale);
    let s = free.status();
    assert_eq!(
        (s.tick, s.stale_after, s.stale, s.healthy),
        (None, None, false, true)
    );
    assert_eq!(s.state, SubsystemState::Running);
}

#[test]
fn concurrent_beats_from_several_threads_while_snapshotting() {
    let registry = Registry::new();
    const THREADS: usize = 4;
    const BEATS: u64 = 20_000;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let registry = registry.clone();
            scope.spawn(move || {
                let own = registry.subsystem(&format!("worker-{t}"));
                for _ in 0..BEATS {
                    own.beat();
                    registry.heartbeat("shared");
                }
            });
        }
        let registry = registry.clone();
        scope.spawn(move || {
            let mut last_shared = 0;
            for _ in 0..200 {
                let snap = registry.snapshot();
                assert!(snap.windows(2).all(|w| w[0].name < w[1].name));
                if let Some(shared) = snap.iter().find(|s| s.name == "shared") {
                    assert!(
                        shared.beats >= last_shared,
                        "beat counts never go backwards"
                    );
                    last_shared = shared.beats;
                }
            }
        });
    });
    let snap = registry.snapshot();
    assert_eq!(snap.len(), THREADS + 1);
    for s in &snap {
        let expected = if s.name == "shared" {
            BEATS * THREADS as u64
        } else {
            BEATS
        };
        assert_eq!(s.beats, expected, "{}", s.name);
        assert!(s.last_beat.is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn odd_names_are_kept_intact() {
    let registry = Registry::new();
    let names = [
        "",
        "with \"quotes\"",
        "new\nline",
        "ünïcødé ✓",
        &"x".repeat(10_000),
    ];
    for name in names {
        registry.heartbeat(name);
    }
    let snap = registry.snapshot();
    for name in names {
        assert!(snap.iter().any(|s| s.name == name), "{name:?}");
    }
}
