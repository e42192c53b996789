//! A source task's loop: poll, transform, convert, send, and store the
//! source offsets: after the records are flushed (at-least-once) or in the
//! same transaction as them (exactly-once).

use super::super::error::{Error, Result};
use super::super::spi::{SourceConnector, SourceRecord, SourceTask, SourceTaskContext};
use super::super::value::Map;
use super::TaskEnv;
use super::errors::Stage;
use super::offsets;
use super::task::{Work, retrying};
use crate::worker::Stop;
use crate::{Producer, ProducerConfig, Record, TopicConfig};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct SourceWork {
    env: Arc<TaskEnv>,
    task: Box<dyn SourceTask>,
    producer: Producer,
    /// The latest offset per source partition of the records sent since
    /// the last commit.
    pending: Vec<(Map, Map)>,
    last_commit: Instant,
    /// Topics known to exist.
    topics: HashSet<String>,
}

impl SourceWork {
    /// Starts an instance of `connector`'s task: its producer (fencing the
    /// previous instance's, exactly-once), its stored offsets, the task.
    /// `None` if a stop came first.
    pub(super) fn start(
        env: &Arc<TaskEnv>,
        connector: &Mutex<Box<dyn SourceConnector>>,
        stop: &Stop,
    ) -> Result<Option<Box<dyn Work>>> {
        let exactly_once = env.settings.exactly_once_source;
        let mut config = ProducerConfig::default().durability(env.settings.durability);
        if exactly_once {
            config = config.transactional_id(format!("connect-{}-{}", env.connector, env.task));
        }
        let producer = env.broker.producer(config);
        if exactly_once {
            // Fences a previous instance and aborts what it left open, so
            // the offsets read below are those of committed records.
            producer.init_transactions()?;
        }
        let Some(stored) = offsets::read(
            &env.broker,
            &env.settings.offsets_topic,
            &env.connector,
            stop,
        )?
        else {
            return Ok(None);
        };
        let mut task = connector.lock().task();
        let context = SourceTaskContext {
            config: env.task_config.clone(),
            task: env.task,
            offsets: stored,
            admin: Some(env.broker.admin()),
        };
        if let Err(e) = task.start(&context) {
            task.stop();
            return Err(e);
        }
        Ok(Some(Box::new(SourceWork {
            env: env.clone(),
            task,
            producer,
            pending: Vec::new(),
            last_commit: Instant::now(),
            topics: HashSet::new(),
        })))
    }

    fn exactly_once(&self) -> bool {
        self.env.settings.exactly_once_source
    }

    /// Transforms, converts and sends each polled record (those without a
    /// timestamp get `now`, read once per poll); each one's offset becomes
    /// pending whether it is sent, filtered or skipped.
    fn send_all(&mut self, polled: Vec<SourceRecord>) -> Result<()> {
        let now = crate::now_ms();
        let mut sent = 0;
        let result = polled.into_iter().try_for_each(|r| {
            sent += u64::from(self.send(r, now)?);
            Ok(())
        });
        self.env.status.lock().records += sent;
        result
    }

