//! The handlers of `/admin/liveness`, `/admin/health`, `/admin/ready` and
//! `/metrics`, and
//! the JSON they answer with (documented on the `http` module).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State as Extract};
use axum::http::StatusCode;
#[cfg(feature = "prometheus")]
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::query::{self, BadParameter, Query, Route};
use super::{AppState, RouterOptions};
use crate::registry::{Health, WallClock};
use crate::{Readiness, SubsystemState, SubsystemStatus};

// ---- /admin/liveness ---------------------------------------------------------

#[derive(Serialize)]
struct Liveness {
    healthy: bool,
    subsystems: BTreeMap<String, SubsystemJson>,
    /// Only with parameters: the `after` of the next page, `null` on the
    /// last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<Option<String>>,
}

#[derive(Serialize)]
struct SubsystemJson {
    kind: &'static str,
    group: Option<String>,
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
    /// `null` unless lease-gated.
    leader: Option<bool>,
    lease: Option<LeaseJson>,
    /// Only on a sharded group's entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<ShardsJson>,
}

#[derive(Serialize)]
struct ShardsJson {
    buckets: u32,
    held: Vec<u32>,
    replicas: Vec<String>,
    acquired: u64,
    released: u64,
}

#[derive(Serialize)]
struct LeaseJson {
    name: String,
    holder: Option<String>,
    epoch: Option<u64>,
    expires_in_seconds: Option<f64>,
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
            kind: s.kind.as_str(),
            group: s.group.clone(),
            last_tick_at: s.last_beat.map(|t| clock.rfc3339(t)),
            seconds_ago: s.since_last_beat.map(|d| d.as_secs()),
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
            leader: s.lease.as_ref().map(|l| l.leader),
            lease: s.lease.as_ref().map(|l| LeaseJson {
                name: l.name.clone(),
                holder: l.holder.clone(),
                epoch: l.epoch,
                expires_in_seconds: l.expires_in.map(|d| d.as_secs_f64()),
            }),
            shards: s.shards.as_ref().map(|shards| ShardsJson {
                buckets: shards.buckets,
                held: shards.held.clone(),
                replicas: shards.replicas.clone(),
                acquired: shards.acquired,
                released: shards.released,
            }),
        }
    }
}

pub(super) async fn liveness(Extract(app): Extract<AppState>, RawQuery(raw): RawQuery) -> Response {
    let query = match query::parse(raw.as_deref(), Route::Liveness) {
        Ok(query) => query,
        Err(bad) => return bad_parameter(bad),
    };
    // Rendering is synchronous CPU work: one at a time, so a flood of
    // report requests holds one thread, and off the runtime's workers.
    let Ok(_rendering) = Arc::clone(&app.rendering).acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    off_workers(move || liveness_of(&app, &query)).await
}

/// The answer of `/admin/liveness` to `query`.
fn liveness_of(app: &AppState, query: &Query) -> Response {
    let clock = WallClock::now();
    if *query == Query::default() {
        // Every entry, in the shape that came before the parameters.
        let snapshot = app.registry.snapshot();
        let body = Liveness {
            healthy: Health::of(&snapshot).is_ok(),
            subsystems: snapshot
                .iter()
                .map(|s| (s.name.clone(), SubsystemJson::new(s, &clock, &app.options)))
                .collect(),
            next_after: None,
        };
        return Json(body).into_response();
    }
    let page = app
        .registry
        .page(&query.filter, query.after.as_deref(), query.limit);
    let body = Liveness {
        healthy: page.healthy,
        subsystems: page
            .statuses
            .iter()
            .map(|s| (s.name.clone(), SubsystemJson::new(s, &clock, &app.options)))
            .collect(),
        next_after: Some(page.next),
    };
    Json(body).into_response()
}

