//! `topics create|list|describe|alter|delete` and `delete-records` change
//! and report the directory as the library sees it.

use crate::support::{run, run_bare};
use embedlog::{CleanupPolicy, Record};

#[test]
fn create_list_describe_alter_delete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(
        d,
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    )
    .ok();
    run(
        d,
        &[
            "topics",
            "create",
            "audit",
            "--config",
            "cleanup.policy=compact",
        ],
    )
    .ok();
    assert_eq!(
        run(d, &["topics", "list"]).ok().lines(),
        ["audit", "orders"]
    );
    let all = run(d, &["topics", "list", "--internal", "--json"])
        .ok()
        .json();
    assert_eq!(
        all,
        serde_json::json!([
            "__consumer_offsets",
            "__transaction_state",
            "audit",
            "orders"
        ])
    );

    // What the library sees.
    {
        let b = crate::support::open_broker(d);
        let c = b.topic("audit").unwrap().config();
        assert_eq!(c.get_cleanup_policy(), CleanupPolicy::Compact);
        let p = b.partition("orders", 2).unwrap();
        p.append(&[Record::new("a"), Record::new("b")]).unwrap();
        b.close().unwrap();
    }
    let desc = run(d, &["topics", "describe", "orders", "--json"])
        .ok()
        .json();
    let t = &desc[0];
    assert_eq!(t["name"], "orders");
    assert_eq!(t["partition_count"], 3);
    assert_eq!(t["records"], 2);
    assert_eq!(t["partitions"][2]["end_offset"], 2);
    assert_eq!(t["partitions"][0]["end_offset"], 0);
    assert_eq!(t["config"]["retention.ms"], "60000");
    let human = run(d, &["topics", "describe", "orders"]).ok().stdout;
    assert!(
        human.contains("Topic: orders\tPartitionCount: 3\tRecords: 2"),
        "{human}"
    );
    assert!(
        human.contains("Partition: 2\tStartOffset: 0\tEndOffset: 2"),
        "{human}"
    );

    run(
        d,
        &[
            "topics",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "retention.ms=-1",
        ],
    )
    .ok();
    let t = &run(d, &["topics", "describe", "orders", "--json"])
        .ok()
        .json()[0];
    assert_eq!(t["partition_count"], 5);
    assert_eq!(t["config"]["retention.ms"], "none");

    run(
        d,
        &[
            "delete-records",
            "orders",
            "--partition",
            "2",
            "--before",
            "1",
        ],
    )
    .ok();
    let t = &run(d, &["topics", "describe", "orders", "--json"])
        .ok()
        .json()[0];
    assert_eq!(t["partitions"][2]["start_offset"], 1);

    run(d, &["topics", "delete", "audit"]).ok();
    assert_eq!(run(d, &["topics", "list"]).ok().lines(), ["orders"]);
    run(d, &["topics", "delete", "audit", "--if-exists"]).ok();
    run(d, &["topics", "create", "orders", "--if-not-exists"]).ok();
}

#[test]
fn mistakes_are_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(d, &["topics", "create", "t"]).ok();
    let r = run(d, &["topics", "create", "t"]).code(1);
    assert!(r.stderr.contains("\"t\""), "{}", r.stderr);
    let r = run(
        d,
        &["topics", "create", "u", "--config", "retention.ms=soon"],
    )
    .code(1);
    assert!(
        r.stderr.contains("retention.ms=soon is not a number"),
        "{}",
        r.stderr
    );
    let r = run(d, &["topics", "create", "u", "--config", "retention=1"]).code(1);
    assert!(
        r.stderr.contains("unknown setting \"retention\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("retention.ms"),
        "the known names are listed: {}",
        r.stderr
    );
    let r = run(d, &["topics", "alter", "t"]).code(1);
    assert!(r.stderr.contains("nothing to alter"), "{}", r.stderr);
    let r = run(d, &["topics", "describe", "nope"]).code(1);
    assert!(r.stderr.contains("unknown topic \"nope\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: `embedlog topics list`"),
        "{}",
        r.stderr
    );
    let r = run(d, &["topics", "create", "bad name"]).code(1);
    assert!(r.stderr.contains("invalid topic name"), "{}", r.stderr);
    // Not a data directory: said so, nothing created.
    let empty = tempfile::tempdir().unwrap();
    let r = run(empty.path(), &["topics", "list"]).code(1);
    assert!(
        r.stderr.contains("not an embedlog data directory"),
        "{}",
        r.stderr
    );
    assert!(!empty.path().join("topics").exists());
    // Usage errors are clap's (exit 2).
    run_bare(&["topics", "frobnicate"]).code(2);
    run_bare(&["--version"]).ok();
}

#[test]
fn writes_wait_for_the_lock_reads_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let owner = crate::support::open_broker(d);
    owner
        .admin()
        .create_topic("live", embedlog::TopicConfig::default())
        .unwrap();
    // Reads work while the owner (this process) holds the directory.
    assert_eq!(run(d, &["topics", "list"]).ok().lines(), ["live"]);
    // Changes are refused with a hint, and change nothing.
    let r = run(d, &["topics", "create", "other"]).code(1);
    assert!(
        r.stderr.contains("locked by another embedlog instance"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_eq!(owner.admin().list_topics().unwrap(), ["live"]);
    // A topic the owner creates now is seen by the next read.
    owner
        .admin()
        .create_topic("later", embedlog::TopicConfig::default())
        .unwrap();
    assert_eq!(run(d, &["topics", "list"]).ok().lines(), ["later", "live"]);
    owner.admin().delete_topic("live").unwrap();
    assert_eq!(run(d, &["topics", "list"]).ok().lines(), ["later"]);
    owner.close().unwrap();
}
