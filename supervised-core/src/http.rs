//! Liveness and health over HTTP (cargo feature `http`), built on axum.
//!
//! [`router`] gives an [`axum::Router`] to merge into an application's own,
//! behind its own middleware (authentication above all: subsystem cadence
//! tells how tenants work). [`serve`] runs the same routes on a listener of
//! their own for programs without an HTTP server, and insists on being told
//! whether a bearer token guards them.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /admin/liveness` | 200, every subsystem's liveness as JSON (see below) |
//! | `GET /admin/health` | 200 `{"status":"ok"}`, or 503 with the stale and failed names |
//! | `GET /metrics` | Prometheus metrics, with the `prometheus` feature (see `crate::metrics`) |
//!
//! Other methods get 405. Every answer carries `Cache-Control: no-store`.
//!
//! # `/admin/liveness`
//!
//! A superset of the seed's shape, keyed by subsystem name:
//!
//! ```json
//! {
//!   "healthy": true,
//!   "subsystems": {
//!     "scheduler": {
//!       "last_tick_at": "2026-04-14T14:21:00Z",
//!       "seconds_ago": 3,
//!       "state": "running",
//!       "tick_seconds": 5.0,
//!       "stale_after_seconds": 10.0,
//!       "healthy": true,
//!       "stale": false,
//!       "advisory": false,
//!       "beats": 120,
//!       "restarts": 1,
//!       "consecutive_failures": 0,
//!       "next_restart_at": null
//!     }
//!   }
//! }
//! ```
//!
//! - `last_tick_at` and `seconds_ago` keep the seed's names and meaning: the
//!   last heartbeat as an RFC 3339 UTC timestamp (whole seconds) and the whole
//!   seconds since then; both `null` for a subsystem that never beat.
//! - `state` is one of `running`, `backing_off`, `stopped`, `failed`.
//! - `tick_seconds` and `stale_after_seconds` are `null` without a declared tick.
//! - `next_restart_at` is set only while `backing_off`.
//! - The top-level `healthy` is true when every subsystem that is not
//!   advisory is healthy.
//! - `last_panic` (`{"message", "location", "at"}` or `null`) and
//!   `last_error` (string or `null`) are served only after
//!   [`RouterOptions::expose_failure_details`]: panic messages and error
//!   texts can hold tenant data.
//!
//! The registry keeps monotonic [`tokio::time::Instant`]s only. Timestamps
//! are derived when the answer is rendered: `SystemTime::now()` minus the
//! distance of the instant from `Instant::now()`.
//!
//! # `/admin/health`
//!
//! The strict probe for orchestrators: 200 `{"status":"ok"}` when no
//! subsystem is `failed` and every one that declares a tick is fresh,
//! otherwise 503 `{"status":"unhealthy","stale":[...],"failed":[...]}`.
//! Subsystems marked advisory ([`crate::Subsystem::set_advisory`]) are
//! reported by `/admin/liveness` but never fail this probe, so an outage of
//! a dependency they watch cannot cause a restart cascade.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use axum::extract::{Request, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::probe::Verdict;
use crate::wallclock::WallClock;
use crate::{registry, CancellationToken, Registry, SubsystemStatus};

/// The path of the liveness report.
pub const LIVENESS_PATH: &str = "/admin/liveness";
/// The path of the strict health probe.
pub const HEALTH_PATH: &str = "/admin/health";
/// The path of the Prometheus metrics (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub const METRICS_PATH: &str = "/metrics";

/// What the routes of [`router_with`] serve beyond the defaults.
///
/// ```
/// use supervised_core::http::RouterOptions;
/// let options = RouterOptions::new().expose_failure_details(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    expose_failure_details: bool,
}

