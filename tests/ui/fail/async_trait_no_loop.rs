use async_trait::async_trait;
use supervised::supervised;

#[async_trait]
trait Job {
    async fn run(&self);
}

struct Once;

#[async_trait]
impl Job for Once {
    // A broken rule inside an `#[async_trait]` impl is one error, and the
    // impl still type-checks around it.
    #[supervised(name = "once")]
    async fn run(&self) {
        tokio::task::yield_now().await;
    }
}

fn main() {}
