//! A `Log` behaves like a `Vec` of records under any sequence of appends,
//! reads (by offset and by time), rolls, truncations, deletions, flushes,
//! clean reopens and crashes that cut the unsynced tail at a random byte:
//! every read equals the model, and no fsync'd record is ever lost.

use crate::common::*;
use embedlog::{Durability, Error, Log, LogConfig, Offset, ReadLimit, Record};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: Vec<(u8, u16, i16)>,
        sync: bool,
    },
    Read {
        from: f64,
        max_bytes: u16,
    },
    ReadByTime {
        ts: i16,
    },
    Roll,
    Truncate {
        at: f64,
    },
    DeleteBefore {
        at: f64,
    },
    Flush,
    Reopen,
    Crash {
        cut: f64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((any::<u8>(), 0u16..300, -50i16..50), 1..5), prop::bool::weighted(0.2))
            .prop_map(|(records, sync)| Op::Append { records, sync }),
        4 => (0.0..=1.0f64, 1u16..2000).prop_map(|(from, max_bytes)| Op::Read { from, max_bytes }),
        2 => (-60i16..400).prop_map(|ts| Op::ReadByTime { ts }),
        1 => Just(Op::Roll),
        1 => (0.0..=1.0f64).prop_map(|at| Op::Truncate { at }),
        1 => (0.0..=1.0f64).prop_map(|at| Op::DeleteBefore { at }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (0.0..=1.0f64).prop_map(|cut| Op::Crash { cut }),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Records by offset (offsets are contiguous from 0).
    records: Vec<Record>,
    /// `(first, last)` offset of every batch.
    batches: Vec<(Offset, Offset)>,
    start: Offset,
    /// Lower bound of what is fsync'd.
    flushed: Offset,
}

impl Model {
    fn end(&self) -> Offset {
        self.records.len() as Offset
    }

    fn truncate(&mut self, end: Offset) {
        self.records.truncate(end as usize);
        self.batches.retain(|b| b.1 < end);
        self.flushed = self.flushed.min(end);
    }

    fn pick(&self, f: f64) -> Offset {
        self.start + ((self.end() - self.start) as f64 * f).round() as Offset
    }
}

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1500)
        .index_interval_bytes(100)
}

fn check_reads_everything(log: &Log, m: &Model) {
    assert_eq!(log.start_offset(), m.start);
    assert_eq!(log.end_offset(), m.end());
    let got = read_all(log).unwrap();
    let want: Vec<_> = (m.start..m.end())
        .map(|o| (o, m.records[o as usize].clone()))
        .collect();
    assert_records_eq(&got, &want);
}

