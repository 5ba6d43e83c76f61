use supervised::supervised;

#[supervised(within = "1m")]
async fn scheduler() {
    loop {}
}

fn main() {}
