//! `self: Arc<Self>` and plain `self`: a fresh clone for each run.
use std::sync::Arc;
use supervised::supervised;

#[derive(Clone)]
struct Relay {
    topic: String,
}

impl Relay {
    #[supervised]
    async fn run(self: Arc<Self>) {
        loop {
            let topic = self.topic.clone();
            println!("{}", self.topic);
            if topic.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
    }

    #[supervised]
    async fn consume(mut self) {
        loop {
            self.topic.push('!');
            let moved = self;
            drop(moved);
            break;
        }
    }
}

fn main() {
    let relay = Arc::new(Relay { topic: String::new() });
    let _spawn = async move { tokio::spawn(relay.run()).await };
    let _ = Relay { topic: String::new() }.consume();
}
