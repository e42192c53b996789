//! Open file descriptors do not grow with the number of segments: complete
//! segments are read through their memory maps, and rolled segments give
//! their descriptors back once fsync'd (at most a few wait for that).

mod common;
use embedlog::{Log, LogConfig, Record};

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[test]
fn descriptors_stay_bounded_as_segments_pile_up() {
    let Some(start) = open_fds() else {
        eprintln!("no /proc/self/fd here; skipping");
        return;
    };
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
    let running = open_fds().unwrap() - start;
    assert!(
        running <= 3 * 6 + 2,
        "{running} descriptors for {} segments",
        log.segment_count()
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let reopened = open_fds().unwrap() - start;
    assert!(
        reopened <= 3 + 2,
        "{reopened} descriptors after reopening {} segments",
        log.segment_count()
    );
    assert_eq!(common::read_all(&log).unwrap().len(), 4500);
}

/// Run by `opening_many_segments_fits_a_small_descriptor_limit` under
/// `ulimit -n 64`.
#[test]
fn child_open_under_low_limit() {
    let Some(dir) = std::env::var_os("EMBEDLOG_FD_CHILD_DIR") else {
        return; // only meaningful as the child
    };
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
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" --exact child_open_under_low_limit --nocapture --test-threads=1")
        .arg(std::env::current_exe().unwrap())
        .env("EMBEDLOG_FD_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD OK 2000"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
