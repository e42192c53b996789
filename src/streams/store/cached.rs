//! The record cache's entries: a value written but not yet applied to the
//! store's storage, small values kept inline so that an aggregate (a
//! count, a sum) rewritten on every record costs no allocation.

use bytes::Bytes;

/// The longest value kept inline: a slot takes 40 bytes, a [`Bytes`] and
/// its tag.
const INLINE: usize = 30;

/// A cached value: null, a small value inline, or a larger one shared.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Null,
    Inline(u8, [u8; INLINE]),
    Shared(Bytes),
}

impl Slot {
    /// A copy of `bytes`, inline when small.
    pub(crate) fn copy(bytes: &[u8]) -> Slot {
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            // INLINE < 256: the length fits.
            Slot::Inline(bytes.len() as u8, inline)
        } else {
            Slot::Shared(Bytes::copy_from_slice(bytes))
        }
    }

    /// The value as it came (`None`: null).
    pub(crate) fn of(value: Option<Bytes>) -> Slot {
        value.map_or(Slot::Null, Slot::Shared)
    }

    /// The bytes, borrowed.
    pub(crate) fn as_deref(&self) -> Option<&[u8]> {
        match self {
            Slot::Null => None,
            Slot::Inline(len, b) => Some(&b[..usize::from(*len)]),
            Slot::Shared(b) => Some(b),
        }
    }

    /// The bytes, owned (a copy of an inline value).
    pub(crate) fn to_bytes(&self) -> Option<Bytes> {
        match self {
            Slot::Null => None,
            Slot::Inline(len, b) => Some(Bytes::copy_from_slice(&b[..usize::from(*len)])),
            Slot::Shared(b) => Some(b.clone()),
        }
    }

    /// The bytes, owned, without copying a shared value.
    pub(crate) fn into_bytes(self) -> Option<Bytes> {
        match self {
            Slot::Shared(b) => Some(b),
            other => other.to_bytes(),
        }
    }
}

/// A cached write: the value, and for an aggregation's tracked change the
/// value before the first change of the commit and its latest time.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) value: Slot,
    pub(crate) prior: Option<Option<Bytes>>,
    pub(crate) ts: i64,
}

impl Cached {
    /// A plain write (not an aggregation's tracked change).
    pub(crate) fn plain(value: Option<Bytes>) -> Self {
        Cached {
            value: Slot::of(value),
            prior: None,
            ts: i64::MIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_stay_inline_and_every_form_gives_the_same_bytes() {
        for len in [0, 1, 8, INLINE, INLINE + 1, 100] {
            let v: Vec<u8> = (0..len as u8).collect();
            let s = Slot::copy(&v);
            assert_eq!(matches!(s, Slot::Inline(..)), len <= INLINE, "length {len}");
            assert_eq!(s.as_deref(), Some(&v[..]));
            assert_eq!(s.to_bytes().as_deref(), Some(&v[..]));
            assert_eq!(s.into_bytes().as_deref(), Some(&v[..]));
        }
        assert_eq!(Slot::of(None).as_deref(), None);
        assert_eq!(Slot::Null.to_bytes(), None);
    }
}
