//! Records, headers and the on-disk record batch format.

mod batch;
mod to_record;
pub(crate) mod varint;

#[cfg(feature = "streams")]
pub(crate) use to_record::sealed;
pub use to_record::{BorrowedRecord, ToRecord};
pub(crate) use to_record::{HeaderParts, RecordParts};

pub use batch::{
    BATCH_HEADER_SIZE, Batch, BatchBuilder, BatchHeader, BatchIter, BatchRecords, Batches,
    Compression, ControlRecord, ControlType, DEFAULT_DECOMPRESSION_LIMIT, RecordIter, RecordRef,
    RecordRefIter, TimestampType,
};
pub(crate) use batch::{
    BatchParams, CodecError, CrcChecked, FormatError, LOG_OVERHEAD, RecordSpan, ValidateError,
    batch_crc, crc_matches, deflate, encode_batch, encode_marker, extend_batch, filter_batch,
    fixed_body_size, headers_of, inflate, seal_batch, size_bound_of, skip_records,
    validate_records,
};

use bytes::Bytes;
#[cfg(not(target_os = "linux"))]
use std::time::{SystemTime, UNIX_EPOCH};

/// A message offset within one partition: the first record gets 0, each
/// later record the next integer. Compaction may leave gaps.
pub type Offset = u64;

/// Milliseconds since the Unix epoch, as Kafka stores timestamps.
#[cfg(not(target_os = "linux"))]
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock set before 1970: Kafka has no meaning for it; use 0.
        Err(_) => 0,
    }
}

/// Milliseconds since the Unix epoch, as Kafka stores timestamps.
///
/// On Linux a `clock_gettime(CLOCK_REALTIME)` read turned into
/// milliseconds directly (the same time `SystemTime::now` reads, without
/// its `Duration` and 128-bit arithmetic: every append of records without
/// a timestamp reads it).
#[cfg(target_os = "linux")]
#[allow(clippy::useless_conversion)] // `tv_nsec` is an i32 on 32-bit targets
pub fn now_ms() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    if t.tv_sec < 0 {
        // A clock set before 1970: Kafka has no meaning for it; use 0.
        return 0;
    }
    t.tv_sec
        .saturating_mul(1000)
        .saturating_add(i64::from(t.tv_nsec) / 1_000_000)
}

/// One header of a record: a UTF-8 name and an optional byte value.
///
/// Kafka allows a null header value; `value()` returns `None` for it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Header {
    // Invariant: `key` holds valid UTF-8. `Header::new` takes it from a
    // `String`/`&str`; the decoder validates it before building a `Header`.
    key: Bytes,
    value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    ///
    /// ```
    /// let h = embedlog::Header::new("trace-id", "abc");
    /// assert_eq!(h.key(), "trace-id");
    /// assert_eq!(h.value().map(|v| &v[..]), Some(&b"abc"[..]));
    /// ```
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: Bytes::from(key.into()),
            value: Some(value.into()),
        }
    }

    /// A header whose value is null (Kafka's `null`, distinct from empty).
    pub fn null(key: impl Into<String>) -> Self {
        Header {
            key: Bytes::from(key.into()),
            value: None,
        }
    }

    /// Builds a header from already validated parts.
    pub(crate) fn from_validated(key: Bytes, value: Option<Bytes>) -> Self {
        debug_assert!(std::str::from_utf8(&key).is_ok());
        Header { key, value }
    }

    /// The header's name.
    pub fn key(&self) -> &str {
        // The invariant on `key` makes the error branch unreachable; an empty
        // string is returned rather than panicking should it ever be broken.
        std::str::from_utf8(&self.key).unwrap_or_default()
    }

    /// The header's name as bytes.
    pub fn key_bytes(&self) -> &Bytes {
        &self.key
    }

    /// The header's value, `None` if it is null.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("key", &self.key())
            .field("value", &self.value)
            .finish()
    }
}

/// An event: optional key, optional value (`None` is a tombstone), a
/// timestamp in milliseconds since the epoch, and headers.
///
/// A record made by [`new`](Self::new) or [`tombstone`](Self::tombstone)
/// has no timestamp of its own ([`NO_TIMESTAMP`](Self::NO_TIMESTAMP)): it
/// gets its batch's, read from the clock once per batch when the producer
/// or the log builds it (Kafka's producer stamps such a record at `send`).
/// To send without copying the payload, see [`BorrowedRecord`].
///
/// ```
/// use embedlog::Record;
/// let r = Record::new("hello").key("user-1").timestamp(1_700_000_000_000).header("source", "web");
/// assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
/// assert_eq!(r.headers[0].key(), "source");
/// let tombstone = Record::tombstone("user-1");
/// assert!(tombstone.value.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key; records with equal keys go to the same partition and
    /// compaction keeps the latest value per key.
    pub key: Option<Bytes>,
    /// The value; `None` marks a tombstone (a delete, for compaction).
    pub value: Option<Bytes>,
    /// Milliseconds since the Unix epoch, or
    /// [`NO_TIMESTAMP`](Self::NO_TIMESTAMP): the time its batch is built.
    pub timestamp: i64,
    /// Headers, in order; names may repeat.
    pub headers: Vec<Header>,
}

impl Record {
    /// The timestamp of a record that has none of its own (Kafka's
    /// `RecordBatch.NO_TIMESTAMP`): it is stored with its batch's time,
    /// the wall clock read once when the batch is built.
    pub const NO_TIMESTAMP: i64 = -1;

    /// A record with a value, no key, no headers, stamped with its batch's
    /// time.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            key: None,
            value: Some(value.into()),
            timestamp: Self::NO_TIMESTAMP,
            headers: Vec::new(),
        }
    }

    /// A tombstone (null value) for `key`, stamped with its batch's time.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            value: None,
            timestamp: Self::NO_TIMESTAMP,
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// A record read back from a log or a batch, with its offset.
///
/// `key`, `value` and header values are `Bytes` that share the memory of
/// the batch they were decoded from (for a log, its memory map): decoding
/// copies no payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's offset in its partition.
    pub offset: Offset,
    /// Milliseconds since the Unix epoch (the batch's time for log-append
    /// time batches).
    pub timestamp: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<Header>,
}

impl StoredRecord {
    /// The record without its offset (to write it elsewhere).
    pub fn into_record(self) -> Record {
        Record {
            key: self.key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}
