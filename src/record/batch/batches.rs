//! The [`Batches`] view of a run of whole batches (what a log read
//! returns) and its iterators: [`BatchIter`] over the batches,
//! [`RecordIter`] over owned records, [`RecordRefIter`] over borrowed
//! [`RecordRef`]s.

use super::decode::{Source, get_len, next_record, skip_record, skip_records};
use super::{
    BATCH_HEADER_SIZE, Batch, BatchHeader, BatchRecords, CRC_OFFSET, CodecError, Compression,
    CrcChecked, DEFAULT_DECOMPRESSION_LIMIT, FormatError, crc_matches, inflate,
};
use crate::error::{Error, Result};
use crate::record::{Header, Offset, Record, StoredRecord};
use bytes::Bytes;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// A run of whole batches, as one log read returns them (zero-copy).
///
/// Iterate it batch by batch with [`iter`](Self::iter), or record by record
/// with [`records`](Self::records), which skips records before the offset
/// the read started from and stops after the read's record limit.
///
/// Each batch's CRC-32C is checked before its records are decoded; for a
/// log read, once per process: a batch this process already checked (read
/// before, or appended itself) is not checked again, so bytes another
/// program changes in a segment file after that come back unchecked.
/// [`Batch::verify`] and `Log::verify` always recompute.
///
/// Compressed batches are decompressed when their records are first
/// iterated, each once: [`records_ref`](Self::records_ref) keeps the
/// decompressed buffers in this value, so its records can borrow them.
#[derive(Debug, Clone)]
pub struct Batches {
    pub(super) data: Bytes,
    pub(super) path: Option<Arc<Path>>,
    pub(super) position: u64,
    pub(super) skip_before: Offset,
    pub(super) max_records: usize,
    /// How far one compressed batch's records may inflate.
    pub(super) limit: usize,
    /// The compressed batches' decompressed buffers, by byte position,
    /// made on the first [`records_ref`](Self::records_ref) that meets one.
    pub(super) inflated: OnceLock<Inflated>,
    /// For a log read: the batches of the segment this process already
    /// checked the CRC of (`position` is `data`'s place in it).
    pub(super) checked: Option<Arc<CrcChecked>>,
    /// For a log read that starts inside the first batch: where the record
    /// at `skip_before` starts in it (the batch's base offset, the byte,
    /// the record's index), as the log learned from earlier reads.
    pub(super) first_record: Option<(Offset, usize, i32)>,
    /// For a log read: the first batch's header, as the log parsed and
    /// checked it while finding the batch (not parsed again).
    pub(super) first_header: Option<BatchHeader>,
}

/// The decompressed buffers of a run's compressed batches, by position.
/// Each is decompressed when first asked for.
pub(super) type Inflated = Vec<(usize, OnceLock<std::result::Result<Bytes, CodecError>>)>;

impl Batches {
    pub(crate) fn from_log(
        data: Bytes,
        path: Arc<Path>,
        position: u64,
        skip_before: Offset,
        max_records: usize,
        checked: Option<Arc<CrcChecked>>,
    ) -> Batches {
        Batches {
            data,
            path: Some(path),
            position,
            skip_before,
            max_records,
            limit: DEFAULT_DECOMPRESSION_LIMIT,
            inflated: OnceLock::new(),
            checked,
            first_record: None,
            first_header: None,
        }
    }

    /// Says where the record at `skip_before` starts in the first batch
    /// (of base offset `base`): at byte `at`, the `index`-th record. The
    /// log knows it for a batch it checked; records before it are then
    /// not stepped over. (In place: a `Batches` is large enough that moves
    /// through a builder chain cost a read of one record.)
    pub(crate) fn set_first_record(&mut self, base: Offset, at: usize, index: i32) {
        self.first_record = Some((base, at, index));
    }

    /// Hands over the first batch's header, which the caller parsed from
    /// the start of these bytes and checked to fit them.
    pub(crate) fn set_first_header(&mut self, h: BatchHeader) {
        self.first_header = Some(h);
    }

    /// [`decompression_limit`](Self::decompression_limit), in place.
    pub(crate) fn set_decompression_limit(&mut self, bytes: usize) {
        self.limit = bytes;
        self.inflated = OnceLock::new();
    }

