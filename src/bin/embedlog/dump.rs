//! `embedlog dump-log FILE...`: the batches, records and index entries of
//! segment files, in the style of Kafka's `kafka-dump-log.sh`
//! (`DumpLogSegments`). Reads the files only; works while the application
//! owns the directory.

use crate::Outcome;
use crate::common::{EXIT_DAMAGED, Fail, json_bytes, print_json, progress};
use embedlog::inspect::{
    BatchInfo, Detail, IndexDump, IndexEntry, IndexType, ProducerSnapshotEntry, RecordInfo,
    SegmentDump, dump_index, dump_producer_snapshot, dump_segment_each, dump_segment_with_progress,
    dump_txn_index,
};
use embedlog::{AbortedTransaction, Compression, TimestampType};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Files at least this large get a progress bar (on a terminal).
const PROGRESS_BYTES: u64 = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Segment (`.log`), offset index (`.index`), time index
    /// (`.timeindex`), aborted-transaction index (`.txnindex`) or
    /// producer snapshot (`.snapshot`) files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print every record (offset, timestamp, sizes, sequence, header keys,
    /// key and value) under its batch.
    #[arg(long)]
    pub print_data_log: bool,
    /// For index files, print only whether they pass the check against
    /// their log (entries in order, at batch boundaries, naming batches of
    /// the segment), not the entries.
    #[arg(long)]
    pub index_sanity_check: bool,
    /// Print one JSON document: an array with one object per file.
    #[arg(long)]
    pub json: bool,
}

/// What one file held.
enum Dump {
    Segment(SegmentDump),
    Index(IndexDump),
    /// A damaged `.txnindex` or `.snapshot` has its reason here.
    TxnIndex(Result<Vec<AbortedTransaction>, String>),
    Snapshot(Result<Vec<ProducerSnapshotEntry>, String>),
}

/// Files read whole (small, derived), not batch by batch.
fn is_state_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("txnindex" | "snapshot")
    )
}

