//! Encoding records into a batch: [`BatchParams`], the record encoder,
//! [`encode_batch`] and [`BatchBuilder`].

use super::header::{CONTROL_MASK, TIMESTAMP_TYPE_MASK, TRANSACTIONAL_MASK};
use super::{
    BATCH_HEADER_SIZE, BatchHeader, CRC_OFFSET, Compression, LOG_OVERHEAD, MAGIC, TimestampType,
    batch_crc,
};
use crate::error::{Error, Result};
use crate::record::varint;
use crate::record::{BorrowedRecord, HeaderParts, Record, RecordParts, ToRecord};

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

fn len_or_null(b: Option<&[u8]>) -> i64 {
    b.map_or(-1, |b| b.len() as i64)
}

/// Size of one record's body (everything after its length varint) but for
/// its two deltas: computed once per record, by whoever sizes it first.
pub(crate) fn fixed_body_size(r: &RecordParts<'_>) -> usize {
    let mut n = 1;
    for part in [r.key, r.value] {
        n += varint::size_i64(len_or_null(part)) + part.map_or(0, <[u8]>::len);
    }
    n + headers_size(&r.headers)
}

/// An upper bound of the bytes a record whose [`fixed_body_size`] is
/// `fixed` takes in a batch, whatever its deltas: deltas of at most 10
/// (timestamp) and 5 (offset) bytes, a length prefix of at most 5.
pub(crate) fn size_bound_of(fixed: usize) -> usize {
    fixed + 10 + 5 + 5
}

/// Writes one record whose [`fixed_body_size`] is `fixed`: the general
/// encoder, for callers that sized the record already ([`BatchBuilder`]).
fn put_record_sized(
    buf: &mut Vec<u8>,
    r: &RecordParts<'_>,
    fixed: usize,
    ts_delta: i64,
    offset_delta: i64,
) {
    let body = fixed + varint::size_i64(ts_delta) + varint::size_i64(offset_delta);
    buf.reserve(body + 5);
    varint::put_i64(buf, body as i64);
    buf.push(0); // record attributes: unused
    varint::put_i64(buf, ts_delta);
    varint::put_i64(buf, offset_delta);
    for part in [r.key, r.value] {
        varint::put_i64(buf, len_or_null(part));
        if let Some(p) = part {
            buf.extend_from_slice(p);
        }
    }
    put_headers(buf, &r.headers);
}

fn put_headers(buf: &mut Vec<u8>, headers: &HeaderParts<'_>) {
    varint::put_i64(buf, headers.count() as i64);
    match *headers {
        HeaderParts::Owned(headers) => {
            for h in headers {
                put_header(buf, &h.key, h.value.as_deref());
            }
        }
        HeaderParts::Borrowed(headers) => {
            for (k, v) in headers {
                put_header(buf, k.as_bytes(), *v);
            }
        }
        HeaderParts::Encoded { bytes, .. } => buf.extend_from_slice(bytes),
    }
}

/// Bytes a record's headers take: their count and each one.
fn headers_size(headers: &HeaderParts<'_>) -> usize {
    let mut n = varint::size_i64(headers.count() as i64);
    match *headers {
        HeaderParts::Owned(headers) => {
            for h in headers {
                n += varint::size_i64(h.key.len() as i64) + h.key.len();
                let v = h.value.as_deref();
                n += varint::size_i64(len_or_null(v)) + v.map_or(0, <[u8]>::len);
            }
        }
        HeaderParts::Borrowed(headers) => {
            for (k, v) in headers {
                n += varint::size_i64(k.len() as i64) + k.len();
                n += varint::size_i64(len_or_null(*v)) + v.map_or(0, <[u8]>::len);
            }
        }
        HeaderParts::Encoded { bytes, .. } => n += bytes.len(),
    }
    n
}

/// Where a record's fields start in [`put_record`]'s scratch: room for the
/// longest length varint (5 bytes) before it, written right-aligned.
const FIELDS_AT: usize = 5;

