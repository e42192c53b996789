//! The replica's files: the leader-epoch checkpoint and the replication
//! state (high watermark and epoch).

use super::{EpochCache, ReplicaLog};
use crate::error::{Error, Result};
use crate::record::Offset;
use crate::storage::vfs::{RealFs, write_atomic};
use std::path::Path;

pub(super) const EPOCH_FILE: &str = "leader-epoch-checkpoint";
pub(super) const STATE_FILE: &str = "replication.checkpoint";

/// The replication state file: the high watermark and the current epoch.
pub(super) fn encode_state(hw: Offset, epoch: i32) -> String {
    let body = format!("0\n{hw} {epoch}\n");
    format!("{body}{:08x}\n", crc32c::crc32c(body.as_bytes()))
}

pub(crate) fn decode_state(text: &str) -> std::result::Result<(Offset, i32), String> {
    let mut lines = text.lines();
    let (Some(v), Some(l), Some(c), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err("expected 3 lines".into());
    };
    let body = format!("{v}\n{l}\n");
    if u32::from_str_radix(c, 16).ok() != Some(crc32c::crc32c(body.as_bytes())) {
        return Err("CRC-32C mismatch".into());
    }
    if v != "0" {
        return Err(format!("unsupported version {v}"));
    }
    let mut f = l.split(' ');
    match (
        f.next().and_then(|x| x.parse().ok()),
        f.next().and_then(|x| x.parse().ok()),
    ) {
        (Some(hw), Some(e)) => Ok((hw, e)),
        _ => Err(format!("bad line {l:?}")),
    }
}

pub(super) fn load_file<T>(
    path: &Path,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => {
            let text = String::from_utf8(b).map_err(|_| Error::Metadata {
                path: path.to_path_buf(),
                reason: "not UTF-8".into(),
            })?;
            parse(&text).map(Some).map_err(|reason| Error::Metadata {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl ReplicaLog {
    pub(super) fn persist_epochs(&self, epochs: &EpochCache) -> Result<()> {
        write_atomic(
            &RealFs,
            &self.dir.join(EPOCH_FILE),
            epochs.encode().as_bytes(),
        )
    }

    pub(super) fn persist_state(&self, hw: Offset, epoch: i32) -> Result<()> {
        write_atomic(
            &RealFs,
            &self.dir.join(STATE_FILE),
            encode_state(hw, epoch).as_bytes(),
        )
    }
}
