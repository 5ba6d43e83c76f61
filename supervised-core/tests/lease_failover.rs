//! The test that proves lease-gated subsystems: three replica processes
//! (this binary, run again with `LEASE_REPLICA` set) contend for one lease
//! on a real PostgreSQL, then on a real etcd. Each replica's body records
//! `(epoch, holder, start, end)` in a PostgreSQL table while it leads, by
//! the database's clock. For about 45 s per store, the test makes rounds of
//! failovers happen (`kill -9` of the leader; SIGSTOP of the leader for
//! longer than the ttl, then SIGCONT; a restart of the backend server) and
//! asserts:
//! - no two recorded intervals overlap;
//! - epochs strictly increase;
//! - every failover completes within ttl + one acquire interval (for the
//!   server restart, plus the time the server was down);
//! - the paused-then-resumed old leader never writes after its lease
//!   could have expired.
//!
//! `harness = false`: its `main` is the test, or (run again by it) a replica.

mod replicas;
mod servers;

use replicas::{now_unix, Replicas};

use std::sync::Arc;
use std::time::Duration;

use supervised_core::lease::{self, Backend};
use supervised_core::{CancellationToken, Supervisor};
use tokio_postgres::{Client, NoTls};

const TTL: Duration = Duration::from_secs(3);
/// The acquire interval: ttl/3.
const INTERVAL: Duration = Duration::from_secs(1);

fn main() {
    replicas::main(
        "LEASE_REPLICA",
        "failover",
        || async {
            replica().await;
            0
        },
        scenario,
    );
}

// ---- a replica ------------------------------------------------------------

