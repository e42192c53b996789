//! The producer's side of idempotence and transactions: its producer id
//! and epoch, the transaction's phase, the partitions it registered with
//! the coordinator, and the public transactional calls.

use super::{Inner, Producer};
use crate::catalog::TopicPartition;
use crate::error::{Error, Result};
use crate::group::{Committer, ConsumerGroupMetadata, OffsetAndMetadata};
use crate::record::BatchBuilder;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;

/// Where a transactional producer is.
#[derive(Debug, Clone, Default)]
enum Phase {
    /// `init_transactions` not called yet.
    #[default]
    Uninitialized,
    /// Between transactions.
    Ready,
    /// Between `begin_transaction` and its commit or abort.
    InTransaction,
    /// In `commit_transaction` or `abort_transaction`: sends wait for the
    /// next transaction (Kafka refuses them too).
    Ending,
    /// A batch of the transaction failed: it can only be aborted.
    Abortable(Arc<Error>),
    /// A newer producer with the same id (or a timeout) fenced this one.
    Fenced(i16),
}

#[derive(Debug, Default)]
struct State {
    /// (producer id, epoch) once known.
    ident: Option<(i64, i16)>,
    phase: Phase,
    /// Partitions the open transaction registered with the coordinator.
    registered: HashSet<TopicPartition>,
}

/// What a producer keeps of its identity and transaction.
#[derive(Debug, Default)]
pub(super) struct TxnClient {
    state: Mutex<State>,
}

impl Inner {
    fn transactional_id(&self) -> Option<&str> {
        self.config.transactional_id.as_deref()
    }

    fn idempotent(&self) -> bool {
        self.config.idempotence || self.config.transactional_id.is_some()
    }

    /// Stamps a batch about to be appended with the producer id, epoch and
    /// `seq` (and the transactional bit).
    pub(super) fn stamp(&self, b: &mut BatchBuilder, seq: i32) -> Result<()> {
        if !self.idempotent() {
            return Ok(());
        }
        let (pid, epoch) = self.ident()?;
        b.set_producer(pid, epoch, seq);
        b.set_transactional(self.transactional_id().is_some());
        Ok(())
    }

    /// The producer id and epoch; an idempotent producer gets its id at
    /// its first batch.
    fn ident(&self) -> Result<(i64, i16)> {
        let mut st = self.txn.state.lock();
        if let Some(i) = st.ident {
            return Ok(i);
        }
        if let Some(id) = self.transactional_id() {
            return Err(Error::InvalidTxnState(format!(
                "transactional producer {id:?}: call init_transactions first"
            )));
        }
        let pid = self.ctx.txns.allocate_producer_id()?;
        st.ident = Some((pid, 0));
        Ok((pid, 0))
    }

