//! Batch helpers that only log compaction (`storage::log::compact`) uses:
//! viewing one batch as a [`Batches`] ([`Batch::to_batches`]), and
//! rewriting a batch with some of its records removed ([`filter_batch`],
//! [`extend_batch`], [`seal_batch`]).
//!
//! They stay in `record` rather than beside the compactor because they walk
//! records with the private record parser ([`next_record`]'s `RawRecord`,
//! [`BatchHeader::record_timestamp`]) and build [`RecordRef`]s and
//! [`Batches`] from their private fields; moving them out would make that
//! parser crate-visible.

use super::decode::next_record;
use super::{
    BATCH_HEADER_SIZE, Batch, BatchHeader, Batches, CRC_OFFSET, FormatError, LOG_OVERHEAD,
    RecordRef, TimestampType, batch_crc,
};
use crate::record::Offset;

impl Batch {
    /// This batch alone as a [`Batches`], with the same source (file and
    /// position) for error messages.
    pub(crate) fn to_batches(&self) -> Batches {
        Batches {
            data: self.data.clone(),
            path: self.source.path.clone(),
            position: self.source.position,
            skip_before: 0,
            max_records: usize::MAX,
            limit: self.source.limit,
            inflated: std::sync::OnceLock::new(),
            checked: self.source.checked.clone(),
            first_record: None,
            first_header: None,
        }
    }
}

/// Appends to `out` a copy of the whole, CRC-checked, uncompressed batch
/// `src` (header `h`) holding only the records `keep` accepts. Kept records
/// are copied byte for byte, so they keep their offset deltas (compaction
/// leaves gaps); the copy keeps the batch's offset span and producer
/// fields, and gets a new record count, length and (for create time) max
/// timestamp. Its CRC is left for [`seal_batch`]. Returns how many records
/// were kept.
pub(crate) fn filter_batch(
    src: &[u8],
    h: &BatchHeader,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&RecordRef<'_>) -> bool,
) -> Result<usize, FormatError> {
    let start = out.len();
    out.extend_from_slice(&src[..BATCH_HEADER_SIZE]);
    let (mut pos, mut prev, mut kept) = (BATCH_HEADER_SIZE, -1i64, 0usize);
    let mut max_ts = i64::MIN;
    for _ in 0..h.record_count {
        let raw = next_record(src, pos, h, prev)?;
        let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| &src[a..b]);
        let r = RecordRef {
            offset: h.base_offset as u64 + raw.offset_delta as u64,
            timestamp: h.record_timestamp(raw.ts_delta),
            key: slice(raw.key),
            value: slice(raw.value),
            headers: &src[raw.headers_at..raw.end],
            header_count: raw.header_count,
        };
        if keep(&r) {
            out.extend_from_slice(&src[pos..raw.end]);
            max_ts = max_ts.max(r.timestamp);
            kept += 1;
        }
        prev = raw.offset_delta;
        pos = raw.end;
    }
    if pos != src.len() {
        return Err(FormatError::new(pos, "bytes after the last record"));
    }
    let b = &mut out[start..];
    // Lengths only shrink: the source's fit `i32`.
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b[57..61].copy_from_slice(&(kept as i32).to_be_bytes());
    if kept > 0 && h.timestamp_type() == TimestampType::CreateTime {
        b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    }
    Ok(kept)
}

/// Makes the batch `b` (whole, as [`filter_batch`] wrote it) end at offset
/// `last`, which must be at or after its last record and within `i32` of
/// its base.
pub(crate) fn extend_batch(b: &mut [u8], last: Offset) {
    let base = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let delta = i32::try_from(last.saturating_sub(base)).unwrap_or(i32::MAX);
    b[23..27].copy_from_slice(&delta.to_be_bytes());
}

/// Writes the CRC of the whole batch `b`.
pub(crate) fn seal_batch(b: &mut [u8]) {
    let crc = batch_crc(b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}
