//! Idempotent against plain produce, and transactional produce by
//! transaction size (1, 100, 10 000 records) against a plain producer: the
//! old `txn` workload, each run now in its own child. Producers use 64 KiB
//! batches and records carry explicit timestamps, as before.

use super::input::Payloads;
use super::{
    Column, Contender, EMBEDLOG, Figures, Params, Res, SMALL, Show, Step, TOPIC, Workload,
    data_dir, new_broker, throughput,
};
use bytes::Bytes;
use embedlog::{ProducerConfig, Record, TopicConfig};
use std::time::Instant;

/// Single-record transactions cost a decision each: at most this many.
const SINGLE_TXN_RECORDS: u64 = 20_000;

pub fn workloads() -> Vec<Workload> {
    let (records, size) = SMALL;
    let plain = || {
        Contender::new(
            Column::Floor,
            vec![Step::writes("plain", "plain", |p| {
                produce(
                    p,
                    "plain",
                    ProducerConfig::default().idempotence(false),
                    None,
                )
            })],
        )
    };
    let mut all = vec![
        Workload::new(
            "txn-idempotence",
            "`Producer::send` idempotent (the default), 64 KiB batches; \
             baseline: idempotence off",
            records,
            size,
            Show::Rate,
        )
        .group("txn")
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::writes("idempotent", EMBEDLOG, |p| {
                produce(p, EMBEDLOG, ProducerConfig::default(), None)
            })],
        ))
        .contender(plain().label("idempotence off")),
    ];
    for per in [1u64, 100, 10_000] {
        all.push(
            Workload::new(
                &format!("txn-{per}"),
                &format!(
                    "transactions of {per} record(s), 64 KiB batches{}; \
                     baseline: plain producer",
                    if per == 1 {
                        format!(" (at most {SINGLE_TXN_RECORDS} records)")
                    } else {
                        String::new()
                    }
                ),
                records,
                size,
                Show::Rate,
            )
            .group("txn")
            .contender(Contender::new(
                Column::Embedlog,
                vec![Step::writes("transactional", EMBEDLOG, move |p| {
                    let config = ProducerConfig::default().transactional_id(format!("perf-{per}"));
                    produce(p, EMBEDLOG, config, Some(per))
                })],
            ))
            .contender(plain().label("plain producer")),
        );
    }
    all
}

/// Sends the records (`per_txn` to a transaction), timed from the first
/// `send` (after `init_transactions`) to `flush` returning.
fn produce(p: &Params, data: &str, config: ProducerConfig, per_txn: Option<u64>) -> Res<Figures> {
    let n = match per_txn {
        Some(1) => p.records.min(SINGLE_TXN_RECORDS),
        _ => p.records,
    };
    let payloads = Payloads::new(n, p.size);
    let topic = TopicConfig::default()
        .segment_bytes(256 << 20)
        .retention(None);
    let broker = new_broker(&data_dir(p, data)?, topic)?;
    let producer = broker.producer(config.batch_size(64 << 10));
    if per_txn.is_some() {
        producer.init_transactions()?;
    }
    let started = Instant::now();
    for (first, txn) in (0u64..)
        .step_by(per_txn.unwrap_or(n) as usize)
        .zip(payloads.batches(per_txn.unwrap_or(n) as usize))
    {
        if per_txn.is_some() {
            producer.begin_transaction()?;
        }
        for (i, payload) in (first..).zip(txn) {
            let record = Record::new(Bytes::copy_from_slice(payload)).timestamp(i as i64);
            producer.send(TOPIC, record)?;
        }
        if per_txn.is_some() {
            producer.commit_transaction()?;
        }
    }
    producer.flush()?;
    let elapsed = started.elapsed();
    drop(producer);
    broker.close()?;
    let mut figures = throughput(n, elapsed);
    if let Some(per) = per_txn {
        figures.insert(
            "transactions_per_s".into(),
            n.div_ceil(per) as f64 / elapsed.as_secs_f64(),
        );
    }
    Ok(figures)
}
