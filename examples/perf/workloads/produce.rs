//! The producer: `Producer::send` of one record per call, default
//! configuration, until `flush` returns; from one thread and from two. Also
//! the data the read workloads read is written here, by the same code.

use super::input::Payloads;
use super::{
    Column, Contender, EMBEDLOG, Figures, LARGE, Params, Res, SMALL, Show, Step, TOPIC, Workload,
    data_dir, floor, new_broker, throughput,
};
use embedlog::{BorrowedRecord, ProducerConfig, TopicConfig};
use std::time::Instant;

pub fn workloads() -> Vec<Workload> {
    [("produce", SMALL), ("produce-1k", LARGE)]
        .into_iter()
        .map(|(name, (records, size))| {
            Workload::new(
                name,
                "`Producer::send` per record, default config, until `flush` returns",
                records,
                size,
                Show::Rate,
            )
            .contender(Contender::new(
                Column::Embedlog,
                vec![Step::writes("embedlog", EMBEDLOG, send)],
            ))
            .contender(Contender::new(Column::Floor, vec![floor::write_step()]))
        })
        .collect()
}

/// Two threads on two partitions against one thread.
pub fn threads_workloads() -> Vec<Workload> {
    let (records, size) = SMALL;
    vec![
        Workload::new(
            "produce-2p",
            "2 threads sharing a `Producer`, a partition each, until `flush`; \
             baseline: 1 thread, same records and partitions",
            records,
            size,
            Show::Rate,
        )
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::writes("two-threads", EMBEDLOG, |p| {
                send_threads(p, 2)
            })],
        ))
        .contender(
            Contender::new(
                Column::Floor,
                vec![Step::writes("one-thread", "embedlog-1", |p| {
                    send_threads(p, 1)
                })],
            )
            .label("1 thread"),
        ),
    ]
}

/// The producer-written data of the read workloads: `send`'s output.
pub fn prepare_step() -> Step {
    Step::writes("prepare-embedlog", EMBEDLOG, send)
}

/// A record from a payload slice, as a caller holding `&[u8]` sends it:
/// borrowed (nothing copied or allocated before the send), stamped with
/// its batch's time.
pub fn record(payload: &[u8]) -> BorrowedRecord<'_> {
    BorrowedRecord::new(payload)
}

/// `--records` sends to a fresh broker's one-partition topic (default
/// topic config), timed from the first `send` to `flush` returning.
fn send(p: &Params) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    let broker = new_broker(&data_dir(p, EMBEDLOG)?, TopicConfig::default())?;
    let producer = broker.producer(ProducerConfig::default());
    let started = Instant::now();
    for payload in payloads.iter() {
        producer.send(TOPIC, record(payload))?;
    }
    producer.flush()?;
    let elapsed = started.elapsed();
    drop(producer);
    broker.close()?;
    Ok(throughput(p.records, elapsed))
}

/// Record `i` goes to partition `i % 2` and is sent by thread
/// `i % threads`: with 2 threads each has a partition of its own, with 1
/// the same records reach the same partitions.
fn send_threads(p: &Params, threads: u64) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    let dir = data_dir(p, if threads == 1 { "embedlog-1" } else { EMBEDLOG })?;
    let broker = new_broker(&dir, TopicConfig::default().partitions(2))?;
    let producer = broker.producer(ProducerConfig::default());
    let started = Instant::now();
    std::thread::scope(|s| -> Res<()> {
        let senders: Vec<_> = (0..threads)
            .map(|k| {
                let (producer, payloads) = (&producer, &payloads);
                s.spawn(move || -> embedlog::Result<()> {
                    for i in (k..payloads.len()).step_by(threads as usize) {
                        producer.send_to(TOPIC, (i % 2) as u32, record(payloads.get(i)))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for sender in senders {
            sender.join().map_err(|_| "a producer thread panicked")??;
        }
        Ok(())
    })?;
    producer.flush()?;
    let elapsed = started.elapsed();
    drop(producer);
    broker.close()?;
    Ok(throughput(p.records, elapsed))
}
