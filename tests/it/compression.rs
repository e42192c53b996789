//! Compressed batches are Kafka's byte for byte: kafka-python's gzip, snappy
//! (xerial and raw), lz4 and zstd batches decode to their records (owned and
//! borrowed, from bytes and from a log), the batches embedlog writes match
//! the checked-in vectors that `check_embedlog.py` decodes with kafka-python,
//! topics and producers compress as `compression.type` says, compaction
//! keeps a batch's codec, decompression is bounded, and a build without a
//! codec's feature refuses its batches with an error naming the feature.

use crate::common;
use bytes::Bytes;
#[allow(unused_imports)]
use embedlog::{
    Batch, BatchBuilder, Batches, Broker, CleanupPolicy, Compression, ConsumerConfig, Durability,
    Error, Header, Log, LogConfig, OffsetReset, ProducerConfig, ReadLimit, Record, TopicConfig,
};
use serde_json::{Value, json};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn kafka_python(name: &str) -> (Vec<u8>, Value) {
    let dir = fixtures().join("kafka_python");
    let bin = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    (bin, serde_json::from_str(&json).unwrap())
}

fn hex(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// The kafka-python fixture of each codec, with the codec it must carry.
const KAFKA_PYTHON: [(&str, Compression); 5] = [
    ("compressed_gzip", Compression::Gzip),
    ("compressed_snappy", Compression::Snappy),
    ("compressed_snappy_raw", Compression::Snappy),
    ("compressed_lz4", Compression::Lz4),
    ("compressed_zstd", Compression::Zstd),
];

/// Every record of `batches`, owned and borrowed (the two must agree).
fn both_ways(batches: &Batches) -> Vec<Record> {
    let owned: Vec<Record> = batches
        .records()
        .map(|r| r.unwrap().into_record())
        .collect();
    let borrowed: Vec<Record> = batches
        .records_ref()
        .map(|r| r.unwrap().to_record().unwrap())
        .collect();
    assert_eq!(owned, borrowed, "records and records_ref disagree");
    owned
}

#[test]
fn kafka_python_compressed_batches_decode_to_their_records() {
    for (name, codec) in KAFKA_PYTHON {
        let (bin, json) = kafka_python(name);
        let batch = Batch::new(Bytes::from(bin.clone())).unwrap();
        assert_eq!(batch.header().compression(), codec, "{name}");
        assert_eq!(
            batch.header().crc as u64,
            json["header"]["crc"].as_u64().unwrap()
        );
        if !codec.is_available() {
            let e = batch.records().unwrap_err();
            assert!(
                matches!(&e, Error::Unsupported(why) if why.contains(codec.name())),
                "{name}: {e}"
            );
            continue;
        }
        let want = common::kafka_python_records(&json);
        assert_eq!(want.len(), 50);
        let got: Vec<Record> = batch
            .records()
            .unwrap()
            .map(|r| r.unwrap().into_record())
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            both_ways(&Batches::from_bytes(Bytes::from(bin))),
            want,
            "{name}"
        );
    }
}

#[test]
fn kafka_python_compressed_batches_are_stored_as_they_came_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut want = Vec::new();
    let mut stored = Vec::new();
    for (name, codec) in KAFKA_PYTHON {
        let (mut bin, json) = kafka_python(name);
        let r = log.append_batch(&mut bin, Durability::Buffered);
        if !codec.is_available() {
            assert!(matches!(r, Err(Error::Unsupported(_))), "{name}: {r:?}");
            continue;
        }
        r.unwrap();
        want.extend(common::kafka_python_records(&json));
        stored.push(bin);
    }
    log.verify().unwrap();
    let batches = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
    let raw: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| b.unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(raw, stored, "the log keeps each batch byte for byte");
    assert_eq!(both_ways(&batches), want);
    // Reading from the middle of a compressed batch skips what comes before.
    if !want.is_empty() {
        let mid = log.read(25, ReadLimit::bytes(1 << 20)).unwrap();
        assert_eq!(both_ways(&mid), want[25..]);
        assert_eq!(
            log.offset_for_timestamp(1_700_000_005_030).unwrap(),
            Some(30)
        );
    }
}

