//! [`Postgres`]: leases in one PostgreSQL table, decided by the database's
//! clock in single statements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, NoTls};

use super::{Acquired, Backend, Bound, BoxFuture, Grant, Holder, LeaseError, Listed, Renewal};
use crate::text::Escaped;

/// The table's definition, created if absent.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS supervised_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
)";

/// Takes the lease if it is free or expired, and bumps its epoch, in one
/// statement under the row's lock: the database's clock decides expiry.
const ACQUIRE: &str = "INSERT INTO supervised_leases AS l (name, holder, epoch, expires_at)
    VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
    ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
        WHERE l.expires_at <= clock_timestamp()
    RETURNING epoch";

const HOLDER: &str = "SELECT holder, epoch,
        GREATEST(EXTRACT(EPOCH FROM expires_at - clock_timestamp()), 0)::float8
    FROM supervised_leases WHERE name = $1 AND expires_at > clock_timestamp()";

const RENEW: &str = "UPDATE supervised_leases
    SET expires_at = clock_timestamp() + make_interval(secs => $3)
    WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()";

const RELEASE: &str = "UPDATE supervised_leases SET expires_at = clock_timestamp()
    WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()";

/// The bound grants' table (see [`Backend::acquire_bound`]), created if
/// absent and if the role may: without it, plain leases work as before.
const CREATE_BOUND: &str = "CREATE TABLE IF NOT EXISTS supervised_bound_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    member text NOT NULL,
    member_epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
)";

/// [`RENEW`], extending the member's bound grants in the same statement:
/// a bound grant's expiry is its member's, always, so it cannot outlive
/// it nor be taken while it lives. One request per member, however many
/// grants are bound to it. (Each row is compared with the clock on its
/// own; a renewal run at the very instant of the expiry could extend the
/// member and not a bucket. The shard keeper never trusts such an answer:
/// it sends renewals only until 3/5 ttl after the last confirmed one and
/// waits at most ttl/3 for each, so a renewal it believes runs before
/// 14/15 ttl.)
const RENEW_WITH_BOUND: &str = "WITH m AS (
        UPDATE supervised_leases
        SET expires_at = clock_timestamp() + make_interval(secs => $3)
        WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()
        RETURNING expires_at
    ), b AS (
        UPDATE supervised_bound_leases SET expires_at = (SELECT expires_at FROM m)
        WHERE member = $1 AND member_epoch = $2 AND expires_at > clock_timestamp()
            AND EXISTS (SELECT 1 FROM m)
    )
    SELECT count(*) FROM m";

/// [`RELEASE`], ending the member's bound grants with it.
const RELEASE_WITH_BOUND: &str = "WITH m AS (
        UPDATE supervised_leases SET expires_at = clock_timestamp()
        WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()
        RETURNING 1
    )
    UPDATE supervised_bound_leases SET expires_at = clock_timestamp()
    WHERE member = $1 AND member_epoch = $2 AND expires_at > clock_timestamp()
        AND EXISTS (SELECT 1 FROM m)";

/// Takes a bound grant that is free or expired, bumping its epoch, with
/// its member's expiry, if the member ($3 at epoch $4) is live.
const ACQUIRE_BOUND: &str = "WITH m AS (
        SELECT expires_at FROM supervised_leases
        WHERE name = $3 AND epoch = $4 AND expires_at > clock_timestamp()
    )
    INSERT INTO supervised_bound_leases AS b (name, holder, epoch, member, member_epoch, expires_at)
    SELECT $1, $2, 1, $3, $4, m.expires_at FROM m
    ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, epoch = b.epoch + 1, member = EXCLUDED.member,
            member_epoch = EXCLUDED.member_epoch, expires_at = EXCLUDED.expires_at
        WHERE b.expires_at <= clock_timestamp()
    RETURNING epoch";

const MEMBER_LIVE: &str = "SELECT 1 FROM supervised_leases
    WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()";

const BOUND_HOLDER: &str = "SELECT holder, epoch,
        GREATEST(EXTRACT(EPOCH FROM expires_at - clock_timestamp()), 0)::float8
    FROM supervised_bound_leases WHERE name = $1 AND expires_at > clock_timestamp()";

const RELEASE_BOUND: &str = "UPDATE supervised_bound_leases SET expires_at = clock_timestamp()
    WHERE name = $1 AND epoch = $2 AND expires_at > clock_timestamp()";

