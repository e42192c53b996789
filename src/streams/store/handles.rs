//! Typed handles on a task's store instance.

use super::{SharedStore, StoreKind};
use crate::streams::record::{Window, Windowed};
use crate::streams::serde::{SerdeRef, key_bytes};
use crate::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::Bound;

/// A time as 8 bytes that sort as the signed value does.
pub(crate) fn flip(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn unflip(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn prefix(key: &[u8], extra: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(4 + key.len() + extra);
    b.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    b.put_slice(key);
    b
}

/// A window store's key: length-prefixed key bytes, window start, sequence.
pub(crate) fn window_key(key: &[u8], start: i64, seq: u32) -> Bytes {
    let mut b = prefix(key, 12);
    b.put_slice(&flip(start));
    b.put_u32(seq);
    b.freeze()
}

/// A session store's key: length-prefixed key bytes, session end, start.
pub(crate) fn session_key(key: &[u8], window: Window) -> Bytes {
    let mut b = prefix(key, 16);
    b.put_slice(&flip(window.end));
    b.put_slice(&flip(window.start));
    b.freeze()
}

/// Splits a windowed store key into key bytes and its two trailing times
/// (`tail` bytes after the key).
fn split_key(stored: &[u8], tail: usize) -> Result<(&[u8], i64, &[u8])> {
    let bad = || Error::Codec(format!("a windowed store key of {} bytes", stored.len()));
    let len = u32::from_be_bytes(
        stored
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let key_end = 4 + len as usize;
    let key = stored.get(4..key_end).ok_or_else(bad)?;
    let rest = stored.get(key_end..).ok_or_else(bad)?;
    if rest.len() != tail {
        return Err(bad());
    }
    let t = unflip(rest[..8].try_into().map_err(|_| bad())?);
    Ok((key, t, &rest[8..]))
}

/// A key-value store, as a processor sees it: typed keys and values,
/// ordered by their serialized bytes. Every write also goes to the
/// store's changelog.
pub struct KeyValueStore<K, V> {
    pub(crate) state: SharedStore,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for KeyValueStore<K, V> {
    fn clone(&self) -> Self {
        KeyValueStore {
            state: self.state.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> fmt::Debug for KeyValueStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStore")
            .field("name", &self.state.lock().name)
            .finish()
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> String {
        self.state.lock().name.clone()
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes; what the storage reports.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let k = key_bytes(&*self.keys, key)?;
        let v = self.state.lock().get(&k)?;
        v.map(|v| self.values.deserialize(Some(&v))).transpose()
    }

    /// Sets `key` to `value` (a value that serializes to null deletes).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let k = key_bytes(&*self.keys, key)?;
        match self.values.serialize(value)? {
            Some(v) => self.state.lock().put(k, v),
            None => self.state.lock().delete(&k),
        }
    }

    /// Removes `key`, returning what it held.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let k = key_bytes(&*self.keys, key)?;
        let mut state = self.state.lock();
        let old = state.get(&k)?;
        if old.is_some() {
            state.delete(&k)?;
        }
        drop(state);
        old.map(|v| self.values.deserialize(Some(&v))).transpose()
    }

    /// The entries from `from` to `to` (both included), in the order of
    /// their serialized keys.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (a, b) = (key_bytes(&*self.keys, from)?, key_bytes(&*self.keys, to)?);
        let rows = self
            .state
            .lock()
            .range(Bound::Included(&a), Bound::Included(&b))?;
        self.decode(rows)
    }

    /// Every entry, in the order of their serialized keys.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let rows = self
            .state
            .lock()
            .range(Bound::Unbounded, Bound::Unbounded)?;
        self.decode(rows)
    }

    /// The value stored under serialized key `key`.
    pub(crate) fn get_bytes(&self, key: &[u8]) -> Result<Option<V>> {
        let v = self.state.lock().get(key)?;
        v.map(|v| self.values.deserialize(Some(&v))).transpose()
    }

    /// Stores `value` under serialized key `key`.
    pub(crate) fn put_bytes(&self, key: Bytes, value: &V) -> Result<()> {
        match self.values.serialize(value)? {
            Some(v) => self.state.lock().put(key, v),
            None => self.state.lock().delete(&key),
        }
    }

    /// Every entry, as bytes.
    pub(crate) fn all_bytes(&self) -> Result<Vec<(Bytes, Bytes)>> {
        self.state.lock().range(Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries from `a` to `b` (serialized keys, both included).
    pub(crate) fn range_bytes(&self, a: &[u8], b: &[u8]) -> Result<Vec<(Bytes, Bytes)>> {
        self.state
            .lock()
            .range(Bound::Included(a), Bound::Included(b))
    }

    /// How many entries it holds.
    pub fn approximate_num_entries(&self) -> usize {
        self.state.lock().len().unwrap_or(0)
    }

    fn decode(&self, rows: Vec<(Bytes, Bytes)>) -> Result<Vec<(K, V)>> {
        rows.into_iter()
            .map(|(k, v)| {
                Ok((
                    self.keys.deserialize(Some(&k))?,
                    self.values.deserialize(Some(&v))?,
                ))
            })
            .collect()
    }
}

/// A window store: values by key and window start. Entries older than the
/// store's retention (from the newest time written) expire.
pub struct WindowStore<K, V> {
    pub(crate) state: SharedStore,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore {
            state: self.state.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> fmt::Debug for WindowStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStore")
            .field("name", &self.state.lock().name)
            .finish()
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    fn layout(&self) -> (i64, bool) {
        match self.state.lock().kind {
            StoreKind::Window {
                size_ms,
                retain_duplicates,
                ..
            } => (size_ms, retain_duplicates),
            _ => (0, false),
        }
    }

    /// Puts `value` for `key` in the window starting at `window_start`
    /// (replacing the one there, unless the store keeps duplicates; a value
    /// that serializes to null removes it).
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes; what the storage reports.
    pub fn put(&self, key: &K, value: &V, window_start: i64) -> Result<()> {
        let k = key_bytes(&*self.keys, key)?;
        let v = self.values.serialize(value)?;
        let mut state = self.state.lock();
        let dups = matches!(
            state.kind,
            StoreKind::Window {
                retain_duplicates: true,
                ..
            }
        );
        let seq = if dups {
            state.seq = state.seq.wrapping_add(1);
            state.seq
        } else {
            0
        };
        state.observed_time = state.observed_time.max(window_start);
        let stored = window_key(&k, window_start, seq);
        match v {
            Some(v) => state.put(stored, v),
            None => state.delete(&stored),
        }
    }

    /// The value of `key` in the window starting at `window_start` (the
    /// first one, in a store with duplicates).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn fetch_window(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        Ok(self
            .fetch(key, window_start, window_start)?
            .into_iter()
            .next()
            .map(|(_, v)| v))
    }

    /// `key`'s values in windows starting from `time_from` to `time_to`
    /// (both included), by start time.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn fetch(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        let k = key_bytes(&*self.keys, key)?;
        let (a, b) = (
            window_key(&k, time_from, 0),
            window_key(&k, time_to, u32::MAX),
        );
        let rows = self
            .state
            .lock()
            .range(Bound::Included(&a), Bound::Included(&b))?;
        rows.into_iter()
            .map(|(stored, v)| {
                let (_, start, _) = split_key(&stored, 12)?;
                Ok((start, self.values.deserialize(Some(&v))?))
            })
            .collect()
    }

    /// Removes `key`'s entry in the window starting at `window_start`
    /// (every one of them, in a store with duplicates).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn remove(&self, key: &K, window_start: i64) -> Result<()> {
        let k = key_bytes(&*self.keys, key)?;
        let (a, b) = (
            window_key(&k, window_start, 0),
            window_key(&k, window_start, u32::MAX),
        );
        let mut state = self.state.lock();
        for (stored, _) in state.range(Bound::Included(&a), Bound::Included(&b))? {
            state.delete(&stored)?;
        }
        Ok(())
    }

    /// Every entry whose window starts from `time_from` to `time_to`, as
    /// windowed keys, in key order.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let (size, _) = self.layout();
        let rows = self
            .state
            .lock()
            .range(Bound::Unbounded, Bound::Unbounded)?;
        let mut out = Vec::new();
        for (stored, v) in rows {
            let (k, start, _) = split_key(&stored, 12)?;
            if start < time_from || start > time_to {
                continue;
            }
            out.push((
                Windowed {
                    key: self.keys.deserialize(Some(k))?,
                    window: Window {
                        start,
                        end: start.saturating_add(size),
                    },
                },
                self.values.deserialize(Some(&v))?,
            ));
        }
        Ok(out)
    }
}

