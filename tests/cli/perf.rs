//! `embedlog perf produce|consume` store and count exactly the records they
//! report, in Kafka's output shapes, and refuse bad arguments cleanly.

use crate::support::{Run, run};
use embedlog::{ConsumerConfig, ConsumerRecord, OffsetReset, partition_for_key};
use std::path::Path;
use std::time::{Duration, Instant};

/// Reads every record of `topic` back, after the child process exited.
fn read_back(dir: &Path, topic: &str) -> Vec<ConsumerRecord> {
    let broker = crate::support::open_broker(dir);
    let count = broker
        .topic(topic)
        .expect("the topic exists")
        .partition_count();
    let expected: u64 = (0..count)
        .map(|p| broker.partition(topic, p).unwrap().end_offset())
        .sum();
    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign((0..count).map(|p| (topic, p))).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (records.len() as u64) < expected && Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(100)).unwrap());
    }
    drop(consumer);
    broker.close().unwrap();
    records
}

/// The numbers of Kafka's final producer line, checking its words:
/// `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max
/// latency, P ms 50th, P ms 95th, P ms 99th, P ms 99.9th.`
fn parse_summary(line: &str) -> Vec<f64> {
    let words: Vec<&str> = line
        .split(|c: char| c == ',' || c == '(' || c == ')' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let shape = [
        "#",
        "records",
        "sent",
        "#",
        "records/sec",
        "#",
        "MB/sec",
        "#",
        "ms",
        "avg",
        "latency",
        "#",
        "ms",
        "max",
        "latency",
        "#",
        "ms",
        "50th",
        "#",
        "ms",
        "95th",
        "#",
        "ms",
        "99th",
        "#",
        "ms",
        "99.9th.",
    ];
    assert_eq!(words.len(), shape.len(), "{line:?}");
    let mut numbers = Vec::new();
    for (w, s) in words.iter().zip(shape) {
        if s == "#" {
            numbers.push(w.parse().unwrap_or_else(|_| panic!("{w:?} in {line:?}")));
        } else {
            assert_eq!(*w, s, "{line:?}");
        }
    }
    numbers
}

fn produce(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "perf",
        "produce",
        "t",
        "--num-records",
        "2000",
        "--record-size",
        "100",
    ];
    args.extend_from_slice(extra);
    run(dir, &args).ok()
}

#[test]
fn produce_reports_and_stores_every_record_at_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = produce(dir.path(), &[]);
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    let n = parse_summary(lines[0]);
    assert_eq!(n[0], 2000.0);
    let (avg, max, p50, p95, p99, p999) = (n[3], n[4], n[5], n[6], n[7], n[8]);
    assert!(
        p50 <= p95 && p95 <= p99 && p99 <= p999 && p999 <= max,
        "{n:?}"
    );
    assert!(avg <= max, "{n:?}");

    let records = read_back(dir.path(), "t");
    assert_eq!(records.len(), 2000);
    for r in &records {
        assert_eq!(r.value().map(|v| v.len()), Some(100));
        assert!(r.key().is_none());
    }
}

#[test]
fn keys_spread_over_partitions_as_murmur2_says() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &["--partitions", "4", "--key-count", "8"]);
    let records = read_back(dir.path(), "t");
    assert_eq!(records.len(), 2000);
    let mut per_key = std::collections::BTreeMap::new();
    let mut partitions = std::collections::BTreeSet::new();
    for r in &records {
        let key = r.key().expect("every record has a key");
        assert_eq!(r.partition, partition_for_key(key, 4));
        partitions.insert(r.partition);
        *per_key
            .entry(String::from_utf8(key.to_vec()).unwrap())
            .or_insert(0) += 1;
    }
    let keys: Vec<String> = (0..8).map(|i| format!("key-{i}")).collect();
    assert_eq!(per_key.keys().cloned().collect::<Vec<_>>(), keys);
    assert!(per_key.values().all(|&c| c == 250), "{per_key:?}");
    assert!(partitions.len() > 1, "{partitions:?}");
}

#[test]
fn produce_json_has_the_summary_fields() {
    let dir = tempfile::tempdir().unwrap();
    let j = produce(dir.path(), &["--json"]).json();
    assert_eq!(j["records"], 2000);
    assert_eq!(j["bytes"], 200_000);
    for f in ["seconds", "records_per_sec", "mb_per_sec"] {
        assert!(j[f].as_f64().is_some_and(|v| v > 0.0), "{f}: {j}");
    }
    for f in ["avg", "max", "p50", "p95", "p99", "p999"] {
        assert!(j["latency_ms"][f].as_f64().is_some(), "{f}: {j}");
    }
}

#[test]
fn a_throttled_run_still_sends_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = produce(dir.path(), &["--throughput", "20000", "--linger-ms", "0"]);
    assert_eq!(parse_summary(out.lines()[0])[0], 2000.0);
    assert_eq!(read_back(dir.path(), "t").len(), 2000);
}

