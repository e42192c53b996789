//! Typed values round-trip through the serde codecs (`json`, `postcard`
//! features): `send_value` encodes, `value_as` decodes, tombstones are
//! `None`, and garbage is a `Codec` error.
#![cfg(all(feature = "json", feature = "postcard"))]

use crate::common;
use embedlog::{
    ConsumerConfig, Error, Json, OffsetReset, Postcard, ProducerConfig, Record, TopicConfig,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<(String, u32)>,
    note: Option<String>,
}

#[test]
fn typed_values_round_trip() {
    let dir = common::tempdir();
    let broker = common::broker_with_topic(dir.path(), "orders", TopicConfig::default());
    let producer = broker.producer(ProducerConfig::default());
    let order = Order {
        id: 7,
        customer: "ada".into(),
        items: vec![("tea".into(), 2)],
        note: None,
    };
    producer.send_value("orders", "ada", &order).unwrap();
    producer
        .send_value_with::<Postcard, _>("orders", "ada", &order)
        .unwrap();
    producer.send("orders", Record::tombstone("ada")).unwrap();
    producer.send("orders", Record::new("not json")).unwrap();
    producer.flush().unwrap();

    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([("orders", 0)]).unwrap();
    let got = c.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].value_as::<Order>().unwrap(), Some(order.clone()));
    assert!(
        got[0].value().unwrap().starts_with(b"{\"id\":7"),
        "JSON on disk"
    );
    assert_eq!(
        got[1].value_with::<Postcard, Order>().unwrap(),
        Some(order.clone())
    );
    assert_eq!(got[2].value_as::<Order>().unwrap(), None, "tombstone");
    assert!(matches!(
        got[3].value_with::<Json, Order>(),
        Err(Error::Codec(_))
    ));
    let r = Record::with_value::<Json, _>(&order).unwrap();
    assert_eq!(r.value, got[0].value_bytes());
}

#[test]
fn typed_clients_name_their_codec_once() {
    let dir = common::tempdir();
    let broker = common::broker_with_topic(dir.path(), "orders", TopicConfig::default());
    let producer = broker
        .producer(ProducerConfig::default())
        .typed::<String, Order, Postcard>();
    let order = Order {
        id: 9,
        customer: "grace".into(),
        items: vec![("cake".into(), 1)],
        note: Some("birthday".into()),
    };
    producer.send("orders", &"grace".into(), &order).unwrap();
    producer.send_tombstone("orders", &"grace".into()).unwrap();
    producer.send_keyless("orders", &order).unwrap();
    // Bytes another producer wrote in another codec.
    (*producer)
        .send("orders", Record::new("not postcard").key("x"))
        .unwrap();
    producer.flush().unwrap();

    let mut c = broker
        .consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest))
        .typed::<String, Order, Postcard>();
    c.assign([("orders", 0)]).unwrap();
    let got = c.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 4, "a record that does not decode is not skipped");
    assert_eq!(got[0].key().unwrap().as_deref(), Some("grace"));
    assert_eq!(got[0].value().unwrap(), Some(order.clone()));
    assert_eq!(got[1].value().unwrap(), None, "tombstone");
    assert_eq!(got[2].key().unwrap(), None);
    assert_eq!(got[2].value().unwrap(), Some(order));
    assert!(matches!(got[3].value(), Err(Error::Codec(_))));
    assert_eq!(got[3].offset, 3);
    assert_eq!(c.position(("orders", 0)).unwrap(), 4);
}
