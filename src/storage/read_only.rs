//! A read-only view of a partition log that another process owns: no lock,
//! no recovery, no writes, and only whole batches that pass their CRC.
//!
//! The owner appends whole batches with positioned writes and never changes
//! a byte it published. A batch being written is a torn tail to this view:
//! its header says it runs past the end of the file, or its CRC does not
//! match yet. Either way it is simply not there yet, and a later
//! [`refresh`](ReadOnlyLog::refresh) sees it once it is whole.
//!
//! How bytes are read decides what the owner can do to this process:
//!
//! - **Sealed segments** (every segment but the last) are mapped read-only
//!   and read without a copy. The owner never shrinks a sealed segment in
//!   place: compaction and replication's truncation write a new file and
//!   rename it over the old one, retention unlinks it. Either way this
//!   view's mapping stays on the old inode, intact, until it lets go.
//!   (Recovery does cut a sealed segment past the recovery point that
//!   fails its checks; that takes a power loss or a disk fault, not a
//!   crash of the owner, which leaves sealed segments whole.)
//! - **The last segment** is read with `pread` into buffers. Its tail is
//!   where a crashed owner leaves a torn write, and where the next owner's
//!   recovery shortens the file; a mapping of a shortened file would fault
//!   (`SIGBUS`), a `pread` just returns fewer bytes.
//!
//! A rename over a segment (compaction) shows as a new inode in the
//! directory listing; the view then drops what it knew of that segment and
//! reads the new file.

use super::checkpoint::Checkpoint;
use super::log::ReadLimit;
use super::mmap;
use super::segment::parse_log_file_name;
use super::vfs::RealFs;
use crate::error::{Error, Result};
use crate::record::{BATCH_HEADER_SIZE, Batch, BatchHeader, Batches, Offset};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{DirEntryExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Batch positions are remembered at least this many bytes apart, so a
/// read finds its batch after walking at most this many bytes of headers
/// (and the view holds about 24 bytes per this many bytes of log).
const MARK_INTERVAL: u64 = 16 << 10;

/// The last segment is scanned in reads of this size (or one batch, if
/// larger).
const SCAN_CHUNK: usize = 4 << 20;

/// A read-only view of the partition log in one directory, which another
/// process (or another handle in this one) may own and be writing.
///
/// Every read first looks for what changed on disk (new batches, new or
/// removed segments, a moved start offset) and returns only whole batches
/// whose CRC matches, in offset order, as [`Log::read`](crate::Log::read)
/// does. A batch that fails its check is the owner's write in progress if
/// it lies past the owner's last recorded recovery point in the last
/// segment, and damage (an [`Error::Corrupt`] naming the file and byte,
/// returned to the read that reaches it) if it lies below that point or in
/// a sealed segment. Sealed segments are checked when a read first needs
/// them, so opening a view of a large log costs a listing, not a scan.
///
/// ```
/// use embedlog::{Log, LogConfig, ReadLimit, ReadOnlyLog, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?; // the owner
/// log.append(&[Record::new("1").key("a")])?;
///
/// let view = ReadOnlyLog::open(dir.path())?;              // no lock taken
/// let batches = view.read(0, ReadLimit::default())?;
/// assert_eq!(batches.records().count(), 1);
///
/// log.append(&[Record::new("2").key("b")])?;                   // seen by the next read
/// assert_eq!(view.read(1, ReadLimit::default())?.records().count(), 1);
/// assert_eq!(view.end_offset(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadOnlyLog {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    views: Vec<View>,
    log_start: Offset,
    recovery_point: Offset,
    /// A compaction's swap is under way (a `.log.swap` file is listed): the
    /// owner may have removed the segments it merged before renaming their
    /// replacement into place, so a gap in the listing is not yet final.
    swapping: bool,
}