impl RouterOptions {
    /// The defaults: panic messages and error texts are not served.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves each subsystem's last panic (message, location, time) and last
    /// error text in `/admin/liveness`. Off by default: they can hold tenant
    /// data, so turn this on only behind authentication you trust.
    pub fn expose_failure_details(mut self, expose: bool) -> Self {
        self.expose_failure_details = expose;
        self
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    options: RouterOptions,
}

/// The routes over the process-wide [`registry()`], with default options.
///
/// Merge it into the application's router, behind its own authentication:
///
/// ```
/// use axum::Router;
///
/// let app: Router = Router::new()
///     .nest("/api", Router::new())
///     .merge(supervised_core::http::router());
/// # let _ = app;
/// ```
pub fn router() -> Router {
    router_with(registry().clone(), RouterOptions::default())
}

/// The routes over `registry`, with default options.
///
/// ```
/// let registry = supervised_core::Registry::new();
/// let app: axum::Router = supervised_core::http::router_for(registry);
/// # let _ = app;
/// ```
pub fn router_for(registry: Registry) -> Router {
    router_with(registry, RouterOptions::default())
}

/// The routes over `registry`, with `options`.
///
/// ```
/// use supervised_core::http::{router_with, RouterOptions};
///
/// let registry = supervised_core::Registry::new();
/// let app = router_with(registry, RouterOptions::new().expose_failure_details(true));
/// # let _: axum::Router = app;
/// ```
pub fn router_with(registry: Registry, options: RouterOptions) -> Router {
    let router = Router::new()
        .route(LIVENESS_PATH, get(liveness))
        .route(HEALTH_PATH, get(health));
    #[cfg(feature = "prometheus")]
    let router = router.route(METRICS_PATH, get(metrics));
    router
        .layer(middleware::map_response(no_store))
        .with_state(AppState { registry, options })
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---- /admin/liveness ---------------------------------------------------------

#[derive(Serialize)]
struct Liveness {
    healthy: bool,
    subsystems: BTreeMap<String, SubsystemJson>,
}

#[derive(Serialize)]
struct SubsystemJson {
    last_tick_at: Option<String>,
    seconds_ago: Option<u64>,
    state: &'static str,
    tick_seconds: Option<f64>,
    stale_after_seconds: Option<f64>,
    healthy: bool,
    stale: bool,
    advisory: bool,
    beats: u64,
    restarts: u64,
    consecutive_failures: u32,
    next_restart_at: Option<String>,
    /// `None`: not served; `Some(None)`: served, no panic.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_panic: Option<Option<PanicJson>>,
    /// `None`: not served; `Some(None)`: served, no error.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<Option<String>>,
}

#[derive(Serialize)]
struct PanicJson {
    message: String,
    location: Option<String>,
    at: String,
}

impl SubsystemJson {
    fn new(s: &SubsystemStatus, clock: &WallClock, options: &RouterOptions) -> Self {
        let details = options.expose_failure_details;
        SubsystemJson {
            last_tick_at: s.last_tick.map(|t| clock.rfc3339(t)),
            seconds_ago: s.since_last_tick.map(|d| d.as_secs()),
            state: s.state.as_str(),
            tick_seconds: s.tick.map(|d| d.as_secs_f64()),
            stale_after_seconds: s.stale_after.map(|d| d.as_secs_f64()),
            healthy: s.healthy,
            stale: s.stale,
            advisory: s.advisory,
            beats: s.beats,
            restarts: s.restarts,
            consecutive_failures: s.consecutive_failures,
            next_restart_at: s.next_restart_at.map(|t| clock.rfc3339(t)),
            last_panic: details.then(|| {
                s.last_panic.as_ref().map(|p| PanicJson {
                    message: p.message.clone(),
                    location: p.location.clone(),
                    at: clock.rfc3339(p.at),
                })
            }),
            last_error: details.then(|| s.last_error.clone()),
        }
    }
}

async fn liveness(Extract(app): Extract<AppState>) -> Response {
    let snapshot = app.registry.snapshot();
    let clock = WallClock::now();
    let body = Liveness {
        healthy: snapshot.iter().all(|s| s.advisory || s.healthy),
        subsystems: snapshot
            .iter()
            .map(|s| (s.name.clone(), SubsystemJson::new(s, &clock, &app.options)))
            .collect(),
    };
    Json(body).into_response()
}

// ---- /admin/health -----------------------------------------------------------

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Vec<String>>,
}

async fn health(Extract(app): Extract<AppState>) -> Response {
    let verdict = Verdict::of(&app.registry.snapshot());
    if verdict.ok() {
        let body = Health {
            status: "ok",
            stale: None,
            failed: None,
        };
        (StatusCode::OK, Json(body)).into_response()
    } else {
        tracing::debug!(
            target: "supervised", stale = ?verdict.stale,
            failed = ?verdict.failed,
            "health probe answered 503"
        );
        let body = Health {
            status: "unhealthy",
            stale: Some(verdict.stale),
            failed: Some(verdict.failed),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

// ---- /metrics ----------------------------------------------------------------

#[cfg(feature = "prometheus")]
async fn metrics(Extract(app): Extract<AppState>, headers: HeaderMap) -> Response {
    use crate::metrics;

    // Prometheus asks for OpenMetrics in its Accept header; anything else
    // (curl, older scrapers) gets the classic text format.
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (encoded, content_type) = if openmetrics {
        (
            metrics::encode_openmetrics(&app.registry),
            metrics::OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            metrics::encode_prometheus_text(&app.registry),
            metrics::PROMETHEUS_TEXT_CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(error) => {
            tracing::error!(target: "supervised", %error, "encoding the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

// ---- serve -------------------------------------------------------------------

/// Whether [`serve`] requires a bearer token.
#[derive(Clone)]
enum Auth {
    Bearer(Arc<[u8]>),
    None,
}

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
/// let open = ServeOptions::no_auth(shutdown).registry(supervised_core::Registry::new());
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
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
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
    let mut app = router_with(registry, router_options);
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

async fn require_bearer(
    Extract(token): Extract<Arc<[u8]>>,
    request: Request,
    next: Next,
) -> Response {
    if bearer_matches(request.headers(), &token) {
        next.run(request).await
    } else {
        tracing::debug!(target: "supervised", path = %request.uri().path(), "rejected a request without a valid bearer token");
        unauthorized()
    }
}

/// Whether `Authorization: Bearer <token>` carries `expected`. The scheme is
/// case-insensitive (RFC 9110); the token is compared in constant time.
fn bearer_matches(headers: &HeaderMap, expected: &[u8]) -> bool {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let presented = &rest[start..];
    !presented.is_empty() && bool::from(presented.ct_eq(expected))
}

#[derive(Serialize)]
struct ErrorJson {
    error: &'static str,
    message: &'static str,
}

fn unauthorized() -> Response {
    let body = ErrorJson {
        error: "unauthorized",
        message: "a valid bearer token is required (Authorization: Bearer <token>)",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, r#"Bearer realm="supervised""#)],
        Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_parsing() {
        let t = b"tok3n";
        assert!(bearer_matches(&headers(&["Bearer tok3n"]), t));
        assert!(bearer_matches(&headers(&["bearer tok3n"]), t));
        assert!(bearer_matches(&headers(&["BEARER   tok3n"]), t));
        assert!(!bearer_matches(&headers(&[]), t));
        assert!(!bearer_matches(&headers(&["Bearer tok3"]), t));
        assert!(!bearer_matches(&headers(&["Bearer tok3nn"]), t));
        assert!(!bearer_matches(&headers(&["Basic tok3n"]), t));
        assert!(!bearer_matches(&headers(&["tok3n"]), t));
        assert!(!bearer_matches(&headers(&["Bearer "]), t));
        assert!(!bearer_matches(
            &headers(&["Bearer tok3n", "Bearer tok3n"]),
            t
        ));
        assert!(!bearer_matches(&headers(&["Bearer "]), b""));
    }
}
