//! A read-only view of a directory another handle owns sees topics,
//! partitions, records and committed offsets as the owner changes them,
//! and changes nothing itself.

use embedlog::{
    Broker, Error, OffsetSpec, ProducerConfig, ReadLimit, Record, TopicConfig, TopicPartition,
};
use std::collections::BTreeMap;

fn values(p: &embedlog::ReadOnlyPartition, from: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let b = p.read(at, ReadLimit::bytes(256)).unwrap();
        if b.is_empty() {
            return out;
        }
        for batch in b.iter() {
            at = batch.unwrap().last_offset() + 1;
        }
        for r in b.records() {
            out.push(String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap());
        }
    }
}

fn snapshot(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn sees_the_owners_topics_and_records_as_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Broker::open(dir.path()).unwrap();
    let admin = owner.admin();
    admin
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).segment_bytes(1024),
        )
        .unwrap();
    let reader = Broker::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.list_topics().unwrap(), ["t"]);
    assert_eq!(
        reader.list_all_topics().unwrap(),
        ["__consumer_offsets", "__transaction_state", "t"]
    );
    let p0 = reader.partition("t", 0).unwrap();
    assert!(values(&p0, 0).is_empty());

    let producer = owner.producer(ProducerConfig::default());
    for i in 0..200 {
        producer
            .send_to("t", 0, Record::new(format!("v{i}")).timestamp(10_000 + i))
            .unwrap();
        if i % 20 == 19 {
            producer.flush().unwrap(); // batches of 20: several segments
        }
    }
    let all = values(&p0, 0);
    assert_eq!(all.len(), 200);
    assert_eq!(all[199], "v199");
    let d = reader.describe_topic("t").unwrap();
    let o = admin.describe_topic("t").unwrap();
    assert_eq!(d.partitions[0].end_offset, o.partitions[0].end_offset);
    assert_eq!(d.partitions[0].size_bytes, o.partitions[0].size_bytes);
    assert_eq!(d.partitions[0].segments, o.partitions[0].segments);
    assert!(d.partitions[0].segments > 1);
    assert_eq!(
        reader
            .list_offsets("t", 0, OffsetSpec::Timestamp(10_150))
            .unwrap(),
        Some(150)
    );

    // More partitions, a new topic, a deletion: the next look sees them.
    admin.add_partitions("t", 3).unwrap();
    assert_eq!(reader.describe_topic("t").unwrap().partitions.len(), 3);
    admin.create_topic("u", TopicConfig::default()).unwrap();
    assert_eq!(reader.list_topics().unwrap(), ["t", "u"]);
    admin.delete_topic("t").unwrap();
    assert_eq!(reader.list_topics().unwrap(), ["u"]);
    assert!(matches!(
        p0.read(0, ReadLimit::default()),
        Err(Error::UnknownTopic { .. })
    ));
    // A topic created again with the same name is a new one: the old
    // handle stays gone, a new one reads the new data.
    admin.create_topic("t", TopicConfig::default()).unwrap();
    owner
        .partition("t", 0)
        .unwrap()
        .append(&[Record::new("new")])
        .unwrap();
    assert!(matches!(
        p0.read(0, ReadLimit::default()),
        Err(Error::UnknownTopic { .. })
    ));
    assert_eq!(values(&reader.partition("t", 0).unwrap(), 0), ["new"]);
    assert!(matches!(
        reader.partition("t", 5),
        Err(Error::UnknownPartition { count: 1, .. })
    ));
    assert!(matches!(
        reader.partition("gone", 0),
        Err(Error::UnknownTopic { .. })
    ));
    owner.close().unwrap();
}

#[test]
fn reads_committed_offsets_and_lag_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Broker::open(dir.path()).unwrap();
    let admin = owner.admin();
    admin
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    for p in 0..2 {
        owner
            .partition("t", p)
            .unwrap()
            .append(&[Record::new("a"), Record::new("b"), Record::new("c")])
            .unwrap();
    }
    admin
        .alter_group_offsets(
            "g",
            [
                (TopicPartition::new("t", 0), 1),
                (TopicPartition::new("t", 1), 3),
            ],
        )
        .unwrap();
    admin
        .alter_group_offsets("h", [(TopicPartition::new("t", 0), 2)])
        .unwrap();
    admin.delete_group("h").unwrap();
    let before = snapshot(dir.path());

    let reader = Broker::open_read_only(dir.path()).unwrap();
    let all = reader.committed_offsets().unwrap();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["g"],
        "a deleted group is gone"
    );
    let g = reader.group_offsets("g").unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].committed.as_ref().unwrap().offset, 1);
    assert_eq!((g[0].end_offset, g[0].lag), (Some(3), Some(2)));
    assert_eq!((g[1].end_offset, g[1].lag), (Some(3), Some(0)));
    let mut owners = admin.describe_group("g").unwrap().offsets;
    for o in &mut owners {
        // Open transactions live in the owner's memory: only it knows.
        assert_eq!(o.last_stable_offset, o.end_offset);
        o.last_stable_offset = None;
    }
    assert_eq!(owners, g, "the owner reports the same");
    assert!(matches!(
        reader.group_offsets("h"),
        Err(Error::UnknownGroup { .. })
    ));
    for p in 0..2 {
        reader
            .partition("t", p)
            .unwrap()
            .read(0, ReadLimit::default())
            .unwrap();
    }
    reader.describe_topic("t").unwrap();
    assert_eq!(snapshot(dir.path()), before, "the reader wrote nothing");
    owner.close().unwrap();
}

#[test]
fn a_directory_that_is_not_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    match Broker::open_read_only(dir.path()) {
        Err(Error::Metadata { reason, .. }) => {
            assert!(reason.contains("not an embedlog data directory"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing created"
    );
}
