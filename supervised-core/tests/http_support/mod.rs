//! A real HTTP/1 client over loopback and a server handle, for the `http`
//! and `metrics` behaviour tests.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use supervised_core::http::{serve_listener, ServeOptions};
use supervised_core::CancellationToken;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A `serve_listener` task on a free loopback port.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Starts serving with `options(shutdown)`.
    pub async fn start(options: impl FnOnce(CancellationToken) -> ServeOptions) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_listener(listener, options(shutdown.clone())));
        Server {
            addr,
            shutdown,
            task,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, &[]).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.request(
            Method::GET,
            path,
            &[(AUTHORIZATION.as_str(), auth.as_str())],
        )
        .await
    }

    pub async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.addr, method, path, headers).await
    }

    /// Cancels the token and waits for the server to return `Ok`.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Reads `response` to the end, whatever its body type.
    pub async fn read<B>(response: hyper::Response<B>) -> Reply
    where
        B: hyper::body::Body,
        B::Error: std::fmt::Debug,
    {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// `GET path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, Method::GET, path, &[]).await
}

/// One request on its own connection, read to the end.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    // No pooling: each request on its own connection, so shutdown never
    // waits for an idle keep-alive connection of a client still alive.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    Reply::read(response).await
}

/// `GET path` answered by the router itself, with no server and so no
/// timers of its own: what paused-time tests use (a real server's timers
/// would let tokio's auto-advance run the clock away).
pub async fn route(registry: &supervised_core::Registry, path: &str) -> Reply {
    use tower::ServiceExt;

    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = supervised_core::http::RouterOptions::new()
        .registry(registry)
        .router::<()>()
        .oneshot(request)
        .await
        .unwrap();
    Reply::read(response).await
}
