//! Liveness and health over HTTP (cargo feature `http`), built on axum.
//!
//! [`router`] gives an [`axum::Router`](https://docs.rs/axum/0.8/axum/struct.Router.html) to merge into an application's own,
//! behind its own middleware (authentication above all: subsystem cadence
//! tells how tenants work). [`serve`] runs the same routes on a listener of
//! their own for programs without an HTTP server, and insists on being told
//! whether a bearer token guards them.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /admin/liveness` | 200, every subsystem's liveness as JSON (see below), or the ones a filter picks |
//! | `GET /admin/liveness/summary` | 200, counts by group and state, and the failed and stale names |
//! | `GET /admin/health` | 200 `{"status":"ok"}`, or 503 with the stale and failed names (and `below_min_healthy`: groups under their share) |
//! | `GET /admin/ready` | 200 `{"status":"ready"}`, or 503 `starting` (with the names waited for) or `draining` |
//! | `GET /metrics` | Prometheus metrics, with the `prometheus` feature (see [`metrics`](crate::metrics)) |
//!
//! The reports (`/admin/liveness`, `/metrics`) render one at a time:
//! rendering is synchronous CPU work, and a flood of report requests must
//! not take every worker from the supervised loops.
//! `/admin/health` does not wait for them.
//!
//! Every route answers `HEAD` as `GET` without the body; other methods get
//! 405 with `Allow`. Every answer carries `Cache-Control: no-store`. Under
//! [`serve`], other paths get 404 with a JSON error, and no answer echoes
//! anything of the request, except the name of the query parameter a 400
//! reports (JSON-escaped, at most 64 bytes).
//!
//! # `/admin/liveness`
//!
//! Every subsystem, keyed by name:
//!
//! ```json
//! {
//!   "healthy": true,
//!   "subsystems": {
//!     "platform": {
//!       "kind": "group",
//!       "group": null,
//!       "last_tick_at": null,
//!       "seconds_ago": null,
//!       "state": "running",
//!       "tick_seconds": null,
//!       "stale_after_seconds": null,
//!       "healthy": true,
//!       "stale": false,
//!       "advisory": false,
//!       "beats": 0,
//!       "restarts": 0,
//!       "consecutive_failures": 0,
//!       "next_restart_at": null,
//!       "leader": null,
//!       "lease": null
//!     },
//!     "scheduler": {
//!       "kind": "subsystem",
//!       "group": "platform",
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
//!       "next_restart_at": null,
//!       "leader": true,
//!       "lease": {
//!         "name": "scheduler",
//!         "holder": "replica-a",
//!         "epoch": 42,
//!         "expires_in_seconds": 11.2
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! - `last_tick_at` and `seconds_ago`: the last beat as an RFC 3339 UTC
//!   timestamp (whole seconds) and the whole seconds since then; both `null`
//!   for a subsystem that never beat. (The Rust API says "beat"; these keys
//!   keep the names that existing dashboards and alerts are written against.)
//! - `kind` is `subsystem` for a loop and `group` for a
//!   [`Group`](crate::Group), which is listed under its path (such as
//!   `platform/channels`); for a group, `restarts` counts the group's
//!   restarts.
//! - `group` is the path of the group the entry runs in, `null` outside
//!   any group (and for a root group).
//! - `state` is one of `running`, `backing_off`, `stopped`, `failed`,
//!   `standby`, `paused`. `standby` is a lease-gated subsystem ([`crate::lease`])
//!   whose lease another replica holds: healthy, never stale, ready.
//!   `paused` is a group's child stopped by
//!   [`GroupHandle::pause`](crate::GroupHandle::pause): healthy, never
//!   stale, not waited for.
//! - `leader` and `lease` are `null` unless the subsystem is lease-gated.
//!   Then `leader` says whether this process holds the lease, and `lease`
//!   is `{"name", "holder", "epoch", "expires_in_seconds"}`: the holder
//!   (this process's holder id while leader, another replica's while it
//!   stands by, `null` when unknown), the holder's fencing token, and how
//!   long its grant has left (for this process's own grant, counted from
//!   the last confirmed renewal).
//! - A sharded group's entry ([`Group::shards`](crate::Group::shards)) adds
//!   `"shards": {"buckets", "held", "replicas", "acquired", "released"}`:
//!   the number of buckets, those this replica holds, the ids of the live
//!   replicas, and how many buckets this replica acquired and released
//!   since it started. Its children's entries carry their bucket's grant
//!   as `lease` (`lease::epoch()` inside them is its epoch); a child whose
//!   bucket another replica holds has no entry here.
//! - `tick_seconds` and `stale_after_seconds` are `null` without a declared tick.
//! - `next_restart_at` is set only while `backing_off`.
//! - The top-level `healthy` is true when every subsystem that is not
//!   advisory is healthy.
//! - `last_panic` (`{"message", "location", "at"}` or `null`) and
//!   `last_error` (string or `null`) are served only after
//!   [`RouterOptions::expose_failure_details`]: panic messages and error
//!   texts can hold tenant data.
//!
//! The registry keeps monotonic [`tokio::time::Instant`](https://docs.rs/tokio/1/tokio/time/struct.Instant.html)s only. Timestamps
//! are derived when the answer is rendered: `SystemTime::now()` minus the
//! distance of the instant from `Instant::now()`.
//!
//! # Filters and pages
//!
//! With a query string, `/admin/liveness` answers the entries that match
//! every parameter given, in the same shape, sorted by name:
//!
//! | parameter | matches |
//! | --- | --- |
//! | `group=app/tenants` | the group `app/tenants`, its children, and the groups nested under it (not `app/tenants-old`) |
//! | `state=failed` | any of the states given: repeat it or separate them with commas (`state=failed,backing_off`) |
//! | `stale=true` | stale entries (`false`: fresh ones) |
//! | `prefix=tenant/` | names that start with it |
//! | `limit=100` | at most that many entries, from 1 to 10,000 |
//! | `after=tenant/0099` | names that sort after it: the `next_after` of the previous page |
//!
//! A filtered answer adds `next_after`: the name to pass as `after` for the
//! next page, `null` on the last one. Its `healthy` speaks of the matching
//! entries only (all of them, not only this page's). Without a query
//! string the answer is every entry, in exactly the shape above.
//!
//! ```text
//! GET /admin/liveness?group=platform/tenants&state=failed,backing_off&limit=50
//! ```
//!
//! An unknown parameter, a malformed value or a repeated one (other than
//! `state`) is answered 400, never ignored:
//!
//! ```json
//! {"error": "bad_parameter", "parameter": "stat", "message": "unknown parameter; this route takes group, state, stale, prefix, limit, after"}
//! ```
//!
//! # `/admin/liveness/summary`
//!
//! Counts for a fleet too large to list: the entries, those failed or stale
//! (`unhealthy`, each once), every group with its entries by
//! state, and the first failed and stale names (sorted, at most `limit`,
//! default 100) with their totals. It takes the same filters, except
//! `after`. `group` is `null` for the entries in no group (a root group's
//! own entry among them); each group counts the entries directly in it.
//!
//! ```json
//! {
//!   "healthy": false,
//!   "subsystems": 100004,
//!   "unhealthy": 12,
//!   "groups": [
//!     {"group": null, "subsystems": 3,
//!      "states": {"running": 3, "backing_off": 0, "stopped": 0, "failed": 0, "standby": 0, "paused": 0}, "stale": 0},
//!     {"group": "platform/tenants", "subsystems": 100001,
//!      "states": {"running": 99990, "backing_off": 1, "stopped": 0, "failed": 10, "standby": 0, "paused": 0}, "stale": 2}
//!   ],
//!   "failed": {"total": 10, "names": ["tenant/00017", "tenant/04410"]},
//!   "stale": {"total": 2, "names": ["tenant/00731", "tenant/52001"]}
//! }
//! ```
//!
//! # `/admin/` (the status page)
//!
//! Only with [`RouterOptions::status_page`]: a self-contained HTML page
//! (with its script and style at `/admin/status.js` and
//! `/admin/status.css`) that polls every second and loads only what it
//! shows, however large the registry: the summary, the failed or
//! backing-off entries and the stale ones (at most 100 of each list) first,
//! then one page of at most 200 entries under a filter (group, state, name
//! prefix).
//!
//! # `/admin/health`
//!
//! The strict probe for orchestrators: 200 `{"status":"ok"}` when no
//! subsystem is `failed` and every one that declares a tick is fresh,
//! otherwise 503 `{"status":"unhealthy","stale":[...],"failed":[...]}`.
//! Subsystems marked advisory ([`crate::Subsystem::set_advisory`]) are
//! reported by `/admin/liveness` but never fail this probe, so an outage of
//! a dependency they watch cannot cause a restart cascade.
//!
//! # `/admin/ready`
//!
//! The readiness probe, for load balancers: whether to send this process
//! traffic ([`Registry::readiness`], see [`Readiness`](crate::Readiness)).
//! 503 `{"status":"starting","waiting":[...]}` until every critical
//! subsystem that declares a tick has beaten once, then 200
//! `{"status":"ready"}`, and 503 `{"status":"draining"}` from the moment a
//! shutdown begins. Point Kubernetes' `readinessProbe` here and its
//! `livenessProbe` at `/admin/health`.

