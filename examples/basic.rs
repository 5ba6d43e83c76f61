//! A loop that panics on "bad tenant data" every third tick, supervised:
//! the panic is logged with its backtrace, the loop restarts after a backoff,
//! and the registry shows restarts and beats. Stops itself after a few seconds.

use std::time::Duration;

use supervised::{run_with_recover, CancellationToken};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let cancel = CancellationToken::new();

    let relay = tokio::spawn(run_with_recover(
        cancel.clone(),
        "relay",
        |cancel| async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(200));
            let mut n = 0u32;
            while !cancel.is_cancelled() {
                ticker.tick().await;
                n += 1;
                assert!(n % 3 != 0, "bad tenant data in message {n}");
                supervised::beat();
            }
        },
    ));

    tokio::time::sleep(Duration::from_secs(4)).await;
    for status in supervised::snapshot() {
        tracing::info!(
            subsystem = %status.name,
            state = %status.state,
            beats = status.beats,
            restarts = status.restarts,
            "liveness"
        );
    }
    cancel.cancel();
    if let Err(e) = relay.await {
        tracing::error!(error = %e, "relay task failed");
    }
}
