//! `Result` returns: `?` works, the error type converts from `Cancelled`
//! when the fn takes a token, and is free otherwise.
use supervised::{supervised, CancellationToken};

#[derive(Debug)]
struct AppError(String);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError(e.to_string())
    }
}

#[supervised]
async fn parse_all(lines: Vec<String>) -> Result<u64, AppError> {
    let mut sum = 0;
    for line in &lines {
        sum += line.parse::<u64>()?;
    }
    Ok(sum)
}

#[supervised]
async fn cancellable(cancel: CancellationToken) -> Result<(), std::io::Error> {
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

#[supervised]
async fn boxed(cancel: CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    while !cancel.is_cancelled() {
        tokio::task::yield_now().await;
    }
    Ok(())
}

fn main() {
    let _ = parse_all(vec!["1".into()]);
    let _ = cancellable(CancellationToken::new());
    let _ = boxed(CancellationToken::new());
}
