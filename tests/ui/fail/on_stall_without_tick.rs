use supervised::supervised;

#[supervised(on_stall = "restart")]
async fn scheduler() {
    loop {}
}

fn main() {}
