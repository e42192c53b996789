//! The SQLite connectors under the Connect runtime: a sink's table equals
//! the latest value of each key of its topic (tombstones delete), across
//! restarts, for random inputs; a source's rows each arrive once, also the
//! rows added while it was stopped.

use crate::common::{consume_all, tempdir, wait_until};
use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig, SourceGuarantee};
use embedlog::{Broker, ConsumerConfig, IsolationLevel, ProducerConfig, Record, TopicConfig};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn runtime(broker: &Broker, guarantee: SourceGuarantee) -> Connect {
    Connect::with_config(
        broker,
        ConnectConfig::default()
            .offset_flush_interval(Duration::from_millis(10))
            .source_guarantee(guarantee),
    )
    .unwrap()
}

fn sink_config(db: &Path) -> ConnectorConfig {
    ConnectorConfig::new("to-sqlite", "SqliteSink")
        .set("topics", "accounts")
        .set("connection.url", format!("jdbc:sqlite:{}", db.display()))
}

/// Waits until the sink's group has committed the ends of `accounts`.
fn wait_committed(broker: &Broker) {
    let group = broker.consumer(ConsumerConfig::default().group("connect-to-sqlite"));
    wait_until("the sink commits the topic's end", || {
        (0..2).all(|p| {
            let end = broker.partition("accounts", p).unwrap().end_offset();
            let at = group
                .committed(("accounts", p))
                .unwrap()
                .map_or(0, |o| o.offset);
            at == end
        })
    });
}

/// The table as key → (balance, owner).
fn table(db: &Path) -> BTreeMap<String, (i64, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'accounts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if !exists {
        return BTreeMap::new();
    }
    let mut stmt = conn
        .prepare("SELECT id, balance, owner FROM accounts")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A change to an account: a new balance, or its deletion.
#[derive(Clone, Debug)]
enum Change {
    Set(u8, i64),
    Delete(u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0u8..8, -1000i64..1000).prop_map(|(k, b)| Change::Set(k, b)),
        1 => (0u8..8).prop_map(Change::Delete),
    ]
}

fn produce(broker: &Broker, changes: &[Change], model: &mut BTreeMap<String, (i64, String)>) {
    let producer = broker.producer(ProducerConfig::default());
    for c in changes {
        match c {
            Change::Set(k, b) => {
                let key = format!("acct-{k}");
                let owner = format!("owner \"{k}\"");
                let value = serde_json::json!({"balance": b, "owner": owner}).to_string();
                producer
                    .send("accounts", Record::new(value).key(key.clone()))
                    .unwrap();
                model.insert(key, (*b, owner));
            }
            Change::Delete(k) => {
                let key = format!("acct-{k}");
                producer
                    .send("accounts", Record::tombstone(key.clone()))
                    .unwrap();
                model.remove(&key);
            }
        }
    }
    producer.flush().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn a_sqlite_sink_table_is_the_latest_value_of_each_key(
        first in proptest::collection::vec(change(), 0..60),
        second in proptest::collection::vec(change(), 0..60),
    ) {
        let dir = tempdir();
        let db = dir.path().join("accounts.db");
        let broker = Broker::open(dir.path().join("data")).unwrap();
        broker
            .admin()
            .create_topic("accounts", TopicConfig::default().partitions(2))
            .unwrap();
        let mut model = BTreeMap::new();
        produce(&broker, &first, &mut model);
        let connect = runtime(&broker, SourceGuarantee::AtLeastOnce);
        connect.start(sink_config(&db)).unwrap();
        wait_committed(&broker);
        prop_assert_eq!(table(&db), model.clone());
        // Stopped, changed meanwhile, restarted: it goes on from its
        // commit.
        connect.close();
        produce(&broker, &second, &mut model);
        let connect = runtime(&broker, SourceGuarantee::AtLeastOnce);
        connect.start(sink_config(&db)).unwrap();
        wait_committed(&broker);
        prop_assert_eq!(table(&db), model);
        connect.close();
        broker.close().unwrap();
    }
}

fn insert_rows(db: &Path, from: i64, to: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, n INTEGER NOT NULL)",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for n in from..to {
        tx.execute(
            "INSERT INTO events (kind, n) VALUES (?1, ?2)",
            rusqlite::params![format!("kind-{}", n % 3), n],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The `n` field of each committed record of `events`, in order.
fn events(broker: &Broker) -> Vec<i64> {
    consume_all(broker, "events", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value().unwrap()).unwrap();
            v["n"].as_i64().unwrap()
        })
        .collect()
}

#[test]
fn a_sqlite_source_sends_every_row_once_including_rows_added_while_stopped() {
    let dir = tempdir();
    let db = dir.path().join("events.db");
    insert_rows(&db, 0, 500);
    let broker = Broker::open(dir.path().join("data")).unwrap();
    let config = ConnectorConfig::new("from-sqlite", "SqliteSource")
        .set("connection.url", db.display())
        .set("table", "events")
        .set("mode", "incrementing")
        .set("poll.interval.ms", 10);
    let connect = runtime(&broker, SourceGuarantee::ExactlyOnce);
    connect.start(config.clone()).unwrap();
    wait_until("the first rows arrive", || events(&broker).len() == 500);
    connect.close();
    insert_rows(&db, 500, 800);
    let connect = runtime(&broker, SourceGuarantee::ExactlyOnce);
    connect.start(config).unwrap();
    insert_rows(&db, 800, 1000);
    wait_until("every row arrives", || events(&broker).len() >= 1000);
    connect.close();
    assert_eq!(events(&broker), (0..1000).collect::<Vec<_>>());
    broker.close().unwrap();
}