/// The records of the vectors embedlog writes: text that compresses, null
/// keys and values, headers; `big` makes the records section span several
/// 32 KiB snappy and 64 KiB lz4 blocks.
fn vector_records(big: bool) -> Vec<Record> {
    let n = if big { 400 } else { 40 };
    (0..n)
        .map(|i| {
            let value = format!(
                "{{\"order\":{i},\"customer\":\"c-{:04}\",\"items\":[\"widget\",\"gadget\"],\"note\":\"{}\"}}",
                i % 97,
                "lorem ipsum ".repeat(i % 23)
            );
            let mut r = Record::new(value).timestamp(1_700_000_100_000 + i as i64);
            if i % 5 != 4 {
                r = r.key(format!("order-{i}"));
            }
            if i % 13 == 12 {
                r.value = None;
            }
            if i % 7 == 0 {
                r = r.header("source", "embedlog").header("seq", i.to_string());
            }
            r
        })
        .collect()
}

fn codecs() -> [Compression; 4] {
    [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
}

/// Three batches per file (base offsets 0, n, 2n; the middle one
/// idempotent), or one `big` batch, in `check_embedlog.py`'s format.
fn vector(codec: Compression, big: bool) -> (Vec<u8>, Value) {
    let records = vector_records(big);
    let batches = if big { 1 } else { 3 };
    let mut bin = Vec::new();
    let mut expected = Vec::new();
    for b in 0..batches {
        let base = b * records.len() as u64;
        let mut builder = BatchBuilder::new()
            .base_offset(base as i64)
            .compression(codec);
        if b == 1 {
            builder = builder.producer(77, 0, 0);
        }
        for r in &records {
            builder.push(r);
        }
        bin.extend(builder.finish().unwrap());
        for (i, r) in records.iter().enumerate() {
            expected.push(json!({
                "offset": base + i as u64,
                "timestamp": r.timestamp,
                "key": hex(r.key.as_deref()),
                "value": hex(r.value.as_deref()),
                "headers": r.headers.iter().map(|h| json!([h.key(), hex(h.value().map(|v| &v[..]))])).collect::<Vec<_>>(),
            }));
        }
    }
    let json = json!({"compression": codec.name(), "batch_count": batches, "records": expected});
    (bin, json)
}

/// The vectors in `tests/fixtures/embedlog_written/` are what this encoder
/// writes (so `check_embedlog.py`, which decodes them with kafka-python,
/// checks today's encoder). `EMBEDLOG_WRITE_VECTORS=1` rewrites them.
#[test]
fn batches_embedlog_writes_match_the_vectors_kafka_python_checks() {
    let dir = fixtures().join("embedlog_written");
    let write = std::env::var_os("EMBEDLOG_WRITE_VECTORS").is_some();
    for codec in codecs() {
        if !codec.is_available() {
            let mut b = BatchBuilder::new().compression(codec);
            b.push(&Record::new("v"));
            assert!(matches!(b.finish(), Err(Error::Unsupported(_))));
            continue;
        }
        for big in [false, true] {
            let name = format!("{}{}", codec.name(), if big { "_multiblock" } else { "" });
            let (bin, json) = vector(codec, big);
            let json_text = serde_json::to_string(&json).unwrap() + "\n";
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("{name}.bin")), &bin).unwrap();
                std::fs::write(dir.join(format!("{name}.json")), &json_text).unwrap();
            }
            let stored = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
            assert!(
                stored == bin,
                "{name}.bin is not what the encoder writes now: rerun with \
                 EMBEDLOG_WRITE_VECTORS=1, then python3 tests/fixtures/kafka_python/check_embedlog.py \
                 tests/fixtures/embedlog_written"
            );
            let stored_json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            assert_eq!(stored_json, json_text, "{name}.json");
            // And embedlog reads its own batches back.
            let batches = Batches::from_bytes(Bytes::from(bin));
            let records = vector_records(big);
            let want: Vec<Record> = (0..if big { 1 } else { 3 })
                .flat_map(|_| records.clone())
                .collect();
            assert_eq!(both_ways(&batches), want, "{name}");
            for b in batches.iter() {
                assert_eq!(b.unwrap().header().compression(), codec);
            }
        }
    }
}

#[cfg(feature = "compression")]
mod with_codecs {
    use super::*;
    use proptest::prelude::*;

