//! Loops inside `if`, `match` and blocks count as outermost; two in sequence both beat.
use supervised::supervised;

#[supervised]
async fn modes(fast: bool, mode: u8) {
    if fast {
        loop {
            tokio::task::yield_now().await;
            break;
        }
    } else {
        match mode {
            0 => {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
            }
            _ => {
                let mut n = 0;
                while n < 3 {
                    n += 1;
                }
            }
        }
    }
    {
        loop {
            break;
        }
    }
}

#[supervised]
async fn two_phases() {
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}

fn main() {
    let _ = modes(true, 0);
    let _ = two_phases();
}
