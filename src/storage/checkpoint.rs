//! The per-partition checkpoint file: log start offset, recovery point and
//! the clean-shutdown record.
//!
//! Format version 2, big-endian, replaced atomically (version 1 is read
//! too: it lacks the cleaner offset, and its segment count is at 48..52):
//!
//! | bytes   | field           | type | notes |
//! |---------|-----------------|------|-------|
//! | 0..4    | magic           | `b"ELCK"` | |
//! | 4..6    | version         | u16  | 2 |
//! | 6..8    | flags           | u16  | bit 0: clean shutdown |
//! | 8..16   | log start       | u64  | oldest readable offset |
//! | 16..24  | recovery point  | u64  | every offset below it was fsync'd |
//! | 24..32  | active base     | u64  | clean shutdown: base offset of the last segment |
//! | 32..40  | active length   | u64  | clean shutdown: its length in bytes |
//! | 40..48  | next offset     | u64  | clean shutdown: the log end offset |
//! | 48..56  | cleaned to      | u64  | the compaction cleaner's first dirty offset |
//! | 56..60  | segment count   | u32  | entries of the table that follows |
//! | 60..    | segment table   | 56 bytes each | base offset, log length, `.index` length, `.timeindex` length (u64 each), max timestamp (i64), offset of max timestamp (u64), CRC-32C of `.index`, CRC-32C of `.timeindex` (u32 each) |
//! | last 4  | CRC-32C         | u32  | of every byte before it |
//!
//! The segment table describes segments whose files were complete (rolled,
//! indexes trimmed, fsync'd) when the checkpoint was written. On open it lets
//! a segment whose log length still matches prove its indexes complete
//! without reading the log: an index cut at an entry boundary or zero-filled
//! is caught and rebuilt.

use super::vfs::{Vfs, write_atomic};
use crate::error::{Error, Result};
use crate::record::Offset;
use std::io;
use std::path::Path;

pub(crate) const FILE_NAME: &str = "embedlog.checkpoint";
const MAGIC: &[u8; 4] = b"ELCK";
const VERSION: u16 = 2;
const FIXED: usize = 60;
const FIXED_V1: usize = 52;
const ENTRY: usize = 56;

/// What a clean shutdown recorded about the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub(crate) active_base: Offset,
    pub(crate) active_len: u64,
    pub(crate) next_offset: Offset,
}

