//! A second process cannot open a data directory a broker holds: it gets
//! `Error::Locked`, and can open it once the first broker is gone.
//!
//! And a child started while a broker is open does not keep the directory
//! locked after the broker closes (the lock is a POSIX record lock, which
//! children do not inherit, not a `flock` every child shares until `exec`).

mod common;
use embedlog::{Broker, Error};
use std::process::Command;

/// Run in a child process by `second_process_is_refused`.
#[test]
fn child_open_probe() {
    let Some(dir) = std::env::var_os("EMBEDLOG_LOCK_PROBE_DIR") else {
        return; // only meaningful as the child
    };
    match Broker::open(&dir) {
        Err(Error::Locked { .. }) => println!("PROBE: LOCKED"),
        Ok(_) => println!("PROBE: OPENED"),
        Err(e) => println!("PROBE: ERROR {e}"),
    }
}

fn probe(dir: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_open_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EMBEDLOG_LOCK_PROBE_DIR", dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match stdout.find("PROBE:") {
        Some(i) => stdout[i..].lines().next().unwrap_or_default().to_string(),
        None => format!("no probe output: {stdout}"),
    }
}

#[test]
fn second_process_is_refused() {
    let dir = common::tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(probe(dir.path()), "PROBE: LOCKED");
    drop(broker);
    assert_eq!(probe(dir.path()), "PROBE: OPENED");
}

#[test]
fn a_child_caught_before_its_exec_does_not_hold_the_lock() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = common::tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let (gate, mut open_gate) = std::io::pipe().unwrap();
    let (mut forked, forked_tx) = std::io::pipe().unwrap();
    let (gate_fd, forked_fd) = (gate.as_raw_fd(), forked_tx.as_raw_fd());
    let gate_tx_fd = open_gate.as_raw_fd();
    // A child forked while the broker is open holds copies of every
    // descriptor of this process, the broker's lock file among them, until
    // its exec. This one says it was forked, then waits before its exec
    // until the test lets it go.
    let starter = std::thread::spawn(move || {
        let mut cmd = Command::new("true");
        // SAFETY: the hook only calls close(2), write(2) and read(2), which
        // are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let mut b = [0u8; 1];
                // Only the test holds the gate's write end: if it fails
                // (and drops it) this read ends, and so does the child.
                libc::close(gate_tx_fd);
                libc::write(forked_fd, b"f".as_ptr().cast(), 1);
                libc::read(gate_fd, b.as_mut_ptr().cast(), 1);
                Ok(())
            });
        }
        let status = cmd.status().unwrap();
        drop((gate, forked_tx));
        status
    });
    let mut b = [0u8; 1];
    forked.read_exact(&mut b).unwrap(); // the child exists, before its exec
    broker.close().unwrap();
    drop(broker);
    // Another process can open the directory while that child still waits.
    assert_eq!(probe(dir.path()), "PROBE: OPENED");
    open_gate.write_all(b"x").unwrap();
    assert!(starter.join().unwrap().success());
}
