//! [`RoundRobinAssignor`].

use super::{Assignor, RebalanceProtocol, Subscription, finish, normalize, subscribed_topics};
use crate::catalog::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's round-robin assignor: all partitions, sorted by topic then
/// partition, are dealt in turn to the members sorted by id, skipping members
/// not subscribed to the partition's topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, u32>,
        members: &[Subscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let members = normalize(partitions, members);
        let n = members.len();
        let mut sets: Vec<BTreeSet<TopicPartition>> =
            members.iter().map(|_| BTreeSet::new()).collect();
        // Index of the member the circular iterator points at.
        let mut cursor = 0usize;
        for (topic, count, name) in subscribed_topics(partitions, &members) {
            for p in 0..count {
                let next = (0..n)
                    .map(|k| (cursor + k) % n)
                    .find(|&i| members.get(i).is_some_and(|m| m.subscribes(topic)));
                // `subscribed_topics` only yields topics with a subscriber.
                let Some(i) = next else { break };
                if let Some(set) = sets.get_mut(i) {
                    set.insert(TopicPartition {
                        topic: name.clone(),
                        partition: p,
                    });
                }
                cursor = (i + 1) % n;
            }
        }
        finish(&members, sets)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{same_subs, sub, topic_map, tp};
    use super::*;

    #[test]
    fn roundrobin_kafka_layouts() {
        let parts = topic_map(2, 3);
        let asg = RoundRobinAssignor.assign(&parts, &same_subs(2, &parts));
        assert_eq!(asg["c0"], vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(asg["c1"], vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

        // Kafka's documented example with differing subscriptions.
        let parts: BTreeMap<String, u32> = [
            ("t0".to_owned(), 1),
            ("t1".to_owned(), 2),
            ("t2".to_owned(), 3),
        ]
        .into();
        let subs = vec![
            sub("C0", &["t0"], &[]),
            sub("C1", &["t0", "t1"], &[]),
            sub("C2", &["t0", "t1", "t2"], &[]),
        ];
        let asg = RoundRobinAssignor.assign(&parts, &subs);
        assert_eq!(asg["C0"], vec![tp("t0", 0)]);
        assert_eq!(asg["C1"], vec![tp("t1", 0)]);
        assert_eq!(
            asg["C2"],
            vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
        );
    }
}