async fn replica() {
    // Logs to stderr, which the test keeps in a file per replica and
    // prints when it fails.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .finish(),
    );
    let holder = std::env::var("HOLDER").expect("HOLDER");
    let data_url = std::env::var("DATA_URL").expect("DATA_URL");
    let lease_url = std::env::var("LEASE_URL").expect("LEASE_URL");
    let backend: Arc<dyn Backend> = match std::env::var("BACKEND").as_deref() {
        Ok("postgres") => Arc::new(
            lease::Postgres::connect(&lease_url, &holder)
                .await
                .expect("lease store"),
        ),
        Ok("etcd") => Arc::new(
            lease::Etcd::connect([lease_url.as_str()], &holder)
                .await
                .expect("lease store"),
        ),
        other => panic!("BACKEND {other:?}"),
    };
    let supervisor = Supervisor::new()
        .lease("failover")
        .lease_ttl(TTL)
        .lease_backend(backend)
        .initial_backoff(Duration::from_millis(200))
        .max_backoff(Duration::from_secs(1));
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            term.recv().await;
            cancel.cancel();
        }
    });
    let _ = supervisor
        .run(cancel, "writer", |token| {
            let (holder, data_url) = (holder.clone(), data_url.clone());
            async move {
                let epoch = i64::try_from(lease::epoch().ok_or("no epoch in a gated body")?)
                    .map_err(|e| e.to_string())?;
                let (client, connection) = tokio_postgres::connect(&data_url, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                let row = client
                    .query_one(
                        "INSERT INTO intervals (epoch, holder, start_at, end_at)
                         VALUES ($1, $2, clock_timestamp(), clock_timestamp()) RETURNING id",
                        &[&epoch, &holder],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let id: i64 = row.get(0);
                while !token.is_cancelled() {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                        () = token.cancelled() => {}
                    }
                    client
                        .execute(
                            "UPDATE intervals SET end_at = clock_timestamp() WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }
        })
        .await;
}

// ---- the test -------------------------------------------------------------

#[derive(Debug, Clone)]
struct Interval {
    epoch: i64,
    holder: String,
    start: f64,
    end: f64,
}

async fn intervals(db: &Client) -> Vec<Interval> {
    db.query(
        "SELECT epoch, holder, EXTRACT(EPOCH FROM start_at)::float8, EXTRACT(EPOCH FROM end_at)::float8
         FROM intervals ORDER BY start_at",
        &[],
    )
    .await
    .expect("intervals")
    .into_iter()
    .map(|row| Interval {
        epoch: row.get(0),
        holder: row.get(1),
        start: row.get(2),
        end: row.get(3),
    })
    .collect()
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the data database");
    tokio::spawn(connection);
    client
}

/// The first interval that starts after `after` (by the database's clock),
/// waiting up to `within` for it.
async fn leader_after(url: &str, after: f64, within: Duration) -> Interval {
    let until = std::time::Instant::now() + within;
    loop {
        // A fresh connection each time: the server may have restarted.
        if let Ok((db, connection)) = tokio_postgres::connect(url, NoTls).await {
            tokio::spawn(connection);
            if let Some(next) = intervals(&db).await.into_iter().find(|i| i.start > after) {
                return next;
            }
        }
        assert!(
            std::time::Instant::now() < until,
            "no leader within {within:?} after {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(backend: &str) -> Option<String> {
    let pg = servers::Postgres::start()?;
    let mut etcd = match backend {
        "etcd" => Some(servers::Etcd::start()?),
        _ => None,
    };
    let url = pg.url();
    let db = connect(&url).await;
    db.batch_execute(
        "CREATE TABLE intervals (id bigserial PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL,
             start_at timestamptz NOT NULL, end_at timestamptz NOT NULL)",
    )
    .await
    .expect("the intervals table");
    drop(db);
    let lease_url = etcd.as_ref().map_or_else(|| url.clone(), |e| e.url());
    let mut replicas = Replicas::new(
        std::env::temp_dir().join(format!(
            "supervised-failover-{}-{backend}",
            std::process::id()
        )),
        vec![
            ("LEASE_REPLICA".into(), "1".into()),
            ("BACKEND".into(), backend.into()),
            ("DATA_URL".into(), url.clone()),
            ("LEASE_URL".into(), lease_url),
        ],
    );
    let begun = now_unix();
    for holder in ["replica-a", "replica-b", "replica-c"] {
        replicas.spawn(holder, &[]);
    }
    let bound = (TTL + INTERVAL).as_secs_f64();
    leader_after(&url, begun, Duration::from_secs(15)).await;

    // Rounds of the three failovers, for about 45 s in all.
    let mut after_kills = Vec::new();
    let mut pauses = Vec::new();
    let mut restarts = Vec::new();
    while after_kills.is_empty() || now_unix() - begun < 25.0 {
        // 1. kill -9 of the leader.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed = leader_now(&url).await;
        let t_kill = now_unix();
        replicas.kill9(&killed.holder);
        let next = leader_after(&url, t_kill, Duration::from_secs(10)).await;
        after_kills.push(next.start - t_kill);
        replicas.spawn(&killed.holder, &[]);

        // 2. SIGSTOP of the leader for longer than the ttl, then SIGCONT.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let paused = leader_now(&url).await;
        let t_stop = now_unix();
        replicas.signal(&paused.holder, "-STOP");
        let next = leader_after(&url, t_stop, Duration::from_secs(10)).await;
        let after_stop = next.start - t_stop;
        let stopped_for = TTL + Duration::from_secs(2);
        tokio::time::sleep(
            stopped_for.saturating_sub(Duration::from_secs_f64(now_unix() - t_stop)),
        )
        .await;
        replicas.signal(&paused.holder, "-CONT");
        let t_cont = now_unix();
        pauses.push((paused, t_stop, t_cont, after_stop));
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 3. A restart of the backend server.
        let t_down = now_unix();
        servers::restart_store(&pg, etcd.as_mut(), Duration::from_secs(1)).await;
        let t_up = now_unix();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resumed = leader_now_or_after(&url, t_up).await;
        assert!(resumed.end > t_up, "a leader after the restart");
        restarts.push((t_down, t_up));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    replicas.stop_all();

    // ---- the verdict --------------------------------------------------------
    let db = connect(&url).await;
    let all = intervals(&db).await;
    let timeline: Vec<String> = all
        .iter()
        .map(|i| {
            format!(
                "{} epoch {} [{:+.2}, {:+.2}]",
                i.holder,
                i.epoch,
                i.start - begun,
                i.end - begun
            )
        })
        .collect();
    // At least the first leader and one after each kill and each pause.
    assert!(
        all.len() > after_kills.len() + pauses.len(),
        "{timeline:#?}"
    );
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(a.end < b.start, "overlap between {a:?} and {b:?}");
        assert!(
            a.epoch < b.epoch,
            "epochs do not increase: {a:?} then {b:?}"
        );
    }
    for after_kill in &after_kills {
        assert!(
            *after_kill <= bound,
            "failover after kill -9 took {after_kill:.2} s (bound {bound} s): {timeline:#?}"
        );
    }
    for (paused, t_stop, t_cont, after_stop) in &pauses {
        assert!(
            *after_stop <= bound,
            "failover after SIGSTOP took {after_stop:.2} s (bound {bound} s): {timeline:#?}"
        );
        // The paused leader's grant could not outlive t_stop + ttl; it
        // wrote nothing after that, nor after it was resumed.
        for i in all.iter().filter(|i| i.epoch == paused.epoch) {
            assert!(
                i.end < t_stop + TTL.as_secs_f64(),
                "the paused leader wrote after its lease expired: {i:?}"
            );
            assert!(
                i.end < *t_cont,
                "the resumed leader wrote under its old epoch: {i:?}"
            );
        }
    }
    // Around each server restart, the longest gap without a leader is
    // bounded by the downtime + ttl + one acquire interval.
    let mut gaps = Vec::new();
    for (t_down, t_up) in &restarts {
        let gap = all
            .windows(2)
            .filter(|p| p[1].start >= *t_down && p[0].end <= t_up + bound)
            .map(|p| p[1].start - p[0].end)
            .fold(0.0_f64, f64::max);
        let down_for = t_up - t_down;
        assert!(
            gap <= down_for + bound,
            "no leader for {gap:.2} s around a {down_for:.2} s restart: {timeline:#?}"
        );
        gaps.push((gap, down_for));
    }
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.2}-{hi:.2} s")
    };
    let stops: Vec<f64> = pauses.iter().map(|p| p.3).collect();
    let restart_gaps: Vec<f64> = gaps.iter().map(|g| g.0).collect();
    let downs: Vec<f64> = gaps.iter().map(|g| g.1).collect();
    Some(format!(
        "{} intervals in {:.0} s, {} rounds; failover after kill -9 {}, after SIGSTOP {}; \
         longest gap around a {} server restart {} (bound ttl + interval = {bound} s)",
        all.len(),
        now_unix() - begun,
        after_kills.len(),
        range(&after_kills),
        range(&stops),
        range(&downs),
        range(&restart_gaps),
    ))
}

/// The interval being written now (its end within the last 300 ms).
async fn leader_now(url: &str) -> Interval {
    for _ in 0..100 {
        let db = connect(url).await;
        let now: f64 = db
            .query_one("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8", &[])
            .await
            .expect("now")
            .get(0);
        if let Some(live) = intervals(&db)
            .await
            .into_iter()
            .rev()
            .find(|i| i.end > now - 0.3)
        {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no live leader");
}

/// A leader writing after `after`, waiting for it (up to 20 s).
async fn leader_now_or_after(url: &str, after: f64) -> Interval {
    for _ in 0..200 {
        if let Ok((db, connection)) = tokio_postgres::connect(url, NoTls).await {
            tokio::spawn(connection);
            if let Some(live) = intervals(&db)
                .await
                .into_iter()
                .rev()
                .find(|i| i.end > after)
            {
                return live;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader after the server restart");
}
