//! Batches are Kafka's record batch v2 byte for byte: batches produced by an
//! independent implementation (kafka-python 3.0.12, fixtures in
//! `tests/fixtures/kafka_python/`) decode to the expected records, our
//! encoder reproduces them exactly, and the CRC is CRC-32C.

use crate::common;
use bytes::Bytes;
use embedlog::{Batch, BatchBuilder, Log, LogConfig, ReadLimit, Record};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> (Vec<u8>, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_python");
    let bin = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    (bin, serde_json::from_str(&json).unwrap())
}

const FIXTURES: [&str; 4] = ["basic", "nulls", "idempotent", "large"];

#[test]
fn crc32c_published_check_value() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn kafka_python_batches_decode_to_the_expected_records() {
    for name in FIXTURES {
        let (bin, json) = fixture(name);
        let batch = Batch::new(Bytes::from(bin)).unwrap();
        let h = batch.header();
        let jh = &json["header"];
        assert_eq!(h.base_offset, jh["base_offset"].as_i64().unwrap(), "{name}");
        assert_eq!(h.batch_length as i64, jh["batch_length"].as_i64().unwrap());
        assert_eq!(
            h.partition_leader_epoch as i64,
            jh["partition_leader_epoch"].as_i64().unwrap()
        );
        assert_eq!(h.magic, 2);
        assert_eq!(h.crc as u64, jh["crc"].as_u64().unwrap(), "{name}");
        assert_eq!(h.attributes as i64, jh["attributes"].as_i64().unwrap());
        assert_eq!(
            h.last_offset_delta as i64,
            jh["last_offset_delta"].as_i64().unwrap()
        );
        assert_eq!(h.base_timestamp, jh["base_timestamp"].as_i64().unwrap());
        assert_eq!(h.max_timestamp, jh["max_timestamp"].as_i64().unwrap());
        assert_eq!(h.producer_id, jh["producer_id"].as_i64().unwrap());
        assert_eq!(
            h.producer_epoch as i64,
            jh["producer_epoch"].as_i64().unwrap()
        );
        assert_eq!(
            h.base_sequence as i64,
            jh["base_sequence"].as_i64().unwrap()
        );
        assert_eq!(h.record_count as i64, jh["record_count"].as_i64().unwrap());
        batch.verify().unwrap();

        let got: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
        let want = common::kafka_python_records(&json);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let delta = json["records"][i]["offset_delta"].as_u64().unwrap();
            assert_eq!(g.offset, delta, "{name} record {i}");
            assert_eq!(&g.clone().into_record(), w, "{name} record {i}");
        }
    }
}

#[test]
fn null_and_empty_are_distinct() {
    let (bin, _) = fixture("nulls");
    let batch = Batch::new(Bytes::from(bin)).unwrap();
    let recs: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
    assert!(recs[0].key.is_none());
    assert!(recs[1].value.is_none(), "tombstone");
    let h = &recs[3].headers;
    assert_eq!(h[0].key(), "null-h");
    assert!(h[0].value().is_none());
    assert_eq!(h[1].value().map(|v| v.len()), Some(0));
}

#[test]
fn our_encoder_reproduces_kafka_python_byte_for_byte() {
    for name in FIXTURES {
        let (bin, json) = fixture(name);
        let jh = &json["header"];
        let mut b = BatchBuilder::new();
        if jh["producer_id"].as_i64().unwrap() != -1 {
            b = b.producer(
                jh["producer_id"].as_i64().unwrap(),
                jh["producer_epoch"].as_i64().unwrap() as i16,
                jh["base_sequence"].as_i64().unwrap() as i32,
            );
        }
        for r in common::kafka_python_records(&json) {
            b.push(&r);
        }
        assert_eq!(b.finish().unwrap(), bin, "{name}");
    }
}

#[test]
fn a_kafka_python_batch_appended_to_a_log_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&[Record::new("first").timestamp(1)]).unwrap();
    let (bin, json) = fixture("large");
    let mut batch = bin.clone();
    let info = log
        .append_batch(&mut batch, embedlog::Durability::Buffered)
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (1, 200));
    // Only the base offset changed: it is outside the CRC.
    assert_eq!(&batch[8..], &bin[8..]);
    let want = common::kafka_python_records(&json);
    let mut got = Vec::new();
    let mut at = 1;
    while at < log.end_offset() {
        for r in log.read(at, ReadLimit::bytes(4096)).unwrap().records() {
            let r = r.unwrap();
            at = r.offset + 1;
            got.push(r.into_record());
        }
    }
    assert_eq!(got, want);
    // On disk the batch is the fixture's bytes with the assigned base offset.
    let mut seg = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
    // Without the zeros of the active segment's preallocated tail.
    seg.truncate(common::batch_bounds(&seg).last().unwrap().1);
    let first_len = seg.len() - bin.len();
    assert_eq!(&seg[first_len + 8..], &bin[8..]);
    assert_eq!(&seg[first_len..first_len + 8], &1i64.to_be_bytes());
}

#[test]
fn append_batch_rejects_batches_whose_records_disagree_with_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (bin, _) = fixture("basic");
    // Claim a max timestamp below the records' (and fix the CRC, as a
    // careless client would): the log must not trust it.
    let mut lying = bin.clone();
    lying[35..43].copy_from_slice(&1i64.to_be_bytes());
    let crc = crc32c::crc32c(&lying[21..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append_batch(&mut lying, embedlog::Durability::Buffered),
        Err(embedlog::Error::InvalidBatch { .. })
    ));
    let mut bad_crc = bin.clone();
    bad_crc[70] ^= 1;
    assert!(
        log.append_batch(&mut bad_crc, embedlog::Durability::Buffered)
            .is_err()
    );
    assert_eq!(log.end_offset(), 0, "nothing was appended");
}