    /// The codec of every batch of partition 0, across all its segments
    /// (a read returns the batches of one segment).
    fn stored_codecs(broker: &Broker, topic: &str) -> Vec<Compression> {
        let p = broker.partition(topic, 0).unwrap();
        let mut codecs = Vec::new();
        let mut at = p.start_offset();
        while at < p.end_offset() {
            let batches = p.read(at, ReadLimit::bytes(16 << 20)).unwrap();
            for b in batches.iter() {
                let b = b.unwrap();
                codecs.push(b.header().compression());
                at = b.last_offset() + 1;
            }
        }
        codecs
    }

    fn consume_all(broker: &Broker, topic: &str) -> Vec<(Option<Bytes>, Option<Bytes>)> {
        let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
        c.assign([(topic, 0)]).unwrap();
        let end = broker
            .topic(topic)
            .unwrap()
            .partition(0)
            .unwrap()
            .end_offset();
        let mut out = Vec::new();
        while c.position((topic, 0)).unwrap() < end {
            for r in c.poll(std::time::Duration::from_millis(100)).unwrap() {
                out.push((r.key_bytes(), r.value_bytes()));
            }
        }
        out
    }

    #[test]
    fn topic_and_producer_compression_types() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::builder(dir.path()).open().unwrap();
        let admin = broker.admin();
        // (topic compression.type, producer codec, stored codec)
        let cases = [
            (None, Compression::Lz4, Compression::Lz4),
            (None, Compression::None, Compression::None),
            (
                Some(Compression::Zstd),
                Compression::None,
                Compression::Zstd,
            ),
            (
                Some(Compression::Zstd),
                Compression::Gzip,
                Compression::Zstd,
            ),
            (
                Some(Compression::None),
                Compression::Snappy,
                Compression::None,
            ),
        ];
        for (i, (topic_codec, producer_codec, stored)) in cases.into_iter().enumerate() {
            let topic = format!("t{i}");
            admin
                .create_topic(&topic, TopicConfig::default().compression(topic_codec))
                .unwrap();
            let producer = broker.producer(ProducerConfig::default().compression(producer_codec));
            for j in 0..300 {
                producer
                    .send(
                        &topic,
                        Record::new(format!("value {j} {}", "x".repeat(j % 50)))
                            .key(format!("k{j}")),
                    )
                    .unwrap();
            }
            producer.flush().unwrap();
            let codecs = stored_codecs(&broker, &topic);
            assert!(!codecs.is_empty());
            assert!(codecs.iter().all(|c| *c == stored), "case {i}: {codecs:?}");
            let got = consume_all(&broker, &topic);
            assert_eq!(got.len(), 300, "case {i}");
            for (j, (k, v)) in got.iter().enumerate() {
                assert_eq!(k.as_deref(), Some(format!("k{j}").as_bytes()));
                assert_eq!(
                    v.as_deref(),
                    Some(format!("value {j} {}", "x".repeat(j % 50)).as_bytes())
                );
            }
        }
        // The setting persists and shows in the topic's entries.
        let config = admin.describe_topic("t2").unwrap().config;
        assert!(
            config
                .entries()
                .contains(&("compression.type", "zstd".to_string()))
        );
        broker.close().unwrap();
        let broker = Broker::builder(dir.path()).open().unwrap();
        assert_eq!(
            broker
                .admin()
                .describe_topic("t2")
                .unwrap()
                .config
                .compression_type(),
            Some(Compression::Zstd)
        );
        let e = TopicConfig::default()
            .set("compression.type", "brotli")
            .unwrap_err();
        assert!(e.to_string().contains("brotli"), "{e}");
    }

    /// A poll that stops inside a compressed batch goes on from there (the
    /// consumer keeps the batch's decompressed records), also after seeks.
    #[test]
    fn small_polls_walk_a_large_compressed_batch_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::builder(dir.path()).open().unwrap();
        broker
            .admin()
            .create_topic("big", TopicConfig::default())
            .unwrap();
        let records = vector_records(true);
        let mut b = BatchBuilder::new().compression(Compression::Lz4);
        for r in &records {
            b.push(r);
        }
        let mut bytes = b.finish().unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let log = Log::open(dir2.path(), LogConfig::default()).unwrap();
        log.append_batch(&mut bytes, Durability::Buffered).unwrap();
        log.close().unwrap();
        // The same batch through a broker topic: copy the segment in.
        broker.close().unwrap();
        std::fs::copy(
            dir2.path().join("00000000000000000000.log"),
            dir.path().join("topics/big/0/00000000000000000000.log"),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("topics/big/0/embedlog.checkpoint")).ok();
        let broker = Broker::builder(dir.path()).open().unwrap();
        assert_eq!(broker.partition("big", 0).unwrap().end_offset(), 400);
        let mut c = broker.consumer(
            ConsumerConfig::default()
                .offset_reset(OffsetReset::Earliest)
                .max_poll_records(7),
        );
        c.assign([("big", 0)]).unwrap();
        let mut got = Vec::new();
        while got.len() < 400 {
            for r in c.poll(std::time::Duration::from_secs(5)).unwrap() {
                assert!(r.offset == got.len() as u64, "in order, none twice");
                got.push(r.value_bytes());
            }
        }
        let want: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
        assert_eq!(got, want);
        // A seek into the batch, back and forth, reads from there.
        for at in [123u64, 5, 390] {
            c.seek(("big", 0), at).unwrap();
            let r = c.poll(std::time::Duration::from_secs(5)).unwrap();
            assert_eq!(r[0].offset, at);
            assert_eq!(r[0].value_bytes(), want[at as usize]);
            let r = c.poll(std::time::Duration::from_secs(5)).unwrap();
            assert_eq!(r[0].offset, at + 7);
        }
    }

    #[test]
    fn a_log_recompresses_batches_to_its_codec() {
        for (to, from) in [
            (Compression::Zstd, "compressed_gzip"),
            (Compression::None, "compressed_lz4"),
            (Compression::Snappy, "compressed_snappy_raw"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), LogConfig::default().compression(Some(to))).unwrap();
            let (mut bin, json) = kafka_python(from);
            let original = bin.clone();
            let info = log.append_batch(&mut bin, Durability::Buffered).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (0, 49));
            assert_eq!(
                bin[8..],
                original[8..],
                "the caller's bytes keep their codec"
            );
            let batches = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
            let stored = batches.iter().next().unwrap().unwrap();
            assert_eq!(stored.header().compression(), to);
            assert_eq!(stored.header().record_count, 50);
            assert_eq!(both_ways(&batches), common::kafka_python_records(&json));
            log.close().unwrap();
            let log = Log::open(dir.path(), LogConfig::default()).unwrap();
            log.verify().unwrap();
        }
    }

    #[test]
    fn compaction_keeps_the_codec_of_compressed_batches() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::builder(dir.path()).cleaner(false).open().unwrap();
        let config = TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(4096)
            .compression(Some(Compression::Zstd));
        broker.admin().create_topic("table", config).unwrap();
        let producer = broker.producer(ProducerConfig::default());
        let mut latest = std::collections::BTreeMap::new();
        for i in 0..2000u32 {
            let key = format!("key-{}", i % 37);
            let value = format!("version {i} of {key}: {}", "payload ".repeat(5));
            latest.insert(key.clone(), value.clone());
            producer.send("table", Record::new(value).key(key)).unwrap();
        }
        producer.flush().unwrap();
        broker
            .topic("table")
            .unwrap()
            .partition(0)
            .unwrap()
            .roll()
            .unwrap();
        let reports = broker.admin().compact_now("table").unwrap();
        assert!(reports[0].1.records_removed > 0, "{reports:?}");
        let codecs = stored_codecs(&broker, "table");
        assert!(
            codecs
                .iter()
                .all(|c| *c == Compression::Zstd || *c == Compression::None)
        );
        assert!(codecs.contains(&Compression::Zstd));
        let mut got = std::collections::BTreeMap::new();
        for (k, v) in consume_all(&broker, "table") {
            got.insert(
                String::from_utf8(k.unwrap().to_vec()).unwrap(),
                String::from_utf8(v.unwrap().to_vec()).unwrap(),
            );
        }
        assert_eq!(got, latest);
        broker
            .topic("table")
            .unwrap()
            .partition(0)
            .unwrap()
            .log()
            .verify()
            .unwrap();
    }

    /// Kafka's cleaner copies a compressed batch that keeps every record;
    /// one that loses records is compressed again, in its codec.
    #[test]
    fn compaction_copies_a_compressed_batch_it_does_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            LogConfig::default().compression(Some(Compression::Gzip)),
        )
        .unwrap();
        let kv = |k: &str, v: &str| Record::new(v.to_string()).key(k.to_string());
        log.append(&[kv("a", "1"), kv("b", "1")]).unwrap();
        log.append(&[kv("c", "1"), kv("d", "1")]).unwrap();
        log.append(&[kv("a", "2"), kv("e", "1")]).unwrap();
        log.roll().unwrap();
        let before: Vec<Vec<u8>> = log
            .read(0, ReadLimit::bytes(1 << 20))
            .unwrap()
            .iter()
            .map(|b| b.unwrap().as_bytes().to_vec())
            .collect();
        let report = log.compact(embedlog::Compaction::default()).unwrap();
        assert_eq!(report.records_removed, 1);
        let after: Vec<Vec<u8>> = log
            .read(0, ReadLimit::bytes(1 << 20))
            .unwrap()
            .iter()
            .map(|b| b.unwrap().as_bytes().to_vec())
            .collect();
        assert_eq!(after.len(), 3);
        assert_ne!(after[0], before[0], "lost a record: compressed again");
        assert_eq!(after[1], before[1], "kept every record: copied as it was");
        assert_eq!(after[2], before[2]);
        let batches = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
        for b in batches.iter() {
            assert_eq!(b.unwrap().header().compression(), Compression::Gzip);
        }
        let keys: Vec<_> = both_ways(&batches)
            .into_iter()
            .map(|r| r.key.unwrap())
            .collect();
        assert_eq!(keys, ["b", "c", "d", "a", "e"]);
        log.verify().unwrap();
    }

    #[test]
    fn decompression_is_bounded() {
        // 1 MiB of zeros compresses to a few hundred bytes.
        let mut b = BatchBuilder::new().compression(Compression::Zstd);
        b.push(&Record::new(vec![0u8; 1 << 20]));
        let bytes = Bytes::from(b.finish().unwrap());
        assert!(bytes.len() < 4096, "{}", bytes.len());
        let batch = Batch::new(bytes.clone())
            .unwrap()
            .decompression_limit(64 << 10);
        let e = batch.records().unwrap_err();
        assert!(e.to_string().contains("decompression limit"), "{e}");
        let batches = Batches::from_bytes(bytes.clone()).decompression_limit(64 << 10);
        let e = batches.records_ref().next().unwrap().unwrap_err();
        assert!(e.to_string().contains("decompression limit"), "{e}");
        // A log refuses a batch that inflates past its max_batch_bytes (or
        // 64 MiB, whichever is more).
        let mut b = BatchBuilder::new().compression(Compression::Gzip);
        b.push(&Record::new(vec![7u8; 65 << 20]));
        let mut bomb = b.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let e = log
            .append_batch(&mut bomb, Durability::Buffered)
            .unwrap_err();
        assert!(e.to_string().contains("decompression limit"), "{e}");
        assert_eq!(log.end_offset(), 0);
        // Headers take two bytes encoded but far more decoded: their count
        // is bounded by the limit too, on decode and on append.
        let mut r = Record::new("v");
        for _ in 0..70_000 {
            r = r.header("", "");
        }
        let mut b = BatchBuilder::new().compression(Compression::Zstd);
        b.push(&r);
        let many = Bytes::from(b.finish().unwrap());
        assert!(many.len() < 4096);
        let batch = Batch::new(many.clone())
            .unwrap()
            .decompression_limit(256 << 10);
        let e = batch.records().unwrap().next().unwrap().unwrap_err();
        assert!(e.to_string().contains("headers"), "{e}");
        assert_eq!(Batch::new(many).unwrap().records().unwrap().count(), 1);
        // Garbage behind a valid CRC is an error, not a panic.
        for codec in codecs() {
            let mut b = BatchBuilder::new().compression(codec);
            b.push(&Record::new("some value that is compressed"));
            let mut raw = b.finish().unwrap();
            let n = raw.len();
            for x in &mut raw[61..n] {
                *x = x.wrapping_mul(31).wrapping_add(7);
            }
            let crc = crc32c::crc32c(&raw[21..]);
            raw[17..21].copy_from_slice(&crc.to_be_bytes());
            let batch = Batch::new(Bytes::from(raw.clone())).unwrap();
            let r: Result<Vec<_>, _> = batch.records().and_then(|it| it.collect());
            assert!(r.is_err(), "{codec}");
            assert!(
                log.append_batch(&mut raw, Durability::Buffered).is_err(),
                "{codec}"
            );
        }
        assert_eq!(log.end_offset(), 0);
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(0u8..4, 0..300)),
            0i64..1_000_000,
            proptest::collection::vec(
                (
                    "[a-z]{1,5}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..3,
            ),
        )
            .prop_map(|(k, v, ts, hs)| {
                let mut r = Record::new("");
                r.key = k.map(Bytes::from);
                r.value = v.map(Bytes::from);
                r.timestamp = ts;
                r.headers = hs
                    .into_iter()
                    .map(|(n, v)| match v {
                        Some(v) => Header::new(n, v),
                        None => Header::null(n),
                    })
                    .collect();
                r
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any records, any codec: decoding gives back what was pushed (the
        /// model is the record list), through a log as well.
        #[test]
        fn every_codec_round_trips(records in proptest::collection::vec(record(), 1..60), c in 0usize..4) {
            let codec = codecs()[c];
            let mut b = BatchBuilder::new().compression(codec);
            for r in &records {
                b.push(r);
            }
            let bytes = Bytes::from(b.finish().unwrap());
            prop_assert_eq!(Batch::new(bytes.clone()).unwrap().header().compression(), codec);
            prop_assert_eq!(&both_ways(&Batches::from_bytes(bytes)), &records);
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), LogConfig::default().compression(Some(codec))).unwrap();
            log.append(&records).unwrap();
            let read = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
            prop_assert_eq!(read.iter().next().unwrap().unwrap().header().compression(), codec);
            prop_assert_eq!(&both_ways(&read), &records);
        }
    }
}

