//! Behaviour of the `http` feature, over real HTTP on loopback.
#![cfg(feature = "http")]

mod http_support;

use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use supervised_core::http::{serve, serve_listener, RouterOptions, ServeOptions};
use supervised_core::{CancellationToken, Exit, Registry, SubsystemState, Supervisor};

use http_support::{route, Reply, Server};

fn json_of(reply: &Reply) -> Value {
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_str(&reply.body).unwrap()
}

fn parse_rfc3339(value: &Value) -> SystemTime {
    humantime::parse_rfc3339(value.as_str().expect("an RFC 3339 string")).unwrap()
}

fn seconds_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Runs a supervisor that gives up on its first failure, so the subsystem
/// ends in [`SubsystemState::Failed`].
async fn fail_for_good(registry: &Registry, name: &str, panic: bool) {
    let exit = Supervisor::new()
        .registry(registry)
        .max_restarts(0, Duration::from_secs(60))
        .run(CancellationToken::new(), name, move |_| async move {
            if panic {
                panic!("tenant 42 sent bad data: {{\"secret\": \"hunter2\"}}");
            }
            Err::<(), _>("tenant 42: row 7 is malformed")
        })
        .await;
    assert!(matches!(exit, Exit::GaveUp(_)));
    assert_eq!(registry.subsystem(name).state(), SubsystemState::Failed);
}

