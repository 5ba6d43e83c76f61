use supervised::supervised;

#[supervised(name = "scheduler", lease = "scheduler", lease_ttl = "10ms")]
async fn scheduler() {
    loop {
        tokio::task::yield_now().await;
    }
}

fn main() {}
