//! `impl Trait` arguments and a pattern argument.
use std::fmt::Display;
use supervised::supervised;

#[supervised]
async fn show(prefix: impl Display + Clone, (low, high): (u32, u32)) {
    for n in low..high {
        let _ = format!("{prefix}{n}");
    }
}

fn main() {
    let _ = show("n=", (1, 3));
}
