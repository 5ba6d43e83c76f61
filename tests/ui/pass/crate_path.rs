//! `crate = "..."` for a facade re-exported under another name.
mod platform {
    pub use supervised as liveness;
}

use platform::liveness::CancellationToken;

#[platform::liveness::supervised(crate = "crate::platform::liveness")]
async fn channels(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        tokio::task::yield_now().await;
    }
}

fn main() {
    let _ = channels(CancellationToken::new());
}
