//! Kafka's FileStream connectors: [`FileStreamSourceConnector`] tails a
//! file (or reads standard input) into a topic, one record per line;
//! [`FileStreamSinkConnector`] appends records' values to a file (or
//! standard output), one per line. Their documentation says what they do
//! with line ends, offsets and rotation.

mod sink;

pub use sink::FileStreamSinkConnector;

use super::config::ConnectorConfig;
use super::error::{Error, Result};
use super::spi::{
    ConnectRecord, OffsetStorageReader, SourceConnector, SourceRecord, SourceTask,
    SourceTaskContext,
};
use super::value::{Map, Value};
use bytes::Bytes;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// `file`: the file to read or write; unset for standard input / output.
const FILE: &str = "file";
/// `topic`: the source's one topic.
const TOPIC: &str = "topic";
/// `batch.size`: the most lines one `poll` returns.
const BATCH_SIZE: &str = "batch.size";
const DEFAULT_BATCH_SIZE: usize = 2000;

/// Source partition and offset fields, as Kafka's connector names them
/// (plus `inode`).
const FILENAME: &str = "filename";
const POSITION: &str = "position";
const INODE: &str = "inode";

/// Bytes asked for by one `read`; the buffer grows past it only for a
/// longer line.
const READ_CHUNK: usize = 64 << 10;
/// How long an idle `poll` waits for data before returning nothing.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How often an idle `poll` looks again within [`IDLE_WAIT`].
const IDLE_STEP: Duration = Duration::from_millis(10);
/// Lines read ahead from standard input.
const STDIN_QUEUE: usize = 4096;

/// Kafka's `FileStreamSourceConnector`: the lines of a file (or of standard
/// input) as records of one topic. Always runs one task.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `file` | the file to read | unset: standard input |
/// | `topic` | the topic to write (one) | required |
/// | `batch.size` | the most lines one poll returns, at least 1 | 2000 |
///
/// **Lines.** A line ends at `\n`, `\r\n` or a lone `\r`, as in Kafka's
/// `FileStreamSourceTask`. A record's value is the line without its
/// terminator, a [`Value::String`] (a [`Value::Bytes`] when the line is
/// not UTF-8), with no key. A last line without a terminator is held until
/// its terminator arrives, never sent half. A `\r` that is the last byte
/// written so far ends its line at once; a `\n` written after it is the
/// second half of that `\r\n` and makes no line.
///
/// **Offsets.** Each record carries the source partition `{"filename":
/// <file as configured>}` and the source offset `{"position": <byte
/// position after the line and its terminator>, "inode": <the file's
/// inode>}` (the inode's 64 bits as a signed integer; where there are no
/// inodes the offset has only `position` and a rotation is seen only as a
/// truncation). Offsets stored by Kafka's connector (`position` only) are
/// understood.
///
/// **Rotation.** At the end of the file the task looks at the path again:
/// - the same inode, shorter than what was read (`copytruncate`): the file
///   is read again from the start. Lines written after the rotation's copy
///   but before its truncation are lost, as with any `copytruncate`
///   reader;
/// - another inode (renamed away and recreated): once the new file has
///   data (the writer has reopened it), the old file is read to its end, a
///   last line without terminator in it is sent as a line (nothing will
///   complete it), and the new file is read from the start. What a writer
///   appends to the old file after that is not read;
/// - no file (renamed away, not yet recreated): the old file is still
///   read, and the new one waited for.
///
/// **Restarts.** The task resumes from the stored offset. If the stored
/// inode is still the file at the path, it reads on from the stored
/// position (from the start, with a warning, if the file is now shorter,
/// or if no line ends there: a new file that got the old one's inode
/// number). If the path names another file, the old one is looked for by
/// inode in the same directory (`app.log.1`) and read from the stored
/// position to its end, then the new file from the start; if it is gone,
/// the new file is read from the start with a warning that the rest of the
/// old one is lost. A file rotated twice while the task was stopped (or
/// between two looks) is missed: only the oldest and the newest are read.
/// A file that does not exist yet is waited for.
///
/// **Standard input.** Without `file`, one background thread reads
/// standard input for the whole process, so that a restarted task takes
/// over its lines rather than losing the ones a second reader would race
/// for. The records have no source partition or offset: standard input
/// cannot be resumed. At its end a last line without terminator is sent.
///
/// ```
/// use embedlog::connect::{ConnectorConfig, FileStreamSourceConnector, SourceConnector};
/// let config = ConnectorConfig::new("app-log", FileStreamSourceConnector::ALIAS)
///     .set("file", "/var/log/app.log")
///     .set("topic", "app-log");
/// FileStreamSourceConnector.validate(&config)?;
/// # Ok::<(), embedlog::connect::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FileStreamSourceConnector;

impl FileStreamSourceConnector {
    /// Kafka's class name, accepted as `connector.class`.
    pub const CLASS: &'static str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
    /// Kafka's short alias, accepted as `connector.class`.
    pub const ALIAS: &'static str = "FileStreamSource";
}

impl SourceConnector for FileStreamSourceConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        SourceSettings::from_config(config).map(drop)
    }

    /// One task, whatever `tasks.max` says: a file is read in order by one
    /// reader.
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        _max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        self.validate(config)?;
        Ok(vec![config.clone()])
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::new(IDLE_WAIT))
    }
}

/// `file`, `None` when unset; `unset` says what unset means, for the error.
fn file_setting(config: &ConnectorConfig, unset: &str) -> Result<Option<String>> {
    match config.get(FILE) {
        None => Ok(None),
        Some(f) if f.trim().is_empty() => Err(Error::config(
            config.name(),
            FILE,
            format!("is empty; leave it unset to use {unset}"),
        )),
        Some(f) => Ok(Some(f.to_string())),
    }
}

/// The source's checked configuration.
#[derive(Debug)]
struct SourceSettings {
    file: Option<String>,
    topic: String,
    batch_size: usize,
}

impl SourceSettings {
    fn from_config(config: &ConnectorConfig) -> Result<SourceSettings> {
        let file = file_setting(config, "standard input")?;
        let topic = config.required(TOPIC)?;
        if topic.contains(',') {
            return Err(Error::config(
                config.name(),
                TOPIC,
                format!("{topic:?} names more than one topic; the file source writes to one"),
            ));
        }
        crate::validate_topic_name(topic)
            .map_err(|e| Error::config(config.name(), TOPIC, e.to_string()))?;
        let batch_size = config.parse_or(BATCH_SIZE, DEFAULT_BATCH_SIZE)?;
        if batch_size == 0 {
            return Err(Error::config(
                config.name(),
                BATCH_SIZE,
                format!("must be at least 1 (default {DEFAULT_BATCH_SIZE})"),
            ));
        }
        Ok(SourceSettings {
            file,
            topic: topic.to_string(),
            batch_size,
        })
    }
}