const LIST: &str = "SELECT name, holder, epoch,
        GREATEST(EXTRACT(EPOCH FROM expires_at - clock_timestamp()), 0)::float8
    FROM supervised_leases WHERE starts_with(name, $1) AND expires_at > clock_timestamp()";

/// Leases in a PostgreSQL table, `supervised_leases` (cargo feature
/// `postgres`).
///
/// One row per lease name holds the holder, the epoch and the expiry. Each
/// call is one statement whose `WHERE` compares the expiry with the
/// database's `clock_timestamp()`, so the replicas' clocks never matter and
/// two replicas racing for a free lease cannot both win (the row's lock
/// orders them). The epoch is the row's counter, bumped by every grant.
///
/// The table is created if absent (`CREATE TABLE IF NOT EXISTS`); a role
/// that may not create it gets an `Err` from [`connect`](Postgres::connect)
/// that says so and gives the statement to run as an owner:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS supervised_leases (
///     name text PRIMARY KEY,
///     holder text NOT NULL,
///     epoch bigint NOT NULL,
///     expires_at timestamptz NOT NULL
/// );
/// GRANT SELECT, INSERT, UPDATE ON supervised_leases TO app;
/// ```
///
/// Sharded groups also need `supervised_bound_leases`, made the same way
/// (a role that may not create it gets a WARN at connect, and an `Err`
/// from the bound-grant calls that gives the statement):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS supervised_bound_leases (
///     name text PRIMARY KEY,
///     holder text NOT NULL,
///     epoch bigint NOT NULL,
///     member text NOT NULL,
///     member_epoch bigint NOT NULL,
///     expires_at timestamptz NOT NULL
/// );
/// GRANT SELECT, INSERT, UPDATE ON supervised_bound_leases TO app;
/// ```
///
/// A bound grant's row carries its member's expiry, and the member's
/// renewal extends both in one statement, so a bound grant can neither
/// outlive its member nor be taken while the member lives.
///
/// One connection, opened on first use and again after it breaks; no TLS
/// (put the database on a private network, or terminate TLS in front of it).
///
/// ```no_run
/// # async fn start() -> Result<(), supervised::lease::LeaseError> {
/// let leases = supervised::lease::Postgres::connect("postgres://app@db/app", "replica-a").await?;
/// supervised::lease::install(leases);
/// # Ok(()) }
/// ```
pub struct Postgres {
    config: Config,
    holder: String,
    client: Mutex<Option<Arc<Client>>>,
    /// Whether `supervised_bound_leases` exists (looked up on each
    /// connection): renewals and releases touch it only then.
    bound_table: AtomicBool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` string) as the holder `holder`, and creates the lease
    /// table if it is absent.
    ///
    /// `Err` for what cannot heal by itself: a malformed URL, or a role
    /// that may not create the missing table. A database that cannot be
    /// reached (down, unknown host) is not an error here: it is logged
    /// with the driver's message, and every lease call tries again, so the
    /// gated subsystems stand by until it answers. Connecting gives up
    /// after 5 s unless the URL sets `connect_timeout`.
    pub async fn connect(url: &str, holder: &str) -> Result<Postgres, LeaseError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| LeaseError::new(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let leases = Postgres {
            config,
            holder: holder.to_owned(),
            client: Mutex::new(None),
            bound_table: AtomicBool::new(false),
        };
        match leases.client().await {
            Ok(_) => {}
            Err(Opened::Refused(e)) => return Err(e),
            Err(Opened::Unreachable(e)) => tracing::warn!(
                target: "supervised", holder = %Escaped(holder), error = %Escaped(e.message()),
                "PostgreSQL lease store unreachable at startup; lease-gated subsystems stand by until it answers"
            ),
        }
        Ok(leases)
    }

    /// The open connection, opening one (and the table) if there is none.
    async fn client(&self) -> Result<Arc<Client>, Opened> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| Opened::Unreachable(driver(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "supervised", error = %e, "PostgreSQL lease connection ended");
            }
        });
        ensure_table(&client).await?;
        // Once usable, always used: a renewal that skipped a bound grant
        // would let it expire under a membership that lives on. (A table
        // that went away makes renewals fail, which gives the membership
        // up: safe.) A check that fails now leaves the flag as it was.
        if ensure_bound_table(&client, &self.holder).await {
            self.bound_table.store(true, Ordering::Relaxed);
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn call(&self) -> Result<Arc<Client>, LeaseError> {
        self.client().await.map_err(|e| match e {
            Opened::Refused(e) | Opened::Unreachable(e) => e,
        })
    }

    /// Forgets a connection that failed a call, so the next one reconnects.
    async fn failed(&self, e: tokio_postgres::Error) -> LeaseError {
        if e.is_closed() || e.as_db_error().is_none() {
            *self.client.lock().await = None;
        }
        driver(e)
    }

    async fn holder_of(&self, client: &Client, name: &str) -> Result<Holder, LeaseError> {
        match client.query_opt(HOLDER, &[&name]).await {
            Ok(Some(row)) => {
                let (holder, epoch, left): (String, i64, f64) =
                    (row.get(0), row.get(1), row.get(2));
                Ok(Holder::new(
                    &holder,
                    u64::try_from(epoch).unwrap_or(0),
                    Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO),
                ))
            }
            Ok(None) => Ok(Holder::default()),
            Err(e) => Err(self.failed(e).await),
        }
    }
}

/// Why a connection could not be had.
enum Opened {
    /// The database answered no: retrying will not help.
    Refused(LeaseError),
    /// It could not be reached; the next call tries again.
    Unreachable(LeaseError),
}

async fn ensure_table(client: &Client) -> Result<(), Opened> {
    // Looked up first: a role without CREATE on the schema can still use
    // a table an owner made.
    if table_exists(client).await.map_err(Opened::Unreachable)? {
        return Ok(());
    }
    let Err(e) = client.batch_execute(CREATE).await else {
        return Ok(());
    };
    // Replicas starting together race to create it, and PostgreSQL lets
    // all but one fail (a unique violation in its catalog, despite `IF NOT
    // EXISTS`): the table is there, which is all that is needed.
    if table_exists(client).await.map_err(Opened::Unreachable)? {
        return Ok(());
    }
    let message = driver(e);
    Err(Opened::Refused(LeaseError::new(format!(
        "cannot create the lease table supervised_leases ({message}); create it as its owner with: {CREATE}; and GRANT SELECT, INSERT, UPDATE ON supervised_leases to this role"
    ))))
}

