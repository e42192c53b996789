//! The cleaner's rounds, driven one at a time (no background thread, no
//! timing): the dirty-ratio check is atomic with the pass, and a failing
//! partition backs off and is reported.

use super::*;
use crate::catalog::Catalog;
use crate::{CleanupPolicy, Record, SystemClock, TopicConfig};
use std::sync::Arc;

/// The key-map budget of these tests' passes (the broker's default).
const KEY_MAP_BYTES: usize = 32 << 20;

fn compacted(ratio: f64) -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024)
        .min_cleanable_dirty_ratio(ratio)
}

/// Topic `table` (compacted, ratio 0.5) with two partitions, both filled.
fn filled_table(catalog: &Catalog) -> crate::Topic {
    let t = catalog
        .create_topic("table", compacted(0.5).partitions(2))
        .unwrap();
    for p in t.partitions() {
        fill(&p, "v");
    }
    t
}

/// The topics of `dir`, without any background thread.
fn no_cleaner(dir: &std::path::Path) -> Catalog {
    Catalog::open(dir.to_path_buf(), Arc::new(SystemClock)).unwrap()
}

fn close(catalog: Catalog) {
    let _admin = catalog.begin_close().unwrap();
    catalog.close_topics().unwrap();
    catalog.release_lock();
}

/// 100 single-record batches over 5 keys, then a roll (only complete
/// segments are compacted).
fn fill(p: &Partition, tag: &str) {
    for i in 0..100u64 {
        p.append(&[Record::new(format!("{tag}{i}")).key(format!("k{}", i % 5))])
            .unwrap();
    }
    p.roll().unwrap();
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

#[test]
fn the_backoff_doubles_up_to_a_cap_and_starts_over_on_success() {
    let mut b = FailureBackoff::default();
    let (a, other) = (tp("t", 0), tp("t", 1));
    assert!(!b.sits_out(&a));
    let mut want = 1;
    for n in 1..=12u32 {
        assert_eq!(b.failed(&a), (n, want));
        for _ in 0..want {
            assert!(b.sits_out(&a));
            assert!(!b.sits_out(&other), "only the failing partition waits");
        }
        assert!(!b.sits_out(&a), "tried again after {want} rounds");
        want = (want * 2).min(MAX_SKIP_ROUNDS);
    }
    assert_eq!(want, MAX_SKIP_ROUNDS);
    b.succeeded(&a);
    assert!(!b.sits_out(&a));
    assert_eq!(b.failed(&a), (1, 1), "a success starts the count over");
    // Failures far past the cap do not overflow.
    for _ in 0..100 {
        b.failed(&a);
    }
    assert_eq!(b.failed(&a), (102, MAX_SKIP_ROUNDS));
}

/// The race the background cleaner had: it chose a partition by its dirty
/// ratio, another pass cleaned the partition meanwhile and new data
/// arrived, and the cleaner's pass then ran although the ratio was below
/// the minimum. The check now happens under the lock the pass holds.
#[test]
fn a_pass_below_the_ratio_is_refused_even_if_the_log_changed_after_choosing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = no_cleaner(dir.path());
    let key_map_bytes = KEY_MAP_BYTES;
    let t = catalog.create_topic("table", compacted(1.0)).unwrap();
    let p = t.partition(0).unwrap();
    fill(&p, "v");
    assert_eq!(p.log().dirty_ratio(), 1.0);
    let mut cleaner = Cleaner::default();
    let mut round = Round::default();
    let chosen = cleaner.choose(std::slice::from_ref(&t), &mut round);
    assert_eq!(chosen.len(), 1, "all dirty: chosen");
    // Between choosing and cleaning: another pass, then new data.
    compact_partitions(&t, &t.partitions(), KEY_MAP_BYTES).unwrap();
    let cleaned = p.log().cleaned_to();
    assert_eq!(cleaned, 100);
    fill(&p, "w");
    let ratio = p.log().dirty_ratio();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    cleaner.clean(chosen, key_map_bytes, || true, &mut round);
    assert!(round.passes.is_empty(), "{:?}", round.passes);
    assert_eq!(p.log().cleaned_to(), cleaned);
    // Nor does any number of whole rounds run a pass below the ratio.
    for _ in 0..100 {
        let r = cleaner.round(std::slice::from_ref(&t), key_map_bytes, || true);
        assert!(r.passes.is_empty() && r.failed.is_empty(), "{r:?}");
    }
    assert_eq!(p.log().cleaned_to(), cleaned);
    // A lower minimum lets the next round clean it.
    catalog.alter_config("table", compacted(0.1)).unwrap();
    let r = cleaner.round(std::slice::from_ref(&t), key_map_bytes, || true);
    assert_eq!(r.passes.len(), 1, "{r:?}");
    assert_eq!(p.log().cleaned_to(), 200);
    assert_eq!(p.log().dirty_ratio(), 0.0);
    close(catalog);
}

