//! Kafka's record batch, version 2 (magic 2), byte for byte.
//!
//! A batch is the unit of storage and of atomicity: a reader sees all of a
//! batch or none of it. Format version: **Kafka record batch v2**; embedlog
//! writes uncompressed batches and reads uncompressed ones (a compressed batch
//! is reported as [`Error::Unsupported`]).
//!
//! # Batch header (61 bytes, big-endian)
//!
//! | bytes  | field                  | type  | notes |
//! |--------|------------------------|-------|-------|
//! | 0..8   | base offset            | i64   | offset of the first record; not covered by the CRC |
//! | 8..12  | batch length           | i32   | bytes after this field (total size − 12) |
//! | 12..16 | partition leader epoch | i32   | not covered by the CRC |
//! | 16     | magic                  | i8    | always 2 |
//! | 17..21 | CRC                    | u32   | CRC-32C (Castagnoli) of bytes 21..end |
//! | 21..23 | attributes             | i16   | bits 0–2 compression, 3 timestamp type (1 = log-append time), 4 transactional, 5 control |
//! | 23..27 | last offset delta      | i32   | last record's offset − base offset |
//! | 27..35 | base timestamp         | i64   | first record's timestamp (ms) |
//! | 35..43 | max timestamp          | i64   | largest timestamp in the batch |
//! | 43..51 | producer id            | i64   | −1 without idempotence |
//! | 51..53 | producer epoch         | i16   | −1 without idempotence |
//! | 53..57 | base sequence          | i32   | −1 without idempotence |
//! | 57..61 | record count           | i32   | |
//!
//! # Record (varints are zig-zag, as in protobuf)
//!
//! | field            | type            | notes |
//! |------------------|-----------------|-------|
//! | length           | varint          | bytes of the record after this field |
//! | attributes       | i8              | unused, 0 |
//! | timestamp delta  | varlong         | timestamp − base timestamp |
//! | offset delta     | varint          | offset − base offset |
//! | key length       | varint          | −1 for a null key |
//! | key              | bytes           | |
//! | value length     | varint          | −1 for a null value (tombstone) |
//! | value            | bytes           | |
//! | header count     | varint          | |
//! | headers          | per header: key length (varint), key (UTF-8), value length (varint, −1 = null), value |

use super::varint::{self, VarintError};
use super::{Header, Offset, Record, StoredRecord};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Size of the fixed batch header.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before the batch length field is counted (base offset + length).
pub(crate) const LOG_OVERHEAD: usize = 12;
const MAGIC: i8 = 2;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
/// Smallest possible encoding of one record: length, attributes, timestamp
/// delta, offset delta, key length, value length, header count.
const MIN_RECORD_SIZE: usize = 7;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// A decoding failure, with the byte position (relative to the start of the
/// input) where it was detected. Callers attach the file and absolute
/// position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    pub(crate) position: usize,
    pub(crate) reason: String,
}

impl FormatError {
    fn new(position: usize, reason: impl Into<String>) -> Self {
        FormatError {
            position,
            reason: reason.into(),
        }
    }

    fn varint(position: usize, what: &str, e: VarintError) -> Self {
        FormatError::new(position, format!("{what}: {}", e.as_str()))
    }

    /// As an error about bytes in `path`, the input starting at `base`.
    pub(crate) fn in_file(self, path: &Path, base: u64) -> Error {
        Error::corrupt(path, base + self.position as u64, self.reason)
    }

    /// As an error about in-memory bytes, the input starting at `base`.
    pub(crate) fn in_memory(self, base: u64) -> Error {
        Error::InvalidBatch {
            position: base + self.position as u64,
            reason: self.reason,
        }
    }
}

/// How a batch's payload is compressed (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed: the only kind embedlog writes and decodes.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
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

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decodes and checks a header from the start of `buf`.
    ///
    /// Checks: at least 61 bytes, magic 2, a batch length that covers the
    /// header and fits `i32`, non-negative base offset, counts and deltas that
    /// agree. It does not check the CRC or that `buf` holds the whole batch.
    pub(crate) fn parse(buf: &[u8]) -> Result<BatchHeader, FormatError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(FormatError::new(
                0,
                format!(
                    "batch header needs {BATCH_HEADER_SIZE} bytes, only {} remain",
                    buf.len()
                ),
            ));
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if h.magic != MAGIC {
            return Err(FormatError::new(
                16,
                format!(
                    "unsupported magic {} (only record batch v2 is read)",
                    h.magic
                ),
            ));
        }
        if (h.batch_length as i64) < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(FormatError::new(
                8,
                format!("batch length {} is smaller than the header", h.batch_length),
            ));
        }
        if h.base_offset < 0 {
            return Err(FormatError::new(
                0,
                format!("negative base offset {}", h.base_offset),
            ));
        }
        if h.last_offset_delta < 0 || h.record_count < 0 {
            return Err(FormatError::new(
                23,
                format!(
                    "negative last offset delta {} or record count {}",
                    h.last_offset_delta, h.record_count
                ),
            ));
        }
        if h.record_count as i64 > h.last_offset_delta as i64 + 1 {
            return Err(FormatError::new(
                57,
                format!(
                    "record count {} exceeds the offset span {}",
                    h.record_count,
                    h.last_offset_delta as i64 + 1
                ),
            ));
        }
        if h.base_offset
            .checked_add(h.last_offset_delta as i64)
            .is_none()
        {
            return Err(FormatError::new(0, "last offset overflows"));
        }
        let body = h.batch_length as usize - (BATCH_HEADER_SIZE - LOG_OVERHEAD);
        if h.record_count as usize > body / MIN_RECORD_SIZE {
            return Err(FormatError::new(
                57,
                format!("record count {} cannot fit in {body} bytes", h.record_count),
            ));
        }
        Ok(h)
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
        match (self.attributes & COMPRESSION_MASK) as u8 {
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

/// Batch-level settings for [`encode_batch`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchParams {
    pub(crate) base_offset: i64,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) attributes: i16,
}

