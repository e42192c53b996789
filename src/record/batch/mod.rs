//! Kafka's record batch, version 2 (magic 2), byte for byte.
//!
//! A batch is the unit of storage and of atomicity: a reader sees all of a
//! batch or none of it. Format version: **Kafka record batch v2**, with
//! Kafka's compression codecs (gzip, snappy, lz4, zstd; see `compression.rs`
//! for the exact framings). A batch whose codec's cargo feature is off is
//! reported as [`Error::Unsupported`].
//!
//! # Batch header (61 bytes, big-endian)
//!
//! | bytes  | field                  | type  | notes |
//! |--------|------------------------|-------|-------|
//! | 0..8   | base offset            | i64   | offset of the first record; not covered by the CRC |
//! | 8..12  | batch length           | i32   | bytes after this field (total size − 12) |
//! | 12..16 | partition leader epoch | i32   | not covered by the CRC |
//! | 16     | magic                  | i8    | always 2 |
//! | 17..21 | CRC                    | u32   | CRC-32C (Castagnoli) of bytes 21..end |
//! | 21..23 | attributes             | i16   | bits 0–2 compression, 3 timestamp type (1 = log-append time), 4 transactional, 5 control |
//! | 23..27 | last offset delta      | i32   | last record's offset − base offset |
//! | 27..35 | base timestamp         | i64   | first record's timestamp (ms) |
//! | 35..43 | max timestamp          | i64   | largest timestamp in the batch |
//! | 43..51 | producer id            | i64   | −1 without idempotence |
//! | 51..53 | producer epoch         | i16   | −1 without idempotence |
//! | 53..57 | base sequence          | i32   | −1 without idempotence |
//! | 57..61 | record count           | i32   | |
//!
//! # Record (varints are zig-zag, as in protobuf)
//!
//! | field            | type            | notes |
//! |------------------|-----------------|-------|
//! | length           | varint          | bytes of the record after this field |
//! | attributes       | i8              | unused, 0 |
//! | timestamp delta  | varlong         | timestamp − base timestamp |
//! | offset delta     | varint          | offset − base offset |
//! | key length       | varint          | −1 for a null key |
//! | key              | bytes           | |
//! | value length     | varint          | −1 for a null value (tombstone) |
//! | value            | bytes           | |
//! | header count     | varint          | |
//! | headers          | per header: key length (varint), key (UTF-8), value length (varint, −1 = null), value |
//!
//! # Files of this module
//!
//! - `header.rs`: [`BatchHeader`], the attribute bits, the CRC helpers.
//! - `encode.rs`: encoding records into a batch ([`encode_batch`],
//!   [`BatchBuilder`]).
//! - `decode.rs`: one [`Batch`] and its records ([`BatchRecords`]), the
//!   record parser and [`validate_records`].
//! - `batches.rs`: the [`Batches`] view of a log read and its iterators.
//! - `checked.rs`: which batches of a segment this process has checked the
//!   CRC of (each is checked once per process).
//! - `compression.rs`: the codecs, inflating a compressed batch for the
//!   record parsers and compressing an encoded one.
//! - `rewrite.rs`: the helpers only compaction uses (filtering a batch's
//!   records into a copy, [`filter_batch`] and friends).

use crate::error::Error;
use crate::record::varint::VarintError;
use std::path::Path;

mod batches;
mod checked;
mod compression;
mod decode;
mod encode;
mod header;
mod rewrite;
#[cfg(test)]
mod tests;

pub use batches::{BatchIter, Batches, RecordIter, RecordRef, RecordRefIter};
pub(crate) use checked::CrcChecked;
pub use compression::DEFAULT_DECOMPRESSION_LIMIT;
pub(crate) use compression::{CodecError, deflate, inflate};
pub use decode::{Batch, BatchRecords, ControlRecord, ControlType};
pub(crate) use decode::{RecordSpan, ValidateError, headers_of, skip_records, validate_records};
pub use encode::BatchBuilder;
pub(crate) use encode::{BatchParams, encode_batch, encode_marker, fixed_body_size, size_bound_of};
pub use header::{BatchHeader, Compression, TimestampType};
pub(crate) use header::{batch_crc, crc_matches};
pub(crate) use rewrite::{extend_batch, filter_batch, seal_batch};

/// Size of the fixed batch header.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before the batch length field is counted (base offset + length).
pub(crate) const LOG_OVERHEAD: usize = 12;
const MAGIC: i8 = 2;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
/// Smallest possible encoding of one record: length, attributes, timestamp
/// delta, offset delta, key length, value length, header count.
const MIN_RECORD_SIZE: usize = 7;

/// A decoding failure, with the byte position (relative to the start of the
/// input) where it was detected. Callers attach the file and absolute
/// position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    pub(crate) position: usize,
    pub(crate) reason: String,
}

impl FormatError {
    #[cold]
    fn new(position: usize, reason: impl Into<String>) -> Self {
        FormatError {
            position,
            reason: reason.into(),
        }
    }

    #[cold]
    fn varint(position: usize, what: &str, e: VarintError) -> Self {
        FormatError::new(position, format!("{what}: {}", e.as_str()))
    }

    /// As an error about bytes in `path`, the input starting at `base`.
    pub(crate) fn in_file(self, path: &Path, base: u64) -> Error {
        Error::corrupt(path, base + self.position as u64, self.reason)
    }

    /// As an error about in-memory bytes, the input starting at `base`.
    pub(crate) fn in_memory(self, base: u64) -> Error {
        Error::InvalidBatch {
            position: base + self.position as u64,
            reason: self.reason,
        }
    }
}
