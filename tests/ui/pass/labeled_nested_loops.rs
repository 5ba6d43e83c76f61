//! Labeled nested loops: `continue 'outer` from the inner loop beats.
use supervised::supervised;

#[supervised]
async fn grid(rows: u32, cols: u32) {
    'rows: for r in 0..rows {
        'cols: for c in 0..cols {
            if c > r {
                continue 'rows;
            }
            if c == 1 {
                continue 'cols;
            }
            tokio::task::yield_now().await;
        }
    }
}

fn main() {
    let _ = grid(3, 3);
}
