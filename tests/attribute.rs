//! Behaviour of `#[supervised]` fns, on paused time. Every fn has its own
//! subsystem name, since they all report into the process-wide registry.
// Some bodies leave their loop on the first pass on purpose (to fail or
// return at once); `#[supervised]` still needs the loop to beat.
#![allow(clippy::never_loop)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised::{supervised, CancellationToken, Cancelled, SubsystemState, SubsystemStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);

fn status(name: &str) -> SubsystemStatus {
    supervised::registry()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
        .status()
}

// ---- restarts with fresh arguments ------------------------------------------

/// Counts its clones; each run pushes into its own copy of `seen`.
#[derive(Default)]
struct Tracked {
    clones: Arc<AtomicU32>,
    seen: Vec<u32>,
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Tracked {
            clones: self.clones.clone(),
            seen: self.seen.clone(),
        }
    }
}

#[supervised(name = "attr-fresh-args")]
async fn fresh_args(mut tracked: Tracked, runs: Arc<Mutex<Vec<Vec<u32>>>>) {
    for i in 0..3 {
        tracked.seen.push(i);
        tokio::task::yield_now().await;
    }
    let finished = {
        let mut runs = runs.lock().unwrap();
        runs.push(tracked.seen.clone());
        runs.len()
    };
    if finished < 3 {
        panic!("run {finished} fails");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_restarts_the_body_with_fresh_argument_clones() {
    let tracked = Tracked::default();
    let clones = tracked.clones.clone();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    fresh_args(tracked, runs.clone()).await;
    // Each run saw only its own pushes: a fresh clone, not the last run's state.
    assert_eq!(*runs.lock().unwrap(), vec![vec![0, 1, 2]; 3]);
    assert_eq!(clones.load(Ordering::SeqCst), 3, "one clone per run");
    assert_eq!(
        Instant::now() - started,
        Duration::from_secs(1 + 2),
        "backoff 1 s then 2 s"
    );
    let s = status("attr-fresh-args");
    assert_eq!((s.restarts, s.state), (2, SubsystemState::Stopped));
    assert_eq!(s.last_panic.unwrap().message, "run 2 fails");
}

// ---- beats per loop shape ------------------------------------------------------

#[supervised(name = "attr-beats-loop")]
async fn loop_with_continue_and_break(n: u32) {
    let mut i = 0;
    loop {
        i += 1;
        if i % 2 == 0 {
            continue; // beats
        }
        if i > n {
            break; // does not beat
        }
        tokio::task::yield_now().await; // falls off the end: beats
    }
}

#[tokio::test]
async fn loop_beats_on_continue_and_end_not_on_break() {
    loop_with_continue_and_break(5).await;
    // i = 1..=6 end normally or continue; i = 7 breaks.
    assert_eq!(status("attr-beats-loop").beats, 6);
}

#[supervised(name = "attr-beats-while")]
async fn while_loop(n: u32) -> Result<u32, String> {
    let mut i = 0;
    while i < n {
        i += 1;
        if i == 3 {
            return Ok(i); // does not beat
        }
    }
    Ok(i)
}

#[tokio::test]
async fn while_beats_per_finished_iteration_and_not_on_return() {
    assert_eq!(while_loop(10).await, Ok(3));
    assert_eq!(status("attr-beats-while").beats, 2);
}

#[supervised(name = "attr-beats-while-let")]
async fn drain(rx: &mut mpsc::Receiver<u32>) {
    while let Some(v) = rx.recv().await {
        if v == 0 {
            continue;
        }
    }
}

#[tokio::test]
async fn while_let_over_a_channel_beats_per_message() {
    let (tx, mut rx) = mpsc::channel(16);
    for v in [0, 1, 0, 2, 3] {
        tx.send(v).await.unwrap();
    }
    drop(tx);
    drain(&mut rx).await;
    assert_eq!(status("attr-beats-while-let").beats, 5);
}

#[supervised(name = "attr-beats-for")]
async fn for_loop(items: Vec<u32>) -> Result<(), String> {
    for item in items {
        if item == 99 {
            Err("bad item")?; // `?` does not beat
        }
    }
    Ok(())
}

#[tokio::test]
async fn for_beats_per_item_and_not_on_question_mark() {
    for_loop(vec![1, 2, 3, 4]).await.unwrap();
    assert_eq!(status("attr-beats-for").beats, 4);
}

#[supervised(name = "attr-beats-labeled")]
async fn labeled(rows: u32, cols: u32) {
    'rows: for r in 0..rows {
        for c in 0..cols {
            if c == 1 {
                continue 'rows; // beats the outer loop
            }
            if r == 0 {
                continue; // targets the inner loop: no beat
            }
        }
    }
}

#[tokio::test]
async fn continue_to_the_outer_label_beats_and_inner_continue_does_not() {
    labeled(4, 3).await;
    // Every row leaves through `continue 'rows`: exactly one beat per row.
    assert_eq!(status("attr-beats-labeled").beats, 4);
}

#[supervised(name = "attr-beats-select")]
async fn select_loop(rx: &mut mpsc::Receiver<u32>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            Some(v) = rx.recv() => {
                if v % 2 == 0 {
                    continue; // inside the macro: beats
                }
            }
            _ = cancel.cancelled() => break,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn continue_inside_select_arms_beats() {
    let (tx, mut rx) = mpsc::channel(16);
    for v in 1..=6 {
        tx.send(v).await.unwrap();
    }
    let cancel = CancellationToken::new();
    let cancel2 = cancel.clone();
    let task = tokio::spawn(async move { select_loop(&mut rx, cancel2).await });
    tokio::time::sleep(SEC).await;
    cancel.cancel();
    task.await.unwrap();
    // Six messages: three `continue`s and three fall-throughs; the break does not beat.
    assert_eq!(status("attr-beats-select").beats, 6);
}

// ---- `continue` and `break` from `macro_rules!` ---------------------------------

/// The common idiom for skipping bad input.
macro_rules! unwrap_or_continue {
    ($option:expr) => {
        match $option {
            Some(value) => value,
            None => continue,
        }
    };
}

macro_rules! stop {
    () => {
        break
    };
}

/// Macros from another module, as a crate's helpers usually are.
mod helpers {
    macro_rules! next_row {
        ($label:lifetime) => {
            continue $label
        };
    }
    pub(crate) use next_row;
}

#[supervised(name = "attr-beats-macro-continue")]
async fn skips_bad_items(items: Vec<Option<u32>>, sum: Arc<AtomicU32>) {
    for item in items {
        let value = unwrap_or_continue!(item);
        sum.fetch_add(value, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_continue_from_a_local_macro_beats() {
    let sum = Arc::new(AtomicU32::new(0));
    skips_bad_items(vec![Some(1), None, Some(2), None, None], sum.clone()).await;
    assert_eq!(sum.load(Ordering::SeqCst), 3);
    // Five iterations: two reach the end, three leave through the macro.
    assert_eq!(status("attr-beats-macro-continue").beats, 5);
}

#[supervised(name = "attr-beats-macro-label")]
async fn rows_from_another_module(rows: u32) {
    let mut r = 0;
    'rows: while r < rows {
        r += 1;
        for c in 0..10 {
            if c == 2 {
                helpers::next_row!('rows);
            }
        }
    }
}

#[tokio::test]
async fn a_continue_label_from_a_macro_in_another_module_beats_the_outer_loop() {
    rows_from_another_module(4).await;
    assert_eq!(status("attr-beats-macro-label").beats, 4);
}

#[supervised(name = "attr-beats-macro-break")]
async fn stops_on_zero(rx: &mut mpsc::Receiver<u32>) {
    loop {
        let value = unwrap_or_continue!(rx.recv().await);
        if value == 0 {
            stop!();
        }
    }
}

#[tokio::test]
async fn a_break_from_a_macro_does_not_beat() {
    let (tx, mut rx) = mpsc::channel(8);
    for v in [5, 6, 0, 7] {
        tx.send(v).await.unwrap();
    }
    stops_on_zero(&mut rx).await;
    // 5 and 6 end their iterations; 0 leaves through `stop!()`.
    assert_eq!(status("attr-beats-macro-break").beats, 2);
}

#[supervised(name = "attr-beats-branches")]
async fn branches(mode: u8) {
    match mode {
        0 => for _ in 0..3 {},
        _ => {
            if mode > 1 {
                let mut n = 0;
                while n < 5 {
                    n += 1;
                }
            }
        }
    }
    for _ in 0..10 {}
}

#[tokio::test]
async fn loops_in_branches_and_in_sequence_all_beat() {
    branches(0).await; // 3 + 10
    branches(2).await; // 5 + 10
    assert_eq!(status("attr-beats-branches").beats, 28);
}

#[supervised(name = "attr-beats-closure")]
async fn nested_scopes(items: Vec<u32>) {
    for item in items {
        // Loops in closures and async blocks are not iterations of the subsystem.
        let doubled: Vec<u32> = (0..item)
            .map(|x| {
                let mut y = 0;
                loop {
                    y += x;
                    break y;
                }
            })
            .collect();
        async { for _ in &doubled {} }.await;
    }
}

#[tokio::test]
async fn loops_inside_closures_and_async_blocks_do_not_beat() {
    nested_scopes(vec![3, 4]).await;
    assert_eq!(status("attr-beats-closure").beats, 2);
}

// ---- results, cancellation, escalation ----------------------------------------

#[supervised(name = "attr-err-then-ok")]
async fn err_then_ok(attempts: Arc<AtomicU32>) -> Result<&'static str, String> {
    loop {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            return Err(format!("attempt {n} failed"));
        }
        return Ok("synced");
    }
}

#[tokio::test(start_paused = true)]
async fn err_restarts_and_the_final_ok_comes_back() {
    let attempts = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    assert_eq!(err_then_ok(attempts.clone()).await, Ok("synced"));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(Instant::now() - started, Duration::from_secs(3));
    let s = status("attr-err-then-ok");
    assert_eq!(s.restarts, 2);
    assert_eq!(s.last_error.as_deref(), Some("attempt 1 failed"));
}

/// An alias, as crates define them: the type checker says it is a `Result`.
type SyncResult<T> = std::io::Result<T>;

#[supervised(name = "attr-alias-err")]
async fn aliased(attempts: Arc<AtomicU32>) -> SyncResult<u32> {
    loop {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        return Ok(n);
    }
}

#[tokio::test(start_paused = true)]
async fn an_err_from_an_aliased_result_restarts() {
    let attempts = Arc::new(AtomicU32::new(0));
    assert_eq!(aliased(attempts.clone()).await.unwrap(), 1);
    let s = status("attr-alias-err");
    assert_eq!(s.restarts, 1);
    assert_eq!(s.last_error.as_deref(), Some("disk full"));
}

/// An error with `Debug` and no `Display`.
#[derive(Debug, PartialEq)]
struct Refused {
    code: u16,
}

#[supervised(name = "attr-debug-err", max_restarts = 1, within = "1m")]
async fn refused() -> Result<(), Refused> {
    loop {
        return Err(Refused { code: 503 });
    }
}

#[tokio::test(start_paused = true)]
async fn a_debug_only_err_restarts_and_is_recorded_in_its_debug_form() {
    assert_eq!(refused().await, Err(Refused { code: 503 }));
    let s = status("attr-debug-err");
    assert_eq!((s.restarts, s.state), (1, SubsystemState::Failed));
    assert_eq!(s.last_error.as_deref(), Some("Refused { code: 503 }"));
}

#[supervised(name = "attr-cancel-backoff")]
async fn always_fails(cancel: CancellationToken) -> Result<(), String> {
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        tokio::task::yield_now().await;
        panic!("tenant data");
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_argument_stops_it_during_backoff_with_cancelled() {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(always_fails(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let at = Instant::now();
    cancel.cancel();
    let result = task.await.unwrap();
    assert_eq!(result, Err(Cancelled.to_string()));
    assert_eq!(Instant::now(), at, "stops at once during a backoff");
    assert_eq!(status("attr-cancel-backoff").state, SubsystemState::Stopped);
}

#[supervised(name = "attr-cancel-run", grace = "3s")]
async fn ignores_cancel(
    cancel: CancellationToken,
    drops: Arc<AtomicU32>,
) -> Result<(), std::io::Error> {
    struct CountDrop(Arc<AtomicU32>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _guard = CountDrop(drops.clone());
    let _ = &cancel;
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_argument_stops_a_running_body_after_the_grace_period() {
    let cancel = CancellationToken::new();
    let drops = Arc::new(AtomicU32::new(0));
    let task = tokio::spawn(ignores_cancel(cancel.clone(), drops.clone()));
    tokio::time::sleep(SEC).await;
    let at = Instant::now();
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
    assert_eq!(Instant::now() - at, Duration::from_secs(3));
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the body was dropped");
}

#[supervised(name = "attr-cooperative")]
async fn cooperative(cancel: CancellationToken) -> Result<u32, String> {
    let mut ticks = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(ticks),
            _ = tokio::time::sleep(SEC) => ticks += 1,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_returns_on_cancellation_gives_its_value() {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(cooperative(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(5500)).await;
    cancel.cancel();
    assert_eq!(task.await.unwrap(), Ok(5));
    assert_eq!(status("attr-cooperative").beats, 5);
}

#[supervised(name = "attr-escalate-panic", max_restarts = 2, within = "1m")]
async fn panics_forever() {
    loop {
        tokio::task::yield_now().await;
        panic!("poisoned config");
    }
}

#[tokio::test(start_paused = true)]
async fn exceeding_restart_intensity_resumes_the_last_panic_in_the_caller() {
    let err = tokio::spawn(panics_forever()).await.unwrap_err();
    assert!(err.is_panic());
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"poisoned config"));
    let s = status("attr-escalate-panic");
    assert_eq!(
        (s.state, s.restarts, s.healthy),
        (SubsystemState::Failed, 2, false)
    );
}

#[supervised(name = "attr-escalate-err", max_restarts = 1, within = "1m")]
async fn errs_forever(attempts: Arc<AtomicU32>) -> Result<(), String> {
    loop {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        return Err(format!("refused #{n}"));
    }
}

#[tokio::test(start_paused = true)]
async fn exceeding_restart_intensity_returns_the_last_err() {
    let attempts = Arc::new(AtomicU32::new(0));
    assert_eq!(errs_forever(attempts).await, Err("refused #1".to_string()));
    assert_eq!(status("attr-escalate-err").state, SubsystemState::Failed);
}

// ---- methods, ticks and spawning ------------------------------------------------

struct Sweeper {
    swept: AtomicU32,
}

impl Sweeper {
    #[supervised(name = "attr-method", tick = "10s")]
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        while !cancel.is_cancelled() {
            ticker.tick().await;
            if self.swept.fetch_add(1, Ordering::SeqCst) == 1 {
                panic!("second sweep hits bad data");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn tokio_spawn_of_a_method_future_and_the_tick_is_declared_at_once() {
    let sweeper = Arc::new(Sweeper {
        swept: AtomicU32::new(0),
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sweeper.clone().run(cancel.clone()));
    tokio::task::yield_now().await;
    let s = status("attr-method");
    assert_eq!(s.tick, Some(Duration::from_secs(10)));
    assert_eq!(s.stale_after, Some(Duration::from_secs(20)));

    tokio::time::sleep(Duration::from_secs(35)).await;
    let s = status("attr-method");
    assert_eq!(s.restarts, 1);
    assert!(s.healthy, "{s:?}");
    cancel.cancel();
    task.await.unwrap();
}

#[supervised(
    name = "attr-on-stall",
    tick = "2s",
    stale_after = "5s",
    on_stall = "restart"
)]
async fn sometimes_deadlocks(runs: Arc<AtomicU32>) {
    let run = runs.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::time::sleep(SEC).await;
        if run == 0 {
            std::future::pending::<()>().await; // first run deadlocks
        }
        if run == 1 {
            return;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn on_stall_restart_drops_a_deadlocked_body() {
    let runs = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    sometimes_deadlocks(runs.clone()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // 5 s without a beat, then the 1 s backoff, then one 1 s iteration.
    assert_eq!(Instant::now() - started, Duration::from_secs(5 + 1 + 1));
    let s = status("attr-on-stall");
    assert_eq!(s.restarts, 1);
    assert_eq!(
        s.last_error.as_deref(),
        Some("stalled: no heartbeat for 5s")
    );
}

// ---- keep(...): owned state that survives restarts -----------------------------

/// Not `Clone`: only `keep` can hand it to a supervised fn by value.
struct Job {
    id: u32,
    poison: bool,
}

#[supervised(name = "attr-keep-receiver", keep(rx))]
async fn keep_relay(mut rx: mpsc::Receiver<Job>, done: mpsc::UnboundedSender<u32>) {
    while let Some(job) = rx.recv().await {
        if job.poison {
            panic!("poison job {}", job.id);
        }
        let _ = done.send(job.id);
    }
}

#[tokio::test(start_paused = true)]
async fn a_kept_receiver_keeps_its_queued_messages_across_a_panic() {
    let (tx, rx) = mpsc::channel(8);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    tx.send(Job {
        id: 0,
        poison: true,
    })
    .await
    .unwrap();
    for id in 1..=5 {
        tx.send(Job { id, poison: false }).await.unwrap();
    }
    drop(tx);
    // Spawned: a kept argument leaves the future `'static` and `Send`.
    tokio::spawn(keep_relay(rx, done_tx)).await.unwrap();
    let mut processed = Vec::new();
    while let Some(id) = done.recv().await {
        processed.push(id);
    }
    // The poison job was taken out when the panic hit; the five queued
    // behind it were still in the receiver for the next run.
    assert_eq!(processed, [1, 2, 3, 4, 5]);
    let s = status("attr-keep-receiver");
    assert_eq!((s.restarts, s.state), (1, SubsystemState::Stopped));
    assert_eq!(s.last_panic.unwrap().message, "poison job 0");
    assert_eq!(s.beats, 5, "one beat per processed job");
}

/// Owns its receiver and a count that must survive a restart.
struct Worker {
    rx: mpsc::Receiver<Job>,
    handled: Vec<u32>,
    runs: u32,
}

impl Worker {
    #[supervised(name = "attr-keep-self", keep(self))]
    async fn run(mut self) -> Result<Vec<u32>, String> {
        self.runs += 1;
        while let Some(job) = self.rx.recv().await {
            if job.poison {
                panic!("poison job {} in run {}", job.id, self.runs);
            }
            self.handled.push(job.id);
        }
        Ok(std::mem::take(&mut self.handled))
    }
}

#[tokio::test(start_paused = true)]
async fn kept_self_carries_its_fields_into_the_next_run() {
    let (tx, rx) = mpsc::channel(8);
    for (id, poison) in [
        (1, false),
        (2, false),
        (3, true),
        (4, false),
        (5, true),
        (6, false),
    ] {
        tx.send(Job { id, poison }).await.unwrap();
    }
    drop(tx);
    let worker = Worker {
        rx,
        handled: Vec::new(),
        runs: 0,
    };
    let handled = tokio::spawn(worker.run()).await.unwrap().unwrap();
    // What the first runs pushed was still there for the last one.
    assert_eq!(handled, [1, 2, 4, 6]);
    let s = status("attr-keep-self");
    assert_eq!(s.restarts, 2);
    assert_eq!(s.last_panic.unwrap().message, "poison job 5 in run 2");
}

// ---- #[async_trait] methods ----------------------------------------------------

#[async_trait::async_trait]
trait Pump {
    async fn pump(&self, items: Vec<u32>, cancel: CancellationToken) -> Result<u32, String>;
}

struct Pumper {
    runs: AtomicU32,
}

#[async_trait::async_trait]
impl Pump for Pumper {
    #[supervised(name = "attr-async-trait")]
    async fn pump(&self, items: Vec<u32>, cancel: CancellationToken) -> Result<u32, String> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        let mut sum = 0;
        for item in items {
            if cancel.is_cancelled() {
                break;
            }
            if item == 0 && run == 0 {
                panic!("zero in the first run");
            }
            if item == 0 && run == 1 {
                return Err("zero in the second run".to_string());
            }
            sum += item;
        }
        Ok(sum)
    }
}

#[tokio::test(start_paused = true)]
async fn an_async_trait_method_restarts_and_beats_like_an_async_fn() {
    let pumper: Arc<dyn Pump + Send + Sync> = Arc::new(Pumper {
        runs: AtomicU32::new(0),
    });
    let started = Instant::now();
    let spawned = {
        let pumper = Arc::clone(&pumper);
        tokio::spawn(async move {
            pumper
                .pump(vec![1, 2, 0, 3], CancellationToken::new())
                .await
        })
    };
    assert_eq!(spawned.await.unwrap(), Ok(6));
    assert_eq!(
        Instant::now() - started,
        Duration::from_secs(1 + 2),
        "backoff 1 s then 2 s"
    );
    let s = status("attr-async-trait");
    assert_eq!(s.restarts, 2);
    assert_eq!(s.last_panic.unwrap().message, "zero in the first run");
    assert_eq!(s.last_error.as_deref(), Some("zero in the second run"));
    // Two items before each failure, four in the last run.
    assert_eq!(s.beats, 2 + 2 + 4);
}
