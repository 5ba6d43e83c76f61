//! The expansion emits no warnings in a crate that denies them.
#![deny(warnings)]
#![deny(clippy::all)]

use supervised::{supervised, CancellationToken};

#[supervised(
    name = "sweep",
    tick = "30s",
    stale_after = "90s",
    initial_backoff = "250ms",
    max_backoff = "10s",
    jitter = true,
    grace = "2s",
    max_restarts = 5,
    within = "1m"
)]
async fn sweep(cancel: CancellationToken) -> Result<(), String> {
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

fn main() {
    let _ = sweep(CancellationToken::new());
}
