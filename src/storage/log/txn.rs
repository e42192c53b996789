//! The log's producer state over its life: rebuilt on open (newest
//! snapshot not past the end, then the batches after it), updated by every
//! append, written as a snapshot at each roll and at a clean close; the
//! markers that end transactions and the `.txnindex` files of the aborted
//! ones. The table and the file formats are in
//! [`producer_state`](crate::storage::producer_state).

use super::{Inner, Writer};
use crate::error::{Error, Result};
use crate::record::{Batch, BatchHeader, ControlType, Offset, encode_marker};
use crate::storage::ReadLimit;
use crate::storage::producer_state::{
    AbortedTransaction, ProducerStates, SequenceCheck, TXN_ENTRY_SIZE, decode_txn_index,
    parse_snapshot_file_name, snapshot_file_name,
};
use crate::storage::segment::{self, Segment};
use crate::storage::vfs::{VfsFile, write_atomic};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Segments whose start keeps a snapshot: the active one, and older ones in
/// case a power loss takes the data a newer snapshot covers (up to four
/// rolled segments may wait for their fsync, `append.rs`'s
/// `MAX_UNFLUSHED_ROLLED`).
const SNAPSHOTS_KEPT: usize = 6;

/// The `.txnindex` path of the segment starting at `base`.
fn txn_index_path(dir: &Path, base: Offset) -> PathBuf {
    segment::txn_index_path(&Segment::log_path(dir, base))
}

/// The open `.txnindex` file of the active segment.
#[derive(Debug)]
pub(super) struct TxnFile {
    base: Offset,
    file: Box<dyn VfsFile>,
    len: u64,
}

/// The transaction state a writer keeps.
#[derive(Debug, Default)]
pub(super) struct TxnState {
    pub(super) producers: ProducerStates,
    pub(super) file: Option<TxnFile>,
}

/// A transaction marker to append (see [`Log::append_marker`](crate::Log)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) commit: bool,
    pub(crate) coordinator_epoch: i32,
}

