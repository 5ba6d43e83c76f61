//! The admin server against hostile and careless clients, over real
//! loopback sockets with short limits, so each case takes a second or two:
//! shutdown never waits on a client, silent connections are closed, a flood
//! cannot take the probe down, the token never shows, and a report of a
//! huge registry renders without stalling the runtime's other tasks.
#![cfg(feature = "http")]

mod common;
mod http_support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use http_support::{request, Reply, Server};
use hyper::{Method, StatusCode};
use serde_json::Value;
use supervised_core::http::{serve_listener, ServeOptions};
use supervised_core::{CancellationToken, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A token long enough for `serve`.
const TOKEN: &str = "hostile-test-token-0123456789";

/// Limits short enough for a test; each case overrides what it probes.
fn short(options: ServeOptions) -> ServeOptions {
    options
        .header_read_timeout(Duration::from_millis(400))
        .idle_timeout(Duration::from_millis(600))
        .shutdown_timeout(Duration::from_millis(300))
}

/// Reads until the server closes the connection, or `limit` passes; how
/// long that took, or `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sink = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| start.elapsed())
}

#[tokio::test]
async fn shutdown_with_half_open_requests_returns_within_the_shutdown_timeout() {
    let registry = Registry::new();
    // The header timeout is long: only the shutdown deadline can end these.
    let server = Server::start(|s| {
        short(ServeOptions::no_auth(s).registry(&registry))
            .header_read_timeout(Duration::from_secs(60))
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // The headers never end: no blank line.
        stream
            .write_all(b"GET /admin/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(stream);
    }
    // Every connection was accepted and is waiting for its headers.
    let answered = server.get("/admin/health").await;
    assert_eq!(answered.status, StatusCode::OK);

    let start = Instant::now();
    server.stop().await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?} with 50 half-open requests held (shutdown_timeout 300ms)"
    );
    // And the held connections are closed, not leaked.
    for stream in &mut held {
        assert!(closed_within(stream, Duration::from_secs(1))
            .await
            .is_some());
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_by_the_header_read_timeout() {
    let registry = Registry::new();
    let server = Server::start(|s| {
        short(ServeOptions::no_auth(s).registry(&registry)).idle_timeout(Duration::from_secs(60))
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a connection that sends nothing is closed");
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_closed_by_the_idle_timeout() {
    let registry = Registry::new();
    let server = Server::start(|s| {
        short(ServeOptions::no_auth(s).registry(&registry))
            .header_read_timeout(Duration::from_secs(60))
    })
    .await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    // Complete headers promising a body that never comes.
    stalled
        .write_all(b"POST /admin/health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        .await
        .unwrap();
    let took = closed_within(&mut stalled, Duration::from_secs(5))
        .await
        .expect("a stalled body is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_it_goes_quiet() {
    let registry = Registry::new();
    let server = Server::start(|s| short(ServeOptions::no_auth(s).registry(&registry))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /admin/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then nothing more: closed by the limits, not left open.
    assert!(
        closed_within(&mut stream, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle kept-alive connection stayed open"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_past_max_connections_is_closed_at_once_and_the_probe_gets_through() {
    let registry = Registry::new();
    registry.subsystem("relay").beat();
    let server = Server::start(|s| {
        short(ServeOptions::no_auth(s).registry(&registry))
            .max_connections(20)
            .header_read_timeout(Duration::from_millis(800))
    })
    .await;
    // 20 idle connections fill the cap...
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // ...so the server is at its cap; give the accept loop the 20.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...and ten more are closed at once.
    for _ in 0..10 {
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        let took = closed_within(&mut extra, Duration::from_millis(500))
            .await
            .expect("a connection past max_connections is closed at once");
        assert!(took < Duration::from_millis(500));
    }
    // Once the idle ones time out (800 ms), the very first probe gets in,
    // though the accept loop was asleep in `accept` while they ended.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"GET /admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), first.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("the first probe after the timeouts is served, not refused");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // And probes keep getting answers while the flood is still held.
    let start = Instant::now();
    let health = loop {
        let attempt = tokio::time::timeout(Duration::from_secs(1), async {
            let mut probe = TcpStream::connect(server.addr).await.ok()?;
            probe
                .write_all(b"GET /admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut answer = Vec::new();
            probe.read_to_end(&mut answer).await.ok()?;
            (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
        })
        .await;
        if let Ok(Some(answer)) = attempt {
            break answer;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the probe never got through"
        );
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(flood);
    server.stop().await;
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {:?}", reply.body))
}

#[tokio::test]
async fn every_answer_is_no_store_and_unknown_routes_get_json_errors() {
    let registry = Registry::new();
    let server =
        Server::start(|s| short(ServeOptions::bearer_token(TOKEN, s).registry(&registry))).await;
    let auth = format!("Bearer {TOKEN}");
    let authed = [("authorization", auth.as_str())];

    let head = server.request(Method::HEAD, "/admin/health", &authed).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());

    let missing = server
        .request(Method::GET, "/admin/nope?echo=%3Cscript%3E", &authed)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&missing)["error"], "not_found");
    assert!(
        !missing.body.contains("nope")
            && !missing.body.contains("script")
            && !missing.body.contains("echo")
    );

    let post = server
        .request(Method::POST, "/admin/liveness", &authed)
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = post.header("allow").expect("405 carries Allow");
    assert!(
        allow.contains("GET") && allow.contains("HEAD"),
        "Allow: {allow}"
    );

    let unauthorized = server.get("/admin/health").await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);

    for reply in [&head, &missing, &post, &unauthorized] {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn short_and_missing_tokens_are_refused_with_a_way_to_make_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve_listener(
        listener,
        ServeOptions::bearer_token("s3cret", CancellationToken::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(
        error.to_string().contains("openssl rand -hex 32"),
        "{error}"
    );

    let var = "SUPERVISED_HOSTILE_TEST_UNSET_TOKEN";
    let unset = ServeOptions::bearer_token_from_env(var, CancellationToken::new()).unwrap_err();
    assert_eq!(unset.kind(), ErrorKind::InvalidInput);
    assert!(unset.to_string().contains(var) && unset.to_string().contains("not set"));

    let empty_var = "SUPERVISED_HOSTILE_TEST_EMPTY_TOKEN";
    // No other test reads this variable.
    std::env::set_var(empty_var, "");
    let empty =
        ServeOptions::bearer_token_from_env(empty_var, CancellationToken::new()).unwrap_err();
    assert!(empty.to_string().contains(empty_var) && empty.to_string().contains("empty"));

    for zero in [
        ServeOptions::no_auth(CancellationToken::new()).header_read_timeout(Duration::ZERO),
        ServeOptions::no_auth(CancellationToken::new()).idle_timeout(Duration::ZERO),
        ServeOptions::no_auth(CancellationToken::new()).max_connections(0),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = serve_listener(listener, zero).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_logs_or_debug_output() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    let options =
        short(ServeOptions::bearer_token(TOKEN, CancellationToken::new()).registry(&registry));
    let debug = format!("{options:?}");
    assert!(!debug.contains(TOKEN), "{debug}");

    let server =
        Server::start(|s| short(ServeOptions::bearer_token(TOKEN, s).registry(&registry))).await;
    let wrong = format!("Bearer {TOKEN}x");
    for auth in [wrong.as_str(), "Basic Zm9v", "Bearer short"] {
        let reply = request(
            server.addr,
            Method::GET,
            "/admin/liveness",
            &[("authorization", auth)],
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(!reply.body.contains(TOKEN));
    }
    let ok = server.get_with_token("/admin/liveness", TOKEN).await;
    assert_eq!(ok.status, StatusCode::OK);
    server.stop().await;

    let all = events.all();
    assert!(
        all.iter()
            .any(|e| e.message() == "serving liveness over HTTP"),
        "the capture saw the server's events"
    );
    for event in &all {
        for (name, value) in &event.fields {
            assert!(
                !value.contains(TOKEN),
                "field `{name}` shows the token: {event:?}"
            );
        }
    }
}

/// A token file's trailing newline (as `openssl rand -hex 32 > admin.token`
/// and `kubectl create secret --from-file` leave it) is trimmed on both
/// paths that read a token, and a token that still carries one is refused
/// at start rather than answering 401 to the right token forever.
#[tokio::test]
async fn a_token_with_a_trailing_newline_is_trimmed_when_read_and_refused_when_given() {
    let with_newline = format!("{TOKEN}\n");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve_listener(
        listener,
        ServeOptions::bearer_token(with_newline.clone(), CancellationToken::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("trailing newline"), "{error}");

    let var = "SUPERVISED_HOSTILE_TEST_NEWLINE_TOKEN";
    // No other test reads this variable.
    std::env::set_var(var, &with_newline);
    let file = std::env::temp_dir().join(format!("supervised-token-{}", std::process::id()));
    std::fs::write(&file, &with_newline).unwrap();
    for from_file in [false, true] {
        let registry = Registry::new();
        let server = Server::start(|s| {
            let options = if from_file {
                ServeOptions::bearer_token_from_file(&file, s)
            } else {
                ServeOptions::bearer_token_from_env(var, s)
            };
            short(options.unwrap().registry(&registry))
        })
        .await;
        let reply = server.get_with_token("/admin/liveness", TOKEN).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "from_file {from_file}: {reply:?}"
        );
        server.stop().await;
    }
    let _ = std::fs::remove_file(&file);
    let missing =
        ServeOptions::bearer_token_from_file("/nonexistent/admin.token", CancellationToken::new())
            .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/admin.token"),
        "{missing}"
    );
}

/// A report renders off the runtime's workers: on a current-thread
/// runtime, a ticking task goes on ticking while `/admin/liveness` of
/// 40,000 entries renders (it takes most of a second in a debug build,
/// and the ticker had to wait for all of it when the render ran on the
/// runtime's one thread). A shard keeper's renewal is such a task.
#[tokio::test(flavor = "current_thread")]
async fn a_report_renders_while_the_runtime_runs_other_tasks() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use supervised_core::http::RouterOptions;
    use tower::ServiceExt;

    let registry = Registry::with_max_subsystems(50_000);
    for i in 0..40_000 {
        registry.subsystem(&format!("tenant/{i:05}")).beat();
    }
    let app: axum::Router = RouterOptions::new().registry(&registry).router();
    let ticks = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // Let the ticker start, so only what happens during the request counts.
    while ticks.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    let request = axum::http::Request::get("/admin/liveness")
        .body(axum::body::Body::empty())
        .unwrap();
    let before = ticks.load(Ordering::Relaxed);
    let began = Instant::now();
    let response = app.oneshot(request).await.unwrap();
    let took = began.elapsed();
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    assert_eq!(response.status(), StatusCode::OK);
    // At least a tick every 20 ms of the render's time (at 1 ms a tick).
    let expected = (took.as_millis() / 20) as u64;
    assert!(
        expected >= 2 && during >= expected,
        "{during} ticks while the report took {took:?}"
    );
}
