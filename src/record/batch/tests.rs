//! Unit tests of the batch format: encoding, decoding, validation and the
//! [`Batches`] iterators.

use super::*;
use crate::error::{Error, Result};
use crate::record::{Header, Record};
use bytes::Bytes;

fn sample() -> Vec<Record> {
    vec![
        Record::new("v0").key("k0").timestamp(1000),
        Record {
            key: None,
            value: None,
            timestamp: 990,
            headers: vec![Header::new("a", "1"), Header::null("n")],
        },
        Record::new(vec![7u8; 300]).timestamp(1005),
    ]
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_batch(&mut buf, &BatchParams::default(), records).unwrap();
    buf
}

#[test]
fn crc32c_check_value() {
    // The published CRC-32C (Castagnoli) check value.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn roundtrip_and_header_fields() {
    let records = sample();
    let bytes = encode(&records);
    let batch = Batch::new(Bytes::from(bytes)).unwrap();
    let h = *batch.header();
    assert_eq!(h.magic, 2);
    assert_eq!(h.record_count, 3);
    assert_eq!(h.last_offset_delta, 2);
    assert_eq!(h.base_timestamp, 1000);
    assert_eq!(h.max_timestamp, 1005);
    assert_eq!(h.producer_id, -1);
    let got: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 3);
    for (i, (g, r)) in got.iter().zip(&records).enumerate() {
        assert_eq!(g.offset, i as u64);
        assert_eq!(g.clone().into_record(), *r);
    }
}

#[test]
fn builder_matches_encode_batch() {
    let records = sample();
    let mut b = BatchBuilder::new();
    for r in &records {
        b.push(r);
    }
    assert_eq!(b.finish().unwrap(), encode(&records));
}

#[test]
fn every_single_byte_flip_is_detected() {
    let bytes = encode(&sample());
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        let res = Batch::new(Bytes::from(b)).and_then(|batch| {
            batch
                .records()?
                .collect::<Result<Vec<_>>>()
                .map(|v| (batch, v))
        });
        match res {
            Err(_) => {}
            // Base offset and leader epoch are outside the CRC by design.
            Ok((batch, _)) => assert!(
                i < 8 || (12..16).contains(&i),
                "flip at byte {i} went unnoticed: {:?}",
                batch.header()
            ),
        }
    }
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let bytes = encode(&sample());
    for n in 0..bytes.len() {
        assert!(Batch::new(Bytes::copy_from_slice(&bytes[..n])).is_err());
        let it: Vec<_> = Batches::from_bytes(Bytes::copy_from_slice(&bytes[..n]))
            .records()
            .collect();
        if n > 0 {
            assert!(it.last().unwrap().is_err(), "cut at {n}");
        }
    }
}

