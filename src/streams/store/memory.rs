//! The in-memory store: a `BTreeMap` of key bytes.

use super::BytesStore;
use crate::Result;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A store in memory, sorted by key bytes. Lost with the process, so a
/// restart restores it from its changelog's beginning.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    map: BTreeMap<Bytes, Bytes>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryStore::default()
    }
}

impl BytesStore for InMemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        self.map.insert(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.map.remove(key);
        Ok(())
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn clear(&mut self) -> Result<()> {
        self.map.clear();
        Ok(())
    }
}
