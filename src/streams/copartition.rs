//! Co-partitioning: the inputs of a join must have equal partition counts
//! (a key's records of both sides must reach the same task), and the
//! partition count of each repartition topic follows from it.

use super::topology::{InternalKind, NodeKind, Topology};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Joins whose source topics overlap, with all their topics: they must all
/// have one partition count.
struct Group {
    topics: BTreeSet<String>,
    joins: Vec<String>,
}

/// Merges the joins' topic sets that share a topic (a stream joined with
/// two tables ties all three together).
fn merge_groups(copartition: &[(BTreeSet<String>, String)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (topics, join) in copartition {
        let mut merged = Group {
            topics: topics.clone(),
            joins: Vec::new(),
        };
        let mut i = 0;
        while i < groups.len() {
            if groups[i].topics.is_disjoint(&merged.topics) {
                i += 1;
            } else {
                let g = groups.remove(i);
                merged.topics.extend(g.topics);
                merged.joins.extend(g.joins);
            }
        }
        merged.joins.push(join.clone());
        groups.push(merged);
    }
    groups
}

/// The partition counts being worked out.
struct Counts<'a, F> {
    topology: &'a Topology,
    application_id: &'a str,
    partitions: F,
    groups: Vec<Group>,
    group_of: HashMap<String, usize>,
    known: HashMap<String, u32>,
    /// Topics and groups being decided (a cycle yields "unknown").
    visiting: BTreeSet<String>,
}

impl<F: Fn(&str) -> Result<u32>> Counts<'_, F> {
    fn fixed(&self, topic: &str) -> Option<u32> {
        match self.topology.internal.get(topic) {
            Some(InternalKind::Repartition { partitions }) => *partitions,
            _ => None,
        }
    }

    fn is_repartition(&self, topic: &str) -> bool {
        matches!(
            self.topology.internal.get(topic),
            Some(InternalKind::Repartition { .. })
        )
    }

    /// The partition count of `topic`, if it can be known.
    fn count(&mut self, topic: &str) -> Result<Option<u32>> {
        if let Some(&n) = self.known.get(topic) {
            return Ok(Some(n));
        }
        let n = if !self.is_repartition(topic) {
            Some((self.partitions)(topic)?)
        } else if let Some(n) = self.fixed(topic) {
            Some(n)
        } else if let Some(&g) = self.group_of.get(topic) {
            self.decide(g)?
        } else {
            self.natural(topic)?
        };
        if let Some(n) = n {
            self.known.insert(topic.to_owned(), n);
        }
        Ok(n)
    }

    /// A repartition topic's count when nothing fixes it: the largest of
    /// the topics feeding the part of the topology that writes to it (as
    /// Kafka's).
    fn natural(&mut self, topic: &str) -> Result<Option<u32>> {
        if !self.visiting.insert(topic.to_owned()) {
            return Ok(None);
        }
        let nodes = &self.topology.nodes;
        let mut upstream = BTreeSet::new();
        for (id, n) in nodes.iter().enumerate() {
            if matches!(&n.kind, NodeKind::Sink { topic: t } if t == topic) {
                upstream.extend(super::topology::upstream_topics(nodes, id));
            }
        }
        let mut best = None;
        for u in upstream {
            if let Some(c) = self.count(&u)? {
                best = Some(best.map_or(c, |b: u32| b.max(c)));
            }
        }
        self.visiting.remove(topic);
        Ok(best)
    }

    /// The one count of group `g`'s topics: that of its repartition topics
    /// fixed by `Repartitioned::partitions`, else that of its other topics
    /// (which must agree), else the largest natural count of its
    /// repartition topics. Repartition topics without a fixed count take
    /// it.
    fn decide(&mut self, g: usize) -> Result<Option<u32>> {
        let marker = format!("\u{0}group {g}");
        if !self.visiting.insert(marker.clone()) {
            return Ok(None);
        }
        let topics: Vec<String> = self.groups[g].topics.iter().cloned().collect();
        let mut fixed = Vec::new();
        let mut others = Vec::new();
        let mut free = Vec::new();
        for t in topics {
            if let Some(n) = self.fixed(&t) {
                fixed.push((t, n));
            } else if self.is_repartition(&t) {
                free.push(t);
            } else if let Some(n) = self.count(&t)? {
                others.push((t, n));
            }
        }
        let n = if let Some(&(_, n)) = fixed.first() {
            if fixed.iter().chain(&others).any(|(_, c)| *c != n) {
                return Err(self.mismatch(g, &fixed, &others));
            }
            Some(n)
        } else if let Some(&(_, n)) = others.first() {
            if others.iter().any(|(_, c)| *c != n) {
                return Err(self.mismatch(g, &fixed, &others));
            }
            Some(n)
        } else {
            let mut best = None;
            for t in &free {
                if let Some(c) = self.natural(t)? {
                    best = Some(best.map_or(c, |b: u32| b.max(c)));
                }
            }
            best
        };
        if let Some(n) = n {
            for t in free {
                self.known.insert(t, n);
            }
        }
        self.visiting.remove(&marker);
        Ok(n)
    }

    fn mismatch(&self, g: usize, fixed: &[(String, u32)], others: &[(String, u32)]) -> Error {
        let group = &self.groups[g];
        let name = |t: &str| self.topology.resolve(self.application_id, t);
        let counts: Vec<String> =
            others
                .iter()
                .map(|(t, n)| format!("{} has {n}", name(t)))
                .chain(fixed.iter().map(|(t, n)| {
                    format!("{} has {n} (set with Repartitioned::partitions)", name(t))
                }))
                .collect();
        let joins = if group.joins.len() == 1 {
            format!("join {}", group.joins[0])
        } else {
            format!("joins {}", group.joins.join(", "))
        };
        Error::Topology(format!(
            "application {}: the inputs of {joins} are not co-partitioned: {}. A join needs the same \
             number of partitions on both sides (a key's records of both must reach the same task): \
             create the topics with equal partition counts, or repartition one side before the join \
             with repartition_with(Repartitioned::partitions(n)), n being the other side's count",
            self.application_id,
            counts.join(", ")
        ))
    }
}

