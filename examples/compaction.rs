//! Compaction throughput and memory: writes a log where each key is
//! updated many times, compacts it, and prints the cleaner's rate (MB of
//! source segments a second), the key map's memory and the peak heap the
//! pass allocated (counted by a wrapping global allocator), beside a baseline measured in the same run: copying the same
//! segment files with `std::fs::copy` and fsync (the floor for a pass that
//! reads and rewrites every byte).
//!
//! ```text
//! cargo run --release --example compaction -- [--records N] [--keys K]
//!     [--size B] [--key-map-mb M] [--dir PATH]
//! ```
//!
//! Defaults: 2 000 000 records of 100 bytes over 100 000 keys, a 32 MiB key
//! map, data under `./embedlog-compaction` (removed afterwards).

use embedlog::{Compaction, Log, LogConfig, Record};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn arg(name: &str, default: u64) -> Result<u64, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}")),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records = arg("--records", 2_000_000)?;
    let keys = arg("--keys", 100_000)?.max(1);
    let size = arg("--size", 100)? as usize;
    let key_map = arg("--key-map-mb", 32)? as usize * (1 << 20);
    let dir = std::env::args()
        .skip_while(|a| a != "--dir")
        .nth(1)
        .map_or_else(|| PathBuf::from("embedlog-compaction"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);
    let log_dir = dir.join("log");
    let config = LogConfig::default().segment_bytes(64 << 20);
    let log = Log::open(&log_dir, config.clone())?;
    let value = vec![b'v'; size];
    let mut batch = Vec::with_capacity(100);
    for i in 0..records {
        // Keys are updated in a scattered order, as a real table's are.
        let k = i.wrapping_mul(2_654_435_761) % keys;
        batch.push(Record::new(value.clone()).key(format!("key-{k:012}")));
        if batch.len() == 100 {
            log.append(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        log.append(&batch)?;
    }
    log.roll()?;
    log.flush()?;
    let bytes = log.size_bytes();
    let segments = log.segment_count();
    log.close()?;

    // Baseline: copy every segment file and fsync the copies.
    let copy_dir = dir.join("copy");
    std::fs::create_dir_all(&copy_dir)?;
    let t = Instant::now();
    for e in std::fs::read_dir(&log_dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".log") {
            let to = copy_dir.join(e.file_name());
            std::fs::copy(e.path(), &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
    }
    let copy_secs = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&copy_dir)?;

    let log = Log::open(&log_dir, config)?;
    let heap_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(heap_before, Ordering::Relaxed);
    let t = Instant::now();
    let mut passes = Vec::new();
    loop {
        let r = log.compact(Compaction::default().key_map_bytes(key_map))?;
        let more = r.key_map_full;
        passes.push(r);
        if !more {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let heap_peak = PEAK.load(Ordering::Relaxed) - heap_before;
    let after = log.size_bytes();
    let removed: u64 = passes.iter().map(|r| r.records_removed).sum();
    let map_bytes = passes.iter().map(|r| r.key_map_bytes).max().unwrap_or(0);
    let mb = bytes as f64 / 1e6;
    println!("{records} records of {size} B over {keys} keys: {mb:.1} MB in {segments} segments");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| compaction | {:.1} MB/s ({secs:.2} s, {} pass(es)) |",
        mb / secs,
        passes.len()
    );
    println!(
        "| baseline: copy + fsync the segments | {:.1} MB/s ({copy_secs:.2} s) |",
        mb / copy_secs
    );
    println!("| ratio to baseline | {:.2}x |", copy_secs / secs);
    println!(
        "| records removed | {removed} of {records} ({:.1} MB left) |",
        after as f64 / 1e6
    );
    println!(
        "| key map allocated | {:.1} MiB |",
        map_bytes as f64 / 1048576.0
    );
    println!(
        "| peak heap during compaction | {:.1} MiB (segments are read through mmap) |",
        heap_peak as f64 / 1048576.0
    );
    log.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
