//! Kafka's batch compression codecs, in the bytes Kafka's clients write.
//!
//! A compressed batch keeps its 61-byte header as it is (the attributes say
//! which codec) and compresses everything after it: the records, encoded as
//! in an uncompressed batch. So decoding one means *inflating* it: the same
//! header followed by the decompressed records, a buffer every record
//! parser of this module reads as if the batch had never been compressed.
//! Compressing is the reverse ([`deflate`]): the records of an
//! uncompressed batch are compressed and the length and CRC written again.
//!
//! | codec  | crate    | format |
//! |--------|----------|--------|
//! | gzip   | flate2   | RFC 1952 gzip members (several in a row are read, as Java's `GZIPInputStream` does); level 6 |
//! | snappy | snap     | written in the xerial framing Kafka's Java client writes (magic `82 53 4E 41 50 50 59 00`, version 1, compatible version 1, then big-endian `u32` length + raw snappy block, blocks of 32 KiB input); read in that framing or as one raw snappy block (what some non-Java clients send) |
//! | lz4    | lz4_flex | LZ4 frame format (magic `04 22 4D 18`), independent 64 KiB blocks, no checksums but the header's, as Kafka's `Lz4BlockOutputStream` |
//! | zstd   | zstd     | one Zstandard frame, level 3 (Kafka's default) |
//!
//! Each codec is a cargo feature (`gzip`, `snappy`, `lz4`, `zstd`;
//! `compression` for all): a batch whose codec is not compiled in is
//! refused with [`Error::Unsupported`] naming the feature, never misread.
//!
//! Decompression is bounded: the records of one batch may not inflate past
//! a limit (a log's `max_batch_bytes`, Kafka's `max.message.bytes`, or
//! [`DEFAULT_DECOMPRESSION_LIMIT`] for bytes from elsewhere), so a small
//! hostile batch cannot make a reader allocate without end.

use super::header::COMPRESSION_MASK;
use super::{BATCH_HEADER_SIZE, BatchHeader, CRC_OFFSET, Compression, LOG_OVERHEAD, batch_crc};
use crate::error::{Error, Result};
use bytes::Bytes;

/// How far the records of one batch may inflate when no log configuration
/// says otherwise ([`Batches::from_bytes`](super::Batches::from_bytes),
/// [`Batch::new`](super::Batch::new), read-only views): 64 MiB.
pub const DEFAULT_DECOMPRESSION_LIMIT: usize = 64 << 20;

/// Why a batch's payload did not decompress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodecError {
    /// The codec's cargo feature is not enabled (or the code is unknown).
    Unsupported(String),
    /// The compressed bytes are invalid, or inflate past the limit.
    Invalid(String),
}

impl Compression {
    /// The attribute bits of this codec.
    pub(crate) fn code(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
            Compression::Unknown(n) => i16::from(n) & COMPRESSION_MASK,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it (`none`
    /// for no compression).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Unknown(_) => "unknown",
        }
    }

