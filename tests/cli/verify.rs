//! `embedlog verify` exits 0 on a directory an `embedlog::Broker` wrote,
//! names the file of any damage and exits 3, and calls a torn tail in the
//! last segment (what a crash leaves) a warning.

use crate::support::run;
use embedlog::{ProducerConfig, Record, TopicConfig};
use std::path::{Path, PathBuf};

const RECORDS: u64 = 240;

/// Two topics (3 and 2 partitions) with small segments and dense indexes;
/// `RECORDS` records in batches of 4.
fn write_dir(dir: &Path) {
    let broker = crate::support::open_broker(dir);
    let config = TopicConfig::default()
        .segment_bytes(1024)
        .index_interval_bytes(128);
    broker
        .admin()
        .create_topic("orders", config.clone().partitions(3))
        .unwrap();
    broker
        .admin()
        .create_topic("events", config.partitions(2))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default());
    for i in 0..RECORDS {
        let (topic, partition) = if i % 2 == 0 {
            ("orders", (i / 2 % 3) as u32)
        } else {
            ("events", (i / 2 % 2) as u32)
        };
        producer
            .send_to(
                topic,
                partition,
                Record::new(format!("record number {i}")).key(format!("k{i}")),
            )
            .unwrap();
        if i % 20 == 19 {
            producer.flush().unwrap();
        }
    }
    producer.flush().unwrap();
    drop(producer);
    broker.close().unwrap();
}

fn segments(partition: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn verify_json(dir: &Path, code: i32) -> serde_json::Value {
    run(dir, &["verify", "--json"]).code(code).json()
}

#[test]
fn a_clean_directory_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path());
    let partition = dir.path().join("topics/orders/0");
    assert!(segments(&partition).len() >= 2, "segments should roll");
    let report = verify_json(dir.path(), 0);
    assert_eq!(report["clean"], true);
    // The records, and the producer id block the idempotent producer
    // took in `__transaction_state`.
    assert_eq!(report["records"], RECORDS + 1);
    // The two topics and the internal `__consumer_offsets` and
    // `__transaction_state`.
    assert!(dir.path().join("topics/__consumer_offsets").is_dir());
    assert_eq!(report["topics"], 4);
    assert!(report["partitions"].as_u64().unwrap() > 5);
    assert!(report["segments"].as_u64().unwrap() > 5);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");

    let text = run(dir.path(), &["verify"]).ok();
    assert!(
        text.stdout.contains(&format!("{} records", RECORDS + 1)),
        "{}",
        text.stdout
    );
    assert!(text.lines().last().unwrap().starts_with("0 problems"));
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path());
    let sealed = segments(&dir.path().join("topics/events/1"))[0].clone();
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes[75] ^= 0x01; // inside the first batch's first record
    std::fs::write(&sealed, &bytes).unwrap();
    let report = verify_json(dir.path(), 3);
    assert_eq!(report["clean"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["path"], sealed.display().to_string());
    assert_eq!(problems[0]["position"], 0);
    assert!(problems[0]["reason"].as_str().unwrap().contains("CRC"));

    let text = run(dir.path(), &["verify"]).code(3);
    assert!(
        text.stdout
            .contains(&format!("problem: {} at byte 0", sealed.display())),
        "{}",
        text.stdout
    );
}

#[test]
fn a_damaged_index_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path());
    let index = segments(&dir.path().join("topics/orders/2"))[0].with_extension("index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 8, "the sealed segment has index entries");
    bytes[7] ^= 0x01; // the first entry's position, off its batch
    std::fs::write(&index, &bytes).unwrap();
    let report = verify_json(dir.path(), 3);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["path"], index.display().to_string());
    assert_eq!(problems[0]["position"], 0);
}

#[test]
fn a_torn_tail_in_the_last_segment_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path());
    let logs = segments(&dir.path().join("topics/orders/1"));
    let last = logs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let len = bytes.len() as u64;
    // Half a batch header after the last batch: a write the crash cut.
    let partial = bytes[..30].to_vec();
    bytes.extend_from_slice(&partial);
    std::fs::write(last, &bytes).unwrap();
    let report = verify_json(dir.path(), 0);
    assert_eq!(report["records"], RECORDS + 1);
    let warnings = report["warnings"].as_array().unwrap();
    let torn: Vec<_> = warnings
        .iter()
        .filter(|w| w["path"] == last.display().to_string())
        .collect();
    assert_eq!(torn.len(), 1, "{report}");
    assert_eq!(torn[0]["position"], len);

    // The same bytes in a sealed segment are a problem.
    let first = &logs[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes.extend_from_slice(&partial);
    std::fs::write(first, &bytes).unwrap();
    let report = verify_json(dir.path(), 3);
    assert_eq!(report["problems"][0]["path"], first.display().to_string());
}

#[test]
fn not_a_data_directory_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), &["verify"]).code(1);
    assert!(
        run.stderr.contains("not an embedlog data directory"),
        "{}",
        run.stderr
    );
}
