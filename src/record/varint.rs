//! Zig-zag variable-length integers, as Kafka's record format uses them
//! (the protobuf encoding: 7 bits per byte, least significant group first,
//! high bit set on every byte but the last).

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More bytes than the type allows (5 for 32-bit, 10 for 64-bit).
    Overflow,
}

impl VarintError {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VarintError::Truncated => "input ends inside a varint",
            VarintError::Overflow => "varint is longer than its type allows",
        }
    }
}

#[inline]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Number of bytes `v` takes as a zig-zag varint.
#[inline]
pub(crate) fn size_i64(v: i64) -> usize {
    let z = zigzag64(v);
    // Each byte carries 7 bits; 0 still takes one byte.
    let bits = 64 - (z | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `v` as a zig-zag varint.
#[inline]
pub(crate) fn put_i64(buf: &mut Vec<u8>, v: i64) {
    let mut z = zigzag64(v);
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// Reads an unsigned varint of at most `max_bytes` bytes from `buf[*pos..]`.
#[inline]
fn get_raw(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, VarintError> {
    // Most lengths and deltas fit one or two bytes.
    if let Some(&b) = buf.get(*pos) {
        if b & 0x80 == 0 {
            *pos += 1;
            return Ok(u64::from(b));
        }
        if max_bytes >= 2
            && let Some(&c) = buf.get(*pos + 1)
            && c & 0x80 == 0
        {
            *pos += 2;
            return Ok(u64::from(b & 0x7f) | (u64::from(c) << 7));
        }
    }
    let mut result: u64 = 0;
    let mut shift = 0u32;
    for i in 0..max_bytes {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated);
        };
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            *pos += i + 1;
            return Ok(result);
        }
        shift += 7;
    }
    Err(VarintError::Overflow)
}

/// Reads a zig-zag varlong (at most 10 bytes).
#[inline]
pub(crate) fn get_i64(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    get_raw(buf, pos, 10).map(unzigzag64)
}

/// Reads a zig-zag varint that must fit an `i32` (at most 5 bytes).
#[inline]
pub(crate) fn get_i32(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let v = get_raw(buf, pos, 5)?;
    if v > u64::from(u32::MAX) {
        return Err(VarintError::Overflow);
    }
    Ok(unzigzag64(v) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from the protobuf zig-zag table.
        for (v, bytes) in [
            (0i64, &[0x00u8][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
        ] {
            let mut buf = Vec::new();
            put_i64(&mut buf, v);
            assert_eq!(buf, bytes, "encoding {v}");
            assert_eq!(size_i64(v), bytes.len());
            let mut pos = 0;
            assert_eq!(get_i64(&buf, &mut pos), Ok(v));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn overflow_and_truncation_are_errors() {
        let long = [0xffu8; 11];
        assert_eq!(get_i64(&long, &mut 0), Err(VarintError::Overflow));
        assert_eq!(get_i32(&long, &mut 0), Err(VarintError::Overflow));
        // Five bytes whose value does not fit 32 bits.
        let big = [0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(get_i32(&big, &mut 0), Err(VarintError::Overflow));
        assert_eq!(get_i64(&[0x80, 0x80], &mut 0), Err(VarintError::Truncated));
        assert_eq!(get_i32(&[], &mut 0), Err(VarintError::Truncated));
    }

    proptest! {
        #[test]
        fn roundtrip_i64(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_i64(&mut buf, v);
            prop_assert_eq!(buf.len(), size_i64(v));
            let mut pos = 0;
            prop_assert_eq!(get_i64(&buf, &mut pos), Ok(v));
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn roundtrip_i32(v in any::<i32>()) {
            let mut buf = Vec::new();
            put_i64(&mut buf, i64::from(v));
            let mut pos = 0;
            prop_assert_eq!(get_i32(&buf, &mut pos), Ok(v));
        }
    }
}