impl Topology {
    /// Checks that the inputs of every join (the source topics feeding its
    /// two sides, as the builder recorded
    /// them) have equal partition counts, and decides the partition
    /// count of every repartition topic: the count `Repartitioned` fixed,
    /// else the count of the other topics joined with it, else the largest
    /// count of the topics it is written from (as Kafka's).
    ///
    /// `partitions` gives the count of a topic that is not internal (the
    /// user's topics; called once per topic). Returns each repartition
    /// topic, by its full name (`<application id>-<name>`), with the count
    /// to create it with.
    ///
    /// # Errors
    /// [`Error::Topology`] naming the join, its topics and their counts,
    /// and what to do, if a join's inputs differ; what `partitions`
    /// returns.
    pub(crate) fn check_copartitioning(
        &self,
        application_id: &str,
        partitions: impl Fn(&str) -> Result<u32>,
    ) -> Result<BTreeMap<String, u32>> {
        let groups = merge_groups(&self.copartition);
        let mut group_of = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            for t in &g.topics {
                group_of.insert(t.clone(), i);
            }
        }
        let mut counts = Counts {
            topology: self,
            application_id,
            partitions,
            groups,
            group_of,
            known: HashMap::new(),
            visiting: BTreeSet::new(),
        };
        for g in 0..counts.groups.len() {
            counts.decide(g)?;
        }
        let mut out = BTreeMap::new();
        for topic in self.internal.keys() {
            if !counts.is_repartition(topic) {
                continue;
            }
            let n = counts.count(topic)?.ok_or_else(|| {
                Error::Topology(format!(
                    "application {application_id}: cannot tell how many partitions repartition topic {} needs: \
                     nothing it is written from has a known count (give it one with Repartitioned::partitions)",
                    self.resolve(application_id, topic)
                ))
            })?;
            out.insert(self.resolve(application_id, topic), n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::streams::{
        Consumed, JoinWindows, Materialized, Repartitioned, Serdes, StreamsBuilder, Topology,
    };
    use crate::{Error, Result};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn s() -> Consumed<String, String> {
        Consumed::with(Serdes::string(), Serdes::string())
    }

    /// Checks `topology` with these counts of the user topics, counting
    /// the calls per topic.
    fn check(topology: &Topology, counts: &[(&str, u32)]) -> Result<BTreeMap<String, u32>> {
        let calls = RefCell::new(BTreeMap::<String, u32>::new());
        let r = topology.check_copartitioning("app", |t| {
            *calls.borrow_mut().entry(t.to_owned()).or_default() += 1;
            counts
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, n)| *n)
                .ok_or_else(|| Error::UnknownTopic { name: t.to_owned() })
        });
        assert!(calls.borrow().values().all(|&n| n == 1), "{calls:?}");
        r
    }

    fn topology_error(r: Result<BTreeMap<String, u32>>) -> String {
        match r {
            Err(Error::Topology(m)) => m,
            other => panic!("expected a topology error, got {other:?}"),
        }
    }

