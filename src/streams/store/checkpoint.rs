//! A task's changelog checkpoint (Kafka Streams' `.checkpoint`): for each
//! changelog topic-partition of its persistent stores, the offset to
//! restore from (the offset after the last record the stores hold).
//!
//! Format version 1, big-endian, replaced atomically (temporary file,
//! fsync, rename, directory fsync: after a crash the file is the old one
//! or the new one, never a mix):
//!
//! | bytes   | field         | type      | notes |
//! |---------|---------------|-----------|-------|
//! | 0..4    | magic         | `b"ELSC"` | |
//! | 4..6    | version       | u16       | 1 |
//! | 6..10   | entry count   | u32       | entries that follow, sorted by topic then partition, no two alike |
//! | 10..    | entries       | 14 + topic length bytes each | topic length (u16), topic (UTF-8), partition (u32), offset (i64) |
//! | last 4  | CRC-32C       | u32       | of every byte before it |
//!
//! A missing file is an empty map (nothing checkpointed: restore from the
//! beginning). A damaged one is [`Error::Corrupt`], not an empty map: a
//! caller that took it for "absent" and restored persistent stores from
//! their changelogs' beginning *without wiping them* would keep entries
//! the changelog has since deleted; the runtime decides what to do (wipe
//! the task's persistent stores and restore them in full, as Kafka does
//! under exactly-once for a store without a checkpoint), and the error
//! says so to a person reading it.

use crate::storage::vfs::{RealFs, Vfs, write_atomic};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The checkpoint's file name in a task's state directory.
pub(crate) const FILE_NAME: &str = "changelog.checkpoint";

/// Changelog topic and partition → the offset to restore from.
pub(crate) type Offsets = BTreeMap<(String, u32), i64>;

const MAGIC: &[u8; 4] = b"ELSC";
const VERSION: u16 = 1;
/// Magic, version, entry count.
const HEADER: usize = 10;
/// An entry without its topic's bytes.
const ENTRY_FIXED: usize = 2 + 4 + 8;
/// Larger files are not ones we wrote (a million entries of long topic
/// names stay far below).
const MAX_FILE: u64 = 1 << 30;

/// Encodes `offsets`.
///
/// # Errors
/// [`Error::InvalidArgument`] if a topic name is longer than 65535 bytes
/// or there are more than 2^32 - 1 entries.
pub(crate) fn encode(offsets: &Offsets) -> Result<Vec<u8>> {
    let count = u32::try_from(offsets.len()).map_err(|_| {
        Error::InvalidArgument(format!(
            "{} changelog partitions are too many for a checkpoint",
            offsets.len()
        ))
    })?;
    let mut b = Vec::with_capacity(
        HEADER
            + offsets
                .keys()
                .map(|(t, _)| ENTRY_FIXED + t.len())
                .sum::<usize>()
            + 4,
    );
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    for ((topic, partition), offset) in offsets {
        let len = u16::try_from(topic.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "a topic name of {} bytes is too long for a checkpoint",
                topic.len()
            ))
        })?;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&partition.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    Ok(b)
}

