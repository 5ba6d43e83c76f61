use supervised::supervised;

#[supervised(max_restarts = 5)]
async fn scheduler() {
    loop {}
}

fn main() {}
