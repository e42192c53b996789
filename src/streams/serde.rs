//! How a stream's keys and values become record bytes and back: the
//! [`Serde`] trait and the built-in [`Serdes`].

use crate::{Error, Result};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

/// Turns a `T` into a record's key or value bytes and back (Kafka's
/// `Serde`). `None` is a Kafka null: a record without a key, or a
/// tombstone.
///
/// A stream carries the serdes of its keys and values from its source
/// ([`Consumed`](crate::streams::Consumed)) through the operations that
/// keep their type; an operation that writes to a topic or a store and
/// has none uses Kafka's serde for `String` (UTF-8), `Bytes`, `i64`, `i32`
/// and `f64` (big-endian), and JSON ([`Serdes::json`]) for other types. Implement it for a format of
/// your own:
///
/// ```
/// use bytes::Bytes;
/// use embedlog::streams::Serde;
///
/// struct Upper;
/// impl Serde<String> for Upper {
///     fn serialize(&self, value: &String) -> embedlog::Result<Option<Bytes>> {
///         Ok(Some(Bytes::from(value.to_uppercase())))
///     }
///     fn deserialize(&self, bytes: Option<&[u8]>) -> embedlog::Result<String> {
///         let bytes = bytes.ok_or_else(|| embedlog::Error::Codec("null string".into()))?;
///         Ok(String::from_utf8_lossy(bytes).into_owned())
///     }
/// }
/// assert_eq!(Upper.serialize(&"a".to_string())?.as_deref(), Some(&b"A"[..]));
/// # Ok::<(), embedlog::Error>(())
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `value`; `None` for a Kafka null.
    ///
    /// # Errors
    /// [`Error::Codec`] if `value` cannot be encoded.
    fn serialize(&self, value: &T) -> Result<Option<Bytes>>;

    /// The value of `bytes` (`None`: a Kafka null).
    ///
    /// # Errors
    /// [`Error::Codec`] if the bytes are not a `T`, or are null and a `T`
    /// cannot be null.
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T>;

    /// Whether a value has one encoding only: bytes that decode to a value
    /// are the bytes that value encodes to, so that the bytes can stand
    /// for the value (a `count` then keys its store by the bytes its
    /// source read, without decoding them). The default is `false`; the
    /// built-in string, bytes, integer and `f64` serdes say `true`, and
    /// [`Serdes::optional`] says what its inner serde says. JSON does not
    /// (`{"a":1}` and `{ "a": 1 }` are one value).
    fn is_canonical(&self) -> bool {
        false
    }

    /// Checks that `bytes` are a `T`, with the error
    /// [`deserialize`](Self::deserialize) would give, without keeping the
    /// value: what an operation that needs only the bytes (a `count` reads
    /// its keys' bytes) asks of a source. The default deserializes;
    /// serdes that can check in place save an allocation per record.
    ///
    /// # Errors
    /// As [`deserialize`](Self::deserialize).
    fn validate(&self, bytes: Option<&[u8]>) -> Result<()> {
        self.deserialize(bytes).map(drop)
    }

    /// Appends the bytes of `value` to `out`; `false` for a Kafka null
    /// (nothing appended). The default calls
    /// [`serialize`](Self::serialize); serdes that can write in place
    /// save an allocation per record.
    ///
    /// # Errors
    /// As [`serialize`](Self::serialize).
    fn serialize_into(&self, value: &T, out: &mut BytesMut) -> Result<bool> {
        match self.serialize(value)? {
            Some(b) => {
                out.extend_from_slice(&b);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// A shared serde, as streams, stores and topics hold it.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

fn not_null<'a>(bytes: Option<&'a [u8]>, what: &str) -> Result<&'a [u8]> {
    bytes.ok_or_else(|| {
        Error::Codec(format!(
            "a null key or value where {what} was expected (use Serdes::optional for a nullable type)"
        ))
    })
}

/// The built-in serdes.
#[derive(Debug, Clone, Copy)]
pub struct Serdes;

impl Serdes {
    /// UTF-8 text, its bytes as they are (Kafka's `StringSerde`).
    pub fn string() -> SerdeRef<String> {
        Arc::new(Utf8)
    }

    /// Bytes as they are (Kafka's `BytesSerde`).
    pub fn bytes() -> SerdeRef<Bytes> {
        Arc::new(RawBytes)
    }

    /// A 64-bit signed integer, 8 bytes big-endian (Kafka's `LongSerde`).
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(BigEndian)
    }

    /// A 32-bit signed integer, 4 bytes big-endian (Kafka's
    /// `IntegerSerde`).
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(BigEndian)
    }

    /// A 64-bit float, 8 bytes big-endian (Kafka's `DoubleSerde`).
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(BigEndian)
    }

    /// Any serde type as JSON (`serde_json`).
    pub fn json<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(JsonSerde(PhantomData))
    }

    /// Any serde type as postcard (compact binary; feature `postcard`).
    #[cfg(feature = "postcard")]
    pub fn postcard<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(PostcardSerde(PhantomData))
    }

    /// `Option<T>` over `inner`: `None` is a Kafka null (a tombstone as a
    /// value).
    pub fn optional<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(Optional(inner))
    }
}

