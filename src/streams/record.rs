//! The values that flow through a topology: [`StreamRecord`], windows and
//! windowed keys, a table's changes.

use super::serde::{Serde, SerdeRef};
use crate::{Error, Header, Result};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;

/// A record inside a topology: typed key and value, the event time that
/// windows and joins use, and the headers (Kafka's
/// `org.apache.kafka.streams.processor.api.Record`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time, milliseconds since the epoch.
    pub timestamp: i64,
    /// The headers, as read from the input record.
    pub headers: Vec<Header>,
}

impl<K, V> StreamRecord<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        StreamRecord {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> StreamRecord<K2, V> {
        StreamRecord {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> StreamRecord<K, V2> {
        StreamRecord {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record at another time.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// A time window, `[start, end)` in milliseconds (a session window's end
/// is its last record's time, and inclusive).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// The first millisecond in the window.
    pub start: i64,
    /// The end of the window.
    pub end: i64,
}

/// A key within a window: what windowed aggregations are keyed by.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Windowed<K> {
    /// The key.
    pub key: K,
    /// Its window.
    pub window: Window,
}

/// The serde of `Windowed<K>` keys: the key's bytes, then the window's
/// start and end, 8 bytes big-endian each (Kafka's session-windowed
/// layout, used for every window kind here).
pub(crate) struct WindowedSerde<K>(pub(crate) SerdeRef<K>);

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Bytes>> {
        let key = super::serde::key_bytes(&*self.0, &value.key)?;
        let mut b = BytesMut::with_capacity(key.len() + 16);
        b.put_slice(&key);
        b.put_i64(value.window.start);
        b.put_i64(value.window.end);
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Windowed<K>> {
        let bytes = bytes.ok_or_else(|| Error::Codec("a null windowed key".into()))?;
        if bytes.len() < 16 {
            return Err(Error::Codec(format!(
                "a windowed key of {} bytes: it needs at least 16 (start and end)",
                bytes.len()
            )));
        }
        let (key, times) = bytes.split_at(bytes.len() - 16);
        let start = i64::from_be_bytes(times[..8].try_into().unwrap_or_default());
        let end = i64::from_be_bytes(times[8..].try_into().unwrap_or_default());
        Ok(Windowed {
            key: self.0.deserialize(Some(key))?,
            window: Window { start, end },
        })
    }
}

/// The serde of [`Windowed`] keys over `inner`, the serde of their keys:
/// what the tables of windowed aggregations write their keys with (read
/// their output topics with it).
///
/// ```
/// use embedlog::streams::{Serdes, Window, Windowed, windowed_serde};
///
/// let serde = windowed_serde(Serdes::string());
/// let key = Windowed { key: "k".to_string(), window: Window { start: 0, end: 10 } };
/// let bytes = serde.serialize(&key)?.unwrap();
/// assert_eq!(bytes.len(), 1 + 16);
/// assert_eq!(serde.deserialize(Some(&bytes))?, key);
/// # Ok::<(), embedlog::Error>(())
/// ```
pub fn windowed_serde<K: 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
    Arc::new(WindowedSerde(inner))
}

/// One update of a table: the key's new value and the one it replaces
/// (`None`: absent or deleted). What a `KTable` forwards downstream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<V> {
    pub(crate) new: Option<V>,
    pub(crate) old: Option<V>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::Serdes;

    #[test]
    fn windowed_keys_round_trip() {
        let s = windowed_serde(Serdes::string());
        let w = Windowed {
            key: "k".to_string(),
            window: Window { start: 10, end: 20 },
        };
        let b = s.serialize(&w).unwrap().unwrap();
        assert_eq!(b.len(), 17);
        assert_eq!(s.deserialize(Some(&b)).unwrap(), w);
        assert!(s.deserialize(Some(b"short")).is_err());
    }
}
