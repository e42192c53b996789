//! The append path: checking and encoding batches, writing one at the log
//! end (rolling the active segment when it is full or old), and the
//! durability each append asks for.

use super::recover::remove_segments;
use super::{AppendInfo, Durability, Inner, KEEP_COMPRESSION, Writer};
use crate::error::{Error, Result};
use crate::record::{
    BatchHeader, BatchParams, Compression, TimestampType, ToRecord, deflate, encode_batch, inflate,
};
use crate::storage::segment::{IndexState, Segment};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Rolled segments that may wait for an fsync (holding descriptors).
const MAX_UNFLUSHED_ROLLED: usize = 4;

/// Marks an encoded batch as log-append time stamped `now`: sets the
/// timestamp-type attribute and the max timestamp, then the CRC (both are
/// covered by it). Returns the new attributes and CRC.
fn set_log_append_time(batch: &mut [u8], now: i64) -> (i16, u32) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now.to_be_bytes());
    let crc = crate::record::batch_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    (attributes, crc)
}

/// The header `encode_batch` returned, for the append to take instead of
/// parsing the bytes back, if it passes the checks a parse makes that a
/// batch this log encoded can fail: a base offset (the log end) past
/// `i64::MAX`, or a last offset that overflows. Otherwise `None`: the
/// parse reports the error.
fn encoded_header(h: BatchHeader) -> Option<BatchHeader> {
    (h.base_offset >= 0
        && h.base_offset
            .checked_add(i64::from(h.last_offset_delta))
            .is_some())
    .then_some(h)
}

impl Inner {
    pub(super) fn append_records<R: ToRecord>(
        &self,
        records: &[R],
        durability: Option<Durability>,
    ) -> Result<AppendInfo> {
        self.append_records_in_epoch(
            records,
            durability,
            BatchParams::default().partition_leader_epoch,
        )
    }

    /// Appends `records` as one batch stamped with a partition leader
    /// epoch.
    pub(crate) fn append_records_in_epoch<R: ToRecord>(
        &self,
        records: &[R],
        durability: Option<Durability>,
        epoch: i32,
    ) -> Result<AppendInfo> {
        let _sync = self.sync_appender(durability);
        let mut w = self.lock_writer()?;
        let base = self.next_offset.load(Ordering::Relaxed);
        let mut buf = std::mem::take(&mut w.buf);
        let params = BatchParams {
            base_offset: base as i64,
            partition_leader_epoch: epoch,
            ..BatchParams::default()
        };
        let sync = durability.unwrap_or(w.config.durability) == Durability::Sync;
        let r = encode_batch(&mut buf, &params, records).and_then(|h| {
            match w.config.compression.filter(|c| *c != Compression::None) {
                Some(codec) => {
                    let mut compressed = deflate(&buf, codec)?;
                    self.append_locked(&mut w, &mut compressed, false, sync)
                }
                None => self.append_with_header(&mut w, &mut buf, encoded_header(h), false, sync),
            }
        });
        w.buf = buf;
        self.finish_append(w, r, durability)
    }

    pub(super) fn append_encoded(
        &self,
        batch: &mut [u8],
        durability: Durability,
        check_records: bool,
    ) -> Result<AppendInfo> {
        let h = BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?;
        if h.size() != batch.len() {
            return Err(Error::InvalidBatch {
                position: 8,
                reason: format!(
                    "length field says {} bytes, buffer has {}",
                    h.size(),
                    batch.len()
                ),
            });
        }
        h.compression().check_available()?;
        // A batch this crate's `BatchBuilder` just sealed is right by
        // construction: its CRC was computed over these bytes a moment
        // ago, once per batch. Anything else is checked whole.
        if check_records {
            if !crate::record::crc_matches(batch) {
                return Err(Error::InvalidBatch {
                    position: 17,
                    reason: "CRC-32C mismatch".into(),
                });
            }
            crate::record::validate_records(batch, &h, self.decompression_limit())
                .map_err(|e| e.in_memory(0))?;
        }
        // Stored with the configured codec (Kafka's topic-level
        // `compression.type`), compressed outside the writer lock.
        let mut recompressed = self.recompress(batch, &h)?;
        let _sync = self.sync_appender(Some(durability));
        let mut w = self.lock_writer()?;
        if let Some((first, last, max_timestamp)) = self.check_sequence(&w, &h)? {
            // A retry of a stored batch: acknowledged with its offsets,
            // nothing written (Kafka's idempotent producer).
            drop(w);
            if durability == Durability::Sync {
                self.sync_to(last + 1)?;
            }
            return Ok(AppendInfo {
                base_offset: first,
                last_offset: last,
                max_timestamp,
            });
        }
        // The base offset is outside the CRC, so assigning it needs no
        // re-checksum (Kafka's design).
        let base = self.next_offset.load(Ordering::Relaxed);
        batch[0..8].copy_from_slice(&(base as i64).to_be_bytes());
        let r = match &mut recompressed {
            Some(stored) => {
                stored[0..8].copy_from_slice(&(base as i64).to_be_bytes());
                self.append_locked(&mut w, stored, false, durability == Durability::Sync)
            }
            None => self.append_locked(&mut w, batch, false, durability == Durability::Sync),
        };
        self.finish_append(w, r, Some(durability))
    }

