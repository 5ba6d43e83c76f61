//! A multi-tenant platform's `main`: its background loops, each a
//! `#[supervised]` fn with a declared tick, run as one supervision tree
//! ([`supervised::Group`]), and `/admin/liveness` served over HTTP.
//!
//! | subsystem | tick | what it stands for |
//! | --- | --- | --- |
//! | `broadcaster` | 1 s | the Redis pub/sub relay to the WebSocket clients |
//! | `liveness-monitor` | 1 s | marks agents offline when their heartbeats stop |
//! | `health-sweep` | 2 s | probes every agent's container |
//! | `scheduler` | 2 s | fires the tenants' cron jobs; one tenant's bad row panics it |
//! | `channel/telegram`, `channel/slack` | 3 s | one worker per chat channel, from one fn, in the `platform/channels` group |
//! | `channel-manager` | 3 s | reconnects a channel by removing its worker and adding it again |
//!
//! The tree, in start order (it stops in reverse): the admin server first,
//! so `/admin/ready` answers `draining` until the very end; the loops; the
//! `channels` group, whose workers are added at run time; the
//! `outside-world` group that stands in for agents and WebSocket clients.
//!
//! The ticks are short so the demo shows something within seconds. On its
//! third tick the scheduler dequeues a job whose schedule a tenant saved as
//! `*/0 * * * *`, and panics. The log shows the structured panic event, the
//! restart after 1 s, and the table then shows fresh beats and `restarts 1`:
//! the job was taken off the queue before it blew up, so the new run does not
//! meet it again. Every other subsystem keeps running meanwhile.
//!
//! For the operator's kit, three flags make trouble on purpose: `--stall
//! SUBSYSTEM` stops a loop's iterations (the stale alert), `--storm` adds
//! `imports`, which panics on every run (the restart-storm alert), and
//! `--give-up` adds `billing-sync`, whose supervisor gives up (the
//! failed-subsystem alert).
//!
//! `--tenants N` adds a fleet: `platform/tenants`, with a worker per tenant
//! added through the group's handle (`tenant/0001` ..., as many digits as
//! N has if more than four), each beating every
//! second (`--tenant-tick`), judged by its
//! share of healthy workers (90%), and sharded: with `--etcd` or
//! `--postgres`, the replicas share the tenants, each on exactly one. With `--tenants 100000`, read it with
//! `/admin/liveness/summary`, `/admin/liveness?group=platform/tenants&stale=true`,
//! the status page, and `/metrics`, where the fleet is a few series.
//!
//! ```sh
//! cargo run --example platform --features http
//! curl -s http://127.0.0.1:8080/admin/liveness
//! printf '%s' "$(openssl rand -hex 32)" > admin.token   # no newline: Prometheus reads it too
//! cargo run --example platform --features http -- --duration 20s --token-file admin.token
//! curl -s -H "Authorization: Bearer $(cat admin.token)" http://127.0.0.1:8080/admin/health
//! ```
//!
//! The scheduler is lease-gated (`lease = "scheduler"`): with `--etcd URL`
//! (feature `etcd`) or `--postgres URL` (feature `postgres`), several
//! instances started with different `--replica-id`s run it on one of them
//! at a time, and the others list it as `standby`. Without either, the
//! lease is in-process. The README's "Running several replicas" has the
//! commands.
//!
//! With the `prometheus` feature the same server answers `/metrics`; with
//! `systemd`, a unit with `WatchdogSec=` gets `WATCHDOG=1` only while every
//! subsystem is fresh. `RUST_LOG` (for example `RUST_LOG=debug`) changes what
//! is logged.
//!
//! Ctrl-C, SIGTERM or the end of `--duration` shuts the tree down: every
//! subsystem stops within its stop timeout, the final table is printed and
//! the process exits 0 (1 if something had to be aborted). A second Ctrl-C
//! aborts what is left. Bad flags exit 2; an address it cannot bind, 1.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervised::http::{serve_listener, RouterOptions, ServeOptions};
use supervised::{supervised, CancellationToken, Child, Group, GroupHandle, Shards};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

// The intervals the ticking loops run at; each matches the `tick` its
// attribute declares, so a loop that stops beating goes stale after two of
// them. The broadcaster beats per event relayed instead (see
// `PUBLISH_EVERY`).
const LIVENESS_MONITOR_TICK: Duration = Duration::from_secs(1);
const HEALTH_SWEEP_TICK: Duration = Duration::from_secs(2);
const SCHEDULER_TICK: Duration = Duration::from_secs(2);
const CHANNEL_TICK: Duration = Duration::from_secs(3);

