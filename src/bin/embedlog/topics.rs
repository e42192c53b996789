//! `embedlog topics create|list|describe|alter|delete` (Kafka's
//! `kafka-topics.sh`) and `embedlog delete-records`.

use crate::Outcome;
use crate::common::{Fail, open_or_create_owner, open_owner, print_json};
use embedlog::{Broker, TopicConfig, TopicDescription};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Create a topic (needs the directory lock; creates the directory if
    /// needed).
    Create {
        /// The topic's name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// A setting by its Kafka name, e.g. `--config retention.ms=3600000`
        /// (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
        /// Succeed without changes if the topic exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List the topics (read-only: works while the application runs).
    List {
        /// Include internal topics (`__consumer_offsets`).
        #[arg(long)]
        internal: bool,
        /// One JSON array of names.
        #[arg(long)]
        json: bool,
    },
    /// Partitions, offsets, sizes and settings (read-only).
    Describe {
        /// Topics to describe (all if none).
        names: Vec<String>,
        /// One JSON array of topic descriptions.
        #[arg(long)]
        json: bool,
    },
    /// Change settings or grow the partition count (needs the lock).
    Alter {
        /// The topic's name.
        name: String,
        /// The new, larger partition count.
        #[arg(long)]
        partitions: Option<u32>,
        /// A setting by its Kafka name, e.g. `--config retention.ms=-1`
        /// (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// Delete a topic and its data (needs the lock).
    Delete {
        /// The topic's name.
        name: String,
        /// Succeed if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

/// `embedlog delete-records`: Kafka's `kafka-delete-records.sh`.
#[derive(Debug, clap::Args)]
pub struct DeleteRecords {
    /// The topic.
    pub topic: String,
    /// The partition.
    #[arg(long)]
    pub partition: u32,
    /// Delete every record before this offset (the partition's new start).
    #[arg(long, value_name = "OFFSET")]
    pub before: u64,
}

pub fn run(dir: &Path, cmd: Cmd) -> Outcome {
    match cmd {
        Cmd::Create {
            name,
            partitions,
            configs,
            if_not_exists,
        } => {
            let config = apply_configs(TopicConfig::default().partitions(partitions), &configs)?;
            let broker = open_or_create_owner(dir)?;
            match broker.admin().create_topic(&name, config) {
                Ok(_) => println!("Created topic {name}."),
                Err(embedlog::Error::TopicExists { .. }) if if_not_exists => {
                    println!("Topic {name} already exists.")
                }
                Err(e) => return Err(e.into()),
            }
            broker.close()?;
        }
        Cmd::List { internal, json } => {
            let reader = Broker::open_read_only(dir)?;
            let names = if internal {
                reader.list_all_topics()?
            } else {
                reader.list_topics()?
            };
            if json {
                print_json(&json!(names));
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        Cmd::Describe { names, json } => {
            let reader = Broker::open_read_only(dir)?;
            let names = if names.is_empty() {
                reader.list_topics()?
            } else {
                names
            };
            let mut out = Vec::new();
            for n in &names {
                out.push(reader.describe_topic(n)?);
            }
            if json {
                print_json(&Value::Array(out.iter().map(describe_json).collect()));
            } else {
                for d in &out {
                    print_description(d);
                }
            }
        }
        Cmd::Alter {
            name,
            partitions,
            configs,
        } => {
            if partitions.is_none() && configs.is_empty() {
                return Err(Fail::new("nothing to alter")
                    .hint("give --partitions N or --config NAME=VALUE"));
            }
            let broker = open_owner(dir)?;
            let admin = broker.admin();
            if !configs.is_empty() {
                let current = admin.describe_topic(&name)?.config;
                admin.alter_config(&name, apply_configs(current, &configs)?)?;
            }
            if let Some(n) = partitions {
                admin.add_partitions(&name, n)?;
            }
            broker.close()?;
            println!("Altered topic {name}.");
        }
        Cmd::Delete { name, if_exists } => {
            let broker = open_owner(dir)?;
            match broker.admin().delete_topic(&name) {
                Ok(()) => println!("Deleted topic {name}."),
                Err(embedlog::Error::UnknownTopic { .. }) if if_exists => {
                    println!("Topic {name} does not exist.")
                }
                Err(e) => return Err(e.into()),
            }
            broker.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn delete_records(dir: &Path, args: DeleteRecords) -> Outcome {
    let broker = open_owner(dir)?;
    broker
        .admin()
        .delete_records(&args.topic, args.partition, args.before)?;
    let start = broker
        .partition(&args.topic, args.partition)?
        .start_offset();
    broker.close()?;
    println!(
        "Deleted records of {}-{} before offset {}; its start offset is now {start}.",
        args.topic, args.partition, args.before
    );
    Ok(ExitCode::SUCCESS)
}

/// Applies `NAME=VALUE` settings in order.
fn apply_configs(mut config: TopicConfig, configs: &[String]) -> Result<TopicConfig, Fail> {
    for c in configs {
        let Some((k, v)) = c.split_once('=') else {
            return Err(Fail::new(format!("--config {c:?} is not NAME=VALUE"))
                .hint("for example --config retention.ms=86400000"));
        };
        config = config.set(k.trim(), v)?;
    }
    Ok(config)
}

fn describe_json(d: &TopicDescription) -> Value {
    let config: serde_json::Map<String, Value> = d
        .config
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    json!({
        "name": d.name,
        "partition_count": d.partitions.len(),
        "records": d.record_count(),
        "size_bytes": d.size_bytes(),
        "partitions": d.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "start_offset": p.start_offset,
            "end_offset": p.end_offset,
            "flushed_offset": p.flushed_offset,
            "size_bytes": p.size_bytes,
            "segments": p.segments,
        })).collect::<Vec<_>>(),
        "config": config,
    })
}

fn print_description(d: &TopicDescription) {
    let configs: Vec<String> = d
        .config
        .entries()
        .into_iter()
        .filter(|(k, _)| *k != "partitions")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "Topic: {}\tPartitionCount: {}\tRecords: {}\tSize: {}\tConfigs: {}",
        d.name,
        d.partitions.len(),
        d.record_count(),
        human_bytes(d.size_bytes()),
        configs.join(",")
    );
    for p in &d.partitions {
        println!(
            "\tTopic: {}\tPartition: {}\tStartOffset: {}\tEndOffset: {}\tSize: {}\tSegments: {}",
            d.name,
            p.partition,
            p.start_offset,
            p.end_offset,
            human_bytes(p.size_bytes),
            p.segments
        );
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
