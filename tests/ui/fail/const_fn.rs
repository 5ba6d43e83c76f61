use supervised::supervised;

#[supervised]
const async fn scheduler() {
    loop {}
}

fn main() {}