impl Default for BatchParams {
    fn default() -> Self {
        BatchParams {
            base_offset: 0,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }
}

fn len_or_null(b: Option<&Bytes>) -> i64 {
    b.map_or(-1, |b| b.len() as i64)
}

/// Size of one record's body (everything after its length varint).
fn record_body_size(r: &Record, ts_delta: i64, offset_delta: i64) -> usize {
    let mut n = 1 + varint::size_i64(ts_delta) + varint::size_i64(offset_delta);
    for part in [r.key.as_ref(), r.value.as_ref()] {
        n += varint::size_i64(len_or_null(part)) + part.map_or(0, Bytes::len);
    }
    n += varint::size_i64(r.headers.len() as i64);
    for h in &r.headers {
        n += varint::size_i64(h.key.len() as i64) + h.key.len();
        n += varint::size_i64(len_or_null(h.value.as_ref()))
            + h.value.as_ref().map_or(0, Bytes::len);
    }
    n
}

/// An upper bound of the bytes `r` takes in a batch, whatever its deltas.
pub(crate) fn record_size_bound(r: &Record) -> usize {
    // Deltas of at most 10 (timestamp) and 5 (offset) bytes, a length
    // prefix of at most 5.
    record_body_size(r, 0, 0) - 2 + 10 + 5 + 5
}

fn put_record(buf: &mut Vec<u8>, r: &Record, ts_delta: i64, offset_delta: i64) {
    let body = record_body_size(r, ts_delta, offset_delta);
    buf.reserve(body + 5);
    varint::put_i64(buf, body as i64);
    buf.push(0); // record attributes: unused
    varint::put_i64(buf, ts_delta);
    varint::put_i64(buf, offset_delta);
    for part in [r.key.as_ref(), r.value.as_ref()] {
        varint::put_i64(buf, len_or_null(part));
        if let Some(p) = part {
            buf.extend_from_slice(p);
        }
    }
    varint::put_i64(buf, r.headers.len() as i64);
    for h in &r.headers {
        varint::put_i64(buf, h.key.len() as i64);
        buf.extend_from_slice(&h.key);
        varint::put_i64(buf, len_or_null(h.value.as_ref()));
        if let Some(v) = &h.value {
            buf.extend_from_slice(v);
        }
    }
}

fn write_header(buf: &mut [u8], p: &BatchParams, count: i32, base_ts: i64, max_ts: i64) {
    let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[0..8].copy_from_slice(&p.base_offset.to_be_bytes());
    buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
    buf[12..16].copy_from_slice(&p.partition_leader_epoch.to_be_bytes());
    buf[16] = MAGIC as u8;
    buf[21..23].copy_from_slice(&p.attributes.to_be_bytes());
    buf[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    buf[27..35].copy_from_slice(&base_ts.to_be_bytes());
    buf[35..43].copy_from_slice(&max_ts.to_be_bytes());
    buf[43..51].copy_from_slice(&p.producer_id.to_be_bytes());
    buf[51..53].copy_from_slice(&p.producer_epoch.to_be_bytes());
    buf[53..57].copy_from_slice(&p.base_sequence.to_be_bytes());
    buf[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = batch_crc(buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Encodes `records` as one batch, appending to `buf` (which is cleared
/// first). Returns the batch's max timestamp.
///
/// # Errors
/// `InvalidArgument` for an empty slice, more than `i32::MAX` records, or a
/// batch longer than `i32::MAX` bytes.
pub(crate) fn encode_batch(buf: &mut Vec<u8>, p: &BatchParams, records: &[Record]) -> Result<i64> {
    let Some(first) = records.first() else {
        return Err(Error::InvalidArgument(
            "a batch needs at least one record".into(),
        ));
    };
    let count = i32::try_from(records.len())
        .map_err(|_| Error::InvalidArgument("more than i32::MAX records in one batch".into()))?;
    buf.clear();
    buf.resize(BATCH_HEADER_SIZE, 0);
    let base_ts = first.timestamp;
    let mut max_ts = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        max_ts = max_ts.max(r.timestamp);
        put_record(buf, r, r.timestamp.wrapping_sub(base_ts), i as i64);
    }
    if buf.len() - LOG_OVERHEAD > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "batch of {} bytes exceeds the format's 2 GiB limit",
            buf.len()
        )));
    }
    write_header(buf, p, count, base_ts, max_ts);
    Ok(max_ts)
}

/// Builds one record batch, record by record.
///
/// Produces exactly the bytes Kafka's clients produce for an uncompressed
/// v2 batch: the base timestamp is the first record's, offsets deltas count
/// from 0, and the CRC-32C is filled in by [`finish`](Self::finish).
///
/// ```
/// use embedlog::{Batch, BatchBuilder, Record};
/// let mut b = BatchBuilder::new();
/// b.push(&Record::new("v1").key("k").timestamp(10));
/// b.push(&Record::new("v2").timestamp(12));
/// let bytes = b.finish().unwrap();
/// let batch = Batch::new(bytes.into()).unwrap();
/// let records: Vec<_> = batch.records().unwrap().collect::<Result<_, _>>().unwrap();
/// assert_eq!(records.len(), 2);
/// assert_eq!(records[1].offset, 1);
/// assert_eq!(batch.header().max_timestamp, 12);
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    params: BatchParams,
    buf: Vec<u8>,
    count: i32,
    base_ts: i64,
    max_ts: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty batch with base offset 0, partition leader epoch 0 and no
    /// producer id (−1), as a Kafka producer sends it.
    pub fn new() -> Self {
        BatchBuilder {
            params: BatchParams::default(),
            buf: vec![0; BATCH_HEADER_SIZE],
            count: 0,
            base_ts: 0,
            max_ts: i64::MIN,
        }
    }

