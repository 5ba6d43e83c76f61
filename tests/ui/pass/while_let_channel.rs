//! `while let` over a channel receiver borrowed mutably.
use supervised::supervised;
use tokio::sync::mpsc;

#[supervised(name = "relay")]
async fn relay(rx: &mut mpsc::Receiver<String>, out: mpsc::Sender<String>) {
    while let Some(message) = rx.recv().await {
        if message.is_empty() {
            continue;
        }
        let _ = out.send(message).await;
    }
}

fn main() {
    let (_tx, mut rx) = mpsc::channel(8);
    let (out, _out_rx) = mpsc::channel(8);
    let _ = async move { relay(&mut rx, out).await };
}
