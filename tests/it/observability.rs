//! The library's numbers reach the application's `metrics` recorder: records
//! and bytes in and out per topic, append and fsync latencies, consumer lag
//! per group and partition, cleaner runs and retention deletions.
#![cfg(feature = "metrics")]

use crate::common;
use embedlog::{
    CleanupPolicy, ConsumerConfig, Durability, OffsetReset, ProducerConfig, Record, TopicConfig,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every metric as `name{label=value,...}` → its value (counters and
/// gauges as numbers, histograms as their sample count).
fn read(snapshot: metrics_util::debugging::Snapshot) -> BTreeMap<String, f64> {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let v = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            (name, v)
        })
        .collect()
}

#[test]
fn counters_gauges_and_histograms_reach_the_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A local recorder sees what this thread does: every call below runs
    // its appends, fsyncs, polls and compaction on this thread.
    metrics::with_local_recorder(&recorder, || {
        let dir = common::tempdir();
        let broker = embedlog::Broker::builder(dir.path())
            .cleaner(false)
            .open()
            .unwrap();
        broker
            .admin()
            .create_topic("orders", TopicConfig::default())
            .unwrap();
        let producer = broker.producer(ProducerConfig::default().linger(Duration::ZERO));
        for i in 0..10 {
            producer
                .send("orders", Record::new(format!("order {i}")).key("k"))
                .unwrap();
        }
        producer.flush().unwrap();
        let p = broker.partition("orders", 0).unwrap();
        p.append_with(&[Record::new("direct")], Durability::Sync)
            .unwrap();

        let mut c = broker.consumer(
            ConsumerConfig::default()
                .group("billing")
                .offset_reset(OffsetReset::Earliest)
                .max_poll_records(4),
        );
        c.subscribe(["orders"]).unwrap();
        let mut got = 0;
        while got < 4 {
            got += c.poll(Duration::from_secs(5)).unwrap().len();
        }

        broker
            .admin()
            .create_topic(
                "table",
                TopicConfig::default()
                    .cleanup_policy(CleanupPolicy::Compact)
                    .segment_bytes(1024),
            )
            .unwrap();
        let t = broker.partition("table", 0).unwrap();
        for i in 0..100 {
            t.append(&[Record::new(format!("v{i}")).key("same")])
                .unwrap();
        }
        t.roll().unwrap();
        broker.admin().compact_now("table").unwrap();
        broker.close().unwrap();
    });
    let m = read(snapshotter.snapshot());
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in {m:#?}"));
    assert_eq!(get("embedlog_records_in_total{topic=orders}"), 11.0);
    assert!(get("embedlog_bytes_in_total{topic=orders}") > 11.0 * 7.0);
    assert_eq!(get("embedlog_records_out_total{topic=orders}"), 4.0);
    assert_eq!(
        get("embedlog_bytes_out_total{topic=orders}"),
        4.0 * (1.0 + "order 0".len() as f64)
    );
    assert_eq!(
        get("embedlog_consumer_lag{group=billing,partition=0,topic=orders}"),
        7.0
    );
    assert!(
        get("embedlog_append_seconds{}") >= 111.0,
        "one sample per append"
    );
    assert!(get("embedlog_fsync_seconds{}") >= 1.0, "the sync append");
    assert!(get("embedlog_cleaner_runs_total{}") >= 1.0);
    assert!(get("embedlog_cleaner_records_removed_total{}") >= 90.0);
    assert_eq!(get("embedlog_records_in_total{topic=table}"), 100.0);
}