    /// `batch` in the configured codec, when that is set and differs from
    /// the batch's (never for a transaction marker).
    fn recompress(&self, batch: &[u8], h: &BatchHeader) -> Result<Option<Vec<u8>>> {
        let code = self.compression.load(Ordering::Relaxed);
        let from = h.compression();
        if code == KEEP_COMPRESSION || code as i16 == from.code() || h.is_control() {
            return Ok(None);
        }
        let to = BatchHeader::compression_of(i16::from(code));
        let plain;
        let records = if from == Compression::None {
            batch
        } else {
            plain = inflate(batch, h, self.decompression_limit()).map_err(|e| match e {
                crate::record::CodecError::Unsupported(why) => Error::Unsupported(why),
                crate::record::CodecError::Invalid(why) => Error::InvalidBatch {
                    position: crate::record::BATCH_HEADER_SIZE as u64,
                    reason: why,
                },
            })?;
            &plain[..]
        };
        deflate(records, to).map(Some)
    }

    /// Appends a replicated batch byte for byte: it must be one whole,
    /// valid batch starting exactly at the log end offset. Nothing in it
    /// changes (not even a log-append time).
    pub(crate) fn append_exact(
        &self,
        batch: &mut [u8],
        durability: Durability,
    ) -> Result<AppendInfo> {
        let h = BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?;
        if h.size() != batch.len() || !crate::record::crc_matches(batch) {
            return Err(Error::InvalidBatch {
                position: 0,
                reason: "a replicated batch must be whole and pass its CRC".into(),
            });
        }
        h.compression().check_available()?;
        crate::record::validate_records(batch, &h, self.decompression_limit())
            .map_err(|e| e.in_memory(0))?;
        let _sync = self.sync_appender(Some(durability));
        let mut w = self.lock_writer()?;
        let end = self.next_offset.load(Ordering::Relaxed);
        if h.first_offset() != end {
            return Err(Error::InvalidArgument(format!(
                "replicated batch starts at offset {} but the log ends at {end}",
                h.first_offset()
            )));
        }
        let r = self.append_locked(&mut w, batch, true, durability == Durability::Sync);
        self.finish_append(w, r, Some(durability))
    }

    /// Writes one encoded batch (its base offset already the log end).
    /// `replicated`: a copy of a leader's batch, kept byte for byte and
    /// accepted whatever this log's batch size limit. `sync`: an fsync
    /// follows (`Durability::Sync`), which decides how the bytes are
    /// written (`VfsFile::write_at_before_sync`).
    pub(super) fn append_locked(
        &self,
        w: &mut Writer,
        batch: &mut [u8],
        replicated: bool,
        sync: bool,
    ) -> Result<AppendInfo> {
        self.append_with_header(w, batch, None, replicated, sync)
    }

    /// [`append_locked`](Self::append_locked) of a batch whose header the
    /// caller has, as [`BatchHeader::parse`] reads it from `batch` (the
    /// header `encode_batch` returned for the bytes it wrote); `None`:
    /// parsed here.
    fn append_with_header(
        &self,
        w: &mut Writer,
        batch: &mut [u8],
        header: Option<BatchHeader>,
        replicated: bool,
        sync: bool,
    ) -> Result<AppendInfo> {
        let timer = crate::telemetry::Timer::start();
        let stamp_time = !replicated;
        if !replicated && batch.len() > w.config.max_batch_bytes {
            return Err(Error::BatchTooLarge {
                size: batch.len(),
                max: w.config.max_batch_bytes,
            });
        }
        // The clock is read only where something needs it: a log-append
        // time, a segment's first batch; the age check (`segment.ms`) reads
        // the coarse clock. A precise clock read costs as much as the rest
        // of the storage work of a small append.
        let stamp = stamp_time && w.config.timestamp_type == TimestampType::LogAppendTime;
        let precise = stamp.then(|| self.clock.now_ms());
        let stamped = precise.map(|now| (now, set_log_append_time(batch, now)));
        let h = match header {
            Some(mut h) => {
                if let Some((now, (attributes, crc))) = stamped {
                    h.attributes = attributes;
                    h.max_timestamp = now;
                    h.crc = crc;
                }
                debug_assert_eq!(
                    BatchHeader::parse(batch).ok(),
                    Some(h),
                    "the header given is the batch's"
                );
                h
            }
            None => BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?,
        };
        self.mark_dirty()?;
        let mut active = self.active();
        let aged = w.config.segment_ms.is_some_and(|ms| {
            active.size() > 0
                && precise
                    .unwrap_or_else(|| self.clock.coarse_now_ms())
                    .saturating_sub(active.roll_basis())
                    >= ms
        });
        if aged || !active.fits(batch.len() as u64, h.last_offset(), &w.limits) {
            if active.size() == 0 {
                // Empty but too small (the limits grew since it was made):
                // make it again at the current size. Nobody can hold bytes
                // of an empty segment.
                let now = precise.unwrap_or_else(|| self.clock.now_ms());
                self.recreate_empty_active(w, now)?;
            } else {
                self.roll_locked(w)?;
            }
            active = self.active();
        }
        let limits = w.limits;
        // An fsync also follows when this append makes `flush.messages`
        // due (`finish_append`).
        let sync = sync
            || w.config
                .flush_messages
                .is_some_and(|n| w.unflushed_records + h.record_count as u64 >= n);
        let now = || precise.unwrap_or_else(|| self.clock.now_ms());
        if let Err(e) = active.append(batch, &h, &mut w.state, &limits, now, sync) {
            // Bytes past the published end may have been written; cut them,
            // durably, so that neither a clean close nor a power loss brings
            // back a batch whose append failed. If that fails too, the
            // file's state is unknown.
            if let Err(e2) = active.trim_log().and_then(|()| active.sync_log()) {
                self.poison(&e2);
            }
            return Err(e);
        }
        self.next_offset
            .store(h.last_offset() + 1, Ordering::SeqCst);
        w.unflushed_records += h.record_count as u64;
        self.after_append(w, batch, &h)?;
        timer.append();
        crate::telemetry::records_in(
            // A log opened alone has no topic (set right after a broker
            // opens it, before any append).
            self.metrics_topic.get_or_init(|| "".into()),
            h.record_count as u64,
            batch.len() as u64,
        );
        Ok(AppendInfo {
            base_offset: h.first_offset(),
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        })
    }

