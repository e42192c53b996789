//! [`verify_dir`]: every file of a data directory checked read-only, the
//! directory walk that knows `topics/`, `topic.conf` and the partition
//! directories (the per-file checks are `storage::inspect`'s).

use super::{CREATING_PREFIX, DELETING_PREFIX, TOPICS_DIR};
use crate::error::{Error, Result};
use crate::record::Offset;
use crate::storage::inspect::{
    CHECKPOINT_FILE, Detail, checkpoint_recovery_point, dump_index, dump_segment_with_progress,
    parse_log_file_name,
};
use std::fs;
use std::path::{Path, PathBuf};

/// What [`verify_dir`] checked and found.
#[derive(Debug, Clone, Default)]
pub struct DirReport {
    /// Topic directories checked (`__consumer_offsets` included).
    pub topics: u64,
    /// Partition directories checked.
    pub partitions: u64,
    /// Segment (`.log`) files checked.
    pub segments: u64,
    /// Valid batches read.
    pub batches: u64,
    /// Records in the valid batches.
    pub records: u64,
    /// Bytes of valid batches read.
    pub bytes: u64,
    /// Damage: anything the owner would refuse to open, or would lose
    /// silently. Empty for a sound directory.
    pub problems: Vec<Finding>,
    /// Things that are not damage: a torn tail past the recovery point
    /// (what a crash leaves; the owner cuts it on its next open), leftovers
    /// of an interrupted operation, missing indexes (rebuilt on open).
    pub warnings: Vec<Finding>,
}

impl DirReport {
    /// No problems (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem or warning: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file (or directory).
    pub path: PathBuf,
    /// Byte position in the file, where known.
    pub position: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at byte {p}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// What [`verify_dir`] is about to read, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A segment file of `size` bytes is next.
    Segment {
        /// The file.
        path: &'a Path,
        /// Its length.
        size: u64,
    },
    /// `bytes` more of the current segment were checked.
    Bytes(u64),
}

