//! Chaos soak on paused time: 1,000 supervised subsystems over 24 simulated
//! hours with seeded random panics, `Err`s, stalls and cancellations. Each
//! body keeps a model of what the supervisor must do; the registry and the
//! restart times are checked against it at random points and at the end.
//!
//! The random seed is printed; rerun one with `SUPERVISED_SOAK_SEED=<n>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised_core::{Backoff, Registry, SubsystemState, Supervisor};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

const SUBSYSTEMS: usize = 1000;
const DAY: Duration = Duration::from_secs(24 * 3600);
const TICK: Duration = Duration::from_secs(60);
const STALE_AFTER: Duration = Duration::from_secs(120);
const GRACE: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Running,
    BackingOff,
}

/// What one subsystem's bodies have done, and what the supervisor owes them.
#[derive(Debug)]
struct Model {
    jitter: bool,
    restart_on_stall: bool,
    runs: u64,
    beats: u64,
    beats_in_run: u64,
    run_start: Option<Instant>,
    last_beat: Option<Instant>,
    phase: Phase,
    consecutive: u32,
    /// When the last failure happened and the allowed restart window.
    pending_restart: Option<(Instant, Duration, Duration)>,
    injected: u64,
    stalled_now: bool,
    stalls_cut_by_cancellation: u64,
    cancelled_at: Option<Instant>,
    ended_at: Option<Instant>,
    violations: Vec<String>,
}

impl Model {
    fn new(jitter: bool, restart_on_stall: bool) -> Self {
        Model {
            jitter,
            restart_on_stall,
            runs: 0,
            beats: 0,
            beats_in_run: 0,
            run_start: None,
            last_beat: None,
            phase: Phase::Running,
            consecutive: 0,
            pending_restart: None,
            injected: 0,
            stalled_now: false,
            stalls_cut_by_cancellation: 0,
            cancelled_at: None,
            ended_at: None,
            violations: Vec::new(),
        }
    }

    /// The supervisor's policy, restated: progress-based reset, then the
    /// exponential delay (or its jitter window).
    fn fail(&mut self, at: Instant) {
        let ran = at - self.run_start.unwrap_or(at);
        if ran >= MAX_BACKOFF && (self.beats_in_run >= 3 || self.beats == 0) {
            self.consecutive = 0;
        }
        self.consecutive += 1;
        let backoff = Backoff::default();
        let nominal = backoff.nominal(self.consecutive);
        let window = if self.jitter {
            (
                (nominal / 2).max(backoff.initial()),
                (nominal * 3 / 2).min(backoff.max()),
            )
        } else {
            (nominal, nominal)
        };
        self.pending_restart = Some((at, window.0, window.1));
        self.phase = Phase::BackingOff;
    }

    fn start_run(&mut self, now: Instant) {
        if let Some((failed_at, low, high)) = self.pending_restart.take() {
            let gap = now - failed_at;
            if gap < low || gap > high {
                self.violations.push(format!(
                    "run {} restarted {gap:?} after its failure, outside [{low:?}, {high:?}]",
                    self.runs
                ));
            }
        }
        self.runs += 1;
        self.run_start = Some(now);
        self.beats_in_run = 0;
        self.phase = Phase::Running;
    }
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    dropped: AtomicU64,
    panics: AtomicU64,
    errors: AtomicU64,
    stalls: AtomicU64,
}

/// Dropped with the body's future, however it ends.
struct RunGuard {
    model: Arc<Mutex<Model>>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
        let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
        if m.stalled_now {
            m.stalled_now = false;
            if self.cancel.is_cancelled() {
                // Dropped at the end of the grace period: no restart owed.
                m.stalls_cut_by_cancellation += 1;
            } else {
                let now = Instant::now();
                let run_start = m.run_start.unwrap_or(now);
                let reference = m.last_beat.map_or(run_start, |b| b.max(run_start));
                if now != reference + STALE_AFTER {
                    let msg = format!(
                        "stall dropped at {:?} after its reference, not {STALE_AFTER:?}",
                        now - reference
                    );
                    m.violations.push(msg);
                }
                m.fail(now);
            }
        }
    }
}