struct Utf8;

/// `bytes` as text (not null, UTF-8).
fn utf8(bytes: Option<&[u8]>) -> Result<&str> {
    let bytes = not_null(bytes, "a string")?;
    std::str::from_utf8(bytes).map_err(|e| Error::Codec(format!("not UTF-8 text: {e}")))
}

impl Serde<String> for Utf8 {
    fn serialize(&self, value: &String) -> Result<Option<Bytes>> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }

    fn serialize_into(&self, value: &String, out: &mut BytesMut) -> Result<bool> {
        out.extend_from_slice(value.as_bytes());
        Ok(true)
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String> {
        utf8(bytes).map(str::to_owned)
    }

    fn validate(&self, bytes: Option<&[u8]>) -> Result<()> {
        utf8(bytes).map(drop)
    }

    fn is_canonical(&self) -> bool {
        true
    }
}

struct RawBytes;

impl Serde<Bytes> for RawBytes {
    fn serialize(&self, value: &Bytes) -> Result<Option<Bytes>> {
        Ok(Some(value.clone()))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(not_null(bytes, "bytes")?))
    }

    fn validate(&self, bytes: Option<&[u8]>) -> Result<()> {
        not_null(bytes, "bytes").map(drop)
    }

    fn is_canonical(&self) -> bool {
        true
    }
}

struct BigEndian;

macro_rules! big_endian {
    ($t:ty, $n:literal) => {
        impl Serde<$t> for BigEndian {
            fn serialize(&self, value: &$t) -> Result<Option<Bytes>> {
                Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
            }

            fn serialize_into(&self, value: &$t, out: &mut BytesMut) -> Result<bool> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(true)
            }

            fn deserialize(&self, bytes: Option<&[u8]>) -> Result<$t> {
                let bytes = not_null(bytes, stringify!($t))?;
                let array: [u8; $n] = bytes.try_into().map_err(|_| {
                    Error::Codec(format!(
                        "{} bytes where a big-endian {} ({} bytes) was expected",
                        bytes.len(),
                        stringify!($t),
                        $n
                    ))
                })?;
                Ok(<$t>::from_be_bytes(array))
            }

            fn is_canonical(&self) -> bool {
                // The bits as they are, NaN payloads included.
                true
            }
        }
    };
}

big_endian!(i64, 8);
big_endian!(i32, 4);
big_endian!(f64, 8);

struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Bytes>> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| Error::Codec(format!("JSON encode: {e}")))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T> {
        serde_json::from_slice(not_null(bytes, "a JSON value")?)
            .map_err(|e| Error::Codec(format!("JSON decode: {e}")))
    }
}

#[cfg(feature = "postcard")]
struct PostcardSerde<T>(PhantomData<fn() -> T>);

#[cfg(feature = "postcard")]
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for PostcardSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Bytes>> {
        postcard::to_allocvec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| Error::Codec(format!("postcard encode: {e}")))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T> {
        postcard::from_bytes(not_null(bytes, "a postcard value")?)
            .map_err(|e| Error::Codec(format!("postcard decode: {e}")))
    }
}

struct Optional<T>(SerdeRef<T>);

impl<T: 'static> Serde<Option<T>> for Optional<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Bytes>> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }

    fn serialize_into(&self, value: &Option<T>, out: &mut BytesMut) -> Result<bool> {
        match value {
            Some(v) => self.0.serialize_into(v, out),
            None => Ok(false),
        }
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>> {
        bytes.map(|b| self.0.deserialize(Some(b))).transpose()
    }

    fn validate(&self, bytes: Option<&[u8]>) -> Result<()> {
        bytes.map_or(Ok(()), |b| self.0.validate(Some(b)))
    }

    fn is_canonical(&self) -> bool {
        self.0.is_canonical()
    }
}

