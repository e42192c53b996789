//! kill -9 torture: a child process appends and reports each acknowledged
//! offset on a pipe; the parent SIGKILLs it at random moments, reopens the
//! log, and checks that every acknowledged record is present, in order,
//! byte-exact, without duplicates, that what follows is a clean prefix of
//! what was being written, and that appends continue.
//!
//! Variants: durable appends of 1-3 records, buffered ones, buffered
//! appends of one record per call (each a copy into the mapped,
//! preallocated segment, no system call: a kill leaves a tail of zeros
//! after the last copy, which reopening cuts), and buffered appends of
//! 1-40 records (batches of up to about 13 KB, several pages copied into
//! the map at once).
//!
//! `EMBEDLOG_CRASH_ROUNDS` sets the rounds per variant (default 50);
//! `EMBEDLOG_CRASH_SEED` replays a run (the seed is printed).
//!
//! Kept in its own test binary: the parent re-runs this binary
//! (`current_exe`, `--exact child_writer`) as the child it kills, and a
//! fork made while another test drops a broker or log would briefly hold
//! that one's lock descriptor (see `broker_lock_process.rs`).

mod common;
use embedlog::{Durability, Log, LogConfig, ReadLimit, Record};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The value stored at `offset`.
fn value(offset: u64) -> Vec<u8> {
    format!(
        "record-{offset}-{}",
        "x".repeat((offset * 7 % 300) as usize)
    )
    .into_bytes()
}

fn config() -> LogConfig {
    // Small segments: kills land in rolls too.
    LogConfig::default()
        .segment_bytes(16 << 10)
        .index_interval_bytes(512)
}

/// The child: appends until killed, printing `ACK <last offset>` after
/// each acknowledged append.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("EMBEDLOG_CRASH_CHILD_DIR") else {
        return; // only meaningful as the child
    };
    let mode = std::env::var("EMBEDLOG_CRASH_CHILD_MODE").unwrap_or_default();
    let sync = mode == "sync";
    let single = mode == "single";
    let batches = mode == "batches";
    let log = Log::open(&dir, config()).unwrap();
    let durability = if sync {
        Durability::Sync
    } else {
        Durability::Buffered
    };
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let start = log.end_offset();
        let n = if single {
            1
        } else if batches {
            1 + i % 40
        } else {
            1 + i % 3
        };
        let recs: Vec<_> = (start..start + n)
            .map(|o| Record::new(value(o)).timestamp(o as i64))
            .collect();
        let info = log.append_with(&recs, durability).unwrap();
        assert_eq!(info.base_offset, start);
        use std::io::Write;
        writeln!(out, "ACK {}", info.last_offset).unwrap();
        out.flush().unwrap();
    }
}

/// Verifies the log after a kill and returns its end offset.
fn verify(dir: &std::path::Path, acked: Option<u64>, round: usize) -> u64 {
    let log =
        Log::open(dir, config()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    let end = log.end_offset();
    if let Some(a) = acked {
        assert!(
            end > a,
            "round {round}: acknowledged offset {a} missing (end {end})"
        );
    }
    let mut at = 0;
    while at < end {
        for r in log.read(at, ReadLimit::bytes(64 << 10)).unwrap().records() {
            let r = r.unwrap();
            assert_eq!(r.offset, at, "round {round}: gap or duplicate");
            assert_eq!(
                r.value.as_deref(),
                Some(&value(at)[..]),
                "round {round}: record {at} differs"
            );
            at += 1;
        }
    }
    log.verify().unwrap();
    // Appends continue where the log ends.
    let info = log
        .append(&[Record::new(value(end)).timestamp(end as i64)])
        .unwrap();
    assert_eq!(info.base_offset, end);
    log.close().unwrap();
    end + 1
}

fn torture(mode: &str) {
    let rounds: usize = std::env::var("EMBEDLOG_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let (mut rng, seed) = common::Rng::from_env("EMBEDLOG_CRASH_SEED");
    eprintln!("{mode}: {rounds} rounds, seed {seed}");
    let dir = common::tempdir();
    let mut total_acked = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env("EMBEDLOG_CRASH_CHILD_DIR", dir.path())
            .env("EMBEDLOG_CRASH_CHILD_MODE", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let want_acks = 1 + rng.next() % 300;
        let extra_wait = Duration::from_micros(rng.next() % 3000);
        let mut acked = None;
        let mut n = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(i) = line.find("ACK ") else { continue };
            acked = Some(line[i + 4..].trim().parse::<u64>().unwrap());
            n += 1;
            if n >= want_acks {
                break;
            }
        }
        // Kill at a random moment after the last acknowledgement we read:
        // mid-append, mid-fsync, mid-roll.
        std::thread::sleep(extra_wait);
        child.kill().unwrap();
        child.wait().unwrap();
        total_acked += n;
        verify(dir.path(), acked, round);
    }
    eprintln!("{mode}: {rounds} kills, {total_acked} acknowledged appends checked");
}

#[test]
fn kill_9_never_loses_an_acknowledged_sync_append() {
    torture("sync");
}

#[test]
fn kill_9_during_buffered_appends_leaves_a_clean_prefix_with_every_ack() {
    torture("buffered");
}

#[test]
fn kill_9_during_single_record_appends_keeps_every_ack() {
    torture("single");
}

#[test]
fn kill_9_during_appends_of_multi_page_batches_keeps_every_ack() {
    torture("batches");
}
