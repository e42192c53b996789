//! Durable storage: segments, indexes, and the partition log. Knows nothing
//! of topics, producers or consumers.

mod checkpoint;
pub(crate) mod dirlock;
#[cfg(test)]
mod fault_tests;
#[cfg(any(test, feature = "fault-injection"))]
pub(crate) mod faulty;
mod index;
pub(crate) mod inspect;
mod log;
mod mmap;
mod positions;
pub(crate) mod prealloc;
pub(crate) mod producer_state;
mod read_only;
mod reader;
mod segment;
#[cfg(test)]
mod txn_fault_tests;
pub(crate) mod vfs;

pub(crate) use log::Marker;
pub use log::compact::{Compaction, CompactionReport, MIN_KEY_MAP_BYTES};
pub use log::{
    AppendInfo, Durability, Log, LogConfig, Notify, ReadLimit, Retention, RetentionReport,
    VerifyReport,
};
#[cfg(feature = "async")]
pub use log::{WaitFor, WaitPast};
pub use producer_state::AbortedTransaction;
pub(crate) use producer_state::{AbortedFilter, next_sequence};
pub use read_only::ReadOnlyLog;
pub use reader::{LogReader, LogRecords};

/// Fuzzing and testing entry points for the pure parsers of on-disk bytes.
#[doc(hidden)]
pub mod parse {
    /// Checks an index file's bytes (`time` selects the time index layout).
    pub fn check_index(time: bool, bytes: &[u8]) -> Result<usize, String> {
        let kind = if time {
            super::index::IndexKind::Time
        } else {
            super::index::IndexKind::Offset
        };
        super::index::check_entries(kind, bytes)
    }

    /// Scans a segment's bytes as recovery does; returns the valid length
    /// and the next offset.
    pub fn scan_segment(bytes: &[u8], base: u64) -> (u64, u64) {
        match super::segment::scan(bytes, 0, base, base, true, |_, _| Ok(())) {
            Ok(end) => (end.valid_len, end.next_offset),
            Err(_) => (0, base),
        }
    }

    /// Decodes a checkpoint file's bytes.
    pub fn checkpoint(bytes: &[u8]) -> bool {
        super::checkpoint::Checkpoint::decode(bytes).is_ok()
    }
}
