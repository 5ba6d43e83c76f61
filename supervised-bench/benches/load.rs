//! The admin server under load (BENCHMARKS.md, "Load"): `/admin/liveness`
//! for 1,000 beating subsystems, hit by 200 concurrent keep-alive
//! connections for 10 s, on the same 2 workers as the subsystems.
//!
//! Records the latency (p50, p99) and errors of the requests, the beats
//! lost (each beating task counts its own, and the registry must agree),
//! and how far the beats' cadence slips: the p99 gap between a subsystem's
//! beats under load, as a ratio against the same figure with the server
//! idle, measured first.
//!
//! Run: `cargo bench -p supervised-bench --bench load`. A load loop written
//! on hyper's client, in process, so nothing but cargo is needed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use supervised::http::{serve_listener, ServeOptions};
use supervised::{CancellationToken, Registry};
use tokio::net::{TcpListener, TcpStream};

const SUBSYSTEMS: usize = 1_000;
const BEAT_EVERY: Duration = Duration::from_millis(100);
const CONNECTIONS: usize = 200;
const LOAD_FOR: Duration = Duration::from_secs(10);
const IDLE_FOR: Duration = Duration::from_secs(5);
const TOKEN: &str = "load-bench-token-0123456789abcdef";

/// Gaps between consecutive beats of every subsystem, while `recording`.
#[derive(Default)]
struct Cadence {
    recording: AtomicBool,
    gaps: Mutex<Vec<Duration>>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

async fn client(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    errors: Arc<AtomicU64>,
) {
    let auth = format!("Bearer {TOKEN}");
    'connection: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(addr).await else {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::spawn(conn);
        let mut mine = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let request = Request::get("/admin/liveness")
                .header("host", "127.0.0.1")
                .header("authorization", &auth)
                .body(Empty::<Bytes>::new())
                .expect("a valid request");
            let start = Instant::now();
            let ok = match sender.send_request(request).await {
                Ok(response) if response.status() == 200 => {
                    response.into_body().collect().await.is_ok()
                }
                _ => false,
            };
            if ok {
                mine.push(start.elapsed());
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
                latencies.lock().unwrap().extend(mine);
                continue 'connection;
            }
        }
        latencies.lock().unwrap().extend(mine);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no options.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let cadence = Arc::new(Cadence::default());
    let counted = Arc::new(AtomicU64::new(0));
    let mut beaters = Vec::new();
    for i in 0..SUBSYSTEMS {
        let sub = registry.subsystem(&format!("subsystem-{i:04}"));
        sub.declare_tick(Some(BEAT_EVERY), None);
        let (cancel, cadence, counted) = (cancel.clone(), cadence.clone(), counted.clone());
        beaters.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(BEAT_EVERY);
            let mut last: Option<Instant> = None;
            while !cancel.is_cancelled() {
                ticker.tick().await;
                sub.beat();
                counted.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                if let (Some(last), true) = (last, cadence.recording.load(Ordering::Relaxed)) {
                    cadence.gaps.lock().unwrap().push(now - last);
                }
                last = Some(now);
            }
        }));
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve_listener(
        listener,
        ServeOptions::bearer_token(TOKEN, cancel.clone()).registry(&registry),
    ));

    // Idle server: the cadence alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cadence.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(IDLE_FOR).await;
    cadence.recording.store(false, Ordering::Relaxed);
    let mut idle_gaps = std::mem::take(&mut *cadence.gaps.lock().unwrap());
    idle_gaps.sort_unstable();

    // Under load.
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(client(
                addr,
                stop.clone(),
                latencies.clone(),
                errors.clone(),
            ))
        })
        .collect();
    cadence.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(LOAD_FOR).await;
    cadence.recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let mut load_gaps = std::mem::take(&mut *cadence.gaps.lock().unwrap());
    load_gaps.sort_unstable();

    cancel.cancel();
    for b in beaters {
        b.await.expect("a beater");
    }
    server.await.expect("the server task").expect("the server");

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    let requests = latencies.len();
    let recorded: u64 = registry.snapshot().iter().map(|s| s.beats).sum();
    let counted = counted.load(Ordering::Relaxed);
    let (idle_p50, idle_p99) = (percentile(&idle_gaps, 0.5), percentile(&idle_gaps, 0.99));
    let (load_p50, load_p99) = (percentile(&load_gaps, 0.5), percentile(&load_gaps, 0.99));

    println!("load: {CONNECTIONS} connections for {LOAD_FOR:?}, {SUBSYSTEMS} subsystems beating every {BEAT_EVERY:?}");
    println!(
        "  requests {requests} ({:.0}/s), errors {}, latency p50 {:?}, p99 {:?}, max {:?}",
        requests as f64 / LOAD_FOR.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    println!(
        "  beats counted by the tasks {counted}, recorded by the registry {recorded}, lost {}",
        counted.saturating_sub(recorded)
    );
    println!(
        "  beat gap idle p50 {idle_p50:?} p99 {idle_p99:?}; under load p50 {load_p50:?} p99 {load_p99:?}; p99 under load / idle = {:.2}x",
        load_p99.as_secs_f64() / idle_p99.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    assert_eq!(counted, recorded, "beats were lost");
}
