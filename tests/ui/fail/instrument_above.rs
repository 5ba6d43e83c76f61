use supervised::supervised;

#[tracing::instrument]
#[supervised]
async fn relay(n: u32) {
    for i in 0..n {
        tracing::info!(i, "relayed");
    }
}

fn main() {}
