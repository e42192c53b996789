//! A second process cannot open a data directory a broker holds: it gets
//! `Error::Locked`, and can open it once the first broker is gone.
//!
//! Kept in its own test binary: a fork made while another test drops a broker
//! would briefly hold that broker's lock descriptor and make it flaky.

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