    /// Sets the base offset written in the header. Default: 0 (a log assigns
    /// the real offset on append).
    pub fn base_offset(mut self, offset: i64) -> Self {
        self.params.base_offset = offset;
        self
    }

    /// Sets the partition leader epoch. Default: 0.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.params.partition_leader_epoch = epoch;
        self
    }

    /// Sets the idempotent producer id, epoch and first sequence number.
    /// Default: −1, −1, −1 (no idempotence).
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.params.producer_id = id;
        self.params.producer_epoch = epoch;
        self.params.base_sequence = base_sequence;
        self
    }

    /// Marks the batch's timestamps as log-append time. Default: create time.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        match t {
            TimestampType::CreateTime => self.params.attributes &= !TIMESTAMP_TYPE_MASK,
            TimestampType::LogAppendTime => self.params.attributes |= TIMESTAMP_TYPE_MASK,
        }
        self
    }

    /// Appends a record with the next offset delta.
    pub fn push(&mut self, record: &Record) {
        if self.count == 0 {
            self.base_ts = record.timestamp;
        }
        self.max_ts = self.max_ts.max(record.timestamp);
        put_record(
            &mut self.buf,
            record,
            record.timestamp.wrapping_sub(self.base_ts),
            i64::from(self.count),
        );
        self.count += 1;
    }

    /// Number of records pushed.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Size in bytes the batch has now, header included.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fills in the header and CRC and returns the encoded batch.
    ///
    /// # Errors
    /// `InvalidArgument` if the batch is empty or longer than the format's
    /// `i32::MAX` bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.count == 0 {
            return Err(Error::InvalidArgument(
                "a batch needs at least one record".into(),
            ));
        }
        if self.buf.len() - LOG_OVERHEAD > i32::MAX as usize {
            return Err(Error::InvalidArgument(
                "batch exceeds the format's 2 GiB limit".into(),
            ));
        }
        write_header(
            &mut self.buf,
            &self.params,
            self.count,
            self.base_ts,
            self.max_ts,
        );
        Ok(self.buf)
    }
}

/// Where a batch came from, for error messages.
#[derive(Debug, Clone)]
struct Source {
    /// The file, or `None` for bytes handed in by the caller.
    path: Option<Arc<Path>>,
    /// Byte position of the batch in that file (or input).
    position: u64,
}

impl Source {
    fn error(&self, e: FormatError) -> Error {
        match &self.path {
            Some(p) => e.in_file(p, self.position),
            None => e.in_memory(self.position),
        }
    }
}

/// One record batch over shared bytes (for a log, its memory map).
///
/// Created by [`Batch::new`] from bytes you hold, or by iterating a
/// [`Batches`] a log read returned. The header is checked on creation; the
/// CRC when the records are decoded (or by [`verify`](Self::verify)).
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    data: Bytes,
    source: Source,
}

impl Batch {
    /// Checks `data` holds exactly one batch and wraps it.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] when the header is invalid or the length
    /// field does not match `data`'s length.
    pub fn new(data: Bytes) -> Result<Batch> {
        let source = Source {
            path: None,
            position: 0,
        };
        let header = BatchHeader::parse(&data).map_err(|e| source.error(e))?;
        if header.size() != data.len() {
            return Err(source.error(FormatError::new(
                8,
                format!(
                    "batch length field says {} bytes, input has {}",
                    header.size(),
                    data.len()
                ),
            )));
        }
        Ok(Batch {
            header,
            data,
            source,
        })
    }

