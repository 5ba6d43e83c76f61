//! [`Postgres`]: leases in one PostgreSQL table, decided by the database's
//! clock in single statements.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, NoTls};

use super::{Acquired, Backend, BoxFuture, Grant, Holder, LeaseError, Renewal};
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
    let row = client
        .query_one("SELECT to_regclass('supervised_leases') IS NOT NULL", &[])
        .await
        .map_err(driver)?;
    Ok(row.get::<_, bool>(0))
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
            match client.execute(RENEW, &params).await {
                Ok(1) => Ok(Renewal::Renewed),
                Ok(_) => Ok(Renewal::Lost(self.holder_of(&client, &grant.name).await?)),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let client = self.call().await?;
            match client
                .execute(RELEASE, &[&grant.name, &epoch(grant.epoch)])
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }
}