    #[test]
    fn stream_table_join_needs_equal_counts() {
        let b = StreamsBuilder::new();
        let t = b.table("b", s(), Materialized::default()).unwrap();
        b.stream("a", s())
            .join(&t, |x, y| format!("{x}{y}"))
            .to("out");
        let topology = b.build().unwrap();
        assert!(check(&topology, &[("a", 3), ("b", 3)]).unwrap().is_empty());
        let m = topology_error(check(&topology, &[("a", 3), ("b", 4)]));
        for needle in [
            "application app",
            "join KSTREAM-JOIN-",
            "a has 3",
            "b has 4",
            "repartition_with(Repartitioned::partitions(n))",
        ] {
            assert!(m.contains(needle), "{needle:?} not in {m}");
        }
        // What the callback reports goes through.
        assert!(matches!(
            check(&topology, &[("a", 3)]),
            Err(Error::UnknownTopic { .. })
        ));
    }

    #[test]
    fn repartition_topics_take_the_count_of_what_they_join() {
        let b = StreamsBuilder::new();
        let t = b.table("b", s(), Materialized::default()).unwrap();
        b.stream("a", s())
            .select_key(|_, v| v.clone())
            .join(&t, |x, y| format!("{x}{y}"))
            .to("out");
        let topology = b.build().unwrap();
        let counts = check(&topology, &[("a", 2), ("b", 5)]).unwrap();
        assert_eq!(counts.len(), 1, "{counts:?}");
        let (topic, n) = counts.iter().next().unwrap();
        assert!(
            topic.starts_with("app-") && topic.ends_with("-repartition"),
            "{topic}"
        );
        assert_eq!(*n, 5);
    }

    #[test]
    fn a_fixed_repartition_count_must_match_the_other_side() {
        let build = || {
            let b = StreamsBuilder::new();
            let t = b.table("b", s(), Materialized::default()).unwrap();
            b.stream("a", s())
                .repartition_with(Repartitioned::default().named("fix").partitions(4))
                .join(&t, |x, y| format!("{x}{y}"))
                .to("out");
            b.build().unwrap()
        };
        let counts = check(&build(), &[("a", 2), ("b", 4)]).unwrap();
        assert_eq!(counts["app-fix-repartition"], 4);
        let m = topology_error(check(&build(), &[("a", 2), ("b", 3)]));
        assert!(m.contains("b has 3"), "{m}");
        assert!(
            m.contains("app-fix-repartition has 4 (set with Repartitioned::partitions)"),
            "{m}"
        );
    }

    #[test]
    fn rekeyed_sides_take_the_largest_count_feeding_them() {
        let b = StreamsBuilder::new();
        let left = b.stream("a", s()).select_key(|_, v| v.clone());
        let right = b.stream("c", s()).select_key(|_, v| v.clone());
        left.join_stream(
            &right,
            |x, y| format!("{x}{y}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(1)),
        )
        .to("out");
        // A repartition topic no join reads: as many as its input.
        b.stream("d", s()).group_by(|_, v| v.clone()).count();
        let topology = b.build().unwrap();
        let counts = check(&topology, &[("a", 2), ("c", 6), ("d", 3)]).unwrap();
        assert_eq!(counts.len(), 3, "{counts:?}");
        let mut values: Vec<u32> = counts.values().copied().collect();
        values.sort_unstable();
        assert_eq!(values, vec![3, 6, 6]);
    }

    #[test]
    fn joins_sharing_a_topic_are_checked_together() {
        let b = StreamsBuilder::new();
        let t1 = b.table("t1", s(), Materialized::default()).unwrap();
        let t2 = b.table("t2", s(), Materialized::default()).unwrap();
        let st = b.stream("s", s());
        st.join(&t1, |x, y| format!("{x}{y}")).to("o1");
        st.left_join(&t2, |x, _| x.clone()).to("o2");
        let topology = b.build().unwrap();
        check(&topology, &[("s", 2), ("t1", 2), ("t2", 2)]).unwrap();
        let m = topology_error(check(&topology, &[("s", 2), ("t1", 2), ("t2", 3)]));
        assert!(m.contains("joins KSTREAM-JOIN-"), "{m}");
        assert!(m.contains("KSTREAM-LEFTJOIN-"), "{m}");
        assert!(m.contains("t2 has 3"), "{m}");
    }

    #[test]
    fn table_table_joins_are_checked_and_global_joins_are_not() {
        let b = StreamsBuilder::new();
        let l = b.table("l", s(), Materialized::default()).unwrap();
        let r = b.table("r", s(), Materialized::default()).unwrap();
        l.outer_join(&r, |x, y| format!("{x:?}{y:?}"));
        let g = b.global_table("g", s(), None).unwrap();
        b.stream("x", s())
            .join_global(&g, |k, _| k.clone(), |a, b| format!("{a}{b}"))
            .to("out");
        let topology = b.build().unwrap();
        check(&topology, &[("l", 1), ("r", 1), ("x", 7)]).unwrap();
        let m = topology_error(check(&topology, &[("l", 1), ("r", 2), ("x", 7)]));
        assert!(m.contains("join KTABLE-OUTERJOIN-"), "{m}");
    }
}
