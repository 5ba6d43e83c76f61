//! `#[supervised]` on methods of `#[async_trait]` impls, `Send` and
//! `?Send`: by reference, by mutable reference, by value with `keep`, with
//! a token, a pattern argument and an aliased `Result`.
#![deny(warnings)]
use std::rc::Rc;

use async_trait::async_trait;
use supervised::{supervised, CancellationToken};
use tokio::sync::mpsc;

type SweepResult = Result<(), String>;

#[async_trait]
trait Sweep {
    async fn sweep(&self, cancel: CancellationToken) -> SweepResult;
    async fn count(&mut self, (from, to): (u64, u64));
}

#[async_trait]
trait Drain {
    async fn drain(self, out: mpsc::Sender<u64>);
}

#[derive(Clone)]
struct Sweeper {
    seen: u64,
}

#[async_trait]
impl Sweep for Sweeper {
    #[supervised(name = "sweeper", tick = "1s")]
    async fn sweep(&self, cancel: CancellationToken) -> SweepResult {
        while !cancel.is_cancelled() {
            if self.seen > 10 {
                return Err(format!("saw {}", self.seen));
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    #[supervised]
    async fn count(&mut self, (from, to): (u64, u64)) {
        for i in from..to {
            self.seen += i;
        }
    }
}

struct Relay {
    rx: mpsc::Receiver<u64>,
}

#[async_trait]
impl Drain for Relay {
    #[supervised(name = "relay", keep(self))]
    async fn drain(mut self, out: mpsc::Sender<u64>) {
        while let Some(n) = self.rx.recv().await {
            let _ = out.send(n).await;
        }
    }
}

/// `?Send`: the body may hold an `Rc` across an await.
#[async_trait(?Send)]
trait Local {
    async fn poll(&self);
}

struct Poller {
    shared: Rc<u64>,
}

#[async_trait(?Send)]
impl Local for Poller {
    #[supervised(name = "poller")]
    async fn poll(&self) {
        loop {
            let held = Rc::clone(&self.shared);
            tokio::task::yield_now().await;
            drop(held);
        }
    }
}

fn is_send<F: Send>(_: &F) {}

fn main() {
    let sweeper = Sweeper { seen: 0 };
    let sweep = sweeper.sweep(CancellationToken::new());
    is_send(&sweep);
    drop(sweep);
    let (_tx, rx) = mpsc::channel(8);
    let (out, _out_rx) = mpsc::channel(8);
    let drain = Relay { rx }.drain(out);
    is_send(&drain);
    drop(async { tokio::spawn(drain).await });
    let poller = Poller { shared: Rc::new(1) };
    drop(poller.poll());
}