async fn table_exists(client: &Client) -> Result<bool, LeaseError> {
    exists(client, "supervised_leases").await
}

async fn exists(client: &Client, table: &str) -> Result<bool, LeaseError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(driver)?;
    Ok(row.get::<_, bool>(0))
}

/// Whether the bound grants' table is there for this role (made if it
/// may); one WARN if not: plain leases work without it.
async fn ensure_bound_table(client: &Client, holder: &str) -> bool {
    if usable_bound_table(client).await {
        return true;
    }
    let created = client.batch_execute(CREATE_BOUND).await;
    // A racing replica may have made it (see `ensure_table`).
    if usable_bound_table(client).await {
        return true;
    }
    if exists(client, "supervised_bound_leases").await == Ok(true) {
        tracing::warn!(
            target: "supervised", holder = %Escaped(holder),
            "this role may not use the table supervised_bound_leases: sharded groups cannot run on this store until it is granted SELECT, INSERT, UPDATE on it"
        );
        return false;
    }
    if let Err(e) = created {
        tracing::warn!(
            target: "supervised", holder = %Escaped(holder), error = %Escaped(driver(e).message()),
            "cannot create the table supervised_bound_leases: sharded groups cannot run on this store until an owner creates it"
        );
    }
    false
}

/// Whether the bound grants' table exists and this role may use it (a
/// renewal touches it only then, so a role granted the plain table alone
/// keeps working).
async fn usable_bound_table(client: &Client) -> bool {
    let usable = client
        .query_one(
            "SELECT CASE WHEN to_regclass('supervised_bound_leases') IS NULL THEN false
                ELSE has_table_privilege('supervised_bound_leases', 'SELECT, INSERT, UPDATE') END",
            &[],
        )
        .await;
    usable.is_ok_and(|row| row.get::<_, bool>(0))
}

fn no_bound_table() -> LeaseError {
    LeaseError::new(format!(
        "the table supervised_bound_leases is missing or this role may not use it; create it as its owner with: {CREATE_BOUND}; and GRANT SELECT, INSERT, UPDATE ON supervised_bound_leases to this role"
    ))
}