/// What this view knows of one segment.
#[derive(Debug)]
struct View {
    base: Offset,
    path: Arc<Path>,
    ino: u64,
    /// Open until the segment is sealed and mapped (the mapping keeps the
    /// file alive; holding a descriptor per sealed segment would not scale).
    file: Option<File>,
    /// The whole file, mapped once the segment is sealed.
    map: Option<Bytes>,
    /// The file's length when the view was opened (its size until scanned).
    listed_len: u64,
    /// Bytes from the start that hold valid batches.
    valid_len: u64,
    /// Offset after the last valid batch.
    next_offset: Offset,
    /// Position and stored CRC of the last valid batch: if the owner cuts
    /// it (a failed append it rolled back) and writes other bytes there,
    /// the view starts over instead of trusting what it saw.
    last_batch: Option<(u64, u32)>,
    /// `(first offset, position, max timestamp of every batch before it)`
    /// of a batch every `MARK_INTERVAL` bytes or so; the first batch always.
    marks: Vec<(Offset, u64, i64)>,
    max_timestamp: i64,
    /// Sealed and fully scanned: nothing more will appear.
    done: bool,
    /// A sealed segment's invalid batch: reads that reach it fail.
    damage: Option<(u64, String)>,
}

/// Bytes of a view read ahead, with headers found in them without another
/// read.
struct Window {
    at: u64,
    data: Bytes,
}

impl Window {
    fn get(&self, from: u64, to: u64) -> Option<Bytes> {
        let end = self.at + self.data.len() as u64;
        (from >= self.at && to <= end).then(|| {
            self.data
                .slice((from - self.at) as usize..(to - self.at) as usize)
        })
    }
}

