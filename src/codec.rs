//! Typed values: serde codecs behind the `json` and `postcard` features.

use crate::consumer::ConsumerRecord;
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

/// The codec `send_value` and `value_as` use: JSON when the `json` feature
/// is on, postcard otherwise.
#[cfg(feature = "json")]
pub type DefaultCodec = Json;
/// The codec `send_value` and `value_as` use: JSON when the `json` feature
/// is on, postcard otherwise.
#[cfg(all(feature = "postcard", not(feature = "json")))]
pub type DefaultCodec = Postcard;

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
    /// The value decoded with the default codec; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<DefaultCodec, T>(self.value.as_ref())
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
    /// The value decoded with the default codec; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<DefaultCodec, T>(self.value.as_ref())
    }

    /// The value decoded with codec `C`; `None` for a tombstone.
    ///
    /// # Errors
    /// [`Error::Codec`].
    pub fn value_with<C: Codec, T: DeserializeOwned>(&self) -> Result<Option<T>> {
        decode_value::<C, T>(self.value.as_ref())
    }
}

impl Producer {
    /// Sends `value`, encoded with the default codec, under `key`.
    ///
    /// # Errors
    /// [`Error::Codec`]; as [`Producer::send`].
    pub fn send_value<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: impl Into<Bytes>,
        value: &T,
    ) -> Result<Delivery> {
        self.send_value_with::<DefaultCodec, T>(topic, key, value)
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
}
