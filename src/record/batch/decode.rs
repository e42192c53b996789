//! Decoding one batch: [`Batch`], its records ([`BatchRecords`]), the
//! record parser shared by every decoder, and [`validate_records`].

#[cfg(doc)]
use super::Batches;
use super::{
    BATCH_HEADER_SIZE, BatchHeader, CRC_OFFSET, CodecError, Compression, CrcChecked,
    DEFAULT_DECOMPRESSION_LIMIT, FormatError, TimestampType, batch_crc, inflate,
};
use crate::error::{Error, Result};
use crate::record::varint::{self, VarintError};
use crate::record::{Header, Offset, StoredRecord};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Where a batch came from, for error messages.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The file, or `None` for bytes handed in by the caller.
    pub(super) path: Option<Arc<Path>>,
    /// Byte position of the batch in that file (or input).
    pub(super) position: u64,
    /// How far a compressed batch's records may inflate.
    pub(super) limit: usize,
    /// For a log's batch: the segment's batches this process already
    /// checked the CRC of.
    pub(super) checked: Option<Arc<CrcChecked>>,
}

impl Source {
    pub(super) fn error(&self, e: FormatError) -> Error {
        match &self.path {
            Some(p) => e.in_file(p, self.position),
            None => e.in_memory(self.position),
        }
    }