impl Inner {
    /// Rebuilds the producer table, the aborted transactions and the last
    /// stable offset from the snapshots, `.txnindex` files and the batches
    /// after the newest usable snapshot. Called on open and after a
    /// truncation.
    ///
    /// `trust_active`: the active segment's `.txnindex` is whole (a clean
    /// shutdown, or a truncation in a running log). After a crash it may
    /// not be (writes since its last fsync may be lost, torn, or leave
    /// holes of zeros before surviving ones), so that segment is replayed.
    pub(super) fn rebuild_producer_state(&self, w: &mut Writer, trust_active: bool) -> Result<()> {
        // What the open `.txnindex` holds is rewritten below if it is in
        // the replayed range, and made durable first if not.
        self.sync_txn_file(w)?;
        w.txn.file = None;
        let vfs = &*self.vfs;
        let dir = &self.dir;
        let end = self.next_offset.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut snaps: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_snapshot_file_name(n))
            .collect();
        snaps.sort_unstable();
        // Snapshots past the end describe data that is gone.
        for &s in snaps.iter().filter(|&&s| s > end) {
            segment::remove_file_if_exists(vfs, &dir.join(snapshot_file_name(s)))?;
        }
        snaps.retain(|&s| s <= end);
        // Each segment's aborted transactions; a damaged file is rebuilt
        // from the log by replaying from its segment on.
        let segs = self.snapshot();
        let mut per_segment: Vec<Vec<AbortedTransaction>> = Vec::with_capacity(segs.len());
        // What each file holds now, to tell which must be written again.
        let mut on_disk: Vec<Vec<AbortedTransaction>> = Vec::with_capacity(segs.len());
        let mut replay_limit = end;
        let active_base = segs.last().map_or(0, |s| s.base);
        if !trust_active {
            replay_limit = replay_limit.min(active_base);
        }
        for s in segs.iter() {
            let path = txn_index_path(dir, s.base);
            // Every marker an entry names lies in the entry's segment.
            let in_segment = |e: &Vec<AbortedTransaction>| {
                e.iter()
                    .all(|t| t.last_offset >= s.base && t.last_offset < s.next_offset())
            };
            let decoded = vfs.read(&path).map(|bytes| {
                decode_txn_index(&bytes).and_then(|raw| {
                    let mut e = raw.clone();
                    if trust_active {
                        // Past a truncation: gone with the records.
                        e.retain(|t| t.last_offset < s.next_offset());
                    }
                    if in_segment(&e) {
                        Ok((raw, e))
                    } else {
                        Err("an entry names a marker outside its segment".into())
                    }
                })
            });
            let (raw, entries) = match decoded {
                Ok(bytes) => match bytes {
                    Ok((raw, e)) if trust_active || s.base != active_base => (raw, e),
                    Ok((raw, _)) => (raw, Vec::new()),
                    Err(reason) => {
                        tracing::warn!(
                            path = %path.display(),
                            reason,
                            "embedlog: rebuilding a damaged aborted-transaction index"
                        );
                        replay_limit = replay_limit.min(s.base);
                        (Vec::new(), Vec::new())
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), Vec::new()),
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            on_disk.push(raw);
            per_segment.push(entries);
        }
        // The newest snapshot that decodes and is not past the limit.
        let mut producers = ProducerStates::default();
        let mut from = start;
        while let Some(s) = snaps.pop() {
            if s > replay_limit {
                continue;
            }
            let path = dir.join(snapshot_file_name(s));
            let bytes = vfs.read(&path).map_err(|e| Error::io("read", &path, e))?;
            match ProducerStates::decode_snapshot(&bytes) {
                Ok(p) => {
                    producers = p;
                    from = s.max(start);
                    break;
                }
                Err(reason) => {
                    tracing::warn!(
                        path = %path.display(),
                        reason,
                        "embedlog: ignoring a damaged producer snapshot"
                    );
                    segment::remove_file_if_exists(vfs, &path)?;
                }
            }
        }
        // Entries past the replay start are replayed again (those past a
        // truncation are gone for good).
        for entries in &mut per_segment {
            entries.retain(|t| t.last_offset < from);
        }
        // Replayed producers count as active now: expiry restarts.
        let now = self.clock.now_ms();
        self.each_batch(from, end, |b| {
            let h = *b.header();
            if let Some(aborted) = apply(&mut producers, &h, Some(b), h.last_offset() + 1, now) {
                let i = segs.partition_point(|s| s.base <= aborted.last_offset);
                per_segment[i.saturating_sub(1)].push(aborted);
            }
            true
        })?;
        // A file is compared with what it holds, not with what was kept of
        // it: entries a truncation dropped must leave the file too, or a
        // later compaction, which merges the files, brings them back.
        for ((s, entries), old) in segs.iter().zip(&per_segment).zip(&on_disk) {
            let path = txn_index_path(dir, s.base);
            // Files of replayed segments are written again: what is there
            // may be an unsynced write of an earlier run, which a snapshot
            // taken later would then cover without it being durable.
            let replayed = s.next_offset() > from || s.base >= from;
            if entries != old || replayed || (entries.is_empty() && s.base >= replay_limit) {
                if entries.is_empty() {
                    segment::remove_file_if_exists(vfs, &path)?;
                } else {
                    let mut bytes = Vec::with_capacity(entries.len() * TXN_ENTRY_SIZE);
                    for t in entries {
                        t.encode(&mut bytes);
                    }
                    write_atomic(vfs, &path, &bytes)?;
                }
            }
        }
        producers.expire(self.clock.now_ms(), w.config.producer_id_expiration_ms());
        let all: Vec<AbortedTransaction> = per_segment.into_iter().flatten().collect();
        *self.aborted.write() = Arc::new(all);
        self.lso
            .store(producers.last_stable_offset(end), Ordering::SeqCst);
        w.txn = TxnState {
            producers,
            file: None,
        };
        // Open transactions that began below the log start (the snapshot
        // is older than a deletion) begin at their first batch from it.
        self.advance_producer_state_start(w)
    }

    /// The log start moved: open transactions that began below it now
    /// begin at their first transactional batch from the start on (found
    /// by reading batch headers), as a replay from the start sees them.
    pub(super) fn advance_producer_state_start(&self, w: &mut Writer) -> Result<()> {
        let start = self.log_start.load(Ordering::SeqCst);
        let end = self.next_offset.load(Ordering::SeqCst);
        // Found first, changed after: a failed read leaves the state as
        // it was (holding back more, never less).
        let mut pending: std::collections::HashSet<i64> =
            w.txn.producers.open_below(start).into_iter().collect();
        let mut found = Vec::new();
        if !pending.is_empty() {
            self.each_batch(start, end, |b| {
                let h = b.header();
                if h.is_transactional() && !h.is_control() && pending.remove(&h.producer_id) {
                    found.push((h.producer_id, h.first_offset()));
                }
                if h.is_control() {
                    // Its transaction ended before any batch at or after
                    // the start: nothing of it is held back.
                    pending.remove(&h.producer_id);
                }
                !pending.is_empty()
            })?;
        }
        w.txn.producers.truncate_head(start);
        for (pid, first) in found {
            w.txn.producers.reopen_transaction(pid, first);
        }
        self.lso
            .store(w.txn.producers.last_stable_offset(end), Ordering::SeqCst);
        Ok(())
    }

