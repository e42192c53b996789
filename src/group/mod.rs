//! Consumer groups in one process: membership, rebalancing, and committed
//! offsets stored as records of the internal compacted topic
//! `__consumer_offsets`.
//!
//! The broker's [`Coordinator`] plays Kafka's group coordinator. Members
//! (subscribed [`Consumer`](crate::Consumer)s) join and leave; each change of
//! membership or of the subscribed topics' partitions computes a new target
//! assignment with the group's [`Assignor`] and bumps the generation. Members
//! move towards their target at their next poll, in two steps that keep each
//! partition owned by at most one member at a time:
//!
//! 1. A member first **revokes** what it must give up (all it owns under an
//!    eager assignor, only what moves under the cooperative one), running
//!    its [`RebalanceListener`](crate::RebalanceListener) (the place to commit) before the partitions
//!    are released.
//! 2. It then **acquires** the partitions of its target that no one owns,
//!    resuming each from the group's committed offset.
//!
//! A member that does not poll for `max_poll_interval` while another waits
//! for one of its partitions is removed from the group; its next poll
//! reports the partitions as lost and rejoins.
//!
//! Commits are fenced as Kafka fences them: a member commits with its
//! member id and the generation it last synced at, and the commit is
//! refused ([`Error::Fenced`]) if the member was removed or its generation
//! is not that one, and ([`Error::CommitFailed`]) for a partition it does
//! not own. The check, the durable append to `__consumer_offsets` and the
//! update of the committed offsets happen under one lock, which also
//! covers the Admin API's offset changes and every read of committed
//! offsets: what is in memory is always what a reopen replays, and a new
//! owner starts from the last commit the coordinator accepted.

pub mod assignor;
pub(crate) mod offsets;
mod store;

pub use assignor::{
    Assignor, CooperativeStickyAssignor, RangeAssignor, RebalanceProtocol, RoundRobinAssignor,
    Subscription,
};
pub use offsets::{OFFSETS_TOPIC, OffsetAndMetadata};
pub(crate) use store::Groups;

use crate::catalog::TopicPartition;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::storage::Notify;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Longest group id accepted.
pub const MAX_GROUP_ID_LEN: usize = 1024;

/// Checks a group id: 1 to [`MAX_GROUP_ID_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidGroupId`] saying the bounds.
pub(crate) fn validate_group_id(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
        return Err(Error::InvalidGroupId {
            group: group.to_string(),
            reason: format!(
                "group ids are 1 to {MAX_GROUP_ID_LEN} bytes, not {}",
                group.len()
            ),
        });
    }
    Ok(())
}

/// What a member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topics {
    Names(Vec<String>),
    /// A glob: `*` matches any run of characters, `?` one character.
    Pattern(String),
}

