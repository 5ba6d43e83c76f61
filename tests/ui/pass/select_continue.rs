//! `continue` inside `tokio::select!` arms targets the supervised loop.
use std::time::Duration;
use supervised::{supervised, CancellationToken};

#[supervised(tick = "5s")]
async fn pump(cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => continue,
        }
    }
}

fn main() {
    let _ = pump(CancellationToken::new());
}