#[test]
fn absurd_counts_are_rejected_before_allocating() {
    let mut bytes = encode(&[Record::new("x").timestamp(1)]);
    bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    bytes[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    let e = Batch::new(Bytes::from(bytes)).unwrap_err();
    assert!(e.to_string().contains("cannot fit"), "{e}");
}

#[test]
fn extreme_timestamps_roundtrip_with_wrapping_deltas() {
    let records = [
        // (-1 is `Record::NO_TIMESTAMP`: stamped with the batch's time.)
        Record::new("a").timestamp(-2),
        Record::new("b").timestamp(i64::MAX),
        Record::new("c").timestamp(i64::MIN),
    ];
    let batch = Batch::new(Bytes::from(encode(&records))).unwrap();
    let got: Vec<_> = batch
        .records()
        .unwrap()
        .map(|r| r.unwrap().timestamp)
        .collect();
    assert_eq!(got, [-2, i64::MAX, i64::MIN]);
    assert_eq!(
        validate_records(batch.as_bytes(), batch.header(), 1 << 20),
        Ok(())
    );
}

#[test]
fn validate_records_catches_what_the_crc_cannot() {
    let bytes = encode(&sample());
    let h = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(validate_records(&bytes, &h, 1 << 20), Ok(()));
    // A header max timestamp below a record's (re-checksummed: a client
    // can send exactly this).
    let mut lying = bytes.clone();
    lying[35..43].copy_from_slice(&999i64.to_be_bytes());
    let crc = batch_crc(&lying);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    let h2 = BatchHeader::parse(&lying).unwrap();
    let e = validate_records(&lying, &h2, 1 << 20).unwrap_err();
    assert!(
        matches!(&e, ValidateError::Format(f) if f.reason.contains("max timestamp")),
        "{e:?}"
    );
    // A record count that disagrees with the records.
    let mut short = bytes.clone();
    short[57..61].copy_from_slice(&2i32.to_be_bytes());
    let h3 = BatchHeader::parse(&short).unwrap();
    assert!(validate_records(&short, &h3, 1 << 20).is_err());
}

#[test]
fn a_batch_that_says_gzip_but_is_not_is_refused_without_a_panic() {
    let mut bytes = encode(&sample());
    bytes[22] |= 1; // gzip
    let crc = batch_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::new(Bytes::from(bytes.clone())).unwrap();
    assert_eq!(batch.header().compression(), Compression::Gzip);
    let e = batch.records().unwrap_err();
    if cfg!(feature = "gzip") {
        assert!(matches!(e, Error::InvalidBatch { .. }), "{e}");
    } else {
        assert!(
            matches!(&e, Error::Unsupported(why) if why.contains("`gzip` feature")),
            "{e}"
        );
    }
    let h = batch.header();
    assert!(validate_records(&bytes, h, 1 << 20).is_err());
    // Codes 5–7 are no codec at all.
    bytes[22] |= 7;
    let crc = batch_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::new(Bytes::from(bytes)).unwrap();
    assert_eq!(batch.header().compression(), Compression::Unknown(7));
    assert!(matches!(batch.records(), Err(Error::Unsupported(_))));
}

#[test]
fn log_append_time_applies_max_timestamp() {
    let mut b = BatchBuilder::new().timestamp_type(TimestampType::LogAppendTime);
    b.push(&Record::new("a").timestamp(5));
    b.push(&Record::new("b").timestamp(9));
    let batch = Batch::new(b.finish().unwrap().into()).unwrap();
    assert_eq!(
        batch.header().timestamp_type(),
        TimestampType::LogAppendTime
    );
    for r in batch.records().unwrap() {
        assert_eq!(r.unwrap().timestamp, 9);
    }
}

#[test]
fn records_share_the_batch_memory() {
    let bytes = Bytes::from(encode(&sample()));
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let batch = Batch::new(bytes.clone()).unwrap();
    let first = batch.records().unwrap().next().unwrap().unwrap();
    let v = first.value.unwrap();
    assert!(range.contains(&(v.as_ptr() as usize)), "value was copied");
}

/// The sample records as three batches at offsets 0, 3 and 6.
fn three_batches() -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = Vec::new();
    for base in [0i64, 3, 6] {
        let p = BatchParams {
            base_offset: base,
            ..BatchParams::default()
        };
        encode_batch(&mut buf, &p, &sample()).unwrap();
        all.extend_from_slice(&buf);
    }
    all
}

#[test]
fn borrowed_records_equal_owned_records() {
    let all = three_batches();
    for (skip, max) in [(0, usize::MAX), (4, 3), (8, 10), (9, 1)] {
        let mut b = Batches::from_bytes(all.clone().into());
        b.skip_before = skip;
        b.max_records = max;
        let owned: Vec<_> = b.records().map(|r| r.unwrap()).collect();
        let borrowed: Vec<_> = b.records_ref().map(|r| r.unwrap()).collect();
        assert_eq!(owned.len(), borrowed.len(), "skip {skip} max {max}");
        for (o, r) in owned.iter().zip(&borrowed) {
            assert_eq!(r.offset, o.offset);
            assert_eq!(r.to_record().unwrap(), o.clone().into_record());
        }
    }
    // Damage is reported the same way.
    for i in 0..all.len() {
        let mut d = all.clone();
        d[i] ^= 0x20;
        let b = Batches::from_bytes(d.into());
        let owned_err = b.records().any(|r| r.is_err());
        let borrowed_err = b.records_ref().any(|r| r.is_err());
        assert_eq!(owned_err, borrowed_err, "flip at {i}");
    }
}

#[test]
fn records_iter_skips_and_limits() {
    let all = three_batches();
    let mut b = Batches::from_bytes(all.into());
    b.skip_before = 4;
    b.max_records = 3;
    let offs: Vec<_> = b.records().map(|r| r.unwrap().offset).collect();
    assert_eq!(offs, vec![4, 5, 6]);
}

