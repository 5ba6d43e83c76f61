//! The supervisor and the registry against bodies written in a hurry: each
//! case has one documented outcome, and none takes the supervisor, the
//! runtime or the process down.

mod common;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::capture;
use supervised_core::{
    CancellationToken, Exit, Failure, Registry, RunOutcome, SubsystemState, SubsystemStatus,
    Supervisor,
};

const SEC: Duration = Duration::from_secs(1);

/// An error whose `Display` panics.
#[derive(Debug)]
struct Treacherous;

impl fmt::Display for Treacherous {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of Treacherous exploded")
    }
}

/// Runs a body that returns `output()` on every run under a supervisor
/// that gives up after 2 restarts: how it ended, how many runs it made,
/// and the entry `name` after it.
async fn given_up<O, F>(name: &str, output: F) -> (Exit<O>, u32, SubsystemStatus)
where
    O: RunOutcome + Send + 'static,
    F: Fn() -> O + Send + Sync + 'static,
{
    let registry = Registry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let output = Arc::new(output);
    let exit = Supervisor::new()
        .registry(&registry)
        .max_restarts(2, Duration::from_secs(600))
        .run(CancellationToken::new(), name, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            let output = Arc::clone(&output);
            async move { output() }
        })
        .await;
    let status = registry.subsystem(name).status();
    (exit, runs.load(Ordering::SeqCst), status)
}

#[tokio::test(start_paused = true)]
async fn an_error_whose_display_panics_is_recorded_with_a_placeholder_and_restarted() {
    let (exit, runs, status) = given_up("treacherous", || Err::<(), _>(Treacherous)).await;
    // Restarted as any failing run, then given up with the `Err` itself.
    assert_eq!(runs, 3);
    assert!(matches!(
        exit,
        Exit::GaveUp(Failure::Returned(Err(Treacherous)))
    ));
    assert_eq!(status.state, SubsystemState::Failed);
    assert_eq!(status.restarts, 2);
    assert_eq!(
        status.last_error.as_deref(),
        Some("<its Display implementation panicked: Display of Treacherous exploded>")
    );
    assert!(
        status.last_panic.is_none(),
        "the body itself never panicked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_panic_message_with_escapes_is_kept_bounded_and_logged_escaped() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let hostile = format!(
        "tenant acme\n2026-01-01T00:00:00Z ERROR forged line\x1b[2J\x1b[31m{}",
        "é".repeat(1 << 19) // 1 MiB of two-byte chars
    );
    let message = hostile.clone();
    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new().registry(&registry);
    let run = supervisor.run(cancel.clone(), "hostile-message", move |_| {
        let message = message.clone();
        async move { raise(message) }
    });
    let stop = async {
        tokio::time::sleep(SEC / 2).await;
        cancel.cancel();
    };
    let (exit, ()) = tokio::join!(run, stop);
    assert!(matches!(exit, Exit::Cancelled { .. }));

    let kept = registry
        .subsystem("hostile-message")
        .status()
        .last_panic
        .expect("the panic is recorded")
        .message;
    assert!(kept.len() < 4096 + 64, "kept {} bytes", kept.len());
    assert!(kept.ends_with(&format!("… [truncated: {} bytes in all]", hostile.len())));
    assert!(hostile.starts_with(kept.split('…').next().unwrap()));

    let logged = events
        .all()
        .into_iter()
        .find(|e| e.message() == "supervised body panicked; restarting after backoff")
        .expect("the panic is logged");
    let field = logged.field("panic_message").expect("panic_message field");
    assert!(field.len() < 4096 + 256, "logged {} bytes", field.len());
    assert!(
        !field.chars().any(char::is_control),
        "raw control characters in the log field: {:?}",
        &field[..80]
    );
    assert!(field.starts_with("tenant acme\\n2026-01-01T00:00:00Z ERROR forged line\\u{1b}[2J"));
}

/// Panics with `message` as the payload, typed `()` for the body's output.
fn raise(message: String) {
    std::panic::panic_any(message)
}

