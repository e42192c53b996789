//! Removing records: truncation at the end (`truncate_to`), and deletion
//! at the start (`delete_records_before`, retention).

use super::{Inner, Retention, RetentionReport, TRUNCATING_SUFFIX, Writer};
use crate::error::{Error, Result};
use crate::record::Offset;
use crate::storage::segment::{self, Mode, Segment};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Inner {
    pub(super) fn truncate_to(&self, offset: Offset) -> Result<Offset> {
        let _rewrite = self.rewrite.lock();
        let mut w = self.lock_writer()?;
        let end = self.next_offset.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        self.mark_dirty()?;
        let r = self.truncate_locked(&mut w, offset);
        if let Err(e) = &r {
            // Files may be half rewritten: only a reopen can tell.
            self.poison(e);
        }
        drop(w);
        self.wake_all();
        r
    }

    fn truncate_locked(&self, w: &mut Writer, offset: Offset) -> Result<Offset> {
        // Any fsync now in progress may miss the files replaced below.
        self.truncations.fetch_add(1, Ordering::SeqCst);
        let vfs = &*self.vfs;
        let segs = self.snapshot();
        // Segments wholly at or after `offset` go, newest first, so a crash
        // leaves a prefix of the log.
        let keep = segs.partition_point(|s| s.base < offset).max(1);
        for s in segs[keep..].iter().rev() {
            s.delete_files(vfs)?;
        }
        if keep < segs.len() {
            vfs.sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        let seg = &segs[keep - 1];
        let (pos, new_end) = seg.truncation_point(offset)?;
        // Rewrite the segment's prefix into a new file and rename it over
        // the old one: readers mapping the old file keep their bytes.
        let path = seg.path().to_path_buf();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(TRUNCATING_SUFFIX);
        let tmp = path.with_file_name(tmp_name);
        let f = vfs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_at(seg.bytes(pos), 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        segment::remove_indexes(vfs, &path)?;
        vfs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &path, e))?;
        vfs.sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        let now = self.clock.now_ms();
        let loaded = Segment::load(
            vfs,
            &self.dir,
            seg.base,
            &w.limits,
            true,
            Mode::Recover { recovery_point: 0 },
            now,
        )?;
        loaded.segment.sync_all()?;
        let new_seg = Arc::new(loaded.segment);
        self.replace_segments(|_| {
            let mut v: Vec<_> = segs[..keep - 1].to_vec();
            v.push(new_seg);
            Ok(v)
        })?;
        w.state = loaded.state;
        w.unflushed.retain(|s| s.base < seg.base);
        // Truncating into the batch that straddles the start offset leaves
        // nothing readable: the start follows the end down.
        self.log_start.fetch_min(new_end, Ordering::SeqCst);
        self.next_offset.store(new_end, Ordering::SeqCst);
        self.cleaned_to.fetch_min(new_end, Ordering::SeqCst);
        {
            let mut st = self.sync.lock();
            st.synced = st.synced.min(new_end);
        }
        self.store_checkpoint(None)?;
        // Producer state and aborted transactions past the new end go.
        self.rebuild_producer_state(w, true)?;
        Ok(new_end)
    }

    pub(super) fn delete_records_before(&self, offset: Offset) -> Result<()> {
        let _rewrite = self.rewrite.lock();
        let w = self.lock_writer()?;
        self.delete_before_locked(w, offset)
    }

    /// Deletes the oldest complete segments that `policy` rules out: a
    /// prefix of segments, never the active one.
    pub(super) fn enforce_retention(&self, policy: Retention) -> Result<RetentionReport> {
        let _rewrite = self.rewrite.lock();
        let w = self.lock_writer()?;
        let now = self.clock.now_ms();
        let segs = self.snapshot();
        let mut total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut keep_from = 0;
        let mut freed = 0;
        for (i, s) in segs.iter().enumerate().take(segs.len().saturating_sub(1)) {
            // Kafka's rules: a segment goes when its newest record is older
            // than the retention time, or when the log without it is still
            // at least the byte budget.
            let max_ts = s.max_timestamp();
            let expired = policy.max_age_ms.is_some_and(|age| {
                max_ts != super::segment::NO_TIMESTAMP
                    && now.saturating_sub(max_ts) > i64::try_from(age).unwrap_or(i64::MAX)
            });
            let oversize = policy.max_bytes.is_some_and(|max| total - s.size() >= max);
            if !(expired || oversize) {
                break;
            }
            total -= s.size();
            freed += s.size();
            keep_from = i + 1;
        }
        if keep_from == 0 {
            return Ok(RetentionReport::default());
        }
        let offset = segs[keep_from]
            .base
            .max(self.log_start.load(Ordering::SeqCst));
        self.delete_before_locked(w, offset)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments_deleted = keep_from,
            bytes_deleted = freed,
            log_start = offset,
            "retention deleted old segments"
        );
        crate::telemetry::retention_deleted(keep_from);
        Ok(RetentionReport {
            segments_deleted: keep_from,
            bytes_deleted: freed,
        })
    }

    fn delete_before_locked(
        &self,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        offset: Offset,
    ) -> Result<()> {
        let end = self.next_offset.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        if offset > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset <= start {
            return Ok(());
        }
        self.mark_dirty()?;
        if offset == end {
            self.roll_locked(&mut w)?;
        }
        // The new start is durable before any file goes, so a crash in
        // between is finished by the next open.
        self.log_start.store(offset, Ordering::SeqCst);
        self.store_checkpoint(None)?;
        self.advance_producer_state_start(&mut w)?;
        let segs = self.snapshot();
        let doomed = segs.windows(2).take_while(|p| p[1].base <= offset).count();
        if doomed == 0 {
            return Ok(());
        }
        self.replace_segments(|_| Ok(segs[doomed..].to_vec()))?;
        w.unflushed.retain(|s| s.base >= segs[doomed].base);
        drop(w);
        for s in &segs[..doomed] {
            s.delete_files(&*self.vfs)?;
        }
        self.prune_aborted();
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }
}
