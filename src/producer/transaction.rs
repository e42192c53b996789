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
    /// A commit or abort failed after it may have reached the broker: no
    /// more sends; retrying the commit or the abort tells (the broker
    /// refuses the decision it did not take).
    Retry(Arc<Error>),
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
    /// Offsets were added to the open transaction.
    sent_offsets: bool,
    /// Bumped when a transaction starts ending: a send that checked the
    /// phase before it must not add its record after the flush.
    generation: u64,
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
        if let Some(id) = self.transactional_id() {
            // Only a transaction's flush appends its batches; any other
            // batch would belong to no transaction the broker knows.
            let st = self.txn.state.lock();
            if !matches!(st.phase, Phase::InTransaction | Phase::Ending) {
                return Err(Error::InvalidTxnState(format!(
                    "transactional producer {id:?}: a batch outside a transaction is not appended"
                )));
            }
        }
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
    ///
    /// Returns the generation to check again, under the partition's batch
    /// lock, with [`txn_still_open`](Self::txn_still_open).
    pub(super) fn txn_check_send(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        let Some(id) = self.transactional_id() else {
            return Ok(None);
        };
        let mut st = self.txn.state.lock();
        match &st.phase {
            Phase::InTransaction => {}
            Phase::Ending | Phase::Retry(_) => return Err(ending(id)),
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
            return Ok(Some(st.generation));
        }
        let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(id))?;
        match self.ctx.txns.add_partition(id, pid, epoch, &tp) {
            Ok(()) => {
                st.registered.insert(tp);
                Ok(Some(st.generation))
            }
            Err(e @ Error::ProducerFenced { current_epoch, .. }) => {
                st.phase = Phase::Fenced(current_epoch);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Under the batch lock, before the record joins the batch: the
    /// transaction `txn_check_send` saw is still open (no commit or abort
    /// started since, whose flush would miss the record).
    pub(super) fn txn_still_open(&self, generation: Option<u64>) -> Result<()> {
        let (Some(g), Some(id)) = (generation, self.transactional_id()) else {
            return Ok(());
        };
        let st = self.txn.state.lock();
        if matches!(st.phase, Phase::InTransaction) && st.generation == g {
            Ok(())
        } else {
            Err(ending(id))
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
                a.builder.reset();
                a.count = 0;
                a.started = None;
                let fresh = Arc::new(super::Slot::new(a.topic.clone()));
                let slot = std::mem::replace(&mut a.slot, fresh);
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
            Phase::InTransaction | Phase::Abortable(_) | Phase::Retry(_)
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
                st.sent_offsets = false;
                Ok(())
            }
            Phase::Uninitialized => Err(not_initialized(id)),
            Phase::InTransaction | Phase::Ending => Err(Error::InvalidTxnState(format!(
                "transactional producer {id:?} is in a transaction already"
            ))),
            Phase::Abortable(e) | Phase::Retry(e) => Err(abortable(id, e)),
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

    /// The transaction's identity, if it may go on (and, with `end`, moves
    /// it to `Ending` in the same step: from a failed commit too, to retry
    /// it).
    fn in_transaction(&self, call: &str, end: bool) -> Result<(String, i64, i16)> {
        let id = self.require_transactional(call)?;
        let mut st = self.txn.state.lock();
        match &st.phase {
            Phase::InTransaction => {}
            Phase::Retry(_) if end => {}
            Phase::Abortable(e) | Phase::Retry(e) => return Err(abortable(id, e)),
            Phase::Fenced(c) => return Err(self.fenced_error(&st, *c)),
            Phase::Ending => return Err(ending(id)),
            _ => {
                return Err(Error::InvalidTxnState(format!(
                    "{call}: transactional producer {id:?} has no open transaction (call begin_transaction)"
                )));
            }
        }
        let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(id))?;
        if end {
            st.phase = Phase::Ending;
            st.generation += 1;
        }
        Ok((id.to_string(), pid, epoch))
    }

    fn send_offsets(
        &self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (id, pid, epoch) = self.in_transaction("send_offsets_to_transaction", false)?;
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
        match &r {
            Ok(()) => self.txn.state.lock().sent_offsets = true,
            Err(_) => self.note_fenced(&r),
        }
        r
    }

    fn note_fenced<T>(&self, r: &Result<T>) {
        if let Err(Error::ProducerFenced { current_epoch, .. }) = r {
            self.txn.state.lock().phase = Phase::Fenced(*current_epoch);
        }
    }

    /// After `end` failed: fenced is final; anything else may have reached
    /// the broker, so only the same call (or the other decision, which the
    /// broker refuses if it took this one) may follow.
    fn end_failed(&self, e: &Error, commit: bool) {
        let mut st = self.txn.state.lock();
        let e2 = || Arc::new(Error::InvalidTxnState(e.to_string()));
        st.phase = match e {
            Error::ProducerFenced { current_epoch, .. } => Phase::Fenced(*current_epoch),
            // The broker refused the abort: it decided to commit (a retried
            // commit finishes that).
            Error::InvalidTxnState(_) if !commit => Phase::Retry(e2()),
            // A failed abort dropped records already: it can only abort.
            _ if !commit => Phase::Abortable(e2()),
            _ => Phase::Retry(e2()),
        };
    }

    /// The transaction ended: ready for the next one.
    fn ended(&self) {
        let mut st = self.txn.state.lock();
        st.phase = Phase::Ready;
        st.registered.clear();
        st.sent_offsets = false;
    }

    /// Whether the open transaction registered anything with the broker.
    fn touched(&self) -> bool {
        let st = self.txn.state.lock();
        !st.registered.is_empty() || st.sent_offsets
    }

    fn commit(&self) -> Result<()> {
        let (id, pid, epoch) = self.in_transaction("commit_transaction", true)?;
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
        let touched = self.touched();
        if let Err(e) = self
            .ctx
            .txns
            .end(&id, pid, epoch, true, touched, self.config.durability)
        {
            self.end_failed(&e, true);
            return Err(e);
        }
        self.ended();
        Ok(())
    }

    fn abort(&self) -> Result<()> {
        let id = self.require_transactional("abort_transaction")?.to_string();
        let (pid, epoch) = {
            let mut st = self.txn.state.lock();
            match &st.phase {
                Phase::InTransaction | Phase::Abortable(_) | Phase::Retry(_) => {}
                Phase::Fenced(c) => return Err(self.fenced_error(&st, *c)),
                Phase::Ending => return Err(ending(&id)),
                _ => {
                    return Err(Error::InvalidTxnState(format!(
                        "abort_transaction: transactional producer {id:?} has no open transaction"
                    )));
                }
            }
            let (pid, epoch) = st.ident.ok_or_else(|| not_initialized(&id))?;
            st.phase = Phase::Ending;
            st.generation += 1;
            (pid, epoch)
        };
        self.discard_batches(&id);
        // Batches already handed to the sender thread are stored before
        // the abort marker, which then covers them.
        self.wait_sent();
        // Failures of this transaction's batches are reported by the abort
        // itself: the next flush starts clean.
        *self.failures.lock() = super::Failures::default();
        let touched = self.touched();
        if let Err(e) = self
            .ctx
            .txns
            .end(&id, pid, epoch, false, touched, self.config.durability)
        {
            // Records were dropped already: never back to a state that
            // could commit.
            self.end_failed(&e, false);
            return Err(e);
        }
        self.ended();
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
///     .map(|r| r.map(|r| r.value_bytes().unwrap()))
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