    /// Calls `f` with each batch ending in `[from, end)`, in order, until it
    /// returns `false`.
    fn each_batch(
        &self,
        from: Offset,
        end: Offset,
        mut f: impl FnMut(&Batch) -> bool,
    ) -> Result<()> {
        let mut pos = from;
        while pos < end {
            let batches = self.read_below(pos, end, ReadLimit::bytes(8 << 20))?;
            if batches.is_empty() {
                break;
            }
            for b in batches.iter() {
                let b = b?;
                if b.last_offset() < pos {
                    continue;
                }
                pos = b.last_offset() + 1;
                if !f(&b) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Checks a producer's data batch before it is appended: `Some` with
    /// the offsets of the batch it repeats.
    pub(super) fn check_sequence(
        &self,
        w: &Writer,
        h: &BatchHeader,
    ) -> Result<Option<(Offset, Offset, i64)>> {
        if h.producer_id < 0 {
            return Ok(None);
        }
        if h.is_control() {
            // A marker handed to `append_batch` ends a transaction only
            // with the producer's current epoch or a newer one.
            w.txn
                .producers
                .check_marker(h.producer_id, h.producer_epoch)?;
            return Ok(None);
        }
        match w.txn.producers.check(h, &self.dir)? {
            SequenceCheck::Append => Ok(None),
            SequenceCheck::Duplicate {
                first_offset,
                last_offset,
                max_timestamp,
            } => Ok(Some((first_offset, last_offset, max_timestamp))),
        }
    }

    /// Updates the producer state for a batch just stored (the log end is
    /// now past it) and publishes the last stable offset.
    pub(super) fn after_append(&self, w: &mut Writer, batch: &[u8], h: &BatchHeader) -> Result<()> {
        let end = h.last_offset() + 1;
        let aborted = if h.is_control() {
            let b = Batch::new(Bytes::copy_from_slice(batch)).ok();
            apply(
                &mut w.txn.producers,
                h,
                b.as_ref(),
                end,
                self.clock.now_ms(),
            )
        } else if h.producer_id >= 0 {
            apply(&mut w.txn.producers, h, None, end, self.clock.now_ms())
        } else {
            // No producer id: no producer state, and no clock read.
            None
        };
        if let Some(t) = aborted
            && let Err(e) = self.index_aborted(w, t)
        {
            // The marker is stored but its index entry may not be: a clean
            // close would then forget that the transaction was aborted.
            self.poison(&e);
            return Err(e);
        }
        self.lso
            .store(w.txn.producers.last_stable_offset(end), Ordering::SeqCst);
        Ok(())
    }

    /// Appends an aborted transaction to the active segment's `.txnindex`
    /// and to the readers' list.
    fn index_aborted(&self, w: &mut Writer, t: AbortedTransaction) -> Result<()> {
        let base = self.active().base;
        if w.txn.file.as_ref().is_some_and(|f| f.base != base) {
            w.txn.file = None;
        }
        if w.txn.file.is_none() {
            let path = txn_index_path(&self.dir, base);
            let file = match self.vfs.open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self
                    .vfs
                    .create(&path)
                    .map_err(|e| Error::io("create", &path, e))?,
                Err(e) => return Err(Error::io("open", &path, e)),
            };
            let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
            w.txn.file = Some(TxnFile { base, file, len });
        }
        let mut bytes = Vec::with_capacity(TXN_ENTRY_SIZE);
        t.encode(&mut bytes);
        if let Some(f) = &mut w.txn.file {
            f.file
                .write_at(&bytes, f.len)
                .map_err(|e| Error::io("write", &txn_index_path(&self.dir, base), e))?;
            f.len += bytes.len() as u64;
        }
        let mut list = self.aborted.write();
        let mut v = list.as_ref().clone();
        v.push(t);
        *list = Arc::new(v);
        Ok(())
    }

    /// Makes the active segment's `.txnindex` durable (before a snapshot
    /// that covers it).
    pub(super) fn sync_txn_file(&self, w: &mut Writer) -> Result<()> {
        if let Some(f) = &w.txn.file {
            f.file
                .sync_data()
                .map_err(|e| Error::io("fsync", &txn_index_path(&self.dir, f.base), e))?;
        }
        Ok(())
    }

    /// Writes the producer snapshot as of `offset` (the log end) and
    /// removes all but the newest few.
    pub(super) fn write_producer_snapshot(&self, w: &mut Writer, offset: Offset) -> Result<()> {
        self.sync_txn_file(w)?;
        w.txn
            .producers
            .expire(self.clock.now_ms(), w.config.producer_id_expiration_ms());
        let path = self.dir.join(snapshot_file_name(offset));
        write_atomic(&*self.vfs, &path, &w.txn.producers.encode_snapshot())?;
        let names = self
            .vfs
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?;
        let mut snaps: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_snapshot_file_name(n))
            .filter(|&s| s <= offset)
            .collect();
        snaps.sort_unstable();
        // Kept: the newest, and the newest at or before each of the last
        // segments' bases (what recovery after a crash or a power loss
        // starts from), whatever clean closes wrote in between.
        let segs = self.snapshot();
        let mut keep: std::collections::BTreeSet<Offset> =
            snaps.last().copied().into_iter().collect();
        for s in segs.iter().rev().take(SNAPSHOTS_KEPT) {
            if let Some(&at) = snaps.iter().rev().find(|&&o| o <= s.base) {
                keep.insert(at);
            }
        }
        for s in snaps.iter().filter(|s| !keep.contains(s)) {
            segment::remove_file_if_exists(&*self.vfs, &self.dir.join(snapshot_file_name(*s)))?;
        }
        Ok(())
    }

    /// Appends a transaction marker for `m` at the log end.
    pub(super) fn append_marker(
        &self,
        m: Marker,
        durability: super::Durability,
    ) -> Result<crate::storage::AppendInfo> {
        let _sync = self.sync_appender(Some(durability));
        let mut w = self.lock_writer()?;
        w.txn.producers.check_marker(m.producer_id, m.epoch)?;
        let base = self.next_offset.load(Ordering::Relaxed);
        let mut buf = std::mem::take(&mut w.buf);
        encode_marker(
            &mut buf,
            base as i64,
            m.producer_id,
            m.epoch,
            m.commit,
            m.coordinator_epoch,
            self.clock.now_ms(),
        );
        let r = self.append_locked(
            &mut w,
            &mut buf,
            false,
            durability == super::Durability::Sync,
        );
        w.buf = buf;
        self.finish_append(w, r, Some(durability))
    }

    /// Aborted transactions that may hold batches in `[from, to)`, oldest
    /// marker first.
    pub(super) fn aborted_transactions(&self, from: Offset, to: Offset) -> Vec<AbortedTransaction> {
        let list = self.aborted.read().clone();
        let first = list.partition_point(|t| t.last_offset < from);
        list[first..]
            .iter()
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions whose marker is below the log start.
    pub(super) fn prune_aborted(&self) {
        let start = self.log_start.load(Ordering::SeqCst);
        let mut list = self.aborted.write();
        if list.first().is_some_and(|t| t.last_offset < start) {
            let v: Vec<_> = list
                .iter()
                .filter(|t| t.last_offset >= start)
                .copied()
                .collect();
            *list = Arc::new(v);
        }
    }
}

/// Applies one stored batch to `producers`; returns the transaction it
/// aborts, if it is an ABORT marker of an open one. `batch` is needed for
/// a control batch (its marker type); `end` is the log end after it.
fn apply(
    producers: &mut ProducerStates,
    h: &BatchHeader,
    batch: Option<&Batch>,
    end: Offset,
    now: i64,
) -> Option<AbortedTransaction> {
    if h.is_control() {
        let marker = batch.and_then(|b| b.control_record().ok().flatten())?;
        let commit = match marker.kind {
            ControlType::Commit => true,
            ControlType::Abort => false,
            ControlType::Other(_) => return None,
        };
        producers.record_marker(
            h.producer_id,
            h.producer_epoch,
            marker.coordinator_epoch.unwrap_or(-1),
            commit,
            h.first_offset(),
            now,
            end,
        )
    } else {
        producers.record_batch(h, now);
        None
    }
}
