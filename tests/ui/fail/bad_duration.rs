use supervised::supervised;

#[supervised(tick = "60x")]
async fn scheduler() {
    loop {}
}

fn main() {}