    /// A batch of a log segment whose header the caller already checked.
    pub(crate) fn from_log(
        data: Bytes,
        header: BatchHeader,
        path: Arc<Path>,
        position: u64,
    ) -> Batch {
        Batch {
            header,
            data,
            source: Source {
                path: Some(path),
                position,
            },
        }
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> Offset {
        self.header.first_offset()
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> Offset {
        self.header.last_offset()
    }

    /// Number of records, as the header states it.
    pub fn record_count(&self) -> usize {
        self.header.record_count as usize
    }

    /// The batch's encoded bytes (what a Kafka client or broker accepts).
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Checks the CRC-32C.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (for a log's batch) or [`Error::InvalidBatch`]
    /// when the stored CRC does not match the bytes.
    pub fn verify(&self) -> Result<()> {
        let actual = batch_crc(&self.data);
        if actual != self.header.crc {
            return Err(self.source.error(FormatError::new(
                CRC_OFFSET,
                format!(
                    "CRC-32C mismatch: stored {:#010x}, computed {actual:#010x}",
                    self.header.crc
                ),
            )));
        }
        Ok(())
    }

    /// This batch alone as a [`Batches`], with the same source (file and
    /// position) for error messages.
    pub(crate) fn to_batches(&self) -> Batches {
        Batches {
            data: self.data.clone(),
            path: self.source.path.clone(),
            position: self.source.position,
            skip_before: 0,
            max_records: usize::MAX,
        }
    }

    /// Decodes the records, after checking the CRC. For a control batch
    /// these are its transaction markers ([`Batches::records`] skips them).
    ///
    /// Each record's key, value and header values share this batch's bytes.
    ///
    /// # Errors
    /// A CRC mismatch or a compressed batch fails here; a malformed record
    /// fails when the iterator reaches it.
    pub fn records(&self) -> Result<BatchRecords> {
        self.verify()?;
        if self.header.compression() != Compression::None {
            return Err(Error::Unsupported(format!(
                "compressed record batch ({:?}) at offset {}",
                self.header.compression(),
                self.base_offset()
            )));
        }
        Ok(BatchRecords {
            batch: self.clone(),
            pos: BATCH_HEADER_SIZE,
            index: 0,
            prev_delta: -1,
        })
    }
}

/// Iterator over the records of one [`Batch`].
#[derive(Debug, Clone)]
pub struct BatchRecords {
    batch: Batch,
    pos: usize,
    index: i32,
    prev_delta: i64,
}

impl BatchRecords {
    fn fail(&mut self, e: FormatError) -> Option<Result<StoredRecord>> {
        // Stop after the first error.
        self.index = self.batch.header.record_count;
        self.pos = self.batch.data.len();
        Some(Err(self.batch.source.error(e)))
    }
}

fn get_len(
    buf: &[u8],
    pos: &mut usize,
    what: &str,
    limit: usize,
) -> Result<Option<usize>, FormatError> {
    let at = *pos;
    let n = varint::get_i32(buf, pos).map_err(|e| FormatError::varint(at, what, e))?;
    if n == -1 {
        return Ok(None);
    }
    if n < 0 {
        return Err(FormatError::new(at, format!("{what} is negative ({n})")));
    }
    let n = n as usize;
    if n > limit.saturating_sub(*pos) {
        return Err(FormatError::new(
            at,
            format!("{what} {n} runs past the end of the record"),
        ));
    }
    Ok(Some(n))
}

/// A record decoded to positions within the batch (no allocation).
struct RawRecord {
    ts_delta: i64,
    offset_delta: i64,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    headers_at: usize,
    header_count: usize,
    end: usize,
}

/// Decodes one record starting at `pos` of `buf` (a whole batch).
fn parse_record(buf: &[u8], pos: usize) -> Result<RawRecord, FormatError> {
    let mut p = pos;
    let len =
        varint::get_i32(buf, &mut p).map_err(|e| FormatError::varint(pos, "record length", e))?;
    if len < 0 || len as usize > buf.len() - p {
        return Err(FormatError::new(
            pos,
            format!("record length {len} runs past the end of the batch"),
        ));
    }
    let end = p + len as usize;
    let body = &buf[..end];
    if p >= end {
        return Err(FormatError::new(p, "record is empty"));
    }
    p += 1; // attributes
    let at = p;
    let ts_delta =
        varint::get_i64(body, &mut p).map_err(|e| FormatError::varint(at, "timestamp delta", e))?;
    let at = p;
    let offset_delta = i64::from(
        varint::get_i32(body, &mut p).map_err(|e| FormatError::varint(at, "offset delta", e))?,
    );
    let key = get_len(body, &mut p, "key length", end)?.map(|n| {
        let r = (p, p + n);
        p += n;
        r
    });
    let value = get_len(body, &mut p, "value length", end)?.map(|n| {
        let r = (p, p + n);
        p += n;
        r
    });
    let at = p;
    let header_count =
        varint::get_i32(body, &mut p).map_err(|e| FormatError::varint(at, "header count", e))?;
    if header_count < 0 || header_count as usize > (end - p) / 2 {
        return Err(FormatError::new(
            at,
            format!("header count {header_count} cannot fit in the record"),
        ));
    }
    let headers_at = p;
    // Walk the headers to find the end and validate them.
    for _ in 0..header_count {
        let at = p;
        let Some(klen) = get_len(body, &mut p, "header key length", end)? else {
            return Err(FormatError::new(at, "header key is null"));
        };
        if std::str::from_utf8(&body[p..p + klen]).is_err() {
            return Err(FormatError::new(p, "header key is not UTF-8"));
        }
        p += klen;
        if let Some(vlen) = get_len(body, &mut p, "header value length", end)? {
            p += vlen;
        }
    }
    if p != end {
        return Err(FormatError::new(
            p,
            format!("record has {} bytes after its last field", end - p),
        ));
    }
    Ok(RawRecord {
        ts_delta,
        offset_delta,
        key,
        value,
        headers_at,
        header_count: header_count as usize,
        end,
    })
}

/// Decodes the record at `pos` of batch `buf` (header `h`) and checks that
/// its offset delta follows `prev` and stays within the batch.
fn next_record(
    buf: &[u8],
    pos: usize,
    h: &BatchHeader,
    prev: i64,
) -> Result<RawRecord, FormatError> {
    let raw = parse_record(buf, pos)?;
    if raw.offset_delta <= prev || raw.offset_delta > i64::from(h.last_offset_delta) {
        return Err(FormatError::new(
            pos,
            format!(
                "offset delta {} out of order (previous {prev}, last {})",
                raw.offset_delta, h.last_offset_delta
            ),
        ));
    }
    Ok(raw)
}

impl BatchHeader {
    /// The timestamp of a record with `ts_delta` in this batch: the batch's
    /// max timestamp for log-append time, else base + delta (wrapping, as
    /// Kafka and the encoder compute it).
    fn record_timestamp(&self, ts_delta: i64) -> i64 {
        match self.timestamp_type() {
            TimestampType::LogAppendTime => self.max_timestamp,
            TimestampType::CreateTime => self.base_timestamp.wrapping_add(ts_delta),
        }
    }
}

/// Checks every record of a whole batch (`buf`, header `h` already
/// parsed): lengths, offset deltas, header keys, the record count, no
/// trailing bytes, and, for create-time batches, that the header's max
/// timestamp is the records' max. Works without allocating.
pub(crate) fn validate_records(buf: &[u8], h: &BatchHeader) -> Result<(), FormatError> {
    let mut pos = BATCH_HEADER_SIZE;
    let mut prev = -1i64;
    let mut max_ts = i64::MIN;
    for _ in 0..h.record_count {
        let raw = next_record(buf, pos, h, prev)?;
        prev = raw.offset_delta;
        max_ts = max_ts.max(h.record_timestamp(raw.ts_delta));
        pos = raw.end;
    }
    if pos != buf.len() {
        return Err(FormatError::new(
            pos,
            format!("{} bytes after the last record", buf.len() - pos),
        ));
    }
    if h.timestamp_type() == TimestampType::CreateTime
        && h.record_count > 0
        && max_ts != h.max_timestamp
    {
        return Err(FormatError::new(
            35,
            format!(
                "header max timestamp {} but the records' max is {max_ts}",
                h.max_timestamp
            ),
        ));
    }
    Ok(())
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

impl Iterator for BatchRecords {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.batch.header;
        if self.index >= h.record_count {
            if self.pos != self.batch.data.len() {
                let pos = self.pos;
                return self.fail(FormatError::new(
                    pos,
                    format!(
                        "{} bytes after the last record",
                        self.batch.data.len() - pos
                    ),
                ));
            }
            return None;
        }
        let data = &self.batch.data;
        let raw = match next_record(data, self.pos, &h, self.prev_delta) {
            Ok(r) => r,
            Err(e) => return self.fail(e),
        };
        let timestamp = h.record_timestamp(raw.ts_delta);
        let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| data.slice(a..b));
        let mut headers = Vec::new();
        if raw.header_count > 0 {
            headers.reserve_exact(raw.header_count);
            let mut p = raw.headers_at;
            for _ in 0..raw.header_count {
                // parse_record validated every length and the UTF-8 keys,
                // so these reads cannot fail; errors map to a corrupt batch
                // rather than a panic all the same.
                let Ok(Some(klen)) = get_len(data, &mut p, "header key length", raw.end) else {
                    return self.fail(FormatError::new(p, "header changed while decoding"));
                };
                let key = data.slice(p..p + klen);
                p += klen;
                let Ok(vlen) = get_len(data, &mut p, "header value length", raw.end) else {
                    return self.fail(FormatError::new(p, "header changed while decoding"));
                };
                let value = vlen.map(|n| {
                    let v = data.slice(p..p + n);
                    p += n;
                    v
                });
                headers.push(Header::from_validated(key, value));
            }
        }
        let record = StoredRecord {
            offset: h.base_offset as u64 + raw.offset_delta as u64,
            timestamp,
            key: slice(raw.key),
            value: slice(raw.value),
            headers,
        };
        self.prev_delta = raw.offset_delta;
        self.index += 1;
        self.pos = raw.end;
        Some(Ok(record))
    }
}

/// A run of whole batches, as one log read returns them (zero-copy).
///
/// Iterate it batch by batch with [`iter`](Self::iter), or record by record
/// with [`records`](Self::records), which skips records before the offset
/// the read started from and stops after the read's record limit.
#[derive(Debug, Clone)]
pub struct Batches {
    data: Bytes,
    path: Option<Arc<Path>>,
    position: u64,
    skip_before: Offset,
    max_records: usize,
}

impl Batches {
    pub(crate) fn from_log(
        data: Bytes,
        path: Arc<Path>,
        position: u64,
        skip_before: Offset,
        max_records: usize,
    ) -> Batches {
        Batches {
            data,
            path: Some(path),
            position,
            skip_before,
            max_records,
        }
    }

    /// Wraps bytes holding zero or more whole batches back to back.
    pub fn from_bytes(data: Bytes) -> Batches {
        Batches {
            data,
            path: None,
            position: 0,
            skip_before: 0,
            max_records: usize::MAX,
        }
    }

    /// An empty run.
    pub fn empty() -> Batches {
        Batches::from_bytes(Bytes::new())
    }

    /// The raw bytes: whole batches back to back, as Kafka's fetch responses
    /// carry them.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Whether the run holds no batch.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }

    /// Iterates the batches (headers checked, CRCs checked when their records
    /// are decoded).
    pub fn iter(&self) -> BatchIter {
        BatchIter {
            data: self.data.clone(),
            path: self.path.clone(),
            position: self.position,
            pos: 0,
        }
    }

    /// Iterates the data records of all batches, skipping offsets before
    /// the read's start and stopping after its record limit.
    ///
    /// Control batches (transaction markers, attributes bit 5) are not data:
    /// their CRC is checked, but their records are never yielded, as a Kafka
    /// consumer never returns them. [`iter`](Self::iter) and
    /// [`Batch::records`] still show them to code that needs them.
    pub fn records(&self) -> RecordIter {
        RecordIter {
            batches: self.iter(),
            current: None,
            skip_before: self.skip_before,
            remaining: self.max_records,
        }
    }

    /// Like [`records`](Self::records), but each record borrows its key,
    /// value and headers from these batches instead of sharing them through
    /// `Bytes`: no reference counting per record, the fastest way to scan.
    /// Control batches are skipped, as by [`records`](Self::records).
    ///
    /// ```
    /// use embedlog::{BatchBuilder, Batches, Record};
    /// let mut b = BatchBuilder::new();
    /// b.push(&Record::new("v").key("k").header("h", "x"));
    /// let batches = Batches::from_bytes(b.finish()?.into());
    /// for r in batches.records_ref() {
    ///     let r = r?;
    ///     assert_eq!((r.key, r.value), (Some(&b"k"[..]), Some(&b"v"[..])));
    ///     assert_eq!(r.headers().next().unwrap()?, ("h", Some(&b"x"[..])));
    /// }
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn records_ref(&self) -> RecordRefIter<'_> {
        RecordRefIter {
            data: &self.data,
            path: self.path.as_ref(),
            position: self.position,
            pos: 0,
            batch: None,
            skip_before: self.skip_before,
            remaining: self.max_records,
        }
    }
}

/// A record borrowed from the batch it was decoded from (see
/// [`Batches::records_ref`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's offset.
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: usize,
}

