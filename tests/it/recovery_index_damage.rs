//! Indexes are derived data: deleting, truncating or zero-filling any index
//! file makes open rebuild it from the log, and every read (by offset and by
//! time) returns what it returned before.

use crate::common::*;
use embedlog::{Log, LogConfig, Offset};
use std::path::Path;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(4096)
        .index_interval_bytes(200)
}

/// Reads by every offset and by a spread of timestamps.
fn observe(log: &Log) -> (Vec<Vec<Offset>>, Vec<Option<Offset>>) {
    let by_offset = (log.start_offset()..log.end_offset())
        .map(|o| {
            let b = log.read(o, embedlog::ReadLimit::bytes(1)).unwrap();
            b.records().map(|r| r.unwrap().offset).collect()
        })
        .collect();
    let by_time = (0..60)
        .map(|k| {
            log.offset_for_timestamp(1_700_000_000_000 + k * 37 - 50)
                .unwrap()
        })
        .collect();
    (by_offset, by_time)
}

fn build() -> tempfile::TempDir {
    let dir = tempdir();
    let log = Log::open(dir.path(), config()).unwrap();
    for i in 0..150 {
        // Out-of-order timestamps exercise the max-timestamp logic.
        let mut r = record(i);
        if i % 5 == 0 {
            r.timestamp -= 40;
        }
        log.append(&[r]).unwrap();
    }
    log.close().unwrap();
    assert!(segment_logs(dir.path()).len() >= 3);
    dir
}

/// A way to damage a file.
type Damage = Box<dyn Fn(&Path)>;

fn index_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn damaged_indexes_are_rebuilt_and_reads_are_unchanged() {
    let dir = build();
    let want = {
        let log = Log::open(dir.path(), config()).unwrap();
        observe(&log)
    };
    let files = index_files(dir.path());
    assert!(files.len() >= 6);
    for file in &files {
        let name = file.file_name().unwrap();
        let len = std::fs::metadata(file).unwrap().len();
        let damages: Vec<(&str, Damage)> = vec![
            (
                "delete",
                Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            ),
            (
                "empty",
                Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
            ),
            (
                "cut one entry",
                Box::new(move |p: &Path| {
                    let entry = if p.extension().unwrap() == "index" {
                        8
                    } else {
                        12
                    };
                    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                    f.set_len(len.saturating_sub(entry)).unwrap();
                }),
            ),
            (
                "cut mid-entry",
                Box::new(move |p: &Path| {
                    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                    f.set_len(len.saturating_sub(3)).unwrap();
                }),
            ),
            (
                "zero-fill",
                Box::new(move |p: &Path| std::fs::write(p, vec![0u8; len as usize]).unwrap()),
            ),
            (
                "garbage",
                Box::new(move |p: &Path| {
                    let g: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
                    std::fs::write(p, g).unwrap()
                }),
            ),
        ];
        for (what, damage) in damages {
            let copy = copy_dir(dir.path());
            damage(&copy.path().join(name));
            let log = Log::open(copy.path(), config()).unwrap();
            assert_eq!(observe(&log), want, "{what} {name:?}");
            log.close().unwrap();
            // The rebuilt index is the one an undamaged log has.
            assert_eq!(
                std::fs::read(copy.path().join(name)).unwrap(),
                std::fs::read(file).unwrap(),
                "{what} {name:?} rebuilt differently"
            );
        }
        // Any single flipped bit of any entry (a middle time entry that
        // still sorts correctly included) is caught and rebuilt.
        for at in 0..len as usize {
            let copy = copy_dir(dir.path());
            let p = copy.path().join(name);
            let mut b = std::fs::read(&p).unwrap();
            b[at] ^= 0x04;
            std::fs::write(&p, b).unwrap();
            let log = Log::open(copy.path(), config()).unwrap();
            assert_eq!(observe(&log), want, "flip at {at} of {name:?}");
        }
    }
}

#[test]
fn indexes_of_a_crashed_log_are_rebuilt() {
    let dir = tempdir();
    let log = Log::open(dir.path(), config()).unwrap();
    for i in 0..150 {
        log.append(&[record(i)]).unwrap();
    }
    let want = observe(&log);
    log.simulate_crash();
    for f in index_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(observe(&log), want);
}
