//! `embedlog consume TOPIC`: Kafka's `kafka-console-consumer.sh`.
//!
//! Without `--group` it reads the directory read-only, so it works (and
//! `--follow` keeps up) while the application that owns the directory
//! writes. With `--group` it reads as a member of that consumer group and
//! commits what it printed, which needs the directory lock.

use crate::Outcome;
use crate::common::{Fail, format_time, json_bytes, open_owner, parse_time};
use embedlog::{
    Broker, ConsumerConfig, Header, OffsetReset, OffsetSpec, ReadLimit, ReadOnlyPartition,
    StoredRecord,
};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long `--follow` sleeps when no partition has anything new. Another
/// process's appends cannot wake this one, so it looks again this often.
const FOLLOW_POLL: Duration = Duration::from_millis(10);

/// How often `--follow` over a whole topic looks for added partitions.
const PARTITIONS_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic to read.
    pub topic: String,
    /// Start at the oldest record (default: the end, as Kafka's tool).
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at this offset (with --partition), or `earliest` / `latest`.
    #[arg(long, requires = "partition", conflicts_with = "from_time")]
    pub offset: Option<String>,
    /// Start at the first record at or after this time (ms since the epoch,
    /// or 2026-12-02T10:00:00[.000][Z|+01:00]).
    #[arg(long, value_name = "TIME")]
    pub from_time: Option<String>,
    /// Read as a member of this consumer group, from its committed offsets,
    /// committing what was printed (needs the directory lock).
    #[arg(long, conflicts_with_all = ["partition", "offset", "from_time"])]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Keep reading as records arrive, until --max-messages, --timeout-ms
    /// or the process is stopped.
    #[arg(long)]
    pub follow: bool,
    /// With --follow, stop after this long without a new record.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// How to print a record: `{key}`, `{value}`, `{partition}`,
    /// `{offset}`, `{timestamp}` (ms), `{time}` (RFC 3339), `{headers}`
    /// (`k=v,…`), `{topic}`, with `\t` and `\n` escapes.
    #[arg(long, default_value = "{value}")]
    pub format: String,
    /// One JSON object per record (JSON Lines) instead of --format.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// Where records go: a buffered stdout that reports a closed pipe (`| head`)
/// as the reader having had enough.
struct Out {
    w: BufWriter<std::io::StdoutLock<'static>>,
    template: Vec<Piece>,
    json: bool,
    printed: u64,
    max: u64,
}

enum Piece {
    Text(String),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Time,
    Headers,
    Topic,
}

/// What happened to a record handed to [`Out`].
enum Flow {
    /// Written; more may follow.
    More,
    /// Written, and it was the last one `--max-messages` allows.
    Full,
    /// Not written: the reader closed the pipe (`| head`).
    Closed,
}

impl Out {
    fn record(&mut self, topic: &str, partition: u32, r: &StoredRecord) -> Result<Flow, Fail> {
        if self.printed >= self.max {
            return Ok(Flow::Full);
        }
        let line = if self.json {
            json_record(topic, partition, r).to_string()
        } else {
            let mut s = String::new();
            for p in &self.template {
                match p {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Key => s.push_str(&text(r.key.as_deref())),
                    Piece::Value => s.push_str(&text(r.value.as_deref())),
                    Piece::Partition => s.push_str(&partition.to_string()),
                    Piece::Offset => s.push_str(&r.offset.to_string()),
                    Piece::Timestamp => s.push_str(&r.timestamp.to_string()),
                    Piece::Time => s.push_str(&format_time(r.timestamp)),
                    Piece::Headers => s.push_str(&headers_text(&r.headers)),
                    Piece::Topic => s.push_str(topic),
                }
            }
            s
        };
        if let Err(e) = writeln!(self.w, "{line}") {
            return closed(e);
        }
        self.printed += 1;
        Ok(if self.printed >= self.max {
            Flow::Full
        } else {
            Flow::More
        })
    }

    fn flush(&mut self) -> Result<Flow, Fail> {
        match self.w.flush() {
            Ok(()) => Ok(Flow::More),
            Err(e) => closed(e),
        }
    }
}

