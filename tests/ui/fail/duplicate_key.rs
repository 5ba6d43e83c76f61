use supervised::supervised;

#[supervised(tick = "60s", tick = "30s")]
async fn scheduler() {
    loop {}
}

fn main() {}
