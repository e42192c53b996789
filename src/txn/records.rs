//! The records of the internal topic `__transaction_state` (one compacted
//! partition), big-endian, embedlog's own layout:
//!
//! Key: version `u16` = 1, kind `u8`, then for kinds 0 and 1 the
//! transactional id (length `u16`, UTF-8).
//!
//! | kind | what | value |
//! |---|---|---|
//! | 0 | a transaction's state | version `u16` = 1, producer id `i64`, epoch `i16`, timeout ms `i32`, status `u8` (0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort, as Kafka numbers them), start ms `i64`, last update ms `i64`, partition count `u32`, then per partition topic (length `u16`, UTF-8) and partition `u32` |
//! | 1 | the group offsets a transaction commits | version `u16` = 1, count `u32`, then per offset group, topic (each length `u16`, UTF-8), partition `u32`, offset `u64`, metadata (length `u32`, UTF-8); a tombstone once they are stored |
//! | 2 | the producer id block | version `u16` = 1, the first id not handed out `i64` |
//!
//! A PrepareCommit and its offsets are appended as one batch: the decision
//! and what it commits are durable together or not at all.

use crate::catalog::TopicPartition;
use crate::group::OffsetAndMetadata;
use std::collections::BTreeSet;

const VERSION: u16 = 1;

/// Where a transaction is, as Kafka names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionState {
    /// No transaction open (after `init_transactions`, or a completed one).
    Empty,
    /// Records were sent in a transaction not yet ended.
    Ongoing,
    /// Commit decided; markers being written.
    PrepareCommit,
    /// Abort decided; markers being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction was aborted.
    CompleteAbort,
}

impl TransactionState {
    fn code(self) -> u8 {
        match self {
            TransactionState::Empty => 0,
            TransactionState::Ongoing => 1,
            TransactionState::PrepareCommit => 2,
            TransactionState::PrepareAbort => 3,
            TransactionState::CompleteCommit => 4,
            TransactionState::CompleteAbort => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => TransactionState::Empty,
            1 => TransactionState::Ongoing,
            2 => TransactionState::PrepareCommit,
            3 => TransactionState::PrepareAbort,
            4 => TransactionState::CompleteCommit,
            5 => TransactionState::CompleteAbort,
            _ => return None,
        })
    }
}

/// Kinds of key.
pub(crate) const KIND_STATE: u8 = 0;
pub(crate) const KIND_OFFSETS: u8 = 1;
pub(crate) const KIND_ID_BLOCK: u8 = 2;

/// A transaction's stored state (kind 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateValue {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TransactionState,
    pub(crate) start_ms: i64,
    pub(crate) update_ms: i64,
    pub(crate) partitions: BTreeSet<TopicPartition>,
}

/// Offsets of one transaction: (group, partition, offset).
pub(crate) type TxnOffsets = Vec<(String, TopicPartition, OffsetAndMetadata)>;

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode_key(kind: u8, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + id.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.push(kind);
    if kind != KIND_ID_BLOCK {
        put_str16(&mut out, id);
    }
    out
}

pub(crate) fn encode_state(v: &StateValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.code());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    out.extend_from_slice(&v.update_ms.to_be_bytes());
    out.extend_from_slice(&(v.partitions.len() as u32).to_be_bytes());
    for tp in &v.partitions {
        put_str16(&mut out, &tp.topic);
        out.extend_from_slice(&tp.partition.to_be_bytes());
    }
    out
}

pub(crate) fn encode_offsets(offsets: &TxnOffsets) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    for (group, tp, o) in offsets {
        put_str16(&mut out, group);
        put_str16(&mut out, &tp.topic);
        out.extend_from_slice(&tp.partition.to_be_bytes());
        out.extend_from_slice(&o.offset.to_be_bytes());
        out.extend_from_slice(&(o.metadata.len() as u32).to_be_bytes());
        out.extend_from_slice(o.metadata.as_bytes());
    }
    out
}

pub(crate) fn encode_id_block(next: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&next.to_be_bytes());
    out
}