/// Writes `v` as a zig-zag varint at `scratch[at..]`, returning the end.
/// The caller leaves room: at most 10 bytes.
#[inline(always)]
fn put_varint_at(scratch: &mut [u8; 64], at: usize, v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut at = at;
    while z >= 0x80 {
        scratch[at] = (z as u8) | 0x80;
        z >>= 7;
        at += 1;
    }
    scratch[at] = z as u8;
    at + 1
}

/// Appends `scratch[from..to]`: short runs as one fixed 16-byte copy cut
/// back to size (no `memcpy` call for a handful of bytes).
#[inline(always)]
fn put_scratch(buf: &mut Vec<u8>, scratch: &[u8; 64], from: usize, to: usize) {
    if to - from <= 16 && from <= 48 {
        let len = buf.len();
        buf.extend_from_slice(&scratch[from..from + 16]);
        buf.truncate(len + (to - from));
    } else {
        buf.extend_from_slice(&scratch[from..to]);
    }
}

/// Writes one record in one pass: the varints before the key and before
/// the value go into a stack scratch first, whose length gives the
/// record's (no separate sizing pass); each run is then one copy. Writes
/// exactly the bytes [`put_record_sized`] writes (tested against it).
fn put_record(buf: &mut Vec<u8>, r: &RecordParts<'_>, ts_delta: i64, offset_delta: i64) {
    let key = r.key.unwrap_or_default();
    let value = r.value.unwrap_or_default();
    // Attributes (one byte, 0: unused), the two deltas and the two
    // lengths: at most 1 + 4 * 10 bytes after FIELDS_AT.
    let mut scratch = [0u8; 64];
    let mut at = put_varint_at(&mut scratch, FIELDS_AT + 1, ts_delta);
    at = put_varint_at(&mut scratch, at, offset_delta);
    at = put_varint_at(&mut scratch, at, len_or_null(r.key));
    let key_at = at;
    at = put_varint_at(&mut scratch, at, len_or_null(r.value));
    let no_headers = r.headers.count() == 0;
    let headers = if no_headers {
        1
    } else {
        headers_size(&r.headers)
    };
    let body = (at - FIELDS_AT) + key.len() + value.len() + headers;
    // The length varint, ending where the fields start.
    let Some(start) = FIELDS_AT.checked_sub(varint::size_i64(body as i64)) else {
        // A record of 16 GiB or more: longer than any batch may be (the
        // caller's size check refuses it); encoded the general way.
        let fixed = fixed_body_size(r);
        return put_record_sized(buf, r, fixed, ts_delta, offset_delta);
    };
    put_varint_at(&mut scratch, start, body as i64);
    buf.reserve(FIELDS_AT - start + body + 16);
    if key.is_empty() {
        put_scratch(buf, &scratch, start, at);
    } else {
        put_scratch(buf, &scratch, start, key_at);
        buf.extend_from_slice(key);
        put_scratch(buf, &scratch, key_at, at);
    }
    buf.extend_from_slice(value);
    if no_headers {
        buf.push(0);
    } else {
        put_headers(buf, &r.headers);
    }
}

fn put_header(buf: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    varint::put_i64(buf, key.len() as i64);
    buf.extend_from_slice(key);
    varint::put_i64(buf, len_or_null(value));
    if let Some(v) = value {
        buf.extend_from_slice(v);
    }
}

/// The batch's time for records without a timestamp of their own
/// ([`Record::NO_TIMESTAMP`]): the wall clock, read once per batch and only
/// if a record needs it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchTime(Option<i64>);

impl BatchTime {
    /// The timestamp `ts` is stored with.
    fn of(&mut self, ts: i64) -> i64 {
        if ts == Record::NO_TIMESTAMP {
            *self.0.get_or_insert_with(crate::record::now_ms)
        } else {
            ts
        }
    }

    /// The time records without their own got, if one did.
    pub(crate) fn get(self) -> Option<i64> {
        self.0
    }
}

/// Fills in the header of the batch in `buf` (its records written) and
/// returns its CRC.
fn write_header(buf: &mut [u8], p: &BatchParams, count: i32, base_ts: i64, max_ts: i64) -> u32 {
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
    crc
}

