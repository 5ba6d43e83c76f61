use supervised::{supervised, CancellationToken};
use tokio::sync::mpsc;

struct Worker;

impl Worker {
    // One error per name that cannot be kept: a reference receiver, a
    // reference argument, and the token.
    #[supervised(name = "worker", keep(self, rx, cancel))]
    async fn run(&self, rx: &mut mpsc::Receiver<u64>, cancel: CancellationToken) {
        while rx.recv().await.is_some() && !cancel.is_cancelled() {}
    }
}

fn main() {}
