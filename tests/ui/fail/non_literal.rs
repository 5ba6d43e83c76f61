use supervised::supervised;

const TICK: &str = "60s";

#[supervised(tick = TICK)]
async fn scheduler() {
    loop {}
}

fn main() {}
