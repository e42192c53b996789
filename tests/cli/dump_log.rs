//! `embedlog dump-log` prints what the segment and index files hold (checked
//! against the kafka-python fixtures' known values) and exits 3 on damage,
//! naming the byte.

use crate::support::run_bare;
use embedlog::{Log, LogConfig, Record};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("kafka_python/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn batch_lines_match_kafka_pythons_headers() {
    let run = run_bare(&["dump-log", &fixture("kafka_python/basic.bin")]).ok();
    let lines = run.lines();
    assert_eq!(
        lines[0],
        format!("Dumping {}", fixture("kafka_python/basic.bin"))
    );
    assert_eq!(
        lines[1],
        "baseOffset: 0 lastOffset: 2 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 \
         producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: false \
         position: 0 CreateTime: 1700000000005 size: 124 magic: 2 compresscodec: none \
         crc: 2997658997 isvalid: true"
    );
    assert_eq!(lines.len(), 2);

    let run = run_bare(&["dump-log", &fixture("kafka_python/idempotent.bin")]).ok();
    let line = run.lines()[1].to_string();
    for part in [
        "baseOffset: 0 lastOffset: 1 count: 2",
        "baseSequence: 100 lastSequence: 101 producerId: 4242 producerEpoch: 7",
        "crc: 3855110471 isvalid: true",
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
}

#[test]
fn print_data_log_shows_every_record() {
    let run = run_bare(&[
        "dump-log",
        "--print-data-log",
        &fixture("kafka_python/basic.bin"),
        &fixture("kafka_python/nulls.bin"),
        &fixture("kafka_python/txn_commit.bin"),
        &fixture("kafka_python/txn_abort.bin"),
    ])
    .ok();
    let records: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.starts_with('|'))
        .collect();
    assert_eq!(
        records[..3],
        [
            "| offset: 0 CreateTime: 1700000000000 keySize: 5 valueSize: 7 sequence: -1 headerKeys: [] key: key-0 payload: value-0",
            "| offset: 1 CreateTime: 1700000000005 keySize: 5 valueSize: 7 sequence: -1 headerKeys: [h1,trace] key: key-1 payload: value-1",
            "| offset: 2 CreateTime: 1700000000003 keySize: 2 valueSize: 0 sequence: -1 headerKeys: [] key: k2 payload: ",
        ]
    );
    // nulls: a null key prints no key, a tombstone no payload.
    assert_eq!(
        records[3],
        "| offset: 0 CreateTime: 1700000001000 keySize: -1 valueSize: 6 sequence: -1 headerKeys: [] payload: no-key"
    );
    assert_eq!(
        records[4],
        "| offset: 1 CreateTime: 1700000001001 keySize: 4 valueSize: -1 sequence: -1 headerKeys: [] key: tomb"
    );
    assert!(records[6].contains("headerKeys: [null-h,empty-h] key: hdr payload: v"));
    assert!(
        records[7].ends_with("endTxnMarker: COMMIT coordinatorEpoch: 0"),
        "{}",
        records[7]
    );
    assert!(
        records[8].ends_with("endTxnMarker: ABORT coordinatorEpoch: 0"),
        "{}",
        records[8]
    );
    assert_eq!(records.len(), 9);
}

#[test]
fn json_matches_every_fixture() {
    for name in [
        "basic",
        "nulls",
        "idempotent",
        "large",
        "txn_data",
        "txn_commit",
        "txn_abort",
    ] {
        let run = run_bare(&[
            "dump-log",
            "--json",
            "--print-data-log",
            &fixture(&format!("kafka_python/{name}.bin")),
        ])
        .ok();
        let doc = run.json();
        let want = expected(name);
        let h = &want["header"];
        let file = &doc[0];
        assert_eq!(file["kind"], "segment");
        assert_eq!(file["invalid"], Value::Null, "{name}");
        let b = &file["batches"][0];
        assert_eq!(file["batches"].as_array().unwrap().len(), 1);
        assert_eq!(b["base_offset"], h["base_offset"], "{name}");
        assert_eq!(b["last_offset"], h["last_offset_delta"], "{name}");
        assert_eq!(b["count"], h["record_count"], "{name}");
        assert_eq!(b["crc"], h["crc"], "{name}");
        assert_eq!(b["crc_valid"], true, "{name}");
        for f in [
            "producer_id",
            "producer_epoch",
            "base_sequence",
            "partition_leader_epoch",
            "max_timestamp",
        ] {
            assert_eq!(b[f], h[f], "{name} {f}");
        }
        assert_eq!(b["first_timestamp"], h["base_timestamp"], "{name}");
        assert_eq!(
            b["size"],
            h["batch_length"].as_u64().unwrap() + 12,
            "{name}"
        );
        let attributes = h["attributes"].as_u64().unwrap();
        assert_eq!(b["is_transactional"], attributes & 0x10 != 0, "{name}");
        assert_eq!(b["is_control"], attributes & 0x20 != 0, "{name}");
        let records = b["records"].as_array().unwrap();
        let want_records = want["records"].as_array().unwrap();
        assert_eq!(records.len(), want_records.len(), "{name}");
        for (r, w) in records.iter().zip(want_records) {
            assert_eq!(r["offset"], w["offset_delta"], "{name}");
            assert_eq!(r["timestamp"], w["timestamp"], "{name}");
            for (field, got) in [("key", &r["key"]), ("value", &r["value"])] {
                let as_hex = match got {
                    Value::Null => Value::Null,
                    Value::String(s) => Value::String(hex(s.as_bytes())),
                    other => other["hex"].clone(),
                };
                assert_eq!(as_hex, w[field], "{name} {field}");
            }
            let headers = r["headers"].as_array().unwrap();
            let want_headers = w["headers"].as_array().unwrap();
            assert_eq!(headers.len(), want_headers.len());
            for (h, wh) in headers.iter().zip(want_headers) {
                assert_eq!(h["key"], wh[0]);
            }
        }
        if name == "txn_commit" {
            assert_eq!(b["control"]["type"], "COMMIT");
        }
    }
}

