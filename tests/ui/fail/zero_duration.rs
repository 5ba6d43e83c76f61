use supervised::supervised;

#[supervised(tick = "0s")]
async fn scheduler() {
    loop {}
}

fn main() {}
