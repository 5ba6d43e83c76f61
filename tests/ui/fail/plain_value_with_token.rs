use supervised::{supervised, CancellationToken};

type Report = String;

#[supervised]
async fn summary(cancel: CancellationToken) -> Report {
    while !cancel.is_cancelled() {}
    String::new()
}

fn main() {}