/// A session store: values by key and session window.
pub struct SessionStore<K, V> {
    pub(crate) state: SharedStore,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for SessionStore<K, V> {
    fn clone(&self) -> Self {
        SessionStore {
            state: self.state.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> fmt::Debug for SessionStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("name", &self.state.lock().name)
            .finish()
    }
}

impl<K: Clone + 'static, V: 'static> SessionStore<K, V> {
    /// Puts `value` for a session (a value that serializes to null removes
    /// it).
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes; what the storage reports.
    pub fn put(&self, session: &Windowed<K>, value: &V) -> Result<()> {
        let k = key_bytes(&*self.keys, &session.key)?;
        let v = self.values.serialize(value)?;
        let stored = session_key(&k, session.window);
        let mut state = self.state.lock();
        state.observed_time = state.observed_time.max(session.window.end);
        match v {
            Some(v) => state.put(stored, v),
            None => state.delete(&stored),
        }
    }

    /// Removes a session.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn remove(&self, session: &Windowed<K>) -> Result<()> {
        let k = key_bytes(&*self.keys, &session.key)?;
        self.state.lock().delete(&session_key(&k, session.window))
    }

    /// `key`'s sessions that end at or after `earliest_end` and start at
    /// or before `latest_start`, by end time.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let k = key_bytes(&*self.keys, key)?;
        let from = session_key(
            &k,
            Window {
                start: i64::MIN,
                end: earliest_end,
            },
        );
        let to = session_key(
            &k,
            Window {
                start: i64::MAX,
                end: i64::MAX,
            },
        );
        let rows = self
            .state
            .lock()
            .range(Bound::Included(&from), Bound::Included(&to))?;
        let mut out = Vec::new();
        for (stored, v) in rows {
            let (_, end, rest) = split_key(&stored, 16)?;
            let start = unflip(
                rest.try_into()
                    .map_err(|_| Error::Codec("session key".into()))?,
            );
            if start > latest_start {
                continue;
            }
            out.push((
                Windowed {
                    key: key.clone(),
                    window: Window { start, end },
                },
                self.values.deserialize(Some(&v))?,
            ));
        }
        Ok(out)
    }

    /// Every session of `key`.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_as_signed_and_keys_do_not_collide() {
        assert!(flip(-1) < flip(0) && flip(0) < flip(1) && flip(i64::MIN) < flip(-1));
        assert_eq!(unflip(flip(-42)), -42);
        // "a" and "ab" keep their windows apart.
        let a = window_key(b"a", 5, 0);
        let ab = window_key(b"ab", 0, 0);
        let a_max = window_key(b"a", i64::MAX, u32::MAX);
        assert!(!(a <= ab && ab <= a_max));
        let (k, t, _) = split_key(&a, 12).unwrap();
        assert_eq!((k, t), (&b"a"[..], 5));
    }
}
