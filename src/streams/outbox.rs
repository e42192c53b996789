//! A task's outbox: the records it produced and has not handed over yet
//! (outputs, repartitioned records, changelog writes), their keys and
//! values serialized into one reused buffer. A stream thread sends them
//! borrowed from it, so a record costs no allocation and no reference
//! count between its serde and the producer's batch.

use super::serde::Serde;
use crate::record::{HeaderParts, RecordParts, ToRecord, sealed};
use crate::{Header, Result};
use bytes::{Bytes, BytesMut};
use std::ops::Range;
use std::sync::Arc;

/// A record a task sends, owned (what the test driver routes, where
/// every topic has one partition). Topics are resolved names.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) topic: Arc<str>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Vec<Header>,
}

/// The most bytes an emptied outbox keeps of its buffers.
const SHRINK_ABOVE: usize = 1 << 20;

/// One record in the outbox: where its key and value are in the buffer.
#[derive(Debug)]
struct Entry {
    /// Its place in [`Outbox::topics`].
    topic: usize,
    partition: Option<u32>,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    timestamp: i64,
    headers: Vec<Header>,
}

/// The records a task has yet to send, in the order it produced them.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: Vec<Entry>,
    bytes: BytesMut,
    /// The topics records went to (few: a task's sinks and changelogs),
    /// so that a record costs no reference count of its topic's name.
    topics: Vec<Arc<str>>,
}

/// A record of the outbox, borrowed, as the producer takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutRecord<'a> {
    pub(crate) topic: &'a Arc<str>,
    pub(crate) partition: Option<u32>,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: i64,
    headers: &'a [Header],
}

impl sealed::Parts for OutRecord<'_> {
    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            key: self.key,
            value: self.value,
            timestamp: self.timestamp,
            headers: HeaderParts::Owned(self.headers),
        }
    }
}
impl ToRecord for OutRecord<'_> {}

impl Outbox {
    /// `topic`'s place in `topics`, added if new.
    fn topic(&mut self, topic: &Arc<str>) -> usize {
        let found = self
            .topics
            .iter()
            .position(|t| Arc::ptr_eq(t, topic) || **t == **topic);
        found.unwrap_or_else(|| {
            self.topics.push(topic.clone());
            self.topics.len() - 1
        })
    }

    /// Whether it holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `key` and `value` serialized by their serdes (a serde's
    /// `false` is a null). Nothing is added if either fails.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_encoded<K: 'static, V: 'static>(
        &mut self,
        topic: &Arc<str>,
        partition: Option<u32>,
        keys: &dyn Serde<K>,
        key: &K,
        values: &dyn Serde<V>,
        value: &V,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        let start = self.bytes.len();
        let key = match Self::encode(&mut self.bytes, keys, key) {
            Ok(k) => k,
            Err(e) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        };
        let value = match Self::encode(&mut self.bytes, values, value) {
            Ok(v) => v,
            Err(e) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        };
        self.push(topic, partition, key, value, timestamp, headers);
        Ok(())
    }

    /// `value` appended by `serde`: where it is, `None` for a null.
    fn encode<T: 'static>(
        out: &mut BytesMut,
        serde: &dyn Serde<T>,
        value: &T,
    ) -> Result<Option<Range<usize>>> {
        let start = out.len();
        if serde.serialize_into(value, out)? {
            Ok(Some(start..out.len()))
        } else {
            // A null is no bytes, whatever the serde appended.
            out.truncate(start);
            Ok(None)
        }
    }

    /// Adds a record of ready bytes.
    pub(crate) fn push_bytes(
        &mut self,
        topic: &Arc<str>,
        partition: Option<u32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) {
        let mut put = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        };
        let key = key.map(&mut put);
        let value = value.map(&mut put);
        self.push(topic, partition, key, value, timestamp, Vec::new());
    }

    /// Adds the record whose key and value are at `key` and `value`.
    fn push(
        &mut self,
        topic: &Arc<str>,
        partition: Option<u32>,
        key: Option<Range<usize>>,
        value: Option<Range<usize>>,
        timestamp: i64,
        headers: Vec<Header>,
    ) {
        let topic = self.topic(topic);
        self.entries.push(Entry {
            topic,
            partition,
            key,
            value,
            timestamp,
            headers,
        });
    }

    /// Hands each record to `send` in order, then empties the outbox
    /// (also when `send` fails: the records after the failure are dropped
    /// with the rest, as a failed send fails the task's commit).
    pub(crate) fn drain(
        &mut self,
        mut send: impl FnMut(OutRecord<'_>) -> Result<()>,
    ) -> Result<()> {
        let (bytes, topics) = (&self.bytes[..], &self.topics);
        let part = |r: &Option<Range<usize>>| r.clone().map(|r| &bytes[r]);
        let result = self.entries.iter().try_for_each(|e| {
            send(OutRecord {
                topic: &topics[e.topic],
                partition: e.partition,
                key: part(&e.key),
                value: part(&e.value),
                timestamp: e.timestamp,
                headers: &e.headers,
            })
        });
        self.entries.clear();
        self.bytes.clear();
        // A commit that flushed a full record cache leaves no lasting
        // buffer of its size behind.
        if self.bytes.capacity() > SHRINK_ABOVE {
            self.bytes = BytesMut::new();
        }
        if self.entries.capacity() * std::mem::size_of::<Entry>() > SHRINK_ABOVE {
            self.entries = Vec::new();
        }
        result
    }

    /// The records, owned, in order; the outbox is emptied.
    pub(crate) fn take(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(self.entries.len());
        let drained = self.drain(|r| {
            out.push(Outgoing {
                topic: r.topic.clone(),
                key: r.key.map(Bytes::copy_from_slice),
                value: r.value.map(Bytes::copy_from_slice),
                timestamp: r.timestamp,
                headers: r.headers.to_vec(),
            });
            Ok(())
        });
        debug_assert!(drained.is_ok(), "collecting cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::Serdes;

    #[test]
    fn records_come_out_in_order_with_nulls_and_a_failed_encoding_leaves_nothing() {
        let mut o = Outbox::default();
        let t: Arc<str> = "t".into();
        let strings = Serdes::string();
        let optional = Serdes::optional(Serdes::string());
        o.push_encoded(
            &t,
            Some(1),
            &*strings,
            &"k1".to_string(),
            &*optional,
            &None,
            5,
            Vec::new(),
        )
        .unwrap();
        o.push_bytes(&t, None, Some(b"k2"), Some(b"v2"), 6);
        struct Refuses;
        impl Serde<String> for Refuses {
            fn serialize(&self, _: &String) -> Result<Option<Bytes>> {
                Err(crate::Error::Codec("refused".into()))
            }
            fn deserialize(&self, _: Option<&[u8]>) -> Result<String> {
                Err(crate::Error::Codec("refused".into()))
            }
        }
        let k3 = "k3".to_string();
        assert!(
            o.push_encoded(&t, None, &*strings, &k3, &Refuses, &k3, 7, Vec::new())
                .is_err()
        );
        let all = o.take();
        assert!(o.is_empty());
        let seen: Vec<_> = all
            .iter()
            .map(|r| (r.key.clone(), r.value.clone(), r.timestamp))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Some(Bytes::from_static(b"k1")), None, 5),
                (
                    Some(Bytes::from_static(b"k2")),
                    Some(Bytes::from_static(b"v2")),
                    6
                ),
            ]
        );
    }
}
