//! `#[supervised]` above `#[tracing::instrument]`: the supported order.
//! The attribute sees the user's own body; instrument then wraps the
//! whole supervision in its span.
use supervised::supervised;

#[supervised(name = "instrumented")]
#[tracing::instrument]
async fn relay(n: u32) {
    for i in 0..n {
        tracing::info!(i, "relayed");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    relay(3).await;
    assert_eq!(supervised::registry().subsystem("instrumented").beats(), 3);
}