/// Decodes a checkpoint; the error gives the byte position and what is
/// wrong.
pub(crate) fn decode(b: &[u8]) -> std::result::Result<Offsets, (u64, String)> {
    let at = |pos: usize, reason: String| (pos as u64, reason);
    if b.len() < HEADER + 4 {
        return Err(at(
            0,
            format!("{} bytes is shorter than a checkpoint's header", b.len()),
        ));
    }
    if &b[0..4] != MAGIC {
        return Err(at(0, "not a changelog checkpoint (bad magic)".into()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc != crc32c::crc32c(body) {
        return Err(at(body.len(), "CRC-32C mismatch".into()));
    }
    let version = u16::from_be_bytes([b[4], b[5]]);
    if version != VERSION {
        return Err(at(4, format!("unsupported checkpoint version {version}")));
    }
    let count = u32::from_be_bytes([b[6], b[7], b[8], b[9]]) as usize;
    let mut pos = HEADER;
    if count > (body.len() - pos) / ENTRY_FIXED {
        return Err(at(
            6,
            format!(
                "{count} entries cannot fit in {} bytes",
                body.len() - HEADER
            ),
        ));
    }
    let mut out = Offsets::new();
    let mut last: Option<(String, u32)> = None;
    for _ in 0..count {
        let entry = pos;
        let take = |pos: &mut usize, n: usize| -> std::result::Result<&[u8], (u64, String)> {
            let s = body.get(*pos..*pos + n).ok_or_else(|| {
                at(
                    entry,
                    format!(
                        "an entry runs past the end of the data ({} bytes)",
                        body.len()
                    ),
                )
            })?;
            *pos += n;
            Ok(s)
        };
        let len = take(&mut pos, 2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let topic = std::str::from_utf8(take(&mut pos, len)?)
            .map_err(|_| at(entry + 2, "a topic name is not UTF-8".into()))?
            .to_owned();
        let p = take(&mut pos, 4)?;
        let partition = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let o = take(&mut pos, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(o);
        let offset = i64::from_be_bytes(a);
        let key = (topic, partition);
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(at(
                entry,
                format!("entry {}-{} is out of order or repeated", key.0, key.1),
            ));
        }
        last = Some(key.clone());
        out.insert(key, offset);
    }
    if pos != body.len() {
        return Err(at(
            pos,
            format!("{} bytes follow the last entry", body.len() - pos),
        ));
    }
    Ok(out)
}

/// Replaces the checkpoint at `path` with `offsets`, atomically and
/// durably (the directory must exist).
///
/// # Errors
/// [`Error::Io`] (or [`Error::DiskFull`]) naming the file and the step
/// that failed; [`Error::InvalidArgument`] as [`encode`].
pub(crate) fn write_checkpoint(path: &Path, offsets: &Offsets) -> Result<()> {
    write_atomic(&RealFs, path, &encode(offsets)?)
}

/// The checkpoint at `path`; empty if there is none.
///
/// # Errors
/// [`Error::Corrupt`] if the file is damaged (it says where, and what to
/// do); [`Error::Io`] if it cannot be read.
pub(crate) fn read_checkpoint(path: &Path) -> Result<Offsets> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if len > MAX_FILE {
        return Err(damaged(path, 0, format!("{len} bytes is too large")));
    }
    let bytes = match RealFs.read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    decode(&bytes).map_err(|(position, reason)| damaged(path, position, reason))
}

/// Deletes the checkpoint at `path` durably (its directory is fsync'd);
/// a missing file is not an error. Under exactly-once a task deletes it
/// when it starts and writes it when it closes cleanly, so that a crash
/// in between leaves none.
///
/// # Errors
/// [`Error::Io`] naming the file or directory.
pub(crate) fn delete_checkpoint(path: &Path) -> Result<()> {
    match RealFs.remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("delete", path, e)),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    RealFs
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

fn damaged(path: &Path, position: u64, reason: String) -> Error {
    Error::corrupt(
        path,
        position,
        format!(
            "{reason}; the changelog checkpoint is damaged: delete it and wipe the task's \
             persistent stores to restore them from their changelogs' beginning"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Offsets {
        Offsets::from([
            (("app-counts-changelog".to_owned(), 0), 42),
            (("app-counts-changelog".to_owned(), 3), 0),
            (("app-sums-changelog".to_owned(), 1), i64::MAX),
            (("é".to_owned(), u32::MAX), -4),
        ])
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read_checkpoint(&path).unwrap(), Offsets::new(), "missing");
        write_checkpoint(&path, &sample()).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), sample());
        write_checkpoint(&path, &Offsets::new()).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), Offsets::new(), "replaced");
        assert!(!dir.path().join("changelog.checkpoint.tmp").exists());
        delete_checkpoint(&path).unwrap();
        assert!(!path.exists());
        delete_checkpoint(&path).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), Offsets::new());
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_caught() {
        let b = encode(&sample()).unwrap();
        assert_eq!(decode(&b), Ok(sample()));
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut d = b.clone();
                d[i] ^= 1 << bit;
                assert!(decode(&d).is_err(), "flip of bit {bit} at {i}");
            }
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "cut at {n}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    /// Damage the CRC does not catch (a file written wrongly, with a
    /// valid CRC) is still refused, without panics or huge allocations.
    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        body
    }

    #[test]
    fn lying_lengths_and_orders_are_refused() {
        let b = encode(&sample()).unwrap();
        let body = &b[..b.len() - 4];
        // A count larger than the entries.
        let mut d = body.to_vec();
        d[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        let (pos, why) = decode(&with_crc(d)).unwrap_err();
        assert_eq!(pos, 6, "{why}");
        // A count smaller than the entries: bytes left over.
        let mut d = body.to_vec();
        d[6..10].copy_from_slice(&1u32.to_be_bytes());
        assert!(decode(&with_crc(d)).unwrap_err().1.contains("follow"));
        // A topic length past the end.
        let mut d = body.to_vec();
        d[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(decode(&with_crc(d)).unwrap_err().1.contains("past the end"));
        // Not UTF-8.
        let one = encode(&Offsets::from([(("ab".to_owned(), 0), 1)])).unwrap();
        let mut d = one[..one.len() - 4].to_vec();
        d[12] = 0xff;
        assert!(decode(&with_crc(d)).unwrap_err().1.contains("UTF-8"));
        // The same entry twice.
        let mut d = one[..one.len() - 4].to_vec();
        d[6..10].copy_from_slice(&2u32.to_be_bytes());
        let entry = one[10..one.len() - 4].to_vec();
        d.extend_from_slice(&entry);
        assert!(decode(&with_crc(d)).unwrap_err().1.contains("repeated"));
        // Another version.
        let mut d = body.to_vec();
        d[4..6].copy_from_slice(&2u16.to_be_bytes());
        assert!(decode(&with_crc(d)).unwrap_err().1.contains("version 2"));
    }

    #[test]
    fn a_damaged_file_is_a_corrupt_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write_checkpoint(&path, &sample()).unwrap();
        let mut b = std::fs::read(&path).unwrap();
        b[12] ^= 0x20;
        std::fs::write(&path, &b).unwrap();
        let e = read_checkpoint(&path).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("CRC") && msg.contains("wipe"), "{msg}");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            read_checkpoint(&path),
            Err(Error::Corrupt { position: 0, .. })
        ));
    }

    #[test]
    fn writing_into_a_missing_directory_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-task").join(FILE_NAME);
        let e = write_checkpoint(&path, &sample()).unwrap_err();
        assert!(matches!(e, Error::Io { op: "create", .. }), "{e:?}");
        assert!(e.to_string().contains("no-such-task"), "{e}");
    }

    #[test]
    fn overlong_topic_names_are_refused() {
        let long = Offsets::from([(("t".repeat(70_000), 0), 1)]);
        assert!(matches!(encode(&long), Err(Error::InvalidArgument(_))));
    }
}