    /// The codec Kafka's `compression.type` names (`none` or
    /// `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`), whether or not its
    /// feature is compiled in.
    pub fn from_name(name: &str) -> Option<Compression> {
        Some(match name {
            "none" | "uncompressed" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    /// Whether this build can compress and decompress the codec (its cargo
    /// feature is enabled). Always true for [`Compression::None`].
    pub fn is_available(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
            Compression::Unknown(_) => false,
        }
    }

    /// `Ok` when [`is_available`](Self::is_available), else the
    /// [`Error::Unsupported`] that names the feature to enable.
    pub fn check_available(self) -> Result<()> {
        match unavailable(self) {
            None => Ok(()),
            Some(why) => Err(Error::Unsupported(why)),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Unknown(n) => write!(f, "unknown codec {n}"),
            c => f.write_str(c.name()),
        }
    }
}

fn unavailable(c: Compression) -> Option<String> {
    if c.is_available() {
        return None;
    }
    Some(match c {
        Compression::Unknown(n) => {
            format!("compression codec {n}, which Kafka does not define")
        }
        c => format!(
            "{c}-compressed record batches: this build of embedlog lacks the `{}` feature \
             (enable it, or `compression` for every codec)",
            c.name()
        ),
    })
}

/// The whole batch `batch` (header `h`, CRC already checked) with its
/// records decompressed: the same 61-byte header followed by the records.
/// The header still names the codec; only the record parsers read this
/// buffer. Fails when the records would inflate past `limit` bytes.
pub(crate) fn inflate(
    batch: &[u8],
    h: &BatchHeader,
    limit: usize,
) -> std::result::Result<Bytes, CodecError> {
    let codec = h.compression();
    if let Some(why) = unavailable(codec) {
        return Err(CodecError::Unsupported(why));
    }
    let payload = &batch[BATCH_HEADER_SIZE..];
    let mut out =
        Vec::with_capacity(BATCH_HEADER_SIZE + payload.len().saturating_mul(4).min(limit));
    out.extend_from_slice(&batch[..BATCH_HEADER_SIZE]);
    let invalid = |e: String| CodecError::Invalid(format!("{codec} payload: {e}"));
    codecs::decompress(codec, payload, &mut out, limit).map_err(invalid)?;
    if out.len() - BATCH_HEADER_SIZE > limit {
        return Err(too_large(codec, limit));
    }
    Ok(Bytes::from(out))
}

fn too_large(codec: Compression, limit: usize) -> CodecError {
    CodecError::Invalid(format!(
        "{codec} payload inflates past the {limit}-byte decompression limit \
         (max.message.bytes; raise it to read this batch)"
    ))
}

/// Compresses the records of the whole, uncompressed batch `batch` with
/// `codec` and returns the compressed batch: same header fields, the
/// codec's attribute bits, new length and CRC. A batch without records
/// stays uncompressed (as Kafka writes an empty batch).
///
/// # Errors
/// [`Error::Unsupported`] when the codec's feature is off;
/// [`Error::InvalidArgument`] when the compressed batch would exceed the
/// format's 2 GiB.
pub(crate) fn deflate(batch: &[u8], codec: Compression) -> Result<Vec<u8>> {
    let count = i32::from_be_bytes(batch[57..61].try_into().unwrap_or_default());
    let mut out = Vec::with_capacity(batch.len() / 2 + BATCH_HEADER_SIZE);
    out.extend_from_slice(&batch[..BATCH_HEADER_SIZE]);
    let codec = if count == 0 { Compression::None } else { codec };
    if codec == Compression::None {
        out.extend_from_slice(&batch[BATCH_HEADER_SIZE..]);
    } else {
        codec.check_available()?;
        codecs::compress(codec, &batch[BATCH_HEADER_SIZE..], &mut out)
            .map_err(|reason| Error::Compression { codec, reason })?;
    }
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| Error::InvalidArgument("batch exceeds the format's 2 GiB limit".into()))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]);
    let attributes = (attributes & !COMPRESSION_MASK) | codec.code();
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The codecs themselves, each behind its feature. `decompress` appends to
/// `out` and stops (with an error or a short read the caller reports) once
/// more than `limit` bytes came out.
mod codecs {
    use super::Compression;
    #[allow(unused_imports)]
    use std::io::{Read, Write};

