use supervised::supervised;
use tokio::sync::mpsc;

#[supervised(name = "relay", keep(rx, rx))]
async fn relay(mut rx: mpsc::Receiver<u64>) {
    while rx.recv().await.is_some() {}
}

fn main() {}