fn rng_for(seed: u64, subsystem: usize, run: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(
        seed ^ ((subsystem as u64) << 32) ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

fn check_registry(registry: &Registry, models: &[Arc<Mutex<Model>>], seed: u64, final_check: bool) {
    for (i, model) in models.iter().enumerate() {
        let m = model.lock().unwrap();
        let s = registry.subsystem(&format!("soak-{i}")).status();
        let owed = m.injected - m.stalls_cut_by_cancellation - u64::from(m.stalled_now);
        assert_eq!(
            s.restarts, owed,
            "seed {seed}: soak-{i} restarts vs injected failures: {m:?}"
        );
        assert_eq!(s.beats, m.beats, "seed {seed}: soak-{i} beats");
        assert!(
            m.violations.is_empty(),
            "seed {seed}: soak-{i}: {:?}",
            m.violations
        );
        if final_check {
            assert_eq!(
                s.state,
                SubsystemState::Stopped,
                "seed {seed}: soak-{i} after cancellation"
            );
        } else if m.cancelled_at.is_none() {
            let expected = match m.phase {
                Phase::Running => SubsystemState::Running,
                Phase::BackingOff => SubsystemState::BackingOff,
            };
            assert_eq!(s.state, expected, "seed {seed}: soak-{i} state: {m:?}");
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn chaos_soak_loses_nothing() {
    let seed: u64 = std::env::var("SUPERVISED_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("chaos soak seed: {seed} (rerun with SUPERVISED_SOAK_SEED={seed})");
    // The default hook would print thousands of backtraces; the
    // supervisor's own hook chains to this silent one.
    std::panic::set_hook(Box::new(|_| {}));

    let registry = Registry::new();
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let mut chaos = fastrand::Rng::with_seed(seed);
    let mut models = Vec::new();
    let mut cancels = Vec::new();
    let mut tasks = Vec::new();

    for i in 0..SUBSYSTEMS {
        let jitter = i % 5 == 0;
        let restart_on_stall = i % 4 != 1;
        let model = Arc::new(Mutex::new(Model::new(jitter, restart_on_stall)));
        models.push(model.clone());
        let cancel = CancellationToken::new();
        // One in ten is cancelled at a random time of the day, the rest at its end.
        let cancel_at = if chaos.u32(0..10) == 0 {
            start + Duration::from_secs(chaos.u64(60..DAY.as_secs()))
        } else {
            start + DAY
        };
        cancels.push((cancel_at, cancel.clone(), model.clone()));

        let supervisor = Supervisor::new()
            .registry(&registry)
            .tick(TICK)
            .stale_after(STALE_AFTER)
            .stop_timeout(GRACE)
            .jitter(jitter)
            .restart_on_stall(restart_on_stall);
        let counters = counters.clone();
        let ended = model.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("soak-{i}");
            let _ = supervisor
                .run(cancel, &name, move |cancel: CancellationToken| {
                    counters.started.fetch_add(1, Ordering::SeqCst);
                    let run = {
                        let mut m = model.lock().unwrap();
                        m.start_run(Instant::now());
                        m.runs
                    };
                    let guard = RunGuard {
                        model: model.clone(),
                        counters: counters.clone(),
                        cancel: cancel.clone(),
                    };
                    let model = model.clone();
                    let counters = counters.clone();
                    async move {
                        let _guard = guard;
                        let mut rng = rng_for(seed, i, run);
                        loop {
                            tokio::select! {
                                biased;
                                () = cancel.cancelled() => return Ok(()),
                                () = sleep(TICK) => {}
                            }
                            let roll = rng.u32(0..10_000);
                            let now = Instant::now();
                            if roll < 15 {
                                counters.panics.fetch_add(1, Ordering::SeqCst);
                                let mut m = model.lock().unwrap();
                                m.injected += 1;
                                m.fail(now);
                                drop(m);
                                panic!("injected panic in soak-{i} run {run}");
                            } else if roll < 30 {
                                counters.errors.fetch_add(1, Ordering::SeqCst);
                                let mut m = model.lock().unwrap();
                                m.injected += 1;
                                m.fail(now);
                                return Err(format!("injected error in soak-{i} run {run}"));
                            } else if roll < 38 && model.lock().unwrap().restart_on_stall {
                                counters.stalls.fetch_add(1, Ordering::SeqCst);
                                {
                                    let mut m = model.lock().unwrap();
                                    m.injected += 1;
                                    m.stalled_now = true;
                                }
                                std::future::pending::<()>().await;
                            }
                            let mut m = model.lock().unwrap();
                            m.beats += 1;
                            m.beats_in_run += 1;
                            m.last_beat = Some(now);
                            supervised_core::beat();
                        }
                    }
                })
                .await;
            ended.lock().unwrap().ended_at = Some(Instant::now());
        }));
    }

    // The cancellation driver.
    cancels.sort_by_key(|(at, _, _)| *at);
    let driver = tokio::spawn(async move {
        for (at, cancel, model) in cancels {
            sleep_until(at).await;
            model.lock().unwrap().cancelled_at = Some(Instant::now());
            cancel.cancel();
        }
    });

    // Checks at random points of the day (off the whole seconds where ticks fall).
    let mut samples = 0;
    let mut t = start;
    loop {
        t += Duration::from_millis(chaos.u64(600_000..7_200_000)) + Duration::from_micros(250);
        if t >= start + DAY {
            break;
        }
        sleep_until(t).await;
        check_registry(&registry, &models, seed, false);
        samples += 1;
    }

    driver.await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    check_registry(&registry, &models, seed, true);

    let mut restarts = 0;
    let mut injected = 0;
    for (i, model) in models.iter().enumerate() {
        let m = model.lock().unwrap();
        let (cancelled, ended) = (m.cancelled_at.unwrap(), m.ended_at.unwrap());
        assert!(
            ended - cancelled <= GRACE,
            "seed {seed}: soak-{i} took {:?} to stop",
            ended - cancelled
        );
        restarts += registry.subsystem(&format!("soak-{i}")).status().restarts;
        injected += m.injected;
    }
    let started = counters.started.load(Ordering::SeqCst);
    let dropped = counters.dropped.load(Ordering::SeqCst);
    println!(
        "chaos soak: {SUBSYSTEMS} subsystems, {} simulated hours, {injected} failures injected ({} panics, {} errors, {} stalls), {restarts} restarts counted, {started} bodies started, {dropped} dropped, {} leaked, {samples} random checks",
        DAY.as_secs() / 3600,
        counters.panics.load(Ordering::SeqCst),
        counters.errors.load(Ordering::SeqCst),
        counters.stalls.load(Ordering::SeqCst),
        started - dropped,
    );
    assert_eq!(started, dropped, "seed {seed}: leaked body futures");
    assert!(
        injected > 1000,
        "seed {seed}: the soak must inject real chaos"
    );
}
