//! What a caught panic prints, read from a real process's stderr: this test
//! binary, run again as a small service. It has no libtest harness
//! (`harness = false`): panic hooks and std's backtrace variables are per
//! process, and libtest captures what std's hook prints.
//!
//! - With a subscriber that takes the crate's ERROR events, each caught
//!   panic is one report: the event, without std's `panicked at` text.
//! - With `RUST_BACKTRACE=1`, one backtrace: the event's.
//! - Without a subscriber (or with one that filters the events out), std's
//!   text is printed, followed by a note that the panic was caught.

use std::process::{Command, ExitCode};
use std::time::Duration;

use supervised::{Backoff, CancellationToken, Supervisor};

const MODE: &str = "SUPERVISED_PANIC_REPORT_MODE";

fn main() -> ExitCode {
    if let Ok(mode) = std::env::var(MODE) {
        service(&mode);
        return ExitCode::SUCCESS;
    }
    let tests: [(&str, fn()); 6] = [
        (
            "with_a_subscriber_a_caught_panic_is_one_event",
            with_a_subscriber,
        ),
        (
            "with_rust_backtrace_the_event_alone_carries_a_backtrace",
            with_backtrace,
        ),
        (
            "without_a_subscriber_std_prints_it_and_a_note_says_it_was_caught",
            without_a_subscriber,
        ),
        (
            "a_subscriber_that_filters_the_events_out_counts_as_none",
            with_events_filtered_out,
        ),
        (
            "a_panic_the_body_catches_itself_is_reported_once",
            caught_by_the_body,
        ),
        (
            "a_panic_after_cancellation_is_reported_once",
            after_cancellation,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!("{} passed, 0 failed", tests.len());
    ExitCode::SUCCESS
}

/// Two panics, then a clean end, under `mode`'s subscriber (or the
/// special cases: a panic the body catches, one after cancellation).
fn service(mode: &str) {
    match mode {
        "caught-inside" | "after-cancel" => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            return special(mode);
        }
        "subscriber" => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init(),
        "filtered" => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing_subscriber::filter::LevelFilter::OFF)
            .init(),
        "none" => {}
        other => panic!("unknown mode {other}"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let mut runs = 0;
    runtime.block_on(
        Supervisor::new()
            .backoff(Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(10),
            ))
            .run(CancellationToken::new(), "reporting", |_| {
                runs += 1;
                let run = runs;
                async move {
                    if run < 3 {
                        panic!("bad row in run {run}");
                    }
                }
            }),
    );
    println!("runs={runs}");
}

fn special(mode: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let mut runs = 0;
    let supervisor = Supervisor::new();
    runtime.block_on(async {
        let run = supervisor.run(cancel, "reporting", |cancel| {
            runs += 1;
            let caught_inside = mode == "caught-inside";
            async move {
                if caught_inside {
                    let inner = std::panic::catch_unwind(|| panic!("handled by the body"));
                    assert!(inner.is_err());
                }
                cancel.cancelled().await;
                if !caught_inside {
                    panic!("cleanup failed");
                }
            }
        });
        let stopper = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
        };
        let _ = tokio::join!(run, stopper);
    });
    println!("runs={runs}");
}

fn caught_by_the_body() {
    let stderr = run("caught-inside", &[("RUNS", "1")]);
    assert_eq!(stderr.matches(STD_TEXT).count(), 0, "{stderr}");
    assert_eq!(
        stderr.matches("caught within the body").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("panic_message=handled by the body"),
        "{stderr}"
    );
}

fn after_cancellation() {
    let stderr = run("after-cancel", &[("RUNS", "1")]);
    assert_eq!(stderr.matches(STD_TEXT).count(), 0, "{stderr}");
    assert_eq!(
        stderr.matches("panicked after cancellation").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("panic_message=cleanup failed"), "{stderr}");
}

/// Runs the service in `mode` with `env` set: its stderr.
fn run(mode: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().expect("this binary"));
    command
        .env(MODE, mode)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("the service runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let runs = env
        .iter()
        .find(|(k, _)| *k == "RUNS")
        .map_or("3", |(_, v)| v);
    assert!(
        out.status.success() && stdout.contains(&format!("runs={runs}")),
        "{mode}: {stdout}\n{stderr}"
    );
    stderr
}

const STD_TEXT: &str = "panicked at";
const EVENT: &str = "supervised body panicked";
const NOTE: &str = "note: supervised caught this panic in \"reporting\"";

fn with_a_subscriber() {
    let stderr = run("subscriber", &[]);
    assert_eq!(stderr.matches(EVENT).count(), 2, "{stderr}");
    assert_eq!(
        stderr.matches(STD_TEXT).count(),
        0,
        "std's text too:\n{stderr}"
    );
    assert!(
        stderr.contains("panic_message=bad row in run 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("location=\"supervised-core/tests/panic_report.rs:"),
        "{stderr}"
    );
    assert!(!stderr.contains(NOTE), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

fn with_backtrace() {
    let stderr = run("subscriber", &[("RUST_BACKTRACE", "1")]);
    assert_eq!(stderr.matches(EVENT).count(), 2, "{stderr}");
    assert_eq!(stderr.matches(STD_TEXT).count(), 0, "{stderr}");
    // std's hook heads its backtrace "stack backtrace:"; the event's has
    // frames of this binary, on the storm's first event only.
    assert!(
        !stderr.contains("stack backtrace:"),
        "std's backtrace too:\n{stderr}"
    );
    assert!(
        stderr.contains("panic_report::service"),
        "no backtrace:\n{stderr}"
    );
}

fn without_a_subscriber() {
    let stderr = run("none", &[]);
    assert_eq!(stderr.matches(STD_TEXT).count(), 2, "{stderr}");
    assert_eq!(stderr.matches(NOTE).count(), 2, "{stderr}");
    assert!(stderr.contains("bad row in run 2"), "{stderr}");
}

fn with_events_filtered_out() {
    let stderr = run("filtered", &[]);
    assert_eq!(stderr.matches(STD_TEXT).count(), 2, "{stderr}");
    assert_eq!(stderr.matches(NOTE).count(), 2, "{stderr}");
    assert!(!stderr.contains(EVENT), "{stderr}");
}