    /// Wraps bytes holding zero or more whole batches back to back.
    pub fn from_bytes(data: Bytes) -> Batches {
        Batches {
            data,
            path: None,
            position: 0,
            skip_before: 0,
            max_records: usize::MAX,
            limit: DEFAULT_DECOMPRESSION_LIMIT,
            inflated: OnceLock::new(),
            checked: None,
            first_record: None,
            first_header: None,
        }
    }

    /// Sets how far the records of one compressed batch may inflate.
    /// Default: [`DEFAULT_DECOMPRESSION_LIMIT`](crate::DEFAULT_DECOMPRESSION_LIMIT)
    /// for [`from_bytes`](Self::from_bytes), the log's `max_batch_bytes`
    /// (Kafka's `max.message.bytes`) for a log read.
    pub fn decompression_limit(mut self, bytes: usize) -> Batches {
        self.set_decompression_limit(bytes);
        self
    }

    /// The batches in `range` (byte positions within this run, on batch
    /// boundaries): zero-copy.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Batches {
        Batches {
            data: self.data.slice(range.clone()),
            path: self.path.clone(),
            position: self.position + range.start as u64,
            skip_before: self.skip_before,
            max_records: self.max_records,
            limit: self.limit,
            inflated: OnceLock::new(),
            checked: self.checked.clone(),
            first_record: self.first_record.filter(|_| range.start == 0),
            first_header: self.first_header.filter(|_| range.start == 0),
        }
    }

    /// The decompressed form of the compressed batch at byte `at` (whose
    /// header `h` the caller parsed and whose CRC it checked), made once:
    /// the first call lists where the run's compressed batches are, and each
    /// is decompressed when first asked for, then kept as long as these
    /// batches (the records borrowed from it live that long).
    fn inflated_at(&self, at: usize, h: &BatchHeader) -> std::result::Result<&[u8], CodecError> {
        let all = self.inflated.get_or_init(|| {
            let mut all = Vec::new();
            let mut pos = 0;
            while let Some(rest) = self.data.get(pos..)
                && let Ok(h) = BatchHeader::parse(rest)
                && rest.len() >= h.size()
            {
                if h.compression() != Compression::None {
                    all.push((pos, OnceLock::new()));
                }
                pos += h.size();
            }
            all
        });
        let Ok(i) = all.binary_search_by_key(&at, |(p, _)| *p) else {
            return Err(CodecError::Invalid(
                "batch changed while decompressing".into(),
            ));
        };
        all[i]
            .1
            .get_or_init(|| match self.data.get(at..at.saturating_add(h.size())) {
                Some(buf) => inflate(buf, h, self.limit),
                None => Err(CodecError::Invalid("batch runs past the end".into())),
            })
            .as_deref()
            .map_err(Clone::clone)
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
            limit: self.limit,
            checked: self.checked.clone(),
        }
    }

    /// Whether the CRC of the whole batch `buf` at byte `at` of this run
    /// holds: checked once per process for a log's batches (see
    /// [`CrcChecked`]), every time for bytes handed in.
    pub(super) fn crc_holds(&self, at: usize, buf: &[u8]) -> bool {
        crc_holds_once(self.checked.as_deref(), self.position + at as u64, buf)
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
            batches: self,
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
    pub(crate) headers: &'a [u8],
    pub(crate) header_count: usize,
}

impl<'a> RecordRef<'a> {
    /// A record whose `headers` bytes hold `header_count` validated headers.
    pub(crate) fn new(
        offset: Offset,
        timestamp: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: &'a [u8],
        header_count: usize,
    ) -> RecordRef<'a> {
        RecordRef {
            offset,
            timestamp,
            key,
            value,
            headers,
            header_count,
        }
    }

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
    batches: &'a Batches,
    pos: usize,
    /// The batch being decoded.
    batch: Option<RefBatch<'a>>,
    skip_before: Offset,
    remaining: usize,
}

/// The batch a [`RecordRefIter`] is decoding.
#[derive(Debug)]
struct RefBatch<'a> {
    header: BatchHeader,
    /// Its byte position in the run.
    start: usize,
    /// Its bytes (decompressed if it was compressed).
    buf: &'a [u8],
    /// The next record's position in `buf`.
    at: usize,
    /// Records decoded so far.
    index: i32,
    /// The last record's offset delta.
    prev: i64,
}

