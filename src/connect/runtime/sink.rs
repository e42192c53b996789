//! A sink task's loop: poll the connector's consumer group, convert and
//! transform, put, and every flush interval flush the task and commit the
//! group's offsets (at-least-once). Records that fail a converter or a
//! transform go to the dead-letter topic when the connector has one.

use super::super::error::{Error, Result};
use super::super::spi::{ConnectRecord, SinkConnector, SinkRecord, SinkTask, SinkTaskContext};
use super::TaskEnv;
use super::errors::Stage;
use super::task::{Work, retrying};
use crate::worker::Stop;
use crate::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetAndMetadata,
    OffsetReset, Producer, ProducerConfig, RebalanceListener, TopicConfig, TopicPartition,
};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a poll waits for records before the loop looks at its stop
/// flag and flush interval again.
const POLL: Duration = Duration::from_millis(100);

/// How long a retriable `put` is retried before the task fails (and its
/// successor rejoins the group): below the consumer's default
/// `max.poll.interval` of 5 minutes.
const PUT_RETRY_LIMIT: Duration = Duration::from_secs(240);

/// What the task has put: per partition, the offset after its last record.
type Offsets = BTreeMap<TopicPartition, Offset>;

/// The parts of a sink task its rebalance listener shares: the task (to
/// flush before partitions go), the offsets put, the dead-letter producer
/// (flushed before any commit), and the failure a listener met (it cannot
/// return one; the loop fails the task with it).
struct Shared {
    task: Mutex<Box<dyn SinkTask>>,
    offsets: Mutex<Offsets>,
    dead_letters: Mutex<Option<Producer>>,
    failure: Mutex<Option<Error>>,
}

impl Shared {
    /// Flushes the dead letters and the task for `partitions` (all when
    /// `None`) and commits their offsets: `Ok(true)` if the group took
    /// the commit.
    fn flush_and_commit(
        &self,
        consumer: &mut Consumer,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<bool> {
        let offsets: Offsets = {
            let all = self.offsets.lock();
            match partitions {
                None => all.clone(),
                Some(ps) => all
                    .iter()
                    .filter(|(tp, _)| ps.contains(tp))
                    .map(|(tp, o)| (tp.clone(), *o))
                    .collect(),
            }
        };
        if offsets.is_empty() {
            return Ok(false);
        }
        // A dead-lettered record's offset is committed with the others:
        // the dead letter must be stored first.
        if let Some(p) = &*self.dead_letters.lock() {
            p.flush()?;
        }
        self.task.lock().flush(&offsets)?;
        let commits = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)));
        match consumer.commit_offsets(commits) {
            Ok(()) => {}
            // The group moved on (a rebalance, or this member was removed):
            // the new owners read from the last commit, so those records
            // come again (at-least-once). The entries stay: the partitions
            // still owned are committed next time, and the listener drops
            // those revoked or lost.
            Err(e @ (crate::Error::CommitFailed { .. } | crate::Error::Fenced { .. })) => {
                tracing::warn!(error = %e, "embedlog connect: a sink's commit was refused by its group");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        let mut all = self.offsets.lock();
        for (tp, o) in &offsets {
            if all.get(tp) == Some(o) {
                all.remove(tp);
            }
        }
        Ok(true)
    }
}

struct Listener(Arc<Shared>);

impl RebalanceListener for Listener {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let committed = self.0.flush_and_commit(consumer, Some(partitions));
        // Whether or not the commit went through, these are no longer
        // ours to commit.
        self.0
            .offsets
            .lock()
            .retain(|tp, _| !partitions.contains(tp));
        if let Err(e) = committed {
            self.0.failure.lock().get_or_insert(e);
        }
    }

    fn on_lost(&mut self, _consumer: &mut Consumer, partitions: &[TopicPartition]) {
        // Others own them already: what was put is delivered again there.
        self.0
            .offsets
            .lock()
            .retain(|tp, _| !partitions.contains(tp));
    }
}

