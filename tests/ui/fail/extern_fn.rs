use supervised::supervised;

#[supervised]
async extern "C" fn scheduler() {
    loop {}
}

fn main() {}