    // Without any codec feature nothing appends to `out`.
    #[allow(unused_variables, unused_mut, clippy::ptr_arg)]
    pub(super) fn decompress(
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), String> {
        let cap = (limit as u64).saturating_add(1);
        match codec {
            #[cfg(feature = "gzip")]
            Compression::Gzip => read_all(flate2::read::MultiGzDecoder::new(input), out, cap),
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::decompress(input, out, limit),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => read_all(lz4_flex::frame::FrameDecoder::new(input), out, cap),
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                let mut d =
                    zstd::stream::read::Decoder::with_buffer(input).map_err(|e| e.to_string())?;
                // No window much larger than the limit: libzstd reserves a
                // frame's window before it inflates anything. At least
                // 8 MiB, the window of the streaming encoders Kafka clients
                // use up to level 19, so their frames always decode.
                let window_log = usize::BITS - limit.max(1 << 10).saturating_sub(1).leading_zeros();
                d.window_log_max(window_log.clamp(23, 31))
                    .map_err(|e| e.to_string())?;
                read_all(d, out, cap).map_err(|e| {
                    if e.contains("too much memory") {
                        format!(
                            "its window inflates past the {limit}-byte decompression limit \
                             (max.message.bytes; raise it to read this batch)"
                        )
                    } else {
                        e
                    }
                })
            }
            // `inflate` checked availability.
            _ => Err(format!("{codec} is not compiled in")),
        }
    }

    #[allow(dead_code)]
    fn read_all(r: impl Read, out: &mut Vec<u8>, cap: u64) -> Result<(), String> {
        r.take(cap).read_to_end(out).map_err(|e| e.to_string())?;
        Ok(())
    }

    #[allow(unused_variables, clippy::ptr_arg)]
    pub(super) fn compress(
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match codec {
            #[cfg(feature = "gzip")]
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
                e.write_all(input).map_err(|e| e.to_string())?;
                e.finish().map_err(|e| e.to_string())?;
                Ok(())
            }
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::compress(input, out),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                e.write_all(input).map_err(|e| e.to_string())?;
                e.finish().map_err(|e| e.to_string())?;
                Ok(())
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, 3).map_err(|e| e.to_string())?;
                e.include_checksum(false).map_err(|e| e.to_string())?;
                e.include_contentsize(true).map_err(|e| e.to_string())?;
                e.set_pledged_src_size(Some(input.len() as u64))
                    .map_err(|e| e.to_string())?;
                e.write_all(input).map_err(|e| e.to_string())?;
                e.finish().map_err(|e| e.to_string())?;
                Ok(())
            }
            _ => Err(format!("{codec} is not compiled in")),
        }
    }

    /// Snappy, in xerial's framing (what Kafka's Java client writes) or raw.
    #[cfg(feature = "snappy")]
    mod snappy {
        /// `\x82SNAPPY\0`, then version 1 and compatible version 1.
        const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
        const XERIAL_HEADER: usize = 16;
        /// snappy-java's default block size, which Kafka uses.
        const BLOCK: usize = 32 << 10;

        pub(super) fn decompress(
            input: &[u8],
            out: &mut Vec<u8>,
            limit: usize,
        ) -> Result<(), String> {
            let mut total = 0usize;
            let mut raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
                let n = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
                total = total.saturating_add(n);
                if total > limit {
                    return Err(format!(
                        "inflates past the {limit}-byte decompression limit \
                         (max.message.bytes; raise it to read this batch)"
                    ));
                }
                let at = out.len();
                out.resize(at + n, 0);
                let got = snap::raw::Decoder::new()
                    .decompress(block, &mut out[at..])
                    .map_err(|e| e.to_string())?;
                out.truncate(at + got);
                Ok(())
            };
            if !input.starts_with(&XERIAL_MAGIC) {
                return raw(input, out);
            }
            if input.len() < XERIAL_HEADER {
                return Err("xerial header is cut short".into());
            }
            let mut p = XERIAL_HEADER;
            while p < input.len() {
                let Some(len) = input.get(p..p + 4) else {
                    return Err(format!("xerial block length cut short at byte {p}"));
                };
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                p += 4;
                let Some(block) = input.get(p..p.saturating_add(len)) else {
                    return Err(format!(
                        "xerial block of {len} bytes at byte {p} runs past the end"
                    ));
                };
                raw(block, out)?;
                p += len;
            }
            Ok(())
        }

        pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(BLOCK) {
                let at = out.len();
                out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
                let n = enc
                    .compress(chunk, &mut out[at + 4..])
                    .map_err(|e| e.to_string())?;
                out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
                out.truncate(at + 4 + n);
            }
            Ok(())
        }
    }
}
