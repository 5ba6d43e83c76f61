use supervised::supervised;
use tokio::sync::mpsc;

#[supervised(name = "relay", keep(tx))]
async fn relay(mut rx: mpsc::Receiver<u64>) {
    while rx.recv().await.is_some() {}
}

fn main() {}
