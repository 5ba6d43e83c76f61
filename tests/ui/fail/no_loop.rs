use supervised::supervised;

#[supervised]
async fn once() {
    tokio::task::yield_now().await;
}

fn main() {}
