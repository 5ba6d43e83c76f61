use std::future::Future;
use std::pin::Pin;

use supervised::supervised;

struct Worker;

impl Worker {
    // A boxed future written by hand, not by `#[async_trait]`.
    #[supervised(name = "worker")]
    fn run(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                tokio::task::yield_now().await;
            }
        })
    }
}

fn main() {}
