//! Open file descriptors do not grow with the number of segments: complete
//! segments are read through their memory maps, and rolled segments give
//! their descriptors back once fsync'd (at most a few wait for that).
//!
//! Kept in its own test binary: the descriptor count is the whole process's,
//! and the tests re-run this binary (`current_exe`, `--exact <name>`, one
//! under `ulimit -n 64`) as children that run nothing else.

mod common;
use embedlog::{Log, LogConfig, Record};

/// Descriptors the process has open. Process-wide, so only read in a child
/// process that runs nothing else (see `in_child`).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Set in the child processes the tests start; names the work to do.
const CHILD_ENV: &str = "EMBEDLOG_FD_CHILD";

/// Runs the test `name` of this binary alone in a child process (with
/// `CHILD_ENV` set to `name` and `vars`), under `sh -c "<prefix> exec
/// ..."`, and returns its stdout after checking it printed `CHILD OK`.
fn in_child(name: &str, prefix: &str, vars: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "{prefix} exec \"$0\" --exact {name} --nocapture --test-threads=1"
        ))
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, name);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "child {name} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether this process is the child started to run `name`.
fn is_child(name: &str) -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|v| v == name)
}

/// The descriptor count is the whole process's: sibling tests open and
/// close their own descriptors meanwhile. So the measuring runs in a child
/// process that runs only `child_count_descriptors`.
#[test]
fn descriptors_stay_bounded_as_segments_pile_up() {
    if !std::path::Path::new("/proc/self/fd").is_dir() || !std::path::Path::new("/bin/sh").exists()
    {
        eprintln!("no /proc/self/fd or /bin/sh here; skipping");
        return;
    }
    let out = in_child("child_count_descriptors", "", &[]);
    assert!(out.contains("CHILD OK 4500"), "{out}");
}

/// Run by `descriptors_stay_bounded_as_segments_pile_up`, alone in its
/// process.
#[test]
fn child_count_descriptors() {
    if !is_child("child_count_descriptors") {
        return; // only meaningful as the child
    }
    let start = open_fds();
    let dir = common::tempdir();
    let config = LogConfig::default().segment_bytes(1024);
    let log = Log::open(dir.path(), config.clone()).unwrap();
    // Enough segments that three descriptors each would pass the usual
    // 1024-descriptor limit during open.
    for i in 0..4500u64 {
        log.append(&[Record::new(vec![1u8; 100]).timestamp(i as i64)])
            .unwrap();
    }
    assert!(log.segment_count() > 400);
    // Fewer than at the start would be fine too: never an underflow.
    let running = open_fds().saturating_sub(start);
    assert!(
        running <= 3 * 6 + 2,
        "{running} descriptors for {} segments",
        log.segment_count()
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let reopened = open_fds().saturating_sub(start);
    assert!(
        reopened <= 3 + 2,
        "{reopened} descriptors after reopening {} segments",
        log.segment_count()
    );
    let n = common::read_all(&log).unwrap().len();
    println!("CHILD OK {n}");
}

/// Run by `opening_many_segments_fits_a_small_descriptor_limit` under
/// `ulimit -n 64`.
#[test]
fn child_open_under_low_limit() {
    if !is_child("child_open_under_low_limit") {
        return; // only meaningful as the child
    }
    let dir = std::env::var_os("EMBEDLOG_FD_CHILD_DIR").unwrap();
    let log = Log::open(&dir, LogConfig::default().segment_bytes(1024)).unwrap();
    let n = common::read_all(&log).unwrap().len();
    log.append(&[Record::new("more")]).unwrap();
    log.close().unwrap();
    println!("CHILD OK {n}");
}

#[test]
fn opening_many_segments_fits_a_small_descriptor_limit() {
    if !std::path::Path::new("/bin/sh").exists() {
        return;
    }
    let dir = common::tempdir();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(1024)).unwrap();
    for i in 0..2000u64 {
        log.append(&[Record::new(vec![1u8; 100]).timestamp(i as i64)])
            .unwrap();
    }
    assert!(
        log.segment_count() > 150,
        "three descriptors each would pass 64"
    );
    log.simulate_crash(); // the next open recovers the unsynced segments
    let out = in_child(
        "child_open_under_low_limit",
        "ulimit -n 64 &&",
        &[("EMBEDLOG_FD_CHILD_DIR", dir.path().as_os_str())],
    );
    assert!(out.contains("CHILD OK 2000"), "{out}");
}