/// A cursor over a record's bytes; every read says what was missing.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
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
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
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
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn str(&mut self, n: usize, what: &str) -> Result<String, String> {
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    fn str16(&mut self, what: &str) -> Result<String, String> {
        let n = self.u16(what)? as usize;
        self.str(n, what)
    }
    fn version(&mut self) -> Result<(), String> {
        match self.u16("version")? {
            VERSION => Ok(()),
            v => Err(format!("unknown version {v}")),
        }
    }
    fn done(&self) -> Result<(), String> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(format!("{} bytes left over", self.b.len() - self.at))
        }
    }
}

/// Decodes a key: (kind, transactional id).
pub(crate) fn decode_key(b: &[u8]) -> Result<(u8, String), String> {
    let mut c = Cursor { b, at: 0 };
    c.version()?;
    let kind = c.u8("kind")?;
    let id = match kind {
        KIND_STATE | KIND_OFFSETS => c.str16("transactional id")?,
        KIND_ID_BLOCK => String::new(),
        k => return Err(format!("unknown key kind {k}")),
    };
    c.done()?;
    Ok((kind, id))
}

pub(crate) fn decode_state(b: &[u8]) -> Result<StateValue, String> {
    let mut c = Cursor { b, at: 0 };
    c.version()?;
    let producer_id = c.u64("producer id")? as i64;
    let epoch = c.u16("epoch")? as i16;
    let timeout_ms = c.u32("timeout")? as i32;
    let code = c.u8("status")?;
    let state =
        TransactionState::from_code(code).ok_or_else(|| format!("unknown status {code}"))?;
    let start_ms = c.u64("start time")? as i64;
    let update_ms = c.u64("update time")? as i64;
    let n = c.u32("partition count")?;
    let mut partitions = BTreeSet::new();
    for _ in 0..n {
        let topic = c.str16("topic")?;
        let partition = c.u32("partition")?;
        partitions.insert(TopicPartition::new(&topic, partition));
    }
    c.done()?;
    Ok(StateValue {
        producer_id,
        epoch,
        timeout_ms,
        state,
        start_ms,
        update_ms,
        partitions,
    })
}

pub(crate) fn decode_offsets(b: &[u8]) -> Result<TxnOffsets, String> {
    let mut c = Cursor { b, at: 0 };
    c.version()?;
    let n = c.u32("offset count")?;
    let mut out = Vec::new();
    for _ in 0..n {
        let group = c.str16("group")?;
        let topic = c.str16("topic")?;
        let partition = c.u32("partition")?;
        let offset = c.u64("offset")?;
        let m = c.u32("metadata length")? as usize;
        let metadata = c.str(m, "metadata")?;
        out.push((
            group,
            TopicPartition::new(&topic, partition),
            OffsetAndMetadata::new(offset).with_metadata(metadata),
        ));
    }
    c.done()?;
    Ok(out)
}

pub(crate) fn decode_id_block(b: &[u8]) -> Result<i64, String> {
    let mut c = Cursor { b, at: 0 };
    c.version()?;
    let next = c.u64("next producer id")? as i64;
    c.done()?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_described() {
        let v = StateValue {
            producer_id: 42,
            epoch: 3,
            timeout_ms: 60_000,
            state: TransactionState::PrepareCommit,
            start_ms: 10,
            update_ms: 20,
            partitions: [TopicPartition::new("a", 0), TopicPartition::new("b", 7)]
                .into_iter()
                .collect(),
        };
        let bytes = encode_state(&v);
        assert_eq!(decode_state(&bytes).unwrap(), v);
        assert!(
            decode_state(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("past the end")
        );
        let offsets = vec![(
            "g".to_string(),
            TopicPartition::new("in", 1),
            OffsetAndMetadata::new(9).with_metadata("m"),
        )];
        assert_eq!(decode_offsets(&encode_offsets(&offsets)).unwrap(), offsets);
        assert_eq!(decode_id_block(&encode_id_block(1000)).unwrap(), 1000);
        assert_eq!(
            decode_key(&encode_key(KIND_STATE, "tx")).unwrap(),
            (KIND_STATE, "tx".to_string())
        );
        assert_eq!(
            decode_key(&encode_key(KIND_ID_BLOCK, "")).unwrap().0,
            KIND_ID_BLOCK
        );
        assert!(decode_key(&[0, 1, 9]).unwrap_err().contains("kind"));
        assert!(decode_key(&[0, 2, 0]).unwrap_err().contains("version"));
    }
}