fn find(path: &Path, position: Option<u64>, reason: impl Into<String>) -> Finding {
    Finding {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

/// Checks every file of the data directory `root` without changing
/// anything or taking its lock, so it works while another process owns it:
/// each topic's `topic.conf`, each partition's checkpoint, every batch of
/// every segment (header, length, offset order, CRC-32C, every record), and
/// every index against its log.
///
/// Directories under `topics/` starting with `~` (an interrupted create or
/// delete) are skipped with a warning. An invalid tail in the last segment
/// of a partition at or past its checkpoint's recovery point is what a
/// crash leaves: a warning. Everything else invalid is a problem.
///
/// # Errors
/// [`Error::Metadata`] when `root` has no `topics/` directory (it is not an
/// embedlog data directory); an I/O error listing or reading a file.
///
/// # Examples
///
/// ```
/// use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("orders", TopicConfig::default().partitions(2))?;
/// let producer = broker.producer(ProducerConfig::default());
/// producer.send("orders", Record::new("o1").key("c1"))?;
/// producer.flush()?;
///
/// // Works while the broker still owns the directory.
/// let report = embedlog::inspect::verify_dir(dir.path(), |_| {})?;
/// assert!(report.is_clean(), "{:?}", report.problems);
/// // The record, and the producer id block of `__transaction_state`.
/// assert_eq!(report.records, 2);
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_dir(root: &Path, mut on_progress: impl FnMut(Progress<'_>)) -> Result<DirReport> {
    let topics_dir = root.join(TOPICS_DIR);
    if !topics_dir.is_dir() {
        return Err(Error::Metadata {
            path: root.to_path_buf(),
            reason: "not an embedlog data directory (it has no topics/ directory)".into(),
        });
    }
    let mut report = DirReport::default();
    for (name, path) in sorted_entries(&topics_dir)? {
        if !path.is_dir() {
            continue;
        }
        if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETING_PREFIX) {
            report.warnings.push(find(
                &path,
                None,
                "left by an interrupted topic create or delete; the owner removes it on its next open",
            ));
            continue;
        }
        if super::validate_topic_name(&name).is_err() {
            report.warnings.push(find(
                &path,
                None,
                "not a topic name: not embedlog's, ignored",
            ));
            continue;
        }
        verify_topic(&path, &mut report, &mut on_progress)?;
    }
    Ok(report)
}

/// The entries of `dir` as (name, path), sorted by name; names that are not
/// UTF-8 are not embedlog's and are left out.
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn verify_topic(
    dir: &Path,
    report: &mut DirReport,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Result<()> {
    report.topics += 1;
    // The owner's own check of `topic.conf`.
    let partitions = match super::read_topic_config(dir) {
        Ok(config) => Some(config.partitions),
        Err(Error::Metadata { path, reason }) => {
            report.problems.push(find(&path, None, reason));
            None
        }
        Err(e) => return Err(e),
    };
    let mut present = Vec::new();
    for (name, path) in sorted_entries(dir)? {
        if let Ok(p) = name.parse::<u32>()
            && path.is_dir()
            && p.to_string() == name
        {
            present.push((p, path));
        }
    }
    present.sort();
    if let Some(n) = partitions {
        for p in 0..n {
            if !present.iter().any(|(q, _)| *q == p) {
                report.problems.push(find(
                    &dir.join(p.to_string()),
                    None,
                    format!("partition {p} of {n} is missing"),
                ));
            }
        }
    }
    for (p, path) in present {
        if partitions.is_some_and(|n| p >= n) {
            report.warnings.push(find(
                &path,
                None,
                "beyond the topic's partition count: left by an interrupted add-partitions; \
                 the owner removes it on its next open",
            ));
            continue;
        }
        verify_partition(&path, report, on_progress)?;
    }
    Ok(())
}

fn verify_partition(
    dir: &Path,
    report: &mut DirReport,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Result<()> {
    report.partitions += 1;
    let cp_path = dir.join(CHECKPOINT_FILE);
    let recovery_point: Offset = match fs::read(&cp_path) {
        Ok(bytes) => match checkpoint_recovery_point(&bytes) {
            Ok(point) => point,
            Err(reason) => {
                report.problems.push(find(&cp_path, None, reason));
                0
            }
        },
        // A log that never checkpointed: nothing is known to be fsync'd.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::io("read", &cp_path, e)),
    };
    let mut segments: Vec<(Offset, PathBuf)> = sorted_entries(dir)?
        .into_iter()
        .filter_map(|(name, path)| parse_log_file_name(&name).map(|b| (b, path)))
        .filter(|(_, path)| path.is_file())
        .collect();
    segments.sort();
    for (name, path) in sorted_entries(dir)? {
        if name.ends_with(".snapshot")
            && let Err(e) = crate::storage::inspect::dump_producer_snapshot(&path)
            && !removed_meanwhile(&e)
        {
            report.warnings.push(find(
                &path,
                None,
                format!("{e}; the owner ignores it and replays the log from an older one"),
            ));
        }
    }
    let mut prev_next: Option<Offset> = None;
    let count = segments.len();
    for (i, (base, path)) in segments.iter().enumerate() {
        let last = i + 1 == count;
        report.segments += 1;
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        on_progress(Progress::Segment { path, size });
        let mut done = 0u64;
        let dump = match dump_segment_with_progress(path, Detail::Batches, |at| {
            on_progress(Progress::Bytes(at.saturating_sub(done)));
            done = at;
        }) {
            Ok(d) => d,
            // Retention or compaction removed it since the listing: the
            // owner is running.
            Err(e) if removed_meanwhile(&e) => {
                report.warnings.push(find(
                    path,
                    None,
                    "removed while being checked (the owner is running)",
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        report.batches += dump.valid_batches().count() as u64;
        report.records += dump.valid_records();
        report.bytes += dump.valid_bytes;
        if let Some(prev) = prev_next
            && *base < prev
        {
            report.problems.push(find(
                path,
                Some(0),
                format!("segment starts at offset {base}, below the previous segment's end {prev}"),
            ));
        }
        prev_next = Some(dump.next_offset);
        // A torn tail: what a crash leaves at the end of the last segment,
        // past what was fsync'd. The owner's recovery cuts it.
        let torn = dump.invalid.as_ref().is_some_and(|inv| {
            last && dump.next_offset >= recovery_point && !(inv.complete && dump.valid_bytes == 0)
        });
        if let Some(inv) = &dump.invalid {
            if torn {
                report.warnings.push(find(
                    path,
                    Some(inv.position),
                    format!(
                        "invalid tail of {} bytes from offset {} (past the recovery point \
                         {recovery_point}: what a crash leaves; the owner cuts it on its next \
                         open): {}",
                        dump.size - inv.batch_position,
                        dump.next_offset,
                        inv.reason
                    ),
                ));
            } else {
                report
                    .problems
                    .push(find(path, Some(inv.position), inv.reason.clone()));
            }
        }
        // Derived state the owner rebuilds from the log when damaged.
        let tpath = path.with_extension("txnindex");
        if tpath.exists()
            && let Err(e) = crate::storage::inspect::dump_txn_index(&tpath)
            && !removed_meanwhile(&e)
        {
            report.warnings.push(find(
                &tpath,
                None,
                format!("{e}; the owner rebuilds it from the log when it replays this segment"),
            ));
        }
        for ext in ["index", "timeindex"] {
            let ipath = path.with_extension(ext);
            if !ipath.exists() {
                report.warnings.push(find(
                    &ipath,
                    None,
                    "missing; the owner rebuilds it on its next open",
                ));
                continue;
            }
            let idx = match dump_index(&ipath) {
                Ok(i) => i,
                Err(e) if removed_meanwhile(&e) => {
                    report.warnings.push(find(
                        &ipath,
                        None,
                        "removed while being checked (the owner is running)",
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for p in idx.problems {
                // Recovery rebuilds the indexes of a segment it cuts.
                let list = if torn {
                    &mut report.warnings
                } else {
                    &mut report.problems
                };
                list.push(find(&ipath, Some(p.position), p.reason));
            }
        }
    }
    Ok(())
}

/// An I/O error saying the file is gone: removed between the listing and
/// the read.
fn removed_meanwhile(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
