//! `&mut self`: reborrowed for each run.
use supervised::supervised;

struct Counter {
    seen: u64,
}

impl Counter {
    #[supervised]
    async fn count(&mut self, limit: u64) {
        while self.seen < limit {
            self.seen += 1;
            tokio::task::yield_now().await;
        }
    }
}

fn main() {
    let mut c = Counter { seen: 0 };
    let _ = async move { c.count(10).await };
}
