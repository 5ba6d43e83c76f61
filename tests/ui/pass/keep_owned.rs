//! `keep(...)`: owned, non-`Clone` arguments kept across restarts, the
//! future still `'static` and `Send`, so `tokio::spawn` takes it.
use supervised::{supervised, CancellationToken};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Job(u64);

#[supervised(name = "relay", keep(rx))]
async fn relay(mut rx: mpsc::Receiver<Job>, out: mpsc::Sender<u64>, cancel: CancellationToken) {
    while let Some(job) = rx.recv().await {
        if cancel.is_cancelled() {
            break;
        }
        let _ = out.send(job.0).await;
    }
}

#[supervised(name = "writer", keep(stream))]
async fn writer(stream: TcpStream) -> std::io::Result<()> {
    loop {
        stream.write_all(b"ping\n").await?;
        stream.flush().await?;
    }
}

/// A worker that owns its receiver, kept whole.
struct Worker {
    rx: mpsc::Receiver<Job>,
    done: u64,
}

impl Worker {
    #[supervised(name = "worker", keep(self))]
    async fn run(mut self) {
        while let Some(job) = self.rx.recv().await {
            self.done += job.0;
            self.note();
        }
    }

    fn note(&mut self) {
        self.done += 1;
    }
}

fn is_spawnable<F: std::future::Future + Send + 'static>(_: &F) {}

fn main() {
    // Built, not run: what matters is that `tokio::spawn` takes each future.
    let _ = async {
        let (_tx, rx) = mpsc::channel(8);
        let (out, _out_rx) = mpsc::channel(8);
        let relayed = relay(rx, out, CancellationToken::new());
        is_spawnable(&relayed);
        drop(tokio::spawn(relayed));

        let stream = TcpStream::connect("127.0.0.1:9").await?;
        drop(tokio::spawn(writer(stream)));

        let (_tx, rx) = mpsc::channel(8);
        let worker = Worker { rx, done: 0 }.run();
        is_spawnable(&worker);
        drop(tokio::spawn(worker));
        std::io::Result::Ok(())
    };
}
