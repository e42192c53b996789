//! Encoding of the fetch messages for transports.

use super::{FetchRequest, FetchResponse};
use crate::error::{Error, Result};
use bytes::Bytes;

/// Encoding of fetch messages for transports (big-endian, versioned).
impl FetchRequest {
    /// The request as bytes: version `u8` = 0, replica `u32`, leader epoch
    /// `i32`, fetch offset `u64`, last fetched epoch `i32`, durable offset
    /// `u64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(29);
        b.push(0);
        b.extend_from_slice(&self.replica.to_be_bytes());
        b.extend_from_slice(&self.leader_epoch.to_be_bytes());
        b.extend_from_slice(&self.fetch_offset.to_be_bytes());
        b.extend_from_slice(&self.last_fetched_epoch.to_be_bytes());
        b.extend_from_slice(&self.durable_offset.to_be_bytes());
        b
    }

    /// Parses [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    /// [`Error::Transport`] saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<FetchRequest> {
        let bad = |what: &str| Error::Transport {
            reason: format!("bad fetch request: {what}"),
        };
        if b.len() != 29 {
            return Err(bad(&format!("{} bytes, expected 29", b.len())));
        }
        if b[0] != 0 {
            return Err(bad(&format!("version {}", b[0])));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        Ok(FetchRequest {
            replica: u32_at(1),
            leader_epoch: u32_at(5) as i32,
            fetch_offset: u64_at(9),
            last_fetched_epoch: u32_at(17) as i32,
            durable_offset: u64_at(21),
        })
    }
}

impl FetchResponse {
    /// The answer as bytes: a kind byte (0 records, 1 diverging, 2 not
    /// leader, 3 failed) then, for records, epoch `i32`, high watermark
    /// `u64` and the batches; for diverging, epoch `i32` and end offset
    /// `u64`; for not leader, the epoch `i32`; for failed, the reason in
    /// UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            FetchResponse::Records {
                leader_epoch,
                high_watermark,
                batches,
            } => {
                b.push(0);
                b.extend_from_slice(&leader_epoch.to_be_bytes());
                b.extend_from_slice(&high_watermark.to_be_bytes());
                b.extend_from_slice(batches);
            }
            FetchResponse::Diverging { epoch, end_offset } => {
                b.push(1);
                b.extend_from_slice(&epoch.to_be_bytes());
                b.extend_from_slice(&end_offset.to_be_bytes());
            }
            FetchResponse::NotLeader { current } => {
                b.push(2);
                b.extend_from_slice(&current.to_be_bytes());
            }
            FetchResponse::Failed { reason } => {
                b.push(3);
                b.extend_from_slice(reason.as_bytes());
            }
        }
        b
    }

    /// Parses [`encode`](Self::encode)'s bytes (the batches are checked
    /// when applied).
    ///
    /// # Errors
    /// [`Error::Transport`] saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<FetchResponse> {
        let bad = |what: String| Error::Transport {
            reason: format!("bad fetch response: {what}"),
        };
        let i32_at = |i: usize| -> Result<i32> {
            b.get(i..i + 4)
                .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad(format!("cut at byte {i}")))
        };
        let u64_at = |i: usize| -> Result<u64> {
            b.get(i..i + 8)
                .map(|s| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    u64::from_be_bytes(a)
                })
                .ok_or_else(|| bad(format!("cut at byte {i}")))
        };
        match b.first() {
            Some(0) => Ok(FetchResponse::Records {
                leader_epoch: i32_at(1)?,
                high_watermark: u64_at(5)?,
                batches: Bytes::copy_from_slice(&b[13..]),
            }),
            Some(1) if b.len() == 13 => Ok(FetchResponse::Diverging {
                epoch: i32_at(1)?,
                end_offset: u64_at(5)?,
            }),
            Some(2) if b.len() == 5 => Ok(FetchResponse::NotLeader {
                current: i32_at(1)?,
            }),
            Some(3) => Ok(FetchResponse::Failed {
                reason: String::from_utf8(b[1..].to_vec())
                    .map_err(|_| bad("failure reason is not UTF-8".into()))?,
            }),
            Some(k) => Err(bad(format!("kind {k} with {} bytes", b.len()))),
            None => Err(bad("empty".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::NO_EPOCH;
    use super::super::checkpoint::{decode_state, encode_state};
    use super::*;

    #[test]
    fn state_file_and_messages_roundtrip() {
        let s = encode_state(77, 4);
        assert_eq!(decode_state(&s), Ok((77, 4)));
        assert!(decode_state(&s.replace("77", "78")).is_err());
        let req = FetchRequest {
            replica: 2,
            leader_epoch: 5,
            fetch_offset: 1 << 40,
            last_fetched_epoch: NO_EPOCH,
            durable_offset: 9,
        };
        assert_eq!(FetchRequest::decode(&req.encode()).unwrap(), req);
        assert!(FetchRequest::decode(&req.encode()[..28]).is_err());
        for resp in [
            FetchResponse::Records {
                leader_epoch: 3,
                high_watermark: 10,
                batches: Bytes::from_static(b"xyz"),
            },
            FetchResponse::Diverging {
                epoch: 2,
                end_offset: 4,
            },
            FetchResponse::NotLeader { current: 9 },
            FetchResponse::Failed {
                reason: "offset 3 is below the log start 10".into(),
            },
        ] {
            let b = resp.encode();
            assert_eq!(FetchResponse::decode(&b).unwrap(), resp);
            // A failure's reason has no length: any cut of it is a reason.
            let cuts = if matches!(resp, FetchResponse::Failed { .. }) {
                1
            } else {
                b.len().min(12)
            };
            for n in 0..cuts {
                assert!(
                    FetchResponse::decode(&b[..n]).is_err(),
                    "{resp:?} cut at {n}"
                );
            }
        }
    }
}