impl<'a> RecordRef<'a> {
    /// The headers, as `(name, value)` pairs (names were checked to be
    /// UTF-8 when the record was decoded).
    pub fn headers(&self) -> impl Iterator<Item = Result<(&'a str, Option<&'a [u8]>)>> + 'a {
        let (buf, mut p) = (self.headers, 0usize);
        (0..self.header_count).map(move |_| {
            let bad = || Error::InvalidBatch {
                position: 0,
                reason: "header changed while decoding".into(),
            };
            let klen = get_len(buf, &mut p, "header key length", buf.len())
                .map_err(|_| bad())?
                .ok_or_else(bad)?;
            let key = std::str::from_utf8(&buf[p..p + klen]).map_err(|_| bad())?;
            p += klen;
            let value = get_len(buf, &mut p, "header value length", buf.len())
                .map_err(|_| bad())?
                .map(|n| {
                    let v = &buf[p..p + n];
                    p += n;
                    v
                });
            Ok((key, value))
        })
    }

    /// An owned copy sharing nothing with the batch.
    pub fn to_record(&self) -> Result<Record> {
        let headers = self
            .headers()
            .map(|h| {
                h.map(|(k, v)| Header {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: v.map(Bytes::copy_from_slice),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Record {
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
            timestamp: self.timestamp,
            headers,
        })
    }
}

/// Iterator over borrowed records; see [`Batches::records_ref`].
#[derive(Debug)]
pub struct RecordRefIter<'a> {
    data: &'a Bytes,
    path: Option<&'a Arc<Path>>,
    position: u64,
    pos: usize,
    /// The batch being decoded: its header, start, and next record position.
    batch: Option<(BatchHeader, usize, usize, i32, i64)>,
    skip_before: Offset,
    remaining: usize,
}

impl<'a> RecordRefIter<'a> {
    fn fail(&mut self, at: usize, e: FormatError) -> Option<Result<RecordRef<'a>>> {
        self.remaining = 0;
        let source = Source {
            path: self.path.cloned(),
            position: self.position + at as u64,
        };
        Some(Err(source.error(e)))
    }
}

