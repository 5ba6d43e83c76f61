//! `&self`: the same reference every run; `tokio::spawn` of an `Arc`'d method future.
use std::sync::Arc;
use supervised::supervised;

struct Sweep {
    rounds: u32,
}

impl Sweep {
    #[supervised(tick = "1s")]
    async fn run(&self) {
        for _ in 0..self.rounds {
            tokio::task::yield_now().await;
        }
    }
}

fn main() {
    let sweep = Arc::new(Sweep { rounds: 3 });
    let _ = async move { tokio::spawn(async move { sweep.run().await }) };
}
