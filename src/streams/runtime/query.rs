//! Interactive queries: reading a running application's stores.

use super::Shared;
use crate::streams::record::{Window, Windowed};
use crate::streams::serde::{SerdeRef, key_bytes};
use crate::streams::store::{KeyValueStore, SharedStore, StoreKind, WindowStore};
use crate::{Error, Result};
use std::fmt;
use std::sync::Arc;

fn instances(shared: &Shared, name: &str) -> Vec<SharedStore> {
    if let Some((s, _)) = shared.globals.get(name) {
        return vec![s.clone()];
    }
    shared
        .registry
        .lock()
        .get(name)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}

fn serdes<K: 'static, V: 'static>(
    shared: &Shared,
    name: &str,
    kind_ok: impl Fn(&StoreKind) -> bool,
) -> Result<(SerdeRef<K>, SerdeRef<V>)> {
    let spec = shared.topology.stores.get(name).ok_or_else(|| {
        Error::Topology(format!(
            "the topology has no store named {name:?} (stores: {})",
            shared
                .topology
                .stores
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !kind_ok(&spec.kind) {
        return Err(Error::Topology(format!(
            "store {name:?} is a {:?} store",
            spec.kind
        )));
    }
    spec.serdes::<K, V>().ok_or_else(|| {
        Error::Topology(format!(
            "store {name:?} has key or value types other than asked"
        ))
    })
}

/// A read-only view of a key-value store across this instance's tasks.
pub struct ReadOnlyKeyValueStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K, V> fmt::Debug for ReadOnlyKeyValueStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyKeyValueStore")
            .field("name", &self.name)
            .finish()
    }
}

pub(crate) fn key_value<K: 'static, V: 'static>(
    shared: &Arc<Shared>,
    name: &str,
) -> Result<ReadOnlyKeyValueStore<K, V>> {
    let (keys, values) = serdes::<K, V>(shared, name, |k| matches!(k, StoreKind::KeyValue))?;
    Ok(ReadOnlyKeyValueStore {
        shared: shared.clone(),
        name: name.to_owned(),
        keys,
        values,
    })
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    fn handles(&self) -> Vec<KeyValueStore<K, V>> {
        instances(&self.shared, &self.name)
            .into_iter()
            .map(|state| KeyValueStore {
                state,
                keys: self.keys.clone(),
                values: self.values.clone(),
            })
            .collect()
    }

    /// The value of `key` (in whichever task holds it).
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let kb = key_bytes(&*self.keys, key)?;
        for h in self.handles() {
            if let Some(v) = h.get_bytes(&kb)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Every entry, in the order of the serialized keys.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.collect(|h| h.all_bytes())
    }

    /// The entries from `from` to `to` (both included, by serialized key).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (a, b) = (key_bytes(&*self.keys, from)?, key_bytes(&*self.keys, to)?);
        self.collect(|h| h.range_bytes(&a, &b))
    }

    /// How many entries the tasks hold.
    pub fn approximate_num_entries(&self) -> usize {
        self.handles()
            .iter()
            .map(KeyValueStore::approximate_num_entries)
            .sum()
    }

    #[allow(clippy::type_complexity)]
    fn collect(
        &self,
        rows: impl Fn(&KeyValueStore<K, V>) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>>,
    ) -> Result<Vec<(K, V)>> {
        let mut all = Vec::new();
        for h in self.handles() {
            all.extend(rows(&h)?);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter()
            .map(|(k, v)| {
                Ok((
                    self.keys.deserialize(Some(&k))?,
                    self.values.deserialize(Some(&v))?,
                ))
            })
            .collect()
    }
}

/// A read-only view of a window store across this instance's tasks.
pub struct ReadOnlyWindowStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K, V> fmt::Debug for ReadOnlyWindowStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyWindowStore")
            .field("name", &self.name)
            .finish()
    }
}

pub(crate) fn window<K: 'static, V: 'static>(
    shared: &Arc<Shared>,
    name: &str,
) -> Result<ReadOnlyWindowStore<K, V>> {
    let (keys, values) = serdes::<K, V>(shared, name, |k| matches!(k, StoreKind::Window { .. }))?;
    Ok(ReadOnlyWindowStore {
        shared: shared.clone(),
        name: name.to_owned(),
        keys,
        values,
    })
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    fn handles(&self) -> Vec<WindowStore<K, V>> {
        instances(&self.shared, &self.name)
            .into_iter()
            .map(|state| WindowStore {
                state,
                keys: self.keys.clone(),
                values: self.values.clone(),
            })
            .collect()
    }

    /// `key`'s values in windows starting from `time_from` to `time_to`,
    /// by start time.
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes.
    pub fn fetch(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        let mut out = Vec::new();
        for h in self.handles() {
            out.extend(h.fetch(key, time_from, time_to)?);
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }

    /// Every entry whose window starts from `time_from` to `time_to`.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for h in self.handles() {
            out.extend(h.fetch_all(time_from, time_to)?);
        }
        out.sort_by_key(|(w, _): &(Windowed<K>, V)| (w.window.start, w.window.end));
        Ok(out)
    }

    /// The window a value of `key` starting at `start` covers (start plus
    /// the store's window size).
    pub fn window_at(&self, start: i64) -> Window {
        let size = match self.shared.topology.stores.get(&self.name).map(|s| s.kind) {
            Some(StoreKind::Window { size_ms, .. }) => size_ms,
            _ => 0,
        };
        Window {
            start,
            end: start.saturating_add(size),
        }
    }
}