    /// [`send_all`](Self::send_all) for one record: whether it was sent.
    fn send(&mut self, polled: SourceRecord, now: i64) -> Result<bool> {
        let SourceRecord {
            source_partition,
            source_offset,
            record,
        } = polled;
        if !source_partition.is_empty() || !source_offset.is_empty() {
            // A task reads few partitions, most often the one of the last
            // record: compare maps rather than serialise each record's.
            match self
                .pending
                .iter_mut()
                .rev()
                .find(|(p, _)| *p == source_partition)
            {
                Some((_, offset)) => *offset = source_offset,
                None => self.pending.push((source_partition, source_offset)),
            }
        }
        let pipes = &self.env.pipes;
        let record = match pipes.transforms.apply(record) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(e) => return self.skip(e, Stage::Transformation, "a polled record"),
        };
        let key = match pipes.key.to_bytes_owned(record.key) {
            Ok(k) => k,
            Err(e) => {
                let what = format!("a record for {}", record.topic);
                return self.skip(e, Stage::KeyConverter, &what);
            }
        };
        let value = match pipes.value.to_bytes_owned(record.value) {
            Ok(v) => v,
            Err(e) => {
                let what = format!("a record for {}", record.topic);
                return self.skip(e, Stage::ValueConverter, &what);
            }
        };
        self.ensure_topic(&record.topic)?;
        let out = Record {
            key,
            value,
            timestamp: record.timestamp.unwrap_or(now),
            headers: record.headers,
        };
        let producer = &self.producer;
        let sent = match record.partition {
            Some(p) => producer.send_to(&record.topic, p, out),
            None => producer.send(&record.topic, out),
        };
        match sent {
            Ok(_) => Ok(true),
            // What is wrong with this record, not with the log: the error
            // policy may skip it (Kafka's KIP-779).
            Err(
                e @ (crate::Error::KeyRequired { .. }
                | crate::Error::UnknownPartition { .. }
                | crate::Error::BatchTooLarge { .. }),
            ) => {
                let what = format!("a record for {}", record.topic);
                self.skip(e.into(), Stage::Produce, &what)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Skips a record the error policy tolerates (`Ok(false)`: not sent).
    fn skip(&self, error: Error, stage: Stage, what: &str) -> Result<bool> {
        self.env.errors.tolerate(error, stage, what)?;
        self.env.status.lock().skipped += 1;
        Ok(false)
    }

    /// Creates `topic` with `topic.creation.default.partitions` partitions
    /// if it does not exist.
    fn ensure_topic(&mut self, topic: &str) -> Result<()> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        if self.env.broker.topic(topic).is_err() {
            let config = TopicConfig::default().partitions(self.env.pipes.new_topic_partitions);
            match self.env.broker.admin().create_topic(topic, config) {
                Ok(_) | Err(crate::Error::TopicExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.topics.insert(topic.to_string());
        Ok(())
    }

    /// Sends the pending offsets to the offsets topic.
    fn send_offsets(&mut self) -> Result<()> {
        let topic = &self.env.settings.offsets_topic;
        for (partition, offset) in &self.pending {
            let record = offsets::offset_record(&self.env.connector, partition, offset);
            self.producer.send_to(topic, 0, record)?;
        }
        self.pending.clear();
        Ok(())
    }

    /// At-least-once: flushes the records sent, then stores their offsets
    /// and tells the task.
    fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        self.producer.flush()?;
        self.send_offsets()?;
        self.producer.flush()?;
        self.committed()
    }

    fn committed(&mut self) -> Result<()> {
        self.env.status.lock().commits += 1;
        self.task.commit()
    }

    /// Exactly-once: the polled records and their offsets in one
    /// transaction.
    fn transaction(&mut self, polled: Vec<SourceRecord>) -> Result<()> {
        self.producer.begin_transaction()?;
        let sent = self.send_all(polled).and_then(|()| self.send_offsets());
        if let Err(e) = sent {
            // The task fails; its successor's init_transactions would
            // abort this one anyway, but say so at once.
            let _ = self.producer.abort_transaction();
            return Err(e);
        }
        self.producer.commit_transaction()?;
        self.committed()
    }
}

impl Work for SourceWork {
    fn step(&mut self, stop: &Stop) -> Result<()> {
        let backoff = self.env.settings.retry_backoff;
        let task = &mut self.task;
        let Some(polled) = retrying(stop, backoff, None, "poll", || task.poll())? else {
            return Ok(());
        };
        if self.exactly_once() {
            if !polled.is_empty() {
                self.transaction(polled)?;
            }
            return Ok(());
        }
        self.send_all(polled)?;
        if self.last_commit.elapsed() >= self.env.pipes.flush_interval {
            self.commit()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, clean: bool) -> Result<()> {
        let mut result = Ok(());
        if clean && !self.exactly_once() {
            result = self.commit();
        }
        self.task.stop();
        if !clean {
            if self.exactly_once() {
                let _ = self.producer.abort_transaction();
            }
            return result;
        }
        result.and(self.producer.close().map_err(Error::from))
    }
}
