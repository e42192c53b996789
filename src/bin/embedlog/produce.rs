//! `embedlog produce TOPIC`: Kafka's `kafka-console-producer.sh`, one
//! record per line of stdin or a file.

use crate::Outcome;
use crate::common::{Fail, open_owner, progress};
use embedlog::{Durability, ProducerConfig, Record};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic to append to.
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Split each line into key and value at the first occurrence of this
    /// string (Kafka's `parse.key=true` with `key.separator`). A line
    /// without it is an error.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition (default: by the key's hash,
    /// sticky batches for records without a key).
    #[arg(long)]
    pub partition: Option<u32>,
    /// A header added to every record, `NAME=VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// fsync every batch before it is acknowledged (Durability::Sync). By
    /// default records are written to the page cache, which survives the
    /// process being killed but not a power loss until the next flush.
    #[arg(long)]
    pub sync: bool,
}

pub fn run(dir: &Path, args: Args) -> Outcome {
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    Fail::new(format!("--header {h:?} is not NAME=VALUE"))
                        .hint("for example --header source=cli")
                })
        })
        .collect::<Result<Vec<_>, Fail>>()?;
    if args.key_separator.as_deref() == Some("") {
        return Err(Fail::new("--key-separator must not be empty"));
    }
    let (input, len, source): (Box<dyn Read>, Option<u64>, String) = match &args.file {
        Some(path) => {
            let f = File::open(path)
                .map_err(|e| Fail::new(format!("cannot open {}: {e}", path.display())))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len, path.display().to_string())
        }
        None => (Box::new(std::io::stdin().lock()), None, "stdin".to_string()),
    };
    let broker = open_owner(dir)?;
    // Fail before reading input if the topic or partition does not exist.
    let topic = broker.topic(&args.topic)?;
    if let Some(p) = args.partition {
        topic.partition(p)?;
    }
    let durability = if args.sync {
        Durability::Sync
    } else {
        Durability::default()
    };
    let producer = broker.producer(ProducerConfig::default().durability(durability));
    let bar = progress(len, "produce");
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::new();
    let mut sent: u64 = 0;
    let mut line_no: u64 = 0;
    let mut failure = None;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                failure = Some(Fail::new(format!("reading {source}: {e}")));
                break;
            }
        };
        line_no += 1;
        bar.inc(n as u64);
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let mut record = match &args.key_separator {
            Some(sep) => match find(&line, sep.as_bytes()) {
                Some(i) => Record::new(line[i + sep.len()..].to_vec()).key(line[..i].to_vec()),
                None => {
                    failure = Some(
                        Fail::new(format!(
                            "line {line_no} of {source} has no key separator {sep:?}"
                        ))
                        .hint("every line must be KEY<separator>VALUE; the lines before it were stored"),
                    );
                    break;
                }
            },
            None => Record::new(line.clone()),
        };
        for (k, v) in &headers {
            record = record.header(k.clone(), v.clone().into_bytes());
        }
        let result = match args.partition {
            Some(p) => producer.send_to(&args.topic, p, record),
            None => producer.send(&args.topic, record),
        };
        if let Err(e) = result {
            failure = Some(Fail::from(e));
            break;
        }
        sent += 1;
    }
    // Everything sent before a failure is stored before we report it.
    producer.flush()?;
    bar.finish_and_clear();
    broker.close()?;
    eprintln!("Produced {sent} records to {}.", args.topic);
    match failure {
        Some(f) => Err(f),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
