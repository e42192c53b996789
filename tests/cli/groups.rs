//! `consume --group` commits what it printed; `groups describe` shows the
//! lag; `reset-offsets` plans by default and stores with `--execute`.

use crate::support::run;
use embedlog::{Record, TopicConfig};

#[test]
fn a_group_resumes_reports_lag_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    {
        let b = crate::support::open_broker(d);
        b.admin()
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            let recs: Vec<Record> = (0..10)
                .map(|i| Record::new(format!("p{p}-{i}")).timestamp(5_000 + i))
                .collect();
            b.partition("t", p).unwrap().append(&recs).unwrap();
        }
        b.close().unwrap();
    }
    let first = run(
        d,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "5",
        ],
    )
    .ok();
    assert_eq!(first.lines().len(), 5);
    // The next member of the group goes on where the first stopped.
    let rest = run(d, &["consume", "t", "--group", "g", "--from-beginning"]).ok();
    assert_eq!(rest.lines().len(), 15);
    let mut all: Vec<&str> = first.lines().into_iter().chain(rest.lines()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 20, "every record exactly once");

    assert_eq!(run(d, &["groups", "list"]).ok().lines(), ["g"]);
    let desc = run(d, &["groups", "describe", "g", "--json"]).ok().json();
    assert_eq!(desc["total_lag"], 0);
    assert_eq!(desc["offsets"][0]["committed"], 10);
    assert_eq!(desc["offsets"][1]["end_offset"], 10);

    // A dry run changes nothing.
    let plan = run(
        d,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--json",
        ],
    )
    .ok();
    assert_eq!(plan.json()[0]["new_offset"], 0);
    assert!(plan.stderr.contains("Dry run"), "{}", plan.stderr);
    let desc = run(d, &["groups", "describe", "g", "--json"]).ok().json();
    assert_eq!(desc["total_lag"], 0);
    // Each kind of target, executed.
    for (args, expected) in [
        (vec!["--to-offset", "4"], [4, 4]),
        (vec!["--shift-by", "-3"], [1, 1]),
        (vec!["--shift-by", "50"], [10, 10]),
        (vec!["--to-datetime", "5007"], [7, 7]),
        (vec!["--to-earliest"], [0, 0]),
        (vec!["--to-latest"], [10, 10]),
    ] {
        let mut cmd = vec!["groups", "reset-offsets", "g", "--all-topics", "--execute"];
        cmd.extend(&args);
        run(d, &cmd).ok();
        let desc = run(d, &["groups", "describe", "g", "--json"]).ok().json();
        let got: Vec<u64> = (0..2)
            .map(|i| desc["offsets"][i]["committed"].as_u64().unwrap())
            .collect();
        assert_eq!(got, expected, "{args:?}");
        let lag: u64 = expected.iter().map(|o| 10 - o).sum();
        assert_eq!(desc["total_lag"], lag, "{args:?}");
    }
    // One partition only; then the group reads from there.
    run(
        d,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t:1",
            "--to-offset",
            "8",
            "--execute",
        ],
    )
    .ok();
    let tail = run(d, &["consume", "t", "--group", "g"]).ok();
    assert_eq!(tail.lines(), ["p1-8", "p1-9"]);
    let human = run(d, &["groups", "describe", "g"]).ok().stdout;
    assert!(human.contains("LOG-END-OFFSET"), "{human}");

    run(d, &["groups", "delete", "g"]).ok();
    assert!(run(d, &["groups", "list"]).ok().stdout.is_empty());
    let r = run(d, &["groups", "describe", "g"]).code(1);
    assert!(r.stderr.contains("g"), "{}", r.stderr);
    run(d, &["groups", "reset-offsets", "g", "--to-earliest"]).code(2);
}

#[test]
fn describe_works_while_the_owner_runs_and_execute_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let owner = crate::support::open_broker(d);
    owner
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    owner
        .partition("t", 0)
        .unwrap()
        .append(&[Record::new("a"), Record::new("b"), Record::new("c")])
        .unwrap();
    owner
        .admin()
        .alter_group_offsets("g", [(embedlog::TopicPartition::new("t", 0), 1)])
        .unwrap();
    let desc = run(d, &["groups", "describe", "g", "--json"]).ok().json();
    assert_eq!(desc["offsets"][0]["committed"], 1);
    assert_eq!(desc["offsets"][0]["lag"], 2);
    let plan = run(
        d,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-latest",
            "--json",
        ],
    )
    .ok();
    assert_eq!(plan.json()[0]["new_offset"], 3);
    let r = run(
        d,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-latest",
            "--execute",
        ],
    )
    .code(1);
    assert!(r.stderr.contains("locked"), "{}", r.stderr);
    owner.close().unwrap();
}