pub(super) struct SinkWork {
    env: Arc<TaskEnv>,
    shared: Arc<Shared>,
    consumer: Consumer,
    /// The topics subscribed to (resolved from `topics.regex`, whose
    /// matches are looked for again at every flush).
    subscribed: Vec<String>,
    last_commit: Instant,
}

impl SinkWork {
    /// Starts an instance of `connector`'s task and its group member.
    pub(super) fn start(
        env: &Arc<TaskEnv>,
        connector: &Mutex<Box<dyn SinkConnector>>,
    ) -> Result<Option<Box<dyn Work>>> {
        let mut task = connector.lock().task();
        let context = SinkTaskContext {
            config: env.task_config.clone(),
            task: env.task,
            admin: Some(env.broker.admin()),
        };
        if let Err(e) = task.start(&context) {
            task.stop();
            return Err(e);
        }
        let shared = Arc::new(Shared {
            task: Mutex::new(task),
            offsets: Mutex::new(Offsets::new()),
            dead_letters: Mutex::new(None),
            failure: Mutex::new(None),
        });
        let mut consumer = env.broker.consumer(
            ConsumerConfig::default()
                .group(format!("connect-{}", env.connector))
                .isolation_level(IsolationLevel::ReadCommitted)
                .offset_reset(OffsetReset::Earliest)
                .max_poll_records(env.pipes.max_poll_records),
        );
        consumer.set_rebalance_listener(Listener(shared.clone()));
        let mut work = SinkWork {
            env: env.clone(),
            shared,
            consumer,
            subscribed: Vec::new(),
            last_commit: Instant::now(),
        };
        if let Err(e) = work.subscribe() {
            work.shared.task.lock().stop();
            return Err(e);
        }
        Ok(Some(Box::new(work)))
    }

    /// Subscribes to the connector's topics (again, if a new topic
    /// matches its regex).
    fn subscribe(&mut self) -> Result<()> {
        let topics = match &self.env.pipes.topics {
            SinkTopics::List(list) => list.clone(),
            SinkTopics::Regex(re) => self
                .env
                .broker
                .admin()
                .list_topics()?
                .into_iter()
                .filter(|t| {
                    re.is_match(t)
                        && *t != self.env.settings.offsets_topic
                        && Some(t) != self.env.errors.dead_letter_topic.as_ref()
                })
                .collect(),
        };
        if topics != self.subscribed && !topics.is_empty() {
            self.consumer.subscribe(&topics)?;
            self.subscribed = topics;
        }
        Ok(())
    }