impl View {
    fn open(dir: &Path, base: Offset, ino: u64) -> Result<Option<View>> {
        let path = dir.join(super::segment::log_file_name(base));
        let file = match File::open(&path) {
            Ok(f) => f,
            // Removed between the listing and now: retention or compaction.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let listed_len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        Ok(Some(View {
            base,
            path: path.into(),
            ino,
            file: Some(file),
            map: None,
            listed_len,
            valid_len: 0,
            next_offset: base,
            last_batch: None,
            marks: Vec::new(),
            max_timestamp: i64::MIN,
            done: false,
            damage: None,
        }))
    }

    /// The file's length now (the mapping's, once sealed).
    fn file_len(&self) -> Result<u64> {
        match (&self.map, &self.file) {
            (Some(m), _) => Ok(m.len() as u64),
            (None, Some(f)) => Ok(f
                .metadata()
                .map_err(|e| Error::io("stat", &self.path, e))?
                .len()),
            (None, None) => Ok(0),
        }
    }

    /// Bytes `[from, to)` of the file: a slice of the mapping when sealed,
    /// else read with `pread` (fewer if the file is shorter now).
    fn bytes(&self, from: u64, to: u64) -> Result<Bytes> {
        if let Some(map) = &self.map {
            let to = to.min(map.len() as u64);
            return Ok(map.slice(from.min(to) as usize..to as usize));
        }
        let Some(file) = &self.file else {
            return Ok(Bytes::new());
        };
        let len = to.saturating_sub(from) as usize;
        let mut buf = BytesMut::zeroed(len);
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], from + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        buf.truncate(filled);
        Ok(buf.freeze())
    }

    /// Maps the sealed segment (its whole, final length) and lets the
    /// descriptor go.
    fn seal(&mut self) -> Result<()> {
        if self.map.is_none()
            && let Some(file) = self.file.take()
        {
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat", &self.path, e))?
                .len();
            self.map = Some(mmap::map(&file, len).map_err(|e| Error::io("map", &self.path, e))?);
        }
        Ok(())
    }

    /// Bytes of valid batches (the listed length until scanned).
    fn size(&self) -> u64 {
        if self.valid_len > 0 || self.done {
            self.valid_len
        } else {
            self.listed_len
        }
    }

    /// Validates the batches past `valid_len`. `sealed`: the file is
    /// complete, so an invalid batch is damage (recorded in `damage`);
    /// otherwise it is a write in progress, unless it starts below
    /// `recovery_point` (then it is damage, returned as an error).
    fn scan(&mut self, sealed: bool, recovery_point: Offset) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if sealed {
            self.seal()?;
        }
        let mut file_len = self.file_len()?;
        if file_len < self.valid_len || !self.last_batch_intact()? {
            // The owner cut bytes this view had validated (a new owner's
            // recovery, or a failed append rolled back). Start over.
            self.reset();
        }
        if self.valid_len < file_len {
            // The owner preallocates its active segment: zeros after the
            // last batch are no batch yet (a header is never all zeros).
            // One header's read says so, instead of a chunk of zeros.
            let to = file_len.min(self.valid_len + BATCH_HEADER_SIZE as u64);
            let head = self.bytes(self.valid_len, to)?;
            if head.len() == BATCH_HEADER_SIZE && head.iter().all(|&b| b == 0) {
                file_len = self.valid_len;
            }
        }
        let mut problem = None;
        'chunks: while self.valid_len < file_len {
            let want = file_len.min(self.valid_len + SCAN_CHUNK as u64);
            let chunk = self.bytes(self.valid_len, want)?;
            if (chunk.len() as u64) < want - self.valid_len {
                // Shorter than its length said a moment ago: cut meanwhile.
                file_len = self.valid_len + chunk.len() as u64;
            }
            let progress = self.valid_len;
            let mut pos = 0usize;
            loop {
                let rest = &chunk[pos..];
                let at = self.valid_len;
                if rest.len() < BATCH_HEADER_SIZE {
                    if at + (rest.len() as u64) < file_len && pos > 0 {
                        continue 'chunks; // the header straddles the chunk
                    }
                    if !rest.is_empty() {
                        problem = Some((at, "a partial batch header ends the file".to_string()));
                    }
                    break 'chunks;
                }
                let h = match BatchHeader::parse(rest) {
                    Ok(h) => h,
                    Err(e) => {
                        problem = Some((at, e.reason));
                        break 'chunks;
                    }
                };
                if h.size() > rest.len() {
                    if at + (h.size() as u64) > file_len {
                        problem = Some((
                            at,
                            format!(
                                "batch of {} bytes runs past the end of the file ({} bytes remain)",
                                h.size(),
                                file_len - at
                            ),
                        ));
                        break 'chunks;
                    }
                    if pos == 0 {
                        // One batch larger than a chunk: read it whole.
                        let whole = self.bytes(at, at + h.size() as u64)?;
                        if let Err(reason) = self.check(&whole, &h) {
                            problem = Some((at, reason));
                            break 'chunks;
                        }
                        self.accept(&h);
                    }
                    if self.valid_len == progress {
                        break 'chunks; // no progress: never spin
                    }
                    continue 'chunks;
                }
                if let Err(reason) = self.check(&rest[..h.size()], &h) {
                    problem = Some((at, reason));
                    break 'chunks;
                }
                self.accept(&h);
                pos += h.size();
            }
        }
        match problem {
            Some((position, reason)) if sealed => {
                self.damage = Some((position, reason));
                self.done = true;
            }
            Some((position, reason)) if self.next_offset < recovery_point => {
                return Err(Error::corrupt(
                    &self.path,
                    position,
                    format!(
                        "{reason}, below the owner's recovery point {recovery_point} \
                         (run `embedlog verify`)"
                    ),
                ));
            }
            // The owner's write in progress, or a torn tail its next open
            // cuts: not there yet.
            Some(_) => {}
            None => self.done = sealed,
        }
        Ok(())
    }

    /// Whether the last batch this view accepted is still where it was,
    /// with the same CRC.
    fn last_batch_intact(&self) -> Result<bool> {
        let Some((pos, crc)) = self.last_batch else {
            return Ok(true);
        };
        let head = self.bytes(pos, pos + BATCH_HEADER_SIZE as u64)?;
        Ok(BatchHeader::parse(&head).is_ok_and(|h| h.crc == crc))
    }

    /// Checks a whole batch at the view's end: offset order and CRC.
    fn check(&self, batch: &[u8], h: &BatchHeader) -> std::result::Result<(), String> {
        let expected = self.next_offset.max(self.base);
        if h.first_offset() != expected {
            return Err(format!(
                "batch base offset {} where {expected} was expected",
                h.first_offset()
            ));
        }
        if h.last_offset() - self.base > i32::MAX as u64 {
            return Err(format!(
                "offset {} is too far from the segment base {}",
                h.last_offset(),
                self.base
            ));
        }
        if batch.len() != h.size() || !crate::record::crc_matches(batch) {
            return Err("CRC-32C mismatch".to_string());
        }
        Ok(())
    }

    /// Takes the checked batch at `valid_len` into the view.
    fn accept(&mut self, h: &BatchHeader) {
        let at = self.valid_len;
        let due = match self.marks.last() {
            None => true,
            Some(&(_, p, _)) => at - p >= MARK_INTERVAL,
        };
        if due {
            self.marks.push((h.first_offset(), at, self.max_timestamp));
        }
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.next_offset = h.last_offset() + 1;
        self.last_batch = Some((at, h.crc));
        self.valid_len += h.size() as u64;
    }

    fn reset(&mut self) {
        self.valid_len = 0;
        self.next_offset = self.base;
        self.last_batch = None;
        self.marks.clear();
        self.max_timestamp = i64::MIN;
        self.done = false;
        self.damage = None;
    }

    /// The header at `pos`, from `window` when it holds it.
    fn header_at(&self, window: &Window, pos: u64) -> Result<BatchHeader> {
        let end = pos + BATCH_HEADER_SIZE as u64;
        let head = match window.get(pos, end) {
            Some(b) => b,
            None => self.bytes(pos, end)?,
        };
        BatchHeader::parse(&head).map_err(|e| e.in_file(&self.path, pos))
    }

    /// Whole valid batches from the one holding `from` (or the first after
    /// it), at most `limit` bytes but at least one batch; `None` past this
    /// segment's valid batches.
    fn read(&self, from: Offset, limit: ReadLimit) -> Result<Option<Batches>> {
        if from >= self.next_offset {
            return self.damage_at_end();
        }
        let i = self.marks.partition_point(|m| m.0 <= from);
        let mut pos = if i == 0 { 0 } else { self.marks[i - 1].1 };
        // One read covers the walk from the mark and, usually, the batches
        // returned (a slice of the mapping for a sealed segment).
        let ahead = (2 * MARK_INTERVAL).saturating_add(limit.max_bytes as u64);
        let window = Window {
            at: pos,
            data: self.bytes(pos, self.valid_len.min(pos.saturating_add(ahead)))?,
        };
        // Walk headers to the first batch that holds `from` or comes after.
        loop {
            let h = self.header_at(&window, pos)?;
            if h.last_offset() >= from {
                break;
            }
            pos += h.size() as u64;
        }
        let start = pos;
        let mut end = pos;
        while end < self.valid_len {
            let h = self.header_at(&window, end)?;
            let next = end + h.size() as u64;
            if end > start && next - start > limit.max_bytes as u64 {
                break;
            }
            end = next;
        }
        let data = match window.get(start, end) {
            Some(d) => d,
            None => self.bytes(start, end)?,
        };
        if (data.len() as u64) < end - start {
            return Err(Error::corrupt(
                &self.path,
                start + data.len() as u64,
                "the file is shorter than the batches this view checked: its owner cut it \
                 (a new owner's recovery); read again",
            ));
        }
        Ok(Some(Batches::from_log(
            data,
            self.path.clone(),
            start,
            from,
            limit.max_records,
            None,
        )))
    }

    fn damage_at_end(&self) -> Result<Option<Batches>> {
        match &self.damage {
            Some((position, reason)) => Err(Error::corrupt(&self.path, *position, reason.clone())),
            None => Ok(None),
        }
    }

    /// The first offset at or after `from` whose record's timestamp is at or
    /// after `timestamp`.
    fn offset_for_timestamp(&self, timestamp: i64, from: Offset) -> Result<Option<Offset>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        // The last mark before which every batch is older than `timestamp`.
        let i = self.marks.partition_point(|m| m.2 < timestamp);
        let mut pos = if i == 0 { 0 } else { self.marks[i - 1].1 };
        let none = Window {
            at: 0,
            data: Bytes::new(),
        };
        while pos < self.valid_len {
            let h = self.header_at(&none, pos)?;
            if h.last_offset() >= from && h.max_timestamp >= timestamp {
                let data = self.bytes(pos, pos + h.size() as u64)?;
                let batch = Batch::from_log(
                    data,
                    h,
                    self.path.clone(),
                    pos,
                    crate::record::DEFAULT_DECOMPRESSION_LIMIT,
                );
                for r in batch.records()? {
                    let r = r?;
                    if r.offset >= from && r.timestamp >= timestamp {
                        return Ok(Some(r.offset));
                    }
                }
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }
}

