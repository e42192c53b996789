//! The storage layer alone: `Log::append` of 100-record batches and of one
//! record per call, buffered; and durable (`Durability::Sync`) appends, one
//! record and 100 per fsync, against the floor's `write` + `fdatasync`.

use super::input::Payloads;
use super::produce::record;
use super::{
    Column, Contender, EMBEDLOG, Figures, LARGE, Params, Records, Res, SMALL, Show, Step, Workload,
    data_dir, floor, peer, throughput,
};
use embedlog::{Durability, Log, LogConfig};
use std::time::Instant;

/// Durable appends' record count (`--sync-records`).
const SYNC_RECORDS: u64 = 5_000;

pub fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();
    for (batch, name, what) in [
        (
            100,
            "append-batch",
            "`Log::append` of 100-record batches (records built from the slices)",
        ),
        (1, "append-single", "`Log::append` of one record per call"),
    ] {
        for (suffix, (records, size)) in [("", SMALL), ("-1k", LARGE)] {
            all.push(
                Workload::new(&format!("{name}{suffix}"), what, records, size, Show::Rate)
                    .contender(Contender::new(
                        Column::Embedlog,
                        vec![Step::writes("embedlog", EMBEDLOG, move |p| {
                            append(p, batch, Durability::Buffered)
                        })],
                    ))
                    .contender(Contender::new(Column::Floor, vec![floor::write_step()]))
                    .contender(Contender::new(
                        Column::Commitlog,
                        vec![peer::write_step(batch)],
                    )),
            );
        }
    }
    for (every, name, what) in [
        (
            1,
            "sync-1",
            "durable appends, one record per `Log::append` (`Durability::Sync`); \
             floor: write + fdatasync per record",
        ),
        (
            100,
            "sync-100",
            "durable appends, 100-record batches (`Durability::Sync`); \
             floor: write + fdatasync per 100 records",
        ),
    ] {
        all.push(
            Workload::new(name, what, SYNC_RECORDS, SMALL.1, Show::Rate)
                .records_from(Records::Sync)
                .contender(Contender::new(
                    Column::Embedlog,
                    vec![Step::writes("embedlog", EMBEDLOG, move |p| {
                        append(p, every as usize, Durability::Sync)
                    })],
                ))
                .contender(Contender::new(
                    Column::Floor,
                    vec![floor::synced_step(every)],
                )),
        );
    }
    all
}

/// The data of the single-append read workload: one record per append.
pub fn prepare_single_step() -> Step {
    Step::writes("prepare-embedlog", EMBEDLOG, |p| {
        append(p, 1, Durability::Buffered)
    })
}

/// The data of the open workload: batches of 100.
pub fn prepare_batches_step() -> Step {
    Step::writes("prepare-embedlog", EMBEDLOG, |p| {
        append(p, 100, Durability::Buffered)
    })
}

/// `--records` appended `batch` per call to a fresh log (default config but
/// `durability`), each batch's `Vec<Record>` built from the payload slices
/// (reused); timed from the first record to the last append returning.
fn append(p: &Params, batch: usize, durability: Durability) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    let log = Log::open(
        data_dir(p, EMBEDLOG)?,
        LogConfig::default().durability(durability),
    )?;
    let mut records = Vec::with_capacity(batch);
    let started = Instant::now();
    for slices in payloads.batches(batch) {
        records.clear();
        records.extend(slices.map(record));
        log.append(&records)?;
    }
    let elapsed = started.elapsed();
    log.close()?;
    Ok(throughput(p.records, elapsed))
}