    /// Before a record joins a batch: a transactional producer must be in
    /// a transaction, and the partition registered in it.
    pub(super) fn txn_check_send(&self, topic: &str, partition: u32) -> Result<()> {
        let Some(id) = self.transactional_id() else {
            return Ok(());
        };
        let mut st = self.txn.state.lock();
        match &st.phase {
            Phase::InTransaction => {}
            Phase::Ending => return Err(ending(id)),
            Phase::Uninitialized => return Err(not_initialized(id)),
            Phase::Ready => {
                return Err(Error::InvalidTxnState(format!(
                    "transactional producer {id:?}: send only inside a transaction (call begin_transaction)"
                )));
            }
            Phase::Abortable(e) => return Err(abortable(id, e)),
            Phase::Fenced(current) => return Err(self.fenced_error(&st, *current)),
        }
        let tp = TopicPartition::new(topic, partition);
        if st.registered.contains(&tp) {
            return Ok(());
        }
        let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(id))?;
        match self.ctx.txns.add_partition(id, pid, epoch, &tp) {
            Ok(()) => {
                st.registered.insert(tp);
                Ok(())
            }
            Err(e @ Error::ProducerFenced { current_epoch, .. }) => {
                st.phase = Phase::Fenced(current_epoch);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn fenced_error(&self, st: &State, current: i16) -> Error {
        let (pid, epoch) = st.ident.unwrap_or((-1, -1));
        Error::ProducerFenced {
            producer_id: pid,
            epoch,
            current_epoch: current,
        }
    }

    /// A batch failed: a transaction it belonged to can only abort now.
    pub(super) fn txn_batch_failed(&self, e: &Arc<Error>) {
        if self.transactional_id().is_none() {
            return;
        }
        let mut st = self.txn.state.lock();
        if let Error::ProducerFenced { current_epoch, .. } = **e {
            st.phase = Phase::Fenced(current_epoch);
        } else if matches!(st.phase, Phase::InTransaction | Phase::Ending) {
            st.phase = Phase::Abortable(e.clone());
        }
    }

    /// Drops the records not yet appended: their deliveries fail with
    /// [`Error::TransactionAborted`].
    fn discard_batches(&self, id: &str) {
        let topics: Vec<_> = self.topics.read().values().cloned().collect();
        for tb in topics {
            let parts: Vec<_> = tb.parts.read().clone();
            for acc in parts {
                let mut a = acc.lock();
                if a.count == 0 {
                    continue;
                }
                a.builder = BatchBuilder::new();
                a.count = 0;
                a.started = None;
                let slot = std::mem::take(&mut a.slot);
                slot.resolve(Err(Arc::new(Error::TransactionAborted {
                    transactional_id: id.to_string(),
                })));
            }
        }
    }

    /// Aborts the open transaction, if any (at close).
    pub(super) fn abort_open_transaction(&self) -> Result<()> {
        let open = matches!(
            self.txn.state.lock().phase,
            Phase::InTransaction | Phase::Abortable(_)
        );
        // (`Ending`: the call in progress ends it.)
        if open { self.abort() } else { Ok(()) }
    }

    fn init(&self) -> Result<()> {
        let id = self.transactional_id().ok_or_else(|| {
            Error::InvalidTxnState(
                "init_transactions needs ProducerConfig::transactional_id".into(),
            )
        })?;
        let mut st = self.txn.state.lock();
        if !matches!(st.phase, Phase::Uninitialized) {
            return Err(Error::InvalidTxnState(format!(
                "transactional producer {id:?} is initialized already"
            )));
        }
        let timeout =
            i32::try_from(self.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX);
        let (pid, epoch) = self.ctx.txns.init(id, timeout)?;
        st.ident = Some((pid, epoch));
        st.phase = Phase::Ready;
        Ok(())
    }

    fn begin(&self) -> Result<()> {
        let id = self.require_transactional("begin_transaction")?;
        let mut st = self.txn.state.lock();
        match &st.phase {
            Phase::Ready => {
                st.phase = Phase::InTransaction;
                st.registered.clear();
                Ok(())
            }
            Phase::Uninitialized => Err(not_initialized(id)),
            Phase::InTransaction | Phase::Ending => Err(Error::InvalidTxnState(format!(
                "transactional producer {id:?} is in a transaction already"
            ))),
            Phase::Abortable(e) => Err(abortable(id, e)),
            Phase::Fenced(c) => Err(self.fenced_error(&st, *c)),
        }
    }

    fn require_transactional(&self, call: &str) -> Result<&str> {
        self.transactional_id().ok_or_else(|| {
            Error::InvalidTxnState(format!(
                "{call} needs a transactional producer (ProducerConfig::transactional_id)"
            ))
        })
    }

    /// The transaction's identity, if it may go on.
    fn in_transaction(&self, call: &str) -> Result<(String, i64, i16)> {
        let id = self.require_transactional(call)?;
        let st = self.txn.state.lock();
        match &st.phase {
            Phase::InTransaction => {
                let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(id))?;
                Ok((id.to_string(), pid, epoch))
            }
            Phase::Abortable(e) => Err(abortable(id, e)),
            Phase::Fenced(c) => Err(self.fenced_error(&st, *c)),
            Phase::Ending => Err(ending(id)),
            _ => Err(Error::InvalidTxnState(format!(
                "{call}: transactional producer {id:?} has no open transaction (call begin_transaction)"
            ))),
        }
    }

    fn send_offsets(
        &self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (id, pid, epoch) = self.in_transaction("send_offsets_to_transaction")?;
        let committer = match (&group.member_id, group.generation) {
            (Some(member), Some(generation)) => Committer::Member {
                id: member,
                generation,
            },
            _ => Committer::Outside,
        };
        let r = self
            .ctx
            .txns
            .add_offsets(&id, pid, epoch, &group.group_id, committer, offsets);
        self.note_fenced(&r);
        r
    }

    fn note_fenced<T>(&self, r: &Result<T>) {
        if let Err(Error::ProducerFenced { current_epoch, .. }) = r {
            self.txn.state.lock().phase = Phase::Fenced(*current_epoch);
        }
    }

    /// Moves from `InTransaction` to `Ending` (no sends from now on).
    fn start_ending(&self, call: &str) -> Result<(String, i64, i16)> {
        let r = self.in_transaction(call)?;
        self.txn.state.lock().phase = Phase::Ending;
        Ok(r)
    }

    fn commit(&self) -> Result<()> {
        let (id, pid, epoch) = self.start_ending("commit_transaction")?;
        if let Err(e) = self.flush() {
            let e = Arc::new(e);
            let mut st = self.txn.state.lock();
            if !matches!(st.phase, Phase::Fenced(_)) {
                st.phase = Phase::Abortable(e.clone());
            }
            return Err(Error::InvalidTxnState(format!(
                "transaction {id:?} cannot commit: {e}; abort it"
            )));
        }
        // A batch of this transaction may have failed (in another thread).
        {
            let st = self.txn.state.lock();
            match &st.phase {
                Phase::Ending => {}
                Phase::Abortable(e) => return Err(abortable(&id, e)),
                Phase::Fenced(c) => return Err(self.fenced_error(&st, *c)),
                _ => return Err(ending(&id)),
            }
        }
        let r = self
            .ctx
            .txns
            .end(&id, pid, epoch, true, self.config.durability);
        self.note_fenced(&r);
        if let Err(e) = r {
            // Not fenced: the commit can be retried (a stored decision is
            // finished by it) or the transaction aborted.
            let mut st = self.txn.state.lock();
            if matches!(st.phase, Phase::Ending) {
                st.phase = Phase::InTransaction;
            }
            return Err(e);
        }
        let mut st = self.txn.state.lock();
        st.phase = Phase::Ready;
        st.registered.clear();
        Ok(())
    }

    fn abort(&self) -> Result<()> {
        let id = self.require_transactional("abort_transaction")?.to_string();
        let (pid, epoch, before) = {
            let mut st = self.txn.state.lock();
            let before = st.phase.clone();
            match &st.phase {
                Phase::InTransaction | Phase::Abortable(_) => {}
                Phase::Fenced(c) => return Err(self.fenced_error(&st, *c)),
                _ => {
                    return Err(Error::InvalidTxnState(format!(
                        "abort_transaction: transactional producer {id:?} has no open transaction"
                    )));
                }
            }
            let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(&id))?;
            st.phase = Phase::Ending;
            (pid, epoch, before)
        };
        self.discard_batches(&id);
        // Failures of this transaction's batches are reported by the abort
        // itself: the next flush starts clean.
        *self.failures.lock() = super::Failures::default();
        let r = self
            .ctx
            .txns
            .end(&id, pid, epoch, false, self.config.durability);
        self.note_fenced(&r);
        if let Err(e) = r {
            let mut st = self.txn.state.lock();
            if matches!(st.phase, Phase::Ending) {
                st.phase = before;
            }
            return Err(e);
        }
        let mut st = self.txn.state.lock();
        st.phase = Phase::Ready;
        st.registered.clear();
        Ok(())
    }
}