/// The bytes read from a file or a stream and not yet sent, split into
/// lines. Reads go straight into one buffer, lines are found with memchr,
/// and the only copy of a line is into its value.
struct LineBuffer {
    buf: Vec<u8>,
    /// The first byte not yet sent.
    start: usize,
    /// The end of the bytes read.
    end: usize,
    /// `start..searched` holds no line end (or ends at a `\r` whose next
    /// byte has not been read).
    searched: usize,
    /// The stream position of `buf[start]`.
    pos: u64,
    /// The last line ended at a `\r` that was then the last byte read: a
    /// `\n` next is that line's too.
    pending_lf: bool,
}

impl fmt::Debug for LineBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineBuffer")
            .field("pos", &self.pos)
            .field("buffered", &(self.end - self.start))
            .field("pending_lf", &self.pending_lf)
            .finish()
    }
}

impl LineBuffer {
    /// An empty buffer at stream position `pos`.
    fn new(pos: u64) -> Self {
        LineBuffer {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            searched: 0,
            pos,
            pending_lf: false,
        }
    }

    /// The stream position after the last byte read.
    fn read_pos(&self) -> u64 {
        self.pos + (self.end - self.start) as u64
    }

    /// Reads once from `reader` after the buffered bytes; `Ok(0)` at the
    /// end of what there is.
    fn fill(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.searched = 0;
            if self.buf.len() > 4 * READ_CHUNK {
                // A long line has gone; give its memory back.
                self.buf = vec![0; READ_CHUNK];
            }
        } else if self.buf.len() - self.end < READ_CHUNK / 2 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.searched = self.searched.max(self.start) - self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_CHUNK / 2 {
                // A line longer than the buffer.
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        loop {
            match reader.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next whole line (without its terminator) and the stream
    /// position after its terminator. `eof`: nothing more can be read now,
    /// so a `\r` that is the last byte ends its line.
    fn take_line(&mut self, eof: bool) -> Option<(&[u8], u64)> {
        if self.pending_lf {
            if self.start == self.end {
                return None;
            }
            self.pending_lf = false;
            if self.buf[self.start] == b'\n' {
                self.start += 1;
                self.pos += 1;
            }
        }
        let from = self.searched.max(self.start);
        let Some(i) = memchr::memchr2(b'\n', b'\r', &self.buf[from..self.end]) else {
            self.searched = self.end;
            return None;
        };
        let at = from + i;
        let next = if self.buf[at] == b'\n' {
            at + 1
        } else if at + 1 < self.end {
            if self.buf[at + 1] == b'\n' {
                at + 2
            } else {
                at + 1
            }
        } else if eof {
            self.pending_lf = true;
            at + 1
        } else {
            // Whether this `\r` is half of a `\r\n` shows with the next read.
            self.searched = at;
            return None;
        };
        let line = self.start;
        self.pos += (next - line) as u64;
        self.start = next;
        self.searched = next;
        Some((&self.buf[line..at], self.pos))
    }

    /// What is left (a last line without terminator) and the position
    /// after it, once nothing more will be read.
    fn take_rest(&mut self) -> Option<(&[u8], u64)> {
        self.pending_lf = false;
        if self.start == self.end {
            return None;
        }
        let rest = self.start;
        self.pos += (self.end - rest) as u64;
        self.start = self.end;
        self.searched = self.end;
        Some((&self.buf[rest..self.end], self.pos))
    }
}

/// A line's value: a string, or bytes when it is not UTF-8.
fn line_value(line: &[u8]) -> Value {
    match std::str::from_utf8(line) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::Bytes(Bytes::copy_from_slice(line)),
    }
}

/// The inode of a file, where there are inodes.
fn file_id(meta: &Metadata) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Whether two file ids name the same file; unknown ids are taken to.
fn same_file(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The metadata of `path`, `None` when there is no such file.
fn stat(path: &Path) -> Result<Option<Metadata>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("look at", path, e)),
    }
}

/// `path` opened for reading, `None` when there is no such file.
///
/// # Errors
/// When it is not a regular file (a directory, a pipe: use standard input
/// for those) or cannot be opened.
fn open_regular(path: &Path) -> Result<Option<(File, Metadata)>> {
    let not_regular = || {
        Error::io(
            "read",
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file; leave `file` unset to read standard input",
            ),
        )
    };
    // Looked at before opening: opening a named pipe would block.
    match stat(path)? {
        None => return Ok(None),
        Some(meta) if !meta.is_file() => return Err(not_regular()),
        Some(_) => {}
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("look at", path, e))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok(Some((file, meta)))
}

/// The file in `path`'s directory whose inode is `inode`: where a rotation
/// renamed the file being read.
fn find_by_inode(path: &Path, inode: u64) -> Result<Option<(PathBuf, File, Metadata)>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        // The entry's own metadata, not the directory entry's inode
        // number: overlay file systems may report another one there.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || file_id(&meta) != Some(inode) {
            continue;
        }
        let candidate = entry.path();
        if let Some((file, meta)) = open_regular(&candidate)?
            && file_id(&meta) == Some(inode)
        {
            return Ok(Some((candidate, file, meta)));
        }
    }
    Ok(None)
}

/// A stored source offset: the position and, when stored, the inode.
fn parse_offset(offset: &Map, path: &Path) -> Result<(u64, Option<u64>)> {
    let bad = |what: &str| {
        Error::io(
            "resume reading",
            path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the stored source offset {} {what}",
                    Value::Map(offset.clone()).to_json_string()
                ),
            ),
        )
    };
    let position = match offset.get(POSITION) {
        Some(Value::Int(p)) => u64::try_from(*p).map_err(|_| bad("has a negative position"))?,
        Some(_) => return Err(bad("has a position that is not an integer")),
        None => return Err(bad("has no position")),
    };
    let inode = match offset.get(INODE) {
        None | Some(Value::Null) => None,
        // The inode's bits, stored as a signed integer.
        Some(Value::Int(i)) => Some(*i as u64),
        Some(_) => return Err(bad("has an inode that is not an integer")),
    };
    Ok((position, inode))
}

