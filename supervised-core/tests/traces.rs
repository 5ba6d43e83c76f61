//! One span per run of a supervised body, as a tracer (such as
//! `tracing-opentelemetry`) sees it: named `supervised`, with `subsystem`,
//! `group` and `generation`, and how each run ended as an event inside it.

mod common;

use std::time::Duration;

use supervised_core::{CancellationToken, Group, Registry, Supervisor};
use tracing::Level;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_run_is_a_span_and_its_restart_or_give_up_is_an_event_in_it() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let mut runs = 0;
    Supervisor::new()
        .registry(&registry)
        .max_restarts(2, Duration::from_secs(60))
        .run(CancellationToken::new(), "traced", |_| {
            runs += 1;
            let run = runs;
            async move {
                if run > 0 {
                    panic!("run {run}");
                }
            }
        })
        .await;
    assert_eq!(runs, 3, "two restarts, then the give-up");

    let spans = events.spans("supervised");
    let generations: Vec<&str> = spans
        .iter()
        .map(|s| s.field("generation").unwrap())
        .collect();
    assert_eq!(generations, ["0", "1", "2"], "{spans:#?}");
    for span in &spans {
        assert_eq!(span.field("subsystem"), Some("traced"));
        assert_eq!(span.level, Level::INFO);
        assert_eq!(span.target, "supervised");
    }

    let errors = events.at(Level::ERROR);
    let restarts: Vec<_> = errors
        .iter()
        .filter(|e| e.message().contains("restarting after backoff"))
        .collect();
    assert_eq!(restarts.len(), 2, "{errors:#?}");
    for (generation, event) in restarts.iter().enumerate() {
        assert_eq!(event.field("in"), Some("supervised"), "{event:?}");
        assert_eq!(event.field("in.generation"), Some(&*generation.to_string()));
    }
    let give_up = errors
        .iter()
        .find(|e| e.message().contains("giving up"))
        .unwrap_or_else(|| panic!("no give-up event: {errors:#?}"));
    assert_eq!(give_up.field("in"), Some("supervised"));
    assert_eq!(
        give_up.field("in.generation"),
        Some("2"),
        "the last run's span"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_run_in_a_group_names_the_group() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let run = Group::new("tenants")
        .registry(&registry)
        .child("tenant/acme", |cancel: CancellationToken| async move {
            Supervisor::new()
                .run(cancel, "tenant/acme", |cancel| async move {
                    cancel.cancelled().await
                })
                .await;
        })
        .run(cancel.clone());
    let stop = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    };
    let (report, ()) = tokio::join!(run, stop);
    assert!(report.is_clean(), "{report:?}");
    // The group opens a span for the child's run; the Supervisor that
    // claims the child's entry opens its own, not inside the group's (one
    // prefix per log line), and both name the group.
    let spans: Vec<_> = events
        .spans("supervised")
        .into_iter()
        .filter(|s| s.field("subsystem") == Some("tenant/acme"))
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.field("group"), Some("tenants"), "{span:?}");
        assert_eq!(span.field("generation"), Some("0"));
    }
    assert!(
        spans
            .iter()
            .all(|s| s.field("parent") != Some("supervised")),
        "a supervised span inside another doubles every line's prefix: {spans:#?}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_groups_own_child_runs_in_a_span_and_its_restart_is_logged_in_it() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = runs.clone();
    let run = Group::new("tenants")
        .registry(&registry)
        .child("tenant/acme", move |cancel: CancellationToken| {
            let run = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                tracing::info!(target: "app", run, "working");
                if run < 2 {
                    panic!("bad row in run {run}");
                }
                cancel.cancelled().await;
            }
        })
        .run(cancel.clone());
    let stop = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        cancel.cancel();
    };
    let (report, ()) = tokio::join!(run, stop);
    assert!(report.is_clean(), "{report:?}");

    let spans: Vec<_> = events
        .spans("supervised")
        .into_iter()
        .filter(|s| s.field("subsystem") == Some("tenant/acme"))
        .collect();
    let generations: Vec<&str> = spans
        .iter()
        .map(|s| s.field("generation").unwrap())
        .collect();
    assert_eq!(generations, ["0", "1", "2"], "{spans:#?}");
    assert!(spans.iter().all(|s| s.field("group") == Some("tenants")));

    // The body's own events are in its run's span.
    let working: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.message() == "working")
        .collect();
    assert_eq!(working.len(), 3);
    for (generation, event) in working.iter().enumerate() {
        assert_eq!(
            event.field("in.generation"),
            Some(&*generation.to_string()),
            "{event:?}"
        );
    }
    // The group's restart of each failed run is an event in that run's span.
    let restarts: Vec<_> = events
        .at(Level::ERROR)
        .into_iter()
        .filter(|e| e.message().contains("child failed: restarting it"))
        .collect();
    assert_eq!(restarts.len(), 2, "{restarts:#?}");
    for (generation, event) in restarts.iter().enumerate() {
        assert_eq!(event.field("in"), Some("supervised"), "{event:?}");
        assert_eq!(event.field("in.generation"), Some(&*generation.to_string()));
        assert_eq!(event.field("in.subsystem"), Some("tenant/acme"));
    }
}
