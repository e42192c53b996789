//! Every fuzz target's body holds on its seeds, on every crash the fuzzers
//! ever found (`tests/fixtures/fuzz/<target>/`), and on random and mutated
//! inputs: no panic, no abort, no unbounded allocation.

use embedlog::__fuzz;
use proptest::prelude::*;
use std::path::PathBuf;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("batch_decode", __fuzz::batch_decode),
    ("record_decode", __fuzz::record_decode),
    ("txn_state_decode", __fuzz::txn_state_decode),
    ("open_dir", __fuzz::open_dir),
    ("read_only_dir", __fuzz::read_only_dir),
    ("inspect_segment", __fuzz::inspect_segment),
    ("index_check", __fuzz::index_check),
    ("checkpoint_scan", __fuzz::checkpoint_and_scan),
    ("offset_record", __fuzz::offset_record),
    ("replication_decode", __fuzz::replication_decode),
    #[cfg(feature = "fault-injection")]
    ("ops", __fuzz::ops),
];

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("fuzz/seeds").join(target),
        root.join("tests/fixtures/fuzz").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn seeds_and_found_crashes_replay_cleanly() {
    for &(name, f) in TARGETS {
        let inputs = inputs(name);
        assert!(!inputs.is_empty(), "{name} has no seeds");
        for (path, data) in inputs {
            eprintln!("{name}: {}", path.display());
            f(&data);
        }
    }
}

#[test]
fn every_byte_flip_of_the_seeds_is_handled() {
    for &(name, f) in TARGETS {
        for (_, data) in inputs(name) {
            if data.len() > 4096 {
                continue;
            }
            for i in 0..data.len() {
                let mut d = data.clone();
                d[i] ^= 0xff;
                f(&d);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    #[test]
    fn random_bytes_are_handled(data in prop::collection::vec(any::<u8>(), 0..2048), which in 0usize..16) {
        (TARGETS[which % TARGETS.len()].1)(&data);
    }
}
