//! The transaction coordinator: producer ids and epochs, the state of each
//! transactional id, the commit and abort decisions and their markers, and
//! what a crash left undecided.
//!
//! Everything is local, so a transaction ends with one decision record
//! (`PrepareCommit` with the offsets it commits, or `PrepareAbort`)
//! appended to `__transaction_state`, then a marker in each of its
//! partitions, then the group offsets, then a `Complete…` record. On open
//! a `Prepare…` record is finished; a transaction still open in a
//! partition log that no decision covers (the process died before its
//! commit) is aborted there.

pub(crate) mod records;

pub use records::TransactionState;
use records::{
    KIND_ID_BLOCK, KIND_OFFSETS, KIND_STATE, StateValue, TxnOffsets, decode_id_block, decode_key,
    decode_offsets, decode_state, encode_id_block, encode_key, encode_offsets, encode_state,
};

use crate::catalog::{Catalog, TRANSACTION_STATE_TOPIC, TopicPartition};
use crate::error::{Error, Result};
use crate::group::{Commits, Committer, Groups, OffsetAndMetadata};
use crate::record::Record;
use crate::storage::{Durability, Marker, ReadLimit};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Producer ids handed out per durable block.
const ID_BLOCK: i64 = 1000;

/// The coordinator epoch written in markers (one coordinator, forever).
const COORDINATOR_EPOCH: i32 = 0;

/// A transactional id's state in memory.
#[derive(Debug, Clone)]
struct Txn {
    producer_id: i64,
    epoch: i16,
    timeout_ms: i32,
    state: TransactionState,
    start_ms: i64,
    update_ms: i64,
    partitions: BTreeSet<TopicPartition>,
    offsets: TxnOffsets,
    /// Who added each group's offsets (member id, generation): checked
    /// again before the commit is decided.
    committers: BTreeMap<String, (Option<String>, Option<u64>)>,
    /// Expired and removed from the map: a caller that looked it up
    /// before must not use it (the broker no longer knows the id).
    forgotten: bool,
}

impl Txn {
    fn value(&self) -> StateValue {
        StateValue {
            producer_id: self.producer_id,
            epoch: self.epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            start_ms: self.start_ms,
            update_ms: self.update_ms,
            partitions: self.partitions.clone(),
        }
    }

    fn fenced(&self, producer_id: i64, epoch: i16) -> Option<Error> {
        (producer_id != self.producer_id || epoch != self.epoch).then_some(Error::ProducerFenced {
            producer_id,
            epoch,
            current_epoch: if producer_id == self.producer_id {
                self.epoch
            } else {
                // A new producer id replaced this one (epoch exhausted).
                i16::MAX
            },
        })
    }
}

/// The producer id block.
#[derive(Debug, Default)]
struct Ids {
    next: i64,
    end: i64,
}

/// A transaction as [`Admin::list_transactions`](crate::Admin::list_transactions)
/// and [`Admin::describe_transaction`](crate::Admin::describe_transaction) show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id it has.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Where it is.
    pub state: TransactionState,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), if one is
    /// open.
    pub start_ms: Option<i64>,
    /// The partitions the open transaction wrote to.
    pub partitions: Vec<TopicPartition>,
}

/// The transaction coordinator of one catalog.
#[derive(Debug)]
pub(crate) struct Transactions {
    catalog: Arc<Catalog>,
    groups: Arc<Groups>,
    txns: Mutex<HashMap<String, Arc<Mutex<Txn>>>>,
    ids: Mutex<Ids>,
    /// Idle transactional ids are forgotten after this long (Kafka's
    /// `transactional.id.expiration.ms`).
    id_expiration_ms: i64,
}