    /// Converts and transforms `raw`; `None` if a transform dropped it or
    /// the error policy skipped it.
    fn convert(&mut self, raw: &ConsumerRecord) -> Result<Option<SinkRecord>> {
        let pipes = &self.env.pipes;
        let key = match pipes.key.to_value(raw.key_bytes().as_ref()) {
            Ok(k) => k,
            Err(e) => return self.skip(raw, e, Stage::KeyConverter),
        };
        let value = match pipes.value.to_value(raw.value_bytes().as_ref()) {
            Ok(v) => v,
            Err(e) => return self.skip(raw, e, Stage::ValueConverter),
        };
        let record = ConnectRecord {
            topic: raw.topic().to_string(),
            partition: Some(raw.partition),
            key,
            value,
            timestamp: Some(raw.timestamp),
            headers: raw.headers(),
        };
        let record = match pipes.transforms.apply(record) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => return self.skip(raw, e, Stage::Transformation),
        };
        Ok(Some(SinkRecord {
            topic: record.topic,
            partition: raw.partition,
            offset: raw.offset,
            timestamp: record.timestamp.unwrap_or(raw.timestamp),
            key: record.key,
            value: record.value,
            headers: record.headers,
        }))
    }

    /// Skips `raw` per the error policy, sending it to the dead-letter
    /// topic if there is one.
    fn skip(
        &mut self,
        raw: &ConsumerRecord,
        error: Error,
        stage: Stage,
    ) -> Result<Option<SinkRecord>> {
        let env = &self.env;
        let what = format!("{}-{}@{}", raw.topic(), raw.partition, raw.offset);
        let letter = env.errors.dead_letter_topic.as_ref().map(|_| {
            env.errors
                .dead_letter(raw, stage, &error, &env.connector, env.task)
        });
        env.errors.tolerate(error, stage, &what)?;
        if let (Some(record), Some(topic)) = (letter, &env.errors.dead_letter_topic) {
            let mut producer = self.shared.dead_letters.lock();
            if producer.is_none() {
                let config = TopicConfig::default().partitions(1);
                match env.broker.admin().create_topic(topic, config) {
                    Ok(_) | Err(crate::Error::TopicExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                *producer = Some(
                    env.broker
                        .producer(ProducerConfig::default().durability(env.settings.durability)),
                );
            }
            if let Some(p) = &*producer {
                p.send(topic, record)?;
            }
        }
        self.env.status.lock().skipped += 1;
        Ok(None)
    }

    /// Flushes the task and commits what it put (the dead letters first);
    /// then, over a regex, looks for new matching topics unless stopping.
    fn commit(&mut self, stopping: bool) -> Result<()> {
        self.last_commit = Instant::now();
        if self.shared.flush_and_commit(&mut self.consumer, None)? {
            self.env.status.lock().commits += 1;
        }
        if !stopping && matches!(self.env.pipes.topics, SinkTopics::Regex(_)) {
            self.subscribe()?;
        }
        Ok(())
    }
}

/// What a sink reads: `topics` or `topics.regex`.
#[derive(Clone, Debug)]
pub(super) enum SinkTopics {
    List(Vec<String>),
    Regex(regex::Regex),
}

impl Work for SinkWork {
    fn step(&mut self, stop: &Stop) -> Result<()> {
        if self.subscribed.is_empty() {
            // No topic matches the regex yet.
            stop.sleep(POLL);
            if self.last_commit.elapsed() >= self.env.pipes.flush_interval {
                self.last_commit = Instant::now();
                self.subscribe()?;
            }
            return Ok(());
        }
        let polled = self.consumer.poll(POLL)?;
        let shared = self.shared.clone();
        if let Some(e) = shared.failure.lock().take() {
            return Err(e);
        }
        let mut records = Vec::with_capacity(polled.len());
        for raw in &polled {
            if let Some(r) = self.convert(raw)? {
                records.push(r);
            }
        }
        if !records.is_empty() {
            let backoff = self.env.settings.retry_backoff;
            // Bounded below the group's max.poll.interval (5 minutes):
            // a member that stops polling longer is removed while it puts.
            let limit = Some(PUT_RETRY_LIMIT);
            let put = retrying(stop, backoff, limit, "put", || {
                shared.task.lock().put(&records)
            })?;
            if put.is_none() {
                // Stopped before the task took them: not committed, so
                // they come again.
                return Ok(());
            }
            self.env.status.lock().records += records.len() as u64;
        }
        {
            let mut offsets = shared.offsets.lock();
            for raw in &polled {
                let tp = TopicPartition {
                    topic: raw.topic_arc().clone(),
                    partition: raw.partition,
                };
                offsets.insert(tp, raw.offset + 1);
            }
        }
        if self.last_commit.elapsed() >= self.env.pipes.flush_interval {
            self.commit(false)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, clean: bool) -> Result<()> {
        let mut result = Ok(());
        if clean {
            result = self.commit(true);
        }
        if !clean || result.is_err() {
            // Not committed (a failed task, or a failed last commit): they
            // come again, and closing the consumer, which revokes its
            // partitions, must not commit them either.
            self.shared.offsets.lock().clear();
        }
        let SinkWork {
            shared, consumer, ..
        } = *self;
        // Leaves the group, so the others take its partitions now.
        let closed = consumer.close();
        shared.task.lock().stop();
        if clean {
            result = result.and(closed.map_err(Error::from));
        }
        result
    }
}