fn run(ops: Vec<Op>) {
    let dir = tempdir();
    let mut log = Some(Log::open(dir.path(), config()).unwrap());
    let mut m = Model::default();
    let mut counter = 0u64;
    for op in ops {
        let l = log.as_ref().unwrap();
        match op {
            Op::Append { records, sync } => {
                let recs: Vec<Record> = records
                    .iter()
                    .map(|&(k, len, ts)| {
                        counter += 1;
                        // -1 is `Record::NO_TIMESTAMP` (stored with the
                        // batch's time, which this model does not know).
                        let t = match i64::from(ts) + counter as i64 {
                            Record::NO_TIMESTAMP => -2,
                            t => t,
                        };
                        let mut r = Record::new(vec![(counter % 251) as u8; len as usize])
                            .key(vec![k % 8])
                            .timestamp(t);
                        if k % 5 == 0 {
                            r = r.header("n", counter.to_string());
                        }
                        if k % 7 == 0 {
                            r.value = None;
                        }
                        r
                    })
                    .collect();
                let d = if sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let info = l.append_with(&recs, d).unwrap();
                assert_eq!(info.base_offset, m.end());
                m.batches.push((info.base_offset, info.last_offset));
                m.records.extend(recs);
                if sync {
                    m.flushed = m.end();
                }
            }
            Op::Read { from, max_bytes } => {
                let from = m.pick(from);
                let b = l.read(from, ReadLimit::bytes(max_bytes as usize)).unwrap();
                let got: Vec<_> = b.records().map(|r| r.unwrap()).collect();
                if from < m.end() {
                    assert!(!got.is_empty(), "a read below the end returns something");
                }
                for (i, r) in got.iter().enumerate() {
                    assert_eq!(r.offset, from + i as u64);
                    assert_eq!(r.clone().into_record(), m.records[r.offset as usize]);
                }
                if m.start > 0 {
                    assert!(matches!(
                        l.read(m.start - 1, ReadLimit::default()),
                        Err(Error::OffsetOutOfRange { .. })
                    ));
                }
                assert!(matches!(
                    l.read(m.end() + 1, ReadLimit::default()),
                    Err(Error::OffsetOutOfRange { .. })
                ));
            }
            Op::ReadByTime { ts } => {
                let ts = i64::from(ts) + counter as i64 / 2;
                let want = (m.start..m.end()).find(|&o| m.records[o as usize].timestamp >= ts);
                assert_eq!(l.offset_for_timestamp(ts).unwrap(), want, "timestamp {ts}");
            }
            Op::Roll => l.roll().unwrap(),
            Op::Truncate { at } => {
                let at = m.pick(at);
                // Batches are never split: the batch holding `at` goes whole.
                let want = if at >= m.end() {
                    m.end()
                } else {
                    m.batches.iter().find(|b| b.1 >= at).map_or(at, |b| b.0)
                };
                assert_eq!(l.truncate_to(at).unwrap(), want, "truncate to {at}");
                m.truncate(want);
                m.start = m.start.min(want);
            }
            Op::DeleteBefore { at } => {
                let at = m.pick(at);
                l.delete_records_before(at).unwrap();
                m.start = m.start.max(at);
            }
            Op::Flush => {
                l.flush().unwrap();
                m.flushed = m.end();
            }
            Op::Reopen => {
                log.take().unwrap().close().unwrap();
                log = Some(Log::open(dir.path(), config()).unwrap());
                m.flushed = m.end();
            }
            Op::Crash { cut } => {
                let flushed = l.flushed_offset();
                assert!(flushed >= m.flushed, "flushed offset went back");
                log.take().unwrap().simulate_crash();
                // Cut the last segment anywhere after its fsync'd bytes.
                let seg = segment_logs(dir.path()).pop().unwrap();
                let bytes = std::fs::read(&seg).unwrap();
                let bounds = batch_bounds(&bytes);
                let min = bounds
                    .iter()
                    .find(|b| b.3 >= flushed)
                    .map_or(bytes.len(), |b| b.0);
                // Up to the end of the last batch: past it, the file holds
                // the zeros of its preallocated tail.
                let end = bounds.last().map_or(min, |b| b.1).max(min);
                let at = min + ((end - min) as f64 * cut) as usize;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&seg)
                    .unwrap()
                    .set_len(at as u64)
                    .unwrap();
                let l = Log::open(dir.path(), config()).unwrap();
                let end = l.end_offset();
                assert!(
                    end >= flushed,
                    "lost fsync'd records: end {end} < flushed {flushed}"
                );
                assert_eq!(l.start_offset(), m.start, "the start offset is durable");
                // A start offset past the surviving records (everything
                // deleted, then the unsynced rest torn off) restarts the log
                // empty at that start: then `end == start == model end`.
                assert!(
                    end >= m.start && end <= m.end(),
                    "end {end} outside {}..={}",
                    m.start,
                    m.end()
                );
                assert!(
                    m.batches.iter().any(|b| b.1 + 1 == end) || end == m.start || end == 0,
                    "end {end} is not a batch boundary"
                );
                m.truncate(end);
                m.flushed = end;
                log = Some(l);
            }
        }
        check_reads_everything(log.as_ref().unwrap(), &m);
    }
    log.take().unwrap().close().unwrap();
    let l = Log::open(dir.path(), config()).unwrap();
    check_reads_everything(&l, &m);
    l.verify().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        .. ProptestConfig::default()
    })]
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