impl Transactions {
    /// Creates `__transaction_state` if needed, reads it, finishes the
    /// decisions a crash interrupted and aborts transactions no decision
    /// covers.
    ///
    /// # Errors
    /// Creating or reading the topic; writing the markers of an
    /// interrupted transaction.
    pub(crate) fn open(
        catalog: Arc<Catalog>,
        groups: Arc<Groups>,
        id_expiration: std::time::Duration,
    ) -> Result<Transactions> {
        let t = Transactions {
            catalog,
            groups,
            txns: Mutex::new(HashMap::new()),
            ids: Mutex::new(Ids::default()),
            id_expiration_ms: i64::try_from(id_expiration.as_millis()).unwrap_or(i64::MAX),
        };
        t.load()?;
        t.recover()?;
        Ok(t)
    }

    fn load(&self) -> Result<()> {
        let topic = self.catalog.internal_topic(TRANSACTION_STATE_TOPIC)?;
        let p = topic.partition(0)?;
        let log = p.log();
        let skip = |offset: u64, reason: &str| {
            tracing::warn!(
                topic = TRANSACTION_STATE_TOPIC,
                offset,
                reason,
                "embedlog: skipping a record of the transaction state topic that it cannot read"
            );
        };
        let mut states: BTreeMap<String, StateValue> = BTreeMap::new();
        let mut offsets: BTreeMap<String, TxnOffsets> = BTreeMap::new();
        let mut next_id = 0i64;
        for batches in log.reader(log.start_offset(), ReadLimit::bytes(1 << 20)) {
            for r in batches?.records() {
                let r = r?;
                let Some(key) = r.key.as_deref() else {
                    skip(r.offset, "no key");
                    continue;
                };
                let (kind, id) = match decode_key(key) {
                    Ok(k) => k,
                    Err(e) => {
                        skip(r.offset, &e);
                        continue;
                    }
                };
                let value = r.value.as_deref();
                let replayed = match kind {
                    KIND_STATE => latest(&mut states, id, value, decode_state),
                    KIND_OFFSETS => latest(&mut offsets, id, value, decode_offsets),
                    _ => Ok(()),
                };
                if let Err(e) = replayed {
                    skip(r.offset, &e);
                }
                match (kind, value) {
                    (KIND_STATE | KIND_OFFSETS, _) => {}
                    (KIND_ID_BLOCK, Some(v)) => match decode_id_block(v) {
                        Ok(n) => next_id = next_id.max(n),
                        Err(e) => skip(r.offset, &e),
                    },
                    _ => skip(r.offset, "a record of an unknown kind"),
                }
            }
        }
        let mut txns = self.txns.lock();
        for (id, s) in states {
            // Producer ids given to transactional ids are below the block
            // end, whatever the block record says.
            next_id = next_id.max(s.producer_id.saturating_add(1));
            let pending = match s.state {
                TransactionState::PrepareCommit => offsets.remove(&id).unwrap_or_default(),
                _ => Vec::new(),
            };
            let t = Txn {
                producer_id: s.producer_id,
                epoch: s.epoch,
                timeout_ms: s.timeout_ms,
                state: s.state,
                start_ms: s.start_ms,
                update_ms: s.update_ms,
                partitions: s.partitions,
                offsets: pending,
                committers: BTreeMap::new(),
                forgotten: false,
            };
            txns.insert(id, Arc::new(Mutex::new(t)));
        }
        *self.ids.lock() = Ids {
            next: next_id,
            end: next_id,
        };
        Ok(())
    }