/// Whether a stored `pos` can be a place this task stopped in `file` (of
/// `len` bytes): its start, its end, or just after a line end, as every
/// stored position is. `Some(pending_lf)` if so (see [`Tail::open_at`]);
/// `None` when the byte before is inside a line: another file has the
/// stored inode (inode numbers are reused after a file is deleted).
fn resume_point(file: &mut File, path: &Path, pos: u64, len: u64) -> Result<Option<bool>> {
    if pos == 0 || pos > len {
        return Ok((pos == 0).then_some(false));
    }
    let mut before = [0u8; 1];
    file.seek(SeekFrom::Start(pos - 1))
        .and_then(|_| file.read_exact(&mut before))
        .map_err(|e| Error::io("read", path, e))?;
    Ok(match before[0] {
        b'\r' => Some(true),
        b'\n' => Some(false),
        _ if pos == len => Some(false),
        _ => None,
    })
}

/// An open file being read.
#[derive(Debug)]
struct Tail {
    file: File,
    /// Where it was opened: the configured path, or where a rotation
    /// renamed it.
    path: PathBuf,
    id: Option<u64>,
    lines: LineBuffer,
}

impl Tail {
    /// Reads `file` from `pos`; `pending_lf`: the byte before `pos` is a
    /// `\r`, so a `\n` at `pos` completes that line's `\r\n`.
    fn open_at(
        mut file: File,
        path: PathBuf,
        id: Option<u64>,
        pos: u64,
        pending_lf: bool,
    ) -> Result<Tail> {
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io("seek in", &path, e))?;
        let mut lines = LineBuffer::new(pos);
        lines.pending_lf = pending_lf;
        Ok(Tail {
            file,
            path,
            id,
            lines,
        })
    }

    fn fill(&mut self) -> Result<usize> {
        self.lines
            .fill(&mut self.file)
            .map_err(|e| Error::io("read", &self.path, e))
    }
}

/// The source reading a file.
#[derive(Debug)]
struct FileInput {
    /// The configured path.
    path: PathBuf,
    /// `{"filename": <file as configured>}`.
    partition: Map,
    /// `None` until the file exists.
    tail: Option<Tail>,
}

impl FileInput {
    /// Opens `file`, resuming from its offset in `offsets`.
    fn resume(file: String, offsets: &OffsetStorageReader) -> Result<FileInput> {
        let path = PathBuf::from(&file);
        let partition: Map = [(FILENAME.to_string(), Value::String(file))].into();
        let stored = offsets
            .offset(&partition)
            .map(|offset| parse_offset(offset, &path))
            .transpose()?;
        let at_path = open_regular(&path)?;
        let tail = match (stored, at_path) {
            (None, None) => None,
            (None, Some((file, meta))) => {
                Some(Tail::open_at(file, path.clone(), file_id(&meta), 0, false)?)
            }
            (Some((position, inode)), Some((mut file, meta)))
                if same_file(inode, file_id(&meta)) =>
            {
                let id = file_id(&meta);
                if position > meta.len() {
                    tracing::warn!(
                        path = %path.display(),
                        position,
                        size = meta.len(),
                        "embedlog: file source: the file is shorter than the stored position \
                         (truncated while the task was stopped); reading it from the start"
                    );
                    Some(Tail::open_at(file, path.clone(), id, 0, false)?)
                } else if let Some(pending_lf) =
                    resume_point(&mut file, &path, position, meta.len())?
                {
                    Some(Tail::open_at(file, path.clone(), id, position, pending_lf)?)
                } else {
                    tracing::warn!(
                        path = %path.display(),
                        position,
                        "embedlog: file source: no line ends at the stored position, so this \
                         is not the file that was read (a new file reusing its inode); reading \
                         it from the start"
                    );
                    Some(Tail::open_at(file, path.clone(), id, 0, false)?)
                }
            }
            (Some((position, inode)), at_path) => {
                // The path names another file now, or none: the one we were
                // reading was rotated away while the task was stopped.
                let rotated = match inode {
                    Some(inode) => find_by_inode(&path, inode)?,
                    None => None,
                };
                let rotated = match rotated {
                    Some((old, mut file, meta)) => {
                        resume_point(&mut file, &old, position, meta.len())?
                            .map(|pending_lf| (old, file, meta, pending_lf))
                    }
                    None => None,
                };
                match rotated {
                    Some((old, file, meta, pending_lf)) => {
                        tracing::info!(
                            path = %path.display(),
                            rotated = %old.display(),
                            position,
                            "embedlog: file source: the file was rotated while the task was \
                             stopped; reading the rest of the rotated file first"
                        );
                        Some(Tail::open_at(
                            file,
                            old,
                            file_id(&meta),
                            position,
                            pending_lf,
                        )?)
                    }
                    None => {
                        tracing::warn!(
                            path = %path.display(),
                            position,
                            inode = ?inode,
                            "embedlog: file source: the file was rotated while the task was \
                             stopped and the rotated file is not in the directory any more; \
                             the lines written to it after the stored position are lost; \
                             reading the new file from the start"
                        );
                        at_path
                            .map(|(file, meta)| {
                                Tail::open_at(file, path.clone(), file_id(&meta), 0, false)
                            })
                            .transpose()?
                    }
                }
            }
        };
        Ok(FileInput {
            path,
            partition,
            tail,
        })
    }