    /// A failed decompression: a codec this build lacks, or bad bytes
    /// (reported at the payload's start).
    pub(super) fn codec_error(&self, e: CodecError) -> Error {
        match e {
            CodecError::Unsupported(why) => Error::Unsupported(why),
            CodecError::Invalid(why) => self.error(FormatError::new(BATCH_HEADER_SIZE, why)),
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
    pub(super) header: BatchHeader,
    pub(super) data: Bytes,
    pub(super) source: Source,
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
            limit: DEFAULT_DECOMPRESSION_LIMIT,
            checked: None,
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
        limit: usize,
    ) -> Batch {
        Batch {
            header,
            data,
            source: Source {
                path: Some(path),
                position,
                limit,
                checked: None,
            },
        }
    }

    /// Sets how far this batch's records may inflate if it is compressed.
    /// Default: [`DEFAULT_DECOMPRESSION_LIMIT`](crate::DEFAULT_DECOMPRESSION_LIMIT)
    /// for a batch made with [`new`](Self::new), the log's `max_batch_bytes`
    /// for one a log read returned.
    pub fn decompression_limit(mut self, bytes: usize) -> Batch {
        self.source.limit = bytes;
        self
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

    /// Checks the CRC-32C (always computing it, even for a batch this
    /// process checked before).
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

    /// As [`verify`](Self::verify), but a log's batch that this process
    /// already checked (see `CrcChecked`) is not checked again.
    pub(crate) fn verify_once(&self) -> Result<()> {
        let pos = self.source.position;
        if super::batches::crc_holds_once(self.source.checked.as_deref(), pos, &self.data) {
            return Ok(());
        }
        self.verify()
    }

    /// The transaction marker a control batch holds (Kafka's control
    /// record: key version and type, value version and coordinator epoch);
    /// `None` for a data batch.
    ///
    /// # Errors
    /// A CRC mismatch, or a control batch without a record.
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.header.is_control() {
            return Ok(None);
        }
        let Some(first) = self.records()?.next() else {
            return Err(self.source.error(FormatError::new(
                BATCH_HEADER_SIZE,
                "a control batch without a record",
            )));
        };
        let first = first?;
        Ok(Some(ControlRecord::decode(
            first.key.as_deref(),
            first.value.as_deref(),
        )))
    }

    /// Decodes the records, after checking the CRC. For a control batch
    /// these are its transaction markers ([`Batches::records`] skips them).
    ///
    /// Each record's key, value and header values share this batch's bytes,
    /// or, for a compressed batch, one buffer its records were decompressed
    /// into (once, here).
    ///
    /// # Errors
    /// A CRC mismatch, a payload that does not decompress (or inflates past
    /// the [decompression limit](Self::decompression_limit)), or
    /// [`Error::Unsupported`] for a codec whose feature is off fail here; a
    /// malformed record fails when the iterator reaches it.
    pub fn records(&self) -> Result<BatchRecords> {
        self.verify_once()?;
        let mut batch = self.clone();
        if self.header.compression() != Compression::None {
            batch.data = inflate(&self.data, &self.header, self.source.limit)
                .map_err(|e| self.source.codec_error(e))?;
        }
        Ok(BatchRecords {
            batch,
            pos: BATCH_HEADER_SIZE,
            index: 0,
            prev_delta: -1,
            headers: 0,
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
    /// Headers decoded so far (bounded: see [`max_headers`]).
    headers: usize,
}

/// How many headers the records of one batch may have in all: as many as
/// fit the decompression `limit` once decoded. Each empty header takes two
/// bytes encoded but a [`Header`] in memory, so without this bound a small
/// compressed batch could make a decoder allocate gigabytes.
pub(super) fn max_headers(limit: usize) -> usize {
    (limit / std::mem::size_of::<Header>()).max(1 << 16)
}

impl BatchRecords {
    /// The error `e` in this batch; the iteration stops after it.
    fn fail(&mut self, e: FormatError) -> Error {
        self.index = self.batch.header.record_count;
        self.pos = self.batch.data.len();
        self.batch.source.error(e)
    }
}

#[inline]
pub(super) fn get_len(
    buf: &[u8],
    pos: &mut usize,
    what: &'static str,
    limit: usize,
) -> Result<Option<usize>, FormatError> {
    len_at(buf, pos, what, limit).map_err(Bad::cold)
}

/// A decoding failure, kept small and `Copy` so that the record parser's
/// hot path returns in registers; [`Bad::cold`] makes the message.
#[derive(Debug, Clone, Copy)]
struct Bad {
    at: usize,
    kind: BadKind,
}

#[derive(Debug, Clone, Copy)]
enum BadKind {
    Varint(&'static str, VarintError),
    Negative(&'static str, i32),
    LenPast(&'static str, i32),
    RecordPast(i32),
    Empty,
    HeaderCount(i32),
    NullHeaderKey,
    HeaderKeyNotUtf8,
    Trailing(usize),
}

impl Bad {
    #[cold]
    fn cold(self) -> FormatError {
        let reason = match self.kind {
            BadKind::Varint(what, e) => format!("{what}: {}", e.as_str()),
            BadKind::Negative(what, n) => format!("{what} is negative ({n})"),
            BadKind::LenPast(what, n) => format!("{what} {n} runs past the end of the record"),
            BadKind::RecordPast(len) => {
                format!("record length {len} runs past the end of the batch")
            }
            BadKind::Empty => "record is empty".to_string(),
            BadKind::HeaderCount(n) => format!("header count {n} cannot fit in the record"),
            BadKind::NullHeaderKey => "header key is null".to_string(),
            BadKind::HeaderKeyNotUtf8 => "header key is not UTF-8".to_string(),
            BadKind::Trailing(n) => format!("record has {n} bytes after its last field"),
        };
        FormatError::new(self.at, reason)
    }
}

#[inline(always)]
fn varint_i32(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i32, Bad> {
    let at = *pos;
    varint::get_i32(buf, pos).map_err(|e| Bad {
        at,
        kind: BadKind::Varint(what, e),
    })
}

/// A length (`-1` is null) that must fit below `limit`.
#[inline(always)]
fn len_at(
    buf: &[u8],
    pos: &mut usize,
    what: &'static str,
    limit: usize,
) -> Result<Option<usize>, Bad> {
    let at = *pos;
    let n = varint_i32(buf, pos, what)?;
    if n == -1 {
        return Ok(None);
    }
    if n < 0 {
        return Err(Bad {
            at,
            kind: BadKind::Negative(what, n),
        });
    }
    if n as usize > limit.saturating_sub(*pos) {
        return Err(Bad {
            at,
            kind: BadKind::LenPast(what, n),
        });
    }
    Ok(Some(n as usize))
}

/// A record decoded to positions within the batch (no allocation).
pub(super) struct RawRecord {
    pub(super) ts_delta: i64,
    pub(super) offset_delta: i64,
    pub(super) key: Option<(usize, usize)>,
    pub(super) value: Option<(usize, usize)>,
    pub(super) headers_at: usize,
    pub(super) header_count: usize,
    pub(super) end: usize,
}

/// Decodes one record starting at `pos` of `buf` (a whole batch).
#[inline(always)]
fn parse_record(buf: &[u8], pos: usize) -> Result<RawRecord, Bad> {
    let mut p = pos;
    let len = varint_i32(buf, &mut p, "record length")?;
    if len < 0 || len as usize > buf.len() - p {
        return Err(Bad {
            at: pos,
            kind: BadKind::RecordPast(len),
        });
    }
    let end = p + len as usize;
    let body = &buf[..end];
    if p >= end {
        return Err(Bad {
            at: p,
            kind: BadKind::Empty,
        });
    }
    p += 1; // attributes
    let at = p;
    let ts_delta = varint::get_i64(body, &mut p).map_err(|e| Bad {
        at,
        kind: BadKind::Varint("timestamp delta", e),
    })?;
    let offset_delta = i64::from(varint_i32(body, &mut p, "offset delta")?);
    let key = len_at(body, &mut p, "key length", end)?.map(|n| {
        let r = (p, p + n);
        p += n;
        r
    });
    let value = len_at(body, &mut p, "value length", end)?.map(|n| {
        let r = (p, p + n);
        p += n;
        r
    });
    let at = p;
    let header_count = varint_i32(body, &mut p, "header count")?;
    if header_count < 0 || header_count as usize > (end - p) / 2 {
        return Err(Bad {
            at,
            kind: BadKind::HeaderCount(header_count),
        });
    }
    let headers_at = p;
    // Walk the headers to find the end and validate them.
    for _ in 0..header_count {
        let at = p;
        let Some(klen) = len_at(body, &mut p, "header key length", end)? else {
            return Err(Bad {
                at,
                kind: BadKind::NullHeaderKey,
            });
        };
        if std::str::from_utf8(&body[p..p + klen]).is_err() {
            return Err(Bad {
                at: p,
                kind: BadKind::HeaderKeyNotUtf8,
            });
        }
        p += klen;
        if let Some(vlen) = len_at(body, &mut p, "header value length", end)? {
            p += vlen;
        }
    }
    if p != end {
        return Err(Bad {
            at: p,
            kind: BadKind::Trailing(end - p),
        });
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

/// The offset delta and end of the record at `pos` of batch `buf` (header
/// `h`), read without decoding its key, value and headers: for records a
/// reader passes over (those before the offset it reads from). What it
/// reads is checked as [`next_record`] checks it: the record's length and
/// its offset delta's order.
pub(super) fn skip_record(
    buf: &[u8],
    pos: usize,
    h: &BatchHeader,
    prev: i64,
) -> Result<(i64, usize), FormatError> {
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
    varint::get_i64(body, &mut p).map_err(|e| FormatError::varint(at, "timestamp delta", e))?;
    let at = p;
    let offset_delta = i64::from(
        varint::get_i32(body, &mut p).map_err(|e| FormatError::varint(at, "offset delta", e))?,
    );
    check_delta(offset_delta, pos, h, prev)?;
    Ok((offset_delta, end))
}

/// The position after the `n` records that start at `pos` of batch `buf`,
/// found from their lengths alone: for a batch without offset gaps, where
/// the `n`-th record is the one at offset delta `n`. Each length is checked
/// to be positive and to stay inside the batch.
pub(crate) fn skip_records(buf: &[u8], mut pos: usize, n: usize) -> Result<usize, FormatError> {
    for _ in 0..n {
        let at = pos;
        // Lengths below 8 KiB take one or two bytes: read those inline (a
        // zig-zag varint of a positive length is even and not zero), the
        // rest through the general reader.
        let (z, used) = match buf.get(pos..pos + 2) {
            Some(&[b, _]) if b < 0x80 => (u64::from(b), 1),
            Some(&[b, c]) if c < 0x80 => (u64::from(b & 0x7f) | (u64::from(c) << 7), 2),
            _ => {
                let mut p = pos;
                let len = varint::get_i32(buf, &mut p)
                    .map_err(|e| FormatError::varint(at, "record length", e))?;
                let len = i64::from(len);
                (((len << 1) ^ (len >> 63)) as u64, p - pos)
            }
        };
        pos += used;
        let len = (z >> 1) as usize;
        if z & 1 != 0 || len == 0 || len > buf.len() - pos {
            return Err(bad_length(at, z));
        }
        pos += len;
    }
    Ok(pos)
}

/// The error for a record length (zig-zag `z`) that is not positive or
/// runs past the end of the batch.
#[cold]
fn bad_length(at: usize, z: u64) -> FormatError {
    let len = ((z >> 1) as i64) ^ -((z & 1) as i64);
    FormatError::new(
        at,
        format!("record length {len} runs past the end of the batch"),
    )
}

/// Checks that a record's offset delta follows `prev` and stays within the
/// batch.
fn check_delta(
    offset_delta: i64,
    pos: usize,
    h: &BatchHeader,
    prev: i64,
) -> Result<(), FormatError> {
    if offset_delta <= prev || offset_delta > i64::from(h.last_offset_delta) {
        return Err(FormatError::new(
            pos,
            format!(
                "offset delta {offset_delta} out of order (previous {prev}, last {})",
                h.last_offset_delta
            ),
        ));
    }
    Ok(())
}

/// Decodes the record at `pos` of batch `buf` (header `h`) and checks that
/// its offset delta follows `prev` and stays within the batch.
#[inline(always)]
pub(super) fn next_record(
    buf: &[u8],
    pos: usize,
    h: &BatchHeader,
    prev: i64,
) -> Result<RawRecord, FormatError> {
    let raw = parse_record(buf, pos).map_err(Bad::cold)?;
    check_delta(raw.offset_delta, pos, h, prev)?;
    Ok(raw)
}

impl BatchHeader {
    /// The timestamp of a record with `ts_delta` in this batch: the batch's
    /// max timestamp for log-append time, else base + delta (wrapping, as
    /// Kafka and the encoder compute it).
    pub(super) fn record_timestamp(&self, ts_delta: i64) -> i64 {
        match self.timestamp_type() {
            TimestampType::LogAppendTime => self.max_timestamp,
            TimestampType::CreateTime => self.base_timestamp.wrapping_add(ts_delta),
        }
    }
}

/// Checks every record of a whole batch (`buf`, header `h` already
/// parsed): lengths, offset deltas, header keys, the record count, no
/// trailing bytes, and, for create-time batches, that the header's max
/// timestamp is the records' max. Works without allocating, but for a
/// compressed batch, which is inflated (to at most `limit` bytes) first.
pub(crate) fn validate_records(
    buf: &[u8],
    h: &BatchHeader,
    limit: usize,
) -> Result<(), ValidateError> {
    if h.compression() != Compression::None {
        let inflated = inflate(buf, h, limit).map_err(|e| match e {
            CodecError::Unsupported(why) => ValidateError::Unsupported(why),
            CodecError::Invalid(why) => {
                ValidateError::Format(FormatError::new(BATCH_HEADER_SIZE, why))
            }
        })?;
        return validate_plain(&inflated, h, limit).map_err(|mut e| {
            e.reason = format!("in the decompressed records: {}", e.reason);
            ValidateError::Format(e)
        });
    }
    validate_plain(buf, h, limit).map_err(ValidateError::Format)
}

/// Why [`validate_records`] refused a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValidateError {
    /// Malformed (positions within the batch, or its decompressed records).
    Format(FormatError),
    /// A codec this build lacks.
    Unsupported(String),
}

impl ValidateError {
    /// As an error about in-memory bytes starting at `base`.
    pub(crate) fn in_memory(self, base: u64) -> Error {
        match self {
            ValidateError::Format(e) => e.in_memory(base),
            ValidateError::Unsupported(why) => Error::Unsupported(why),
        }
    }
}

fn validate_plain(buf: &[u8], h: &BatchHeader, limit: usize) -> Result<(), FormatError> {
    let mut pos = BATCH_HEADER_SIZE;
    let mut prev = -1i64;
    let mut max_ts = i64::MIN;
    let mut headers = 0usize;
    for _ in 0..h.record_count {
        let raw = next_record(buf, pos, h, prev)?;
        headers += raw.header_count;
        if headers > max_headers(limit) {
            return Err(FormatError::new(
                pos,
                format!(
                    "the records have more than {} headers in all, more than the \
                     decompression limit of {limit} bytes allows once decoded",
                    max_headers(limit)
                ),
            ));
        }
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

/// A record of a [`BatchRecords`] as places in its buffer
/// ([`BatchRecords::buffer`]): what an owned record is cut from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSpan {
    pub(crate) offset: Offset,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<(usize, usize)>,
    pub(crate) value: Option<(usize, usize)>,
    /// The encoded headers (validated: UTF-8 names, lengths in bounds).
    pub(crate) headers: (usize, usize),
    pub(crate) header_count: usize,
}

impl RecordSpan {
    /// The span of the same record in bytes that hold its batch's bytes
    /// from position `by` on.
    pub(crate) fn shifted(self, by: usize) -> RecordSpan {
        let shift = |r: Option<(usize, usize)>| r.map(|(a, b)| (a + by, b + by));
        RecordSpan {
            key: shift(self.key),
            value: shift(self.value),
            headers: (self.headers.0 + by, self.headers.1 + by),
            ..self
        }
    }
}

impl BatchRecords {
    /// The bytes the spans of [`next_span`](Self::next_span) point into:
    /// the batch, or its records decompressed.
    pub(crate) fn buffer(&self) -> &Bytes {
        &self.batch.data
    }

    /// The next record, as places in [`buffer`](Self::buffer): decoded and
    /// validated as [`next`](Iterator::next) does, nothing shared yet.
    pub(crate) fn next_span(&mut self) -> Option<Result<RecordSpan>> {
        let h = &self.batch.header;
        if self.index >= h.record_count {
            if self.pos != self.batch.data.len() {
                let pos = self.pos;
                return Some(Err(self.fail(FormatError::new(
                    pos,
                    format!(
                        "{} bytes after the last record",
                        self.batch.data.len() - pos
                    ),
                ))));
            }
            return None;
        }
        let raw = match next_record(&self.batch.data, self.pos, h, self.prev_delta) {
            Ok(r) => r,
            Err(e) => return Some(Err(self.fail(e))),
        };
        self.prev_delta = raw.offset_delta;
        self.index += 1;
        self.pos = raw.end;
        Some(Ok(RecordSpan {
            offset: h.base_offset as u64 + raw.offset_delta as u64,
            timestamp: h.record_timestamp(raw.ts_delta),
            key: raw.key,
            value: raw.value,
            headers: (raw.headers_at, raw.end),
            header_count: raw.header_count,
        }))
    }
}

/// The headers encoded in `data[range]` (`count` of them, validated when
/// their record was decoded) as owned [`Header`]s sharing `data`; `None`
/// if they do not decode after all.
pub(crate) fn headers_of(data: &Bytes, range: (usize, usize), count: usize) -> Option<Vec<Header>> {
    let (mut p, end) = range;
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(Some(klen)) = get_len(data, &mut p, "header key length", end) else {
            return None;
        };
        let key = data.slice(p..p + klen);
        p += klen;
        let Ok(vlen) = get_len(data, &mut p, "header value length", end) else {
            return None;
        };
        let value = vlen.map(|n| {
            let v = data.slice(p..p + n);
            p += n;
            v
        });
        headers.push(Header::from_validated(key, value));
    }
    Some(headers)
}

impl Iterator for BatchRecords {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let span = match self.next_span()? {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let data = &self.batch.data;
        let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| data.slice(a..b));
        let mut headers = Vec::new();
        if span.header_count > 0 {
            self.headers += span.header_count;
            if self.headers > max_headers(self.batch.source.limit) {
                return Some(Err(self.fail(FormatError::new(
                    at,
                    format!(
                        "the batch's records have more than {} headers in all, more than its \
                         decompression limit allows",
                        max_headers(self.batch.source.limit)
                    ),
                ))));
            }
            // parse_record validated every length and the UTF-8 keys, so
            // this cannot fail; it maps to a corrupt batch rather than a
            // panic all the same.
            match headers_of(data, span.headers, span.header_count) {
                Some(h) => headers = h,
                None => {
                    let e = FormatError::new(span.headers.0, "header changed while decoding");
                    return Some(Err(self.fail(e)));
                }
            }
        }
        Some(Ok(StoredRecord {
            offset: span.offset,
            timestamp: span.timestamp,
            key: slice(span.key),
            value: slice(span.value),
            headers,
        }))
    }
}

/// What a transaction marker says: the one record of a control batch
/// ([`Batch::control_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// COMMIT or ABORT.
    pub kind: ControlType,
    /// The transaction coordinator's epoch from the marker's value, if it
    /// decodes.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// Decodes a control record: key = version (`i16`), type (`i16`);
    /// value = version (`i16`), coordinator epoch (`i32`). A key too short
    /// to hold a type is [`ControlType::Other(None)`](ControlType::Other).
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> ControlRecord {
        let kind = match key {
            Some(k) if k.len() >= 4 => match i16::from_be_bytes([k[2], k[3]]) {
                0 => ControlType::Abort,
                1 => ControlType::Commit,
                t => ControlType::Other(Some(t)),
            },
            _ => ControlType::Other(None),
        };
        let coordinator_epoch = value
            .filter(|v| v.len() >= 6)
            .map(|v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
        ControlRecord {
            kind,
            coordinator_epoch,
        }
    }
}

/// The type in a control record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Type 0: the transaction was aborted.
    Abort,
    /// Type 1: the transaction was committed.
    Commit,
    /// Another type (Kafka uses some for KRaft's own logs), or a key that is
    /// not a control key (`None`).
    Other(Option<i16>),
}

impl std::fmt::Display for ControlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlType::Abort => f.write_str("ABORT"),
            ControlType::Commit => f.write_str("COMMIT"),
            ControlType::Other(Some(t)) => write!(f, "UNKNOWN({t})"),
            ControlType::Other(None) => f.write_str("UNKNOWN"),
        }
    }
}