fn closed(e: std::io::Error) -> Result<Flow, Fail> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(Flow::Closed)
    } else {
        Err(Fail::new(format!("writing to stdout: {e}")))
    }
}

fn parse_template(t: &str) -> Result<Vec<Piece>, Fail> {
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = Vec::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find('{') {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let Some(j) = rest[i..].find('}') else {
            return Err(Fail::new(format!("--format {t:?}: a `{{` is not closed")));
        };
        let name = &rest[i + 1..i + j];
        out.push(match name {
            "key" => Piece::Key,
            "value" => Piece::Value,
            "partition" => Piece::Partition,
            "offset" => Piece::Offset,
            "timestamp" => Piece::Timestamp,
            "time" => Piece::Time,
            "headers" => Piece::Headers,
            "topic" => Piece::Topic,
            other => {
                return Err(Fail::new(format!("--format: unknown field {{{other}}}")).hint(
                    "fields: {key} {value} {partition} {offset} {timestamp} {time} {headers} {topic}",
                ));
            }
        });
        rest = &rest[i + j + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// Bytes as text: UTF-8 as is, `null` for none, other bytes escaped.
fn text(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => b.escape_ascii().to_string(),
        },
    }
}

fn headers_text(h: &[Header]) -> String {
    h.iter()
        .map(|h| format!("{}={}", h.key(), text(h.value().map(|v| &v[..]))))
        .collect::<Vec<_>>()
        .join(",")
}

fn json_record(topic: &str, partition: u32, r: &StoredRecord) -> Value {
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": json_bytes(r.key.as_deref()),
        "value": json_bytes(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| json!([h.key(), json_bytes(h.value().map(|v| &v[..]))])).collect::<Vec<_>>(),
    })
}