    /// Adds to `out` (up to `batch` records) the lines there are now.
    fn fill_batch(&mut self, topic: &str, batch: usize, out: &mut Vec<SourceRecord>) -> Result<()> {
        loop {
            let tail = match &mut self.tail {
                Some(tail) => tail,
                None => match open_regular(&self.path)? {
                    Some((file, meta)) => self.tail.insert(Tail::open_at(
                        file,
                        self.path.clone(),
                        file_id(&meta),
                        0,
                        false,
                    )?),
                    None => return Ok(()),
                },
            };
            // The current file's lines, to its end or a full batch.
            let mut eof = false;
            loop {
                while out.len() < batch {
                    let Some((line, position)) = tail.lines.take_line(eof) else {
                        break;
                    };
                    out.push(file_record(topic, &self.partition, line, position, tail.id));
                }
                if out.len() >= batch {
                    return Ok(());
                }
                if eof {
                    break;
                }
                eof = tail.fill()? == 0;
            }
            // At its end: is the path still this file?
            let Some(meta) = stat(&self.path)? else {
                // Renamed away, the new one not created yet: keep reading
                // the old one until it is.
                return Ok(());
            };
            if same_file(tail.id, file_id(&meta)) {
                if meta.len() >= tail.lines.read_pos() {
                    return Ok(());
                }
                tracing::warn!(
                    path = %self.path.display(),
                    position = tail.lines.read_pos(),
                    size = meta.len(),
                    "embedlog: file source: the file was truncated (copytruncate rotation?); \
                     reading it again from the start"
                );
                // Reopened rather than rewound: where there are no inodes
                // a renamed file looks truncated too.
                self.tail = None;
                continue;
            }
            if meta.len() == 0 {
                // A new, empty file: the writer may still be appending to
                // the old one until it reopens, so keep reading that.
                return Ok(());
            }
            if tail.fill()? > 0 {
                // Written before the writer reopened: read that first.
                continue;
            }
            if let Some((line, position)) = tail.lines.take_rest() {
                out.push(file_record(topic, &self.partition, line, position, tail.id));
            }
            tracing::info!(
                path = %self.path.display(),
                rotated = %tail.path.display(),
                "embedlog: file source: the file was rotated; read the old one to its end, \
                 reading the new one from the start"
            );
            match open_regular(&self.path)? {
                Some((file, meta)) => {
                    self.tail = Some(Tail::open_at(
                        file,
                        self.path.clone(),
                        file_id(&meta),
                        0,
                        false,
                    )?);
                }
                None => self.tail = None,
            }
        }
    }
}

/// A line of a file as a record.
fn file_record(
    topic: &str,
    partition: &Map,
    line: &[u8],
    position: u64,
    inode: Option<u64>,
) -> SourceRecord {
    let mut offset = Map::new();
    offset.insert(
        POSITION.to_string(),
        Value::Int(i64::try_from(position).unwrap_or(i64::MAX)),
    );
    if let Some(inode) = inode {
        // The inode's bits as a signed integer (`parse_offset` undoes it).
        offset.insert(INODE.to_string(), Value::Int(inode as i64));
    }
    SourceRecord {
        source_partition: partition.clone(),
        source_offset: offset,
        record: line_record(topic, line_value(line)),
    }
}

fn line_record(topic: &str, value: Value) -> ConnectRecord {
    ConnectRecord {
        topic: topic.to_string(),
        partition: None,
        key: None,
        value: Some(value),
        timestamp: None,
        headers: Vec::new(),
    }
}

/// Standard input's lines, read by one thread for the whole process: a
/// thread blocked reading it cannot be stopped, so a restarted task takes
/// over the same one rather than racing a second reader for the input.
fn stdin_lines() -> Result<Arc<Mutex<Receiver<Value>>>> {
    static STDIN: Mutex<Option<Arc<Mutex<Receiver<Value>>>>> = Mutex::new(None);
    let mut lines = STDIN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lines) = &*lines {
        return Ok(lines.clone());
    }
    let rx = spawn_line_reader(io::stdin(), STDIN_QUEUE)
        .map_err(|e| Error::io("start a thread to read", "standard input", e))?;
    Ok(lines.insert(Arc::new(Mutex::new(rx))).clone())
}

/// A thread sending the lines of `reader` (and, at its end, a last line
/// without terminator) into a channel of `bound` lines.
fn spawn_line_reader<R: Read + Send + 'static>(
    reader: R,
    bound: usize,
) -> io::Result<Receiver<Value>> {
    let (tx, rx) = mpsc::sync_channel(bound);
    std::thread::Builder::new()
        .name("embedlog-connect-stdin".to_string())
        .spawn(move || read_lines_into(reader, &tx))?;
    Ok(rx)
}

fn read_lines_into(mut reader: impl Read, tx: &SyncSender<Value>) {
    let mut lines = LineBuffer::new(0);
    loop {
        while let Some((line, _)) = lines.take_line(false) {
            if tx.send(line_value(line)).is_err() {
                return;
            }
        }
        match lines.fill(&mut reader) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "embedlog: file source: reading standard input failed; no more lines \
                     will be read from it"
                );
                break;
            }
        }
    }
    while let Some((line, _)) = lines.take_line(true) {
        if tx.send(line_value(line)).is_err() {
            return;
        }
    }
    if let Some((line, _)) = lines.take_rest() {
        let _ = tx.send(line_value(line));
    }
}

#[derive(Debug)]
enum Input {
    File(FileInput),
    Stdin(Arc<Mutex<Receiver<Value>>>),
}

/// The file source's one task.
#[derive(Debug)]
struct FileStreamSourceTask {
    /// `None` until started.
    input: Option<Input>,
    topic: String,
    batch_size: usize,
    /// How long an idle poll waits ([`IDLE_WAIT`]; less in tests).
    idle_wait: Duration,
}

impl FileStreamSourceTask {
    fn new(idle_wait: Duration) -> Self {
        FileStreamSourceTask {
            input: None,
            topic: String::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            idle_wait,
        }
    }
}

impl SourceTask for FileStreamSourceTask {
    fn start(&mut self, context: &SourceTaskContext) -> Result<()> {
        let settings = SourceSettings::from_config(&context.config)?;
        self.topic = settings.topic;
        self.batch_size = settings.batch_size;
        self.input = Some(match settings.file {
            Some(file) => Input::File(FileInput::resume(file, &context.offsets)?),
            None => Input::Stdin(stdin_lines()?),
        });
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let deadline = Instant::now() + self.idle_wait;
        let mut out = Vec::new();
        match &mut self.input {
            None => Err(Error::io(
                "poll",
                "the file source",
                io::Error::other("the task was not started"),
            )),
            Some(Input::File(input)) => loop {
                input.fill_batch(&self.topic, self.batch_size, &mut out)?;
                let now = Instant::now();
                if !out.is_empty() || now >= deadline {
                    return Ok(out);
                }
                std::thread::sleep(IDLE_STEP.min(deadline - now));
            },
            Some(Input::Stdin(lines)) => {
                let lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
                match lines.recv_timeout(self.idle_wait) {
                    Ok(value) => out.push(SourceRecord {
                        source_partition: Map::new(),
                        source_offset: Map::new(),
                        record: line_record(&self.topic, value),
                    }),
                    Err(RecvTimeoutError::Timeout) => return Ok(out),
                    Err(RecvTimeoutError::Disconnected) => {
                        // The input has ended; nothing will come.
                        drop(lines);
                        std::thread::sleep(self.idle_wait);
                        return Ok(out);
                    }
                }
                while out.len() < self.batch_size {
                    let Ok(value) = lines.try_recv() else { break };
                    out.push(SourceRecord {
                        source_partition: Map::new(),
                        source_offset: Map::new(),
                        record: line_record(&self.topic, value),
                    });
                }
                Ok(out)
            }
        }
    }