#[tokio::test]
async fn liveness_reports_every_subsystem_in_its_documented_shape() {
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_millis(5_500)), None);
    scheduler.beat();
    scheduler.beat();
    registry.subsystem("relay");

    let server = Server::start(|s| ServeOptions::no_auth(s).registry(&registry)).await;
    let reply = server.get("/admin/liveness").await;
    server.stop().await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = json_of(&reply);
    assert_eq!(body["healthy"], json!(true));
    let subsystems = body["subsystems"].as_object().unwrap();
    assert_eq!(subsystems.len(), 2);

    let s = &subsystems["scheduler"];
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "last_tick_at",
        "seconds_ago",
        "state",
        "tick_seconds",
        "stale_after_seconds",
        "healthy",
        "beats",
        "restarts",
        "consecutive_failures",
        "next_restart_at",
    ] {
        assert!(keys.contains(&key), "missing {key} in {s}");
    }
    assert!(!keys.contains(&"last_panic") && !keys.contains(&"last_error"));
    let last = parse_rfc3339(&s["last_tick_at"]);
    assert!(seconds_between(SystemTime::now(), last).abs() < 5.0);
    assert!(s["last_tick_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["seconds_ago"], json!(0));
    assert_eq!(s["state"], json!("running"));
    assert_eq!(s["tick_seconds"], json!(5.5));
    assert_eq!(s["stale_after_seconds"], json!(11.0));
    assert_eq!(s["healthy"], json!(true));
    assert_eq!(s["stale"], json!(false));
    assert_eq!(s["advisory"], json!(false));
    assert_eq!(s["beats"], json!(2));
    assert_eq!(s["restarts"], json!(0));
    assert_eq!(s["consecutive_failures"], json!(0));
    assert_eq!(s["next_restart_at"], Value::Null);

    let r = &subsystems["relay"];
    assert_eq!(r["last_tick_at"], Value::Null);
    assert_eq!(r["seconds_ago"], Value::Null);
    assert_eq!(r["tick_seconds"], Value::Null);
    assert_eq!(r["stale_after_seconds"], Value::Null);
    assert_eq!(r["beats"], json!(0));
    assert_eq!(r["healthy"], json!(true));
}

#[tokio::test]
async fn backing_off_subsystem_shows_its_restart_and_next_restart_at() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new()
        .registry(&registry)
        .initial_backoff(Duration::from_secs(60))
        .jitter(false);
    let sub = supervisor.register("flaky");
    let run = tokio::spawn({
        let cancel = cancel.clone();
        let sub = sub.clone();
        async move {
            supervisor
                .run_registered(cancel, &sub, |_| async { Err::<(), _>("upstream refused") })
                .await
        }
    });
    for _ in 0..1000 {
        if sub.state() == SubsystemState::BackingOff {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(sub.state(), SubsystemState::BackingOff);

    let server = Server::start(|s| ServeOptions::no_auth(s).registry(&registry)).await;
    let reply = server.get("/admin/liveness").await;
    server.stop().await;
    cancel.cancel();
    let _ = run.await.unwrap();

    let body = json_of(&reply);
    let s = &body["subsystems"]["flaky"];
    assert_eq!(s["state"], json!("backing_off"));
    assert_eq!(s["restarts"], json!(1));
    assert_eq!(s["consecutive_failures"], json!(1));
    let next = parse_rfc3339(&s["next_restart_at"]);
    let ahead = seconds_between(next, SystemTime::now());
    assert!(
        (50.0..=61.0).contains(&ahead),
        "next restart {ahead}s ahead"
    );
    // Not opted in: the error text is not served.
    assert!(!reply.body.contains("upstream refused"));
}

#[tokio::test]
async fn failure_details_are_served_only_when_opted_in() {
    let registry = Registry::new();
    fail_for_good(&registry, "scheduler", true).await;
    fail_for_good(&registry, "importer", false).await;

    let server = Server::start(|s| ServeOptions::no_auth(s).registry(&registry)).await;
    let hidden = server.get("/admin/liveness").await;
    let health = server.get("/admin/health").await;
    server.stop().await;

    let body = json_of(&hidden);
    assert_eq!(body["healthy"], json!(false));
    assert_eq!(body["subsystems"]["scheduler"]["state"], json!("failed"));
    assert_eq!(body["subsystems"]["scheduler"]["healthy"], json!(false));
    assert!(body["subsystems"]["scheduler"].get("last_panic").is_none());
    assert!(body["subsystems"]["importer"].get("last_error").is_none());
    assert!(!hidden.body.contains("tenant 42"), "{}", hidden.body);
    assert!(!hidden.body.contains("hunter2"));

    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(&health),
        json!({"status": "unhealthy", "stale": [], "failed": ["importer", "scheduler"]})
    );

    let server = Server::start(|s| {
        ServeOptions::no_auth(s)
            .registry(&registry)
            .router_options(RouterOptions::new().expose_failure_details(true))
    })
    .await;
    let shown = server.get("/admin/liveness").await;
    server.stop().await;

    let body = json_of(&shown);
    let panic = &body["subsystems"]["scheduler"]["last_panic"];
    assert_eq!(
        panic["message"],
        json!("tenant 42 sent bad data: {\"secret\": \"hunter2\"}")
    );
    assert!(panic["location"].as_str().unwrap().contains("http.rs"));
    let at = parse_rfc3339(&panic["at"]);
    assert!(seconds_between(SystemTime::now(), at).abs() < 5.0);
    assert_eq!(body["subsystems"]["scheduler"]["last_error"], Value::Null);
    assert_eq!(body["subsystems"]["importer"]["last_panic"], Value::Null);
    assert_eq!(
        body["subsystems"]["importer"]["last_error"],
        json!("tenant 42: row 7 is malformed")
    );
}

#[tokio::test(start_paused = true)]
async fn health_is_ok_when_fresh_and_ignores_advisory_subsystems() {
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_secs(30)), None);
    scheduler.beat();
    registry.subsystem("no-tick");
    registry.subsystem("upstream-probe").set_advisory(true);
    fail_for_good(&registry, "upstream-probe", false).await;
    let never = registry.subsystem("mirror");
    never.set_advisory(true);
    never.declare_tick(Some(Duration::from_millis(1)), None);
    tokio::time::advance(Duration::from_millis(5)).await; // the advisory one goes stale

    let health = route(&registry, "/admin/health").await;
    let liveness = route(&registry, "/admin/liveness").await;

    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("cache-control"), Some("no-store"));
    assert_eq!(json_of(&health), json!({"status": "ok"}));
    let body = json_of(&liveness);
    assert_eq!(body["healthy"], json!(true));
    let probe = &body["subsystems"]["upstream-probe"];
    assert_eq!(probe["advisory"], json!(true));
    assert_eq!(probe["healthy"], json!(false));
    assert_eq!(probe["state"], json!("failed"));
    assert_eq!(body["subsystems"]["mirror"]["stale"], json!(true));
}

