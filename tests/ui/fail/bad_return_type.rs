use supervised::supervised;

#[supervised]
async fn scheduler() -> u64 {
    loop {}
}

fn main() {}