    fn stop(&mut self) {
        // Closes the file. Standard input's reader stays for the next task.
        self.input = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::spi::SinkConnector;
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};
    use std::fs::OpenOptions;
    use std::io::Write;

    const LINES: &str = "lines";

    fn source_config(path: &Path) -> ConnectorConfig {
        ConnectorConfig::new("src", FileStreamSourceConnector::ALIAS)
            .set(FILE, path.display())
            .set(TOPIC, LINES)
    }

    /// A started task that does not wait when idle (the file source reads
    /// synchronously, so an empty poll means it has caught up).
    fn start(config: &ConnectorConfig, offsets: OffsetStorageReader) -> FileStreamSourceTask {
        let mut task = FileStreamSourceTask::new(Duration::ZERO);
        task.start(&SourceTaskContext {
            config: config.clone(),
            task: 0,
            offsets,
            admin: None,
        })
        .unwrap();
        task
    }

    fn poll_all(task: &mut FileStreamSourceTask) -> Vec<SourceRecord> {
        let mut all = Vec::new();
        loop {
            let batch = task.poll().unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }

    fn texts(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.record.value.as_ref().unwrap().to_text())
            .collect()
    }

    fn append(path: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    /// The offsets a runtime would hand back after storing `record`'s.
    fn stored(record: &SourceRecord) -> OffsetStorageReader {
        OffsetStorageReader::from_offsets([(
            record.source_partition.clone(),
            record.source_offset.clone(),
        )])
    }

    fn position(record: &SourceRecord) -> i64 {
        record.source_offset[POSITION].as_i64().unwrap()
    }

    #[cfg(unix)]
    fn inode_of(record: &SourceRecord) -> u64 {
        record.source_offset[INODE].as_i64().unwrap() as u64
    }

    #[cfg(unix)]
    fn ino(path: &Path) -> u64 {
        file_id(&fs::metadata(path).unwrap()).unwrap()
    }

    /// A reader returning the given chunks, one per read; an empty chunk
    /// reads as "nothing more for now".
    struct Chunks(VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut chunk) = self.0.pop_front() else {
                return Ok(0);
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
            Ok(n)
        }
    }

