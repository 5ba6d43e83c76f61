//! The loop that yields every iteration, shared by benchmarks 3
//! (`heartbeat.rs`) and 3d (`poll.rs`): annotated, written by hand, and
//! written by hand with the beat the attribute adds.

use supervised::{supervised, Subsystem};

#[supervised(name = "bench-annotated-loop")]
pub async fn annotated_loop(n: u64) {
    let mut i = 0;
    while i < n {
        i += 1;
        tokio::task::yield_now().await;
    }
}

pub async fn hand_written_loop(n: u64) {
    let mut i = 0;
    while i < n {
        i += 1;
        tokio::task::yield_now().await;
    }
}

/// The hand-written loop plus the one beat per iteration the attribute adds:
/// what is left of the difference is the supervisor's per-poll wrapping.
pub async fn hand_written_beat_loop(n: u64, sub: &Subsystem) {
    let mut i = 0;
    while i < n {
        i += 1;
        tokio::task::yield_now().await;
        sub.beat();
    }
}
