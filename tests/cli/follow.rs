//! `consume --follow` in one process reads what an owner in another
//! process appends: every stored record exactly once, in order, and never a
//! torn one, also when the owner is killed mid-write and a new owner's
//! recovery cuts the torn tail.

use crate::support::{BIN, spawn};
use embedlog::{ReadLimit, Record, TopicConfig};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Lines the writer offers the owner at most (it is killed long before).
const OFFERED: u64 = 2_000_000;
/// The reader must have printed this many before the owner is killed.
const SEEN_BEFORE_KILL: usize = 20_000;

#[test]
fn a_follower_in_another_process_survives_the_owner_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    {
        let b = crate::support::open_broker(&d);
        // Small segments: the reader crosses many rolls while it follows.
        b.admin()
            .create_topic("live", TopicConfig::default().segment_bytes(256 << 10))
            .unwrap();
        b.close().unwrap();
    }
    let dir_arg = d.to_str().unwrap();
    let mut owner = spawn(
        Command::new(BIN)
            .args(["--dir", dir_arg, "produce", "live"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut reader = spawn(
        Command::new(BIN)
            .args([
                "--dir",
                dir_arg,
                "consume",
                "live",
                "--from-beginning",
                "--follow",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // Safety net only: if something hangs, kill both so the test fails
    // instead of blocking the suite. Nothing below decides on time.
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let (owner_pid, reader_pid) = (owner.id(), reader.id());
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(120)).is_err() {
            for pid in [owner_pid, reader_pid] {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    });
    // The writer feeds lines until the owner dies (its pipe breaks).
    let mut stdin = owner.stdin.take().unwrap();
    let gone = Arc::new(AtomicBool::new(false));
    let writer_gone = gone.clone();
    let writer = std::thread::spawn(move || {
        let gone = writer_gone;
        let mut buf = Vec::new();
        for i in 0..OFFERED {
            writeln!(buf, "{i:07}").unwrap();
            if buf.len() >= 8192 {
                if stdin.write_all(&buf).is_err() {
                    return;
                }
                buf.clear();
            }
        }
        let _ = stdin.write_all(&buf);
        // Hold the pipe open until the owner dies: it must end by the
        // kill, not by EOF.
        while !gone.load(Ordering::SeqCst) {
            std::thread::park();
        }
    });

    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < SEEN_BEFORE_KILL {
        seen.push(lines.next().expect("reader ended early").unwrap());
    }
    // SIGKILL the owner while it writes.
    owner.kill().unwrap();
    owner.wait().unwrap();
    gone.store(true, Ordering::SeqCst);
    writer.thread().unpark();
    writer.join().unwrap();

    // A new owner recovers (cutting any torn tail under the reader's feet),
    // counts what survived and appends a last record.
    let stored = {
        let b = crate::support::open_broker(&d);
        let p = b.partition("live", 0).unwrap();
        let end = p.end_offset();
        // What was stored is exactly the first `end` lines, in order.
        let mut n = 0u64;
        for batches in p.reader(0, ReadLimit::default()) {
            for r in batches.unwrap().records() {
                assert_eq!(r.unwrap().value.unwrap(), format!("{n:07}").as_bytes());
                n += 1;
            }
        }
        assert_eq!(n, end);
        p.append(&[Record::new("END")]).unwrap();
        b.close().unwrap();
        end
    };
    assert!(stored >= SEEN_BEFORE_KILL as u64);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        seen.push(line);
    }
    // Still running: it neither crashed nor gave up.
    assert!(reader.try_wait().unwrap().is_none(), "the reader exited");
    reader.kill().unwrap();
    let status = reader.wait().unwrap();
    finished.send(()).unwrap();
    watchdog.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut reader.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        seen.len() as u64,
        stored,
        "every stored record once; stderr: {stderr}"
    );
    for (i, l) in seen.iter().enumerate() {
        assert_eq!(*l, format!("{i:07}"), "in order, none torn");
    }
    assert!(!status.success(), "ended by our kill");
}

#[test]
fn a_follower_picks_up_added_partitions_and_stops_when_the_topic_goes() {
    let dir = tempfile::tempdir().unwrap();
    let owner = crate::support::open_broker(dir.path());
    owner
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let mut reader = spawn(
        Command::new(BIN)
            .arg("--dir")
            .arg(dir.path())
            .args(["consume", "t", "--follow", "--from-beginning"])
            .args(["--format", "{partition}:{value}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let pid = reader.id();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    owner
        .partition("t", 0)
        .unwrap()
        .append(&[Record::new("a")])
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "0:a");
    owner.admin().add_partitions("t", 2).unwrap();
    owner
        .partition("t", 1)
        .unwrap()
        .append(&[Record::new("b")])
        .unwrap();
    owner
        .partition("t", 0)
        .unwrap()
        .append(&[Record::new("c")])
        .unwrap();
    let mut got = vec![
        lines.next().unwrap().unwrap(),
        lines.next().unwrap().unwrap(),
    ];
    got.sort();
    assert_eq!(
        got,
        ["0:c", "1:b"],
        "the added partition is read from its start"
    );
    owner.admin().delete_topic("t").unwrap();
    let status = reader.wait().unwrap();
    finished.send(()).unwrap();
    watchdog.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut reader.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("unknown topic \"t\""), "{err}");
    owner.close().unwrap();
}
