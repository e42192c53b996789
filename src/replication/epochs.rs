//! The leader-epoch history (`leader-epoch-checkpoint`'s content).

use super::NO_EPOCH;
use crate::record::Offset;

/// The leader-epoch history: `(epoch, first offset)` pairs, epochs and
/// offsets increasing (Kafka's `leader-epoch-checkpoint`, same text
/// format: a version line `0`, a count line, then `epoch offset` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    pub(crate) entries: Vec<(i32, Offset)>,
}

impl EpochCache {
    pub(crate) fn latest(&self) -> i32 {
        self.entries.last().map_or(NO_EPOCH, |e| e.0)
    }

    /// Records that `epoch` starts at `start`. Entries the new one
    /// contradicts (a later or equal epoch, or a later start) go.
    pub(super) fn assign(&mut self, epoch: i32, start: Offset) -> bool {
        if self.entries.last().is_some_and(|&(e, _)| e == epoch) {
            return false;
        }
        self.entries.retain(|&(e, s)| e < epoch && s <= start);
        // Two epochs starting at one offset: the earlier one is empty.
        self.entries.retain(|&(_, s)| s < start);
        self.entries.push((epoch, start));
        true
    }

    /// The largest epoch not above `epoch`, and the offset where it ends
    /// in a log ending at `leo` ([`NO_EPOCH`] and the first epoch's start,
    /// or 0, if there is none).
    pub(crate) fn end_offset_for(&self, epoch: i32, leo: Offset) -> (i32, Offset) {
        match self.entries.iter().rposition(|&(e, _)| e <= epoch) {
            None => (NO_EPOCH, self.entries.first().map_or(0, |e| e.1).min(leo)),
            Some(i) => match self.entries.get(i + 1) {
                Some(&(_, next)) => (self.entries[i].0, next),
                None => (self.entries[i].0, leo),
            },
        }
    }

    /// Forgets epochs starting at or after `end` (the log was cut there).
    pub(super) fn truncate_from_end(&mut self, end: Offset) -> bool {
        let n = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        n != self.entries.len()
    }

    pub(crate) fn encode(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            s += &format!("{e} {o}\n");
        }
        s
    }

    /// Parses [`encode`](Self::encode)'s text; the error says what is wrong.
    pub(crate) fn decode(text: &str) -> std::result::Result<EpochCache, String> {
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err("the first line is not version 0".into());
        }
        let n: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("the second line is not an entry count")?;
        let mut entries: Vec<(i32, Offset)> = Vec::new();
        for i in 0..n {
            let line = lines.next().ok_or(format!("entry {i} of {n} is missing"))?;
            let mut f = line.split(' ');
            let (Some(e), Some(o), None) = (f.next(), f.next(), f.next()) else {
                return Err(format!("entry {i} ({line:?}) is not `epoch offset`"));
            };
            let e: i32 = e
                .parse()
                .map_err(|_| format!("entry {i}: bad epoch {e:?}"))?;
            let o: Offset = o
                .parse()
                .map_err(|_| format!("entry {i}: bad offset {o:?}"))?;
            if e < 0 || entries.last().is_some_and(|&(pe, po)| e <= pe || o < po) {
                return Err(format!("entry {i} ({line:?}) is out of order"));
            }
            entries.push((e, o));
        }
        if lines.next().is_some() {
            return Err(format!("more than {n} entries"));
        }
        Ok(EpochCache { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_cache_rules() {
        let mut c = EpochCache::default();
        assert_eq!(c.end_offset_for(3, 10), (NO_EPOCH, 0));
        c.assign(1, 0);
        c.assign(3, 5);
        c.assign(4, 9);
        assert_eq!(c.end_offset_for(1, 12), (1, 5));
        assert_eq!(c.end_offset_for(2, 12), (1, 5));
        assert_eq!(c.end_offset_for(3, 12), (3, 9));
        assert_eq!(c.end_offset_for(7, 12), (4, 12));
        assert_eq!(c.end_offset_for(0, 12), (NO_EPOCH, 0));
        // A new epoch at an earlier offset replaces what it contradicts.
        c.assign(5, 7);
        assert_eq!(c.entries, vec![(1, 0), (3, 5), (5, 7)]);
        assert!(c.truncate_from_end(6));
        assert_eq!(c.entries, vec![(1, 0), (3, 5)]);
        let text = c.encode();
        assert_eq!(text, "0\n2\n1 0\n3 5\n");
        assert_eq!(EpochCache::decode(&text), Ok(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n1\n1 x\n",
            "0\n2\n3 5\n1 0\n",
            "0\n1\n1 0\n2 3\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
    }
}