    /// Finishes interrupted decisions, then aborts what is still open in
    /// any partition log (its producer died before deciding).
    fn recover(&self) -> Result<()> {
        let all: Vec<(String, Arc<Mutex<Txn>>)> = self
            .txns
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, t) in all {
            let mut t = t.lock();
            match t.state {
                TransactionState::PrepareCommit => {
                    self.complete(&id, &mut t, true, Durability::Sync)?
                }
                TransactionState::PrepareAbort => {
                    self.complete(&id, &mut t, false, Durability::Sync)?
                }
                TransactionState::Ongoing => {
                    t.state = TransactionState::PrepareAbort;
                    self.complete(&id, &mut t, false, Durability::Sync)?;
                }
                _ => {}
            }
        }
        for topic in self.catalog.all_topics() {
            for p in topic.partitions() {
                for (pid, epoch, first) in p.log.open_transactions() {
                    tracing::warn!(
                        topic = topic.name(),
                        partition = p.id(),
                        producer_id = pid,
                        first_offset = first,
                        "embedlog: aborting a transaction its producer left open (the process ended before it committed)"
                    );
                    let marker = Marker {
                        producer_id: pid,
                        epoch,
                        commit: false,
                        coordinator_epoch: COORDINATOR_EPOCH,
                    };
                    match p.log.append_marker(marker, Durability::Sync) {
                        // A newer epoch ended it already.
                        Ok(_) | Err(Error::ProducerFenced { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    fn append(&self, records: &[Record], durability: Durability) -> Result<()> {
        let p = self.catalog.partition(TRANSACTION_STATE_TOPIC, 0)?;
        p.log.append_with(records, durability)?;
        Ok(())
    }

    /// A decision as stored, in one batch: the transaction's offsets (for
    /// a commit that has some) with its state record.
    fn decision_records(id: &str, t: &Txn, commit: bool) -> Vec<Record> {
        let mut records = Vec::with_capacity(2);
        if commit && !t.offsets.is_empty() {
            records.push(Record::new(encode_offsets(&t.offsets)).key(encode_key(KIND_OFFSETS, id)));
        }
        records.push(Self::state_record(id, t));
        records
    }

    fn state_record(id: &str, t: &Txn) -> Record {
        Record::new(encode_state(&t.value())).key(encode_key(KIND_STATE, id))
    }

    /// A fresh producer id (idempotent producers, and transactional ids
    /// seen for the first time or whose epoch ran out).
    ///
    /// # Errors
    /// The durable append of a new id block.
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        let mut ids = self.ids.lock();
        if ids.next >= ids.end {
            let end = ids.end.max(ids.next).saturating_add(ID_BLOCK);
            if end <= ids.next {
                return Err(Error::InvalidTxnState(
                    "producer ids are exhausted (the transaction state topic says i64::MAX)".into(),
                ));
            }
            let r = Record::new(encode_id_block(end)).key(encode_key(KIND_ID_BLOCK, ""));
            self.append(&[r], Durability::Sync)?;
            ids.end = end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    fn txn(&self, id: &str) -> Option<Arc<Mutex<Txn>>> {
        self.txns.lock().get(id).cloned()
    }

    /// `init_transactions`: finishes or aborts what an earlier producer
    /// with this id left, bumps the epoch (fencing that producer) and
    /// returns the producer id and the new epoch, durably.
    ///
    /// # Errors
    /// Writing markers or the state record.
    pub(crate) fn init(&self, id: &str, timeout_ms: i32) -> Result<(i64, i16)> {
        if id.is_empty() || id.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidArgument(format!(
                "a transactional id has 1 to {} bytes, this one {}",
                u16::MAX,
                id.len()
            )));
        }
        let t = {
            let mut txns = self.txns.lock();
            match txns.get(id) {
                Some(t) => t.clone(),
                None => {
                    drop(txns);
                    let pid = self.allocate_producer_id()?;
                    let now = self.catalog.clock().now_ms();
                    let t = Arc::new(Mutex::new(Txn {
                        producer_id: pid,
                        epoch: -1,
                        timeout_ms,
                        state: TransactionState::Empty,
                        start_ms: now,
                        update_ms: now,
                        partitions: BTreeSet::new(),
                        offsets: Vec::new(),
                        committers: BTreeMap::new(),
                        forgotten: false,
                    }));
                    txns = self.txns.lock();
                    txns.entry(id.to_string()).or_insert(t).clone()
                }
            }
        };
        let entry = t;
        let mut t = entry.lock();
        let current = self
            .txns
            .lock()
            .get(id)
            .is_some_and(|cur| Arc::ptr_eq(cur, &entry));
        if !current {
            // Forgotten (expired) between the lookup and the lock.
            drop(t);
            return self.init(id, timeout_ms);
        }
        let mut bumped = false;
        match t.state {
            TransactionState::Ongoing => {
                // The older producer's transaction: aborted with the new
                // epoch, so that its markers fence that producer in every
                // partition it wrote to.
                self.abort_fencing(id, &mut t)?;
                bumped = true;
            }
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                // Its decision is finished with the new epoch: the markers
                // fence the older producer too.
                let commit = t.state == TransactionState::PrepareCommit;
                bump_epoch(&mut t);
                bumped = true;
                // The new epoch is stored with the decision before any
                // marker carries it: recovery finishes it with that epoch.
                t.update_ms = self.catalog.clock().now_ms();
                let records = Self::decision_records(id, &t, commit);
                self.append(&records, Durability::Sync)?;
                self.complete(id, &mut t, commit, Durability::Sync)?;
            }
            _ => {}
        }
        if !bumped {
            bump_epoch(&mut t);
        }
        if t.epoch == i16::MAX {
            // The last epoch fenced the old producers (its markers carry
            // it): the new one gets a new producer id.
            t.producer_id = self.allocate_producer_id()?;
            t.epoch = 0;
        }
        t.timeout_ms = timeout_ms;
        t.state = TransactionState::Empty;
        t.update_ms = self.catalog.clock().now_ms();
        self.append(&[Self::state_record(id, &t)], Durability::Sync)?;
        Ok((t.producer_id, t.epoch))
    }

    /// Checks that the producer (`pid`, `epoch`) is `id`'s current one and
    /// may add to a transaction; opens one if none is.
    fn open_for<'a>(&self, id: &str, t: &'a mut Txn, pid: i64, epoch: i16) -> Result<&'a mut Txn> {
        if t.forgotten {
            return Err(not_initialized(id));
        }
        if let Some(e) = t.fenced(pid, epoch) {
            return Err(e);
        }
        match t.state {
            TransactionState::Ongoing => {}
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                return Err(Error::InvalidTxnState(format!(
                    "transaction {id:?} is ending ({:?}); wait for its commit or abort to return",
                    t.state
                )));
            }
            _ => {
                t.state = TransactionState::Ongoing;
                t.start_ms = self.catalog.clock().now_ms();
                t.partitions.clear();
                t.offsets.clear();
                t.committers.clear();
            }
        }
        t.update_ms = self.catalog.clock().now_ms();
        Ok(t)
    }

    /// Adds a partition to the producer's open transaction (opening one).
    ///
    /// # Errors
    /// [`Error::ProducerFenced`]; [`Error::InvalidTxnState`] while the
    /// transaction is ending.
    pub(crate) fn add_partition(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        tp: &TopicPartition,
    ) -> Result<()> {
        let t = self.txn(id).ok_or_else(|| not_initialized(id))?;
        let mut t = t.lock();
        let t = self.open_for(id, &mut t, pid, epoch)?;
        if !t.partitions.contains(tp) {
            t.partitions.insert(tp.clone());
        }
        Ok(())
    }

    /// Adds group offsets to the producer's open transaction, checked as
    /// the group would check a commit by `committer` now.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`]; what the group refuses
    /// ([`Error::Fenced`], [`Error::CommitFailed`]).
    pub(crate) fn add_offsets(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        group: &str,
        committer: Committer<'_>,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    ) -> Result<()> {
        crate::group::validate_group_id(group)?;
        let tps: Vec<TopicPartition> = offsets.iter().map(|(tp, _)| tp.clone()).collect();
        self.groups
            .coordinator()
            .check_commit(group, committer, &tps)?;
        let t = self.txn(id).ok_or_else(|| not_initialized(id))?;
        let mut t = t.lock();
        let t = self.open_for(id, &mut t, pid, epoch)?;
        for (tp, o) in offsets {
            t.offsets.retain(|(g, p, _)| !(g == group && *p == tp));
            t.offsets.push((group.to_string(), tp, o));
        }
        let who = match committer {
            Committer::Member { id, generation } => (Some(id.to_string()), Some(generation)),
            _ => (None, None),
        };
        t.committers.insert(group.to_string(), who);
        Ok(())
    }

    /// Commits or aborts the producer's transaction: the decision record,
    /// the markers, the offsets, the completion record.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`]; [`Error::InvalidTxnState`] for the
    /// opposite decision already taken; the appends' errors (the decision,
    /// if it was stored, is finished by the next call, the timeout check
    /// or the next open).
    ///
    /// `touched`: the producer registered partitions or offsets in this
    /// transaction (else there is nothing to end).
    pub(crate) fn end(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
        touched: bool,
        durability: Durability,
    ) -> Result<()> {
        let t = self.txn(id).ok_or_else(|| not_initialized(id))?;
        let mut t = t.lock();
        if t.forgotten {
            return Err(not_initialized(id));
        }
        if let Some(e) = t.fenced(pid, epoch) {
            return Err(e);
        }
        match (t.state, commit) {
            (TransactionState::Ongoing, _) => {
                if commit {
                    // The group may have moved on since the offsets were
                    // added (a rebalance): then the commit is refused, and
                    // the transaction must abort.
                    self.check_offsets(&t)?;
                }
                t.state = if commit {
                    TransactionState::PrepareCommit
                } else {
                    TransactionState::PrepareAbort
                };
                t.update_ms = self.catalog.clock().now_ms();
                let records = Self::decision_records(id, &t, commit);
                if let Err(e) = self.append(&records, durability) {
                    // Nothing was decided.
                    t.state = TransactionState::Ongoing;
                    return Err(e);
                }
            }
            (TransactionState::PrepareCommit, true) | (TransactionState::PrepareAbort, false) => {}
            (TransactionState::PrepareCommit | TransactionState::PrepareAbort, _) => {
                return Err(Error::InvalidTxnState(format!(
                    "transaction {id:?} is already being {}",
                    if commit { "aborted" } else { "committed" }
                )));
            }
            // Nothing was sent in it: nothing to end.
            _ if !touched => return Ok(()),
            // A retry of a decision the broker finished meanwhile.
            (TransactionState::CompleteCommit, true) | (TransactionState::CompleteAbort, false) => {
                return Ok(());
            }
            (state, _) => {
                return Err(Error::InvalidTxnState(format!(
                    "transaction {id:?} cannot be {}: the broker has it {state:?}",
                    if commit { "committed" } else { "aborted" }
                )));
            }
        }
        self.complete(id, &mut t, commit, durability)
    }

    /// Checks every group's offsets against the group as it is now.
    fn check_offsets(&self, t: &Txn) -> Result<()> {
        for (group, (member, generation)) in &t.committers {
            let tps: Vec<TopicPartition> = t
                .offsets
                .iter()
                .filter(|(g, _, _)| g == group)
                .map(|(_, tp, _)| tp.clone())
                .collect();
            let committer = match (member, generation) {
                (Some(id), Some(generation)) => Committer::Member {
                    id,
                    generation: *generation,
                },
                _ => Committer::Outside,
            };
            self.groups
                .coordinator()
                .check_commit(group, committer, &tps)?;
        }
        Ok(())
    }

    /// Writes the markers of a decided transaction, stores its offsets
    /// (on commit) and records its completion.
    fn complete(&self, id: &str, t: &mut Txn, commit: bool, durability: Durability) -> Result<()> {
        let marker = Marker {
            producer_id: t.producer_id,
            epoch: t.epoch,
            commit,
            coordinator_epoch: COORDINATOR_EPOCH,
        };
        let mut marked = Vec::with_capacity(t.partitions.len());
        for tp in &t.partitions {
            let p = match self.catalog.partition(&tp.topic, tp.partition) {
                Ok(p) => p,
                // Deleted since: nothing left to mark.
                Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => continue,
                Err(e) => return Err(e),
            };
            match p.log.append_marker(marker, Durability::Buffered) {
                Ok(_) => marked.push(p),
                // A newer epoch ended this producer's transaction there
                // already (a decision finished again after a crash).
                Err(Error::ProducerFenced { .. }) => {}
                // Its topic was deleted meanwhile (unless the broker is
                // closing: then the decision stays to be finished).
                Err(Error::Closed) => self.catalog.check_open()?,
                Err(e) => return Err(e),
            }
        }
        if durability == Durability::Sync {
            // The markers are durable before the completion record is:
            // after a power loss, either the decision is finished again or
            // the markers are there.
            for p in &marked {
                p.log.flush()?;
            }
        }
        if commit {
            let mut by_group: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for (g, tp, o) in &t.offsets {
                by_group
                    .entry(g.clone())
                    .or_default()
                    .push((tp.clone(), Some(o.clone())));
            }
            for (g, commits) in by_group {
                self.groups.store_commits_with(
                    &g,
                    Committer::Transaction,
                    Commits::These(commits),
                    durability,
                )?;
            }
        }
        // The state changes once the completion is stored: until then the
        // decision stays to be finished (and no new transaction starts,
        // whose records a repeated marker would end).
        let mut done = t.clone();
        done.state = if commit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        done.partitions.clear();
        done.offsets.clear();
        done.committers.clear();
        done.update_ms = self.catalog.clock().now_ms();
        let mut records = vec![Self::state_record(id, &done)];
        if !t.offsets.is_empty() {
            records.push(Record::tombstone(encode_key(KIND_OFFSETS, id)));
        }
        self.append(&records, durability)?;
        *t = done;
        Ok(())
    }

    /// Aborts transactions open longer than their timeout (bumping the
    /// epoch, so their producer is fenced) and finishes decisions whose
    /// markers failed. Returns how many it aborted.
    ///
    /// # Errors
    /// The first failure; the others are still tried.
    pub(crate) fn abort_timed_out(&self) -> Result<usize> {
        let now = self.catalog.clock().now_ms();
        let all: Vec<(String, Arc<Mutex<Txn>>)> = self
            .txns
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut aborted = 0;
        let mut first_err = None;
        for (id, t) in all {
            let mut t = t.lock();
            if t.forgotten {
                continue;
            }
            let r = match t.state {
                TransactionState::Ongoing
                    if now.saturating_sub(t.start_ms) > i64::from(t.timeout_ms) =>
                {
                    tracing::warn!(
                        transactional_id = %id,
                        producer_id = t.producer_id,
                        timeout_ms = t.timeout_ms,
                        "embedlog: aborting a transaction open longer than its timeout; its producer is fenced"
                    );
                    aborted += 1;
                    self.abort_fencing(&id, &mut t)
                }
                TransactionState::PrepareCommit => {
                    self.complete(&id, &mut t, true, Durability::Sync)
                }
                TransactionState::PrepareAbort => {
                    self.complete(&id, &mut t, false, Durability::Sync)
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.expire_ids(now) {
            first_err.get_or_insert(e);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(aborted),
        }
    }

    /// Forgets transactional ids with no open transaction whose last
    /// change is older than the expiration (a tombstone in
    /// `__transaction_state`, so that compaction drops them too). A
    /// producer still holding such an id must be made again.
    fn expire_ids(&self, now: i64) -> Result<()> {
        let horizon = now.saturating_sub(self.id_expiration_ms);
        let mut txns = self.txns.lock();
        let entries: Vec<(String, Arc<Mutex<Txn>>)> =
            txns.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // The idle ones stay locked until they are marked forgotten: a
        // caller that looked one up meanwhile then finds it so.
        let mut expired = Vec::new();
        for (id, t) in &entries {
            // Busy (being ended or initialized): not idle.
            let Some(guard) = t.try_lock() else { continue };
            let idle = matches!(
                guard.state,
                TransactionState::Empty
                    | TransactionState::CompleteCommit
                    | TransactionState::CompleteAbort
            ) && guard.update_ms < horizon;
            if idle {
                expired.push((id, guard));
            }
        }
        if expired.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = expired
            .iter()
            .map(|(id, _)| Record::tombstone(encode_key(KIND_STATE, id)))
            .collect();
        self.append(&records, Durability::Buffered)?;
        for (id, mut guard) in expired {
            tracing::info!(transactional_id = %id, "embedlog: forgetting an idle transactional id");
            guard.forgotten = true;
            txns.remove(id.as_str());
        }
        Ok(())
    }

    /// Aborts `t`'s open transaction with a new epoch (fencing its
    /// producer).
    fn abort_fencing(&self, id: &str, t: &mut Txn) -> Result<()> {
        bump_epoch(t);
        t.state = TransactionState::PrepareAbort;
        t.update_ms = self.catalog.clock().now_ms();
        self.append(&[Self::state_record(id, t)], Durability::Sync)?;
        self.complete(id, t, false, Durability::Sync)
    }

    /// Aborts `id`'s open transaction, fencing its producer (the Admin
    /// API's "abort a hanging transaction").
    ///
    /// # Errors
    /// [`Error::UnknownTransactionalId`]; the appends' errors.
    pub(crate) fn force_abort(&self, id: &str) -> Result<bool> {
        let t = self.txn(id).ok_or_else(|| Error::UnknownTransactionalId {
            transactional_id: id.to_string(),
        })?;
        let mut t = t.lock();
        if t.forgotten {
            return Err(Error::UnknownTransactionalId {
                transactional_id: id.to_string(),
            });
        }
        match t.state {
            TransactionState::Ongoing => {
                self.abort_fencing(id, &mut t)?;
                Ok(true)
            }
            TransactionState::PrepareAbort => {
                self.complete(id, &mut t, false, Durability::Sync)?;
                Ok(true)
            }
            TransactionState::PrepareCommit => {
                self.complete(id, &mut t, true, Durability::Sync)?;
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Every transactional id's state, by id.
    pub(crate) fn describe_all(&self) -> Vec<TransactionDescription> {
        let all: Vec<(String, Arc<Mutex<Txn>>)> = self
            .txns
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<TransactionDescription> = all
            .into_iter()
            .map(|(id, t)| {
                let t = t.lock();
                let open = matches!(
                    t.state,
                    TransactionState::Ongoing
                        | TransactionState::PrepareCommit
                        | TransactionState::PrepareAbort
                );
                TransactionDescription {
                    transactional_id: id,
                    producer_id: t.producer_id,
                    producer_epoch: t.epoch,
                    state: t.state,
                    timeout_ms: t.timeout_ms,
                    start_ms: open.then_some(t.start_ms),
                    partitions: t.partitions.iter().cloned().collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

/// Replays one record of a compacted key space into `map`: the latest
/// value per key wins, a tombstone (`None`) removes the key.
fn latest<T>(
    map: &mut BTreeMap<String, T>,
    id: String,
    value: Option<&[u8]>,
    decode: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
) -> std::result::Result<(), String> {
    match value {
        Some(v) => {
            map.insert(id, decode(v)?);
        }
        None => {
            map.remove(&id);
        }
    }
    Ok(())
}

/// The next epoch, at most `i16::MAX` (then `init` moves to a new
/// producer id).
fn bump_epoch(t: &mut Txn) {
    t.epoch = t.epoch.saturating_add(1).max(0);
}

fn not_initialized(id: &str) -> Error {
    Error::InvalidTxnState(format!(
        "transactional id {id:?} is unknown to the broker (never initialized, or forgotten after \
         BrokerBuilder::transactional_id_expiration idle): make a producer and call init_transactions"
    ))
}
