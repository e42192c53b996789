//! [`ConsumerRecord`]: an owned record that costs one reference count.

use crate::record::{Header, Offset, RecordRef, RecordSpan, headers_of};
use bytes::Bytes;
use std::sync::Arc;

/// A record as a consumer receives it. Its key, value and headers stay in
/// the batch it was read from (the partition's memory map, or the batch's
/// decompressed records): no payload was copied, and holding the record
/// costs one reference count on what all the records of its batch share.
///
/// Read the payload borrowed with [`key`](Self::key) and
/// [`value`](Self::value), or as shared [`Bytes`] with
/// [`key_bytes`](Self::key_bytes) and [`value_bytes`](Self::value_bytes).
#[derive(Clone)]
pub struct ConsumerRecord {
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    batch: Arc<Shared>,
    span: Span,
}

/// What the records of one fetched batch share.
#[derive(Debug)]
pub(crate) struct Shared {
    topic: Arc<str>,
    /// The batch's bytes, or its decompressed records.
    data: Bytes,
}

impl Shared {
    pub(crate) fn new(topic: Arc<str>, data: Bytes) -> Arc<Shared> {
        Arc::new(Shared { topic, data })
    }
}

/// Where a record's parts are in [`Shared::data`].
#[derive(Clone, Copy)]
struct Span {
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    headers: (usize, usize),
    header_count: usize,
}

impl ConsumerRecord {
    /// The record `span` (decoded from `batch`'s data) of `partition`.
    pub(crate) fn new(batch: &Arc<Shared>, partition: u32, span: RecordSpan) -> ConsumerRecord {
        ConsumerRecord {
            partition,
            offset: span.offset,
            timestamp: span.timestamp,
            batch: Arc::clone(batch),
            span: Span {
                key: span.key,
                value: span.value,
                headers: span.headers,
                header_count: span.header_count,
            },
        }
    }

    /// `record` as a consumer would receive it at `offset` of `topic`'s
    /// `partition` (tests of code that takes consumer records).
    #[cfg(all(test, feature = "connect"))]
    pub(crate) fn of(topic: &str, partition: u32, offset: Offset, record: &crate::Record) -> Self {
        let mut buf = Vec::new();
        let p = crate::record::BatchParams {
            base_offset: offset as i64,
            ..Default::default()
        };
        crate::record::encode_batch(&mut buf, &p, std::slice::from_ref(record)).unwrap();
        let batch = crate::record::Batch::new(buf.into()).unwrap();
        let mut records = batch.records().unwrap();
        let span = records.next_span().unwrap().unwrap();
        ConsumerRecord::new(
            &Shared::new(topic.into(), records.buffer().clone()),
            partition,
            span,
        )
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.batch.topic
    }

    /// The topic, shared.
    pub fn topic_arc(&self) -> &Arc<str> {
        &self.batch.topic
    }

    /// The key.
    pub fn key(&self) -> Option<&[u8]> {
        self.span.key.map(|(a, b)| &self.batch.data[a..b])
    }

    /// The value; `None` is a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.span.value.map(|(a, b)| &self.batch.data[a..b])
    }

    /// The key as [`Bytes`] sharing the batch (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.span.key.map(|(a, b)| self.batch.data.slice(a..b))
    }

    /// The value as [`Bytes`] sharing the batch (no copy); `None` is a
    /// tombstone.
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.span.value.map(|(a, b)| self.batch.data.slice(a..b))
    }

    /// The headers, in order, as [`Header`]s sharing the batch (no copy;
    /// the list itself is allocated). [`as_record_ref`](Self::as_record_ref)
    /// iterates them without allocating.
    pub fn headers(&self) -> Vec<Header> {
        if self.span.header_count == 0 {
            return Vec::new();
        }
        // Validated when the record was decoded, from bytes that cannot
        // change since: `None` cannot happen.
        headers_of(&self.batch.data, self.span.headers, self.span.header_count).unwrap_or_default()
    }

    /// The record borrowed, as [`Batches::records_ref`](crate::Batches::records_ref)
    /// yields them: key, value and headers without any allocation.
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        let (a, b) = self.span.headers;
        RecordRef::new(
            self.offset,
            self.timestamp,
            self.key(),
            self.value(),
            &self.batch.data[a..b],
            self.span.header_count,
        )
    }
}

impl std::fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic())
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key().map(Bytes::copy_from_slice))
            .field("value", &self.value().map(Bytes::copy_from_slice))
            .field("headers", &self.headers())
            .finish()
    }
}

impl PartialEq for ConsumerRecord {
    fn eq(&self, other: &Self) -> bool {
        self.topic() == other.topic()
            && self.partition == other.partition
            && self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.headers() == other.headers()
    }
}

impl Eq for ConsumerRecord {}

#[cfg(test)]
mod tests {
    use crate::{Broker, ConsumerConfig, Header, OffsetReset, ProducerConfig, Record, TopicConfig};
    use std::time::Duration;

    /// Records of one-record batches, many to a read, then of bigger
    /// batches: each record's parts are cut from the bytes its batch
    /// shares with the others of its read.
    #[test]
    fn records_of_one_read_share_its_bytes_and_keep_their_own_parts() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .admin()
            .create_topic("t", TopicConfig::default())
            .unwrap();
        let producer = broker.producer(ProducerConfig::default());
        let record = |i: usize| {
            let r = Record::new(format!("value-{i}"))
                .key(format!("k{i}"))
                .timestamp(i as i64);
            if i.is_multiple_of(3) {
                r.header("h", format!("x{i}"))
            } else {
                r
            }
        };
        for i in 0..40 {
            producer.send("t", record(i)).unwrap();
            if i < 20 {
                producer.flush().unwrap(); // a batch per record
            }
        }
        producer.flush().unwrap();
        let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
        c.assign([("t", 0)]).unwrap();
        let mut got = Vec::new();
        while got.len() < 40 {
            let polled = c.poll(Duration::from_secs(5)).unwrap();
            assert!(!polled.is_empty());
            got.extend(polled);
        }
        for (i, r) in got.iter().enumerate() {
            let want = record(i);
            assert_eq!((r.topic(), r.partition, r.offset), ("t", 0, i as u64));
            assert_eq!(r.timestamp, i as i64);
            assert_eq!(r.key_bytes(), want.key);
            assert_eq!(r.value(), want.value.as_deref());
            assert_eq!(r.headers(), want.headers);
            let b = r.as_record_ref();
            let headers: Vec<_> = b.headers().map(|h| h.unwrap()).collect();
            let want_headers: Vec<_> = want
                .headers
                .iter()
                .map(|h: &Header| (h.key(), h.value().map(|v| &v[..])))
                .collect();
            assert_eq!(headers, want_headers);
        }
        drop(c);
        drop(producer);
        broker.close().unwrap();
    }
}
