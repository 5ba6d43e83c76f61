use supervised::supervised;

struct Connection;

#[supervised]
async fn relay(conn: Connection, retries: u32) {
    loop {
        let _ = (&conn, retries);
        tokio::task::yield_now().await;
    }
}

fn main() {}
