use supervised::supervised;

#[supervised(name = "scheduler", lease_ttl = "15s")]
async fn scheduler() {
    loop {
        tokio::task::yield_now().await;
    }
}

fn main() {}