/// Encodes `records` as one batch, appending to `buf` (which is cleared
/// first). Returns the header it wrote, as [`BatchHeader::parse`] would
/// read it back (the append path takes it instead of parsing).
///
/// # Errors
/// `InvalidArgument` for an empty slice, more than `i32::MAX` records, or a
/// batch longer than `i32::MAX` bytes.
pub(crate) fn encode_batch<R: ToRecord>(
    buf: &mut Vec<u8>,
    p: &BatchParams,
    records: &[R],
) -> Result<BatchHeader> {
    let Some(first) = records.first() else {
        return Err(Error::InvalidArgument(
            "a batch needs at least one record".into(),
        ));
    };
    let count = i32::try_from(records.len())
        .map_err(|_| Error::InvalidArgument("more than i32::MAX records in one batch".into()))?;
    buf.clear();
    buf.resize(BATCH_HEADER_SIZE, 0);
    let mut time = BatchTime::default();
    let base_ts = time.of(first.parts().timestamp);
    let mut max_ts = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        let r = r.parts();
        let ts = time.of(r.timestamp);
        max_ts = max_ts.max(ts);
        put_record(buf, &r, ts.wrapping_sub(base_ts), i as i64);
    }
    if buf.len() - LOG_OVERHEAD > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "batch of {} bytes exceeds the format's 2 GiB limit",
            buf.len()
        )));
    }
    let crc = write_header(buf, p, count, base_ts, max_ts);
    Ok(BatchHeader {
        base_offset: p.base_offset,
        batch_length: (buf.len() - LOG_OVERHEAD) as i32,
        partition_leader_epoch: p.partition_leader_epoch,
        magic: MAGIC,
        crc,
        attributes: p.attributes,
        last_offset_delta: count - 1,
        base_timestamp: base_ts,
        max_timestamp: max_ts,
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        base_sequence: p.base_sequence,
        record_count: count,
    })
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
    compression: Compression,
    buf: Vec<u8>,
    count: i32,
    base_ts: i64,
    max_ts: i64,
    time: BatchTime,
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
            compression: Compression::None,
            buf: vec![0; BATCH_HEADER_SIZE],
            count: 0,
            base_ts: 0,
            max_ts: i64::MIN,
            time: BatchTime::default(),
        }
    }

    /// Empties the builder for the next batch, keeping its buffer's
    /// capacity and its settings (a producer reuses one per partition).
    pub(crate) fn reset(&mut self) {
        self.buf.truncate(BATCH_HEADER_SIZE);
        self.count = 0;
        self.base_ts = 0;
        self.max_ts = i64::MIN;
        self.time = BatchTime::default();
        self.params = BatchParams::default();
        self.compression = Compression::None;
    }

    /// Gives back buffer memory past `bytes` once the buffer holds more
    /// than four times that (a batch grown by one huge record does not
    /// keep its size for every later batch).
    pub(crate) fn trim_capacity(&mut self, bytes: usize) {
        if self.buf.capacity() / 4 > bytes {
            self.buf.shrink_to(bytes);
        }
    }

    /// Reserves room for a batch of `bytes` in all.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.buf.reserve(bytes.saturating_sub(self.buf.len()));
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

    /// Marks the batch as part of a transaction (attribute bit 4), as a
    /// transactional producer's batches are. Default: not.
    pub fn transactional(mut self, yes: bool) -> Self {
        if yes {
            self.params.attributes |= TRANSACTIONAL_MASK;
        } else {
            self.params.attributes &= !TRANSACTIONAL_MASK;
        }
        self
    }

    /// Sets the producer id, epoch and first sequence number of a batch
    /// being built (as [`producer`](Self::producer), in place).
    pub(crate) fn set_producer(&mut self, id: i64, epoch: i16, base_sequence: i32) {
        self.params.producer_id = id;
        self.params.producer_epoch = epoch;
        self.params.base_sequence = base_sequence;
    }

    /// Marks the batch being built as transactional or not (in place).
    pub(crate) fn set_transactional(&mut self, yes: bool) {
        if yes {
            self.params.attributes |= TRANSACTIONAL_MASK;
        } else {
            self.params.attributes &= !TRANSACTIONAL_MASK;
        }
    }

    /// Compresses the batch's records with `codec` when it is finished, in
    /// the bytes Kafka's clients write. Default: [`Compression::None`].
    ///
    /// ```
    /// # #[cfg(feature = "zstd")] {
    /// use embedlog::{Batch, BatchBuilder, Compression, Record};
    /// let mut b = BatchBuilder::new().compression(Compression::Zstd);
    /// b.push(&Record::new("a fairly repetitive value, a fairly repetitive value"));
    /// let batch = Batch::new(b.finish()?.into())?;
    /// assert_eq!(batch.header().compression(), Compression::Zstd);
    /// assert_eq!(batch.records()?.count(), 1);
    /// # }
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Sets the codec of a batch being built (as
    /// [`compression`](Self::compression), in place).
    pub(crate) fn set_compression(&mut self, codec: Compression) {
        self.compression = codec;
    }

    /// Marks the batch's timestamps as log-append time. Default: create time.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        match t {
            TimestampType::CreateTime => self.params.attributes &= !TIMESTAMP_TYPE_MASK,
            TimestampType::LogAppendTime => self.params.attributes |= TIMESTAMP_TYPE_MASK,
        }
        self
    }

    /// Appends a record with the next offset delta. A record without a
    /// timestamp ([`Record::NO_TIMESTAMP`]) gets the batch's: the clock read
    /// at the first such record.
    pub fn push(&mut self, record: &(impl ToRecord + ?Sized)) {
        let parts = record.parts();
        self.push_parts(&parts, fixed_body_size(&parts));
    }

    /// [`push`](Self::push) of a record whose [`fixed_body_size`] the
    /// caller computed already.
    pub(crate) fn push_parts(&mut self, record: &RecordParts<'_>, fixed: usize) {
        let ts = self.time.of(record.timestamp);
        if self.count == 0 {
            self.base_ts = ts;
        }
        self.max_ts = self.max_ts.max(ts);
        put_record_sized(
            &mut self.buf,
            record,
            fixed,
            ts.wrapping_sub(self.base_ts),
            i64::from(self.count),
        );
        self.count += 1;
    }

    /// The time given to records pushed without a timestamp, if any was.
    pub(crate) fn batch_time(&self) -> Option<i64> {
        self.time.get()
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

    /// Fills in the header and CRC (compressing the records if
    /// [`compression`](Self::compression) says so) and returns the encoded
    /// batch.
    ///
    /// # Errors
    /// `InvalidArgument` if the batch is empty or longer than the format's
    /// `i32::MAX` bytes; [`Error::Unsupported`] for a codec whose cargo
    /// feature is off.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        match self.seal()? {
            Some(compressed) => Ok(compressed),
            None => Ok(self.buf),
        }
    }

    /// [`finish`](Self::finish) in place: fills in the header and CRC of
    /// the batch in the builder's buffer ([`bytes_mut`](Self::bytes_mut)),
    /// or returns the compressed batch when a codec is set.
    pub(crate) fn seal(&mut self) -> Result<Option<Vec<u8>>> {
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
        if self.compression != Compression::None {
            return super::deflate(&self.buf, self.compression).map(Some);
        }
        Ok(None)
    }

    /// The batch's bytes, sealed by [`seal`](Self::seal).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// Encodes a transaction marker into `buf` (cleared first): a control batch
