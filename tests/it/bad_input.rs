//! Damaged and foreign input (checked-in fixtures in `tests/fixtures/bad/`,
//! made by its `generate.py`): each case gives a precise error or is
//! repaired, never a panic, an abort or an unbounded allocation.

use crate::common;
use bytes::Bytes;
use embedlog::{Batch, Error, Log, LogConfig, Record};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name)
}

/// A writable copy of a fixture directory.
fn copy(name: &str) -> tempfile::TempDir {
    common::copy_dir(&fixture(name))
}

#[test]
fn a_segment_whose_name_does_not_match_its_first_offset_is_reported() {
    let dir = copy("segment_name_mismatch");
    match Log::open(dir.path(), LogConfig::default()) {
        Err(Error::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert_eq!(path.file_name().unwrap(), "00000000000000000005.log");
            assert_eq!(position, 0);
            assert!(reason.contains("named for offset 5"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was cut: the file is intact for whoever investigates.
    assert_eq!(
        std::fs::read(dir.path().join("00000000000000000005.log")).unwrap(),
        std::fs::read(fixture("segment_name_mismatch/00000000000000000005.log")).unwrap()
    );
}

#[test]
fn an_index_longer_than_its_log_is_rebuilt() {
    let dir = copy("index_longer_than_log");
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 7);
    for from in 0..7 {
        let r = log.read(from, embedlog::ReadLimit::bytes(1)).unwrap();
        assert_eq!(r.records().next().unwrap().unwrap().offset, from);
    }
    log.close().unwrap();
    let idx = std::fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    assert!(idx.len() < 32, "the bogus entries are gone");
}

#[test]
fn a_batch_length_past_the_end_is_cut_as_a_torn_tail() {
    let dir = copy("batch_length_past_eof");
    // No checkpoint: nothing is known to be fsync'd, so this is a torn tail.
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        log.end_offset(),
        3,
        "the damaged batch and everything after it go"
    );
    assert_eq!(common::read_all(&log).unwrap().len(), 3);
    log.append(&[Record::new("next")]).unwrap();
}

#[test]
fn an_overflowing_varint_is_an_error_everywhere() {
    let bytes = std::fs::read(fixture("varint_overflow.bin")).unwrap();
    let batch = Batch::new(Bytes::from(bytes.clone())).unwrap();
    batch.verify().unwrap(); // the CRC is right: only decoding can tell
    let err = batch.records().unwrap().next().unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidBatch { position: 61, reason } if reason.contains("varint")),
        "{err:?}"
    );
    // A log refuses it on append...
    let dir = common::tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut b = bytes.clone();
    assert!(matches!(
        log.append_batch(&mut b, embedlog::Durability::Buffered),
        Err(Error::InvalidBatch { .. })
    ));
    assert_eq!(log.end_offset(), 0);
    // ...and one found on disk is reported with its file and position.
    let dir = copy("varint_overflow_in_segment");
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let err = log
        .read(0, Default::default())
        .unwrap()
        .records()
        .next()
        .unwrap()
        .unwrap_err();
    match err {
        Error::Corrupt {
            path,
            position,
            reason,
        } => {
            assert_eq!(path.file_name().unwrap(), "00000000000000000000.log");
            assert_eq!(position, 61);
            assert!(reason.contains("varint"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(log.verify(), Err(Error::Corrupt { .. })));
    // The records after it are still readable.
    let r = log
        .read(3, Default::default())
        .unwrap()
        .records()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(r.offset, 3);
}

#[test]
fn foreign_entries_are_left_alone_and_orphan_indexes_removed() {
    let dir = copy("foreign_entries");
    std::fs::create_dir(dir.path().join("subdir.log")).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 207);
    assert_eq!(common::read_all(&log).unwrap().len(), 207);
    for kept in ["README.txt", "12.log", "subdir.log"] {
        assert!(dir.path().join(kept).exists(), "{kept} was touched");
    }
    for gone in [
        "00000000000000000999.index",
        "00000000000000000999.timeindex",
    ] {
        assert!(!dir.path().join(gone).exists(), "{gone} should be removed");
    }
}

#[test]
fn a_checkpoint_of_garbage_is_a_precise_error() {
    let dir = common::tempdir();
    Log::open(dir.path(), LogConfig::default())
        .unwrap()
        .close()
        .unwrap();
    let cp = dir.path().join("embedlog.checkpoint");
    std::fs::write(
        &cp,
        b"garbage garbage garbage garbage garbage garbage garbage!",
    )
    .unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(Error::Corrupt { path, reason, .. }) => {
            assert_eq!(path, cp);
            assert!(reason.contains("delete the file"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
