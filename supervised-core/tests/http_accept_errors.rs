//! `serve` when accepting fails: with the process out of file descriptors
//! (`EMFILE`), the accept loop logs one WARN for the episode, pauses instead
//! of spinning, and takes connections again once descriptors are free.
//!
//! Its own test binary (so its own process): it lowers the process's
//! `RLIMIT_NOFILE`, which no other test may see.
#![cfg(all(feature = "http", unix))]
// `setrlimit` and `getrlimit` are C calls.
#![allow(unsafe_code)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use supervised_core::http::{serve_listener, ServeOptions};
use supervised_core::{CancellationToken, Registry};
use tokio::net::TcpListener;

fn open_files_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` only writes the struct we pass.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_open_files_limit(limit: libc::rlimit) {
    // SAFETY: `setrlimit` only reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// The lowest free descriptor number: how many are in use, roughly.
fn next_free_fd() -> libc::rlim_t {
    let file = std::fs::File::open("/dev/null").expect("open /dev/null");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    fd as libc::rlim_t
}

#[tokio::test(flavor = "current_thread")]
async fn out_of_descriptors_the_accept_loop_warns_once_pauses_and_recovers() {
    let (events, _guard) = common::capture();
    let registry = Registry::new();
    registry.subsystem("relay").beat();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_listener(
        listener,
        ServeOptions::no_auth(shutdown.clone()).registry(&registry),
    ));
    tokio::task::yield_now().await;

    // Client sockets, opened while descriptors are still free; the kernel
    // completes their handshakes and queues them for accept.
    let original = open_files_limit();
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(std::net::TcpStream::connect(addr).expect("connect"));
    }
    // No descriptor left for the server to accept into.
    set_open_files_limit(libc::rlimit {
        rlim_cur: next_free_fd(),
        rlim_max: original.rlim_max,
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let warnings = events
        .all()
        .into_iter()
        .filter(|e| {
            e.message()
                .starts_with("accepting an HTTP connection failed")
        })
        .count();
    let attempts = events
        .all()
        .into_iter()
        .filter(|e| e.message() == "accept failed; pausing")
        .count();
    set_open_files_limit(original);
    assert_eq!(
        warnings, 1,
        "one WARN for the whole episode, not one per attempt"
    );
    // Pauses of 10, 20, 40 ... ms up to 1 s: about 8 attempts in 1.5 s; a
    // spinning loop would make thousands.
    assert!(
        (3..=12).contains(&attempts),
        "{attempts} accept attempts in 1.5 s"
    );

    // Descriptors are back: the queued connections are served.
    let mut client = clients.pop().unwrap();
    client
        .write_all(b"GET /admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = String::new();
        client.read_to_string(&mut answer).map(|_| answer)
    })
    .await
    .unwrap()
    .expect("the server answers once descriptors are free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(events
        .all()
        .iter()
        .any(|e| e.message() == "accepting HTTP connections again"));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