/// Runs `render` on tokio's blocking pool rather than on a worker. A report
/// of 100,000 entries takes seconds to render in a debug build, and a task
/// woken onto the worker that renders waits for all of it (tokio's LIFO
/// slot cannot be stolen by another worker): a shard keeper that misses
/// its renewal for that long cancels every sharded child. A render that
/// panics is answered 500, and the panic stays in its thread.
async fn off_workers(render: impl FnOnce() -> Response + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(render).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(target: "supervised", %error, "rendering a report failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

// ---- /admin/liveness/summary -------------------------------------------------

#[derive(Serialize)]
struct SummaryJson {
    healthy: bool,
    subsystems: u64,
    unhealthy: u64,
    groups: Vec<GroupJson>,
    failed: NamesJson,
    stale: NamesJson,
}

#[derive(Serialize)]
struct GroupJson {
    group: Option<String>,
    subsystems: u64,
    states: BTreeMap<&'static str, u64>,
    stale: u64,
}

#[derive(Serialize)]
struct NamesJson {
    total: u64,
    names: Vec<String>,
}

pub(super) async fn summary(Extract(app): Extract<AppState>, RawQuery(raw): RawQuery) -> Response {
    let query = match query::parse(raw.as_deref(), Route::Summary) {
        Ok(query) => query,
        Err(bad) => return bad_parameter(bad),
    };
    let Ok(_rendering) = Arc::clone(&app.rendering).acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    off_workers(move || summary_of(&app, &query)).await
}

/// The answer of `/admin/liveness/summary` to `query`.
fn summary_of(app: &AppState, query: &Query) -> Response {
    let summary = app.registry.summary(
        &query.filter,
        query.limit.unwrap_or(query::DEFAULT_SUMMARY_NAMES),
    );
    let body = SummaryJson {
        healthy: summary.healthy,
        subsystems: summary.total,
        unhealthy: summary.unhealthy,
        groups: summary
            .groups
            .into_iter()
            .map(|(group, counts)| GroupJson {
                group: group.map(|g| g.to_string()),
                subsystems: counts.total,
                states: SubsystemState::ALL
                    .iter()
                    .map(|s| (s.as_str(), counts.states[usize::from(s.to_u8())]))
                    .collect(),
                stale: counts.stale,
            })
            .collect(),
        failed: NamesJson {
            total: summary.failed_total,
            names: summary.failed,
        },
        stale: NamesJson {
            total: summary.stale_total,
            names: summary.stale,
        },
    };
    Json(body).into_response()
}

#[derive(Serialize)]
struct BadParameterJson {
    error: &'static str,
    parameter: String,
    message: String,
}

/// 400 naming the parameter (cut to 64 bytes, JSON-escaped) and what is
/// wrong with it.
fn bad_parameter(bad: BadParameter) -> Response {
    let body = BadParameterJson {
        error: "bad_parameter",
        parameter: bad.parameter,
        message: bad.message,
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

// ---- /admin/ (the status page) ----------------------------------------------

/// The page, its script and its style: static, so they can be served
/// without a token. The script and style are files of the page's own
/// origin, so the policy allows them with `'self'`, not `'unsafe-inline'`.
const STATUS_HTML: &str = include_str!("status.html");
const STATUS_JS: &str = include_str!("status.js");
const STATUS_CSS: &str = include_str!("status.css");

/// Nothing but this page's own script and style files, and requests to
/// its own origin.
pub(super) const STATUS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CONTENT_SECURITY_POLICY, STATUS_CSP),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn status_page() -> Response {
    static_file("text/html; charset=utf-8", STATUS_HTML)
}

pub(super) async fn status_script() -> Response {
    static_file("text/javascript; charset=utf-8", STATUS_JS)
}

pub(super) async fn status_style() -> Response {
    static_file("text/css; charset=utf-8", STATUS_CSS)
}

// ---- /admin/health -----------------------------------------------------------

#[derive(Serialize)]
struct HealthJson {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Vec<String>>,
    /// Groups below their `min_healthy_percent`; only when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    below_min_healthy: Option<Vec<String>>,
}

pub(super) async fn health(Extract(app): Extract<AppState>) -> Response {
    let health = app.registry.health();
    if health.is_ok() {
        let body = HealthJson {
            status: "ok",
            stale: None,
            failed: None,
            below_min_healthy: None,
        };
        (StatusCode::OK, Json(body)).into_response()
    } else {
        tracing::debug!(
            target: "supervised", stale = ?health.stale,
            failed = ?health.failed,
            below_min_healthy = ?health.below_min_healthy,
            "health probe answered 503"
        );
        let below = health.below_min_healthy;
        let body = HealthJson {
            status: "unhealthy",
            stale: Some(health.stale),
            failed: Some(health.failed),
            below_min_healthy: (!below.is_empty()).then_some(below),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

// ---- /admin/ready ------------------------------------------------------------

#[derive(Serialize)]
struct ReadyJson {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<Vec<String>>,
}

pub(super) async fn ready(Extract(app): Extract<AppState>) -> Response {
    let readiness = app.registry.readiness();
    let status = readiness.as_str();
    let (code, waiting) = match readiness {
        Readiness::Ready => (StatusCode::OK, None),
        Readiness::Starting { waiting } => (StatusCode::SERVICE_UNAVAILABLE, Some(waiting)),
        _ => (StatusCode::SERVICE_UNAVAILABLE, None),
    };
    (code, Json(ReadyJson { status, waiting })).into_response()
}

// ---- /metrics ----------------------------------------------------------------

#[cfg(feature = "prometheus")]
pub(super) async fn metrics(Extract(app): Extract<AppState>, headers: HeaderMap) -> Response {
    // One report rendered at a time, off the workers, as for `liveness`.
    let Ok(_rendering) = Arc::clone(&app.rendering).acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    off_workers(move || metrics_of(&app, &headers)).await
}

/// The answer of `/metrics` to a scrape with `headers`.
#[cfg(feature = "prometheus")]
fn metrics_of(app: &AppState, headers: &HeaderMap) -> Response {
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

// ---- any other path (under `serve`) --------------------------------------------

/// 404 for any other path. It names no part of the request: nothing a
/// client sends is echoed back.
pub(super) async fn not_found() -> Response {
    let body = ErrorJson {
        error: "not_found",
        message: "no such route; the routes are /admin/liveness, /admin/liveness/summary, /admin/health, /admin/ready and /metrics",
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

#[derive(Serialize)]
struct ErrorJson {
    error: &'static str,
    message: &'static str,
}