impl Topics {
    fn resolve(&self, metadata: &BTreeMap<String, u32>) -> Vec<String> {
        match self {
            Topics::Names(n) => n.clone(),
            Topics::Pattern(p) => metadata
                .keys()
                .filter(|t| glob_match(p.as_bytes(), t.as_bytes()))
                .cloned()
                .collect(),
        }
    }
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` any one
/// character). Linear-time with backtracking to the last `*`.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The state of a group, as [`Admin::describe_group`](crate::Admin::describe_group)
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// Members own exactly their target assignment.
    Stable,
    /// A rebalance is in progress: some partitions are being handed over.
    Rebalancing,
    /// No members; committed offsets remain.
    Empty,
}

/// One member, as [`Admin::describe_group`](crate::Admin::describe_group)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the group gave the consumer.
    pub member_id: String,
    /// The topics it subscribes to (a pattern resolved to today's topics).
    pub topics: Vec<String>,
    /// The partitions it owns now.
    pub assignment: Vec<TopicPartition>,
}

#[derive(Debug)]
struct Member {
    topics: Topics,
    /// What the assignor gave it.
    target: Vec<TopicPartition>,
    /// What it owns (revoked ones are gone, acquired ones added).
    owned: Vec<TopicPartition>,
    /// The generation whose eager revocation it went through.
    synced_generation: u64,
    /// When it last polled, by the broker's clock (ms since the epoch).
    last_poll_ms: i64,
    max_poll_interval: Duration,
    /// Wakes the member's long poll when the group changes.
    notify: Arc<Notify>,
}

#[derive(Debug)]
struct Group {
    assignor: Arc<dyn Assignor>,
    generation: u64,
    members: BTreeMap<String, Member>,
    /// Which member owns each partition now.
    owners: BTreeMap<TopicPartition, String>,
    /// Partition counts of the topics when the target was computed.
    metadata: BTreeMap<String, u32>,
    /// The broker's metadata version `metadata` was read at.
    metadata_version: u64,
}

impl Group {
    fn rebalance(&mut self, group: &str, reason: &str) {
        let subs: Vec<Subscription> = self
            .members
            .iter()
            .map(|(id, m)| Subscription {
                member_id: id.clone(),
                topics: m.topics.resolve(&self.metadata),
                owned: m.owned.clone(),
            })
            .collect();
        let mut targets = self.assignor.assign(&self.metadata, &subs);
        for (id, m) in self.members.iter_mut() {
            m.target = targets.remove(id).unwrap_or_default();
            m.notify.notify();
        }
        self.generation += 1;
        tracing::info!(
            group,
            generation = self.generation,
            members = self.members.len(),
            protocol = ?self.assignor.protocol(),
            reason,
            "consumer group rebalance"
        );
        for (id, m) in &self.members {
            tracing::debug!(
                group,
                generation = self.generation,
                member = %id,
                partitions = m.target.len(),
                "member's target assignment"
            );
        }
    }

    /// Removes a member, freeing what it owns.
    fn remove(&mut self, member: &str) -> Option<Member> {
        let m = self.members.remove(member)?;
        for tp in &m.owned {
            if self.owners.get(tp).is_some_and(|o| o == member) {
                self.owners.remove(tp);
            }
        }
        Some(m)
    }

    fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.members.values().all(|m| {
            m.owned == m.target
                && (self.assignor.protocol() == RebalanceProtocol::Cooperative
                    || m.synced_generation == self.generation)
        }) {
            GroupState::Stable
        } else {
            GroupState::Rebalancing
        }
    }
}

/// What a member does at this poll.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The member's generation after this step: its commits carry it.
    pub(crate) generation: u64,
    /// The member was removed from the group: everything it held is lost;
    /// it must rejoin.
    pub(crate) lost: bool,
    /// Give these up (run `on_revoked`, then `release`).
    pub(crate) revoke: Vec<TopicPartition>,
    /// Now owned (run `on_assigned`).
    pub(crate) assigned: Vec<TopicPartition>,
}

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<String, Group>,
    next_member: u64,
}

/// Committed offsets of every group.
type Committed = BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>;

/// What a transactional producer needs of a consumer's group membership
/// to commit its offsets in a transaction
/// ([`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)):
/// Kafka's `ConsumerGroupMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The member id, while subscribed.
    pub member_id: Option<String>,
    /// The generation the member last synced at, while subscribed.
    pub generation: Option<u64>,
}

/// One commit of one partition; `None` deletes the commit.
pub(crate) type Commit = (TopicPartition, Option<OffsetAndMetadata>);

/// Who commits offsets for a group; [`Coordinator::commit`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committer<'a> {
    /// A member of the group, at the generation it last synced at: only
    /// for partitions it owns.
    Member {
        /// Its member id.
        id: &'a str,
        /// The generation of [`Plan::generation`].
        generation: u64,
    },
    /// A consumer with a manual assignment (not a member): only while the
    /// group has no members (Kafka's "simple" consumer).
    Outside,
    /// The Admin API: only while the group has no members
    /// ([`Error::GroupNotEmpty`] otherwise).
    Admin,
    /// A committed transaction's offsets: checked when the producer added
    /// them (`send_offsets_to_transaction`), stored once it committed.
    Transaction,
}

/// What a commit stores.
#[derive(Debug)]
pub(crate) enum Commits {
    /// These commits, in order.
    These(Vec<Commit>),
    /// Delete every commit of the group, as it is when the commit runs
    /// ([`Error::UnknownGroup`] if there is none).
    DeleteAll,
}

/// Commits in one append: batches of at most 1000 commits stay far below
/// the offsets topic's `max.message.bytes` (topic names are at most 249
/// bytes, group ids 1024).
const COMMITS_PER_APPEND: usize = 1000;

