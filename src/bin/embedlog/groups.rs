//! `embedlog groups list|describe|reset-offsets|delete`: Kafka's
//! `kafka-consumer-groups.sh`.
//!
//! `list`, `describe` and a dry-run `reset-offsets` read the directory
//! read-only (committed offsets are durable in `__consumer_offsets`), so
//! they work while the application runs; group members live in the
//! application's memory and are not shown. `reset-offsets --execute` and
//! `delete` need the directory lock, as Kafka needs the group inactive.

use crate::Outcome;
use crate::common::{Fail, format_time, open_owner, parse_time, print_json};
use embedlog::{Broker, OffsetSpec, ReadOnlyBroker, TopicPartition};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// The groups with committed offsets (read-only).
    List {
        /// One JSON array of group ids.
        #[arg(long)]
        json: bool,
    },
    /// A group's committed offsets, end offsets and lag per partition
    /// (read-only).
    Describe {
        /// The group id.
        group: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets. Prints the plan unless --execute
    /// (the default is a dry run, as Kafka's).
    ResetOffsets(Reset),
    /// Delete a group's committed offsets (needs the lock).
    Delete {
        /// The group id.
        group: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args([
    "to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"
])))]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
pub struct Reset {
    /// The group id.
    pub group: String,
    /// `TOPIC` or `TOPIC:P,P,...` (repeatable).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Every partition the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// To each partition's start.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's end.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (clamped to each partition's range, as Kafka does).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<u64>,
    /// To the first record at or after this time (ms, or
    /// 2026-12-02T10:00:00[.000][Z|+01:00]).
    #[arg(long, value_name = "TIME")]
    pub to_datetime: Option<String>,
    /// Move the committed offset by N (negative: back), clamped.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Store the new offsets (needs the directory lock).
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
    /// Only print the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON array of the new offsets.
    #[arg(long)]
    pub json: bool,
}

pub fn run(dir: &Path, cmd: Cmd) -> Outcome {
    match cmd {
        Cmd::List { json } => {
            let reader = Broker::open_read_only(dir)?;
            let groups: Vec<String> = reader.committed_offsets()?.into_keys().collect();
            if json {
                print_json(&json!(groups));
            } else {
                for g in groups {
                    println!("{g}");
                }
            }
        }
        Cmd::Describe { group, json } => {
            let reader = Broker::open_read_only(dir)?;
            let offsets = reader.group_offsets(&group)?;
            if json {
                print_json(&json!({
                    "group": group,
                    "offsets": offsets.iter().map(|o| json!({
                        "topic": &*o.partition.topic,
                        "partition": o.partition.partition,
                        "committed": o.committed.as_ref().map(|c| c.offset),
                        "metadata": o.committed.as_ref().map(|c| c.metadata.clone()),
                        "commit_timestamp": o.committed.as_ref().map(|c| c.commit_timestamp),
                        "end_offset": o.end_offset,
                        "lag": o.lag,
                    })).collect::<Vec<_>>(),
                    "total_lag": offsets.iter().filter_map(|o| o.lag).sum::<u64>(),
                }));
            } else {
                println!(
                    "{:<20} {:<24} {:>9} {:>15} {:>15} {:>10}  COMMITTED-AT",
                    "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
                );
                for o in &offsets {
                    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                    println!(
                        "{:<20} {:<24} {:>9} {:>15} {:>15} {:>10}  {}",
                        group,
                        o.partition.topic,
                        o.partition.partition,
                        opt(o.committed.as_ref().map(|c| c.offset)),
                        opt(o.end_offset),
                        opt(o.lag),
                        o.committed
                            .as_ref()
                            .map_or("-".to_string(), |c| format_time(c.commit_timestamp)),
                    );
                }
            }
        }
        Cmd::ResetOffsets(reset) => return reset_offsets(dir, reset),
        Cmd::Delete { group } => {
            let broker = open_owner(dir)?;
            broker.admin().delete_group(&group)?;
            broker.close()?;
            println!("Deleted the committed offsets of group {group}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The partitions `--topic` / `--all-topics` name.
fn scope(
    reader: &ReadOnlyBroker,
    reset: &Reset,
    committed: &BTreeMap<TopicPartition, u64>,
) -> Result<Vec<TopicPartition>, Fail> {
    if reset.all_topics {
        if committed.is_empty() {
            return Err(Fail::new(format!(
                "group {} has no committed offsets to reset",
                reset.group
            ))
            .hint("name the partitions with --topic TOPIC[:P,P]"));
        }
        return Ok(committed.keys().cloned().collect());
    }
    let mut out = Vec::new();
    for t in &reset.topic {
        match t.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',') {
                    let p: u32 = p.trim().parse().map_err(|_| {
                        Fail::new(format!("--topic {t:?}: {p:?} is not a partition number"))
                    })?;
                    out.push(TopicPartition::new(topic, p));
                }
            }
            None => {
                let n = reader.topic_config(t)?.get_partitions();
                out.extend((0..n).map(|p| TopicPartition::new(t, p)));
            }
        }
    }
    Ok(out)
}

fn reset_offsets(dir: &Path, reset: Reset) -> Outcome {
    let reader = Broker::open_read_only(dir)?;
    let committed: BTreeMap<TopicPartition, u64> = reader
        .committed_offsets()?
        .remove(&reset.group)
        .unwrap_or_default()
        .into_iter()
        .map(|(tp, c)| (tp, c.offset))
        .collect();
    let time = reset.to_datetime.as_deref().map(parse_time).transpose()?;
    let mut plan = Vec::new();
    for tp in scope(&reader, &reset, &committed)? {
        let p = reader.partition(&tp.topic, tp.partition)?;
        p.refresh()?;
        let (start, end) = (p.start_offset(), p.end_offset());
        let target = if reset.to_earliest {
            start
        } else if reset.to_latest {
            end
        } else if let Some(o) = reset.to_offset {
            o.clamp(start, end)
        } else if let Some(t) = time {
            reader
                .list_offsets(&tp.topic, tp.partition, OffsetSpec::Timestamp(t))?
                .unwrap_or(end)
        } else {
            let by = reset.shift_by.unwrap_or(0);
            let Some(&current) = committed.get(&tp) else {
                return Err(Fail::new(format!(
                    "group {} has no committed offset for {tp} to shift",
                    reset.group
                ))
                .hint("use --to-earliest, --to-latest or --to-offset for it"));
            };
            (current as i128 + by as i128).clamp(start as i128, end as i128) as u64
        };
        plan.push((tp, target));
    }
    if reset.execute {
        // The read-only view is let go first: the owner's open may recover.
        drop(reader);
        let broker = open_owner(dir)?;
        broker
            .admin()
            .alter_group_offsets(&reset.group, plan.iter().cloned())?;
        broker.close()?;
    }
    if reset.json {
        print_json(&json!(
            plan.iter()
                .map(|(tp, o)| json!({
                    "topic": &*tp.topic,
                    "partition": tp.partition,
                    "previous": committed.get(tp),
                    "new_offset": o,
                }))
                .collect::<Vec<_>>()
        ));
    } else {
        println!(
            "{:<20} {:<24} {:>9} {:>15} {:>15}",
            "GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"
        );
        for (tp, o) in &plan {
            println!(
                "{:<20} {:<24} {:>9} {:>15} {:>15}",
                reset.group,
                tp.topic,
                tp.partition,
                committed.get(tp).map_or("-".to_string(), |c| c.to_string()),
                o
            );
        }
    }
    if !reset.execute {
        eprintln!("Dry run: nothing stored. Pass --execute to store these offsets.");
    }
    Ok(ExitCode::SUCCESS)
}