    /// Lines (with the position after each) until the reader has nothing.
    fn read_lines(lines: &mut LineBuffer, reader: &mut impl Read) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut eof = false;
        loop {
            while let Some((line, pos)) = lines.take_line(eof) {
                out.push((line.to_vec(), pos));
            }
            if eof {
                return out;
            }
            eof = lines.fill(reader).unwrap() == 0;
        }
    }

    #[test]
    fn all_three_terminators_end_lines_wherever_the_reads_split() {
        let content = b"a\nb\r\nc\rd\n\r\n\re";
        let mut lines = LineBuffer::new(0);
        let got = read_lines(&mut lines, &mut Chunks(VecDeque::from([content.to_vec()])));
        let expect: Vec<(Vec<u8>, u64)> =
            [("a", 2), ("b", 5), ("c", 7), ("d", 9), ("", 11), ("", 12)]
                .iter()
                .map(|(l, p)| (l.as_bytes().to_vec(), *p))
                .collect();
        assert_eq!(got, expect);
        assert_eq!(lines.take_rest(), Some((&b"e"[..], 13)));

        // Split anywhere, with a pause ("nothing more for now") between
        // the halves: the same lines, none twice, no empty line from a
        // `\r\n` torn in two.
        for split in 0..content.len() {
            let mut lines = LineBuffer::new(0);
            let mut reader = Chunks(VecDeque::from([
                content[..split].to_vec(),
                Vec::new(),
                content[split..].to_vec(),
            ]));
            // An empty chunk reads as a pause too: three reads to the end.
            let mut got = read_lines(&mut lines, &mut reader);
            got.extend(read_lines(&mut lines, &mut reader));
            got.extend(read_lines(&mut lines, &mut reader));
            let got: Vec<Vec<u8>> = got.into_iter().map(|(l, _)| l).collect();
            let want: Vec<Vec<u8>> = expect.iter().map(|(l, _)| l.clone()).collect();
            assert_eq!(got, want, "split at {split}");
            assert_eq!(lines.read_pos(), content.len() as u64);
        }
    }

    #[test]
    fn a_cr_at_the_end_of_the_buffer_waits_for_the_next_read() {
        // The first read fills the buffer exactly, ending at the `\r` of a
        // `\r\n`.
        let mut content = vec![b'x'; READ_CHUNK - 1];
        content.extend_from_slice(b"\r\ny\n");
        let mut lines = LineBuffer::new(0);
        let got = read_lines(&mut lines, &mut io::Cursor::new(content));
        assert_eq!(got.len(), 2, "no empty line between the two");
        assert_eq!(got[0].0.len(), READ_CHUNK - 1);
        assert_eq!(got[0].1, READ_CHUNK as u64 + 1);
        assert_eq!(got[1], (b"y".to_vec(), READ_CHUNK as u64 + 3));
    }

    #[test]
    fn a_line_longer_than_the_buffer_grows_it() {
        let long: Vec<u8> = (0..5 * READ_CHUNK + 17)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let mut content = b"short\n".to_vec();
        content.extend_from_slice(&long);
        content.extend_from_slice(b"\nafter\n");
        let mut lines = LineBuffer::new(0);
        let chunks = content.chunks(1000).map(<[u8]>::to_vec).collect();
        let got = read_lines(&mut lines, &mut Chunks(chunks));
        let got: Vec<Vec<u8>> = got.into_iter().map(|(l, _)| l).collect();
        assert_eq!(got, [b"short".to_vec(), long, b"after".to_vec()]);
    }

    #[test]
    fn lines_become_records_with_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, b"one\r\ntwo\rthree\n\xff\xfe\n");
        let mut task = start(&source_config(&path), OffsetStorageReader::default());
        let records = poll_all(&mut task);
        assert_eq!(texts(&records[..3]), ["one", "two", "three"]);
        let r = &records[0];
        assert_eq!(r.record.topic, LINES);
        assert_eq!(r.record.key, None);
        assert_eq!(r.record.value, Some(Value::from("one")));
        assert_eq!(
            r.source_partition,
            Map::from([(
                FILENAME.to_string(),
                Value::from(path.display().to_string())
            )])
        );
        let positions: Vec<i64> = records.iter().map(position).collect();
        assert_eq!(positions, [5, 9, 15, 18]);
        #[cfg(unix)]
        assert_eq!(inode_of(r), ino(&path));
        // Not UTF-8: bytes.
        assert_eq!(
            records[3].record.value,
            Some(Value::Bytes(Bytes::from_static(b"\xff\xfe")))
        );
    }

    #[test]
    fn a_partial_line_is_held_until_its_end_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, b"first\nhal");
        let mut task = start(&source_config(&path), OffsetStorageReader::default());
        assert_eq!(texts(&poll_all(&mut task)), ["first"]);
        append(&path, b"f a li");
        assert!(poll_all(&mut task).is_empty());
        append(&path, b"ne\n");
        let records = poll_all(&mut task);
        assert_eq!(texts(&records), ["half a line"]);
        assert_eq!(position(&records[0]), 18);
    }

    #[test]
    fn a_cr_written_last_ends_its_line_and_a_later_lf_adds_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, b"a\r");
        let config = source_config(&path);
        let mut task = start(&config, OffsetStorageReader::default());
        let records = poll_all(&mut task);
        assert_eq!(texts(&records), ["a"]);
        append(&path, b"\nb\n");
        assert_eq!(texts(&poll_all(&mut task)), ["b"]);

        // The same after a restart between the `\r` and the `\n`.
        task.stop();
        append(&path, b"c\r");
        let mut task = start(&config, OffsetStorageReader::default());
        let records = poll_all(&mut task);
        assert_eq!(texts(&records), ["a", "b", "c"]);
        task.stop();
        append(&path, b"\nd\n");
        let mut task = start(&config, stored(&records[2]));
        assert_eq!(texts(&poll_all(&mut task)), ["d"]);
    }

    #[test]
    fn batch_size_bounds_a_poll_and_a_restart_resumes_at_the_stored_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        let all: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        for line in &all {
            append(&path, format!("{line}\n").as_bytes());
        }
        let config = source_config(&path).set(BATCH_SIZE, 3);
        let mut task = start(&config, OffsetStorageReader::default());
        let first = task.poll().unwrap();
        assert_eq!(texts(&first), all[..3]);
        let second = task.poll().unwrap();
        assert_eq!(texts(&second), all[3..6]);
        task.stop();

        // Only the first batch's offsets were stored.
        let mut task = start(&config, stored(&first[2]));
        let rest = poll_all(&mut task);
        assert_eq!(texts(&rest), all[3..]);

        // Kafka's own offsets (no inode) are understood too.
        let kafka = OffsetStorageReader::from_offsets([(
            first[0].source_partition.clone(),
            Map::from([(POSITION.to_string(), Value::Int(position(&rest[5])))]),
        )]);
        let mut task = start(&config, kafka);
        assert_eq!(texts(&poll_all(&mut task)), all[9..]);
    }

    #[test]
    fn a_missing_file_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.txt");
        let mut task = start(&source_config(&path), OffsetStorageReader::default());
        assert!(task.poll().unwrap().is_empty());
        append(&path, b"here\n");
        assert_eq!(texts(&poll_all(&mut task)), ["here"]);
    }

    #[test]
    fn an_idle_poll_returns_nothing_after_a_short_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle.txt");
        let mut task = FileStreamSourceConnector.task();
        task.start(&SourceTaskContext {
            config: source_config(&path),
            task: 0,
            offsets: OffsetStorageReader::default(),
            admin: None,
        })
        .unwrap();
        let began = Instant::now();
        assert!(task.poll().unwrap().is_empty());
        // Generous: the wait is a tenth of a second.
        assert!(began.elapsed() < Duration::from_secs(10));
        task.stop();
    }

    #[test]
    fn copytruncate_while_running_reads_the_file_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"one\ntwo\n");
        let mut task = start(&source_config(&path), OffsetStorageReader::default());
        assert_eq!(texts(&poll_all(&mut task)), ["one", "two"]);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, b"3\n");
        let records = poll_all(&mut task);
        assert_eq!(texts(&records), ["3"]);
        assert_eq!(position(&records[0]), 2);
    }

    #[test]
    fn copytruncate_while_stopped_starts_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"one\ntwo\n");
        let config = source_config(&path);
        let mut task = start(&config, OffsetStorageReader::default());
        let records = poll_all(&mut task);
        task.stop();
        fs::write(&path, b"3\n").unwrap();
        let mut task = start(&config, stored(&records[1]));
        assert_eq!(texts(&poll_all(&mut task)), ["3"]);
    }

    #[cfg(unix)]
    #[test]
    fn rename_rotation_while_running_finishes_the_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let rotated = dir.path().join("app.log.1");
        append(&path, b"1\n2\n");
        let mut task = start(&source_config(&path), OffsetStorageReader::default());
        assert_eq!(texts(&poll_all(&mut task)), ["1", "2"]);
        let old = ino(&path);

        append(&path, b"3\n");
        fs::rename(&path, &rotated).unwrap();
        // Renamed, not recreated yet: the old file is still read.
        append(&rotated, b"4\n");
        assert_eq!(texts(&poll_all(&mut task)), ["3", "4"]);
        // Recreated but empty: the writer has not reopened, so what it
        // still appends to the old file is read.
        File::create(&path).unwrap();
        append(&rotated, b"5\nhalf");
        assert_eq!(texts(&poll_all(&mut task)), ["5"]);
        // The writer reopened: the old file's end (its last, unfinished
        // line as a line), then the new file from the start.
        append(&path, b"6\n7\n");
        let records = poll_all(&mut task);
        assert_eq!(texts(&records), ["half", "6", "7"]);
        assert_eq!(inode_of(&records[0]), old);
        assert_eq!(position(&records[0]), 14);
        assert_eq!(inode_of(&records[1]), ino(&path));
        assert_eq!(position(&records[1]), 2);
        assert_eq!(records[1].source_partition, records[0].source_partition);
    }

    #[cfg(unix)]
    #[test]
    fn rotation_while_stopped_finds_the_rotated_file_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"1\n2\n3\n");
        let config = source_config(&path).set(BATCH_SIZE, 1);
        let mut task = start(&config, OffsetStorageReader::default());
        let first = task.poll().unwrap();
        assert_eq!(texts(&first), ["1"]);
        task.stop();

        append(&path, b"4\n");
        fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, b"5\n");
        let mut task = start(&config, stored(&first[0]));
        assert_eq!(texts(&poll_all(&mut task)), ["2", "3", "4", "5"]);
    }

    #[cfg(unix)]
    #[test]
    fn rotation_while_stopped_without_the_rotated_file_starts_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"1\n2\n");
        let config = source_config(&path).set(BATCH_SIZE, 1);
        let mut task = start(&config, OffsetStorageReader::default());
        let first = task.poll().unwrap();
        task.stop();
        // Rotated and compressed away: the old inode is gone (removed
        // after the new file was made, so that it cannot take it).
        fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, b"new\n");
        fs::write(dir.path().join("app.log.1.gz"), b"zipped").unwrap();
        fs::remove_file(dir.path().join("app.log.1")).unwrap();
        assert_ne!(ino(&path), inode_of(&first[0]));
        let mut task = start(&config, stored(&first[0]));
        assert_eq!(texts(&poll_all(&mut task)), ["new"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_reusing_the_stored_inode_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"a new file\nwith the old inode\n");
        let config = source_config(&path);
        // As if the file read before was deleted and this one took its
        // inode: the stored position falls inside a line.
        let partition = Map::from([(
            FILENAME.to_string(),
            Value::from(path.display().to_string()),
        )]);
        let offset = Map::from([
            (POSITION.to_string(), Value::Int(4)),
            (INODE.to_string(), Value::Int(ino(&path) as i64)),
        ]);
        let mut task = start(
            &config,
            OffsetStorageReader::from_offsets([(partition, offset)]),
        );
        assert_eq!(
            texts(&poll_all(&mut task)),
            ["a new file", "with the old inode"]
        );
    }

    #[test]
    fn a_bad_stored_offset_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, b"x\n");
        let config = source_config(&path);
        let partition = Map::from([(
            FILENAME.to_string(),
            Value::from(path.display().to_string()),
        )]);
        let offsets = OffsetStorageReader::from_offsets([(
            partition,
            Map::from([(POSITION.to_string(), Value::from("ten"))]),
        )]);
        let mut task = FileStreamSourceTask::new(Duration::ZERO);
        let e = task
            .start(&SourceTaskContext {
                config,
                task: 0,
                offsets,
                admin: None,
            })
            .unwrap_err();
        assert!(e.to_string().contains("position"), "{e}");
    }

    #[test]
    fn a_directory_is_not_a_file_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut task = FileStreamSourceTask::new(Duration::ZERO);
        let e = task
            .start(&SourceTaskContext {
                config: source_config(dir.path()),
                task: 0,
                offsets: OffsetStorageReader::default(),
                admin: None,
            })
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn standard_input_lines_come_through_the_reader_thread() {
        let rx = spawn_line_reader(io::Cursor::new(b"a\r\nb\rc\nlast".to_vec()), 2).unwrap();
        let mut task = FileStreamSourceTask::new(Duration::from_millis(10));
        task.topic = LINES.to_string();
        task.input = Some(Input::Stdin(Arc::new(Mutex::new(rx))));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut records = Vec::new();
        while records.len() < 4 && Instant::now() < deadline {
            records.extend(task.poll().unwrap());
        }
        assert_eq!(texts(&records), ["a", "b", "c", "last"]);
        assert!(records[0].source_partition.is_empty());
        assert!(records[0].source_offset.is_empty());
        // The input has ended: polls return nothing (after a wait).
        task.idle_wait = Duration::ZERO;
        assert!(task.poll().unwrap().is_empty());
    }

    #[test]
    fn a_blocked_standard_input_neither_blocks_poll_nor_stop() {
        let (reader, mut writer) = io::pipe().unwrap();
        let rx = spawn_line_reader(reader, 2).unwrap();
        let mut task = FileStreamSourceTask::new(Duration::from_millis(1));
        task.topic = LINES.to_string();
        task.input = Some(Input::Stdin(Arc::new(Mutex::new(rx))));
        assert!(task.poll().unwrap().is_empty());
        writer.write_all(b"typed\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut records = Vec::new();
        while records.is_empty() && Instant::now() < deadline {
            records = task.poll().unwrap();
        }
        assert_eq!(texts(&records), ["typed"]);
        task.stop();
        // The reader thread ends at the next line, finding no receiver.
        writer.write_all(b"more\n").unwrap();
    }

    #[test]
    fn bad_configurations_name_their_key() {
        let key_of = |config: &ConnectorConfig| match FileStreamSourceConnector.validate(config) {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let good = ConnectorConfig::new("c", FileStreamSourceConnector::CLASS).set(TOPIC, "t");
        FileStreamSourceConnector.validate(&good).unwrap();
        FileStreamSourceConnector
            .validate(&good.clone().set(FILE, "/x").set(BATCH_SIZE, 1))
            .unwrap();
        for bad in ["0", "-1", "lots"] {
            assert_eq!(
                key_of(&good.clone().set(BATCH_SIZE, bad)),
                BATCH_SIZE,
                "{bad}"
            );
        }
        assert_eq!(
            key_of(&ConnectorConfig::new("c", "FileStreamSource")),
            TOPIC
        );
        assert_eq!(key_of(&good.clone().set(TOPIC, "a,b")), TOPIC);
        assert_eq!(key_of(&good.clone().set(TOPIC, "no/slash")), TOPIC);
        assert_eq!(key_of(&good.clone().set(FILE, " ")), FILE);

        let sink = ConnectorConfig::new("s", FileStreamSinkConnector::ALIAS);
        FileStreamSinkConnector.validate(&sink).unwrap();
        match FileStreamSinkConnector.validate(&sink.set(FILE, "")) {
            Err(Error::Config { key, .. }) => assert_eq!(key, FILE),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn each_connector_runs_one_task() {
        let source = ConnectorConfig::new("c", FileStreamSourceConnector::CLASS).set(TOPIC, "t");
        assert_eq!(
            FileStreamSourceConnector
                .task_configs(&source, 8)
                .unwrap()
                .len(),
            1
        );
        let sink = ConnectorConfig::new("s", FileStreamSinkConnector::CLASS);
        assert_eq!(
            FileStreamSinkConnector
                .task_configs(&sink, 8)
                .unwrap()
                .len(),
            1
        );
    }

    #[cfg(unix)]
    #[derive(Clone, Debug)]
    enum Step {
        /// Append this many more bytes of the lines.
        Append(usize),
        Poll,
        /// The runtime stores the offset of every record polled.
        Commit,
        /// The runtime stores the offsets of the first `n % (polled + 1)`
        /// records polled since the last commit, loses the others, and
        /// restarts the task.
        Restart(usize),
        /// Rename the file away and create a new one, between whole lines,
        /// after the task has caught up and stored an offset in the file
        /// rotated, or later (the task follows one rotation, not two, see
        /// `FileStreamSourceConnector`): the offsets of the first polled
        /// record from that file and of `n % (the rest + 1)` more.
        Rotate(usize),
    }

    #[cfg(unix)]
    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1usize..40).prop_map(Step::Append),
            3 => Just(Step::Poll),
            1 => Just(Step::Commit),
            2 => any::<usize>().prop_map(Step::Restart),
            1 => any::<usize>().prop_map(Step::Rotate),
        ]
    }

    #[cfg(unix)]
    fn line() -> impl Strategy<Value = (Vec<u8>, usize)> {
        let byte = prop_oneof![
            4 => b'a'..=b'e',
            1 => Just(b' '),
            1 => Just(0xc3u8),
            1 => Just(0xa9u8),
            1 => Just(0xffu8),
        ];
        (prop::collection::vec(byte, 0..12), 0usize..3)
    }

    #[cfg(unix)]
    /// The lines as written, the file's bytes, and where each line ends.
    fn layout(lines: &[(Vec<u8>, usize)]) -> (Vec<Value>, Vec<u8>, BTreeSet<usize>) {
        let mut bytes = Vec::new();
        let mut ends = BTreeSet::new();
        let mut previous_cr = false;
        for (content, term) in lines {
            bytes.extend_from_slice(content);
            let mut term: &[u8] = [&b"\n"[..], b"\r\n", b"\r"][*term];
            if previous_cr && content.is_empty() && term == b"\n" {
                // "\r" then "\n" is one "\r\n": write that empty line so.
                term = b"\r\n";
            }
            bytes.extend_from_slice(term);
            previous_cr = term == b"\r";
            ends.insert(bytes.len());
        }
        let values = lines
            .iter()
            .map(|(content, _)| line_value(content))
            .collect();
        (values, bytes, ends)
    }

    #[cfg(unix)]
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the chunking of the writes, the restarts (from the
        /// last stored offset) and the rotations, the lines committed are
        /// the lines written, each once, in order.
        #[test]
        fn every_line_once_in_order(
            lines in prop::collection::vec(line(), 1..40),
            steps in prop::collection::vec(step(), 0..60),
            batch in 1usize..5,
        ) {
            let (expected, bytes, ends) = layout(&lines);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("app.log");
            let config = source_config(&path).set(BATCH_SIZE, batch);
            let mut task = start(&config, OffsetStorageReader::default());
            let mut offsets = OffsetStorageReader::default();
            let mut written = 0;
            let mut rotations = 0;
            let mut committed: Vec<Value> = Vec::new();
            let mut polled: Vec<SourceRecord> = Vec::new();
            let mut commit = |polled: &mut Vec<SourceRecord>, n: usize, offsets: &mut OffsetStorageReader| {
                if n > 0 {
                    *offsets = stored(&polled[n - 1]);
                }
                committed.extend(polled.drain(..n).filter_map(|r| r.record.value));
            };
            for step in steps {
                match step {
                    Step::Append(n) => {
                        let n = n.min(bytes.len() - written);
                        append(&path, &bytes[written..written + n]);
                        written += n;
                    }
                    Step::Poll => {
                        let batch_records = task.poll().unwrap();
                        prop_assert!(batch_records.len() <= batch);
                        polled.extend(batch_records);
                    }
                    Step::Commit => {
                        let n = polled.len();
                        commit(&mut polled, n, &mut offsets);
                    }
                    Step::Restart(n) => {
                        let n = n % (polled.len() + 1);
                        commit(&mut polled, n, &mut offsets);
                        polled.clear();
                        task.stop();
                        task = start(&config, offsets.clone());
                    }
                    Step::Rotate(n) => {
                        if !ends.contains(&written) || !path.exists() {
                            continue;
                        }
                        polled.extend(poll_all(&mut task));
                        let current = ino(&path);
                        let n = match polled.iter().position(|r| inode_of(r) == current) {
                            Some(first) => first + 1 + n % (polled.len() - first),
                            None => n % (polled.len() + 1),
                        };
                        commit(&mut polled, n, &mut offsets);
                        rotations += 1;
                        fs::rename(&path, dir.path().join(format!("app.log.{rotations}"))).unwrap();
                        File::create(&path).unwrap();
                    }
                }
            }
            append(&path, &bytes[written..]);
            // An unfinished line is not sent.
            append(&path, b"unfinished");
            polled.extend(poll_all(&mut task));
            let n = polled.len();
            commit(&mut polled, n, &mut offsets);
            prop_assert_eq!(committed, expected);
        }
    }
}

