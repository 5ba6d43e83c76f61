//! [`serve`]: the routes on a listener of their own, behind the
//! authentication the caller chose explicitly.

use std::fmt;
use std::io;
use std::sync::Arc;

use axum::middleware;
use tokio::net::{TcpListener, ToSocketAddrs};

use super::auth::{require_bearer, Auth};
use super::{router_with, RouterOptions};
use crate::{registry, CancellationToken, Registry};

// ---- serve -------------------------------------------------------------------

/// How [`serve`] runs: the authentication (chosen explicitly), the
/// cancellation token that shuts it down, and optionally the registry and
/// [`RouterOptions`].
///
/// ```
/// use supervised_core::http::ServeOptions;
/// use supervised_core::CancellationToken;
///
/// let shutdown = CancellationToken::new();
/// let guarded = ServeOptions::bearer_token("s3cret-token", shutdown.clone());
/// let open = ServeOptions::no_auth(shutdown).registry(&supervised_core::Registry::new());
/// # let _ = (guarded, open);
/// ```
#[derive(Clone)]
pub struct ServeOptions {
    auth: Auth,
    shutdown: CancellationToken,
    registry: Option<Registry>,
    router: RouterOptions,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::Bearer(_) => "bearer (redacted)",
            Auth::None => "none",
        };
        f.debug_struct("ServeOptions")
            .field("auth", &auth)
            .field("registry", &self.registry)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Every request must carry `Authorization: Bearer <token>`; the token is
    /// compared in constant time (for tokens of equal length) and anything
    /// else gets 401 with a JSON error. An empty token is refused by
    /// [`serve`]. The server shuts down when `shutdown` is cancelled.
    pub fn bearer_token(token: impl Into<String>, shutdown: CancellationToken) -> Self {
        let token: String = token.into();
        Self::with_auth(Auth::Bearer(Arc::from(token.into_bytes())), shutdown)
    }

    /// No authentication: anyone who reaches the address reads the routes.
    /// Say so only for loopback or a network you trust; [`serve`] logs a
    /// warning otherwise. The server shuts down when `shutdown` is cancelled.
    pub fn no_auth(shutdown: CancellationToken) -> Self {
        Self::with_auth(Auth::None, shutdown)
    }

    fn with_auth(auth: Auth, shutdown: CancellationToken) -> Self {
        ServeOptions {
            auth,
            shutdown,
            registry: None,
            router: RouterOptions::default(),
        }
    }

    /// Serves `registry` instead of the process-wide one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Options for the routes (see [`RouterOptions`]).
    pub fn router_options(mut self, options: RouterOptions) -> Self {
        self.router = options;
        self
    }
}

/// Binds `addr` and serves the routes of [`router_with`] there until the
/// options' cancellation token is cancelled, then finishes the requests in
/// flight and returns.
///
/// Errors: binding fails, or the bearer token is empty
/// ([`io::ErrorKind::InvalidInput`]).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use supervised_core::http::{serve, ServeOptions};
/// use supervised_core::CancellationToken;
///
/// let shutdown = CancellationToken::new();
/// let token = std::env::var("ADMIN_TOKEN").expect("ADMIN_TOKEN is set");
/// serve("127.0.0.1:8080", ServeOptions::bearer_token(token, shutdown)).await
/// # }
/// ```
pub async fn serve(addr: impl ToSocketAddrs, options: ServeOptions) -> io::Result<()> {
    check(&options)?;
    let listener = TcpListener::bind(addr).await?;
    serve_listener(listener, options).await
}

/// [`serve`] on a listener bound beforehand, for instance on port 0 to let
/// the system choose (read the port with [`TcpListener::local_addr`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use supervised_core::http::{serve_listener, ServeOptions};
/// use supervised_core::CancellationToken;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let shutdown = CancellationToken::new();
/// let server = tokio::spawn(serve_listener(listener, ServeOptions::no_auth(shutdown.clone())));
/// // ... the routes answer on 127.0.0.1:{port} ...
/// # let _ = port;
/// shutdown.cancel();
/// server.await??;
/// # Ok(())
/// # }
/// ```
pub async fn serve_listener(listener: TcpListener, options: ServeOptions) -> io::Result<()> {
    check(&options)?;
    let local = listener.local_addr()?;
    let ServeOptions {
        auth,
        shutdown,
        registry: chosen,
        router: router_options,
    } = options;
    let registry = chosen.unwrap_or_else(|| registry().clone());
    let mut app = router_with(&registry, router_options);
    match auth {
        Auth::Bearer(token) => {
            tracing::info!(target: "supervised", addr = %local, auth = "bearer", "serving liveness over HTTP");
            app = app.layer(middleware::from_fn_with_state(token, require_bearer));
        }
        Auth::None if local.ip().is_loopback() => {
            tracing::info!(target: "supervised", addr = %local, auth = "none", "serving liveness over HTTP");
        }
        Auth::None => {
            tracing::warn!(
                target: "supervised", addr = %local,
                auth = "none",
                "serving liveness over HTTP without authentication on a non-loopback address: \
                 subsystem cadence is readable by anyone who reaches it"
            );
        }
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    tracing::info!(target: "supervised", addr = %local, "liveness HTTP server stopped");
    Ok(())
}

fn check(options: &ServeOptions) -> io::Result<()> {
    match &options.auth {
        Auth::Bearer(token) if token.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the bearer token is empty; pass a token or choose ServeOptions::no_auth",
        )),
        _ => Ok(()),
    }
}
