//! The built-in lease backends against real servers (PostgreSQL 15 and
//! etcd, started here on 127.0.0.1): the conformance suite, a role that
//! may not create the table, a server down at startup and back, and an
//! unknown host.
#![cfg(all(feature = "postgres", feature = "etcd"))]

mod servers;

use std::time::Duration;

use supervised_core::lease::{conformance, Acquired, Backend, Bound, Etcd, Postgres, Renewal};

const TTL: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let Some(pg) = servers::Postgres::start() else {
        return;
    };
    let leases = Postgres::connect(&pg.url(), "replica-a").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), conformance::run(&leases))
        .await
        .expect("the suite finishes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_conformance_suite() {
    let Some(etcd) = servers::Etcd::start() else {
        return;
    };
    let leases = Etcd::connect([etcd.url()], "replica-a").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), conformance::run(&leases))
        .await
        .expect("the suite finishes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_bound_grant_suite() {
    let Some(pg) = servers::Postgres::start() else {
        return;
    };
    let leases = Postgres::connect(&pg.url(), "replica-a").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), conformance::run_bound(&leases))
        .await
        .expect("the suite finishes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_bound_grant_suite() {
    let Some(etcd) = servers::Etcd::start() else {
        return;
    };
    let leases = Etcd::connect([etcd.url()], "replica-a").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), conformance::run_bound(&leases))
        .await
        .expect("the suite finishes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_create_the_table_gets_a_clear_error() {
    let Some(pg) = servers::Postgres::start() else {
        return;
    };
    let (admin, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // PostgreSQL 15: no CREATE on schema public for ordinary roles.
    admin.batch_execute("CREATE ROLE app LOGIN").await.unwrap();

    let error = Postgres::connect(&pg.url_as("app"), "replica-a")
        .await
        .expect_err("the role cannot create the table");
    let message = error.to_string();
    assert!(
        message.contains("cannot create the lease table supervised_leases"),
        "{message}"
    );
    assert!(message.contains("permission denied"), "{message}");
    assert!(
        message.contains("CREATE TABLE IF NOT EXISTS supervised_leases"),
        "{message}"
    );

    // Once an owner made it (as the message says), the role works.
    Postgres::connect(&pg.url(), "owner").await.unwrap();
    admin
        .batch_execute("GRANT SELECT, INSERT, UPDATE ON supervised_leases TO app")
        .await
        .unwrap();
    let leases = Postgres::connect(&pg.url_as("app"), "replica-a")
        .await
        .unwrap();
    let Ok(Acquired::Granted(member)) = leases.acquire("x", TTL).await else {
        panic!("the role takes a plain lease");
    };
    // The bound grants' table is the owner's, not granted: plain leases
    // renew as before, and a bound grant says what to grant.
    assert_eq!(leases.renew(&member).await, Ok(Renewal::Renewed));
    let error = leases
        .acquire_bound("bucket/0", &member)
        .await
        .expect_err("no rights on supervised_bound_leases");
    assert!(
        error
            .to_string()
            .contains("GRANT SELECT, INSERT, UPDATE ON supervised_bound_leases"),
        "{error}"
    );
    admin
        .batch_execute("GRANT SELECT, INSERT, UPDATE ON supervised_bound_leases TO app")
        .await
        .unwrap();
    let leases = Postgres::connect(&pg.url_as("app"), "replica-a")
        .await
        .unwrap();
    assert!(matches!(
        leases.acquire_bound("bucket/0", &member).await,
        Ok(Bound::Granted(_))
    ));
    assert_eq!(leases.renew(&member).await, Ok(Renewal::Renewed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_at_startup_is_an_error_per_call_then_recovers() {
    let Some(pg) = servers::Postgres::start() else {
        return;
    };
    pg.stop();
    let leases = Postgres::connect(&pg.url(), "replica-a")
        .await
        .expect("an unreachable database is not an error at connect");
    let error = leases.acquire("x", TTL).await.expect_err("down");
    assert!(
        error.to_string().to_lowercase().contains("connect"),
        "{error}"
    );
    pg.start_again();
    assert!(matches!(
        leases.acquire("x", TTL).await,
        Ok(Acquired::Granted(_))
    ));
    // And after a restart mid-run, it reconnects by itself.
    pg.stop();
    assert!(leases.acquire("y", TTL).await.is_err());
    pg.start_again();
    assert!(matches!(
        leases.acquire("y", TTL).await,
        Ok(Acquired::Granted(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_and_bad_urls_say_so() {
    let malformed = Postgres::connect("postgres://app@db:notaport/app", "a")
        .await
        .expect_err("a malformed URL is refused");
    assert!(
        malformed.to_string().starts_with("invalid PostgreSQL URL"),
        "{malformed}"
    );

    let leases = Postgres::connect("postgres://app@unknown-host.invalid/app", "a")
        .await
        .expect("an unknown host is reported per call, not at connect");
    let error = leases.acquire("x", TTL).await.expect_err("unknown host");
    // The driver's "error connecting to server" alone does not say why:
    // the message carries its causes, down to the failed name lookup.
    let text = error.to_string();
    assert!(text.starts_with("error connecting to server: "), "{text}");
    assert!(text.contains("failed to lookup address"), "{text}");

    let etcd = Etcd::connect(["http://unknown-host.invalid:2379"], "a").await;
    match etcd {
        Ok(etcd) => {
            let error = etcd.acquire("x", TTL).await.expect_err("unknown host");
            assert!(error.to_string().starts_with("etcd: "), "{error}");
        }
        Err(error) => assert!(error.to_string().starts_with("etcd: "), "{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_all_get_the_table() {
    let Some(pg) = servers::Postgres::start() else {
        return;
    };
    // Several rounds of eight replicas racing to create the table on a
    // fresh database each time: PostgreSQL fails all but one `CREATE TABLE
    // IF NOT EXISTS` with a unique violation when they race.
    for round in 0..5 {
        let (admin, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute("DROP TABLE IF EXISTS supervised_leases")
            .await
            .unwrap();
        let url = pg.url();
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move { Postgres::connect(&url, &format!("replica-{i}")).await })
            })
            .collect();
        for racer in racers {
            let connected = racer.await.unwrap();
            assert!(connected.is_ok(), "round {round}: {:?}", connected.err());
        }
    }
}
