//! Before the threads start: the source topics exist, the internal topics
//! are created with the right partition counts, the global stores are
//! read to their end.

use super::Shared;
use crate::streams::driver::open_store;
use crate::streams::store::{SharedStore, StoreSpec};
use crate::streams::topology::{InternalKind, Topology};
use crate::{
    Admin, Broker, CleanupPolicy, ConsumerConfig, Error, IsolationLevel, OffsetReset, OffsetSpec,
    Result, TopicConfig,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// The partition counts the application runs with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// Partition count of every topic the topology reads or writes that
    /// exists, by resolved name.
    pub(crate) partitions: HashMap<String, u32>,
}

fn partitions_of(admin: &Admin, topic: &str) -> Result<Option<u32>> {
    match admin.describe_topic(topic) {
        Ok(d) => Ok(Some(d.partitions.len() as u32)),
        Err(Error::UnknownTopic { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks the source topics, decides the partition counts, creates the
/// internal topics.
pub(crate) fn prepare(broker: &Broker, topology: &Topology, app: &str) -> Result<Layout> {
    let admin = broker.admin();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for sub in &topology.subtopologies {
        for t in &sub.sources {
            if topology.internal.contains_key(t) {
                continue;
            }
            let n = partitions_of(&admin, t)?.ok_or_else(|| {
                Error::Topology(format!(
                    "source topic {t:?} does not exist: create it before starting the application (Streams creates only its own internal topics)"
                ))
            })?;
            counts.insert(t.clone(), n);
        }
    }
    for g in &topology.globals {
        partitions_of(&admin, &g.topic)?.ok_or_else(|| {
            Error::Topology(format!(
                "global table topic {:?} does not exist: create it before starting the application",
                g.topic
            ))
        })?;
    }
    // Joins' inputs must be co-partitioned; every repartition topic gets
    // the count `Repartitioned` fixed, else that of what it is joined with,
    // else that of what writes it.
    let decided = topology.check_copartitioning(app, |t| {
        counts
            .get(t)
            .copied()
            .ok_or_else(|| Error::UnknownTopic { name: t.to_owned() })
    })?;
    let prefix = format!("{app}-");
    for (full, n) in decided {
        if let Some(name) = full.strip_prefix(&prefix) {
            counts.insert(name.to_owned(), n);
        }
    }
    let mut tasks = Vec::new();
    for sub in &topology.subtopologies {
        let mut n = None;
        for t in &sub.sources {
            let c = *counts.get(t).ok_or_else(|| {
                Error::Topology(format!("cannot decide how many partitions topic {t:?} needs (a cycle of repartition topics?)"))
            })?;
            match n {
                None => n = Some(c),
                Some(m) if m != c => {
                    return Err(Error::Topology(format!(
                        "sub-topology {} reads topics with different partition counts ({}): its records cannot be split into tasks by partition; repartition the smaller side with repartition_with(Repartitioned::default().partitions({}))",
                        sub.id,
                        sub.sources
                            .iter()
                            .map(|t| format!("{t}: {}", counts.get(t).copied().unwrap_or(0)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        m.max(c)
                    )));
                }
                Some(_) => {}
            }
        }
        tasks.push(n.unwrap_or(1));
    }
    // Create (or check) the internal topics.
    let mut partitions = HashMap::new();
    for (name, kind) in &topology.internal {
        let resolved = topology.resolve(app, name);
        let (want, config) = match kind {
            InternalKind::Repartition { .. } => {
                let n = counts.get(name).copied().unwrap_or(1);
                (
                    n,
                    TopicConfig::default()
                        .partitions(n)
                        .cleanup_policy(CleanupPolicy::Delete)
                        .retention(None),
                )
            }
            InternalKind::Changelog { store } => {
                let sub = topology
                    .subtopologies
                    .iter()
                    .find(|s| s.stores.contains(store))
                    .map_or(0, |s| s.id);
                let n = tasks.get(sub).copied().unwrap_or(1);
                let kind = topology.stores.get(store).map(|s| s.kind);
                let config = match kind.and_then(|k| k.retention_ms()) {
                    Some(ms) => TopicConfig::default()
                        .partitions(n)
                        .cleanup_policy(CleanupPolicy::CompactDelete)
                        .retention(Some(Duration::from_millis(
                            u64::try_from(ms.max(0))
                                .unwrap_or(0)
                                .saturating_add(86_400_000),
                        ))),
                    None => TopicConfig::default()
                        .partitions(n)
                        .cleanup_policy(CleanupPolicy::Compact),
                };
                (n, config)
            }
        };
        match partitions_of(&admin, &resolved)? {
            Some(have) if have != want => {
                return Err(Error::Topology(format!(
                    "internal topic {resolved:?} has {have} partitions where the application needs {want} (its input topics changed?): delete it (embedlog topics delete) and restart to rebuild it"
                )));
            }
            Some(_) => {}
            None => match admin.create_topic(&resolved, config) {
                Ok(_) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            },
        }
        partitions.insert(resolved, want);
    }
    for (t, n) in counts {
        partitions.entry(topology.resolve(app, &t)).or_insert(n);
    }
    Ok(Layout { partitions })
}

/// Opens every global store and reads its topic to the end.
pub(crate) fn open_globals(
    topology: &Topology,
    state_dir: &Path,
) -> Result<HashMap<String, (SharedStore, StoreSpec)>> {
    let mut out = HashMap::new();
    for g in &topology.globals {
        let spec = topology.stores.get(&g.store).ok_or_else(|| {
            Error::Topology(format!("global store {:?} is not declared", g.store))
        })?;
        let store = open_store(spec, &state_dir.join("global").join(&g.store))?;
        store.lock().data.clear()?;
        out.insert(g.store.clone(), (store, spec.clone()));
    }
    Ok(out)
}

/// Reads `topic` partition `partition` from `from` up to its current end
/// (its last stable offset when `committed`), giving each record's key and
/// value to `apply`. Returns the offset after the last record read.
pub(crate) fn read_to_end(
    broker: &Broker,
    topic: &str,
    partition: u32,
    from: u64,
    committed: bool,
    mut apply: impl FnMut(Option<bytes::Bytes>, Option<bytes::Bytes>) -> Result<()>,
) -> Result<u64> {
    let admin = broker.admin();
    let spec = if committed {
        OffsetSpec::LastStable
    } else {
        OffsetSpec::Latest
    };
    let end = admin.list_offsets(topic, partition, spec)?.unwrap_or(0);
    let start = admin
        .list_offsets(topic, partition, OffsetSpec::Earliest)?
        .unwrap_or(0);
    let from = from.max(start);
    if from >= end {
        return Ok(from);
    }
    let isolation = if committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .isolation_level(isolation)
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    consumer.assign([(topic, partition)])?;
    consumer.seek((topic, partition), from)?;
    let mut stalled = 0;
    loop {
        let before = consumer.position((topic, partition))?;
        if before >= end {
            return Ok(before);
        }
        let records = consumer.poll(Duration::from_millis(100))?;
        for r in &records {
            if r.offset >= end {
                continue;
            }
            apply(r.key_bytes(), r.value_bytes())?;
        }
        if consumer.position((topic, partition))? == before {
            stalled += 1;
            // Nothing moved for 10 s while records below the end are due:
            // the log no longer holds what its offsets promised.
            if stalled > 100 {
                return Err(Error::Topology(format!(
                    "reading {topic} partition {partition} stopped at offset {before}, before its end {end}"
                )));
            }
        } else {
            stalled = 0;
        }
    }
}

/// Restores a task's store from its changelog: from `from` (a persistent
/// store's checkpoint: it holds everything before), else from the
/// beginning into an emptied store.
pub(crate) fn restore_task_store(
    shared: &Shared,
    store: &SharedStore,
    changelog: &str,
    partition: u32,
    from: Option<u64>,
) -> Result<u64> {
    let committed = shared.config.guarantee == super::ProcessingGuarantee::ExactlyOnce;
    match from {
        Some(_) => store.lock().rebuild_time_index()?,
        None => store.lock().data.clear()?,
    }
    read_to_end(
        &shared.broker,
        changelog,
        partition,
        from.unwrap_or(0),
        committed,
        |k, v| {
            if let Some(k) = k {
                store.lock().restore(k, v)?;
            }
            Ok(())
        },
    )
}

/// Resolved names of the topology's internal repartition topics.
pub(crate) fn repartition_topics(topology: &Topology, app: &str) -> BTreeMap<String, ()> {
    topology
        .internal
        .iter()
        .filter(|(_, k)| matches!(k, InternalKind::Repartition { .. }))
        .map(|(n, _)| (topology.resolve(app, n), ()))
        .collect()
}
