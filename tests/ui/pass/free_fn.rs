//! A free fn with an owned argument and a cancellation token; its future is Send.
use std::time::Duration;
use supervised::{supervised, CancellationToken};

#[derive(Clone)]
struct Db;

/// Doc comments and other attributes stay on the fn.
#[supervised(name = "scheduler", tick = "60s")]
#[allow(clippy::needless_pass_by_value)]
pub async fn scheduler(db: Db, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let _ = &db;
    }
}

fn main() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let fut = scheduler(Db, CancellationToken::new());
    assert_send(&fut);
    // `tokio::spawn(scheduler(db, cancel))` compiles:
    let _spawn = async { tokio::spawn(fut).await };
}
