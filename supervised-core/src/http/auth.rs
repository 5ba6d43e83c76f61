//! The bearer-token check in front of [`serve`](super::serve)'s routes.

use std::sync::Arc;

use axum::extract::{Request, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use subtle::ConstantTimeEq;

/// Whether [`serve`](super::serve) requires a bearer token.
#[derive(Clone)]
pub(super) enum Auth {
    Bearer(Arc<[u8]>),
    None,
}

pub(super) async fn require_bearer(
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
    use axum::http::HeaderValue;

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
