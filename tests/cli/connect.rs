//! `embedlog connect standalone` with an exactly-once file source, SIGKILLed
//! again and again while lines are appended and the file is rotated (before
//! a run, or during it): every line is in the topic exactly once and in
//! order, and what is committed after each kill is an exact prefix of what
//! was written.
//!
//! `EMBEDLOG_CONNECT_KILLS` sets the kills (default 20);
//! `EMBEDLOG_CONNECT_SEED` replays a run (the seed is printed).

use crate::common::{Rng, consume_all};
use crate::support::{BIN, open_broker, run, spawn};
use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig, SourceGuarantee};
use embedlog::{Broker, IsolationLevel};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn line(n: u64) -> String {
    format!("line-{n}-{}", "x".repeat((n % 50) as usize))
}

/// The committed values of the single-partition topic `app-log`.
fn committed_lines(broker: &Broker) -> Vec<String> {
    consume_all(broker, "app-log", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
        .collect()
}

/// Appends lines `from..to` to `path` (creating it).
fn append(path: &Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for n in from..to {
        text.push_str(&line(n));
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn an_exactly_once_file_source_killed_mid_transaction_writes_each_line_once() {
    let kills: u64 = std::env::var("EMBEDLOG_CONNECT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (mut rng, seed) = Rng::from_env("EMBEDLOG_CONNECT_SEED");
    eprintln!("{kills} kills, seed {seed}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    let worker = tmp.path().join("worker.properties");
    std::fs::write(
        &worker,
        "exactly.once.source.support=enabled\noffset.flush.interval.ms=20\n",
    )
    .unwrap();
    let source = tmp.path().join("app-log.properties");
    let source_config = ConnectorConfig::new("app-log", "FileStreamSource")
        .set("file", log.display())
        .set("topic", "app-log")
        // Small polls: many transactions, so kills land inside them.
        .set("batch.size", 50);
    let mut props = String::new();
    for (k, v) in source_config.iter() {
        props.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&source, props).unwrap();

    let mut written = 0u64;
    let mut rotations = 0u32;
    for round in 0..kills {
        // What the killed runs committed is an exact prefix of the lines.
        let rotate = {
            let broker = open_broker(&data);
            let got = committed_lines(&broker);
            let want: Vec<String> = (0..got.len() as u64).map(line).collect();
            assert_eq!(got, want, "round {round}: not a prefix of the lines");
            assert!(got.len() as u64 <= written);
            // Rotate only once the source has committed all of the current
            // file: a file rotated twice before the source looks is beyond
            // what it can follow (it finds the file it was reading by its
            // inode, and the newest by its name).
            let caught_up = got.len() as u64 == written;
            broker.close().unwrap();
            caught_up && written > 0 && rng.next().is_multiple_of(2)
        };
        // The rotation happens before the run, or during it.
        let mid_run = rotate && rng.next().is_multiple_of(2);
        let rotate_now = |rotations: &mut u32| {
            std::fs::rename(&log, logs.join(format!("app.log.{round}"))).unwrap();
            *rotations += 1;
        };
        if rotate && !mid_run {
            rotate_now(&mut rotations);
        }
        let chunk = 1 + rng.next() % 3000;
        append(&log, written, written + chunk);
        written += chunk;
        let mut child = spawn(
            Command::new(BIN)
                .arg("--dir")
                .arg(&data)
                .args(["connect", "standalone"])
                .arg(&worker)
                .arg(&source)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        if mid_run {
            // Renamed while the source may be reading it; the new file
            // gets lines of its own.
            std::thread::sleep(Duration::from_millis(rng.next() % 200));
            rotate_now(&mut rotations);
            let more = 1 + rng.next() % 1000;
            append(&log, written, written + more);
            written += more;
        }
        // Killed at a random moment: starting, reading its offsets,
        // mid-transaction, between transactions, idle.
        std::thread::sleep(Duration::from_millis(rng.next() % 400));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // A last run in this process takes in whatever is left.
    let broker = open_broker(&data);
    let connect = Connect::with_config(
        &broker,
        ConnectConfig::default().source_guarantee(SourceGuarantee::ExactlyOnce),
    )
    .unwrap();
    connect.start(source_config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (committed_lines(&broker).len() as u64) < written {
        assert!(Instant::now() < deadline, "the last run did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    connect.close();
    let got = committed_lines(&broker);
    let want: Vec<String> = (0..written).map(line).collect();
    assert_eq!(got.len(), want.len(), "every line once");
    assert!(got == want, "every line once and in order");
    broker.close().unwrap();
    eprintln!("{kills} kills, {rotations} rotations, {written} lines: each once");
}

#[test]
fn plugins_lists_the_built_in_classes_and_standalone_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["connect", "plugins"]).ok();
    assert!(out.stdout.contains("source  FileStreamSource"), "{out:?}");
    assert!(out.stdout.contains("sink    FileStreamSink"), "{out:?}");
    let worker = dir.path().join("worker.properties");
    std::fs::write(&worker, "exactly.once.source.support=maybe\n").unwrap();
    let connector = dir.path().join("c.properties");
    std::fs::write(&connector, "name=c\nconnector.class=FileStreamSource\n").unwrap();
    let w = worker.to_str().unwrap();
    let c = connector.to_str().unwrap();
    let out = run(dir.path(), &["connect", "standalone", w, c]).code(1);
    assert!(
        out.stderr.contains("exactly.once.source.support"),
        "{out:?}"
    );
    std::fs::write(&worker, "").unwrap();
    let out = run(dir.path(), &["connect", "standalone", w, c]).code(1);
    assert!(out.stderr.contains("\"topic\""), "{out:?}");
}
