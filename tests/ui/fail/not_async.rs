use supervised::supervised;

#[supervised]
fn scheduler() {
    loop {}
}

fn main() {}