/// The driver's message, with the server's own when there is one, or
/// else with its causes: the driver's own text for an unreachable server
/// is only "error connecting to server", and the operator needs the why
/// (a name that does not resolve, a refused connection).
fn driver(e: tokio_postgres::Error) -> LeaseError {
    if let Some(db) = e.as_db_error() {
        return LeaseError::new(format!("{}: {}", db.code().code(), db.message()));
    }
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        cause = error.source();
    }
    LeaseError::new(message)
}

fn epoch(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

impl Backend for Postgres {
    fn holder(&self) -> &str {
        &self.holder
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            let row = match client
                .query_opt(ACQUIRE, &[&name, &self.holder, &ttl.as_secs_f64()])
                .await
            {
                Ok(row) => row,
                Err(e) => return Err(self.failed(e).await),
            };
            match row {
                Some(row) => {
                    let granted: i64 = row.get(0);
                    Ok(Acquired::Granted(Grant::new(
                        name,
                        &self.holder,
                        u64::try_from(granted).unwrap_or(0),
                        ttl,
                    )))
                }
                None => Ok(Acquired::Held(self.holder_of(&client, name).await?)),
            }
        })
    }

    fn renew<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<Renewal, LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&grant.name, &epoch(grant.epoch), &grant.ttl.as_secs_f64()];
            let renewed = if self.bound_table.load(Ordering::Relaxed) {
                client
                    .query_one(RENEW_WITH_BOUND, &params)
                    .await
                    .map(|row| row.get::<_, i64>(0) as u64)
            } else {
                client.execute(RENEW, &params).await
            };
            match renewed {
                Ok(1) => Ok(Renewal::Renewed),
                Ok(_) => Ok(Renewal::Lost(self.holder_of(&client, &grant.name).await?)),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            let statement = if self.bound_table.load(Ordering::Relaxed) {
                RELEASE_WITH_BOUND
            } else {
                RELEASE
            };
            match client
                .execute(statement, &[&grant.name, &epoch(grant.epoch)])
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }

    fn acquire_bound<'a>(
        &'a self,
        name: &'a str,
        member: &'a Grant,
    ) -> BoxFuture<'a, Result<Bound, LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            if !self.bound_table.load(Ordering::Relaxed) {
                return Err(no_bound_table());
            }
            let member_epoch = epoch(member.epoch);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&name, &self.holder, &member.name, &member_epoch];
            match client.query_opt(ACQUIRE_BOUND, &params).await {
                Ok(Some(row)) => {
                    let granted: i64 = row.get(0);
                    return Ok(Bound::Granted(Grant::new(
                        name,
                        &self.holder,
                        u64::try_from(granted).unwrap_or(0),
                        member.ttl,
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(self.failed(e).await),
            }
            // Not granted: the member is gone, or another holds the name.
            match client
                .query_opt(MEMBER_LIVE, &[&member.name, &member_epoch])
                .await
            {
                Ok(None) => return Ok(Bound::MemberLost),
                Ok(Some(_)) => {}
                Err(e) => return Err(self.failed(e).await),
            }
            match client.query_opt(BOUND_HOLDER, &[&name]).await {
                Ok(Some(row)) => {
                    let (holder, epoch, left): (String, i64, f64) =
                        (row.get(0), row.get(1), row.get(2));
                    Ok(Bound::Held(Holder::new(
                        &holder,
                        u64::try_from(epoch).unwrap_or(0),
                        Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO),
                    )))
                }
                Ok(None) => Ok(Bound::Held(Holder::default())),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }

    fn release_bound<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            if !self.bound_table.load(Ordering::Relaxed) {
                return Err(no_bound_table());
            }
            match client
                .execute(RELEASE_BOUND, &[&grant.name, &epoch(grant.epoch)])
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            match client.query(LIST, &[&prefix]).await {
                Ok(rows) => Ok(rows
                    .iter()
                    .map(|row| {
                        let (name, holder, epoch, left): (String, String, i64, f64) =
                            (row.get(0), row.get(1), row.get(2), row.get(3));
                        Listed::new(&name, &holder, u64::try_from(epoch).unwrap_or(0))
                            .with_expires_in(
                                Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO),
                            )
                    })
                    .collect()),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }
}
