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

mod cached;
pub(crate) mod checkpoint;
mod handles;
mod memory;
#[cfg(feature = "streams-persistent")]
pub(crate) mod persistent;
mod spec;

pub use handles::{KeyValueStore, SessionStore, WindowStore};
pub(crate) use handles::{flip, session_key, unflip, window_key};
pub use memory::InMemoryStore;
#[cfg(feature = "streams-persistent")]
pub use persistent::{PersistentStore, PersistentStoreConfig};
pub(crate) use spec::Supplier;
pub use spec::{StoreKind, StoreSpec, Stores};

use crate::Result;
use crate::hash::FxHashMap;
use bytes::{Bytes, BytesMut};
use cached::{Cached, Slot};
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
    /// Writes not yet applied to `data` (the record cache, when the task
    /// has one): read first, applied and logged at commit or when over
    /// the store's share of the cache.
    cache: Option<FxHashMap<Bytes, Cached>>,
    pub(crate) cache_bytes: usize,
    /// Keys whose tracked changes left the cache before they were taken
    /// (a flush): the value before the first change, the latest time.
    tracked: FxHashMap<Bytes, (Option<Bytes>, i64)>,
    /// Where [`update_tracked`](Self::update_tracked) has values written.
    scratch: BytesMut,
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
            cache: None,
            cache_bytes: 0,
            tracked: FxHashMap::default(),
            scratch: BytesMut::new(),
        }
    }

    /// Whether writes go through the record cache.
    pub(crate) fn caching(&self) -> bool {
        self.cache.is_some()
    }

    /// Replaces `key`'s value (in the cache, which must be on) with what
    /// `f` makes of the current one, remembering the value before the
    /// first such change since the last [`take_tracked`](Self::take_tracked):
    /// an aggregation's update, emitted once per key per commit. One lock,
    /// one lookup, no copy of the key when it is cached.
    ///
    /// `f` appends the new value to the buffer it is given and returns
    /// `true`, or returns `false` for a deletion. A small value (a count,
    /// a sum) is kept inline in the cache: no allocation per update.
    pub(crate) fn update_tracked(
        &mut self,
        key: &[u8],
        ts: i64,
        f: impl FnOnce(Option<&[u8]>, &mut BytesMut) -> Result<bool>,
    ) -> Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let result = self.update_tracked_into(key, ts, f, &mut out);
        self.scratch = out;
        result
    }

    fn update_tracked_into(
        &mut self,
        key: &[u8],
        ts: i64,
        f: impl FnOnce(Option<&[u8]>, &mut BytesMut) -> Result<bool>,
        out: &mut BytesMut,
    ) -> Result<()> {
        let Some(cache) = self.cache.as_mut() else {
            let old = self.data.get(key)?;
            let present = f(old.as_deref(), out)?;
            let key = Bytes::copy_from_slice(key);
            return if present {
                self.put(key, Bytes::copy_from_slice(out))
            } else {
                self.delete(&key)
            };
        };
        if let Some(c) = cache.get_mut(key) {
            let present = f(c.value.as_deref(), out)?;
            if c.prior.is_none() {
                c.prior = Some(c.value.to_bytes());
            }
            c.value = if present { Slot::copy(out) } else { Slot::Null };
            c.ts = c.ts.max(ts);
            return Ok(());
        }
        let current = self.data.get(key)?;
        let new = if f(current.as_deref(), out)? {
            Slot::copy(out)
        } else {
            Slot::Null
        };
        let (prior, ts) = match self.tracked.remove(key) {
            Some((prior, t)) => (prior, t.max(ts)),
            None => (current, ts),
        };
        self.cache_bytes += key.len() + new.as_deref().map_or(0, <[u8]>::len) + 32;
        let key = Bytes::copy_from_slice(key);
        if let Some(cache) = self.cache.as_mut() {
            cache.insert(
                key,
                Cached {
                    value: new,
                    prior: Some(prior),
                    ts,
                },
            );
        }
        Ok(())
    }

    /// The keys changed through [`update_tracked`](Self::update_tracked)
    /// since the last call, in key order: key, value now, value before the
    /// first change, latest time.
    #[allow(clippy::type_complexity)]
    pub(crate) fn take_tracked(
        &mut self,
    ) -> Result<Vec<(Bytes, Option<Bytes>, Option<Bytes>, i64)>> {
        let mut out = Vec::new();
        if let Some(cache) = self.cache.as_mut() {
            for (k, c) in cache.iter_mut() {
                if let Some(prior) = c.prior.take() {
                    out.push((k.clone(), c.value.to_bytes(), prior, c.ts));
                }
            }
        }
        let left: Vec<(Bytes, (Option<Bytes>, i64))> = self.tracked.drain().collect();
        for (k, (prior, ts)) in left {
            let now = self.get(&k)?;
            out.push((k, now, prior, ts));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Turns the write-back cache on (a task with a record cache does).
    pub(crate) fn enable_cache(&mut self) {
        self.cache.get_or_insert_with(FxHashMap::default);
    }

    /// The value of `key`: a cached write, else the storage's.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(c) = self.cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(c.value.to_bytes());
        }
        self.data.get(key)
    }

    /// The entries between the bounds (cached writes applied first).
    pub(crate) fn range(
        &mut self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.flush_cache()?;
        self.data.range(from, to)
    }

    /// How many entries it holds (cached writes applied first).
    pub(crate) fn len(&mut self) -> Result<usize> {
        self.flush_cache()?;
        Ok(self.data.len())
    }

    /// Applies the cached writes to the storage and logs them.
    pub(crate) fn flush_cache(&mut self) -> Result<()> {
        let Some(cache) = self.cache.as_mut() else {
            return Ok(());
        };
        if cache.is_empty() {
            return Ok(());
        }
        let writes: Vec<(Bytes, Cached)> = cache.drain().collect();
        self.cache_bytes = 0;
        for (k, c) in writes {
            if let Some(prior) = c.prior {
                self.tracked.entry(k.clone()).or_insert((prior, c.ts)).1 = c.ts;
            }
            let v = c.value.into_bytes();
            self.log(k.clone(), v.clone());
            match v {
                Some(v) => self.data.put(k, v)?,
                None => self.data.delete(&k)?,
            }
        }
        Ok(())
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
        if let Some(cache) = self.cache.as_mut() {
            let size = key.len() + value.len() + 32;
            match cache.get_mut(&key) {
                Some(c) => c.value = Slot::Shared(value),
                None => {
                    cache.insert(key, Cached::plain(Some(value)));
                    self.cache_bytes += size;
                }
            }
            return Ok(());
        }
        self.log(key.clone(), Some(value.clone()));
        self.data.put(key, value)
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<()> {
        let key = Bytes::copy_from_slice(key);
        if let Some(time) = self.kind.entry_time(&key) {
            self.by_time.remove(&(time, key.clone()));
        }
        if let Some(cache) = self.cache.as_mut() {
            let size = key.len() + 32;
            match cache.get_mut(&key) {
                Some(c) => c.value = Slot::Null,
                None => {
                    cache.insert(key, Cached::plain(None));
                    self.cache_bytes += size;
                }
            }
            return Ok(());
        }
        self.log(key.clone(), None);
        self.data.delete(&key)
    }

    /// Applies one changelog record while restoring (not logged again).
    pub(crate) fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        self.flush_cache()?;
        let time = self.kind.entry_time(&key);
        match value {
            Some(v) => {
                if let Some(t) = time {
                    self.observed_time = self.observed_time.max(t);
                    self.by_time.insert((t, key.clone()));
                }
                self.note_sequence(&key);
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

    /// The changelog records to send, by key (cached writes applied
    /// first).
    pub(crate) fn take_dirty(&mut self) -> Result<BTreeMap<Bytes, Option<Bytes>>> {
        self.flush_cache()?;
        self.dirty_bytes = 0;
        Ok(std::mem::take(&mut self.dirty))
    }

    /// Keeps the next sequence number of a store with duplicates past
    /// the one in `key` (restored entries must not be overwritten by new
    /// ones).
    fn note_sequence(&mut self, key: &[u8]) {
        if let StoreKind::Window {
            retain_duplicates: true,
            ..
        } = self.kind
            && let Some(tail) = key.len().checked_sub(4).and_then(|at| key.get(at..))
            && let Ok(b) = <[u8; 4]>::try_from(tail)
        {
            self.seq = self.seq.max(u32::from_be_bytes(b));
        }
    }

    /// Rebuilds a windowed store's time index from its data (a persistent
    /// store reopened from a checkpoint, not replayed from the start).
    pub(crate) fn rebuild_time_index(&mut self) -> Result<()> {
        if self.kind.retention_ms().is_none() {
            return Ok(());
        }
        self.by_time.clear();
        for (k, _) in self.data.range(Bound::Unbounded, Bound::Unbounded)? {
            if let Some(t) = self.kind.entry_time(&k) {
                self.observed_time = self.observed_time.max(t);
                self.note_sequence(&k);
                self.by_time.insert((t, k));
            }
        }
        Ok(())
    }

    /// Drops a windowed store's entries older than its retention, measured
    /// from the newest time it has seen. Not logged: the changelog topic's
    /// own retention drops them there.
    pub(crate) fn expire(&mut self) -> Result<usize> {
        self.flush_cache()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> StoreState {
        let mut s = StoreState::new(
            "counts",
            StoreKind::KeyValue,
            Box::new(InMemoryStore::new()),
            true,
        );
        s.enable_cache();
        s
    }

    fn add_one(s: &mut StoreState, key: &[u8], ts: i64) {
        s.update_tracked(key, ts, |old, out| {
            let n = old.map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap()));
            out.extend_from_slice(&(n + 1).to_be_bytes());
            Ok(true)
        })
        .unwrap();
    }

    #[test]
    fn tracked_updates_keep_the_first_prior_and_the_latest_time() {
        let mut s = counter();
        add_one(&mut s, b"a", 1);
        add_one(&mut s, b"a", 3);
        let before = s.get(b"a").unwrap().unwrap();
        add_one(&mut s, b"a", 2);
        add_one(&mut s, b"a", 2);
        assert_eq!(
            &before[..],
            &2i64.to_be_bytes(),
            "a reader's copy stays as read"
        );
        assert_eq!(&s.get(b"a").unwrap().unwrap()[..], &4i64.to_be_bytes());
        let tracked = s.take_tracked().unwrap();
        assert_eq!(
            tracked,
            vec![(
                Bytes::from_static(b"a"),
                Some(Bytes::copy_from_slice(&4i64.to_be_bytes())),
                None,
                3
            )]
        );
        // The next commit's first change remembers the value before it.
        add_one(&mut s, b"a", 5);
        let tracked = s.take_tracked().unwrap();
        assert_eq!(
            tracked[0].2,
            Some(Bytes::copy_from_slice(&4i64.to_be_bytes()))
        );
    }

    #[test]
    fn a_deletion_through_update_tracked_is_tracked() {
        let mut s = counter();
        add_one(&mut s, b"k", 1);
        s.take_tracked().unwrap();
        s.update_tracked(b"k", 2, |_, _| Ok(false)).unwrap();
        assert_eq!(s.get(b"k").unwrap(), None);
        let tracked = s.take_tracked().unwrap();
        assert_eq!(tracked.len(), 1);
        assert_eq!(tracked[0].1, None);
        assert_eq!(
            tracked[0].2,
            Some(Bytes::copy_from_slice(&1i64.to_be_bytes()))
        );
    }
}