/// How often the table of subsystems goes to stderr.
const TABLE_EVERY: Duration = Duration::from_secs(3);
/// How often the stand-in for Redis publishes an agent event (several per
/// broadcaster tick, so the relay beats often enough to stay fresh).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// An agent not heard from for this long is offline.
const AGENT_OFFLINE_AFTER: Duration = Duration::from_secs(3);

const USAGE: &str = "\
usage: platform [--addr IP:PORT] [--duration DURATION] [--token-file PATH]
                [--open-probes] [--stall SUBSYSTEM [--after DURATION]]
                [--storm] [--give-up] [--tenants N [--tenant-tick DURATION]]
                [--replica-id NAME] [--postgres URL | --etcd URL]

  --addr IP:PORT       where /admin/liveness and /admin/health are served
                       (default 127.0.0.1:8080)
  --duration DURATION  stop after this long, e.g. 30s or 2m (humantime);
                       default: run until Ctrl-C
  --token-file PATH    require `Authorization: Bearer TOKEN`, with TOKEN read
                       from PATH (surrounding whitespace ignored); or set
                       ADMIN_TOKEN; with neither, auth is off. Make one with
                       `openssl rand -hex 32`
  --open-probes        with a token, serve /admin/health and /admin/ready
                       without it (for Kubernetes' httpGet probes)
  --stall SUBSYSTEM    make that loop stop iterating (a stuck loop: alive,
                       no beats), to see the stale alerts and the page
  --after DURATION     ... this long after the start (default: at once)
  --storm              add `imports`, a loop that panics on every iteration
                       and restarts within half a second: a restart storm
  --give-up            add `billing-sync`, a loop that fails on every run and
                       gives up after 2 restarts: a failed subsystem
  --tenants N          add `platform/tenants`, N tenant workers (a fleet,
                       up to 1000000) `tenant/0001` ... (as many digits as
                       N past 9999); tenant 17 of each 10000 panics on its
                       first run. Sharded: with a store, the replicas share
                       them, each on exactly one
  --tenant-tick DURATION
                       how often each tenant beats, 10ms to 1day (default
                       1s; 10s suits 100000 tenants on a small machine)
  --replica-id NAME    this replica's id, shown as the lease holder
                       (default: replica-PID)
  --postgres URL       run the scheduler on one replica at a time, and share
                       the tenants, with the leases in this PostgreSQL
                       (needs `--features postgres`)
  --etcd URL           the same with etcd (needs `--features etcd`); with
                       neither, the lease is in this process: one replica
  -h, --help           print this help";

/// The range `--tenant-tick` takes.
const MIN_TENANT_TICK: Duration = Duration::from_millis(10);
const MAX_TENANT_TICK: Duration = Duration::from_secs(24 * 60 * 60);

/// The most tenants `--tenants` takes.
const MAX_TENANTS: usize = 1_000_000;

// ---- flags ---------------------------------------------------------------------

#[derive(Debug)]
struct Flags {
    addr: SocketAddr,
    duration: Option<Duration>,
    token_file: Option<String>,
    replica_id: String,
    leases: LeaseStore,
    /// `/admin/health` and `/admin/ready` answer without the token.
    open_probes: bool,
    /// `--stall SUBSYSTEM --after DURATION`.
    stall: Option<(String, Duration)>,
    /// `--storm`: add the `imports` loop, a restart storm.
    storm: bool,
    /// `--give-up`: add the `billing-sync` loop, which gives up.
    give_up: bool,
    /// `--tenants N`: add a fleet of N tenant workers.
    tenants: usize,
    /// `--tenant-tick`: how often each tenant beats.
    tenant_tick: Duration,
}

/// Where the scheduler's lease lives.
#[derive(Debug)]
enum LeaseStore {
    /// In this process: one replica.
    Local,
    // The URLs are read only when the store's feature is on.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres(String),
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Etcd(String),
}

impl LeaseStore {
    /// The store's kind, for logs (a URL may hold a password).
    fn kind(&self) -> &'static str {
        match self {
            LeaseStore::Local => "in-process",
            LeaseStore::Postgres(_) => "postgres",
            LeaseStore::Etcd(_) => "etcd",
        }
    }
}

enum Command {
    Run(Flags),
    Help,
}

