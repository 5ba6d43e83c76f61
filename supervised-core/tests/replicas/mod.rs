//! Replica processes for the `harness = false` tests that prove leases and
//! shards across processes: each replica is the test's own binary, run
//! again with a marker variable set, its stderr kept in a file of its own
//! (appended across its restarts) and printed when the test fails.

#![allow(dead_code)] // Each test uses a part.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The test binary's `main`: a replica when `marker` is set in its
/// environment (exiting with the code `replica` gives), else the test,
/// `scenario` against PostgreSQL then etcd (or the one named on the
/// command line), each printed as libtest prints a test.
pub fn main<R, S>(
    marker: &str,
    test: &str,
    replica: impl FnOnce() -> R,
    scenario: impl Fn(&'static str) -> S,
) where
    R: Future<Output = i32>,
    S: Future<Output = Option<String>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if std::env::var_os(marker).is_some() {
        std::process::exit(runtime.block_on(replica()));
    }
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut ran = 0;
    for backend in ["postgres", "etcd"] {
        if only.as_deref().is_some_and(|o| !backend.contains(o)) {
            continue;
        }
        print!("test {test}_{backend} ... ");
        let started = std::time::Instant::now();
        if let Some(report) = runtime.block_on(scenario(backend)) {
            println!("ok ({:.1} s)", started.elapsed().as_secs_f64());
            println!("  {backend}: {report}");
        }
        ran += 1;
    }
    println!("test result: ok. {ran} passed; 0 failed");
}

/// Now, as Unix seconds (one machine's clock, which every replica shares).
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The replica processes of one scenario.
pub struct Replicas {
    children: Vec<(String, Child)>,
    /// Set in every replica's environment (the marker, the store's URL).
    pub env: Vec<(String, String)>,
    /// Where each replica's log (and whatever else a test keeps) goes.
    pub dir: PathBuf,
    /// The replicas whose last log lines a failing test prints.
    names: Vec<String>,
}

impl Replicas {
    /// No replica yet; `dir` is made (and removed when the test passes).
    pub fn new(dir: PathBuf, env: Vec<(String, String)>) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the replicas");
        Replicas {
            children: Vec::new(),
            env,
            dir,
            names: Vec::new(),
        }
    }

    /// Starts (or starts again) the replica `holder`, with `env` beside
    /// the common variables and `HOLDER`.
    pub fn spawn(&mut self, holder: &str, env: &[(&str, String)]) {
        let mut command = Command::new(std::env::current_exe().expect("this binary"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{holder}.log")))
            .expect("a replica log");
        command
            .env("HOLDER", holder)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("a replica starts");
        self.children.retain(|(h, _)| h != holder);
        self.children.push((holder.to_owned(), child));
        if !self.names.iter().any(|n| n == holder) {
            self.names.push(holder.to_owned());
        }
    }

    pub fn pid(&self, holder: &str) -> u32 {
        self.children
            .iter()
            .find(|(h, _)| h == holder)
            .map(|(_, c)| c.id())
            .expect("a replica of that name")
    }

    /// `kill -9`, waited for.
    pub fn kill9(&mut self, holder: &str) {
        if let Some((_, child)) = self.children.iter_mut().find(|(h, _)| h == holder) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to `holder`.
    pub fn signal(&self, holder: &str, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid(holder).to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    /// SIGTERM to `holder`, waited for: its exit code.
    pub fn terminate(&mut self, holder: &str) -> Option<i32> {
        self.signal(holder, "-TERM");
        let at = self.children.iter().position(|(h, _)| h == holder)?;
        let (_, mut child) = self.children.remove(at);
        child.wait().ok()?.code()
    }

    /// SIGTERM to every replica, each waited for.
    pub fn stop_all(&mut self) {
        for (holder, _) in &self.children {
            self.signal(holder, "-TERM");
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for holder in &self.names {
                let log = std::fs::read_to_string(self.dir.join(format!("{holder}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- {holder}, last lines ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            eprintln!("kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
