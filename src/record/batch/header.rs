//! The fixed 61-byte batch header: [`BatchHeader`], its attribute bits
//! ([`Compression`], [`TimestampType`], transactional, control), and the
//! CRC-32C helpers.

use super::{
    ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, FormatError, LOG_OVERHEAD, MAGIC, MIN_RECORD_SIZE,
};
use crate::record::Offset;

pub(super) const COMPRESSION_MASK: i16 = 0x07;
pub(super) const TIMESTAMP_TYPE_MASK: i16 = 0x08;
pub(super) const TRANSACTIONAL_MASK: i16 = 0x10;
pub(super) const CONTROL_MASK: i16 = 0x20;

/// How a batch's payload is compressed (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (feature `gzip`).
    Gzip,
    /// Snappy (feature `snappy`).
    Snappy,
    /// LZ4 (feature `lz4`).
    Lz4,
    /// Zstandard (feature `zstd`).
    Zstd,
    /// A code Kafka does not define.
    Unknown(u8),
}

/// Which clock a batch's timestamps come from (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer when the record was created.
    CreateTime,
    /// Set by the log when the batch was appended; every record in the batch
    /// has the batch's max timestamp.
    LogAppendTime,
}

/// The fixed 61-byte header of a record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field (total size − 12).
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Format version; always 2.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, −1 if none.
    pub producer_id: i64,
    /// Idempotent producer epoch, −1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, −1 if none.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

/// The big-endian integer of `N` bytes at `AT` of a header: the offsets are
/// constants and the array has the header's length, so no bounds check is
/// left in the compiled parse.
#[inline(always)]
fn be<const AT: usize, const N: usize>(b: &[u8; BATCH_HEADER_SIZE]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[AT..AT + N]);
    a
}

impl BatchHeader {
    /// Decodes and checks a header from the start of `buf`.
    ///
    /// Checks: at least 61 bytes, magic 2, a batch length that covers the
    /// header and fits `i32`, non-negative base offset, counts and deltas that
    /// agree. It does not check the CRC or that `buf` holds the whole batch.
    #[inline]
    pub(crate) fn parse(buf: &[u8]) -> Result<BatchHeader, FormatError> {
        let Some(b) = buf.first_chunk::<BATCH_HEADER_SIZE>() else {
            return Err(Self::short(buf.len()));
        };
        let h = BatchHeader {
            base_offset: i64::from_be_bytes(be::<0, 8>(b)),
            batch_length: i32::from_be_bytes(be::<8, 4>(b)),
            partition_leader_epoch: i32::from_be_bytes(be::<12, 4>(b)),
            magic: b[16] as i8,
            crc: u32::from_be_bytes(be::<17, 4>(b)),
            attributes: i16::from_be_bytes(be::<21, 2>(b)),
            last_offset_delta: i32::from_be_bytes(be::<23, 4>(b)),
            base_timestamp: i64::from_be_bytes(be::<27, 8>(b)),
            max_timestamp: i64::from_be_bytes(be::<35, 8>(b)),
            producer_id: i64::from_be_bytes(be::<43, 8>(b)),
            producer_epoch: i16::from_be_bytes(be::<51, 2>(b)),
            base_sequence: i32::from_be_bytes(be::<53, 4>(b)),
            record_count: i32::from_be_bytes(be::<57, 4>(b)),
        };
        // Every check at once on the hot path; which one failed, and the
        // message, on the cold one.
        let body = i64::from(h.batch_length) - (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i64;
        let fits = h.attributes & COMPRESSION_MASK != 0
            || i64::from(h.record_count) <= body / MIN_RECORD_SIZE as i64;
        let ok = h.magic == MAGIC
            && body >= 0
            && h.base_offset >= 0
            && h.last_offset_delta >= 0
            && h.record_count >= 0
            && i64::from(h.record_count) <= i64::from(h.last_offset_delta) + 1
            && h.base_offset <= i64::MAX - i64::from(h.last_offset_delta)
            && fits;
        if ok { Ok(h) } else { Err(h.problem()) }
    }

    /// The three fields that place a batch, read without checking the
    /// rest: base offset, batch length, last offset delta (`None` if `buf`
    /// is shorter than a header). For a walk over batches whose other
    /// fields the decoder's [`parse`](Self::parse) checks.
    #[inline]
    pub(crate) fn placement(buf: &[u8]) -> Option<(i64, i32, i32)> {
        let b = buf.first_chunk::<BATCH_HEADER_SIZE>()?;
        Some((
            i64::from_be_bytes(be::<0, 8>(b)),
            i32::from_be_bytes(be::<8, 4>(b)),
            i32::from_be_bytes(be::<23, 4>(b)),
        ))
    }

    /// The error for a header cut short at `len` bytes.
    #[cold]
    fn short(len: usize) -> FormatError {
        FormatError::new(
            0,
            format!("batch header needs {BATCH_HEADER_SIZE} bytes, only {len} remain"),
        )
    }

    /// What is wrong with a header that failed [`parse`](Self::parse)'s
    /// checks.
    #[cold]
    #[inline(never)]
    fn problem(&self) -> FormatError {
        let h = self;
        if h.magic != MAGIC {
            return FormatError::new(
                16,
                format!(
                    "unsupported magic {} (only record batch v2 is read)",
                    h.magic
                ),
            );
        }
        if (h.batch_length as i64) < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return FormatError::new(
                8,
                format!("batch length {} is smaller than the header", h.batch_length),
            );
        }
        if h.base_offset < 0 {
            return FormatError::new(0, format!("negative base offset {}", h.base_offset));
        }
        if h.last_offset_delta < 0 || h.record_count < 0 {
            return FormatError::new(
                23,
                format!(
                    "negative last offset delta {} or record count {}",
                    h.last_offset_delta, h.record_count
                ),
            );
        }
        if h.record_count as i64 > h.last_offset_delta as i64 + 1 {
            return FormatError::new(
                57,
                format!(
                    "record count {} exceeds the offset span {}",
                    h.record_count,
                    h.last_offset_delta as i64 + 1
                ),
            );
        }
        if h.base_offset
            .checked_add(h.last_offset_delta as i64)
            .is_none()
        {
            return FormatError::new(0, "last offset overflows");
        }
        let body = h.batch_length as usize - (BATCH_HEADER_SIZE - LOG_OVERHEAD);
        FormatError::new(
            57,
            format!("record count {} cannot fit in {body} bytes", h.record_count),
        )
    }

    /// Total size of the batch in bytes, header included.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record (base offset + last offset delta).
    pub fn last_offset(&self) -> Offset {
        // parse() checked both are non-negative and the sum does not overflow.
        self.base_offset as u64 + self.last_offset_delta as u64
    }

    /// Offset of the first record.
    pub fn first_offset(&self) -> Offset {
        self.base_offset as u64
    }

    /// The compression codec of the payload.
    pub fn compression(&self) -> Compression {
        Self::compression_of(self.attributes)
    }

    /// The codec that attribute bits 0–2 of `attributes` name.
    pub(crate) fn compression_of(attributes: i16) -> Compression {
        match (attributes & COMPRESSION_MASK) as u8 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            n => Compression::Unknown(n),
        }
    }

    /// Create time or log-append time.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }
}

/// Computes the CRC-32C of a whole batch's bytes (`bytes[21..]`).
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Whether the CRC stored in a whole batch's bytes matches its contents.
pub(crate) fn crc_matches(batch: &[u8]) -> bool {
    batch.len() >= BATCH_HEADER_SIZE
        && u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]) == batch_crc(batch)
}
