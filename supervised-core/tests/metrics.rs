//! Behaviour of the `prometheus` feature: the exposition is parsed, never
//! compared as a string.
#![cfg(feature = "prometheus")]

#[cfg(feature = "http")]
mod http_support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_parse::{Scrape, Value};
use supervised_core::metrics::{encode_openmetrics, encode_prometheus_text, Collector};
use supervised_core::{CancellationToken, Registry, SubsystemState, Supervisor};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// `metric{labels}` -> value, with the labels sorted.
fn samples(scrape: &Scrape) -> BTreeMap<String, (f64, &'static str)> {
    scrape
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let (value, kind) = match s.value {
                Value::Counter(v) => (v, "counter"),
                Value::Gauge(v) => (v, "gauge"),
                Value::Untyped(v) => (v, "untyped"),
                _ => panic!("unexpected sample type in {s:?}"),
            };
            (
                format!("{}{{{}}}", s.metric, labels.join(",")),
                (value, kind),
            )
        })
        .collect()
}

fn value(samples: &BTreeMap<String, (f64, &'static str)>, key: &str) -> f64 {
    samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
        .0
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A registry with one subsystem per situation: fresh, never beat, stale
/// and backing off after a failure.
async fn populated() -> (Registry, CancellationToken) {
    let registry = Registry::new();
    let scheduler = registry.subsystem("scheduler");
    scheduler.declare_tick(Some(Duration::from_secs(5)), None);
    registry.subsystem("relay");
    let sweep = registry.subsystem("sweep");
    sweep.declare_tick(Some(Duration::from_secs(1)), Some(Duration::from_secs(3)));
    sweep.beat();
    tokio::time::advance(Duration::from_secs(4)).await;
    scheduler.beat();
    scheduler.beat();
    scheduler.beat();

    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new()
        .registry(&registry)
        .initial_backoff(Duration::from_secs(60));
    let flaky = supervisor.register("flaky");
    tokio::spawn({
        let cancel = cancel.clone();
        let flaky = flaky.clone();
        async move {
            supervisor
                .run_registered(cancel, &flaky, |_| async { Err::<(), _>("refused") })
                .await
        }
    });
    for _ in 0..1000 {
        if flaky.state() == SubsystemState::BackingOff {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(flaky.state(), SubsystemState::BackingOff);
    (registry, cancel)
}

fn check_values(samples: &BTreeMap<String, (f64, &'static str)>) {
    // up
    assert_eq!(value(samples, "supervised_up{subsystem=scheduler}"), 1.0);
    assert_eq!(value(samples, "supervised_up{subsystem=relay}"), 1.0);
    assert_eq!(value(samples, "supervised_up{subsystem=sweep}"), 0.0);
    assert_eq!(value(samples, "supervised_up{subsystem=flaky}"), 1.0);

    // last heartbeat, in Unix seconds
    let now = unix_now();
    let scheduler = value(
        samples,
        "supervised_last_heartbeat_timestamp_seconds{subsystem=scheduler}",
    );
    assert!(
        (now - scheduler).abs() < 5.0,
        "scheduler beat at {scheduler}, now {now}"
    );
    let sweep = value(
        samples,
        "supervised_last_heartbeat_timestamp_seconds{subsystem=sweep}",
    );
    assert!(
        (scheduler - sweep - 4.0).abs() < 0.01,
        "sweep beat 4 s before the scheduler"
    );
    assert!(!samples.contains_key("supervised_last_heartbeat_timestamp_seconds{subsystem=relay}"));

    // counters
    assert_eq!(
        value(samples, "supervised_heartbeats_total{subsystem=scheduler}"),
        3.0
    );
    assert_eq!(
        value(samples, "supervised_heartbeats_total{subsystem=relay}"),
        0.0
    );
    assert_eq!(
        value(samples, "supervised_restarts_total{subsystem=flaky}"),
        1.0
    );
    assert_eq!(
        value(samples, "supervised_restarts_total{subsystem=scheduler}"),
        0.0
    );

    // tick and staleness limit
    assert_eq!(
        value(samples, "supervised_tick_seconds{subsystem=scheduler}"),
        5.0
    );
    assert_eq!(
        value(
            samples,
            "supervised_stale_after_seconds{subsystem=scheduler}"
        ),
        10.0
    );
    assert_eq!(
        value(samples, "supervised_tick_seconds{subsystem=sweep}"),
        1.0
    );
    assert_eq!(
        value(samples, "supervised_stale_after_seconds{subsystem=sweep}"),
        3.0
    );
    assert!(!samples.contains_key("supervised_tick_seconds{subsystem=relay}"));

    // state: one series per state, 1 for the current one
    for (name, current) in [
        ("scheduler", "running"),
        ("relay", "running"),
        ("sweep", "running"),
        ("flaky", "backing_off"),
    ] {
        for state in ["running", "backing_off", "stopped", "failed"] {
            let key = format!("supervised_state{{state={state},subsystem={name}}}");
            assert_eq!(
                value(samples, &key),
                f64::from(u8::from(state == current)),
                "{key}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn prometheus_text_has_every_metric_with_its_type() {
    let (registry, cancel) = populated().await;
    let text = encode_prometheus_text(&registry).unwrap();
    cancel.cancel();
    let scrape = parse(&text);
    let samples = samples(&scrape);
    check_values(&samples);

    for (metric, kind) in [
        ("supervised_up{subsystem=scheduler}", "gauge"),
        (
            "supervised_last_heartbeat_timestamp_seconds{subsystem=scheduler}",
            "gauge",
        ),
        (
            "supervised_heartbeats_total{subsystem=scheduler}",
            "counter",
        ),
        ("supervised_restarts_total{subsystem=scheduler}", "counter"),
        ("supervised_tick_seconds{subsystem=scheduler}", "gauge"),
        (
            "supervised_state{state=running,subsystem=scheduler}",
            "gauge",
        ),
    ] {
        assert_eq!(samples[metric].1, kind, "{metric}");
    }
    for doc in [
        "supervised_up",
        "supervised_heartbeats_total",
        "supervised_state",
    ] {
        assert!(scrape.docs.contains_key(doc), "no HELP for {doc}");
    }
}

#[tokio::test(start_paused = true)]
async fn openmetrics_has_the_same_values() {
    let (registry, cancel) = populated().await;
    let text = encode_openmetrics(&registry).unwrap();
    cancel.cancel();
    assert_eq!(text.lines().last(), Some("# EOF"));
    check_values(&samples(&parse(&text)));
}

#[tokio::test(start_paused = true)]
async fn values_are_computed_at_scrape_time() {
    let registry = Registry::new();
    let sweep = registry.subsystem("sweep");
    sweep.beat();
    let first = samples(&parse(&encode_prometheus_text(&registry).unwrap()));
    assert_eq!(
        value(&first, "supervised_heartbeats_total{subsystem=sweep}"),
        1.0
    );

    tokio::time::advance(Duration::from_secs(5)).await;
    let relay = registry.subsystem("relay");
    relay.beat();
    relay.beat();
    let second = samples(&parse(&encode_prometheus_text(&registry).unwrap()));
    assert_eq!(
        value(&second, "supervised_heartbeats_total{subsystem=relay}"),
        2.0
    );
    assert_eq!(
        value(&second, "supervised_heartbeats_total{subsystem=sweep}"),
        1.0
    );
    // Wall time is derived at scrape time from the distance on tokio's clock.
    let relay_at = value(
        &second,
        "supervised_last_heartbeat_timestamp_seconds{subsystem=relay}",
    );
    let sweep_at = value(
        &second,
        "supervised_last_heartbeat_timestamp_seconds{subsystem=sweep}",
    );
    assert!((unix_now() - relay_at).abs() < 5.0);
    assert!(
        (relay_at - sweep_at - 5.0).abs() < 0.01,
        "{relay_at} vs {sweep_at}"
    );
}

#[test]
fn the_collector_joins_an_application_registry() {
    let registry = Registry::new();
    registry.heartbeat("relay");
    let mut app = prometheus_client::registry::Registry::default();
    let requests: prometheus_client::metrics::counter::Counter = Default::default();
    requests.inc_by(7);
    app.register("app_requests", "Requests served.", requests);
    app.register_collector(Box::new(Collector::new(&registry)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &app).unwrap();
    let samples = samples(&parse(&text));
    assert_eq!(value(&samples, "app_requests_total{}"), 7.0);
    assert_eq!(
        value(&samples, "supervised_heartbeats_total{subsystem=relay}"),
        1.0
    );
}

#[cfg(feature = "http")]
mod over_http {
    use super::*;
    use http_support::Server;
    use hyper::{Method, StatusCode};
    use supervised_core::http::ServeOptions;
    use supervised_core::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};

    #[tokio::test]
    async fn metrics_route_negotiates_the_format_and_requires_the_token() {
        let registry = Registry::new();
        let sub = registry.subsystem("scheduler");
        sub.declare_tick(Some(Duration::from_secs(5)), None);
        sub.beat();
        let server = Server::start(|s| {
            ServeOptions::bearer_token("scrape-token-0123456789", s).registry(&registry)
        })
        .await;

        let denied = server.get("/metrics").await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);

        let classic = server
            .get_with_token("/metrics", "scrape-token-0123456789")
            .await;
        assert_eq!(classic.status, StatusCode::OK);
        assert_eq!(
            classic.header("content-type"),
            Some(PROMETHEUS_TEXT_CONTENT_TYPE)
        );
        let classic_samples = samples(&parse(&classic.body));
        assert_eq!(
            value(&classic_samples, "supervised_up{subsystem=scheduler}"),
            1.0
        );
        assert_eq!(
            classic_samples["supervised_heartbeats_total{subsystem=scheduler}"].1,
            "counter"
        );

        // What Prometheus 2.x/3.x sends.
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let open = server
            .request(
                Method::GET,
                "/metrics",
                &[
                    ("authorization", "Bearer scrape-token-0123456789"),
                    ("accept", accept),
                ],
            )
            .await;
        server.stop().await;
        assert_eq!(open.status, StatusCode::OK);
        assert_eq!(open.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
        assert_eq!(open.body.lines().last(), Some("# EOF"));
        let open_samples = samples(&parse(&open.body));
        assert_eq!(
            value(
                &open_samples,
                "supervised_heartbeats_total{subsystem=scheduler}"
            ),
            1.0
        );
        assert_eq!(
            value(
                &open_samples,
                "supervised_tick_seconds{subsystem=scheduler}"
            ),
            5.0
        );
    }
}