impl<'a> Iterator for RecordRefIter<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Result<RecordRef<'a>>> {
        let data: &'a [u8] = self.data;
        while self.remaining > 0 {
            if let Some((h, start, ref mut at, ref mut index, ref mut prev)) = self.batch {
                let buf = &data[start..start + h.size()];
                if *index >= h.record_count {
                    if *at != buf.len() {
                        let a = *at;
                        return self
                            .fail(start, FormatError::new(a, "bytes after the last record"));
                    }
                    self.batch = None;
                    continue;
                }
                let raw = match next_record(buf, *at, &h, *prev) {
                    Ok(r) => r,
                    Err(e) => return self.fail(start, e),
                };
                *prev = raw.offset_delta;
                *index += 1;
                *at = raw.end;
                let offset = h.base_offset as u64 + raw.offset_delta as u64;
                if offset < self.skip_before {
                    continue;
                }
                self.remaining -= 1;
                let timestamp = h.record_timestamp(raw.ts_delta);
                let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| &buf[a..b]);
                return Some(Ok(RecordRef {
                    offset,
                    timestamp,
                    key: slice(raw.key),
                    value: slice(raw.value),
                    headers: &buf[raw.headers_at..raw.end],
                    header_count: raw.header_count,
                }));
            }
            if self.pos >= data.len() {
                return None;
            }
            let start = self.pos;
            let rest = &data[start..];
            let h = match BatchHeader::parse(rest) {
                Ok(h) => h,
                Err(e) => return self.fail(start, e),
            };
            if h.size() > rest.len() {
                return self.fail(start, FormatError::new(8, "batch runs past the end"));
            }
            self.pos += h.size();
            if h.last_offset() < self.skip_before {
                continue;
            }
            let buf = &rest[..h.size()];
            if !crc_matches(buf) {
                return self.fail(start, FormatError::new(CRC_OFFSET, "CRC-32C mismatch"));
            }
            if h.is_control() {
                // Transaction markers: not data.
                continue;
            }
            if h.compression() != Compression::None {
                self.remaining = 0;
                return Some(Err(Error::Unsupported(format!(
                    "compressed record batch ({:?}) at offset {}",
                    h.compression(),
                    h.base_offset
                ))));
            }
            self.batch = Some((h, start, BATCH_HEADER_SIZE, 0, -1));
        }
        None
    }
}