// The files (a map for readers of the source, not the public docs):
// - this file: the paths, `RouterOptions` and the router builders;
// - `reports.rs`: the handlers and their JSON shapes, each computed from one
//   `Registry::snapshot` (or, filtered, one pass of the registry's
//   `query.rs`) when the request arrives;
// - `query.rs`: the liveness report's query parameters, parsed strictly;
// - `serve.rs`: `serve` and `ServeOptions`, a listener of its own;
// - `accept.rs`: `serve`'s accept loop, with the bounds that keep hostile
//   clients from holding the process (connection cap, header and idle
//   timeouts, a shutdown deadline); `idle.rs` is its silence limit;
// - `auth.rs`: the bearer-token check `serve` puts in front of the routes.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

use crate::{registry, Registry};

mod accept;
mod auth;
mod idle;
mod query;
mod reports;
mod serve;

pub use serve::{serve, serve_listener, ServeOptions, MIN_BEARER_TOKEN_LEN};

/// The path of the liveness report.
pub const LIVENESS_PATH: &str = "/admin/liveness";
/// The path of the liveness summary: counts by group and state.
pub const LIVENESS_SUMMARY_PATH: &str = "/admin/liveness/summary";
/// The path of the readiness probe.
pub const READY_PATH: &str = "/admin/ready";
/// The path of the strict health probe.
pub const HEALTH_PATH: &str = "/admin/health";
/// The path of the status page ([`RouterOptions::status_page`]).
pub const STATUS_PATH: &str = "/admin/";
/// The status page's script and style, beside it.
const STATUS_SCRIPT_PATH: &str = "/admin/status.js";
const STATUS_STYLE_PATH: &str = "/admin/status.css";
/// The path of the Prometheus metrics (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub const METRICS_PATH: &str = "/metrics";

