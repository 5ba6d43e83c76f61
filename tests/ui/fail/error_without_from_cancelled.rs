use supervised::{supervised, CancellationToken};

#[derive(Debug)]
struct SyncError;

#[supervised]
async fn sync(cancel: CancellationToken) -> Result<(), SyncError> {
    while !cancel.is_cancelled() {}
    Ok(())
}

fn main() {}
