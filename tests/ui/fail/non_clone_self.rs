use supervised::supervised;

struct Worker;

impl Worker {
    #[supervised]
    async fn run(self) {
        loop {
            tokio::task::yield_now().await;
        }
    }
}

fn main() {}