impl ReadOnlyLog {
    /// Opens a view of the log in `dir`, reading its checkpoint, its
    /// segment list and the last segment. Takes no lock and writes nothing.
    ///
    /// # Errors
    /// An I/O error if `dir` cannot be listed (for example, it does not
    /// exist); [`Error::Corrupt`] for a damaged checkpoint.
    pub fn open(dir: impl AsRef<Path>) -> Result<ReadOnlyLog> {
        let log = ReadOnlyLog {
            dir: dir.as_ref().to_path_buf(),
            state: Mutex::new(State::default()),
        };
        log.refresh()?;
        Ok(log)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks for what the owner changed: the checkpoint (start offset), the
    /// segment list, and new whole batches at the end. Reads call it; call
    /// it before [`end_offset`](Self::end_offset) to see new data.
    ///
    /// # Errors
    /// An I/O error if the directory is gone (its topic was deleted) or
    /// unreadable; [`Error::Corrupt`] for damage below the owner's recovery
    /// point. What the view knew stays.
    pub fn refresh(&self) -> Result<()> {
        let mut st = self.state.lock();
        // The owner replaces the checkpoint atomically (a rename), so this
        // reads one whole version. It is small: read it every time.
        let cp = Checkpoint::load(&RealFs, &self.dir)?.unwrap_or_default();
        st.log_start = cp.log_start;
        st.recovery_point = cp.recovery_point;
        let (listed, swapping) = self.list()?;
        st.swapping = swapping;
        // Keep views whose file is still the same inode; open new ones.
        let mut old: BTreeMap<Offset, View> = std::mem::take(&mut st.views)
            .into_iter()
            .map(|v| (v.base, v))
            .collect();
        let mut views = Vec::with_capacity(listed.len());
        let mut failure = None;
        for (base, ino) in listed {
            match old.remove(&base) {
                Some(v) if v.ino == ino => views.push(v),
                _ => match View::open(&self.dir, base, ino) {
                    Ok(v) => views.extend(v),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
            }
        }
        if let Some(e) = failure {
            // Keep what the view knew; the next refresh tries again.
            st.views = old.into_values().chain(views).collect();
            st.views.sort_by_key(|v| v.base);
            return Err(e);
        }
        st.views = views;
        // Sealed segments are checked when a read needs them; the last one
        // now, for the end offset.
        let rp = st.recovery_point;
        match st.views.last_mut() {
            Some(v) => v.scan(false, rp),
            None => Ok(()),
        }
    }

    /// Segment base offsets and inodes, in order, and whether a
    /// compaction's swap file is there.
    fn list(&self) -> Result<(Vec<(Offset, u64)>, bool)> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut out = Vec::new();
        let mut swapping = false;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_log_file_name(name) {
                out.push((base, entry.ino()));
            } else if name.ends_with(".log.swap") {
                swapping = true;
            }
        }
        out.sort_unstable();
        Ok((out, swapping))
    }

