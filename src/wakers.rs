//! The async side of the crate's condition variables. A future that waits
//! for a condition (a batch's outcome, a log's growth, a watcher's
//! notification, an fsync) registers its [`Waker`] in the [`Wakers`] kept
//! beside that condition, under the same mutex; whoever changes the
//! condition and notifies the condition variable the blocking API sleeps
//! on takes the wakers out and wakes them after releasing the mutex. So a
//! registration and a wake-up cannot miss each other, nothing polls, and no
//! thread is started for a future.
//!
//! Compiled in every build (an empty set costs a check where it is taken);
//! only the `async` feature's futures register.

use std::collections::BTreeMap;
use std::task::Waker;

/// The wakers of the futures waiting on one condition, each under the key
/// its future holds (so a future that is polled again replaces its waker,
/// and one that is dropped removes it).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    next_key: u64,
    entries: BTreeMap<u64, Waker>,
}

/// A future's registration in one [`Wakers`] set: its key there, once it
/// registered. A key means nothing in another set: a future that moves on
/// to wait elsewhere removes itself first (which clears the key).
#[derive(Debug, Default)]
pub(crate) struct WakerKey(Option<u64>);

impl WakerKey {
    /// Whether the future may still have a waker registered.
    pub(crate) fn is_registered(&self) -> bool {
        self.0.is_some()
    }
}

impl Wakers {
    /// Registers `waker` under `key` (a new key if it has none), replacing
    /// the waker registered there unless it would wake the same task.
    #[cfg(feature = "async")]
    pub(crate) fn register(&mut self, key: &mut WakerKey, waker: &Waker) {
        let k = *key.0.get_or_insert_with(|| {
            self.next_key += 1;
            self.next_key
        });
        match self.entries.entry(k) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if !e.get().will_wake(waker) {
                    e.insert(waker.clone());
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(waker.clone());
            }
        }
    }

    /// Removes `key`'s waker, if it is still here; clears the key. Returns
    /// whether one was removed.
    pub(crate) fn remove(&mut self, key: &mut WakerKey) -> bool {
        key.0
            .take()
            .is_some_and(|k| self.entries.remove(&k).is_some())
    }

    /// How many wakers are registered.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes every waker out, to be woken (with [`wake`]) once the mutex
    /// around the set is released. The futures' keys stay valid: one that
    /// is polled again registers anew under its key.
    pub(crate) fn take(&mut self) -> Woken {
        Woken(std::mem::take(&mut self.entries))
    }
}

/// Wakers taken out of a set, to wake outside its mutex.
#[must_use = "wake them with `wake()`"]
#[derive(Debug)]
pub(crate) struct Woken(BTreeMap<u64, Waker>);

impl Woken {
    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Wakes each.
    pub(crate) fn wake(self) {
        for w in self.0.into_values() {
            w.wake();
        }
    }
}

#[cfg(all(test, feature = "async"))]
mod tests {
    use super::*;
    use crate::test_support::CountingWaker as Count;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_registration_is_replaced_removed_or_woken_once() {
        let mut set = Wakers::default();
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let (mut ka, mut kb) = (WakerKey::default(), WakerKey::default());
        set.register(&mut ka, &wa);
        set.register(&mut ka, &wa); // polled again: still one entry
        set.register(&mut kb, &wb);
        assert_eq!(set.len(), 2);
        assert!(set.remove(&mut kb));
        assert!(!kb.is_registered() && !set.remove(&mut kb));
        let woken = set.take();
        assert_eq!((woken.len(), set.len()), (1, 0));
        woken.wake();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 0);
        // Its key stays: polled again, it registers again under it.
        set.register(&mut ka, &wa);
        assert_eq!(set.len(), 1);
        assert!(set.remove(&mut ka));
        // Nothing holds the wakers any more.
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (2, 2));
    }
}