/// The serde a stream uses where it has none: Kafka's for `String`
/// (UTF-8), `Bytes` (as they are), `i64`, `i32` and `f64` (big-endian);
/// JSON for every other type.
pub(crate) fn default_serde<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
    fn cast<A: 'static, B: 'static>(s: SerdeRef<A>) -> Option<SerdeRef<B>> {
        (Box::new(s) as Box<dyn std::any::Any>)
            .downcast::<SerdeRef<B>>()
            .ok()
            .map(|b| *b)
    }
    cast(Serdes::string())
        .or_else(|| cast(Serdes::bytes()))
        .or_else(|| cast(Serdes::i64()))
        .or_else(|| cast(Serdes::i32()))
        .or_else(|| cast(Serdes::f64()))
        .unwrap_or_else(Serdes::json)
}

/// `serde` as a serde of `B`, if `A` is `B` (a mapping that kept the type
/// keeps the serde).
pub(crate) fn carry<A: 'static, B: 'static>(serde: &Option<SerdeRef<A>>) -> Option<SerdeRef<B>> {
    (serde as &dyn std::any::Any)
        .downcast_ref::<Option<SerdeRef<B>>>()
        .cloned()
        .flatten()
}

/// The bytes of a key, which may not be null (stores and repartitioning
/// need one).
pub(crate) fn key_bytes<K: 'static>(serde: &dyn Serde<K>, key: &K) -> Result<Bytes> {
    serde.serialize(key)?.ok_or_else(|| {
        Error::Codec("a key serialized to null: stores and repartitioning need a key".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_round_trip_and_refuse_null() {
        let s = Serdes::string();
        let b = s.serialize(&"héllo".to_string()).unwrap().unwrap();
        assert_eq!(&b[..], "héllo".as_bytes());
        assert_eq!(s.deserialize(Some(&b)).unwrap(), "héllo");
        assert!(s.deserialize(None).is_err());
        assert!(s.deserialize(Some(&[0xff])).is_err());

        let n = Serdes::i64();
        let b = n.serialize(&-2).unwrap().unwrap();
        assert_eq!(&b[..], &(-2i64).to_be_bytes());
        assert_eq!(n.deserialize(Some(&b)).unwrap(), -2);
        let err = n.deserialize(Some(&[1, 2])).unwrap_err().to_string();
        assert!(err.contains("2 bytes"), "{err}");

        let o = Serdes::optional(Serdes::i64());
        assert_eq!(o.serialize(&None).unwrap(), None);
        assert_eq!(o.deserialize(None).unwrap(), None);
        assert_eq!(o.deserialize(Some(&7i64.to_be_bytes())).unwrap(), Some(7));

        let d = default_serde::<String>();
        assert_eq!(&d.serialize(&"x".into()).unwrap().unwrap()[..], b"x");
        let d = default_serde::<i64>();
        assert_eq!(d.serialize(&1).unwrap().unwrap().len(), 8);
        let d = default_serde::<Vec<u8>>();
        assert_eq!(&d.serialize(&vec![1]).unwrap().unwrap()[..], b"[1]");
        let kept: Option<SerdeRef<String>> = carry(&Some(Serdes::string()));
        assert!(kept.is_some());
        let lost: Option<SerdeRef<i64>> = carry(&Some(Serdes::string()));
        assert!(lost.is_none());

        // validate accepts and refuses what deserialize does, with its error.
        for serde in [Serdes::string()] {
            for bytes in [Some(&b"ok"[..]), Some(&[0xff][..]), None] {
                let (d, v) = (serde.deserialize(bytes), serde.validate(bytes));
                assert_eq!(d.is_ok(), v.is_ok());
                if let (Err(d), Err(v)) = (d, v) {
                    assert_eq!(d.to_string(), v.to_string());
                }
            }
        }
        assert!(Serdes::bytes().validate(None).is_err());
        assert!(Serdes::optional(Serdes::string()).validate(None).is_ok());
        assert!(
            Serdes::optional(Serdes::string())
                .validate(Some(&[0xff]))
                .is_err()
        );
        assert!(Serdes::i64().validate(Some(&[1])).is_err());
        assert!(Serdes::string().is_canonical() && Serdes::f64().is_canonical());
        assert!(Serdes::optional(Serdes::bytes()).is_canonical());
        assert!(!Serdes::json::<String>().is_canonical());
        assert!(!Serdes::optional(Serdes::json::<String>()).is_canonical());

        let j = Serdes::json::<Vec<u32>>();
        let b = j.serialize(&vec![1, 2]).unwrap().unwrap();
        assert_eq!(&b[..], b"[1,2]");
        assert_eq!(j.deserialize(Some(&b)).unwrap(), vec![1, 2]);
    }
}