impl IntoIterator for &Batches {
    type Item = Result<Batch>;
    type IntoIter = BatchIter;
    fn into_iter(self) -> BatchIter {
        self.iter()
    }
}

/// Iterator over the batches of a [`Batches`].
#[derive(Debug, Clone)]
pub struct BatchIter {
    data: Bytes,
    path: Option<Arc<Path>>,
    position: u64,
    pos: usize,
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let source = Source {
            path: self.path.clone(),
            position: self.position + self.pos as u64,
        };
        let rest = &self.data[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.pos = self.data.len();
                return Some(Err(source.error(e)));
            }
        };
        if header.size() > rest.len() {
            self.pos = self.data.len();
            return Some(Err(source.error(FormatError::new(
                8,
                format!(
                    "batch of {} bytes runs past the end ({} bytes remain)",
                    header.size(),
                    rest.len()
                ),
            ))));
        }
        let data = self.data.slice(self.pos..self.pos + header.size());
        self.pos += header.size();
        Some(Ok(Batch {
            header,
            data,
            source,
        }))
    }
}

/// Iterator over the records of a [`Batches`].
#[derive(Debug, Clone)]
pub struct RecordIter {
    batches: BatchIter,
    current: Option<BatchRecords>,
    skip_before: Offset,
    remaining: usize,
}

