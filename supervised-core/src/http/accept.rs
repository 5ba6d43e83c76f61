//! The accept loop behind [`serve`](super::serve): what keeps a hostile or
//! careless client from holding the process.
//!
//! - Each connection is one task in a `JoinSet`, so the loop knows how many
//!   are open. At `max_connections`, a new connection is accepted and closed
//!   at once: descriptors stay bounded however many clients arrive.
//! - hyper closes a connection whose request headers do not arrive within
//!   `header_read_timeout` (it starts that timer whenever the connection
//!   waits for a request, the first one or the next on a kept-alive
//!   connection); `IdleTimeout` closes one on which no byte moved for
//!   `idle_timeout` in any phase.
//! - An accept error (`EMFILE` above all) is logged once per episode and
//!   retried after a pause that doubles up to 1 s, never in a spin.
//! - On shutdown the listener closes, every connection is asked to finish
//!   its request and close, and after `shutdown_timeout` the ones left are
//!   dropped: shutdown never waits on a client.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::idle::IdleTimeout;

/// The bounds [`run`] keeps, from [`ServeOptions`](super::ServeOptions).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) shutdown_timeout: Duration,
}

/// The first pause after a failed accept; it doubles while accepts fail.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause after a failed accept.
const LONGEST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown`, then drains within the
/// shutdown timeout.
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let mut connections: JoinSet<()> = JoinSet::new();
    // `Some(pause)` while accepts fail, with the next pause.
    let mut accept_failing: Option<Duration> = None;
    // Connections closed at the cap in the current episode.
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                let pause = accept_failing.unwrap_or(FIRST_ACCEPT_PAUSE);
                if accept_failing.is_none() {
                    tracing::warn!(
                        target: "supervised",
                        %error,
                        "accepting an HTTP connection failed; retrying with a pause that doubles up to 1s"
                    );
                }
                tracing::debug!(target: "supervised", %error, ?pause, "accept failed; pausing");
                accept_failing = Some((pause * 2).min(LONGEST_ACCEPT_PAUSE));
                if wait_or_shutdown(tokio::time::sleep(pause), &shutdown).await {
                    break;
                }
                continue;
            }
        };
        if accept_failing.take().is_some() {
            tracing::info!(target: "supervised", "accepting HTTP connections again");
        }
        // Connections that ended while the loop waited in `accept` free
        // their slot now, before the cap is checked.
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            drop(stream);
            if refused == 0 {
                tracing::warn!(
                    target: "supervised",
                    max_connections = limits.max_connections,
                    "HTTP connections at max_connections; closing new ones at once"
                );
            }
            refused += 1;
            continue;
        }
        if refused > 0 {
            tracing::info!(
                target: "supervised",
                refused,
                "HTTP connections below max_connections again"
            );
            refused = 0;
        }
        connections.spawn(connection(stream, app.clone(), limits, shutdown.clone()));
    }
    drop(listener);
    drain(connections, limits.shutdown_timeout).await;
}

/// Waits for `pause`; `true` if `shutdown` came first.
async fn wait_or_shutdown(pause: impl Future<Output = ()>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => true,
        () = pause => false,
    }
}

/// Lets the open connections finish within `timeout`, then drops the rest.
async fn drain(mut connections: JoinSet<()>, timeout: Duration) {
    let finished = tokio::time::timeout(timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            target: "supervised",
            open = connections.len(),
            shutdown_timeout = ?timeout,
            "HTTP connections still open at the shutdown timeout; closing them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// One connection, until it ends, times out or is shut down.
async fn connection(stream: TcpStream, app: Router, limits: Limits, shutdown: CancellationToken) {
    // Answers are small; do not hold them back for more.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(app)));
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = shutdown.cancelled() => {
            // Finish the request in flight, if any, then close; `drain`
            // drops the connection if that takes too long.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(target: "supervised", %error, "HTTP connection ended with an error");
    }
}
