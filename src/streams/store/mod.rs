//! State stores: byte-level storage ([`BytesStore`], in memory or
//! persistent), the changelog each store keeps, and the typed handles
//! processors use ([`KeyValueStore`], [`WindowStore`], [`SessionStore`]).
//!
//! Every write to a store is also a record for its changelog topic
//! (`<application id>-<store>-changelog`, compacted, one partition per
//! task): the store collects them, deduplicated by key, and its task sends
//! them with the task's outputs, in the same transaction under
//! exactly-once. A task restores a store by replaying its changelog
//! partition.

mod handles;
mod memory;
mod spec;

pub use handles::{KeyValueStore, SessionStore, WindowStore};
pub(crate) use handles::{flip, session_key, unflip, window_key};
pub use memory::InMemoryStore;
pub(crate) use spec::Supplier;
pub use spec::{StoreKind, StoreSpec, Stores};

use crate::Result;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// Byte-level key-value storage under a state store: sorted by key bytes.
/// [`InMemoryStore`] is one; a persistent one can outlive the process
/// (and then a restart replays its changelog from a checkpoint, not from
/// the beginning).
pub trait BytesStore: Send + 'static {
    /// The value of `key`.
    ///
    /// # Errors
    /// What the storage reports.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// What the storage reports.
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()>;

    /// Removes `key`.
    ///
    /// # Errors
    /// What the storage reports.
    fn delete(&mut self, key: &[u8]) -> Result<()>;

    /// The entries between the bounds, in key order.
    ///
    /// # Errors
    /// What the storage reports.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>>;

    /// How many entries it holds.
    fn len(&self) -> usize;

    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes what was written durable (a no-op in memory).
    ///
    /// # Errors
    /// What the storage reports.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether the data outlives the process (then its changelog offset is
    /// checkpointed and restoring resumes from it).
    fn persistent(&self) -> bool {
        false
    }

    /// Removes every entry (before a restore from the beginning).
    ///
    /// # Errors
    /// What the storage reports.
    fn clear(&mut self) -> Result<()>;
}

/// One task's instance of a store: its data, the changelog records not
/// sent yet, and for windowed stores the time of each entry (to expire
/// them).
pub(crate) struct StoreState {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) data: Box<dyn BytesStore>,
    /// Changelog records not yet sent, by key (the latest write wins).
    pub(crate) dirty: BTreeMap<Bytes, Option<Bytes>>,
    pub(crate) dirty_bytes: usize,
    /// Whether writes are logged to a changelog topic.
    pub(crate) logged: bool,
    /// Windowed stores: entries by time, for expiry.
    pub(crate) by_time: std::collections::BTreeSet<(i64, Bytes)>,
    /// Windowed stores: the next sequence number for duplicates.
    pub(crate) seq: u32,
    /// The highest time seen by a windowed store (its own stream time).
    pub(crate) observed_time: i64,
}

/// A shared store instance: processors hold it, interactive queries read
/// it from other threads.
pub(crate) type SharedStore = Arc<Mutex<StoreState>>;

impl StoreState {
    pub(crate) fn new(
        name: &str,
        kind: StoreKind,
        data: Box<dyn BytesStore>,
        logged: bool,
    ) -> Self {
        StoreState {
            name: name.to_owned(),
            kind,
            data,
            dirty: BTreeMap::new(),
            dirty_bytes: 0,
            logged,
            by_time: Default::default(),
            seq: 0,
            observed_time: i64::MIN,
        }
    }

    fn log(&mut self, key: Bytes, value: Option<Bytes>) {
        if !self.logged {
            return;
        }
        self.dirty_bytes += key.len() + value.as_ref().map_or(0, Bytes::len) + 16;
        self.dirty.insert(key, value);
    }

    pub(crate) fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        if let Some(time) = self.kind.entry_time(&key) {
            self.by_time.insert((time, key.clone()));
        }
        self.log(key.clone(), Some(value.clone()));
        self.data.put(key, value)
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<()> {
        let key = Bytes::copy_from_slice(key);
        if let Some(time) = self.kind.entry_time(&key) {
            self.by_time.remove(&(time, key.clone()));
        }
        self.log(key.clone(), None);
        self.data.delete(&key)
    }

    /// Applies one changelog record while restoring (not logged again).
    pub(crate) fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        let time = self.kind.entry_time(&key);
        match value {
            Some(v) => {
                if let Some(t) = time {
                    self.observed_time = self.observed_time.max(t);
                    self.by_time.insert((t, key.clone()));
                }
                self.data.put(key, v)
            }
            None => {
                if let Some(t) = time {
                    self.by_time.remove(&(t, key.clone()));
                }
                self.data.delete(&key)
            }
        }
    }

    /// The changelog records to send, oldest write first per key.
    pub(crate) fn take_dirty(&mut self) -> BTreeMap<Bytes, Option<Bytes>> {
        self.dirty_bytes = 0;
        std::mem::take(&mut self.dirty)
    }

    /// Drops a windowed store's entries older than its retention, measured
    /// from the newest time it has seen. Not logged: the changelog topic's
    /// own retention drops them there.
    pub(crate) fn expire(&mut self) -> Result<usize> {
        let Some(retention) = self.kind.retention_ms() else {
            return Ok(0);
        };
        if self.observed_time == i64::MIN {
            return Ok(0);
        }
        let cutoff = self.observed_time.saturating_sub(retention);
        let mut n = 0;
        while let Some((t, _)) = self.by_time.first() {
            if *t >= cutoff {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.data.delete(&key)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