pub fn run(args: Args) -> Outcome {
    // A missing file fails the run before anything is printed.
    for f in &args.files {
        std::fs::metadata(f).map_err(|e| Fail::new(format!("cannot read {}: {e}", f.display())))?;
    }
    let detail = if args.print_data_log {
        Detail::Records
    } else {
        Detail::Batches
    };
    let mut damaged: Vec<String> = Vec::new();
    let mut docs = Vec::new();
    for path in &args.files {
        if !args.json && IndexType::from_path(path).is_none() && !is_state_file(path) {
            // Printed batch by batch, so a large segment is not held in
            // memory as descriptions.
            println!("Dumping {}", path.display());
            let dump = print_segment(path, detail)?;
            damaged.extend(damage(path, &dump));
            continue;
        }
        let dump = read(path, detail)?;
        damaged.extend(damage(path, &dump));
        if args.json {
            docs.push(to_json(path, &dump, detail));
        } else {
            println!("Dumping {}", path.display());
            match &dump {
                Dump::Index(i) => print_index(path, i, args.index_sanity_check),
                Dump::TxnIndex(Ok(entries)) => {
                    // Kafka's DumpLogSegments lines.
                    for t in entries {
                        println!(
                            "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
                            t.producer_id, t.first_offset, t.last_offset, t.last_stable_offset
                        );
                    }
                }
                Dump::Snapshot(Ok(entries)) => {
                    for e in entries {
                        println!(
                            "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} \
                             lastTimestamp: {} lastSequence: {} lastOffset: {} offsetDelta: {}",
                            e.producer_id,
                            e.producer_epoch,
                            e.coordinator_epoch,
                            e.current_txn_first_offset
                                .map_or("None".to_string(), |o| format!("Some({o})")),
                            e.timestamp,
                            e.last_sequence,
                            e.last_offset.map_or(-1, |o| o as i64),
                            e.offset_delta
                        );
                    }
                }
                _ => {}
            }
        }
    }
    if args.json {
        print_json(&Value::Array(docs));
        for d in &damaged {
            eprintln!("embedlog: {d}");
        }
    } else {
        for d in &damaged {
            println!("{d}");
        }
    }
    Ok(if damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}

fn read(path: &Path, detail: Detail) -> Result<Dump, Fail> {
    let fail = |e: embedlog::Error| Fail::new(format!("cannot read {}: {e}", path.display()));
    if IndexType::from_path(path).is_some() {
        return dump_index(path).map(Dump::Index).map_err(fail);
    }
    let damaged = |e: embedlog::Error| match e {
        embedlog::Error::Corrupt { reason, .. } => Ok(reason),
        e => Err(fail(e)),
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("txnindex") => {
            return Ok(Dump::TxnIndex(match dump_txn_index(path) {
                Ok(e) => Ok(e),
                Err(e) => Err(damaged(e)?),
            }));
        }
        Some("snapshot") => {
            return Ok(Dump::Snapshot(match dump_producer_snapshot(path) {
                Ok(e) => Ok(e),
                Err(e) => Err(damaged(e)?),
            }));
        }
        _ => {}
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = if size >= PROGRESS_BYTES {
        progress(Some(size), &format!("reading {}", path.display()))
    } else {
        indicatif::ProgressBar::hidden()
    };
    let dump = dump_segment_with_progress(path, detail, |at| bar.set_position(at));
    bar.finish_and_clear();
    dump.map(Dump::Segment).map_err(fail)
}

/// Lines saying what is wrong with a file, and where.
fn damage(path: &Path, dump: &Dump) -> Vec<String> {
    match dump {
        Dump::TxnIndex(Err(reason)) | Dump::Snapshot(Err(reason)) => {
            vec![format!("damaged: {}: {reason}", path.display())]
        }
        Dump::TxnIndex(Ok(_)) | Dump::Snapshot(Ok(_)) => Vec::new(),
        Dump::Segment(s) => s
            .invalid
            .iter()
            .map(|inv| {
                format!(
                    "damaged: {} at byte {} (batch at byte {}): {}",
                    path.display(),
                    inv.position,
                    inv.batch_position,
                    inv.reason
                )
            })
            .collect(),
        Dump::Index(i) => i
            .problems
            .iter()
            .map(|p| {
                format!(
                    "damaged: {} at byte {}: {}",
                    path.display(),
                    p.position,
                    p.reason
                )
            })
            .collect(),
    }
}

fn timestamp_type(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

fn compression(c: Compression) -> String {
    match c {
        Compression::None => "none".into(),
        Compression::Gzip => "gzip".into(),
        Compression::Snappy => "snappy".into(),
        Compression::Lz4 => "lz4".into(),
        Compression::Zstd => "zstd".into(),
        Compression::Unknown(n) => format!("unknown({n})"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Bytes as text: UTF-8 as it is (control characters escaped), anything
/// else with `\xNN` escapes.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

/// Prints a segment's batches (and records) as they are decoded; returns
/// the dump (without its batches) for the damage report.
fn print_segment(path: &Path, detail: Detail) -> Result<Dump, Fail> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = if size >= PROGRESS_BYTES {
        progress(Some(size), &format!("reading {}", path.display()))
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Some(base) = embedlog::inspect::base_offset_of(path) {
        println!("Log starting offset: {base}");
    }
    let s = dump_segment_each(
        path,
        detail,
        |at| bar.set_position(at),
        |b| {
            bar.suspend(|| {
                println!("{}", batch_line(&b));
                for r in &b.records {
                    println!("{}", record_line(&b, r));
                }
            })
        },
    )
    .map_err(|e| Fail::new(format!("cannot read {}: {e}", path.display())))?;
    bar.finish_and_clear();
    if let Some(inv) = &s.invalid {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!(
            "Found {} invalid bytes at the end of {name}",
            s.size - inv.batch_position
        );
    } else if s.zero_tail > 0 {
        println!(
            "Then {} bytes of zeros: space preallocated for appends (a live or crashed active segment)",
            s.zero_tail
        );
    }
    Ok(Dump::Segment(s))
}

fn batch_line(b: &BatchInfo) -> String {
    let mut line = format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} position: {} {}: {} size: {} magic: 2 compresscodec: {} crc: {} \
         isvalid: {}",
        b.base_offset,
        b.last_offset,
        b.record_count,
        b.base_sequence,
        b.last_sequence(),
        b.producer_id,
        b.producer_epoch,
        b.partition_leader_epoch,
        b.transactional,
        b.is_control,
        b.position,
        timestamp_type(b.timestamp_type),
        b.max_timestamp,
        b.size,
        compression(b.compression),
        b.crc,
        b.crc_valid,
    );
    if let Some(m) = &b.control {
        line += &format!(" endTxnMarker: {}", m.kind);
    }
    line
}

fn record_line(b: &BatchInfo, r: &RecordInfo) -> String {
    let size = |v: &Option<bytes::Bytes>| v.as_ref().map_or(-1, |v| v.len() as i64);
    let keys: Vec<&str> = r.headers.iter().map(|h| h.key()).collect();
    let mut line = format!(
        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
        r.offset,
        timestamp_type(b.timestamp_type),
        r.timestamp,
        size(&r.key),
        size(&r.value),
        r.sequence,
        keys.join(",")
    );
    if let Some(m) = &b.control {
        line += &format!(" endTxnMarker: {}", m.kind);
        if let Some(e) = m.coordinator_epoch {
            line += &format!(" coordinatorEpoch: {e}");
        }
        return line;
    }
    if let Some(k) = &r.key {
        line += &format!(" key: {}", text(k));
    }
    if let Some(v) = &r.value {
        line += &format!(" payload: {}", text(v));
    }
    line
}

fn print_index(path: &Path, i: &IndexDump, sanity_only: bool) {
    if i.log.is_none() {
        println!("(no segment file beside it: entries checked for order only)");
    }
    if sanity_only {
        if i.problems.is_empty() {
            println!("{} passed sanity check.", path.display());
        }
        return;
    }
    if i.entries.is_empty() {
        println!("{} is empty.", path.display());
    }
    for e in &i.entries {
        match e {
            IndexEntry::Offset { offset, position } => {
                println!("offset: {offset} position: {position}");
            }
            IndexEntry::Time { timestamp, offset } => {
                println!("timestamp: {timestamp} offset: {offset}");
            }
        }
    }
    if i.unused_slots > 0 {
        println!("({} unused preallocated entries)", i.unused_slots);
    }
}

fn to_json(path: &Path, dump: &Dump, detail: Detail) -> Value {
    match dump {
        Dump::TxnIndex(r) => json!({
            "path": path.display().to_string(),
            "kind": "txn_index",
            "entries": r.as_ref().ok().map(|entries| entries.iter().map(|t| json!({
                "producer_id": t.producer_id,
                "first_offset": t.first_offset,
                "last_offset": t.last_offset,
                "last_stable_offset": t.last_stable_offset,
            })).collect::<Vec<_>>()),
            "problem": r.as_ref().err(),
        }),
        Dump::Snapshot(r) => json!({
            "path": path.display().to_string(),
            "kind": "producer_snapshot",
            "producers": r.as_ref().ok().map(|entries| entries.iter().map(|e| json!({
                "producer_id": e.producer_id,
                "producer_epoch": e.producer_epoch,
                "coordinator_epoch": e.coordinator_epoch,
                "current_txn_first_offset": e.current_txn_first_offset,
                "last_timestamp": e.timestamp,
                "last_sequence": e.last_sequence,
                "last_offset": e.last_offset,
                "offset_delta": e.offset_delta,
            })).collect::<Vec<_>>()),
            "problem": r.as_ref().err(),
        }),
        Dump::Segment(s) => json!({
            "path": path.display().to_string(),
            "kind": "segment",
            "base_offset": s.base_offset,
            "size": s.size,
            "valid_bytes": s.valid_bytes,
            "zero_tail": s.zero_tail,
            "next_offset": s.next_offset,
            "batches": s.batches.iter().map(|b| batch_json(b, detail)).collect::<Vec<_>>(),
            "invalid": s.invalid.as_ref().map(|inv| json!({
                "position": inv.position,
                "batch_position": inv.batch_position,
                "reason": inv.reason,
                "complete": inv.complete,
            })),
        }),
        Dump::Index(i) => json!({
            "path": path.display().to_string(),
            "kind": match i.kind {
                IndexType::Offset => "offset_index",
                IndexType::Time => "time_index",
            },
            "base_offset": i.base_offset,
            "entries": i.entries.iter().map(|e| match e {
                IndexEntry::Offset { offset, position } =>
                    json!({ "offset": offset, "position": position }),
                IndexEntry::Time { timestamp, offset } =>
                    json!({ "timestamp": timestamp, "offset": offset }),
            }).collect::<Vec<_>>(),
            "unused_slots": i.unused_slots,
            "log": i.log.as_ref().map(|p| p.display().to_string()),
            "problems": i.problems.iter().map(|p| json!({
                "position": p.position,
                "reason": p.reason,
            })).collect::<Vec<_>>(),
        }),
    }
}

fn batch_json(b: &BatchInfo, detail: Detail) -> Value {
    let mut v = json!({
        "position": b.position,
        "size": b.size,
        "base_offset": b.base_offset,
        "last_offset": b.last_offset,
        "count": b.record_count,
        "first_timestamp": b.first_timestamp,
        "max_timestamp": b.max_timestamp,
        "timestamp_type": timestamp_type(b.timestamp_type),
        "producer_id": b.producer_id,
        "producer_epoch": b.producer_epoch,
        "base_sequence": b.base_sequence,
        "last_sequence": b.last_sequence(),
        "partition_leader_epoch": b.partition_leader_epoch,
        "is_transactional": b.transactional,
        "is_control": b.is_control,
        "control": b.control.map(|m| json!({
            "type": m.kind.to_string(),
            "coordinator_epoch": m.coordinator_epoch,
        })),
        "compression": compression(b.compression),
        "crc": b.crc,
        "crc_valid": b.crc_valid,
    });
    if detail == Detail::Records {
        v["records"] = b
            .records
            .iter()
            .map(|r| {
                json!({
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "sequence": r.sequence,
                    "key": json_bytes(r.key.as_deref()),
                    "value": json_bytes(r.value.as_deref()),
                    "headers": r.headers.iter().map(|h| json!({
                        "key": h.key(),
                        "value": json_bytes(h.value().map(|v| &v[..])),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    v
}
