use supervised::supervised;

#[supervised(tick = "60s", stale_after = "30s")]
async fn scheduler() {
    loop {}
}

fn main() {}
