//! Opening a log: the directory lock, finishing swaps of an interrupted
//! compaction, removing leftovers, loading the segments (trusting them
//! after a clean shutdown, recovering the unsynced tail after a crash) and
//! building `Inner`.

use super::compact::{self, CLEANED_SUFFIX, SWAP_SUFFIX};
use super::group_commit::SyncState;
use super::notify::Signal;
use super::{Durability, Inner, LogConfig, TRUNCATING_SUFFIX, Writer};
use crate::error::{Error, Result};
use crate::record::Offset;
use crate::storage::checkpoint::Checkpoint;
use crate::storage::dirlock::DirLock;
use crate::storage::segment::{self, IndexState, Limits, Mode, Segment};
use crate::storage::vfs::Vfs;
use parking_lot::{Condvar, Mutex, RwLock};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

const LOCK_FILE: &str = ".lock";

/// Finishes the swaps of cleaned segments that a crash interrupted (each
/// `.swap` file replaces the segments its offsets cover) and removes
/// half-written `.cleaned` files.
fn finish_interrupted_compaction(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut changed = false;
    for n in &names {
        let p = dir.join(n);
        if n.ends_with(CLEANED_SUFFIX) {
            segment::remove_file_if_exists(vfs, &p)?;
            changed = true;
            continue;
        }
        let Some(base) = n
            .strip_suffix(SWAP_SUFFIX)
            .and_then(segment::parse_log_file_name)
        else {
            continue;
        };
        // The swap file was fsync'd whole before it got this name: any
        // damage is corruption. It is up to a segment long: scanned through
        // a memory map (as segments are read), never read into memory.
        let end = {
            let file = vfs.open(&p).map_err(|e| Error::io("open", &p, e))?;
            let len = file.len().map_err(|e| Error::io("stat", &p, e))?;
            let bytes = file.map(len).map_err(|e| Error::io("map", &p, e))?;
            segment::scan(&bytes, 0, base, base, true, |_, _| Ok(()))?
        };
        if let Some(e) = end.invalid {
            return Err(e.in_file(&p, 0));
        }
        let covered: Vec<Offset> = names
            .iter()
            .filter_map(|m| segment::parse_log_file_name(m))
            .filter(|&b| b >= base && b < end.next_offset.max(base + 1))
            .collect();
        compact::finish_swap(
            vfs,
            base,
            covered.into_iter(),
            &p,
            &Segment::log_path(dir, base),
        )?;
        changed = true;
    }
    if changed {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Deletes the files of the segments with these bases, newest first, and
/// makes that durable.
pub(super) fn remove_segments(vfs: &dyn Vfs, dir: &Path, bases: &[Offset]) -> Result<()> {
    for &b in bases.iter().rev() {
        segment::remove_files(vfs, &Segment::log_path(dir, b))?;
    }
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl Inner {
    pub(super) fn open(vfs: Arc<dyn Vfs>, dir: &Path, config: LogConfig) -> Result<Inner> {
        let _span = tracing::info_span!("embedlog_open_log", dir = %dir.display()).entered();
        vfs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        // The lock is not a durability matter: it bypasses the I/O seam.
        let Some(lock) =
            DirLock::acquire(&lock_path).map_err(|e| Error::io("lock", &lock_path, e))?
        else {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        };
        let limits = config.limits();
        let now = config.clock.now_ms();
        finish_interrupted_compaction(&*vfs, dir)?;
        let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| segment::parse_log_file_name(n))
            .collect();
        bases.sort_unstable();
        // Leftovers of interrupted atomic writes and truncations, and
        // indexes without their log, are removed.
        for n in &names {
            let orphan_index = [
                ".index",
                ".timeindex",
                crate::storage::producer_state::TXN_INDEX_SUFFIX,
            ]
            .iter()
            .any(|ext| {
                n.strip_suffix(ext)
                    .and_then(|stem| segment::parse_log_file_name(&format!("{stem}.log")))
                    .is_some_and(|b| bases.binary_search(&b).is_err())
            });
            if n.ends_with(".tmp") || n.ends_with(TRUNCATING_SUFFIX) || orphan_index {
                let p = dir.join(n);
                vfs.remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        let cp = Checkpoint::load(&*vfs, dir)?;
        let had_checkpoint = cp.is_some();
        let cp = cp.unwrap_or_default();

        let mut segments: Vec<Arc<Segment>> = Vec::new();
        let mut state = None;
        let mut recovered = false;
        if bases.is_empty() {
            let s = Segment::create(&*vfs, dir, cp.log_start, &limits, now)?;
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
            segments.push(Arc::new(s));
        } else {
            let last = *bases.last().unwrap_or(&0);
            let last_len = vfs
                .open(&Segment::log_path(dir, last))
                .and_then(|f| f.len())
                .map_err(|e| Error::io("stat", &Segment::log_path(dir, last), e))?;
            let clean = cp
                .clean
                .filter(|c| c.active_base == last && c.active_len == last_len);
            let mut attempt_clean = clean.is_some();
            loop {
                match Self::load_segments(&*vfs, dir, &mut bases, &cp, &limits, attempt_clean, now)?
                {
                    (segs, st, next)
                        if !attempt_clean || clean.is_some_and(|c| c.next_offset == next) =>
                    {
                        segments = segs;
                        state = Some(st);
                        recovered = !attempt_clean;
                        break;
                    }
                    // The clean-shutdown record does not match the files:
                    // recover as after a crash.
                    _ => attempt_clean = false,
                }
            }
        }
        let last = segments.last().cloned().ok_or(Error::Closed)?;
        let mut next_offset = last.next_offset();
        let first_base = segments.first().map_or(0, |s| s.base);
        let mut log_start = if had_checkpoint {
            cp.log_start.max(first_base)
        } else {
            first_base
        };
        if log_start > next_offset {
            // Everything readable was lost with an unsynced tail, or deleted:
            // start afresh at the log start offset.
            for s in &segments {
                s.delete_files(&*vfs)?;
            }
            let s = Segment::create(&*vfs, dir, log_start, &limits, now)?;
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
            segments = vec![Arc::new(s)];
            state = None;
            next_offset = log_start;
            recovered = true;
        }
        // Finish a deletion of segments below the log start that a crash
        // interrupted.
        let keep_from = segments
            .windows(2)
            .take_while(|w| w[1].base <= log_start)
            .count();
        if keep_from > 0 {
            for s in segments.drain(..keep_from) {
                s.delete_files(&*vfs)?;
            }
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        log_start = log_start.max(segments.first().map_or(0, |s| s.base).min(next_offset));
        if recovered {
            for s in &segments {
                s.sync_all()?;
            }
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        // Complete segments need no descriptors: their bytes are mapped.
        if let Some((_, complete)) = segments.split_last() {
            for s in complete {
                s.release_handles();
            }
        }
        let default_sync = config.durability == Durability::Sync;
        let max_batch_bytes = config.max_batch_bytes;
        let compression = super::compression_code(config.compression);
        let inner = Inner {
            dir: dir.to_path_buf(),
            clock: config.clock.clone(),
            vfs,
            lock: Mutex::new(Some(lock)),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(Writer {
                config,
                limits,
                buf: Vec::new(),
                state: state.unwrap_or_else(IndexState::fresh),
                unflushed: Vec::new(),
                unflushed_records: 0,
                txn: Default::default(),
            }),
            next_offset: AtomicU64::new(next_offset),
            lso: AtomicU64::new(next_offset),
            aborted: RwLock::new(Arc::new(Vec::new())),
            log_start: AtomicU64::new(log_start),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            truncations: AtomicU64::new(0),
            sync: Mutex::new(SyncState {
                synced: next_offset,
                in_progress: false,
                waiting: 0,
                wakers: Default::default(),
            }),
            leader_cv: Condvar::new(),
            sync_appenders: AtomicUsize::new(0),
            default_sync: AtomicBool::new(default_sync),
            max_batch_bytes: AtomicUsize::new(max_batch_bytes),
            compression: std::sync::atomic::AtomicU8::new(compression),
            metrics_topic: std::sync::OnceLock::new(),
            sync_cv: Condvar::new(),
            checkpoint: Mutex::new(()),
            rewrite: Mutex::new(()),
            cleaned_to: AtomicU64::new(cp.cleaned_to.min(next_offset)),
            stopping: AtomicBool::new(false),
            checkpoint_clean: AtomicBool::new(!recovered && cp.clean.is_some()),
            checkpoint_stale: AtomicBool::new(false),
            signal: Signal::default(),
            abandoned: AtomicBool::new(false),
            watchers: RwLock::new(Vec::new()),
            watching: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        };
        if !inner.checkpoint_clean.load(Ordering::Relaxed) {
            inner.store_checkpoint(None)?;
        }
        {
            let mut w = inner.writer.lock();
            let clean = inner.checkpoint_clean.load(Ordering::Relaxed);
            inner.rebuild_producer_state(&mut w, clean)?;
        }
        let segments = inner.segments.read().len();
        tracing::info!(
            dir = %dir.display(),
            segments,
            log_start,
            next_offset,
            recovered,
            recovery_point = cp.recovery_point,
            "log opened{}",
            if recovered {
                ": not shut down cleanly, so the segments from the recovery point on were scanned"
            } else {
                ""
            }
        );
        Ok(inner)
    }

    /// Loads every segment: trusting all of them (`clean`), or recovering
    /// from the one holding the recovery point on. Cuts the log after a
    /// torn segment. Returns the segments, the writer's state for the last
    /// one, and the end offset.
    #[allow(clippy::type_complexity)]
    fn load_segments(
        vfs: &dyn Vfs,
        dir: &Path,
        bases: &mut Vec<Offset>,
        cp: &Checkpoint,
        limits: &Limits,
        clean: bool,
        now: i64,
    ) -> Result<(Vec<Arc<Segment>>, IndexState, Offset)> {
        let rp = cp.recovery_point;
        let recover_from = if clean {
            bases.len()
        } else {
            bases.partition_point(|&b| b <= rp).saturating_sub(1)
        };
        let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        let mut state = IndexState::fresh();
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let active = i + 1 == bases.len();
            let mode = if i >= recover_from {
                Mode::Recover { recovery_point: rp }
            } else {
                Mode::Trust(cp.segments.iter().find(|s| s.base == base))
            };
            if let Some(prev) = segs.last() {
                let end = prev.next_offset();
                if end > base {
                    return Err(Error::corrupt(
                        prev.path(),
                        prev.size(),
                        format!(
                            "segment ends at offset {end} but the next segment starts at {base}"
                        ),
                    ));
                }
                if end < base {
                    if i < recover_from || end < rp {
                        return Err(Error::corrupt(
                            prev.path(),
                            prev.size(),
                            format!(
                                "segment ends at offset {end} but the next one starts at {base}, and offsets \
                                 below the recovery point {rp} were fsync'd"
                            ),
                        ));
                    }
                    // The previous segment lost its unsynced tail while a
                    // newer one kept data (power loss): everything from the
                    // hole on is newer than the tear and goes; the previous
                    // segment is reloaded as the active one.
                    remove_segments(vfs, dir, &bases[i..])?;
                    bases.truncate(i);
                    segs.pop();
                    i -= 1;
                    continue;
                }
            }
            let loaded = Segment::load(vfs, dir, base, limits, active, mode, now)?;
            if loaded.truncated && !active {
                // Everything after a torn segment is newer than the tear and
                // was never fsync'd: it goes, and this segment becomes active.
                drop(loaded);
                remove_segments(vfs, dir, &bases[i + 1..])?;
                bases.truncate(i + 1);
                continue;
            }
            state = loaded.state;
            if !active {
                // A complete segment needs no descriptors once durable:
                // give them back now, or opening a log of thousands of
                // segments would run out of them.
                if i >= recover_from {
                    loaded.segment.sync_all()?;
                }
                loaded.segment.release_handles();
            }
            segs.push(Arc::new(loaded.segment));
            i += 1;
        }
        let next = segs.last().map_or(0, |s| s.next_offset());
        Ok((segs, state, next))
    }
}
