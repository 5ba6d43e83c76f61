use supervised::supervised;
use tokio::sync::mpsc;

fn forward(rx: mpsc::Receiver<u64>) -> mpsc::Receiver<u64> {
    rx
}

#[supervised(name = "relay", keep(rx))]
async fn relay(rx: mpsc::Receiver<u64>) {
    loop {
        let _owned = forward(*rx);
    }
}

fn main() {}
