#![no_main]
//! `embedlog::inspect` on arbitrary bytes: the segment dump (records
//! decoded) and both index checks against a log never panic.
use embedlog::inspect::{Detail, IndexType, parse_index, parse_segment};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dump = parse_segment(data.to_vec(), Some(0), Detail::Records, |_| {});
    assert!(dump.valid_bytes <= dump.size);
    // The first byte splits the rest into an index and its log.
    if let Some((&split, rest)) = data.split_first() {
        let (index, log) = rest.split_at((split as usize).min(rest.len()));
        for kind in [IndexType::Offset, IndexType::Time] {
            let _ = parse_index(kind, index, Some(0), Some(log));
            let _ = parse_index(kind, index, None, None);
        }
    }
});
