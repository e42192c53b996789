//! Typed values: serde codecs behind the `json` and `postcard` features,
//! and typed clients ([`TypedProducer`], [`TypedConsumer`]) that name their
//! codec once.

use crate::consumer::{Consumer, ConsumerRecord};
use crate::error::{Error, Result};
use crate::producer::{Delivery, Producer};
use crate::record::{Record, StoredRecord};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns values into record bytes and back.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use embedlog::{Codec, Json};
/// let bytes = Json::encode(&vec![1, 2, 3])?;
/// assert_eq!(&bytes[..], b"[1,2,3]");
/// assert_eq!(Json::decode::<Vec<u32>>(&bytes)?, vec![1, 2, 3]);
/// # }
/// # Ok::<(), embedlog::Error>(())
/// ```
pub trait Codec {
    /// Encodes `value`.
    ///
    /// # Errors
    /// [`Error::Codec`] if the value cannot be encoded.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes>;

    /// Decodes a value.
    ///
    /// # Errors
    /// [`Error::Codec`] if the bytes are not a `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// JSON (serde_json).
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::Codec(format!("JSON encode: {e}")))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::Codec(format!("JSON decode: {e}")))
    }
}

/// postcard: compact binary serde.
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
        postcard::to_allocvec(value)
            .map(Bytes::from)
            .map_err(|e| Error::Codec(format!("postcard encode: {e}")))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes).map_err(|e| Error::Codec(format!("postcard decode: {e}")))
    }
}

fn decode_value<C: Codec, T: DeserializeOwned>(value: Option<&Bytes>) -> Result<Option<T>> {
    value.map(|v| C::decode(v)).transpose()
}

impl Record {
    /// A record whose value is `value` encoded with codec `C`.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn with_value<C: Codec, T: Serialize + ?Sized>(value: &T) -> Result<Record> {
        Ok(Record::new(C::encode(value)?))
    }
}

impl StoredRecord {
    /// The value decoded as JSON; `None` for a tombstone. (Always JSON,
    /// whatever other features the build enables; `value_with` names
    /// another codec.)
    ///
    /// # Errors
    /// [`Error::Codec`].
    #[cfg(feature = "json")]
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<Json, T>(self.value.as_ref())
    }

    /// The value decoded with codec `C`; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn value_with<C: Codec, T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<C, T>(self.value.as_ref())
    }
}

impl ConsumerRecord {
    /// The value decoded as JSON; `None` for a tombstone. (Always JSON,
    /// whatever other features the build enables; `value_with` names
    /// another codec.)
    ///
    /// # Errors
    /// [`Error::Codec`].
    #[cfg(feature = "json")]
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<Json, T>(self.value_bytes().as_ref())
    }

    /// The value decoded with codec `C`; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn value_with<C: Codec, T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<C, T>(self.value_bytes().as_ref())
    }
}

impl Producer {
    /// Sends `value`, encoded as JSON, under `key`. (Always JSON, whatever
    /// other features the build enables; `send_value_with` names another
    /// codec, [`typed`](Self::typed) names one for every send.)
    ///
    /// # Errors
    /// [`Error::Codec`]; as [`Producer::send`].
    #[cfg(feature = "json")]
    pub fn send_value<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: impl Into<Bytes>,
        value: &T,
    ) -> Result<Delivery> {
        self.send_value_with::<Json, T>(topic, key, value)
    }

    /// Sends `value`, encoded with codec `C`, under `key`.
    ///
    /// # Errors
    /// [`Error::Codec`]; as [`Producer::send`].
    pub fn send_value_with<C: Codec, T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: impl Into<Bytes>,
        value: &T,
    ) -> Result<Delivery> {
        self.send(topic, Record::new(C::encode(value)?).key(key))
    }

    /// This producer for keys `K` and values `V`, both encoded with codec
    /// `C`, so that application code names the codec once.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use embedlog::{Broker, ConsumerConfig, Json, OffsetReset, ProducerConfig, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path())?;
    /// broker.admin().create_topic("prices", TopicConfig::default())?;
    /// let producer = broker.producer(ProducerConfig::default()).typed::<String, f64, Json>();
    /// producer.send("prices", &"tea".to_string(), &2.5)?;
    /// producer.flush()?;
    ///
    /// let mut consumer = broker
    ///     .consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest))
    ///     .typed::<String, f64, Json>();
    /// consumer.assign([("prices", 0)])?;
    /// let records = consumer.poll(Duration::from_secs(5))?;
    /// assert_eq!(records[0].key()?, Some("tea".to_string()));
    /// assert_eq!(records[0].value()?, Some(2.5));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed<K: Serialize, V: Serialize, C: Codec>(self) -> TypedProducer<K, V, C> {
        TypedProducer {
            producer: self,
            _types: std::marker::PhantomData,
        }
    }
}

impl Consumer {
    /// This consumer for keys `K` and values `V`, both decoded with codec
    /// `C` (see [`Producer::typed`]).
    pub fn typed<K: DeserializeOwned, V: DeserializeOwned, C: Codec>(
        self,
    ) -> TypedConsumer<K, V, C> {
        TypedConsumer {
            consumer: self,
            _types: std::marker::PhantomData,
        }
    }
}

