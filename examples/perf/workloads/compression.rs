//! Each codec on a text payload (JSON lines of about `max(--size, 200)`
//! bytes, 1 000 distinct ones cycled): the producer's rate, the bytes on
//! disk, and a consumer's read rate, as the old `compression` workload
//! measured them, but the read in a fresh child of its own, and beside the
//! same runs without compression (the baseline column).

use super::input::text_payload;
use super::{
    Column, Contender, Figures, Params, Res, Show, Step, TOPIC, Workload, data_dir, ensure,
    new_broker, throughput,
};
use bytes::Bytes;
use embedlog::{
    Broker, Compression, ConsumerConfig, OffsetReset, ProducerConfig, Record, TopicConfig,
};
use std::time::{Duration, Instant};

/// Distinct payloads, cycled.
const DISTINCT: u64 = 1000;

pub fn workloads() -> Vec<Workload> {
    [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .map(|codec| {
        let unavailable = (!codec.is_available())
            .then(|| format!("{codec} not compiled in (--features compression)"));
        Workload::new(
            &format!("compression-{codec}"),
            &format!(
                "{codec}: produce (64 KiB batches), then `Consumer::poll` in a fresh \
                 process; baseline: uncompressed"
            ),
            200_000,
            500,
            Show::Compression,
        )
        .group("compression")
        .unavailable(unavailable)
        .contender(Contender::new(
            Column::Embedlog,
            vec![
                Step::writes("write", "codec", move |p| write(p, "codec", codec)),
                Step::reads("read", |p| read(p, "codec")),
            ],
        ))
        .contender(
            Contender::new(
                Column::Floor,
                vec![
                    Step::writes("write-none", "none", |p| {
                        write(p, "none", Compression::None)
                    }),
                    Step::reads("read-none", |p| read(p, "none")),
                ],
            )
            .label("uncompressed"),
        )
    })
    .collect()
}

fn size(p: &Params) -> usize {
    p.size.max(200)
}

fn write(p: &Params, data: &str, codec: Compression) -> Res<Figures> {
    let payloads: Vec<Vec<u8>> = (0..DISTINCT).map(|i| text_payload(size(p), i)).collect();
    let topic = TopicConfig::default()
        .segment_bytes(256 << 20)
        .retention(None);
    let broker = new_broker(&data_dir(p, data)?, topic)?;
    let producer = broker.producer(
        ProducerConfig::default()
            .batch_size(64 << 10)
            .compression(codec),
    );
    let started = Instant::now();
    for i in 0..p.records {
        let payload = &payloads[(i % DISTINCT) as usize];
        producer.send(
            TOPIC,
            Record::new(Bytes::copy_from_slice(payload)).timestamp(i as i64),
        )?;
    }
    producer.flush()?;
    let elapsed = started.elapsed();
    drop(producer);
    let disk = broker.topic(TOPIC)?.partition(0)?.log().size_bytes();
    broker.close()?;
    let mut figures = Figures::new();
    figures.insert("write_rate".into(), throughput(p.records, elapsed)["rate"]);
    figures.insert("disk_bytes".into(), disk as f64);
    Ok(figures)
}

fn read(p: &Params, data: &str) -> Res<Figures> {
    let broker = Broker::open(p.dir.join(data))?;
    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign([(TOPIC, 0)])?;
    let started = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < p.records {
        let records = consumer.poll(Duration::from_secs(5))?;
        ensure(!records.is_empty(), || {
            format!("the consumer starved at {n}")
        })?;
        for r in records {
            bytes += r.value().map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    let elapsed = started.elapsed();
    ensure(bytes > 0, || "read no bytes".into())?;
    drop(consumer);
    broker.close()?;
    Ok(Figures::from([(
        "read_rate".to_string(),
        throughput(n, elapsed)["rate"],
    )]))
}
