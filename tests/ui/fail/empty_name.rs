use supervised::supervised;

#[supervised(name = "")]
async fn scheduler() {
    loop {}
}

fn main() {}