/// The key, value and codec types of a typed client, as a marker that
/// keeps it `Send` and `Sync` whatever they are.
type Types<K, V, C> = std::marker::PhantomData<fn() -> (K, V, C)>;

/// A [`Producer`] that sends keys `K` and values `V` encoded with codec
/// `C` ([`Producer::typed`]). It derefs to the producer for everything
/// else (`flush`, transactions, `close`).
pub struct TypedProducer<K, V, C> {
    producer: Producer,
    _types: Types<K, V, C>,
}

impl<K, V, C> std::fmt::Debug for TypedProducer<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .finish()
    }
}

impl<K, V, C> Clone for TypedProducer<K, V, C> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            _types: std::marker::PhantomData,
        }
    }
}

impl<K: Serialize, V: Serialize, C: Codec> TypedProducer<K, V, C> {
    /// Sends `value` under `key`.
    ///
    /// # Errors
    /// [`Error::Codec`]; as [`Producer::send`].
    pub fn send(&self, topic: &str, key: &K, value: &V) -> Result<Delivery> {
        self.send_record(topic, Some(key), Some(value))
    }

    /// Sends `value` without a key (the partitioner spreads such records).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_keyless(&self, topic: &str, value: &V) -> Result<Delivery> {
        self.send_record(topic, None, Some(value))
    }

    /// Sends a tombstone (a null value) for `key`: compaction removes the
    /// key.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_tombstone(&self, topic: &str, key: &K) -> Result<Delivery> {
        self.send_record(topic, Some(key), None)
    }

    fn send_record(&self, topic: &str, key: Option<&K>, value: Option<&V>) -> Result<Delivery> {
        let mut r = Record::new(Bytes::new());
        r.key = key.map(C::encode).transpose()?;
        r.value = value.map(C::encode).transpose()?;
        self.producer.send(topic, r)
    }

    /// The untyped producer.
    pub fn into_inner(self) -> Producer {
        self.producer
    }
}

impl<K, V, C> std::ops::Deref for TypedProducer<K, V, C> {
    type Target = Producer;
    fn deref(&self) -> &Producer {
        &self.producer
    }
}

/// A [`Consumer`] whose records decode keys `K` and values `V` with codec
/// `C` ([`Consumer::typed`]). It derefs to the consumer for everything
/// else (`assign`, `subscribe`, `seek`, commits).
pub struct TypedConsumer<K, V, C> {
    consumer: Consumer,
    _types: Types<K, V, C>,
}

impl<K, V, C> std::fmt::Debug for TypedConsumer<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned, C: Codec> TypedConsumer<K, V, C> {
    /// As [`Consumer::poll`], each record decoding its key and value on
    /// demand: a record that does not decode is still returned (and the
    /// position moves past it as for any record), its
    /// [`key`](TypedRecord::key) or [`value`](TypedRecord::value) being
    /// the [`Error::Codec`] — nothing is skipped silently.
    ///
    /// # Errors
    /// As [`Consumer::poll`].
    pub fn poll(&mut self, timeout: std::time::Duration) -> Result<Vec<TypedRecord<K, V, C>>> {
        Ok(self
            .consumer
            .poll(timeout)?
            .into_iter()
            .map(|record| TypedRecord {
                record,
                _types: std::marker::PhantomData,
            })
            .collect())
    }

    /// The untyped consumer.
    pub fn into_inner(self) -> Consumer {
        self.consumer
    }
}

impl<K, V, C> std::ops::Deref for TypedConsumer<K, V, C> {
    type Target = Consumer;
    fn deref(&self) -> &Consumer {
        &self.consumer
    }
}

impl<K, V, C> std::ops::DerefMut for TypedConsumer<K, V, C> {
    fn deref_mut(&mut self) -> &mut Consumer {
        &mut self.consumer
    }
}

/// A record a [`TypedConsumer`] polled: the record as stored (through
/// `Deref`: `offset`, `partition`, `timestamp`, `headers`, the raw bytes),
/// with its key and value decoded on demand.
pub struct TypedRecord<K, V, C> {
    record: ConsumerRecord,
    _types: Types<K, V, C>,
}

impl<K, V, C> std::fmt::Debug for TypedRecord<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record.fmt(f)
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned, C: Codec> TypedRecord<K, V, C> {
    /// The key, decoded; `None` for a record without one.
    ///
    /// # Errors
    /// [`Error::Codec`] when the key is not a `K`.
    pub fn key(&self) -> Result<Option<K>> {
        decode_value::<C, K>(self.record.key_bytes().as_ref())
    }

    /// The value, decoded; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value is not a `V`.
    pub fn value(&self) -> Result<Option<V>> {
        decode_value::<C, V>(self.record.value_bytes().as_ref())
    }

    /// The record as stored.
    pub fn into_inner(self) -> ConsumerRecord {
        self.record
    }
}

impl<K, V, C> std::ops::Deref for TypedRecord<K, V, C> {
    type Target = ConsumerRecord;
    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}
