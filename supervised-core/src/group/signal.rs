//! The signals that shut a root group down: SIGINT and SIGTERM on Unix,
//! Ctrl-C elsewhere. Installed before any child starts, so a signal that
//! arrives early is not lost.

/// The installed signal streams.
pub(super) struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub(super) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(
                        target: "supervised",
                        %error,
                        "cannot install the SIGINT and SIGTERM handlers: the group will not shut down on a signal"
                    );
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next signal's name; never resolves without handlers.
    pub(super) async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            match &mut self.streams {
                Some((interrupt, terminate)) => tokio::select! {
                    Some(()) = interrupt.recv() => "SIGINT",
                    Some(()) = terminate.recv() => "SIGTERM",
                    else => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "ctrl_c",
                Err(error) => {
                    tracing::error!(target: "supervised", %error, "cannot listen for Ctrl-C");
                    std::future::pending().await
                }
            }
        }
    }
}