/// The markers and transactional batches embedlog writes are byte for byte
/// those kafka-python wrote for the same inputs (the fixtures
/// `tests/fixtures/kafka_python/txn_*.bin`): kafka-python's decoder reads
/// ours as it reads its own.
#[test]
fn transactional_batches_and_markers_match_kafka_python() {
    let fixture = |name: &str| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kafka_python");
        std::fs::read(dir.join(format!("{name}.bin"))).unwrap()
    };
    let mut commit = Vec::new();
    crate::record::encode_marker(&mut commit, 0, 4243, 1, true, 0, 1_700_000_004_002);
    assert_eq!(commit, fixture("txn_commit"));
    let abort_fixture = fixture("txn_abort");
    let h = crate::record::BatchHeader::parse(&abort_fixture).unwrap();
    let mut abort = Vec::new();
    crate::record::encode_marker(
        &mut abort,
        0,
        h.producer_id,
        h.producer_epoch,
        false,
        0,
        h.base_timestamp,
    );
    assert_eq!(abort, abort_fixture);
    let mut data = crate::record::BatchBuilder::new()
        .producer(4243, 1, 0)
        .transactional(true);
    data.push(
        &crate::record::Record::new("in-txn-1")
            .key("t-key-1")
            .timestamp(1_700_000_004_000),
    );
    data.push(
        &crate::record::Record::new("in-txn-2")
            .key("t-key-2")
            .timestamp(1_700_000_004_001),
    );
    assert_eq!(data.finish().unwrap(), fixture("txn_data"));
}

mod reads_from_an_offset {
    //! A read from an offset inside a batch (a random read) steps over the
    //! records before it without decoding them: by their lengths in a
    //! batch without offset gaps, record by record in one with gaps
    //! (compaction's). Either way it must find what decoding finds.
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    /// A batch at `base` of `values` (its i-th record at offset delta i),
    /// then, if `keep` has a `false`, filtered to the records it keeps.
    fn batch(base: i64, values: &[Vec<u8>], keep: &[bool]) -> Vec<u8> {
        let records: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new(v.clone()).key(format!("k{i}")).timestamp(7))
            .collect();
        let p = BatchParams {
            base_offset: base,
            ..Default::default()
        };
        let mut buf = Vec::new();
        encode_batch(&mut buf, &p, &records).unwrap();
        if keep.iter().all(|&k| k) {
            return buf;
        }
        let h = BatchHeader::parse(&buf).unwrap();
        let mut i = 0;
        let mut out = Vec::new();
        filter_batch(&buf, &h, &mut out, |_| {
            i += 1;
            keep[i - 1]
        })
        .unwrap();
        seal_batch(&mut out);
        out
    }

    proptest! {
        #[test]
        fn a_read_from_any_offset_finds_the_model_record(
            batches in prop::collection::vec(
                prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), prop::bool::weighted(0.8)), 1..40),
                1..6,
            ),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..30),
        ) {
            let (mut data, mut model, mut base) = (Vec::new(), Vec::new(), 0i64);
            for b in &batches {
                let values: Vec<_> = b.iter().map(|(v, _)| v.clone()).collect();
                let mut keep: Vec<_> = b.iter().map(|(_, k)| *k).collect();
                keep[0] = true; // a batch keeps one record at least
                data.extend_from_slice(&batch(base, &values, &keep));
                for (i, v) in values.iter().enumerate() {
                    if keep[i] {
                        model.push((base as u64 + i as u64, v.clone()));
                    }
                }
                base += values.len() as i64;
            }
            let data = Bytes::from(data);
            let path: std::sync::Arc<Path> = Path::new("x.log").into();
            for pick in &picks {
                // Any offset, kept or not: the first record at or after it.
                let from = pick.index(base as usize) as u64;
                let want = model.iter().find(|(o, _)| *o >= from);
                let read = Batches::from_log(data.clone(), path.clone(), 0, from, 1, None);
                let got = read.records_ref().next().transpose().unwrap();
                prop_assert_eq!(
                    got.map(|r| (r.offset, r.value.unwrap().to_vec())),
                    want.cloned()
                );
                let owned = read.records().next().transpose().unwrap();
                prop_assert_eq!(
                    owned.map(|r| (r.offset, r.value.unwrap().to_vec())),
                    want.cloned()
                );
            }
        }
    }

    #[test]
    fn a_damaged_length_before_the_offset_is_an_error_not_a_wrong_record() {
        let values: Vec<_> = (0..10u8).map(|i| vec![i; 20]).collect();
        let mut b = batch(0, &values, &[true; 10]);
        // The third record's length (after two records of 29 bytes: the
        // length, attributes, timestamp and offset deltas, key length, key
        // "kN", value length, 20 value bytes, header count), made to point
        // elsewhere into the batch: the record found there is checked.
        let at = BATCH_HEADER_SIZE + 2 * 29;
        assert_eq!(b[at], 28 << 1, "the record length varint");
        b[at] = 0x7e;
        seal_batch(&mut b);
        let path: std::sync::Arc<Path> = Path::new("x.log").into();
        let read = Batches::from_log(Bytes::from(b), path, 0, 5, 1, None);
        let e = read.records_ref().next().unwrap().unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }
}