/// A body future whose `Drop` panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("Drop of the body panicked");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_panics_in_drop_after_the_grace_period_is_contained() {
    let (events, _guard) = capture();
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new().registry(&registry).stop_timeout(SEC);
    let run = supervisor.run(cancel.clone(), "panics-in-drop", |_| async {
        let _guard = PanicsOnDrop;
        std::future::pending::<()>().await
    });
    let stop = async {
        tokio::time::sleep(SEC).await;
        cancel.cancel();
    };
    let (exit, ()) = tokio::join!(run, stop);
    // The supervisor still stops, as after any drop at the grace period.
    assert!(matches!(exit, Exit::Cancelled { last_failure: None }));
    assert_eq!(
        registry.subsystem("panics-in-drop").status().state,
        SubsystemState::Stopped
    );
    let contained = events
        .all()
        .into_iter()
        .find(|e| e.field("kind") == Some("drop_panic"))
        .expect("the panic in Drop is logged");
    assert_eq!(
        contained.field("panic_message"),
        Some("Drop of the body panicked")
    );
    assert!(contained
        .field("location")
        .is_some_and(|l| l.contains("hostile_bodies.rs")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_error_loop_with_zero_backoff_leaves_the_runtime_responsive() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let storm = Supervisor::new()
        .registry(&registry)
        .initial_backoff(Duration::ZERO)
        .max_backoff(Duration::ZERO);
    let failing = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            storm
                .run(cancel, "tight-error-loop", |_| async {
                    Err::<(), _>("always")
                })
                .await
        })
    };
    // Four loops beating every 10 ms on the same two workers.
    let mut beaters = Vec::new();
    for i in 0..4 {
        let sub = registry.subsystem(&format!("beater-{i}"));
        let cancel = cancel.clone();
        beaters.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            while !cancel.is_cancelled() {
                ticker.tick().await;
                sub.beat();
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    for beater in beaters {
        beater.await.unwrap();
    }
    let exit = tokio::time::timeout(Duration::from_secs(5), failing)
        .await
        .expect("the failing loop stops at cancellation")
        .unwrap();
    assert!(matches!(exit, Exit::Cancelled { .. }));
    let restarts = registry.subsystem("tight-error-loop").status().restarts;
    assert!(restarts > 1_000, "the error loop ran: {restarts} restarts");
    for i in 0..4 {
        let beats = registry.subsystem(&format!("beater-{i}")).status().beats;
        // 100 ticks in the second; a starved loop would show a handful.
        assert!(
            beats >= 60,
            "beater-{i} beat {beats} times in 1 s next to the error loop"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unbounded_names_are_refused_past_the_cap_and_known_ones_keep_working() {
    let (events, _guard) = capture();
    let registry = Registry::with_max_subsystems(100);
    let known = registry.subsystem("known");
    for tenant in 0..10_000 {
        registry.heartbeat(&format!("tenant-{tenant}"));
    }
    assert_eq!(registry.snapshot().len(), 100);
    assert_eq!(registry.rejected_subsystems(), 10_000 - 99);
    known.beat();
    assert_eq!(known.status().beats, 1);
    assert_eq!(registry.get("known").unwrap().beats(), 1);
    // A refused name gets a working handle that nothing reports.
    let refused = registry.subsystem("one-more");
    refused.beat();
    assert!(registry.get("one-more").is_none());
    let warnings: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.message().starts_with("the registry is full"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN per episode");
    assert_eq!(warnings[0].field("first_refused"), Some("tenant-99"));

    // Raising the cap ends the episode; the next refusal warns again.
    registry.set_max_subsystems(102);
    registry.heartbeat("late-a");
    registry.heartbeat("late-b");
    registry.heartbeat("late-c");
    assert!(registry.get("late-b").is_some() && registry.get("late-c").is_none());
    let warnings = events
        .all()
        .into_iter()
        .filter(|e| e.message().starts_with("the registry is full"))
        .count();
    assert_eq!(warnings, 2);
}

/// An output whose own `RunOutcome::failure` panics.
struct Judgeless;

impl RunOutcome for Judgeless {
    fn failure(&self) -> Option<String> {
        panic!("failure of Judgeless exploded")
    }
}

/// A panic while the supervisor judges a body's output is the body's: the
/// run is restarted as after a panic (the output is dropped, no failing
/// output is kept), and the supervisor is not taken down.
#[tokio::test(start_paused = true)]
async fn an_output_whose_judging_panics_counts_as_a_panic_of_the_body() {
    let (exit, runs, status) = given_up("judgeless", || Judgeless).await;
    assert!(matches!(exit, Exit::GaveUp(Failure::Panicked(_))));
    assert_eq!(runs, 3, "restarted twice, then gave up");
    assert_eq!(status.state, SubsystemState::Failed);
    let panic = status.last_panic.expect("the panic is recorded");
    assert!(
        panic.message.contains("failure of Judgeless exploded"),
        "{}",
        panic.message
    );
}
