use supervised::supervised;

// `grace` is the old name of `stop_timeout`: one slot, given once.
#[supervised(stop_timeout = "5s", grace = "2s")]
async fn scheduler() {
    loop {}
}

fn main() {}
