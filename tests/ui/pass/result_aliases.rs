//! Return types are the type checker's call: every alias of `Result` (and
//! of `()`) is accepted, and an error with only `Debug` is too.
use std::io;

use supervised::{supervised, CancellationToken, Cancelled};

#[derive(Debug)]
pub struct LemmyError(String);

impl std::fmt::Display for LemmyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Cancelled> for LemmyError {
    fn from(c: Cancelled) -> Self {
        LemmyError(c.to_string())
    }
}

pub type LemmyResult<T> = Result<T, LemmyError>;

mod prelude {
    pub type Result<T, E = String> = std::result::Result<T, E>;
}

pub type Unit = ();

#[supervised]
async fn through_a_use() -> io::Result<()> {
    loop {
        return Ok(());
    }
}

#[supervised]
async fn crate_alias(cancel: CancellationToken) -> LemmyResult<()> {
    while !cancel.is_cancelled() {
        tokio::task::yield_now().await;
    }
    Ok(())
}

#[supervised]
async fn from_a_prelude() -> prelude::Result<()> {
    use prelude::Result;
    fn check(r: Result<()>) -> Result<()> {
        r
    }
    loop {
        return check(Ok(()));
    }
}

#[supervised]
async fn fmt_result() -> std::fmt::Result {
    loop {
        return Ok(());
    }
}

#[supervised]
async fn fully_qualified() -> core::result::Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        return Ok(1);
    }
}

#[supervised]
async fn unit_alias() -> Unit {
    loop {
        break;
    }
}

#[supervised]
async fn debug_only_error(cancel: CancellationToken) -> Result<(), DebugOnly> {
    while !cancel.is_cancelled() {
        tokio::task::yield_now().await;
    }
    Ok(())
}

#[derive(Debug)]
pub struct DebugOnly;

impl From<Cancelled> for DebugOnly {
    fn from(_: Cancelled) -> Self {
        DebugOnly
    }
}

/// Each fn's future can be spawned: `Send + 'static`.
fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}

fn main() {
    spawnable(through_a_use());
    spawnable(crate_alias(CancellationToken::new()));
    spawnable(from_a_prelude());
    spawnable(fmt_result());
    spawnable(fully_qualified());
    spawnable(unit_alias());
    spawnable(debug_only_error(CancellationToken::new()));
}