/// (attributes transactional and control) of producer `producer_id` at
/// `epoch`, holding one control record whose key is version 0 and the
/// type (0 ABORT, 1 COMMIT) and whose value is version 0 and the
/// coordinator epoch, as Kafka's `EndTransactionMarker`.
pub(crate) fn encode_marker(
    buf: &mut Vec<u8>,
    base_offset: i64,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) {
    let mut key = [0u8; 4];
    key[2..4].copy_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..6].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let record = BorrowedRecord::new(&value).key(&key).timestamp(timestamp);
    let params = BatchParams {
        base_offset,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
        attributes: CONTROL_MASK | TRANSACTIONAL_MASK,
    };
    // One small record: cannot fail.
    let _ = encode_batch(buf, &params, std::slice::from_ref(&record));
}

#[cfg(test)]
mod tests {
    //! The one-pass record encoder (`put_record`, what `Log::append`
    //! encodes with) against the general one (`put_record_sized`, what
    //! `BatchBuilder` encodes with): the same bytes for any record.
    use super::*;
    use crate::record::{BatchHeader, BorrowedRecord, Header};
    use proptest::prelude::*;

    fn bytes(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            Just(Some(Vec::new())),
            prop::collection::vec(any::<u8>(), 0..max).prop_map(Some),
            // Lengths whose varints take 2 and 3 bytes.
            (60usize..70).prop_map(|n| Some(vec![7; n])),
            (8180usize..8200).prop_map(|n| Some(vec![9; n])),
        ]
    }

    fn delta() -> impl Strategy<Value = i64> {
        prop_oneof![
            -3i64..3,
            -200i64..200,
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX)
        ]
    }

    /// A record's headers, borrowed.
    type Borrowed<'a> = Vec<(&'a str, Option<&'a [u8]>)>;

    fn headers() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
        prop::collection::vec(("[a-z]{0,70}", bytes(80)), 0..4)
    }

    /// Both encoders' bytes for `r`, appended after `prefix` bytes.
    fn both(r: &RecordParts<'_>, ts: i64, od: i64, prefix: usize) -> (Vec<u8>, Vec<u8>) {
        let mut fast = vec![1; prefix];
        put_record(&mut fast, r, ts, od);
        let mut general = vec![1; prefix];
        put_record_sized(&mut general, r, fixed_body_size(r), ts, od);
        (fast, general)
    }

    proptest! {
        #[test]
        fn the_one_pass_encoder_writes_the_general_encoders_bytes(
            key in bytes(300),
            value in bytes(3000),
            hs in headers(),
            ts in delta(),
            od in prop_oneof![0i64..100, 0i64..=i64::from(i32::MAX)],
            prefix in 0usize..40,
        ) {
            // Owned headers (`Record`).
            let owned: Vec<Header> = hs
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => Header::new(k.clone(), v.clone()),
                    None => Header::null(k.clone()),
                })
                .collect();
            let r = RecordParts {
                key: key.as_deref(),
                value: value.as_deref(),
                timestamp: 0,
                headers: HeaderParts::Owned(&owned),
            };
            let (fast, general) = both(&r, ts, od, prefix);
            prop_assert_eq!(fast, general);
            // Borrowed headers (`BorrowedRecord`).
            let borrowed: Borrowed<'_> =
                hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let r = RecordParts {
                headers: HeaderParts::Borrowed(&borrowed),
                ..r
            };
            let (fast, general) = both(&r, ts, od, prefix);
            prop_assert_eq!(fast, general);
            // Headers already encoded (a record read from a log).
            let mut encoded = Vec::new();
            for (k, v) in &borrowed {
                put_header(&mut encoded, k.as_bytes(), *v);
            }
            let r = RecordParts {
                headers: HeaderParts::Encoded { bytes: &encoded, count: hs.len() },
                ..r
            };
            let (fast, general) = both(&r, ts, od, prefix);
            prop_assert_eq!(fast, general);
        }

        #[test]
        fn encode_batch_writes_what_the_builder_writes_and_returns_its_header(
            records in prop::collection::vec(
                (bytes(40), bytes(400), headers(), -1000i64..1000),
                1..20,
            ),
            base in 0i64..i64::from(i32::MAX),
        ) {
            let hs: Vec<Borrowed<'_>> = records
                .iter()
                .map(|(_, _, h, _)| h.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
                .collect();
            let borrowed: Vec<BorrowedRecord<'_>> = records
                .iter()
                .zip(&hs)
                .map(|((k, v, _, ts), h)| BorrowedRecord {
                    key: k.as_deref(),
                    value: v.as_deref(),
                    timestamp: 1_700_000_000_000 + ts,
                    headers: h,
                })
                .collect();
            let p = BatchParams { base_offset: base, ..BatchParams::default() };
            let mut buf = Vec::new();
            let h = encode_batch(&mut buf, &p, &borrowed).unwrap();
            let mut b = BatchBuilder::new().base_offset(base);
            for r in &borrowed {
                b.push(r);
            }
            prop_assert_eq!(&buf, &b.finish().unwrap());
            prop_assert_eq!(BatchHeader::parse(&buf).unwrap(), h);
            prop_assert!(crate::record::crc_matches(&buf));
        }
    }
}