impl<'a> RecordRefIter<'a> {
    fn source(&self, at: usize) -> Source {
        Source {
            path: self.batches.path.clone(),
            position: self.batches.position + at as u64,
            limit: self.batches.limit,
            checked: None,
        }
    }

    fn fail(&mut self, at: usize, e: FormatError) -> Option<Result<RecordRef<'a>>> {
        self.remaining = 0;
        Some(Err(self.source(at).error(e)))
    }
}

impl<'a> Iterator for RecordRefIter<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Result<RecordRef<'a>>> {
        let batches: &'a Batches = self.batches;
        let data: &'a [u8] = &batches.data;
        while self.remaining > 0 {
            if let Some(b) = &mut self.batch {
                // The header by reference: copying it per record cost as
                // much as decoding a small record.
                let (start, buf) = (b.start, b.buf);
                let h = &b.header;
                if b.index >= h.record_count {
                    if b.at != buf.len() {
                        let a = b.at;
                        return self
                            .fail(start, FormatError::new(a, "bytes after the last record"));
                    }
                    self.batch = None;
                    continue;
                }
                let first = h.base_offset as u64;
                // Whether `b.at` was just moved to the record at the read's
                // offset (then it needs no check against that offset).
                let mut landed = false;
                if b.index == 0
                    && first < self.skip_before
                    && i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
                {
                    // No offset gaps: the record at the read's offset is
                    // the n-th; step over those before it by their lengths.
                    // (The batch ends past `skip_before`, or it would not
                    // have been opened, so n < record_count.)
                    let n = (self.skip_before - first) as usize;
                    let known = match batches.first_record {
                        Some((base, at, index))
                            if start == 0 && base == first && index as usize == n =>
                        {
                            Some(at)
                        }
                        _ => None,
                    };
                    match known.map_or_else(|| skip_records(buf, b.at, n), Ok) {
                        Ok(at) => {
                            b.at = at;
                            b.index = n as i32;
                            b.prev = n as i64 - 1;
                            landed = true;
                        }
                        Err(e) => return self.fail(start, e),
                    }
                }
                if first < self.skip_before && !landed {
                    // Before the offset the read started from (a random
                    // read lands inside a batch): step over the record
                    // without decoding it.
                    match skip_record(buf, b.at, h, b.prev) {
                        Ok((delta, end))
                            if h.base_offset as u64 + (delta as u64) < self.skip_before =>
                        {
                            b.prev = delta;
                            b.index += 1;
                            b.at = end;
                            continue;
                        }
                        Ok(_) => {}
                        Err(e) => return self.fail(start, e),
                    }
                }
                let raw = match next_record(buf, b.at, h, b.prev) {
                    Ok(r) => r,
                    Err(e) => return self.fail(start, e),
                };
                b.prev = raw.offset_delta;
                b.index += 1;
                b.at = raw.end;
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
            let known = batches.first_header.filter(|_| start == 0);
            let h = match known.map_or_else(|| BatchHeader::parse(rest), Ok) {
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
            if !batches.crc_holds(start, buf) {
                return self.fail(start, FormatError::new(CRC_OFFSET, "CRC-32C mismatch"));
            }
            if h.is_control() {
                // Transaction markers: not data.
                continue;
            }
            let buf = if h.compression() == Compression::None {
                buf
            } else {
                match batches.inflated_at(start, &h) {
                    Ok(b) => b,
                    Err(e) => {
                        self.remaining = 0;
                        return Some(Err(self.source(start).codec_error(e)));
                    }
                }
            };
            self.batch = Some(RefBatch {
                header: h,
                start,
                buf,
                at: BATCH_HEADER_SIZE,
                index: 0,
                prev: -1,
            });
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
    limit: usize,
    checked: Option<Arc<CrcChecked>>,
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
            limit: self.limit,
            checked: self.checked.clone(),
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
                    if let Err(e) = b.verify_once() {
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

/// Whether the CRC of the whole batch `buf` at byte `pos` of its segment
/// holds, computed unless `checked` says this process already checked it
/// (and recorded there when it holds).
pub(super) fn crc_holds_once(checked: Option<&CrcChecked>, pos: u64, buf: &[u8]) -> bool {
    match checked {
        Some(checked) => checked.holds(pos, buf),
        None => crc_matches(buf),
    }
}