impl Iterator for RecordIter {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Result<StoredRecord>> {
        while self.remaining > 0 {
            if let Some(cur) = &mut self.current {
                match cur.next() {
                    Some(Ok(r)) if r.offset < self.skip_before => continue,
                    Some(Ok(r)) => {
                        self.remaining -= 1;
                        return Some(Ok(r));
                    }
                    Some(Err(e)) => {
                        self.remaining = 0;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            match self.batches.next()? {
                Ok(b) if b.last_offset() < self.skip_before => {}
                // Transaction markers are not data; a damaged one is still
                // reported.
                Ok(b) if b.header().is_control() => {
                    if let Err(e) = b.verify() {
                        self.remaining = 0;
                        return Some(Err(e));
                    }
                }
                Ok(b) => match b.records() {
                    Ok(it) => self.current = Some(it),
                    Err(e) => {
                        self.remaining = 0;
                        return Some(Err(e));
                    }
                },
                Err(e) => {
                    self.remaining = 0;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::new("v0").key("k0").timestamp(1000),
            Record {
                key: None,
                value: None,
                timestamp: 990,
                headers: vec![Header::new("a", "1"), Header::null("n")],
            },
            Record::new(vec![7u8; 300]).timestamp(1005),
        ]
    }

    fn encode(records: &[Record]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_batch(&mut buf, &BatchParams::default(), records).unwrap();
        buf
    }

    #[test]
    fn crc32c_check_value() {
        // The published CRC-32C (Castagnoli) check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn roundtrip_and_header_fields() {
        let records = sample();
        let bytes = encode(&records);
        let batch = Batch::new(Bytes::from(bytes)).unwrap();
        let h = *batch.header();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.producer_id, -1);
        let got: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 3);
        for (i, (g, r)) in got.iter().zip(&records).enumerate() {
            assert_eq!(g.offset, i as u64);
            assert_eq!(g.clone().into_record(), *r);
        }
    }

    #[test]
    fn builder_matches_encode_batch() {
        let records = sample();
        let mut b = BatchBuilder::new();
        for r in &records {
            b.push(r);
        }
        assert_eq!(b.finish().unwrap(), encode(&records));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let res = Batch::new(Bytes::from(b)).and_then(|batch| {
                batch
                    .records()?
                    .collect::<Result<Vec<_>>>()
                    .map(|v| (batch, v))
            });
            match res {
                Err(_) => {}
                // Base offset and leader epoch are outside the CRC by design.
                Ok((batch, _)) => assert!(
                    i < 8 || (12..16).contains(&i),
                    "flip at byte {i} went unnoticed: {:?}",
                    batch.header()
                ),
            }
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(Batch::new(Bytes::copy_from_slice(&bytes[..n])).is_err());
            let it: Vec<_> = Batches::from_bytes(Bytes::copy_from_slice(&bytes[..n]))
                .records()
                .collect();
            if n > 0 {
                assert!(it.last().unwrap().is_err(), "cut at {n}");
            }
        }
    }

    #[test]
    fn absurd_counts_are_rejected_before_allocating() {
        let mut bytes = encode(&[Record::new("x").timestamp(1)]);
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        bytes[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        let e = Batch::new(Bytes::from(bytes)).unwrap_err();
        assert!(e.to_string().contains("cannot fit"), "{e}");
    }

    #[test]
    fn extreme_timestamps_roundtrip_with_wrapping_deltas() {
        let records = [
            Record::new("a").timestamp(-1),
            Record::new("b").timestamp(i64::MAX),
            Record::new("c").timestamp(i64::MIN),
        ];
        let batch = Batch::new(Bytes::from(encode(&records))).unwrap();
        let got: Vec<_> = batch
            .records()
            .unwrap()
            .map(|r| r.unwrap().timestamp)
            .collect();
        assert_eq!(got, [-1, i64::MAX, i64::MIN]);
        assert_eq!(validate_records(batch.as_bytes(), batch.header()), Ok(()));
    }

    #[test]
    fn validate_records_catches_what_the_crc_cannot() {
        let bytes = encode(&sample());
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(validate_records(&bytes, &h), Ok(()));
        // A header max timestamp below a record's (re-checksummed: a client
        // can send exactly this).
        let mut lying = bytes.clone();
        lying[35..43].copy_from_slice(&999i64.to_be_bytes());
        let crc = batch_crc(&lying);
        lying[17..21].copy_from_slice(&crc.to_be_bytes());
        let h2 = BatchHeader::parse(&lying).unwrap();
        assert!(
            validate_records(&lying, &h2)
                .unwrap_err()
                .reason
                .contains("max timestamp")
        );
        // A record count that disagrees with the records.
        let mut short = bytes.clone();
        short[57..61].copy_from_slice(&2i32.to_be_bytes());
        let h3 = BatchHeader::parse(&short).unwrap();
        assert!(validate_records(&short, &h3).is_err());
    }

    #[test]
    fn compressed_batches_are_unsupported() {
        let mut bytes = encode(&sample());
        bytes[22] |= 1; // gzip
        let crc = batch_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::new(Bytes::from(bytes)).unwrap();
        assert_eq!(batch.header().compression(), Compression::Gzip);
        assert!(matches!(batch.records(), Err(Error::Unsupported(_))));
    }

    #[test]
    fn log_append_time_applies_max_timestamp() {
        let mut b = BatchBuilder::new().timestamp_type(TimestampType::LogAppendTime);
        b.push(&Record::new("a").timestamp(5));
        b.push(&Record::new("b").timestamp(9));
        let batch = Batch::new(b.finish().unwrap().into()).unwrap();
        assert_eq!(
            batch.header().timestamp_type(),
            TimestampType::LogAppendTime
        );
        for r in batch.records().unwrap() {
            assert_eq!(r.unwrap().timestamp, 9);
        }
    }

    #[test]
    fn records_share_the_batch_memory() {
        let bytes = Bytes::from(encode(&sample()));
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let batch = Batch::new(bytes.clone()).unwrap();
        let first = batch.records().unwrap().next().unwrap().unwrap();
        let v = first.value.unwrap();
        assert!(range.contains(&(v.as_ptr() as usize)), "value was copied");
    }

    /// The sample records as three batches at offsets 0, 3 and 6.
    fn three_batches() -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = Vec::new();
        for base in [0i64, 3, 6] {
            let p = BatchParams {
                base_offset: base,
                ..BatchParams::default()
            };
            encode_batch(&mut buf, &p, &sample()).unwrap();
            all.extend_from_slice(&buf);
        }
        all
    }

    #[test]
    fn borrowed_records_equal_owned_records() {
        let all = three_batches();
        for (skip, max) in [(0, usize::MAX), (4, 3), (8, 10), (9, 1)] {
            let mut b = Batches::from_bytes(all.clone().into());
            b.skip_before = skip;
            b.max_records = max;
            let owned: Vec<_> = b.records().map(|r| r.unwrap()).collect();
            let borrowed: Vec<_> = b.records_ref().map(|r| r.unwrap()).collect();
            assert_eq!(owned.len(), borrowed.len(), "skip {skip} max {max}");
            for (o, r) in owned.iter().zip(&borrowed) {
                assert_eq!(r.offset, o.offset);
                assert_eq!(r.to_record().unwrap(), o.clone().into_record());
            }
        }
        // Damage is reported the same way.
        for i in 0..all.len() {
            let mut d = all.clone();
            d[i] ^= 0x20;
            let b = Batches::from_bytes(d.into());
            let owned_err = b.records().any(|r| r.is_err());
            let borrowed_err = b.records_ref().any(|r| r.is_err());
            assert_eq!(owned_err, borrowed_err, "flip at {i}");
        }
    }

    #[test]
    fn records_iter_skips_and_limits() {
        let all = three_batches();
        let mut b = Batches::from_bytes(all.into());
        b.skip_before = 4;
        b.max_records = 3;
        let offs: Vec<_> = b.records().map(|r| r.unwrap().offset).collect();
        assert_eq!(offs, vec![4, 5, 6]);
    }
}