#[test]
fn sync_and_an_existing_topic_are_used_as_given() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &["--partitions", "2"]);
    let out = produce(dir.path(), &["--partitions", "3", "--sync"]);
    assert!(
        out.stderr.contains("existing topic t with 2 partitions") && out.stderr.contains("ignored"),
        "{out:#?}"
    );
    assert_eq!(read_back(dir.path(), "t").len(), 4000);
}

/// The consumer-perf value line's fields (after the header line).
fn consume_line(out: &Run) -> Vec<String> {
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert_eq!(
        lines[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec"
    );
    let fields: Vec<String> = lines[1].split(", ").map(str::to_string).collect();
    assert_eq!(fields.len(), 6, "{out:#?}");
    fields
}

#[test]
fn consume_counts_the_records_and_their_key_and_value_bytes() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &["--partitions", "3", "--key-count", "10"]);
    // 2000 values of 100 bytes and keys key-0..key-9 of 5 bytes.
    let bytes = 2000 * 105;
    for extra in [&[][..], &["--batches"]] {
        let mut args = vec!["perf", "consume", "t"];
        args.extend_from_slice(extra);
        let f = consume_line(&run(dir.path(), &args).ok());
        assert_eq!(f[4], "2000");
        assert_eq!(f[2], format!("{:.4}", bytes as f64 / (1024.0 * 1024.0)));
        assert!(f[0].ends_with('Z') && f[1].ends_with('Z'), "{f:?}");
    }
    let j = run(dir.path(), &["perf", "consume", "t", "--json"])
        .ok()
        .json();
    assert_eq!(j["records"], 2000);
    assert_eq!(j["bytes"], bytes);
    assert_eq!(j["timed_out"], false);
    assert!(j["mb"].as_f64().unwrap() * 1024.0 * 1024.0 - bytes as f64 <= 1e-6);
}

#[test]
fn consume_stops_at_num_records_and_a_group_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &[]);
    let limited = ["perf", "consume", "t", "--num-records", "500", "--json"];
    assert_eq!(run(dir.path(), &limited).ok().json()["records"], 500);

    let group = ["perf", "consume", "t", "--group", "g", "--json"];
    assert_eq!(run(dir.path(), &group).ok().json()["records"], 2000);
    assert_eq!(run(dir.path(), &group).ok().json()["records"], 0);
}

#[test]
fn consume_gives_up_after_the_timeout_with_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &[]);
    let args = [
        "perf",
        "consume",
        "t",
        "--num-records",
        "5000",
        "--timeout-ms",
        "200",
        "--json",
    ];
    let out = run(dir.path(), &args).ok();
    assert_eq!(out.json()["records"], 2000);
    assert_eq!(out.json()["timed_out"], true);
    assert!(out.stderr.contains("WARNING"), "{out:#?}");
}

#[test]
fn detailed_stats_end_with_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &[]);
    let out = run(
        dir.path(),
        &["perf", "consume", "t", "--show-detailed-stats"],
    )
    .ok();
    let lines = out.lines();
    assert!(
        lines[0].starts_with("time, threadId, data.consumed.in.MB"),
        "{out:#?}"
    );
    let last: Vec<&str> = lines.last().unwrap().split(", ").collect();
    assert_eq!(last.len(), 6, "{out:#?}");
    assert_eq!(last[4], "2000");
}

#[test]
fn bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["perf", "produce", "t"];
    for (extra, what) in [
        (
            &["--num-records", "10", "--record-size", "0"][..],
            "--record-size",
        ),
        (
            &["--num-records", "0", "--record-size", "10"],
            "--num-records",
        ),
        (
            &[
                "--num-records",
                "10",
                "--record-size",
                "10",
                "--throughput",
                "0",
            ],
            "--throughput",
        ),
        (&["--num-records", "10"], "--record-size"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = run(dir.path(), &args).code(2);
        assert!(out.stderr.contains(what), "{out:#?}");
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
    }
    let too_big = [
        "perf",
        "produce",
        "t",
        "--num-records",
        "1",
        "--record-size",
        "2000000",
    ];
    let out = run(dir.path(), &too_big).code(1);
    assert!(
        out.stderr.contains("max.message.bytes") && out.stderr.contains("hint:"),
        "{out:#?}"
    );

    let out = run(dir.path(), &["perf", "consume", "nope"]).code(1);
    assert!(
        out.stderr.contains("nope") && out.stderr.contains("hint:"),
        "{out:#?}"
    );
    let missing = dir.path().join("missing");
    let out = run(&missing, &["perf", "consume", "t"]).code(1);
    assert!(
        out.stderr.contains("not an embedlog data directory"),
        "{out:#?}"
    );
}

#[test]
fn a_directory_another_process_owns_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    produce(dir.path(), &[]);
    let owner = crate::support::open_broker(dir.path());
    for args in [
        &[
            "perf",
            "produce",
            "t",
            "--num-records",
            "10",
            "--record-size",
            "10",
        ][..],
        &["perf", "consume", "t"],
    ] {
        let out = run(dir.path(), args).code(1);
        assert!(out.stderr.contains("hint: another process"), "{out:#?}");
    }
    owner.close().unwrap();
}