#[test]
fn a_bad_fixture_exits_3_naming_the_position() {
    let path = fixture("bad/batch_length_past_eof/00000000000000000000.log");
    let run = run_bare(&["dump-log", &path]).code(3);
    let lines = run.lines();
    assert!(lines[2].contains("position: 0"), "{lines:?}");
    assert_eq!(
        lines[3],
        "Found 120 invalid bytes at the end of 00000000000000000000.log"
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains(&path) && last.contains("at byte 124"),
        "{last}"
    );

    let path = fixture("bad/varint_overflow_in_segment/00000000000000000000.log");
    let run = run_bare(&["dump-log", "--json", &path]).code(3);
    let invalid = &run.json()[0]["invalid"];
    assert_eq!(invalid["position"], 61);
    assert_eq!(invalid["batch_position"], 0);
    assert!(run.stderr.contains("at byte 61"), "{}", run.stderr);

    let run = run_bare(&[
        "dump-log",
        &fixture("bad/index_longer_than_log/00000000000000000000.index"),
    ])
    .code(3);
    assert!(run.stdout.contains("offset: 6 position: 124"));
    assert!(
        run.lines().last().unwrap().contains("at byte 24"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_file_exits_1_naming_it() {
    let run = run_bare(&["dump-log", "/nonexistent/00000000000000000000.log"]).code(1);
    assert!(
        run.stderr.contains("/nonexistent/00000000000000000000.log"),
        "{}",
        run.stderr
    );
}

fn written_segment(dir: &Path) -> PathBuf {
    let log = Log::open(dir, LogConfig::default().index_interval_bytes(200)).unwrap();
    for b in 0..30u64 {
        let records: Vec<Record> = (0..3)
            .map(|i| Record::new(format!("value {b}.{i}")).timestamp(1_700_000_000_000 + b as i64))
            .collect();
        log.append(&records).unwrap();
    }
    log.close().unwrap();
    dir.join("00000000000000000000.log")
}

#[test]
fn index_entries_line_up_with_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = written_segment(dir.path());
    let index = log.with_extension("index");
    let timeindex = log.with_extension("timeindex");
    let run = run_bare(&[
        "dump-log",
        "--json",
        &log.display().to_string(),
        &index.display().to_string(),
        &timeindex.display().to_string(),
    ])
    .ok();
    let doc = run.json();
    let batches = doc[0]["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 30);
    assert_eq!(doc[0]["next_offset"], 90);
    let entries = doc[1]["entries"].as_array().unwrap();
    assert_eq!(doc[1]["kind"], "offset_index");
    assert!(entries.len() > 3, "{entries:?}");
    assert_eq!(doc[1]["problems"].as_array().unwrap().len(), 0);
    for e in entries {
        let b = batches
            .iter()
            .find(|b| b["position"] == e["position"])
            .unwrap_or_else(|| panic!("no batch at {e}"));
        assert_eq!(b["last_offset"], e["offset"]);
    }
    let time_entries = doc[2]["entries"].as_array().unwrap();
    assert!(!time_entries.is_empty());
    for e in time_entries {
        let b = batches
            .iter()
            .find(|b| b["last_offset"] == e["offset"])
            .unwrap();
        assert_eq!(b["max_timestamp"], e["timestamp"]);
    }

    let text = run_bare(&["dump-log", &index.display().to_string()]).ok();
    let first = &entries[0];
    assert_eq!(
        text.lines()[1],
        format!(
            "offset: {} position: {}",
            first["offset"], first["position"]
        )
    );
    let sanity = run_bare(&[
        "dump-log",
        "--index-sanity-check",
        &index.display().to_string(),
    ])
    .ok();
    assert!(
        sanity.stdout.contains("passed sanity check"),
        "{}",
        sanity.stdout
    );
}

/// A partition with an aborted transaction: its `.txnindex` and the
/// `.snapshot` a clean close leaves are dumped in Kafka's words, and a
/// damaged one exits 3.
#[test]
fn txn_index_and_snapshot_files_are_dumped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for name in ["txn_data", "txn_abort"] {
        let mut bytes = std::fs::read(fixture(&format!("kafka_python/{name}.bin"))).unwrap();
        log.append_batch(&mut bytes, embedlog::Durability::Buffered)
            .unwrap();
    }
    log.close().unwrap();
    let txn = dir.path().join("00000000000000000000.txnindex");
    let snapshot = dir.path().join("00000000000000000003.snapshot");
    let run = run_bare(&["dump-log", &txn.display().to_string()]).ok();
    assert_eq!(
        run.lines()[1],
        "version: 0 producerId: 4243 firstOffset: 0 lastOffset: 2 lastStableOffset: 3"
    );
    let run = run_bare(&["dump-log", &snapshot.display().to_string()]).ok();
    let line = &run.lines()[1];
    assert!(
        line.starts_with(
            "producerId: 4243 producerEpoch: 1 coordinatorEpoch: 0 currentTxnFirstOffset: None "
        ),
        "{line}"
    );
    let json = run_bare(&["dump-log", "--json", &txn.display().to_string()])
        .ok()
        .json();
    assert_eq!(json[0]["kind"], "txn_index");
    assert_eq!(json[0]["entries"][0]["last_offset"], 2);
    std::fs::write(&txn, [0u8; 5]).unwrap();
    let run = run_bare(&["dump-log", &txn.display().to_string()]).code(3);
    assert!(run.stdout.contains("not a whole number"), "{}", run.stdout);
}