/// The broker's group coordinator. See the module docs.
#[derive(Debug)]
pub(crate) struct Coordinator {
    /// Membership. Held briefly; never while waiting for I/O.
    state: Mutex<State>,
    /// Committed offsets. Held across a commit's check, durable append and
    /// update, and by every read, so that memory and the offsets topic
    /// agree and nobody reads an offset a commit in flight is about to
    /// replace. Taken before `state`.
    committed: Mutex<Committed>,
    /// The broker's clock: poll deadlines are measured by it, so tests
    /// drive them with a [`ManualClock`](crate::ManualClock).
    clock: Arc<dyn Clock>,
}

/// Records stored commits of `group` in `committed`.
fn apply(committed: &mut Committed, group: &str, commits: &[Commit]) {
    let map = committed.entry(group.to_string()).or_default();
    for (tp, c) in commits {
        match c {
            Some(c) => {
                map.insert(tp.clone(), c.clone());
            }
            None => {
                map.remove(tp);
            }
        }
    }
    if map.is_empty() {
        committed.remove(group);
    }
}

fn sorted(v: impl IntoIterator<Item = TopicPartition>) -> Vec<TopicPartition> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Whether more than `interval` passed from `since_ms` to `now_ms` (a
/// clock that went backwards means no time passed).
fn expired(since_ms: i64, now_ms: i64, interval: Duration) -> bool {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(since_ms) > interval_ms
}

impl Coordinator {
    /// A coordinator without groups, timing members by `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Coordinator {
        Coordinator {
            state: Mutex::default(),
            committed: Mutex::default(),
            clock,
        }
    }

    /// Adds a member to `group` (created if new) and rebalances.
    pub(crate) fn join(
        &self,
        group: &str,
        topics: Topics,
        assignor: Arc<dyn Assignor>,
        notify: Arc<Notify>,
        max_poll_interval: Duration,
        (metadata_version, metadata): (u64, BTreeMap<String, u32>),
    ) -> Result<String> {
        let mut st = self.state.lock();
        st.next_member += 1;
        let member_id = format!("{group}-member-{}", st.next_member);
        let g = st.groups.entry(group.to_string()).or_insert_with(|| Group {
            assignor: assignor.clone(),
            generation: 0,
            members: BTreeMap::new(),
            owners: BTreeMap::new(),
            metadata: BTreeMap::new(),
            metadata_version: 0,
        });
        if g.members.is_empty() {
            g.assignor = assignor;
        } else if g.assignor.name() != assignor.name() {
            return Err(Error::InvalidArgument(format!(
                "group {group} uses the {} assignor, not {}",
                g.assignor.name(),
                assignor.name()
            )));
        }
        g.members.insert(
            member_id.clone(),
            Member {
                topics,
                target: Vec::new(),
                owned: Vec::new(),
                synced_generation: 0,
                last_poll_ms: self.clock.now_ms(),
                max_poll_interval,
                notify,
            },
        );
        g.metadata = metadata;
        g.metadata_version = metadata_version;
        g.rebalance(group, "a member joined");
        Ok(member_id)
    }

    /// Changes a member's subscription and rebalances.
    pub(crate) fn resubscribe(&self, group: &str, member: &str, topics: Topics) {
        let mut st = self.state.lock();
        if let Some(g) = st.groups.get_mut(group)
            && let Some(m) = g.members.get_mut(member)
        {
            m.topics = topics;
            g.rebalance(group, "a member changed its subscription");
        }
    }

    /// Removes a member (its partitions are free at once) and rebalances.
    pub(crate) fn leave(&self, group: &str, member: &str) {
        let mut st = self.state.lock();
        if let Some(g) = st.groups.get_mut(group)
            && g.remove(member).is_some()
        {
            if g.members.is_empty() {
                st.groups.remove(group);
            } else {
                g.rebalance(group, "a member left");
            }
        }
    }

    /// What `member` does now (see [`Plan`]).
    /// `metadata` is read (and the group rebalanced if it changed) only
    /// when the broker's `metadata_version` moved since the group last
    /// read it.
    pub(crate) fn sync(
        &self,
        group: &str,
        member: &str,
        metadata_version: u64,
        metadata: impl FnOnce() -> BTreeMap<String, u32>,
    ) -> Plan {
        let mut st = self.state.lock();
        let Some(g) = st
            .groups
            .get_mut(group)
            .filter(|g| g.members.contains_key(member))
        else {
            return Plan {
                lost: true,
                ..Plan::default()
            };
        };
        if g.metadata_version != metadata_version {
            g.metadata_version = metadata_version;
            let metadata = metadata();
            if g.metadata != metadata {
                g.metadata = metadata;
                g.rebalance(group, "the subscribed topics' partitions changed");
            }
        }
        let (generation, eager) = (
            g.generation,
            g.assignor.protocol() == RebalanceProtocol::Eager,
        );
        let now = self.clock.now_ms();
        let Some(m) = g.members.get_mut(member) else {
            return Plan::default();
        };
        m.last_poll_ms = now;
        let revoke: Vec<TopicPartition> = if eager && m.synced_generation < generation {
            m.owned.clone()
        } else {
            assignor::revoked(&m.owned, &m.target)
        };
        if !revoke.is_empty() {
            // Still at its old generation: commits in `on_revoked` carry
            // it, and are accepted while the member owns the partitions.
            return Plan {
                generation: m.synced_generation,
                revoke,
                ..Plan::default()
            };
        }
        m.synced_generation = generation;
        let wanted: Vec<TopicPartition> = m
            .target
            .iter()
            .filter(|tp| !m.owned.contains(tp))
            .cloned()
            .collect();
        let mut assigned = Vec::new();
        let mut stale = Vec::new();
        for tp in wanted {
            match g.owners.get(&tp) {
                None => assigned.push(tp),
                Some(o) if o == member => assigned.push(tp),
                Some(o) => {
                    // Waiting for `o` to revoke: remove it if it stopped
                    // polling.
                    if let Some(om) = g.members.get(o)
                        && expired(om.last_poll_ms, now, om.max_poll_interval)
                    {
                        stale.push(o.clone());
                    }
                }
            }
        }
        for tp in &assigned {
            g.owners.insert(tp.clone(), member.to_string());
        }
        if let Some(m) = g.members.get_mut(member) {
            m.owned = sorted(m.owned.drain(..).chain(assigned.iter().cloned()));
        }
        if !stale.is_empty() {
            for o in &stale {
                g.remove(o);
            }
            g.rebalance(group, "members missed their poll interval");
        }
        Plan {
            generation,
            assigned,
            ..Plan::default()
        }
    }

    /// `member` gave up `partitions`: free them and wake the others.
    pub(crate) fn release(&self, group: &str, member: &str, partitions: &[TopicPartition]) {
        let mut st = self.state.lock();
        let Some(g) = st.groups.get_mut(group) else {
            return;
        };
        for tp in partitions {
            if g.owners.get(tp).is_some_and(|o| o == member) {
                g.owners.remove(tp);
            }
        }
        if let Some(m) = g.members.get_mut(member) {
            m.owned.retain(|tp| !partitions.contains(tp));
        }
        for m in g.members.values() {
            m.notify.notify();
        }
    }

    /// Checks that `committer` may commit for `partitions` of `group` now.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        committer: Committer<'_>,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let st = self.state.lock();
        let g = st.groups.get(group).filter(|g| !g.members.is_empty());
        let fenced = |member: &str, generation: u64, reason: String| Error::Fenced {
            group: group.to_string(),
            member: member.to_string(),
            generation,
            reason,
        };
        match (g, committer) {
            (_, Committer::Transaction) => Ok(()),
            (None, Committer::Outside | Committer::Admin) => Ok(()),
            (Some(_), Committer::Admin) => Err(Error::GroupNotEmpty {
                group: group.to_string(),
            }),
            (Some(_), Committer::Outside) => Err(Error::CommitFailed {
                group: group.to_string(),
                reason: "the group has active members and this consumer is not one of them".into(),
            }),
            (None, Committer::Member { id, generation }) => Err(fenced(
                id,
                generation,
                "it was removed from the group, which has no members now".into(),
            )),
            (Some(g), Committer::Member { id, generation }) => {
                let Some(m) = g.members.get(id) else {
                    return Err(fenced(
                        id,
                        generation,
                        format!(
                            "it was removed from the group (its generation is {})",
                            g.generation
                        ),
                    ));
                };
                if m.synced_generation != generation {
                    return Err(fenced(
                        id,
                        generation,
                        format!(
                            "illegal generation: the member is at generation {}",
                            m.synced_generation
                        ),
                    ));
                }
                match partitions.iter().find(|tp| !m.owned.contains(tp)) {
                    None => Ok(()),
                    Some(tp) => Err(Error::CommitFailed {
                        group: group.to_string(),
                        reason: format!("{tp} is not owned by member {id} (it was rebalanced)"),
                    }),
                }
            }
        }
    }

    /// Fails with [`Error::GroupNotEmpty`] if the group has members (a
    /// check to fail early; [`commit`](Self::commit) checks again).
    pub(crate) fn check_empty(&self, group: &str) -> Result<()> {
        self.check_commit(group, Committer::Admin, &[])
    }

    /// Commits for `group` as `committer`, atomically: checks that it may
    /// (see [`Committer`]), hands the commits to `append` (which stores
    /// them durably, in order, at most [`COMMITS_PER_APPEND`] at a time)
    /// and makes what was stored visible, all under the lock every other
    /// commit and every read of committed offsets takes.
    ///
    /// # Errors
    /// [`Error::Fenced`], [`Error::CommitFailed`], [`Error::GroupNotEmpty`]
    /// from the check; [`Error::UnknownGroup`] for
    /// [`Commits::DeleteAll`] of a group without commits; `append`'s error
    /// (the appends before it stand).
    pub(crate) fn commit(
        &self,
        group: &str,
        committer: Committer<'_>,
        commits: Commits,
        mut append: impl FnMut(&[Commit]) -> Result<()>,
    ) -> Result<()> {
        let mut committed = self.committed.lock();
        let commits = match commits {
            Commits::These(c) => c,
            Commits::DeleteAll => {
                self.check_commit(group, committer, &[])?;
                let all: Vec<Commit> = committed
                    .get(group)
                    .map(|m| m.keys().map(|tp| (tp.clone(), None)).collect())
                    .unwrap_or_default();
                if all.is_empty() {
                    return Err(Error::UnknownGroup {
                        group: group.to_string(),
                    });
                }
                all
            }
        };
        if commits.is_empty() {
            return Ok(());
        }
        let tps: Vec<TopicPartition> = commits.iter().map(|(tp, _)| tp.clone()).collect();
        self.check_commit(group, committer, &tps)?;
        for chunk in commits.chunks(COMMITS_PER_APPEND) {
            append(chunk)?;
            apply(&mut committed, group, chunk);
        }
        Ok(())
    }

    /// Applies commits read back from the offsets topic (at open).
    pub(crate) fn load(&self, group: &str, commits: &[Commit]) {
        apply(&mut self.committed.lock(), group, commits);
    }

    /// The group's committed offset for `tp`.
    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.committed
            .lock()
            .get(group)
            .and_then(|m| m.get(tp))
            .cloned()
    }

    /// Every committed offset of the group.
    pub(crate) fn committed_all(&self, group: &str) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.committed
            .lock()
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Groups with members or committed offsets: `(id, state, members)`.
    pub(crate) fn list(&self) -> Vec<(String, GroupState, usize)> {
        let committed = self.committed.lock();
        let st = self.state.lock();
        let ids: BTreeSet<&String> = st.groups.keys().chain(committed.keys()).collect();
        ids.into_iter()
            .map(|id| match st.groups.get(id) {
                Some(g) => (id.clone(), g.state(), g.members.len()),
                None => (id.clone(), GroupState::Empty, 0),
            })
            .collect()
    }

    /// `(state, assignor, generation, members)` of a group; `None` if it
    /// has neither members nor commits.
    #[allow(clippy::type_complexity)]
    pub(crate) fn describe(
        &self,
        group: &str,
    ) -> Option<(GroupState, Option<String>, u64, Vec<MemberDescription>)> {
        let has_commits = self.committed.lock().contains_key(group);
        let st = self.state.lock();
        match st.groups.get(group) {
            Some(g) => Some((
                g.state(),
                Some(g.assignor.name().to_string()),
                g.generation,
                g.members
                    .iter()
                    .map(|(id, m)| MemberDescription {
                        member_id: id.clone(),
                        topics: m.topics.resolve(&g.metadata),
                        assignment: m.owned.clone(),
                    })
                    .collect(),
            )),
            None => has_commits.then(|| (GroupState::Empty, None, 0, Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m("orders-*", "orders-eu"));
        assert!(m("orders-*", "orders-"));
        assert!(!m("orders-*", "order"));
        assert!(m("*-eu", "orders-eu"));
        assert!(m("o?ders", "orders"));
        assert!(!m("o?ders", "oders"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exactly"));
    }

    /// Metadata of topic `t` with `parts` partitions (its version is the
    /// partition count).
    fn meta(parts: u32) -> (u64, BTreeMap<String, u32>) {
        (
            u64::from(parts),
            [("t".to_string(), parts)].into_iter().collect(),
        )
    }

    fn sync(c: &Coordinator, member: &str, parts: u32) -> Plan {
        let (version, metadata) = meta(parts);
        c.sync("g", member, version, || metadata)
    }

    /// Joins a member subscribed to `t` (of `parts` partitions) to group
    /// `g`, with a one-minute `max_poll_interval`.
    fn join(c: &Coordinator, assignor: Arc<dyn Assignor>, parts: u32) -> String {
        c.join(
            "g",
            Topics::Names(vec!["t".into()]),
            assignor,
            Arc::new(Notify::new()),
            Duration::from_secs(60),
            meta(parts),
        )
        .unwrap()
    }

    #[test]
    fn rebalances_are_reported_with_their_group_generation_and_reason() {
        let c = Coordinator::new(Arc::new(crate::SystemClock));
        let assignor: Arc<dyn Assignor> = Arc::new(CooperativeStickyAssignor);
        let ((a, _b), events) = crate::test_support::capture_events(|| {
            let a = join(&c, assignor.clone(), 4);
            let b = join(&c, assignor.clone(), 4);
            c.leave("g", &b);
            (a, b)
        });
        let rebalances: Vec<&String> = events
            .iter()
            .filter(|e| e.contains("consumer group rebalance"))
            .collect();
        assert_eq!(rebalances.len(), 3, "{events:#?}");
        assert!(
            rebalances[0].starts_with("INFO ")
                && rebalances[0].contains("group=g ")
                && rebalances[0].contains("generation=1 ")
                && rebalances[0].contains("members=1 ")
                && rebalances[0].contains("reason=a member joined "),
            "{}",
            rebalances[0]
        );
        assert!(rebalances[1].contains("generation=2 ") && rebalances[1].contains("members=2 "));
        assert!(
            rebalances[2].contains("generation=3 ")
                && rebalances[2].contains("members=1 ")
                && rebalances[2].contains("reason=a member left "),
            "{}",
            rebalances[2]
        );
        let targets: Vec<&String> = events
            .iter()
            .filter(|e| e.contains("member's target assignment") && e.contains("generation=3 "))
            .collect();
        assert_eq!(targets.len(), 1);
        assert!(
            targets[0].contains(&format!("member={a} ")) && targets[0].contains("partitions=4 ")
        );
    }

    /// Moves every member to its target as consumers would (revoke, then
    /// acquire), in rounds; returns each member's partitions.
    fn settle(c: &Coordinator, members: &[String], parts: u32) -> Vec<Vec<TopicPartition>> {
        let mut owned = vec![Vec::new(); members.len()];
        for _ in 0..4 {
            for (i, m) in members.iter().enumerate() {
                let plan = sync(c, m, parts);
                assert!(!plan.lost);
                if !plan.revoke.is_empty() {
                    c.release("g", m, &plan.revoke);
                    owned[i].retain(|tp| !plan.revoke.contains(tp));
                }
                owned[i].extend(plan.assigned);
                owned[i].sort();
            }
        }
        owned
    }

    #[test]
    fn a_partition_is_never_owned_twice_during_a_handover() {
        let c = Coordinator::new(Arc::new(crate::ManualClock::new(0)));
        let join = || join(&c, Arc::new(CooperativeStickyAssignor), 4);
        let a = join();
        let owned = settle(&c, std::slice::from_ref(&a), 4);
        assert_eq!(owned[0].len(), 4);
        let b = join();
        // B wants two of A's partitions but gets none until A releases.
        let plan = sync(&c, &b, 4);
        assert!(plan.assigned.is_empty() && plan.revoke.is_empty());
        let plan = sync(&c, &a, 4);
        assert_eq!(plan.revoke.len(), 2);
        let member_a = Committer::Member {
            id: &a,
            generation: plan.generation,
        };
        assert!(c.check_commit("g", member_a, &plan.revoke).is_ok());
        c.release("g", &a, &plan.revoke);
        assert!(matches!(
            c.check_commit("g", member_a, &plan.revoke),
            Err(Error::CommitFailed { .. })
        ));
        let got = sync(&c, &b, 4);
        assert_eq!(got.assigned, plan.revoke);
        assert_eq!(c.list(), vec![("g".into(), GroupState::Stable, 2)]);
        // Strangers cannot commit for an active group.
        assert!(c.check_commit("g", Committer::Outside, &[]).is_err());
        c.leave("g", &a);
        // B takes A's two over.
        let owned = settle(&c, std::slice::from_ref(&b), 4);
        assert_eq!(owned[0].len(), 2);
        let (state, _, _, members) = c.describe("g").unwrap();
        assert_eq!(state, GroupState::Stable);
        assert_eq!(members[0].assignment.len(), 4);
        assert!(sync(&c, &a, 4).lost);
    }

    #[test]
    fn a_member_that_stops_polling_is_removed() {
        // The broker's clock decides, not the wall clock: nothing sleeps.
        let clock = Arc::new(crate::ManualClock::new(1_000));
        let c = Coordinator::new(clock.clone());
        let join = || join(&c, Arc::new(RangeAssignor), 2);
        let a = join();
        settle(&c, std::slice::from_ref(&a), 2);
        let b = join();
        // A never polls again. Until its interval has passed, B waits.
        clock.advance(60_000);
        let plan = sync(&c, &b, 2);
        assert!(!plan.lost && plan.assigned.is_empty(), "{plan:?}");
        assert_eq!(c.describe("g").unwrap().3.len(), 2);
        // One millisecond later B's wait removes A, then B gets everything.
        clock.advance(1);
        let owned = settle(&c, std::slice::from_ref(&b), 2);
        assert_eq!(owned[0].len(), 2);
        assert!(sync(&c, &a, 2).lost);
    }

    #[test]
    fn commits_are_fenced_by_member_and_generation() {
        let clock = Arc::new(crate::ManualClock::new(0));
        let c = Coordinator::new(clock.clone());
        let join = || join(&c, Arc::new(CooperativeStickyAssignor), 2);
        let appended = std::cell::Cell::new(0);
        let commit = |committer: Committer<'_>, offset: u64| {
            let tp = TopicPartition::new("t", 0);
            let commits = Commits::These(vec![(tp, Some(OffsetAndMetadata::new(offset)))]);
            c.commit("g", committer, commits, |chunk| {
                appended.set(appended.get() + chunk.len());
                Ok(())
            })
        };
        let committed = || {
            c.committed("g", &TopicPartition::new("t", 0))
                .map(|o| o.offset)
        };
        let a = join();
        settle(&c, std::slice::from_ref(&a), 2);
        let generation = sync(&c, &a, 2).generation;
        assert!(generation > 0);
        let member_a = Committer::Member { id: &a, generation };
        commit(member_a, 5).unwrap();
        assert_eq!((committed(), appended.get()), (Some(5), 1));
        // A generation other than the one the member synced at.
        for wrong in [generation - 1, generation + 1] {
            let stale = Committer::Member {
                id: &a,
                generation: wrong,
            };
            match commit(stale, 6) {
                Err(Error::Fenced { reason, .. }) => {
                    assert!(reason.contains("illegal generation"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // B joins and waits for a partition; A stops polling and is removed.
        let b = join();
        clock.advance(60_001);
        settle(&c, std::slice::from_ref(&b), 2);
        match commit(member_a, 7) {
            Err(Error::Fenced { member, reason, .. }) => {
                assert_eq!(member, a);
                assert!(reason.contains("removed"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // While the group has members, neither the admin nor outsiders.
        assert!(matches!(
            commit(Committer::Admin, 8),
            Err(Error::GroupNotEmpty { .. })
        ));
        assert!(matches!(
            commit(Committer::Outside, 8),
            Err(Error::CommitFailed { .. })
        ));
        // Nothing refused was stored.
        assert_eq!((committed(), appended.get()), (Some(5), 1));
        // Once the group is empty, a manually assigned consumer and the
        // admin commit again; the removed member still cannot.
        c.leave("g", &b);
        commit(Committer::Outside, 9).unwrap();
        commit(Committer::Admin, 10).unwrap();
        assert!(matches!(commit(member_a, 11), Err(Error::Fenced { .. })));
        assert_eq!((committed(), appended.get()), (Some(10), 3));
        let delete =
            |c: &Coordinator| c.commit("g", Committer::Admin, Commits::DeleteAll, |_| Ok(()));
        delete(&c).unwrap();
        assert_eq!(committed(), None);
        assert!(matches!(delete(&c), Err(Error::UnknownGroup { .. })));
    }
}