/// Under paused time the routes are called directly: `serve` arms timers
/// (its header and idle timeouts), and a paused clock jumps to the next
/// timer whenever the runtime waits on a socket, so the clock here moves
/// only with `advance`.
#[tokio::test(start_paused = true)]
async fn stale_subsystem_flips_health_to_503_under_paused_time() {
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_secs(5)), None);
    scheduler.beat();
    let relay = registry.subsystem("relay");
    relay.declare_tick(Some(Duration::from_secs(60)), None);
    relay.beat();

    let before = route(&registry, "/admin/health").await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(json_of(&before), json!({"status": "ok"}));

    tokio::time::advance(Duration::from_secs(11)).await;
    let stale = route(&registry, "/admin/health").await;
    assert_eq!(stale.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(&stale),
        json!({"status": "unhealthy", "stale": ["scheduler"], "failed": []})
    );
    let liveness = json_of(&route(&registry, "/admin/liveness").await);
    assert_eq!(liveness["healthy"], json!(false));
    assert_eq!(
        liveness["subsystems"]["scheduler"]["seconds_ago"],
        json!(11)
    );
    assert_eq!(liveness["subsystems"]["scheduler"]["healthy"], json!(false));
    assert_eq!(liveness["subsystems"]["scheduler"]["stale"], json!(true));
    assert_eq!(liveness["subsystems"]["relay"]["healthy"], json!(true));

    scheduler.beat();
    let recovered = route(&registry, "/admin/health").await;
    assert_eq!(recovered.status, StatusCode::OK);
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let registry = Registry::new();
    registry.heartbeat("scheduler");
    let token = "t0ken-with.chars_~+/=";
    let server = Server::start(|s| ServeOptions::bearer_token(token, s).registry(&registry)).await;

    for path in ["/admin/liveness", "/admin/health", "/nowhere"] {
        let missing = server.get(path).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            missing.header("www-authenticate"),
            Some(r#"Bearer realm="supervised""#)
        );
        let error = json_of(&missing);
        assert_eq!(error["error"], json!("unauthorized"));
        assert!(error["message"].is_string());
    }
    for wrong in ["t0ken", "t0ken-with.chars_~+/==", "T0KEN-WITH.CHARS_~+/="] {
        let reply = server.get_with_token("/admin/liveness", wrong).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let basic = server
        .request(
            Method::GET,
            "/admin/liveness",
            &[("authorization", &format!("Basic {token}"))],
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);

    let ok = server.get_with_token("/admin/liveness", token).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(json_of(&ok)["subsystems"]["scheduler"].is_object());
    let lower = server
        .request(
            Method::GET,
            "/admin/health",
            &[("authorization", &format!("bearer {token}"))],
        )
        .await;
    assert_eq!(lower.status, StatusCode::OK);
    let unknown = server.get_with_token("/nowhere", token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn open_probes_answer_without_the_token_and_nothing_else_does() {
    let registry = Registry::new();
    registry.heartbeat("scheduler");
    let token = "secret-token-0123456789";
    let server = Server::start(|s| {
        ServeOptions::bearer_token(token, s)
            .open_probes(true)
            .registry(&registry)
    })
    .await;
    for probe in ["/admin/health", "/admin/ready", "/admin/health?verbose=1"] {
        let reply = server.get(probe).await;
        assert_eq!(reply.status, StatusCode::OK, "{probe}: {}", reply.body);
    }
    let head = server.request(Method::HEAD, "/admin/health", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    // Exactly those two paths: everything else still needs the token.
    for path in [
        "/admin/liveness",
        "/metrics",
        "/admin/health/",
        "/admin/healthz",
        "/admin//health",
        "/ADMIN/HEALTH",
        "/nowhere",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A wrong token on a probe is not an error either: the probe is open.
    assert_eq!(
        server.get_with_token("/admin/ready", "wrong").await.status,
        StatusCode::OK
    );
    server.stop().await;

    // Off by default.
    let server = Server::start(|s| ServeOptions::bearer_token(token, s).registry(&registry)).await;
    assert_eq!(
        server.get("/admin/ready").await.status,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn the_status_page_is_served_only_when_asked_and_holds_no_data() {
    let registry = Registry::new();
    registry.heartbeat("tenant-acme-billing");
    let token = "secret-token-0123456789";
    let server = Server::start(|s| {
        ServeOptions::bearer_token(token, s)
            .registry(&registry)
            .router_options(supervised_core::http::RouterOptions::new().status_page(true))
    })
    .await;
    let page = server.get("/admin/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.starts_with("default-src 'none'")
            && csp.contains("connect-src 'self'")
            && csp.contains("script-src 'self'")
            && csp.contains("style-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Its script and style are files beside it, served without the token
    // and named by relative paths; nothing inline for the policy to refuse.
    assert!(page.body.contains("<script src=\"status.js\"></script>"));
    assert!(page
        .body
        .contains("<link rel=\"stylesheet\" href=\"status.css\">"));
    assert_eq!(page.body.matches("<script").count(), 1, "no inline script");
    assert!(!page.body.contains("<style") && !page.body.contains(" style="));
    let handler = page.body.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "an inline event handler: on{handler:?}");
    let script = server.get("/admin/status.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        script.body.contains("liveness/summary"),
        "polls the summary"
    );
    assert!(
        script.body.contains("fetch(url"),
        "polls its sibling routes"
    );
    let style = server.get("/admin/status.css").await;
    assert_eq!(style.status, StatusCode::OK);
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    // Self-contained: nothing loaded from elsewhere.
    for body in [&page.body, &script.body, &style.body] {
        for external in ["http://", "https://", "src=\"/", "href=\"/", "url("] {
            assert!(!body.contains(external), "the page loads {external}");
        }
    }
    // Static: no subsystem name in it; the data still needs the token.
    assert!(!page.body.contains("tenant-acme-billing"));
    assert_eq!(
        server.get("/admin/liveness").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.get("/admin").await.status, StatusCode::UNAUTHORIZED);
    server.stop().await;

    // Off by default: not served, and not exempt.
    let server = Server::start(|s| ServeOptions::bearer_token(token, s).registry(&registry)).await;
    assert_eq!(server.get("/admin/").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get_with_token("/admin/", token).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn other_methods_get_405() {
    let token = "secret-token-0123456789";
    let server =
        Server::start(|s| ServeOptions::bearer_token(token, s).registry(&Registry::new())).await;
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let mut paths = vec!["/admin/liveness", "/admin/health"];
    if cfg!(feature = "prometheus") {
        paths.push("/metrics");
    }
    for path in paths {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let reply = server.request(method.clone(), path, &headers).await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let allow = reply.header("allow").unwrap_or_default();
            assert!(allow.contains("GET"), "{method} {path}: allow {allow}");
        }
        let head = server.request(Method::HEAD, path, &headers).await;
        assert_eq!(head.status, StatusCode::OK, "HEAD {path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn odd_subsystem_names_are_escaped_in_json() {
    let names = [
        "quote\"d",
        "back\\slash",
        "new\nline",
        "tab\there",
        "nul\u{0}byte",
        "</script><script>alert(1)</script>",
        "ünïcødé ✓ 🚀",
        "",
        "{\"injected\": true}",
    ];
    let registry = Registry::new();
    for name in names {
        registry.heartbeat(name);
    }
    let server = Server::start(|s| ServeOptions::no_auth(s).registry(&registry)).await;
    let reply = server.get("/admin/liveness").await;
    server.stop().await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !reply.body.chars().any(|c| c.is_control()),
        "raw control characters in {:?}",
        reply.body
    );
    let body = json_of(&reply);
    let subsystems = body["subsystems"].as_object().unwrap();
    assert_eq!(subsystems.len(), names.len());
    for name in names {
        assert_eq!(subsystems[name]["beats"], json!(1), "{name:?}");
    }
    assert!(subsystems.get("injected").is_none());
}

#[tokio::test]
async fn an_empty_token_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve_listener(
        listener,
        ServeOptions::bearer_token("", CancellationToken::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);

    let error = serve(
        "127.0.0.1:0",
        ServeOptions::bearer_token(String::new(), CancellationToken::new()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn serve_binds_and_stops_on_cancellation() {
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        "127.0.0.1:0",
        ServeOptions::no_auth(shutdown.clone()).registry(&Registry::new()),
    ));
    tokio::task::yield_now().await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after cancellation")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_global_router_serves_the_process_wide_registry() {
    supervised_core::heartbeat("http-test-global");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let app = axum::Router::new().merge(supervised_core::http::router());
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        }
    });
    let server = ServerAddr(addr);
    let reply = server.get("/admin/liveness").await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        json_of(&reply)["subsystems"]["http-test-global"]["beats"],
        json!(1)
    );
}

/// A client for a server started by hand.
struct ServerAddr(std::net::SocketAddr);

impl ServerAddr {
    async fn get(&self, path: &str) -> Reply {
        http_support::get(self.0, path).await
    }
}

/// The probes merge into an application's router of its own state type,
/// in the usual order (merge, then `with_state`), and report the registry
/// their options name.
#[tokio::test]
async fn the_routes_merge_into_an_app_router_with_its_own_state() {
    use axum::extract::State;
    use axum::routing::get;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct AppState {
        greeting: &'static str,
    }

    let registry = Registry::new();
    registry.subsystem("only-here").beat();
    let app: axum::Router = axum::Router::new()
        .route(
            "/",
            get(|State(app): State<AppState>| async move { app.greeting }),
        )
        .merge(RouterOptions::new().registry(&registry).router())
        .with_state(AppState { greeting: "hello" });
    let get_body = |path: &'static str| {
        let app = app.clone();
        async move {
            let request = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    assert_eq!(get_body("/").await, (StatusCode::OK, "hello".to_string()));
    let (status, body) = get_body("/admin/liveness").await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&String> = report["subsystems"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["only-here"],
        "the options' registry, not the process-wide one"
    );
}