/// Which registry the routes report and what they serve beyond the
/// defaults; [`RouterOptions::router`] builds them.
///
/// ```
/// use supervised::http::RouterOptions;
/// use supervised::Registry;
///
/// let registry = Registry::new();
/// let routes: axum::Router = RouterOptions::new()
///     .registry(&registry)
///     .expose_failure_details(true)
///     .router();
/// # let _ = routes;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    expose_failure_details: bool,
    pub(crate) status_page: bool,
    pub(crate) registry: Option<Registry>,
}

impl RouterOptions {
    /// The defaults: the process-wide registry; panic messages and error
    /// texts are not served; no status page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports `registry` instead of the process-wide one, as
    /// [`Group::registry`](crate::Group::registry) and
    /// [`Supervisor::registry`](crate::Supervisor::registry) do.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The routes with these options, for any state type `S` of the
    /// application's router (they carry their own state), so they merge
    /// before or after the application's `with_state`.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use supervised::http::RouterOptions;
    ///
    /// #[derive(Clone)]
    /// struct AppState { greeting: &'static str }
    ///
    /// let app: Router = Router::new()
    ///     .route("/", get(|axum::extract::State(s): axum::extract::State<AppState>| async move { s.greeting }))
    ///     .merge(RouterOptions::new().status_page(true).router())
    ///     .with_state(AppState { greeting: "hello" });
    /// # let _ = app;
    /// ```
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        routes(self).layer(middleware::map_response(no_store))
    }

    /// Serves each subsystem's last panic (message, location, time) and last
    /// error text in `/admin/liveness`. Off by default: they can hold tenant
    /// data, so turn this on only behind authentication you trust.
    pub fn expose_failure_details(mut self, expose: bool) -> Self {
        self.expose_failure_details = expose;
        self
    }

    /// Serves a status page at `GET /admin/` (default: off): one small,
    /// self-contained HTML page (no CDN, no framework, works offline) that
    /// polls every second. It shows each group's children counted by state,
    /// the failed and stale entries first, then a page of entries with their
    /// state, last beat and health, coloured, under a filter (group, state,
    /// name prefix; also read from the page's own query string, as in
    /// `/admin/?group=platform/tenants&state=failed`). It loads only what
    /// it shows, so it stays fast with 100,000 entries.
    ///
    /// The page, its script (`/admin/status.js`) and its style
    /// (`/admin/status.css`) hold no data, so [`serve`] answers them
    /// without the bearer token; the page then asks for the token, keeps it
    /// in the tab's session storage and sends it as an `Authorization`
    /// header to `/admin/liveness` (never in the URL). Without one it says
    /// "Token required". Its Content-Security-Policy allows only its own
    /// origin's script and style (no `'unsafe-inline'`). It is served at
    /// `/admin/` only (with the slash), so it finds `liveness` beside it
    /// when the routes are nested under a prefix.
    ///
    /// ```
    /// let options = supervised::http::RouterOptions::new().status_page(true);
    /// # let _ = options;
    /// ```
    pub fn status_page(mut self, serve: bool) -> Self {
        self.status_page = serve;
        self
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Registry,
    pub(crate) options: RouterOptions,
    /// One report rendered at a time (see `reports.rs`).
    pub(crate) rendering: Arc<Semaphore>,
}