    pub(super) fn finish_append(
        &self,
        w: parking_lot::MutexGuard<'_, Writer>,
        r: Result<AppendInfo>,
        durability: Option<Durability>,
    ) -> Result<AppendInfo> {
        let flush_due = w
            .config
            .flush_messages
            .is_some_and(|n| w.unflushed_records >= n);
        let durability = durability.unwrap_or(w.config.durability);
        drop(w);
        let info = r?;
        self.wake_all();
        if durability == Durability::Sync || flush_due {
            self.sync_to(info.last_offset + 1)?;
        }
        Ok(info)
    }

    fn recreate_empty_active(&self, w: &mut Writer, now: i64) -> Result<()> {
        let old = self.active();
        // Its preallocation goes before the file is made again under it.
        old.trim_log()?;
        let new = Arc::new(Segment::create(
            &*self.vfs, &self.dir, old.base, &w.limits, now,
        )?);
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        self.replace_segments(|segs| {
            let mut list = segs.to_vec();
            if let Some(last) = list.last_mut() {
                *last = new;
            }
            Ok(list)
        })?;
        w.state = IndexState::fresh();
        Ok(())
    }

    pub(super) fn roll_locked(&self, w: &mut Writer) -> Result<()> {
        let old = self.active();
        if old.size() == 0 {
            return Ok(());
        }
        // Sealed segments have their exact lengths (the checkpoint's
        // summaries and `Mode::Trust` compare them): the preallocated tail
        // goes first, so a crash at any later point leaves it cut.
        old.trim_log()?;
        let base = self.next_offset.load(Ordering::Relaxed);
        let now = self.clock.now_ms();
        let created =
            Segment::create(&*self.vfs, &self.dir, base, &w.limits, now).and_then(|new| {
                self.vfs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
                old.finish_indexes(&mut w.state)?;
                Ok(new)
            });
        let new = match created {
            Ok(new) => Arc::new(new),
            Err(e) => {
                // The old segment stays active: the new one's files must not
                // outlive this failure, or the next open would find a
                // segment starting inside the old one.
                if let Err(e2) = remove_segments(&*self.vfs, &self.dir, &[base]) {
                    self.poison(&e2);
                }
                return Err(e);
            }
        };
        self.replace_segments(|segs| {
            let mut list = segs.to_vec();
            list.push(new);
            Ok(list)
        })?;
        w.state = IndexState::fresh();
        tracing::debug!(
            dir = %self.dir.display(),
            base,
            previous_base = old.base,
            previous_bytes = old.size(),
            "segment rolled"
        );
        w.unflushed.push(old);
        // The producer state as of the new segment: recovery after a crash
        // starts from it and replays only the active segment.
        if let Err(e) = self.write_producer_snapshot(w, base) {
            self.poison(&e);
            return Err(e);
        }
        w.txn.file = None;
        // Rolled segments keep their descriptors until fsync'd (an fsync on
        // a fresh descriptor may miss an earlier writeback error). Bound how
        // many wait, so a buffered log without a flush policy does not
        // accumulate descriptors: the oldest is fsync'd here.
        while w.unflushed.len() > MAX_UNFLUSHED_ROLLED {
            let oldest = w.unflushed.remove(0);
            if let Err(e) = oldest.sync_all() {
                self.poison(&e);
                return Err(e);
            }
            oldest.release_handles();
        }
        Ok(())
    }
}
