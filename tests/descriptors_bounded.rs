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
    for i in 0..3000u64 {
        log.append(&[Record::new(vec![1u8; 100]).timestamp(i as i64)])
            .unwrap();
    }
    assert!(log.segment_count() > 200);
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
    assert_eq!(common::read_all(&log).unwrap().len(), 3000);
}
