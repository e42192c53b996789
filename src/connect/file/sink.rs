//! [`FileStreamSinkConnector`]: records' values appended to a file as
//! lines.

use super::super::config::ConnectorConfig;
use super::super::error::{Error, Result};
use super::super::spi::{SinkConnector, SinkRecord, SinkTask, SinkTaskContext};
use super::super::value::Value;
use super::file_setting;
use crate::{Offset, TopicPartition};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Bytes the sink buffers before writing them (still unsynced) to the file.
const SINK_BUFFER: usize = 1 << 20;

/// Kafka's `FileStreamSinkConnector`: each record's value as a line
/// appended to a file (or written to standard output). Runs one task, so
/// that no two writers interleave their lines.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `file` | the file to append to (created if missing) | unset: standard output |
///
/// plus the runtime's `topics` or `topics.regex`.
///
/// Each value is written followed by `\n`: [`Value::Bytes`] as they are,
/// [`Value::String`] as it is, other values as [`Value::to_text`]; a
/// tombstone (no value) writes nothing. `put` buffers the lines (writing
/// them, unsynced, past a megabyte); `flush` writes them and `fsync`s the
/// file (`sync_data`), so they are durable before the runtime commits
/// their offsets.
///
/// As in Kafka the sink is at-least-once: after a crash or a failed task,
/// the records since the last commit are delivered again, and the lines
/// already written for them are written a second time.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileStreamSinkConnector;

impl FileStreamSinkConnector {
    /// Kafka's class name, accepted as `connector.class`.
    pub const CLASS: &'static str = "org.apache.kafka.connect.file.FileStreamSinkConnector";
    /// Kafka's short alias, accepted as `connector.class`.
    pub const ALIAS: &'static str = "FileStreamSink";
}

impl SinkConnector for FileStreamSinkConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        file_setting(config, "standard output").map(drop)
    }

    /// One task: two tasks appending to one file would interleave their
    /// lines and lose each partition's order in it.
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        _max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        self.validate(config)?;
        Ok(vec![config.clone()])
    }

    fn task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }
}

/// Where the sink writes.
#[derive(Debug)]
enum SinkOutput {
    File { file: File, path: PathBuf },
    Stdout,
}

/// The file sink's task.
#[derive(Debug, Default)]
struct FileStreamSinkTask {
    /// `None` until started.
    output: Option<SinkOutput>,
    /// Lines put and not yet written.
    pending: Vec<u8>,
}

impl FileStreamSinkTask {
    /// Writes the pending lines (not synced).
    fn write_pending(&mut self) -> Result<()> {
        let result = match &mut self.output {
            None => {
                return Err(Error::io(
                    "write",
                    "the file sink",
                    io::Error::other("the task was not started"),
                ));
            }
            Some(SinkOutput::File { file, path }) => file
                .write_all(&self.pending)
                .map_err(|e| Error::io("append to", &*path, e)),
            Some(SinkOutput::Stdout) => {
                let mut out = io::stdout().lock();
                out.write_all(&self.pending)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("write", "standard output", e))
            }
        };
        self.pending.clear();
        result
    }
}

impl SinkTask for FileStreamSinkTask {
    fn start(&mut self, context: &SinkTaskContext) -> Result<()> {
        self.output = Some(match file_setting(&context.config, "standard output")? {
            None => SinkOutput::Stdout,
            Some(file) => {
                let path = PathBuf::from(file);
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|e| Error::io("open for appending", &path, e))?;
                SinkOutput::File { file, path }
            }
        });
        Ok(())
    }

    fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        for record in records {
            match &record.value {
                None => continue,
                Some(Value::Bytes(b)) => self.pending.extend_from_slice(b),
                Some(Value::String(s)) => self.pending.extend_from_slice(s.as_bytes()),
                Some(other) => self.pending.extend_from_slice(other.to_text().as_bytes()),
            }
            self.pending.push(b'\n');
            if self.pending.len() >= SINK_BUFFER {
                self.write_pending()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, Offset>) -> Result<()> {
        self.write_pending()?;
        if let Some(SinkOutput::File { file, path }) = &self.output {
            file.sync_data().map_err(|e| Error::io("sync", &*path, e))?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        // Lines put after the last flush are not committed: they are
        // delivered again to the next task, which writes them.
        self.output = None;
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::FILE;
    use super::*;
    use bytes::Bytes;
    use std::fs;
    use std::path::Path;

    const LINES: &str = "lines";

    fn sink_record(offset: Offset, value: Option<Value>) -> SinkRecord {
        SinkRecord {
            topic: LINES.to_string(),
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value,
            headers: Vec::new(),
        }
    }

    fn start_sink(path: &Path) -> Box<dyn SinkTask> {
        let mut task = FileStreamSinkConnector.task();
        task.start(&SinkTaskContext {
            config: ConnectorConfig::new("s", FileStreamSinkConnector::ALIAS)
                .set(FILE, path.display()),
            task: 0,
            admin: None,
        })
        .unwrap();
        task
    }

    #[test]
    fn the_sink_appends_values_as_lines_when_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut task = start_sink(&path);
        task.put(&[
            sink_record(0, Some(Value::from("text"))),
            sink_record(1, Some(Value::Bytes(Bytes::from_static(b"raw\xff")))),
            sink_record(2, None),
            sink_record(3, Some(Value::Int(5))),
            sink_record(4, Some(Value::map([("k", Value::Int(1))]))),
            sink_record(5, Some(Value::Null)),
        ])
        .unwrap();
        // Buffered until the flush.
        assert_eq!(fs::read(&path).unwrap(), b"");
        task.flush(&BTreeMap::new()).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"text\nraw\xff\n5\n{\"k\":1}\nnull\n"
        );
        task.stop();

        // A new task appends.
        let mut task = start_sink(&path);
        task.put(&[sink_record(6, Some(Value::from("again")))])
            .unwrap();
        task.flush(&BTreeMap::new()).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"text\nraw\xff\n5\n{\"k\":1}\nnull\nagain\n"
        );
    }

    #[test]
    fn the_sink_writes_large_puts_before_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut task = start_sink(&path);
        let line = "x".repeat(1000);
        let records: Vec<SinkRecord> = (0..2000)
            .map(|i| sink_record(i, Some(Value::from(line.as_str()))))
            .collect();
        task.put(&records).unwrap();
        // Past the buffer's size, whole lines are written (not synced).
        let written = fs::read(&path).unwrap().len();
        assert!(
            written >= SINK_BUFFER && written.is_multiple_of(1001),
            "{written}"
        );
        task.flush(&BTreeMap::new()).unwrap();
        assert_eq!(fs::read(&path).unwrap().len(), 2000 * 1001);
    }

    #[test]
    fn the_sink_cannot_open_a_file_in_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut task = FileStreamSinkConnector.task();
        let e = task
            .start(&SinkTaskContext {
                config: ConnectorConfig::new("s", FileStreamSinkConnector::ALIAS)
                    .set(FILE, dir.path().join("no/such/out.txt").display()),
                task: 0,
                admin: None,
            })
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