/// Throughput of the file source, for a release build:
/// `cargo test --release --features connect --lib connect::file::throughput -- --ignored --nocapture`.
#[cfg(test)]
mod throughput {
    use super::*;
    use std::io::Write;

    #[test]
    #[ignore = "a measurement; run it in release"]
    fn file_source_lines_per_second() {
        const LINES: usize = 2_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let mut text = Vec::with_capacity(LINES * 64);
        for i in 0..LINES {
            writeln!(
                text,
                "2024-05-01T12:00:00.000Z INFO request {i} served in {} ms",
                i % 997
            )
            .unwrap();
        }
        fs::write(&path, &text).unwrap();
        let mut task = FileStreamSourceConnector.task();
        task.start(&SourceTaskContext {
            config: ConnectorConfig::new("perf", FileStreamSourceConnector::ALIAS)
                .set(FILE, path.display())
                .set(TOPIC, "lines"),
            task: 0,
            offsets: OffsetStorageReader::default(),
            admin: None,
        })
        .unwrap();
        let began = Instant::now();
        let mut n = 0;
        while n < LINES {
            n += task.poll().unwrap().len();
        }
        let secs = began.elapsed().as_secs_f64();
        println!(
            "file source: {n} lines, {:.1} MB in {secs:.3} s: {:.2} M lines/s, {:.0} MB/s",
            text.len() as f64 / 1e6,
            n as f64 / secs / 1e6,
            text.len() as f64 / secs / 1e6
        );
    }
}
