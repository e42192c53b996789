//! What a topology declares about a store: its kind, serdes, storage and
//! logging ([`StoreSpec`], built with [`Stores`]).

use super::{BytesStore, InMemoryStore};
use crate::Result;
use crate::streams::serde::SerdeRef;
use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The layout of a store's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Plain keys.
    KeyValue,
    /// Keys within time windows (the key, the window start, a sequence
    /// number); entries older than `retention_ms` expire.
    Window {
        /// How long an entry is kept, measured from the newest time seen.
        retention_ms: i64,
        /// The windows' size (a window ends at its start plus this).
        size_ms: i64,
        /// Whether equal keys at equal times are all kept (join buffers).
        retain_duplicates: bool,
    },
    /// Keys with session windows (the key, the session's end and start).
    Session {
        /// How long a session is kept after its end.
        retention_ms: i64,
    },
}

impl StoreKind {
    /// A windowed entry's time (window start, session end), from its key.
    pub(crate) fn entry_time(&self, key: &[u8]) -> Option<i64> {
        let at = match self {
            StoreKind::KeyValue => return None,
            StoreKind::Window { .. } => key.len().checked_sub(12)?,
            StoreKind::Session { .. } => key.len().checked_sub(16)?,
        };
        let b: [u8; 8] = key.get(at..at + 8)?.try_into().ok()?;
        Some(super::handles::unflip(b))
    }

    pub(crate) fn retention_ms(&self) -> Option<i64> {
        match self {
            StoreKind::KeyValue => None,
            StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } => {
                Some(*retention_ms)
            }
        }
    }
}

/// Makes a task's storage for a store, given the directory it may use.
pub(crate) type Supplier = Arc<dyn Fn(&Path) -> Result<Box<dyn BytesStore>> + Send + Sync>;

/// A store as a topology declares it: name, kind, key and value serdes,
/// storage (in memory unless told), and whether it keeps a changelog.
#[derive(Clone)]
pub struct StoreSpec {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) logged: bool,
    pub(crate) supplier: Supplier,
    pub(crate) persistent: bool,
    /// `(SerdeRef<K>, SerdeRef<V>)`, for typed access by name.
    pub(crate) serdes: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("logged", &self.logged)
            .field("persistent", &self.persistent)
            .finish_non_exhaustive()
    }
}

impl StoreSpec {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Turns off its changelog: faster, but its contents are lost with
    /// the process and not restored.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }

    /// Keeps the data in `supplier`'s storage, given the task's directory
    /// for the store; `persistent` says whether it outlives the process
    /// (then restoring resumes from a checkpoint).
    pub fn with_storage(
        mut self,
        persistent: bool,
        supplier: impl Fn(&Path) -> Result<Box<dyn BytesStore>> + Send + Sync + 'static,
    ) -> Self {
        self.persistent = persistent;
        self.supplier = Arc::new(supplier);
        self
    }

    pub(crate) fn serdes<K: 'static, V: 'static>(&self) -> Option<(SerdeRef<K>, SerdeRef<V>)> {
        self.serdes
            .downcast_ref::<(SerdeRef<K>, SerdeRef<V>)>()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
    }
}

/// Builds [`StoreSpec`]s for [`Topology::add_state_store`](crate::streams::StreamsBuilder::add_state_store).
#[derive(Debug, Clone, Copy)]
pub struct Stores;

fn in_memory() -> Supplier {
    Arc::new(|_: &Path| Ok(Box::new(InMemoryStore::new()) as Box<dyn BytesStore>))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Stores {
    /// A key-value store, in memory, with a changelog.
    pub fn key_value<K: 'static, V: 'static>(
        name: impl Into<String>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        StoreSpec {
            name: name.into(),
            kind: StoreKind::KeyValue,
            logged: true,
            supplier: in_memory(),
            persistent: false,
            serdes: Arc::new((key_serde, value_serde)),
        }
    }

    /// A window store of windows of `window_size`, keeping entries for
    /// `retention`; with
    /// `retain_duplicates` every put is kept (not only the last per key
    /// and window).
    pub fn window<K: 'static, V: 'static>(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        StoreSpec {
            kind: StoreKind::Window {
                retention_ms: ms(retention),
                size_ms: ms(window_size),
                retain_duplicates,
            },
            ..Stores::key_value(name, key_serde, value_serde)
        }
    }

    /// A session store keeping sessions for `retention` after they end.
    pub fn session<K: 'static, V: 'static>(
        name: impl Into<String>,
        retention: Duration,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        StoreSpec {
            kind: StoreKind::Session {
                retention_ms: ms(retention),
            },
            ..Stores::key_value(name, key_serde, value_serde)
        }
    }
}
