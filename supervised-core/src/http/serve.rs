//! [`serve`]: the routes on a listener of their own, behind the
//! authentication the caller chose explicitly, with the bounds of
//! `accept.rs` against hostile clients.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use tokio::net::{TcpListener, ToSocketAddrs};

use super::accept::{self, Limits};
use super::auth::{require_bearer, Auth, BearerGate};
use super::{no_store, reports, routes, RouterOptions};
use crate::{CancellationToken, Registry};

/// The shortest bearer token [`serve`] accepts, in bytes.
pub const MIN_BEARER_TOKEN_LEN: usize = 16;

/// How [`serve`] runs: the authentication (chosen explicitly), the
/// cancellation token that shuts it down, the bounds it keeps against
/// clients, and optionally the registry and [`RouterOptions`].
///
/// | bound | default | setter |
/// | --- | --- | --- |
/// | request headers must arrive within | 10 s | [`header_read_timeout`](ServeOptions::header_read_timeout) |
/// | a connection may be silent for | 30 s | [`idle_timeout`](ServeOptions::idle_timeout) |
/// | open connections at once | 512 | [`max_connections`](ServeOptions::max_connections) |
/// | shutdown waits for open connections | 5 s | [`shutdown_timeout`](ServeOptions::shutdown_timeout) |
///
/// `Debug` never shows the token.
///
/// ```
/// use std::time::Duration;
/// use supervised::http::ServeOptions;
/// use supervised::CancellationToken;
///
/// let shutdown = CancellationToken::new();
/// let guarded = ServeOptions::bearer_token("0123456789abcdef0123", shutdown.clone())
///     .max_connections(64)
///     .shutdown_timeout(Duration::from_secs(2));
/// assert!(!format!("{guarded:?}").contains("0123456789abcdef0123"));
/// let open = ServeOptions::no_auth(shutdown).registry(&supervised::Registry::new());
/// # let _ = open;
/// ```
#[derive(Clone)]
pub struct ServeOptions {
    auth: Auth,
    open_probes: bool,
    shutdown: CancellationToken,
    registry: Option<Registry>,
    router: RouterOptions,
    limits: Limits,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::Bearer(_) => "bearer (redacted)",
            Auth::None => "none",
        };
        f.debug_struct("ServeOptions")
            .field("auth", &auth)
            .field("open_probes", &self.open_probes)
            .field("registry", &self.registry)
            .field("router", &self.router)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Every request must carry `Authorization: Bearer <token>`; the token is
    /// compared in constant time (for tokens of equal length) and anything
    /// else gets 401 with a JSON error. [`serve`] refuses a token shorter
    /// than [`MIN_BEARER_TOKEN_LEN`] bytes. The server shuts down when
    /// `shutdown` is cancelled.
    ///
    /// Take the token from a file or the environment
    /// ([`bearer_token_from_env`](ServeOptions::bearer_token_from_env)),
    /// not from the command line, where `ps` shows it.
    pub fn bearer_token(token: impl Into<String>, shutdown: CancellationToken) -> Self {
        let token: String = token.into();
        Self::with_auth(Auth::Bearer(Arc::from(token.into_bytes())), shutdown)
    }

    /// [`bearer_token`](ServeOptions::bearer_token) with the token read from
    /// the environment variable `var`, whitespace around it trimmed (a
    /// Kubernetes Secret made with `--from-file` keeps the file's newline).
    ///
    /// Errors ([`io::ErrorKind::InvalidInput`], naming `var`): the variable
    /// is unset, empty (or only whitespace), or not valid Unicode.
    ///
    /// ```
    /// use supervised::http::ServeOptions;
    /// use supervised::CancellationToken;
    ///
    /// let error = ServeOptions::bearer_token_from_env("DOC_UNSET_TOKEN", CancellationToken::new())
    ///     .unwrap_err();
    /// assert!(error.to_string().contains("DOC_UNSET_TOKEN"));
    /// ```
    pub fn bearer_token_from_env(var: &str, shutdown: CancellationToken) -> io::Result<Self> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the bearer token variable `{var}` is {why}; set it to a token such as the output of `openssl rand -hex 32`"),
            )
        };
        match std::env::var(var) {
            Ok(token) if trim_token(&token).is_empty() => Err(invalid("empty")),
            Ok(token) => Ok(Self::bearer_token(trim_token(&token), shutdown)),
            Err(std::env::VarError::NotPresent) => Err(invalid("not set")),
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid("not valid Unicode")),
        }
    }

    /// [`bearer_token`](ServeOptions::bearer_token) with the token read from
    /// the file at `path` (such as a mounted Secret, or systemd's
    /// `$CREDENTIALS_DIRECTORY/token`), whitespace around it trimmed, as
    /// [`bearer_token_from_env`](ServeOptions::bearer_token_from_env) does.
    ///
    /// Errors: the file cannot be read (its error, with the path), or holds
    /// no token ([`io::ErrorKind::InvalidInput`]).
    ///
    /// ```
    /// use supervised::http::ServeOptions;
    /// use supervised::CancellationToken;
    ///
    /// let path = std::env::temp_dir().join("doc-admin.token");
    /// std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    /// let options = ServeOptions::bearer_token_from_file(&path, CancellationToken::new());
    /// assert!(options.is_ok());
    /// ```
    pub fn bearer_token_from_file(
        path: impl AsRef<std::path::Path>,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot read the bearer token file `{}`: {e}",
                    path.display()
                ),
            )
        })?;
        let token = trim_token(&text);
        if token.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the bearer token file `{}` is empty; write a token such as the output of `openssl rand -hex 32` to it",
                    path.display()
                ),
            ));
        }
        Ok(Self::bearer_token(token, shutdown))
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
            open_probes: false,
            shutdown,
            registry: None,
            router: RouterOptions::default(),
            limits: Limits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(30),
                max_connections: 512,
                shutdown_timeout: Duration::from_secs(5),
            },
        }
    }

    /// With a bearer token, lets `GET /admin/health` and `GET /admin/ready`
    /// through without it (default: off), for probes that cannot send a
    /// secret, such as Kubernetes' `httpGet` probes. Those two paths
    /// exactly; every other route still needs the token. They answer a
    /// status and the names of the subsystems that are stale, failed or
    /// waited for, never beats, errors or tenant data. No effect without a
    /// token.
    ///
    /// ```
    /// use supervised::http::ServeOptions;
    /// let options = ServeOptions::bearer_token("0123456789abcdef0123", supervised::CancellationToken::new())
    ///     .open_probes(true);
    /// assert!(format!("{options:?}").contains("open_probes: true"));
    /// ```
    pub fn open_probes(mut self, open: bool) -> Self {
        self.open_probes = open;
        self
    }

    /// Serves `registry` instead of the process-wide one (and instead of
    /// one given in [`router_options`](ServeOptions::router_options)).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Options for the routes (see [`RouterOptions`]).
    pub fn router_options(mut self, options: RouterOptions) -> Self {
        self.router = options;
        self
    }

    /// How long a client may take to send a request's headers (default
    /// 10 s), counted from when the connection starts waiting for a request:
    /// on a new connection, and again after each answer on a kept-alive one.
    /// So an idle kept-alive connection closes after this long, too.
    /// A zero timeout is refused by [`serve`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// How long a connection may be silent, no byte read or written, before
    /// it is closed (default 30 s): a request body that stops arriving, or a
    /// client that stops reading its answer. A zero timeout is refused by
    /// [`serve`].
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// How many connections may be open at once (default 512). Past it, a
    /// new connection is accepted and closed at once (logged once per
    /// episode), so a flood cannot use up the process's file descriptors;
    /// the open ones close by the timeouts above, which makes room again.
    /// Zero is refused by [`serve`].
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max;
        self
    }

    /// How long shutdown waits for open connections to finish their request
    /// (default 5 s); then the rest are closed and [`serve`] returns.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.limits.shutdown_timeout = timeout;
        self
    }
}

