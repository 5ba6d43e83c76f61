use supervised::supervised;

#[supervised(interval = "60s")]
async fn scheduler() {
    loop {}
}

fn main() {}