/// A stored `compression.type` naming a codec this build lacks does not
/// stop the directory from opening: only that topic's appends fail, with
/// an error naming the feature.
#[test]
fn a_topic_whose_codec_is_not_compiled_in_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::builder(dir.path()).open().unwrap();
    broker
        .admin()
        .create_topic("z", TopicConfig::default())
        .unwrap();
    broker
        .admin()
        .create_topic("plain", TopicConfig::default())
        .unwrap();
    broker
        .partition("z", 0)
        .unwrap()
        .append(&[Record::new("before")])
        .unwrap();
    broker.close().unwrap();
    // What a build with the zstd feature would have stored.
    let conf = dir.path().join("topics/z/topic.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let body = text[..text.rfind("crc32c=").unwrap()]
        .replace("compression.type=producer", "compression.type=zstd");
    let crc = crc32c::crc32c(body.as_bytes());
    std::fs::write(&conf, format!("{body}crc32c={crc:08x}\n")).unwrap();

    let broker = Broker::builder(dir.path()).open().unwrap();
    let z = broker.partition("z", 0).unwrap();
    let r = z.append(&[Record::new("after")]);
    if Compression::Zstd.is_available() {
        r.unwrap();
        let b = z.read(1, ReadLimit::bytes(1 << 20)).unwrap();
        assert_eq!(
            b.iter().next().unwrap().unwrap().header().compression(),
            Compression::Zstd
        );
    } else {
        let e = r.unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported(why) if why.contains("`zstd` feature")),
            "{e}"
        );
        // Creating such a topic is refused up front.
        let e = broker
            .admin()
            .create_topic(
                "y",
                TopicConfig::default().compression(Some(Compression::Zstd)),
            )
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    }
    let first = z.read(0, ReadLimit::bytes(1 << 20)).unwrap();
    assert_eq!(
        first.records().next().unwrap().unwrap().value.as_deref(),
        Some(&b"before"[..])
    );
    broker
        .partition("plain", 0)
        .unwrap()
        .append(&[Record::new("ok")])
        .unwrap();
    broker.close().unwrap();
}