/// Sizes and max timestamp of a complete segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub(crate) base: Offset,
    pub(crate) log_len: u64,
    pub(crate) index_len: u64,
    pub(crate) time_index_len: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max: Offset,
    pub(crate) index_crc: u32,
    pub(crate) time_index_crc: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub(crate) log_start: Offset,
    pub(crate) recovery_point: Offset,
    pub(crate) clean: Option<CleanShutdown>,
    /// Compaction has cleaned every offset below this one (the cleaner's
    /// first dirty offset; 0 if it never ran).
    pub(crate) cleaned_to: Offset,
    pub(crate) segments: Vec<SegmentSummary>,
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED + ENTRY * self.segments.len() + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&u16::from(self.clean.is_some()).to_be_bytes());
        b.extend_from_slice(&self.log_start.to_be_bytes());
        b.extend_from_slice(&self.recovery_point.to_be_bytes());
        let c = self.clean.unwrap_or(CleanShutdown {
            active_base: 0,
            active_len: 0,
            next_offset: 0,
        });
        for v in [c.active_base, c.active_len, c.next_offset] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&self.cleaned_to.to_be_bytes());
        // The table is bounded by the number of segments, far below u32::MAX.
        b.extend_from_slice(&(self.segments.len() as u32).to_be_bytes());
        for s in &self.segments {
            for v in [s.base, s.log_len, s.index_len, s.time_index_len] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b.extend_from_slice(&s.max_timestamp.to_be_bytes());
            b.extend_from_slice(&s.offset_of_max.to_be_bytes());
            b.extend_from_slice(&s.index_crc.to_be_bytes());
            b.extend_from_slice(&s.time_index_crc.to_be_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a checkpoint; the error says what is wrong.
    pub(crate) fn decode(b: &[u8]) -> std::result::Result<Checkpoint, String> {
        if b.len() < FIXED_V1 + 4 {
            return Err(format!(
                "expected at least {} bytes, found {}",
                FIXED_V1 + 4,
                b.len()
            ));
        }
        if &b[0..4] != MAGIC {
            return Err("bad magic".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc != crc32c::crc32c(body) {
            return Err("CRC-32C mismatch".into());
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let version = u16::from_be_bytes([b[4], b[5]]);
        let fixed = match version {
            1 => FIXED_V1,
            VERSION if body.len() >= FIXED => FIXED,
            VERSION => return Err(format!("{} bytes is too short for version 2", b.len())),
            _ => return Err(format!("unsupported version {version}")),
        };
        let flags = u16::from_be_bytes([b[6], b[7]]);
        let n =
            u32::from_be_bytes([b[fixed - 4], b[fixed - 3], b[fixed - 2], b[fixed - 1]]) as usize;
        if (body.len() - fixed) / ENTRY != n || !(body.len() - fixed).is_multiple_of(ENTRY) {
            return Err(format!(
                "segment table of {n} entries does not match the file length"
            ));
        }
        let segments = (0..n)
            .map(|i| {
                let at = fixed + i * ENTRY;
                SegmentSummary {
                    base: u64_at(at),
                    log_len: u64_at(at + 8),
                    index_len: u64_at(at + 16),
                    time_index_len: u64_at(at + 24),
                    max_timestamp: u64_at(at + 32) as i64,
                    offset_of_max: u64_at(at + 40),
                    index_crc: u32::from_be_bytes([
                        body[at + 48],
                        body[at + 49],
                        body[at + 50],
                        body[at + 51],
                    ]),
                    time_index_crc: u32::from_be_bytes([
                        body[at + 52],
                        body[at + 53],
                        body[at + 54],
                        body[at + 55],
                    ]),
                }
            })
            .collect();
        Ok(Checkpoint {
            log_start: u64_at(8),
            recovery_point: u64_at(16),
            clean: (flags & 1 == 1).then(|| CleanShutdown {
                active_base: u64_at(24),
                active_len: u64_at(32),
                next_offset: u64_at(40),
            }),
            cleaned_to: if version == 1 { 0 } else { u64_at(48) },
            segments,
        })
    }

    /// Reads the checkpoint of the log in `dir`; `None` if there is none.
    pub(crate) fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(FILE_NAME);
        match vfs.read(&path) {
            // A table of more than 2^24 segments is not one we wrote.
            Ok(b) if b.len() > FIXED + 4 + ENTRY * (1 << 24) => Err(Error::corrupt(
                &path,
                0,
                format!("{} bytes is too large for a checkpoint", b.len()),
            )),
            Ok(b) => Checkpoint::decode(&b).map(Some).map_err(|reason| {
                Error::corrupt(
                    &path,
                    0,
                    format!("{reason}; delete the file to recover the whole log from its segments"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    /// Replaces the checkpoint of the log in `dir` atomically.
    pub(crate) fn store(&self, vfs: &dyn Vfs, dir: &Path) -> Result<()> {
        write_atomic(vfs, &dir.join(FILE_NAME), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let cp = Checkpoint {
            log_start: 5,
            recovery_point: 77,
            clean: Some(CleanShutdown {
                active_base: 70,
                active_len: 4096,
                next_offset: 80,
            }),
            cleaned_to: 42,
            segments: vec![SegmentSummary {
                base: 0,
                log_len: 999,
                index_len: 16,
                time_index_len: 24,
                max_timestamp: -5,
                offset_of_max: 3,
                index_crc: 7,
                time_index_crc: 0xdead_beef,
            }],
        };
        let b = cp.encode();
        assert_eq!(Checkpoint::decode(&b), Ok(cp.clone()));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(Checkpoint::decode(&d).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(Checkpoint::decode(&b[..n]).is_err(), "cut at {n}");
        }
        let dirty = Checkpoint { clean: None, ..cp };
        assert_eq!(Checkpoint::decode(&dirty.encode()), Ok(dirty));
    }

    /// Version 1 files (written before compaction existed) still open,
    /// with nothing cleaned.
    #[test]
    fn reads_version_1() {
        let cp = Checkpoint {
            log_start: 3,
            recovery_point: 9,
            clean: None,
            cleaned_to: 0,
            segments: vec![],
        };
        let v2 = cp.encode();
        // A version 1 file is the version 2 layout without `cleaned to`.
        let mut v1 = v2[..48].to_vec();
        v1[4..6].copy_from_slice(&1u16.to_be_bytes());
        v1.extend_from_slice(&v2[56..60]);
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(Checkpoint::decode(&v1), Ok(cp));
        let mut v3 = v2.clone();
        v3[4..6].copy_from_slice(&3u16.to_be_bytes());
        let n = v3.len() - 4;
        let crc = crc32c::crc32c(&v3[..n]);
        v3[n..].copy_from_slice(&crc.to_be_bytes());
        assert!(Checkpoint::decode(&v3).unwrap_err().contains("version 3"));
    }
}
