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

/// The bearer check's settings.
#[derive(Clone)]
pub(super) struct BearerGate {
    pub(super) token: Arc<[u8]>,
    /// `/admin/health` and `/admin/ready` answer without the token.
    pub(super) open_probes: bool,
    /// The status page (static, no data) answers without the token.
    pub(super) status_page: bool,
}

impl BearerGate {
    /// Whether `path` is exempt: one of the two probes, exactly, when
    /// they are open; the status page when it is served.
    fn exempts(&self, path: &str) -> bool {
        (self.open_probes && (path == super::HEALTH_PATH || path == super::READY_PATH))
            || (self.status_page
                && (path == super::STATUS_PATH
                    || path == super::STATUS_SCRIPT_PATH
                    || path == super::STATUS_STYLE_PATH))
    }
}

pub(super) async fn require_bearer(
    Extract(gate): Extract<BearerGate>,
    request: Request,
    next: Next,
) -> Response {
    if gate.exempts(request.uri().path()) || bearer_matches(request.headers(), &gate.token) {
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
    use axum::http::HeaderValue;
    use proptest::prelude::*;

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

    /// A plain reading of RFC 9110 and RFC 6750, without the constant-time
    /// comparison: exactly one `Authorization` header, the scheme (the bytes
    /// before the first space) `Bearer` in any case, then spaces, then a
    /// non-empty token equal to the expected one.
    fn reference(values: &[Vec<u8>], expected: &[u8]) -> bool {
        let [value] = values else { return false };
        let Some(space) = value.iter().position(|&b| b == b' ') else {
            return false;
        };
        let scheme = String::from_utf8_lossy(&value[..space]).to_ascii_lowercase();
        let token: &[u8] = {
            let mut rest = &value[space..];
            while let [b' ', tail @ ..] = rest {
                rest = tail;
            }
            rest
        };
        scheme == "bearer" && !token.is_empty() && token == expected
    }

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        let scheme = prop_oneof![
            Just(b"Bearer".to_vec()),
            Just(b"bearer".to_vec()),
            Just(b"BeArEr".to_vec()),
            Just(b"Basic".to_vec()),
            Just(b"Bearer\t".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        let spaces = proptest::collection::vec(Just(b' '), 0..4);
        let token = prop_oneof![
            Just(b"tok3n-0123456789abcdef".to_vec()),
            Just(b"tok3n-0123456789abcdeF".to_vec()),
            Just(b"tok3n-0123456789abcde".to_vec()),
            Just(b"tok3n-0123456789abcdef ".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..24),
        ];
        (scheme, spaces, token).prop_map(|(scheme, spaces, token)| {
            let mut value = scheme;
            value.extend(spaces);
            value.extend(token);
            value
        })
    }

    proptest::proptest! {
        #[test]
        fn bearer_parsing_matches_the_reference(
            values in proptest::collection::vec(header_value(), 0..3),
        ) {
            let expected = b"tok3n-0123456789abcdef";
            // Only bytes a header can carry reach the check.
            let Ok(parsed) = values
                .iter()
                .map(|v| HeaderValue::from_bytes(v))
                .collect::<Result<Vec<_>, _>>()
            else {
                return Ok(());
            };
            let mut map = HeaderMap::new();
            for value in parsed {
                map.append(header::AUTHORIZATION, value);
            }
            prop_assert_eq!(bearer_matches(&map, expected), reference(&values, expected));
        }
    }
}