fn not_initialized(id: &str) -> Error {
    Error::InvalidTxnState(format!(
        "transactional producer {id:?}: call init_transactions first"
    ))
}

fn ending(id: &str) -> Error {
    Error::InvalidTxnState(format!(
        "transaction {id:?} is being committed or aborted: wait for that call to return"
    ))
}

fn abortable(id: &str, e: &Error) -> Error {
    Error::InvalidTxnState(format!(
        "transaction {id:?} failed ({e}): call abort_transaction"
    ))
}

/// Transactions (a producer made with
/// [`ProducerConfig::transactional_id`](super::ProducerConfig::transactional_id)).
///
/// ```
/// use embedlog::{Broker, ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig, Record, TopicConfig};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("payments", TopicConfig::default().partitions(2))?;
/// let producer = broker.producer(ProducerConfig::default().transactional_id("payments-writer"));
/// producer.init_transactions()?;
///
/// producer.begin_transaction()?;
/// producer.send_to("payments", 0, Record::new("debit"))?;
/// producer.send_to("payments", 1, Record::new("credit"))?;
/// producer.commit_transaction()?; // both, or (after a crash) neither
///
/// producer.begin_transaction()?;
/// producer.send_to("payments", 0, Record::new("never seen"))?;
/// producer.abort_transaction()?;
///
/// let mut consumer = broker.consumer(
///     ConsumerConfig::default()
///         .isolation_level(IsolationLevel::ReadCommitted)
///         .offset_reset(OffsetReset::Earliest),
/// );
/// consumer.assign(&[("payments", 0), ("payments", 1)])?;
/// let values: Vec<_> = consumer
///     .iter_timeout(Duration::from_millis(100))
///     .map(|r| r.map(|r| r.value.unwrap()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(values.len(), 2);
/// assert!(!values.iter().any(|v| v == "never seen"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Producer {
    /// Registers the transactional id with the broker: finishes or aborts
    /// what an earlier producer with this id left open, and fences that
    /// producer (its sends and commits fail with
    /// [`Error::ProducerFenced`] from now on). Call once, before the first
    /// transaction.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] without a transactional id or when
    /// called twice; I/O errors of the transaction state topic.
    pub fn init_transactions(&self) -> Result<()> {
        self.inner.init()
    }

    /// Starts a transaction: records sent from now until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) belong to it.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] before `init_transactions`, inside a
    /// transaction, or after a failure that needs an abort;
    /// [`Error::ProducerFenced`].
    pub fn begin_transaction(&self) -> Result<()> {
        self.inner.begin()
    }

    /// Adds consumer offsets to the transaction (Kafka's
    /// `sendOffsetsToTransaction`): they are committed for the group if and
    /// only if the transaction commits. `group` comes from
    /// [`Consumer::group_metadata`](crate::Consumer::group_metadata); the
    /// group checks now that this member may commit those partitions.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] outside a transaction;
    /// [`Error::ProducerFenced`]; what the group refuses
    /// ([`Error::Fenced`], [`Error::CommitFailed`]).
    pub fn send_offsets_to_transaction<I>(
        &self,
        offsets: I,
        group: &ConsumerGroupMetadata,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        self.inner
            .send_offsets(offsets.into_iter().collect(), group)
    }

    /// Appends the transaction's records, then commits it: one decision
    /// record, then a COMMIT marker in each partition it wrote to and its
    /// offsets in their groups. Once this returns `Ok`, read-committed
    /// consumers see all of it; if the process dies before the decision is
    /// stored, the next open aborts it.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] outside a transaction, or when a batch
    /// of it failed (abort it then); [`Error::ProducerFenced`]; I/O
    /// errors (a stored decision is finished by a retry, the broker's
    /// timeout check or the next open).
    pub fn commit_transaction(&self) -> Result<()> {
        self.inner.commit()
    }

    /// Aborts the transaction: records not yet appended are dropped (their
    /// deliveries fail with [`Error::TransactionAborted`]), and an ABORT
    /// marker in each partition it wrote to hides the rest from
    /// read-committed consumers.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] without an open transaction;
    /// [`Error::ProducerFenced`]; I/O errors.
    pub fn abort_transaction(&self) -> Result<()> {
        self.inner.abort()
    }

    /// The producer id and epoch, once known (an idempotent producer gets
    /// them with its first batch, a transactional one from
    /// `init_transactions`).
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.inner.txn.state.lock().ident
    }
}
