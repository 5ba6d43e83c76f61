//! Real PostgreSQL and etcd servers for the lease tests, started by the
//! tests themselves on 127.0.0.1 in a temporary directory, and stopped when
//! dropped.
//!
//! When a server is not installed the test is skipped with a loud message,
//! unless `SUPERVISED_REQUIRE_SERVERS=1` (set by `.ci/run`), which makes
//! it fail instead.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Either skips (returning `None`, after a loud message) or fails, when `what` is missing.
fn missing(what: &str) -> Option<()> {
    if std::env::var("SUPERVISED_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
        panic!("{what} is not installed, and SUPERVISED_REQUIRE_SERVERS=1 forbids skipping");
    }
    eprintln!();
    eprintln!("################################################################");
    eprintln!("## SKIPPED: {what} is not installed; this real-server test did not run.");
    eprintln!("## Install it (apt-get install -y postgresql etcd-server) or run .ci/run.");
    eprintln!("################################################################");
    None
}

fn is_root() -> bool {
    // `id -u` keeps the test free of libc.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn scratch(prefix: &str) -> PathBuf {
    // Unique per process and call, without a random-number crate (the
    // facade's tests use this module too).
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "supervised-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn wait_for_port(port: u16, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// PostgreSQL's binaries: Debian's newest versioned directory, or `PATH`.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    if let Some(dir) = dirs.pop() {
        return Some(dir);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty())
        .then(|| Path::new(&path).parent().map(Path::to_path_buf))
        .flatten()
}

/// A PostgreSQL cluster of its own.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// `initdb` refuses root: as root, the cluster runs as `postgres`.
    as_postgres: bool,
}

impl Postgres {
    pub fn start() -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            missing("PostgreSQL (initdb, pg_ctl)")?;
            unreachable!()
        };
        let dir = scratch("pg");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {dir:?} to postgres");
        }
        let pg = Postgres {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = pg.dir.join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-w", "-t", "30", "-l"])
            .arg(self.dir.join("log"))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "PostgreSQL listens"
        );
    }

    /// Stops the server at once (`immediate`: as a crash would).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A URL as the superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL as `role`.
    pub fn url_as(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An etcd member of its own.
pub struct Etcd {
    pub port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    pub fn start() -> Option<Etcd> {
        if Command::new("etcd").arg("--version").output().is_err() {
            missing("etcd (etcd-server)")?;
        }
        let mut etcd = Etcd {
            port: free_port(),
            peer_port: free_port(),
            dir: scratch("etcd"),
            child: None,
        };
        etcd.start_again();
        Some(etcd)
    }

    /// Starts the (stopped) member on its data and waits until it listens.
    pub fn start_again(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--name", "lease-test"])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("lease-test={peer}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "etcd listens"
        );
    }

    /// Kills the member (SIGKILL, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops the store a failover test runs on (etcd when there is one, else
/// PostgreSQL) for `down`, then starts it again on its port and data.
pub async fn restart_store(pg: &Postgres, etcd: Option<&mut Etcd>, down: Duration) {
    match etcd {
        Some(etcd) => {
            etcd.stop();
            tokio::time::sleep(down).await;
            etcd.start_again();
        }
        None => {
            pg.stop();
            tokio::time::sleep(down).await;
            pg.start_again();
        }
    }
}