pub fn run(dir: &Path, args: Args) -> Outcome {
    let mut out = Out {
        w: BufWriter::new(std::io::stdout().lock()),
        template: parse_template(&args.format)?,
        json: args.json,
        printed: 0,
        max: args.max_messages.unwrap_or(u64::MAX),
    };
    if out.max == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if args.group.is_some() {
        return run_group(dir, &args, &mut out);
    }
    let reader = Broker::open_read_only(dir)?;
    let from_time = args.from_time.as_deref().map(parse_time).transpose()?;
    let mut parts: Vec<(ReadOnlyPartition, u64)> = Vec::new();
    let add = |parts: &mut Vec<(ReadOnlyPartition, u64)>, id: u32| -> Result<(), Fail> {
        let p = reader.partition(&args.topic, id)?;
        p.refresh()?;
        let pos = match (&args.offset, from_time) {
            (Some(o), _) => match o.as_str() {
                "earliest" => p.start_offset(),
                "latest" => p.end_offset(),
                n => {
                    let o: u64 = n.parse().map_err(|_| {
                        Fail::new(format!(
                            "--offset {n:?} is not an offset, earliest or latest"
                        ))
                    })?;
                    if o < p.start_offset() || o > p.end_offset() {
                        return Err(Fail::new(format!(
                            "offset {o} is outside {}-{id}'s range {}..{}",
                            args.topic,
                            p.start_offset(),
                            p.end_offset()
                        )));
                    }
                    o
                }
            },
            (None, Some(t)) => reader
                .list_offsets(&args.topic, id, OffsetSpec::Timestamp(t))?
                .unwrap_or_else(|| p.end_offset()),
            (None, None) if args.from_beginning => p.start_offset(),
            (None, None) => p.end_offset(),
        };
        parts.push((p, pos));
        Ok(())
    };
    let count = reader.topic_config(&args.topic)?.get_partitions();
    match args.partition {
        Some(id) => add(&mut parts, id)?,
        None => {
            for id in 0..count {
                add(&mut parts, id)?;
            }
        }
    }
    let mut known = count;
    let mut partitions_checked = Instant::now();
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    loop {
        let mut any = false;
        for (p, pos) in parts.iter_mut() {
            let batches = match p.read(*pos, ReadLimit::bytes(1 << 20)) {
                Ok(b) => b,
                // Retention moved the start past this reader: go on from it.
                Err(embedlog::Error::OffsetOutOfRange { start, .. }) if *pos < start => {
                    eprintln!(
                        "embedlog: {}-{}: offsets {}..{start} were deleted meanwhile; going on from {start}",
                        p.topic(),
                        p.id(),
                        *pos
                    );
                    *pos = start;
                    any = true;
                    continue;
                }
                // The log is shorter than this reader's position: a new
                // owner's recovery cut records that were never fsync'd.
                // Go on from the new end, as Kafka's consumer resets.
                Err(embedlog::Error::OffsetOutOfRange { end, .. }) if *pos > end => {
                    eprintln!(
                        "embedlog: {}-{}: the log now ends at {end}, before offset {} (records \
                         past it were lost in a crash); going on from {end}",
                        p.topic(),
                        p.id(),
                        *pos
                    );
                    *pos = end;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for b in batches.iter() {
                *pos = b?.last_offset() + 1;
                any = true;
            }
            for r in batches.records() {
                match out.record(p.topic(), p.id(), &r?)? {
                    Flow::More => {}
                    Flow::Full => {
                        out.flush()?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    Flow::Closed => return Ok(ExitCode::SUCCESS),
                }
            }
        }
        if let Flow::Closed = out.flush()? {
            return Ok(ExitCode::SUCCESS);
        }
        // New partitions (`topics alter --partitions`) join within about a
        // second, busy or not; they are read from their start.
        if args.follow
            && args.partition.is_none()
            && partitions_checked.elapsed() >= PARTITIONS_CHECK
        {
            partitions_checked = Instant::now();
            let now = reader.topic_config(&args.topic)?.get_partitions();
            for id in known..now {
                let p = reader.partition(&args.topic, id)?;
                parts.push((p, 0));
            }
            known = known.max(now);
        }
        if any {
            last_record = Instant::now();
            continue;
        }
        if !args.follow {
            break;
        }
        if timeout.is_some_and(|t| last_record.elapsed() >= t) {
            break;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
    if out.printed == 0 && !args.from_beginning && args.offset.is_none() && from_time.is_none() {
        eprintln!(
            "embedlog: no records after the end; pass --from-beginning to read what is there, or --follow to wait"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--group`: a group member that commits what it printed.
fn run_group(dir: &Path, args: &Args, out: &mut Out) -> Outcome {
    let group = args.group.clone().unwrap_or_default();
    let broker = open_owner(dir)?;
    broker.topic(&args.topic)?;
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group(group)
            .offset_reset(reset)
            .auto_commit(None),
    );
    consumer.subscribe(&[&args.topic])?;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let poll = if args.follow {
        Duration::from_millis(100)
    } else {
        Duration::ZERO
    };
    let mut done = false;
    let mut empty_polls = 0;
    while !done {
        let records = consumer.poll(poll)?;
        if records.is_empty() {
            // The first poll may only join the group.
            empty_polls += 1;
            if !args.follow && empty_polls >= 2 {
                break;
            }
            if timeout.is_some_and(|t| last_record.elapsed() >= t) {
                break;
            }
            continue;
        }
        empty_polls = 0;
        last_record = Instant::now();
        let mut printed = Vec::new();
        for r in records {
            let stored = StoredRecord {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key_bytes(),
                value: r.value_bytes(),
                headers: r.headers(),
            };
            match out.record(r.topic(), r.partition, &stored)? {
                Flow::More => printed.push((r.partition, r.offset)),
                Flow::Full => {
                    printed.push((r.partition, r.offset));
                    done = true;
                    break;
                }
                Flow::Closed => {
                    done = true;
                    break;
                }
            }
        }
        if let Flow::Closed = out.flush()? {
            // What the buffer held may not have reached the reader: commit
            // none of it (it is read again next time, at least once).
            printed.clear();
            done = true;
        }
        // Commit exactly what was printed: the next run starts after it.
        let mut next: std::collections::BTreeMap<u32, u64> = Default::default();
        for (p, o) in printed {
            next.insert(p, o + 1);
        }
        consumer.commit_offsets(next.into_iter().map(|(p, o)| {
            (
                (args.topic.as_str(), p),
                embedlog::OffsetAndMetadata::new(o),
            )
        }))?;
    }
    consumer.close()?;
    broker.close()?;
    Ok(ExitCode::SUCCESS)
}
