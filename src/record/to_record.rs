//! What producers send and logs append: [`ToRecord`], implemented by the
//! owned [`Record`], the borrowed [`BorrowedRecord`] and a [`RecordRef`]
//! read from a log. Each is encoded straight from its bytes into the batch
//! being built: sending a borrowed record allocates nothing.

use super::{Header, Record, RecordRef};

/// A record to encode: what [`Producer::send`](crate::Producer::send),
/// [`Log::append`](crate::Log::append) and
/// [`BatchBuilder::push`](crate::BatchBuilder::push) accept.
///
/// Implemented for [`Record`] (owned `Bytes`), [`BorrowedRecord`]
/// (`&[u8]` slices: nothing to allocate or copy before the send), a
/// [`RecordRef`] read from a log (copied to another topic as it is, headers
/// included, without decoding them), and references to each. The trait is
/// sealed: the encoder relies on what these types promise.
///
/// ```
/// use embedlog::{BorrowedRecord, Log, LogConfig, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// let payload: &[u8] = b"no copy before the append";
/// log.append(&[BorrowedRecord::new(payload).key(b"k")])?;
/// log.append(&[Record::new("owned")])?;
/// assert_eq!(log.end_offset(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ToRecord: sealed::Parts {}

impl<T: ToRecord + ?Sized> ToRecord for &T {}
impl<T: sealed::Parts + ?Sized> sealed::Parts for &T {
    fn parts(&self) -> RecordParts<'_> {
        (**self).parts()
    }
}

pub(crate) mod sealed {
    /// The fields the encoder reads (a private supertrait: `ToRecord`
    /// cannot be implemented outside the crate).
    pub trait Parts {
        fn parts(&self) -> super::RecordParts<'_>;
    }
}

/// A record's fields as the encoder sees them.
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) timestamp: i64,
    pub(crate) headers: HeaderParts<'a>,
}

/// The headers of a record to encode, in whichever form its type keeps
/// them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HeaderParts<'a> {
    Owned(&'a [Header]),
    Borrowed(&'a [(&'a str, Option<&'a [u8]>)]),
    /// Already in the batch format (a record read from a log): `count`
    /// headers, encoded.
    Encoded {
        bytes: &'a [u8],
        count: usize,
    },
}

impl HeaderParts<'_> {
    pub(crate) fn count(&self) -> usize {
        match self {
            HeaderParts::Owned(h) => h.len(),
            HeaderParts::Borrowed(h) => h.len(),
            HeaderParts::Encoded { count, .. } => *count,
        }
    }
}

impl sealed::Parts for Record {
    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            timestamp: self.timestamp,
            headers: HeaderParts::Owned(&self.headers),
        }
    }
}
impl ToRecord for Record {}

impl sealed::Parts for RecordRef<'_> {
    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            key: self.key,
            value: self.value,
            timestamp: self.timestamp,
            headers: HeaderParts::Encoded {
                bytes: self.headers,
                count: self.header_count,
            },
        }
    }
}
impl ToRecord for RecordRef<'_> {}

/// A record whose key, value and headers borrow the caller's bytes: a send
/// or an append encodes them straight into the batch, with no allocation
/// and no copy before it.
///
/// Without [`timestamp`](Self::timestamp) it is stamped with its batch's
/// time when the batch is built, as [`Record::new`] is.
///
/// ```
/// use embedlog::{BorrowedRecord, Broker, ProducerConfig, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("clicks", TopicConfig::default())?;
/// let producer = broker.producer(ProducerConfig::default());
/// let (user, page) = (b"user-7".to_vec(), b"/home".to_vec());
/// let headers = [("source", Some(&b"web"[..]))];
/// producer.send("clicks", BorrowedRecord::new(&page).key(&user).headers(&headers))?;
/// producer.flush()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorrowedRecord<'a> {
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the Unix epoch, or [`Record::NO_TIMESTAMP`] (the
    /// batch's time).
    pub timestamp: i64,
    /// Headers as `(name, value)` pairs, in order; names may repeat.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> BorrowedRecord<'a> {
    /// A record with a value, no key, no headers, stamped with its batch's
    /// time.
    pub fn new(value: &'a [u8]) -> Self {
        BorrowedRecord {
            key: None,
            value: Some(value),
            timestamp: Record::NO_TIMESTAMP,
            headers: &[],
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(key: &'a [u8]) -> Self {
        BorrowedRecord {
            key: Some(key),
            value: None,
            timestamp: Record::NO_TIMESTAMP,
            headers: &[],
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the headers.
    pub fn headers(mut self, headers: &'a [(&'a str, Option<&'a [u8]>)]) -> Self {
        self.headers = headers;
        self
    }

    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.map(bytes::Bytes::copy_from_slice),
            value: self.value.map(bytes::Bytes::copy_from_slice),
            timestamp: self.timestamp,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| Header {
                    key: bytes::Bytes::copy_from_slice(k.as_bytes()),
                    value: v.map(bytes::Bytes::copy_from_slice),
                })
                .collect(),
        }
    }
}

impl sealed::Parts for BorrowedRecord<'_> {
    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            key: self.key,
            value: self.value,
            timestamp: self.timestamp,
            headers: HeaderParts::Borrowed(self.headers),
        }
    }
}
impl ToRecord for BorrowedRecord<'_> {}
