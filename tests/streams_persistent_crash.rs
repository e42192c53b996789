//! kill -9 a process writing a `PersistentStore` (buffered writes, early
//! non-durable writes of the buffer, flushes): reopened, the store holds
//! exactly its state as of one flush, no earlier than the last flush the
//! child reported done, and the writes after it are gone whole.
//!
//! Its own binary: the parent re-runs this binary (`current_exe`, `--exact
//! child_writer`) as the child it kills, and a fork made while another
//! test of the same binary holds a store would briefly hold its lock.

use bytes::Bytes;
use embedlog::streams::{BytesStore, PersistentStore, PersistentStoreConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};

const KEYS: u64 = 50;
/// The child flushes after every this many puts.
const FLUSH_EVERY: u64 = 25;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{:02}", i % KEYS))
}

/// A buffer that a few writes overflow, so that between two flushes the
/// buffer goes to the file several times (non-durably).
fn config() -> PersistentStoreConfig {
    PersistentStoreConfig::default().buffer_bytes(400)
}

/// The store's entries, as `key → i` (the put that wrote it).
fn state(store: &PersistentStore) -> BTreeMap<Bytes, u64> {
    store
        .range(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let v: [u8; 8] = v.as_ref().try_into().unwrap();
            (k, u64::from_be_bytes(v))
        })
        .collect()
}

/// The state after puts `0..=last`: each key holds its latest put.
fn model(last: Option<u64>) -> BTreeMap<Bytes, u64> {
    let mut m = BTreeMap::new();
    if let Some(last) = last {
        for i in 0..=last {
            m.insert(key(i), i);
        }
    }
    m
}

/// The child: continues the sequence of puts where the store ends,
/// printing `FLUSHED <i>` after each flush, until killed.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("EMBEDLOG_STORE_CRASH_DIR") else {
        return; // only meaningful as the child
    };
    let mut store = PersistentStore::open_with(Path::new(&dir), config()).unwrap();
    let start = state(&store).values().max().map_or(0, |m| m + 1);
    let mut out = std::io::stdout().lock();
    for i in start.. {
        store
            .put(key(i), Bytes::copy_from_slice(&i.to_be_bytes()))
            .unwrap();
        if (i + 1) % FLUSH_EVERY == 0 {
            store.flush().unwrap();
            writeln!(out, "FLUSHED {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn kill_9_keeps_exactly_one_flushed_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Option<u64> = None;
    let mut states = Vec::new();
    for round in 0..40u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env("EMBEDLOG_STORE_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill after a varying number of flushes: the child is then
        // somewhere in its next puts, early writes or flush.
        let want = 1 + (round * 7) % 5;
        let mut n = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(at) = line.find("FLUSHED ") else {
                continue;
            };
            acked = Some(line[at + 8..].trim().parse().unwrap());
            n += 1;
            if n >= want {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(n, want, "round {round}: the child stopped early");

        let store = PersistentStore::open_with(dir.path(), config())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let got = state(&store);
        let last = got.values().max().copied();
        assert!(
            last.is_some_and(|l| (l + 1) % FLUSH_EVERY == 0),
            "round {round}: the store ends at put {last:?}, not at a flush"
        );
        assert!(
            last >= acked,
            "round {round}: flushed put {acked:?} lost (the store ends at {last:?})"
        );
        assert_eq!(got, model(last), "round {round}: not the state at a flush");
        store.close().unwrap();
        states.push(last);
    }
    eprintln!("the store ended at puts {states:?}");
}