/// The routes over the process-wide [`registry()`], with default options,
/// for an application router of any state type.
///
/// Merge it into the application's router, behind its own authentication,
/// before or after the application's `with_state`:
///
/// ```
/// use axum::Router;
///
/// #[derive(Clone)]
/// struct AppState;
///
/// let app: Router = Router::new()
///     .nest("/api", Router::new())
///     .merge(supervised::http::router())
///     .with_state(AppState);
/// # let _ = app;
/// ```
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    RouterOptions::new().router()
}

/// The routes over `registry`, with default options.
///
/// ```
/// # #![allow(deprecated)]
/// let registry = supervised::Registry::new();
/// let app: axum::Router = supervised::http::router_for(&registry);
/// # let _ = app;
/// ```
#[deprecated(
    since = "0.1.0",
    note = "use `RouterOptions::new().registry(&registry).router()`: one way to choose a registry"
)]
pub fn router_for<S>(registry: &Registry) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    RouterOptions::new().registry(registry).router()
}

/// The routes over `registry`, with `options`.
///
/// ```
/// # #![allow(deprecated)]
/// use supervised::http::{router_with, RouterOptions};
///
/// let registry = supervised::Registry::new();
/// let app = router_with(&registry, RouterOptions::new().expose_failure_details(true));
/// # let _: axum::Router = app;
/// ```
#[deprecated(
    since = "0.1.0",
    note = "use `options.registry(&registry).router()`: one way to choose a registry"
)]
pub fn router_with<S>(registry: &Registry, options: RouterOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    options.registry(registry).router()
}

/// The routes alone, with no fallback (an application merging them keeps
/// its own) and no layer, for [`RouterOptions::router`] and [`serve`].
fn routes<S>(options: RouterOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let registry = options
        .registry
        .clone()
        .unwrap_or_else(|| registry().clone());
    let router = Router::new()
        .route(LIVENESS_PATH, get(reports::liveness))
        .route(LIVENESS_SUMMARY_PATH, get(reports::summary))
        .route(HEALTH_PATH, get(reports::health))
        .route(READY_PATH, get(reports::ready));
    #[cfg(feature = "prometheus")]
    let router = router.route(METRICS_PATH, get(reports::metrics));
    let router = if options.status_page {
        router
            .route(STATUS_PATH, get(reports::status_page))
            .route(STATUS_SCRIPT_PATH, get(reports::status_script))
            .route(STATUS_STYLE_PATH, get(reports::status_style))
    } else {
        router
    };
    router.with_state(AppState {
        registry,
        options,
        rendering: Arc::new(Semaphore::new(1)),
    })
}

/// Marks every answer uncacheable: liveness is only true now.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