/// `--flag value` or `--flag=value`; each flag at most once.
fn parse_flags(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut addr = None;
    let mut duration = None;
    let mut token_file = None;
    let mut replica_id = None;
    let mut postgres = None;
    let mut etcd = None;
    let mut open_probes = false;
    let (mut storm, mut give_up) = (false, false);
    let mut stall = None;
    let mut after = None;
    let mut tenants = None;
    let mut tenant_tick = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--open-probes" {
            open_probes = true;
            continue;
        }
        if arg == "--storm" {
            storm = true;
            continue;
        }
        if arg == "--give-up" {
            give_up = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        let slot = match flag.as_str() {
            "--addr" => &mut addr,
            "--duration" => &mut duration,
            "--token-file" => &mut token_file,
            "--replica-id" => &mut replica_id,
            "--postgres" => &mut postgres,
            "--etcd" => &mut etcd,
            "--stall" => &mut stall,
            "--after" => &mut after,
            "--tenants" => &mut tenants,
            "--tenant-tick" => &mut tenant_tick,
            "--token" => {
                return Err(
                    "`--token` is gone: a token on the command line shows in `ps`; \
                     use `--token-file PATH` or the ADMIN_TOKEN environment variable"
                        .into(),
                )
            }
            _ if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`")),
            _ => return Err(format!("unexpected argument `{flag}`")),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("`{flag}` needs a value")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("`{flag}` is given more than once"));
        }
    }
    let addr = match addr {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(addr) => addr.parse().map_err(|_| {
            format!("invalid `--addr {addr}`: expected IP:PORT, such as 127.0.0.1:8080")
        })?,
    };
    let duration = match duration {
        None => None,
        Some(text) => match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => return Err("`--duration` must be more than zero".into()),
            Ok(d) => Some(d),
            Err(e) => {
                return Err(format!(
                    "invalid `--duration {text}`: {e} (expected a duration such as 30s or 2m)"
                ))
            }
        },
    };
    let leases = match (postgres, etcd) {
        (Some(_), Some(_)) => return Err("give `--postgres` or `--etcd`, not both".into()),
        (Some(url), None) => LeaseStore::Postgres(url),
        (None, Some(url)) => LeaseStore::Etcd(url),
        (None, None) => LeaseStore::Local,
    };
    let replica_id = match replica_id {
        Some(id) if id.trim().is_empty() => return Err("`--replica-id` must not be empty".into()),
        Some(id) => id,
        None => format!("replica-{}", std::process::id()),
    };
    let stall = match (stall, after) {
        (None, None) => None,
        (None, Some(_)) => return Err("`--after` needs `--stall SUBSYSTEM`".into()),
        (Some(name), _) if !STALLABLE.contains(&name.as_str()) => {
            return Err(format!(
                "`--stall {name}`: it can stall one of {}",
                STALLABLE.join(", ")
            ))
        }
        (Some(name), after) => {
            let after = match after {
                None => Duration::ZERO,
                Some(text) => humantime::parse_duration(&text).map_err(|e| {
                    format!("invalid `--after {text}`: {e} (expected a duration such as 5s)")
                })?,
            };
            Some((name, after))
        }
    };
    let tenants = match tenants {
        None => 0,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n <= MAX_TENANTS => n,
            _ => {
                return Err(format!(
                    "invalid `--tenants {text}`: expected a whole number from 0 to {MAX_TENANTS}"
                ))
            }
        },
    };
    let tenant_tick = match tenant_tick {
        None => Duration::from_secs(1),
        Some(_) if tenants == 0 => return Err("`--tenant-tick` needs `--tenants N`".into()),
        Some(text) => match humantime::parse_duration(&text) {
            Ok(d) if !(MIN_TENANT_TICK..=MAX_TENANT_TICK).contains(&d) => {
                return Err(format!(
                    "`--tenant-tick {text}`: expected from 10ms to 1day (a shorter tick is a \
                     busy loop per tenant, a longer one is never judged stale in practice)"
                ))
            }
            Ok(d) => d,
            Err(e) => {
                return Err(format!(
                    "invalid `--tenant-tick {text}`: {e} (expected a duration such as 1s)"
                ))
            }
        },
    };
    Ok(Command::Run(Flags {
        addr,
        duration,
        token_file,
        replica_id,
        leases,
        open_probes,
        stall,
        storm,
        give_up,
        tenants,
        tenant_tick,
    }))
}

/// The admin server's bearer token, settled once at start: from
/// `--token-file`, else from `ADMIN_TOKEN`, else none (said loudly). Never
/// from the command line.
fn admin_token(flags: &Flags) -> Result<Option<String>, String> {
    const VAR: &str = "ADMIN_TOKEN";
    if let Some(path) = &flags.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file `{path}`: {e}"))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("the token file `{path}` is empty"));
        }
        return Ok(Some(token.to_string()));
    }
    if std::env::var_os(VAR).is_some() {
        // The library's checks, and its messages, for the variable.
        ServeOptions::bearer_token_from_env(VAR, CancellationToken::new())
            .map_err(|e| e.to_string())?;
        // Trimmed as the library trims it: a Secret made with
        // `--from-file` keeps the file's newline.
        return Ok(std::env::var(VAR)
            .ok()
            .map(|token| token.trim().to_string()));
    }
    tracing::warn!(
        addr = %flags.addr,
        "auth is off: no --token-file or ADMIN_TOKEN given, so anyone who reaches this address reads /admin/liveness"
    );
    Ok(None)
}

/// The admin server as the tree's first child, so it is stopped last. Its
/// first run serves the listener bound at start; a restart binds again.
fn admin_server(
    listener: TcpListener,
    addr: SocketAddr,
    token: Option<String>,
    open_probes: bool,
) -> Child {
    let mut bound = Some(listener);
    Child::new("admin-server", move |cancel: CancellationToken| {
        let listener = bound.take();
        let options = match &token {
            Some(token) => {
                ServeOptions::bearer_token(token.clone(), cancel).open_probes(open_probes)
            }
            None => ServeOptions::no_auth(cancel),
        }
        .router_options(RouterOptions::new().status_page(true));
        async move {
            let listener = match listener {
                Some(listener) => listener,
                None => TcpListener::bind(addr).await.map_err(|e| e.to_string())?,
            };
            serve_listener(listener, options)
                .await
                .map_err(|e| e.to_string())
        }
    })
}

// ---- the platform's state (stand-ins for Redis, Postgres, agents, chat APIs) ----

/// An agent's event, as published on Redis pub/sub.
#[derive(Debug, Clone)]
struct AgentEvent {
    tenant: &'static str,
    agent: &'static str,
    seq: u64,
}

/// A tenant's cron job.
#[derive(Debug, Clone)]
struct Job {
    tenant: &'static str,
    name: &'static str,
    schedule: &'static str,
}

/// The jobs table: recurring jobs, plus one-off jobs each due on one
/// scheduler round. Due one-offs are taken off the queue before they run.
#[derive(Debug)]
struct JobStore {
    recurring: Vec<Job>,
    one_off: Mutex<(u64, VecDeque<(u64, Job)>)>,
}

impl JobStore {
    fn seeded() -> Self {
        JobStore {
            recurring: vec![
                Job {
                    tenant: "acme",
                    name: "nightly-report",
                    schedule: "*/5 * * * *",
                },
                Job {
                    tenant: "initech",
                    name: "sync-crm",
                    schedule: "*/15 * * * *",
                },
            ],
            // Saved through an API that did not validate the step: a tenant's
            // bad data, due on the third round.
            one_off: Mutex::new((
                0,
                VecDeque::from([(
                    3,
                    Job {
                        tenant: "globex",
                        name: "import-contacts",
                        schedule: "*/0 * * * *",
                    },
                )]),
            )),
        }
    }

    /// The jobs due on this round: every recurring one, and the one-offs due
    /// now, dequeued.
    fn take_due(&self) -> Vec<Job> {
        let mut jobs = self.recurring.clone();
        let mut one_off = self.one_off.lock().unwrap();
        let (round, queue) = &mut *one_off;
        *round += 1;
        while queue.front().is_some_and(|(due, _)| *due <= *round) {
            let (_, job) = queue.pop_front().expect("front checked");
            jobs.push(job);
        }
        jobs
    }
}

/// Everything the subsystems share. Cloning is cheap (handles and `Arc`s),
/// as `#[supervised]` gives each run a fresh clone of its owned arguments.
#[derive(Clone)]
struct Platform {
    /// Redis pub/sub: the agents' events.
    pubsub: broadcast::Sender<AgentEvent>,
    /// The WebSocket clients the broadcaster fans out to.
    websockets: broadcast::Sender<AgentEvent>,
    /// When each agent was last heard from, and whether it is online.
    agents: Arc<Mutex<BTreeMap<&'static str, (Instant, bool)>>>,
    jobs: Arc<JobStore>,
    /// Events relayed to WebSocket clients, summed over all clients.
    delivered: Arc<AtomicU64>,
}

const AGENTS: [(&str, &str); 4] = [
    ("acme", "acme/agent-1"),
    ("acme", "acme/agent-2"),
    ("globex", "globex/agent-1"),
    ("initech", "initech/agent-1"),
];

impl Platform {
    fn new() -> Self {
        let now = Instant::now();
        Platform {
            pubsub: broadcast::channel(256).0,
            websockets: broadcast::channel(256).0,
            agents: Arc::new(Mutex::new(
                AGENTS
                    .iter()
                    .map(|&(_, agent)| (agent, (now, true)))
                    .collect(),
            )),
            jobs: Arc::new(JobStore::seeded()),
            delivered: Arc::new(AtomicU64::new(0)),
        }
    }
}

// ---- the five subsystems ---------------------------------------------------------

/// A ticker that does not burst after a slow iteration.
fn ticker(period: Duration) -> Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Waits for the next tick; `false` once `cancel` fires, so that
/// `while ticked(..).await { .. }` leaves its loop at once on shutdown.
async fn ticked(ticker: &mut Interval, cancel: &CancellationToken) -> bool {
    if stalled_now() {
        // `--stall`: alive, but no more iterations (and so no beats) until
        // shutdown, as a loop stuck on a lock or a silent dependency is.
        cancel.cancelled().await;
        return false;
    }
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        _ = ticker.tick() => true,
    }
}

/// `--storm`: one tenant's import row that is never fixed. The loop panics
/// on every iteration and restarts within half a second, so the
/// restart-storm alert fires; it never beats, so it declares no tick.
#[supervised(
    name = "imports",
    tick = "none",
    initial_backoff = "100ms",
    max_backoff = "500ms"
)]
async fn imports(cancel: CancellationToken) {
    let mut row = 15;
    while !cancel.is_cancelled() {
        row += 1;
        if row == 17 {
            panic!("tenant initech: import row {row} has no id");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `--tenants N`: a fleet of tenant workers `tenant/0001` ..., added
/// through the group's handle as a service adds them from its tenant list.
/// Each beats every `tick` (their first beats spread over one tick);
/// tenant 17 of each 10,000 panics on its first run, as one tenant's bad
/// data would, and is restarted alone.
///
/// The fleet is sharded over 64 buckets in the installed lease store
/// with `--etcd` or `--postgres`, replicas share the tenants, each on
/// exactly one; with neither (an in-process store), this one runs them all.
fn tenants(n: usize, tick: Duration) -> Group {
    let fleet = Group::new("tenants")
        .min_healthy_percent(90)
        // The intensity counts every tenant's restarts together: a few
        // tenants' bad rows must not make the whole fleet give up (the
        // default, 5 in 60 s, suits a handful of loops, not 100,000).
        .max_restarts(1_000, Duration::from_secs(60))
        // A 6 s ttl as the scheduler's lease: a replica that dies hands
        // its tenants over within 8 s.
        .shards(Shards::new(64).ttl(Duration::from_secs(6)));
    let handle = fleet.handle();
    // At least four digits, and as many as the largest id has, so the
    // names sort as the ids do and a prefix names a range of them.
    let width = n.to_string().len().max(4);
    for id in 1..=n {
        let child = Child::new(
            format!("tenant/{id:0width$}"),
            move |cancel: CancellationToken| tenant_worker(id, tick, cancel),
        );
        handle.add(child).expect("a new group has no children yet");
    }
    fleet
}

async fn tenant_worker(id: usize, tick: Duration, cancel: CancellationToken) {
    if let Some(me) = supervised::current() {
        me.declare_tick(Some(tick), None);
        if id % 10_000 == 17 && me.restarts() == 0 {
            panic!("tenant {id}: a row this worker cannot read");
        }
    }
    // Spread over one tick, so the fleet does not beat all at once.
    let spread = tick.mul_f64((id % 1000) as f64 / 1000.0);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + spread, tick);
    // A tenant held up beats once when it resumes, not a burst of the
    // ticks it missed.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while cancel.run_until_cancelled(ticker.tick()).await.is_some() {
        supervised::beat();
    }
}

/// `--give-up`: a dependency that rejects every call. The loop fails on
/// every run, and its supervisor gives up after 2 restarts, so the
/// failed-subsystem alert fires.
#[supervised(
    name = "billing-sync",
    tick = "none",
    max_restarts = 2,
    within = "1m",
    initial_backoff = "100ms"
)]
async fn billing_sync(cancel: CancellationToken) -> Result<(), String> {
    while !cancel.is_cancelled() {
        if !billing_provider_accepts_our_key() {
            return Err("the billing provider rejects our API key".to_string());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// The stand-in for the provider's answer: never, for `--give-up`.
fn billing_provider_accepts_our_key() -> bool {
    false
}

/// `--stall SUBSYSTEM --after DURATION`: which loop stops iterating, and when.
static STALL: std::sync::OnceLock<(String, Instant)> = std::sync::OnceLock::new();

/// Whether the loop running now is the one `--stall` names, past its time
/// (logged once).
fn stalled_now() -> bool {
    let Some((name, at)) = STALL.get() else {
        return false;
    };
    let current = supervised::current();
    if current.as_ref().map(|s| s.name()) != Some(name.as_str()) || Instant::now() < *at {
        return false;
    }
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED
        .call_once(|| tracing::warn!(subsystem = %name, "--stall: this loop stops iterating now"));
    true
}

/// The loops `--stall` can name: those that wait for a tick.
const STALLABLE: [&str; 6] = [
    "scheduler",
    "health-sweep",
    "liveness-monitor",
    "channel-manager",
    "channel/telegram",
    "channel/slack",
];

/// The next event from pub/sub; `None` on shutdown or when the channel closes.
async fn next_event(
    subscription: &mut broadcast::Receiver<AgentEvent>,
    cancel: &CancellationToken,
) -> Option<AgentEvent> {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            received = subscription.recv() => match received {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and lost events");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}

/// Relays pub/sub to the WebSocket clients: one beat per event relayed.
/// Events arrive several times a tick, so the relay stays fresh while they
/// flow; a stall (or a dead Redis connection) shows as stale.
#[supervised(name = "broadcaster", tick = "1s", stop_timeout = "2s")]
async fn broadcaster(platform: Platform, cancel: CancellationToken) {
    let mut subscription = platform.pubsub.subscribe();
    while let Some(event) = next_event(&mut subscription, &cancel).await {
        let clients = platform.websockets.send(event).unwrap_or(0);
        platform
            .delivered
            .fetch_add(clients as u64, Ordering::Relaxed);
    }
}

#[supervised(name = "liveness-monitor", tick = "1s", stop_timeout = "2s")]
async fn liveness_monitor(platform: Platform, cancel: CancellationToken) {
    let mut ticker = ticker(LIVENESS_MONITOR_TICK);
    while ticked(&mut ticker, &cancel).await {
        let now = Instant::now();
        let mut agents = platform.agents.lock().unwrap();
        for (agent, (last_seen, online)) in agents.iter_mut() {
            let alive = now.duration_since(*last_seen) < AGENT_OFFLINE_AFTER;
            if alive != *online {
                *online = alive;
                tracing::info!(agent, online = alive, "agent liveness changed");
            }
        }
    }
}

#[supervised(name = "health-sweep", tick = "2s", stop_timeout = "2s")]
async fn health_sweep(platform: Platform, cancel: CancellationToken) {
    let mut ticker = ticker(HEALTH_SWEEP_TICK);
    while ticked(&mut ticker, &cancel).await {
        let online: Vec<&'static str> = {
            let agents = platform.agents.lock().unwrap();
            let online = agents.iter().filter(|(_, (_, online))| *online);
            online.map(|(agent, _)| *agent).collect()
        };
        for agent in online {
            // Stands in for an HTTP probe of the agent's container.
            tokio::time::sleep(Duration::from_millis(5)).await;
            tracing::debug!(agent, "container healthy");
        }
    }
}

/// Minutes between runs of a `*/N * * * *` schedule.
fn every_minutes(schedule: &str) -> Option<NonZeroU32> {
    let (minute, rest) = schedule.split_once(' ')?;
    (rest == "* * * *").then_some(())?;
    minute.strip_prefix("*/")?.parse().ok()
}

fn fire(job: &Job) {
    // Schedules are "validated on write", so this cannot fail... except that
    // one write path forgot to: one tenant's row would take the scheduler
    // down for every tenant, were it not supervised.
    let every = every_minutes(job.schedule).unwrap_or_else(|| {
        panic!(
            "tenant {}: job {}: invalid schedule {:?}",
            job.tenant, job.name, job.schedule
        )
    });
    tracing::debug!(
        tenant = job.tenant,
        job = job.name,
        every_minutes = every,
        "job fired"
    );
}

/// Gated on a lease: with several replicas it fires each job on one of
/// them (the others list it as `standby`). A 6 s ttl, so a replica that
/// dies is replaced within 8 s.
#[supervised(
    name = "scheduler",
    tick = "2s",
    stop_timeout = "5s",
    lease = "scheduler",
    lease_ttl = "6s"
)]
async fn scheduler(jobs: Arc<JobStore>, cancel: CancellationToken) {
    let mut ticker = ticker(SCHEDULER_TICK);
    while ticked(&mut ticker, &cancel).await {
        for job in jobs.take_due() {
            fire(&job);
        }
    }
}

/// The chat channels; one worker each.
const CHANNELS: [&str; 2] = ["telegram", "slack"];

/// One channel's worker: long-polls its chat API. One fn for every channel;
/// run as a group child, it is listed under the child's name
/// (`channel/telegram`), not the attribute's.
#[supervised(name = "channel", tick = "3s", stop_timeout = "2s")]
async fn channel_worker(kind: &'static str, cancel: CancellationToken) {
    let mut ticker = ticker(CHANNEL_TICK);
    let mut polls = 0u64;
    while ticked(&mut ticker, &cancel).await {
        // Stands in for a long-poll of the chat API, cut short on shutdown.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        polls += 1;
        tracing::debug!(channel = kind, polls, "polled channel");
    }
}

fn channel(kind: &'static str) -> Child {
    Child::new(format!("channel/{kind}"), move |cancel| {
        channel_worker(kind, cancel)
    })
}

/// Watches the channels' credentials; when one changes (here: on the
/// second round, for Slack) it reconnects that channel by removing its
/// worker, which stops it and takes it off `/admin/liveness`, and adding a
/// fresh one.
#[supervised(name = "channel-manager", tick = "3s", stop_timeout = "2s")]
async fn channel_manager(channels: GroupHandle, cancel: CancellationToken) {
    let mut ticker = ticker(CHANNEL_TICK);
    let mut rounds = 0u64;
    while ticked(&mut ticker, &cancel).await {
        rounds += 1;
        if rounds == 2 {
            let kind = "slack";
            match channels.remove(&format!("channel/{kind}")).await {
                Ok(()) => match channels.add(channel(kind)) {
                    Ok(()) => tracing::info!(channel = kind, "channel reconnected"),
                    Err(error) => {
                        tracing::warn!(channel = kind, %error, "cannot add the channel again")
                    }
                },
                Err(error) => tracing::warn!(channel = kind, %error, "cannot remove the channel"),
            }
        }
    }
}

// ---- the outside world ------------------------------------------------------------

/// The agents, publishing their events on pub/sub round-robin (the stand-in
/// for Redis), and recorded as seen.
async fn publish_agent_events(platform: Platform, cancel: CancellationToken) {
    let mut ticker = ticker(PUBLISH_EVERY);
    let mut seq = 0u64;
    while ticked(&mut ticker, &cancel).await {
        let (tenant, agent) = AGENTS[(seq % AGENTS.len() as u64) as usize];
        if let Some(entry) = platform.agents.lock().unwrap().get_mut(agent) {
            entry.0 = Instant::now();
        }
        // No receiver while the broadcaster restarts: the event is lost, as
        // on Redis pub/sub.
        let _ = platform.pubsub.send(AgentEvent { tenant, agent, seq });
        seq += 1;
    }
}

/// A WebSocket client: reads what the broadcaster relays.
async fn websocket_client(mut events: broadcast::Receiver<AgentEvent>, cancel: CancellationToken) {
    while let Some(event) = next_event(&mut events, &cancel).await {
        tracing::trace!(
            tenant = event.tenant,
            agent = event.agent,
            seq = event.seq,
            "sent to client"
        );
    }
}

// ---- the table ---------------------------------------------------------------------

fn print_table(title: &str) {
    let mut table = format!(
        "{title}\n  {:<22} {:<12} {:>5} {:>6} {:>8}\n",
        "SUBSYSTEM", "STATE", "AGO", "BEATS", "RESTARTS"
    );
    for status in supervised::snapshot() {
        let ago = status
            .since_last_beat
            .map_or_else(|| "-".to_string(), |d| format!("{}s", d.as_secs()));
        table.push_str(&format!(
            "  {:<22} {:<12} {:>5} {:>6} {:>8}\n",
            status.name,
            status.state.as_str(),
            ago,
            status.beats,
            status.restarts
        ));
    }
    // One write, so log lines from other threads do not cut through it.
    eprint!("{table}");
}

async fn print_tables(started: Instant, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval_at(started + TABLE_EVERY, TABLE_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while ticked(&mut ticker, &cancel).await {
        print_table(&format!("subsystems at {}s:", started.elapsed().as_secs()));
    }
}

// ---- main ------------------------------------------------------------------------------

fn init_logging() {
    // The restart itself is a DEBUG event of the supervisor; show it.
    let default = "info,supervised=debug";
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().expect("valid directives"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
}

/// A child's factory: `run` with a fresh clone of `state` and the run's token.
fn with<S, F, Fut>(state: &S, run: F) -> impl FnMut(CancellationToken) -> Fut + Send + 'static
where
    S: Clone + Send + 'static,
    F: Fn(S, CancellationToken) -> Fut + Send + 'static,
{
    let state = state.clone();
    move |cancel| run(state.clone(), cancel)
}

/// `--duration`: shuts the tree down once it has passed.
async fn stop_after(duration: Duration, tree: GroupHandle) {
    tokio::time::sleep(duration).await;
    tracing::info!("--duration elapsed: shutting down");
    tree.shutdown();
}

/// The stand-ins for the world around the platform: agents publishing
/// events, WebSocket clients reading the relay, and the table on stderr.
fn outside_world(platform: &Platform, started: Instant) -> Group {
    let mut world = Group::new("outside-world")
        .child("agents", with(platform, publish_agent_events))
        .child("table", move |cancel| print_tables(started, cancel));
    for client in 1..=3 {
        let websockets = platform.websockets.clone();
        world = world.child(format!("websocket-client-{client}"), move |cancel| {
            websocket_client(websockets.subscribe(), cancel)
        });
    }
    world
}

/// Installs the lease store `--postgres` or `--etcd` names, or one in this
/// process.
async fn install_leases(flags: &Flags) -> Result<(), String> {
    let id = flags.replica_id.as_str();
    match &flags.leases {
        LeaseStore::Local => supervised::lease::install(supervised::lease::Memory::new(id)),
        #[cfg(feature = "postgres")]
        LeaseStore::Postgres(url) => supervised::lease::install(
            supervised::lease::Postgres::connect(url, id)
                .await
                .map_err(|e| e.to_string())?,
        ),
        #[cfg(feature = "etcd")]
        LeaseStore::Etcd(url) => supervised::lease::install(
            supervised::lease::Etcd::connect([url.as_str()], id)
                .await
                .map_err(|e| e.to_string())?,
        ),
        #[allow(unreachable_patterns)]
        other => {
            let kind = other.kind();
            return Err(format!(
                "`--{kind}` needs the example built with `--features http,{kind}`"
            ));
        }
    }
    tracing::info!(
        replica = id,
        store = flags.leases.kind(),
        "scheduler lease store installed"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = match parse_flags(std::env::args().skip(1)) {
        Ok(Command::Run(flags)) => flags,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("platform: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let started = Instant::now();
    if let Some((name, after)) = &flags.stall {
        let _ = STALL.set((name.clone(), started + *after));
    }
    let listener = match TcpListener::bind(flags.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %flags.addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let token = match admin_token(&flags) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot set up the admin server's authentication");
            return ExitCode::from(2);
        }
    };

    if let Err(error) = install_leases(&flags).await {
        tracing::error!(%error, "cannot set up the scheduler's lease store");
        return ExitCode::from(2);
    }

    let platform = Platform::new();
    let channels = Group::new("channels");
    let workers = channels.handle();
    for kind in CHANNELS {
        workers
            .add(channel(kind))
            .expect("a new group has no children yet");
    }
    let tree = Group::new("platform")
        .shutdown_timeout(Duration::from_secs(10))
        .spec(admin_server(listener, flags.addr, token, flags.open_probes))
        .child("broadcaster", with(&platform, broadcaster))
        .child("liveness-monitor", with(&platform, liveness_monitor))
        .child("health-sweep", with(&platform, health_sweep))
        .child("scheduler", with(&platform.jobs, scheduler))
        .group(channels)
        .child("channel-manager", with(&workers, channel_manager))
        .group(outside_world(&platform, started));
    let tree = if flags.storm {
        tree.child("imports", imports)
    } else {
        tree
    };
    let tree = if flags.tenants > 0 {
        tree.group(tenants(flags.tenants, flags.tenant_tick))
    } else {
        tree
    };
    let tree = if flags.give_up {
        // Its supervisor gives up and stays failed in the registry; the
        // child then waits for the shutdown rather than have the group
        // restart it.
        tree.child("billing-sync", |cancel: CancellationToken| async move {
            let _ = billing_sync(cancel.clone()).await;
            cancel.cancelled().await;
        })
    } else {
        tree
    };
    #[cfg(all(feature = "systemd", unix))]
    let tree = match supervised::systemd::SystemdWatchdog::from_unit() {
        Some(watchdog) => tree.child("systemd-watchdog", move |cancel| {
            watchdog.clone().run(cancel)
        }),
        None => tree,
    };
    if let Some(duration) = flags.duration {
        tokio::spawn(stop_after(duration, tree.handle()));
    }
    tracing::info!(
        addr = %flags.addr,
        duration = ?flags.duration,
        "platform running; Ctrl-C or SIGTERM stops it"
    );

    let report = tree.run_until_signal().await;
    if report.is_clean() {
        tracing::info!(took = ?report.took, "every subsystem stopped");
    } else {
        tracing::error!(?report, "the platform did not stop cleanly");
    }
    print_table(&format!(
        "final, after {}s (relayed {} events to WebSocket clients):",
        started.elapsed().as_secs(),
        platform.delivered.load(Ordering::Relaxed)
    ));
    ExitCode::from(&report)
}