/// Binds `addr` and serves the routes of [`RouterOptions::router`](super::RouterOptions::router)
/// there until the options' cancellation token is cancelled, then lets the
/// requests in flight finish within the shutdown timeout and returns.
///
/// Besides the routes, every other path answers 404 with a JSON error and
/// every other method 405 with `Allow`; every answer, errors included,
/// carries `Cache-Control: no-store`.
///
/// Errors ([`io::ErrorKind::InvalidInput`]): the bearer token is shorter
/// than [`MIN_BEARER_TOKEN_LEN`] bytes, or a timeout or `max_connections` is
/// zero. And any error binding `addr`.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use supervised::http::{serve, ServeOptions};
/// use supervised::CancellationToken;
///
/// let shutdown = CancellationToken::new();
/// let options = ServeOptions::bearer_token_from_env("ADMIN_TOKEN", shutdown)?;
/// serve("127.0.0.1:8080", options).await
/// # }
/// ```
pub async fn serve(addr: impl ToSocketAddrs, options: ServeOptions) -> io::Result<()> {
    check(&options)?;
    let listener = TcpListener::bind(addr).await?;
    serve_listener(listener, options).await
}

/// [`serve`] on a listener bound beforehand, for instance on port 0 to let
/// the system choose (read the port with [`TcpListener::local_addr`](tokio::net::TcpListener::local_addr)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use supervised::http::{serve_listener, ServeOptions};
/// use supervised::CancellationToken;
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
        open_probes,
        shutdown,
        registry: chosen,
        router: router_options,
        limits,
    } = options;
    let router_options = match chosen {
        Some(registry) => router_options.registry(&registry),
        None => router_options,
    };
    let status_page = router_options.status_page;
    let mut app: axum::Router = routes(router_options).fallback(reports::not_found);
    match auth {
        Auth::Bearer(token) => {
            tracing::info!(target: "supervised", addr = %local, auth = "bearer", open_probes, "serving liveness over HTTP");
            let gate = BearerGate {
                token,
                open_probes,
                status_page,
            };
            app = app.layer(middleware::from_fn_with_state(gate, require_bearer));
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
    // Outermost, so the 401s of the auth layer carry it too.
    let app = app.layer(middleware::map_response(no_store));
    accept::run(listener, app, limits, shutdown).await;
    tracing::info!(target: "supervised", addr = %local, "liveness HTTP server stopped");
    Ok(())
}

/// A token as read from a file or a variable, without the ASCII whitespace
/// around it (a trailing newline above all). Only ASCII: anything else is
/// kept, so a token is never changed in a way `check` cannot see.
fn trim_token(token: &str) -> &str {
    token.trim_matches(|c: char| c.is_ascii_whitespace())
}

fn check(options: &ServeOptions) -> io::Result<()> {
    let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    if let Auth::Bearer(token) = &options.auth {
        // A client can never send these in an `Authorization` header, so
        // such a token would answer 401 to everyone, silently: most often a
        // token file's trailing newline.
        if token
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return invalid(
                "the bearer token contains whitespace or a control character (a token file's trailing newline?), which no client can send; trim it, or read it with ServeOptions::bearer_token_from_file or bearer_token_from_env, which do"
                    .to_string(),
            );
        }
        if token.len() < MIN_BEARER_TOKEN_LEN {
            return invalid(format!(
                "the bearer token is {} bytes; it needs at least {MIN_BEARER_TOKEN_LEN} (make one with `openssl rand -hex 32`), or choose ServeOptions::no_auth",
                token.len()
            ));
        }
    }
    let limits = &options.limits;
    for (name, value) in [
        ("header_read_timeout", limits.header_read_timeout),
        ("idle_timeout", limits.idle_timeout),
    ] {
        if value.is_zero() {
            return invalid(format!("`{name}` must be longer than zero"));
        }
    }
    if limits.max_connections == 0 {
        return invalid("`max_connections` must be at least 1".to_string());
    }
    Ok(())
}
