//! Committed offsets as records of the internal topic `__consumer_offsets`.
//!
//! One record per commit of one partition, compacted by key, so the topic
//! holds about one record per (group, topic, partition) once cleaned.
//!
//! Key, version 1, big-endian:
//!
//! | bytes | field | type |
//! |---|---|---|
//! | 0..2 | version | u16 = 1 |
//! | 2..4 | group length `g` | u16 |
//! | 4..4+g | group id | UTF-8 |
//! | .. +2 | topic length `t` | u16 |
//! | .. +t | topic | UTF-8 |
//! | .. +4 | partition | u32 |
//!
//! Value, version 1 (a null value deletes the commit):
//!
//! | bytes | field | type |
//! |---|---|---|
//! | 0..2 | version | u16 = 1 |
//! | 2..10 | offset | u64 |
//! | 10..18 | commit time, ms since the epoch | i64 |
//! | 18..22 | metadata length `m` | u32 |
//! | 22..22+m | metadata | UTF-8 |

pub use crate::catalog::OFFSETS_TOPIC;
use crate::catalog::TopicPartition;
use crate::record::{Batches, Offset};
use std::collections::BTreeMap;

const VERSION: u16 = 1;

/// A committed offset: where the group resumes reading, with the
/// application's note and when it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to read (one past the last processed record).
    pub offset: Offset,
    /// Free text stored with the commit.
    pub metadata: String,
    /// When it was committed, in milliseconds since the epoch.
    pub commit_timestamp: i64,
}

impl OffsetAndMetadata {
    /// A commit of `offset` with no metadata (the commit time is set when it
    /// is stored).
    pub fn new(offset: Offset) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    /// Adds metadata.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

fn put_str16(b: &mut Vec<u8>, s: &str) {
    // Group ids and topic names are checked to fit u16 before encoding.
    b.extend_from_slice(&(s.len().min(u16::MAX as usize) as u16).to_be_bytes());
    b.extend_from_slice(&s.as_bytes()[..s.len().min(u16::MAX as usize)]);
}

/// The record key of `group`'s commit for `tp`.
pub(crate) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut b = Vec::with_capacity(10 + group.len() + tp.topic.len());
    b.extend_from_slice(&VERSION.to_be_bytes());
    put_str16(&mut b, group);
    put_str16(&mut b, &tp.topic);
    b.extend_from_slice(&tp.partition.to_be_bytes());
    b
}

/// The record value of a commit.
pub(crate) fn encode_value(o: &OffsetAndMetadata) -> Vec<u8> {
    let mut b = Vec::with_capacity(22 + o.metadata.len());
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&o.offset.to_be_bytes());
    b.extend_from_slice(&o.commit_timestamp.to_be_bytes());
    b.extend_from_slice(&(o.metadata.len() as u32).to_be_bytes());
    b.extend_from_slice(o.metadata.as_bytes());
    b
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("{what} at byte {} runs past the end", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    fn str(&mut self, n: usize, what: &str) -> Result<&'a str, String> {
        let s = self.take(n, what)?;
        std::str::from_utf8(s).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn version(&mut self, what: &str) -> Result<(), String> {
        match self.u16(what)? {
            VERSION => Ok(()),
            v => Err(format!("unsupported {what} version {v}")),
        }
    }

    fn end(&self, what: &str) -> Result<(), String> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(format!("{} bytes after the {what}", self.b.len() - self.at))
        }
    }
}

/// Decodes a commit's key; the error says what is wrong.
pub(crate) fn decode_key(b: &[u8]) -> Result<(String, TopicPartition), String> {
    let mut r = Reader { b, at: 0 };
    r.version("key")?;
    let g = usize::from(r.u16("group length")?);
    let group = r.str(g, "group id")?.to_string();
    let t = usize::from(r.u16("topic length")?);
    let topic = r.str(t, "topic")?;
    let partition = r.u32("partition")?;
    r.end("key")?;
    Ok((group, TopicPartition::new(topic, partition)))
}

/// Decodes a commit's value; the error says what is wrong.
pub(crate) fn decode_value(b: &[u8]) -> Result<OffsetAndMetadata, String> {
    let mut r = Reader { b, at: 0 };
    r.version("value")?;
    let offset = r.u64("offset")?;
    let commit_timestamp = r.u64("commit time")? as i64;
    let m = r.u32("metadata length")? as usize;
    let metadata = r.str(m, "metadata")?.to_string();
    r.end("value")?;
    Ok(OffsetAndMetadata {
        offset,
        metadata,
        commit_timestamp,
    })
}

/// Each group's commits, in log order (`None` deletes one).
pub(crate) type CommitLog = BTreeMap<String, Vec<(TopicPartition, Option<OffsetAndMetadata>)>>;

/// Adds the commits in `batches` (records at or after `from`) to `commits`.
/// A record that is not a readable commit is passed to `skip` with why and
/// left out; one whose key is a commit's but whose value is unreadable
/// deletes that commit, as compaction (which keeps the latest record per
/// key) would.
///
/// # Errors
/// Only a batch that cannot be iterated at all (damage the log's reader
/// reports).
pub(crate) fn collect_commits(
    batches: &Batches,
    from: Offset,
    commits: &mut CommitLog,
    mut skip: impl FnMut(u64, &str),
) -> crate::Result<()> {
    for b in batches.iter() {
        let b = b?;
        let records = match b.records() {
            Ok(r) => r,
            Err(e) => {
                skip(b.base_offset(), &e.to_string());
                continue;
            }
        };
        for r in records {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    skip(b.base_offset(), &e.to_string());
                    break;
                }
            };
            if r.offset < from {
                continue;
            }
            let key = r.key.as_deref().unwrap_or_default();
            let (group, tp) = match decode_key(key) {
                Ok(k) => k,
                Err(e) => {
                    skip(r.offset, &e);
                    continue;
                }
            };
            let value = match r.value.as_deref().map(decode_value) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    skip(
                        r.offset,
                        &format!("{e}; the commit of {group} for {tp} is dropped"),
                    );
                    None
                }
            };
            commits.entry(group).or_default().push((tp, value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_every_cut_and_flip() {
        let tp = TopicPartition::new("orders", 7);
        let key = encode_key("billing", &tp);
        assert_eq!(decode_key(&key), Ok(("billing".to_string(), tp)));
        let v = OffsetAndMetadata {
            offset: 42,
            metadata: "note".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        let value = encode_value(&v);
        assert_eq!(decode_value(&value), Ok(v));
        for n in 0..key.len() {
            assert!(decode_key(&key[..n]).is_err(), "key cut at {n}");
        }
        for n in 0..value.len() {
            assert!(decode_value(&value[..n]).is_err(), "value cut at {n}");
        }
        let mut long = value.clone();
        long.push(0);
        assert!(decode_value(&long).unwrap_err().contains("after"));
        let mut bad = key.clone();
        bad[1] = 9;
        assert!(decode_key(&bad).unwrap_err().contains("version 9"));
        let mut bad = value.clone();
        bad[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_value(&bad).is_err());
    }
}
