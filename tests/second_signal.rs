//! A second signal during a shutdown, sent to a real process: this test
//! binary, run again as the service. It has no libtest harness
//! (`harness = false`), so `main` is either the test or, with
//! `SUPERVISED_SECOND_SIGNAL_SERVICE` set, the service under test.

use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use supervised::{CancellationToken, Child, Group};

const SERVICE: &str = "SUPERVISED_SECOND_SIGNAL_SERVICE";

fn main() -> ExitCode {
    if std::env::var_os(SERVICE).is_some() {
        return service();
    }
    if cfg!(unix) {
        a_second_signal_during_the_shutdown_aborts_what_is_left_at_once();
        println!("test a_second_signal_during_the_shutdown_aborts_what_is_left_at_once ... ok");
    }
    ExitCode::SUCCESS
}

/// A stubborn child that ignores cancellation (60 s to stop) and a polite
/// one started after it, so stopped first. Prints `running` once both
/// started and `polite stopped` when that one is, then the report.
fn service() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let report = runtime.block_on(async {
        let (started, mut both) = tokio::sync::mpsc::unbounded_channel::<()>();
        let stubborn_started = started.clone();
        let group = Group::new("service")
            .shutdown_timeout(Duration::from_secs(60))
            .spec(
                Child::new("stubborn", move |_cancel: CancellationToken| {
                    let _ = stubborn_started.send(());
                    std::future::pending::<()>()
                })
                .stop_timeout(Duration::from_secs(60)),
            )
            .child("polite", move |cancel: CancellationToken| {
                let _ = started.send(());
                async move {
                    cancel.cancelled().await;
                    println!("polite stopped");
                }
            });
        let run = tokio::spawn(group.run_until_signal());
        both.recv().await;
        both.recv().await;
        println!("running");
        run.await.expect("the group's task")
    });
    println!("exit={:?} unstopped={:?}", report.exit, report.unstopped);
    ExitCode::from(&report)
}

fn next_line_with(lines: &mut Lines<BufReader<ChildStdout>>, text: &str) -> String {
    for line in lines.by_ref() {
        let line = line.expect("stdout is text");
        if line.contains(text) {
            return line;
        }
    }
    panic!("the service exited without printing {text:?}");
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal}");
}

fn a_second_signal_during_the_shutdown_aborts_what_is_left_at_once() {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .env(SERVICE, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the service starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    next_line_with(&mut lines, "running");
    let signalled = Instant::now();
    kill(child.id(), "TERM");
    // The polite child stops first; then the group would wait up to 60 s
    // for the stubborn one...
    next_line_with(&mut lines, "polite stopped");
    kill(child.id(), "INT");
    // ...but the second signal aborts it.
    let report = next_line_with(&mut lines, "exit=");
    let status = child.wait().expect("the service exits");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "the second signal did not cut the shutdown short: {:?}",
        signalled.elapsed()
    );
    assert_eq!(report, r#"exit=Shutdown unstopped=["stubborn"]"#);
    assert_eq!(
        status.code(),
        Some(1),
        "an aborted child makes the exit code 1"
    );
}