    /// Whole batches from `from`, as [`Log::read`](crate::Log::read)
    /// returns them: empty at the end, the rest of a batch that straddles
    /// `from` skipped by [`Batches::records`].
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] outside `[start, end]`;
    /// [`Error::Corrupt`] where damage stops the log; I/O errors.
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.refresh()?;
        let mut st = self.state.lock();
        let (start, end) = (Self::start_of(&st), Self::end_of(&st));
        if from < start || from > end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                start,
                end,
            });
        }
        let rp = st.recovery_point;
        let swapping = st.swapping;
        let last = st.views.len().saturating_sub(1);
        let first = st
            .views
            .partition_point(|v| v.base <= from)
            .saturating_sub(1);
        for (i, v) in st.views.iter_mut().enumerate().skip(first) {
            if i < last {
                v.scan(true, rp)?;
            }
            if let Some(b) = v.read(from, limit)? {
                return Ok(b);
            }
            if swapping {
                // The segments after this one may be half swapped: going
                // on to the next would skip records that the swap's
                // replacement still holds. Read again once it is done.
                break;
            }
        }
        Ok(Batches::empty())
    }

    fn start_of(st: &State) -> Offset {
        let first = st.views.first().map_or(0, |v| v.base);
        st.log_start.max(first).min(Self::end_of(st))
    }

    fn end_of(st: &State) -> Offset {
        // The last segment holds the highest offsets; its base is above
        // everything before it, even where it is still empty.
        st.views
            .last()
            .map_or(st.log_start, |v| v.next_offset.max(st.log_start))
    }

    /// The oldest readable offset, as of the last refresh.
    pub fn start_offset(&self) -> Offset {
        Self::start_of(&self.state.lock())
    }

    /// The offset after the last whole batch, as of the last refresh.
    pub fn end_offset(&self) -> Offset {
        Self::end_of(&self.state.lock())
    }

    /// Every offset below this one was fsync'd, as the owner last recorded
    /// in its checkpoint (it may have flushed more since).
    pub fn flushed_offset(&self) -> Offset {
        self.state.lock().recovery_point
    }

    /// Bytes of the segments, as of the last refresh (valid batches where
    /// the view has checked them, the file's length where not yet).
    pub fn size_bytes(&self) -> u64 {
        self.state.lock().views.iter().map(View::size).sum()
    }

    /// Number of segment files, as of the last refresh.
    pub fn segment_count(&self) -> usize {
        self.state.lock().views.len()
    }

    /// Lets go of every segment this view maps or holds open (for a view
    /// whose topic was deleted: the owner's files are unlinked, and the
    /// view must not keep their space). The next refresh starts afresh.
    pub(crate) fn release(&self) {
        self.state.lock().views.clear();
    }

    /// The first offset at or after the start whose record's timestamp is at
    /// or after `timestamp` (ms), as [`Log::offset_for_timestamp`](crate::Log::offset_for_timestamp).
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.refresh()?;
        let mut st = self.state.lock();
        let start = Self::start_of(&st);
        let rp = st.recovery_point;
        let last = st.views.len().saturating_sub(1);
        for (i, v) in st.views.iter_mut().enumerate() {
            if i < last {
                v.scan(true, rp)?;
            }
            if v.next_offset <= start {
                continue;
            }
            if let Some(o) = v.offset_for_timestamp(timestamp, start)? {
                return Ok(Some(o));
            }
            if v.damage.is_some() {
                v.damage_at_end()?;
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::storage::{Log, LogConfig};

    /// The batches of a live segment file, without the zeros of its
    /// preallocated tail.
    fn published(seg: &std::path::Path) -> Vec<u8> {
        let mut bytes = fs::read(seg).unwrap();
        bytes.truncate(crate::storage::parse::scan_segment(&bytes, 0).0 as usize);
        bytes
    }

    fn records(b: &Batches) -> Vec<(Offset, Vec<u8>)> {
        b.records()
            .map(|r| {
                let r = r.unwrap();
                (r.offset, r.value.unwrap().to_vec())
            })
            .collect()
    }

    fn read_all(view: &ReadOnlyLog, mut from: Offset) -> Vec<(Offset, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let b = view.read(from, ReadLimit::bytes(300)).unwrap();
            if b.is_empty() {
                return out;
            }
            let got = records(&b);
            from = b.iter().last().unwrap().unwrap().last_offset() + 1;
            out.extend(got);
        }
    }

    #[test]
    fn follows_appends_rolls_and_deletion_of_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().segment_bytes(1024)).unwrap();
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!((view.start_offset(), view.end_offset()), (0, 0));
        assert!(view.read(0, ReadLimit::default()).unwrap().is_empty());
        for i in 0..50u32 {
            log.append(&[Record::new(format!("value-{i:04}").into_bytes()).key("k")])
                .unwrap();
        }
        assert!(log.segment_count() > 3);
        let all = read_all(&view, 0);
        assert_eq!(all.len(), 50);
        for (i, (o, v)) in all.iter().enumerate() {
            assert_eq!(*o, i as u64);
            assert_eq!(v, format!("value-{i:04}").as_bytes());
        }
        assert_eq!(view.segment_count(), log.segment_count());
        assert_eq!(view.size_bytes(), log.size_bytes());
        // From the middle, and past the end.
        assert_eq!(read_all(&view, 37).first().unwrap().0, 37);
        assert!(matches!(
            view.read(51, ReadLimit::default()),
            Err(Error::OffsetOutOfRange { end: 50, .. })
        ));
        // The owner deletes records: the start moves, old reads fail.
        log.delete_records_before(30).unwrap();
        view.refresh().unwrap();
        assert_eq!(view.start_offset(), 30);
        assert!(matches!(
            view.read(5, ReadLimit::default()),
            Err(Error::OffsetOutOfRange { start: 30, .. })
        ));
        assert_eq!(read_all(&view, 30).len(), 20);
    }

    #[test]
    fn the_owners_preallocated_tail_is_no_batch_yet() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[Record::new("1")]).unwrap();
        let seg = dir.path().join(super::super::segment::log_file_name(0));
        assert!(fs::read(&seg).unwrap().len() > published(&seg).len());
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!(view.end_offset(), 1);
        log.append(&[Record::new("2")]).unwrap();
        view.refresh().unwrap();
        assert_eq!(read_all(&view, 0), [(0, b"1".to_vec()), (1, b"2".to_vec())]);
        log.close().unwrap();
        view.refresh().unwrap();
        assert_eq!(view.end_offset(), 2);
    }

    #[test]
    fn a_batch_being_written_is_not_there_until_it_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[Record::new("1").key("a")]).unwrap();
        log.append(&[Record::new("2").key("b")]).unwrap();
        let seg = dir.path().join(super::super::segment::log_file_name(0));
        let whole = published(&seg);
        // A crash: the recovery point stays where no fsync moved it.
        log.simulate_crash();
        let first = BatchHeader::parse(&whole).unwrap().size();
        // Torn: the second batch cut short, then with a wrong byte.
        fs::write(&seg, &whole[..whole.len() - 3]).unwrap();
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!(view.end_offset(), 1);
        let mut flipped = whole.clone();
        flipped[first + 30] ^= 0xff;
        fs::write(&seg, &flipped).unwrap();
        view.refresh().unwrap();
        assert_eq!(
            view.end_offset(),
            1,
            "a CRC mismatch past the recovery point"
        );
        assert_eq!(
            records(&view.read(0, ReadLimit::default()).unwrap()).len(),
            1
        );
        // The writer finishes: the batch appears.
        fs::write(&seg, &whole).unwrap();
        view.refresh().unwrap();
        assert_eq!(view.end_offset(), 2);
        assert_eq!(
            records(&view.read(1, ReadLimit::default()).unwrap())[0].1,
            b"2"
        );
    }

    #[test]
    fn damage_in_a_sealed_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().segment_bytes(512)).unwrap();
        for i in 0..20u32 {
            log.append(&[Record::new(format!("v{i}").into_bytes()).key("k")])
                .unwrap();
        }
        drop(log);
        let seg = dir.path().join(super::super::segment::log_file_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        let first = BatchHeader::parse(&bytes).unwrap().size();
        let in_first_segment = bytes.len() / first;
        bytes[first + 70] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        // The damage does not hide the segments after it.
        assert_eq!(view.end_offset(), 20);
        assert_eq!(
            read_all(&view, in_first_segment as u64).len(),
            20 - in_first_segment
        );
        assert_eq!(
            records(&view.read(0, ReadLimit::bytes(1)).unwrap()).len(),
            1
        );
        // The read that reaches it fails, naming the file and the byte.
        match view.read(1, ReadLimit::default()) {
            Err(Error::Corrupt { path, position, .. }) => {
                assert_eq!(path, seg);
                assert_eq!(position, first as u64);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_last_batch_cut_and_rewritten_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[Record::new("1")]).unwrap();
        log.append(&[Record::new("old")]).unwrap();
        let seg = dir.path().join(super::super::segment::log_file_name(0));
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!(view.end_offset(), 2);
        log.simulate_crash();
        // The owner rolls the second batch back (a failed append) and
        // writes another one in its place, of the same length.
        let whole = published(&seg);
        let first = BatchHeader::parse(&whole).unwrap().size();
        fs::write(&seg, &whole[..first]).unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[Record::new("new")]).unwrap();
        assert_eq!(published(&seg).len(), whole.len());
        assert_eq!(
            read_all(&view, 0),
            [(0, b"1".to_vec()), (1, b"new".to_vec())]
        );
    }

    #[test]
    fn a_segment_missing_during_a_swap_is_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().segment_bytes(200)).unwrap();
        for i in 0..12u32 {
            log.append(&[Record::new(format!("v{i:03}").into_bytes())])
                .unwrap();
        }
        let bases: Vec<u64> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| parse_log_file_name(e.unwrap().file_name().to_str().unwrap()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(bases.len() >= 4, "{bases:?}");
        drop(log);
        // The swap's state after it removed the second segment and before it
        // renamed the first one's replacement.
        let second = dir
            .path()
            .join(super::super::segment::log_file_name(bases[1]));
        let saved = fs::read(&second).unwrap();
        fs::remove_file(&second).unwrap();
        let swap = dir.path().join(format!(
            "{}.swap",
            super::super::segment::log_file_name(bases[0])
        ));
        fs::write(&swap, b"").unwrap();
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        let first_records = read_all(&view, 0);
        assert_eq!(first_records.len() as u64, bases[1], "stops before the gap");
        assert!(
            view.read(bases[1], ReadLimit::default())
                .unwrap()
                .is_empty()
        );
        // The swap finishes: the records are there.
        fs::write(&second, saved).unwrap();
        fs::remove_file(&swap).unwrap();
        assert_eq!(read_all(&view, bases[1]).first().unwrap().0, bases[1]);
        assert_eq!(read_all(&view, 0).len(), 12);
    }

    #[test]
    fn compaction_replacing_a_segment_is_seen_and_timestamps_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().segment_bytes(600)).unwrap();
        for i in 0..40i64 {
            let key = format!("k{}", i % 4);
            log.append(&[Record::new(format!("v{i}").into_bytes())
                .key(key)
                .timestamp(1000 + i)])
                .unwrap();
        }
        let view = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&view, 0).len(), 40);
        assert_eq!(view.offset_for_timestamp(1017).unwrap(), Some(17));
        assert_eq!(view.offset_for_timestamp(0).unwrap(), Some(0));
        assert_eq!(view.offset_for_timestamp(5000).unwrap(), None);
        log.roll().unwrap();
        log.compact(crate::storage::Compaction::default()).unwrap();
        let after = read_all(&view, 0);
        let from_log: Vec<_> = records(&log.read(0, ReadLimit::bytes(usize::MAX)).unwrap());
        let mut expected = Vec::new();
        let mut from = 0;
        loop {
            let b = log.read(from, ReadLimit::bytes(usize::MAX)).unwrap();
            if b.is_empty() {
                break;
            }
            from = b.iter().last().unwrap().unwrap().last_offset() + 1;
            expected.extend(records(&b));
        }
        assert!(!from_log.is_empty());
        assert_eq!(after, expected, "the view reads what the owner reads");
        assert!(after.len() < 40, "compaction removed records");
    }
}