#[test]
fn the_cleaner_stops_between_partitions_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = no_cleaner(dir.path());
    let t = filled_table(&catalog);
    let r = Cleaner::default().round(std::slice::from_ref(&t), KEY_MAP_BYTES, || false);
    assert!(r.passes.is_empty());
    assert!(t.partitions().iter().all(|p| p.log().cleaned_to() == 0));
}

/// A partition whose passes always fail (a damaged segment) is attempted
/// in rounds 1, 3, 6, 11 and 20 of 20 (sitting out 1, 2, 4 and 8 rounds
/// between), not in every round, and each failure is an error event naming
/// the topic, the partition and the error. A healthy partition beside it is
/// cleaned in the first round.
#[test]
fn a_partition_that_always_fails_backs_off_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = no_cleaner(dir.path());
    filled_table(&catalog);
    close(catalog);
    // Damage a value byte of the first batch of partition 0: a clean close
    // means no scan on open, and the pass's CRC check finds it.
    let seg = dir.path().join("topics/table/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let first = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    bytes[first - 2] ^= 0x55;
    std::fs::write(&seg, bytes).unwrap();
    let catalog = no_cleaner(dir.path());
    let t = catalog.topic("table").unwrap();
    let key_map_bytes = KEY_MAP_BYTES;
    let mut cleaner = Cleaner::default();
    let mut attempts = Vec::new();
    let mut cleaned = 0;
    let ((), events) = crate::test_support::capture_events(|| {
        for n in 1..=20 {
            let r = cleaner.round(std::slice::from_ref(&t), key_map_bytes, || true);
            for (tp, e) in &r.failed {
                assert_eq!((&*tp.topic, tp.partition), ("table", 0));
                assert!(matches!(e, Error::Corrupt { .. }), "{e}");
                attempts.push(n);
            }
            for (tp, _) in &r.passes {
                assert_eq!(tp.partition, 1, "the damaged partition never passes");
                cleaned += 1;
            }
            let waiting = r.sat_out.iter().any(|tp| tp.partition == 0);
            assert_eq!(waiting, !attempts.contains(&n), "round {n}");
        }
    });
    assert_eq!(attempts, [1, 3, 6, 11, 20]);
    assert_eq!(cleaned, 1, "the healthy partition: one pass, then clean");
    // The failures, each reported (the healthy partition's pass is an INFO
    // event of its own).
    let events: Vec<&String> = events.iter().filter(|e| !e.starts_with("INFO ")).collect();
    assert_eq!(events.len(), attempts.len(), "{events:?}");
    for (e, failures) in events.iter().zip(1..) {
        assert!(e.starts_with("ERROR "), "{e}");
        for field in [
            "topic=table ".to_string(),
            "partition=0 ".to_string(),
            format!("failures={failures} "),
        ] {
            assert!(e.contains(&field), "{field} in {e}");
        }
        assert!(e.contains("error=") && e.contains("CRC"), "{e}");
    }
}
