//! `produce` stores lines as records (keys, partitions, headers) and
//! `consume` prints them back from wherever it is asked to start.

use crate::support::{run, run_with_stdin};
use embedlog::{ReadLimit, Record, TopicConfig};
use std::path::Path;

fn topic(d: &Path, name: &str, partitions: u32) {
    let b = crate::support::open_broker(d);
    b.admin()
        .create_topic(name, TopicConfig::default().partitions(partitions))
        .unwrap();
    b.close().unwrap();
}

#[test]
fn lines_round_trip_with_keys_partitions_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    topic(d, "t", 4);
    let input: String = (0..100).map(|i| format!("key-{}\t{i}\n", i % 7)).collect();
    let r = run_with_stdin(
        d,
        &[
            "produce",
            "t",
            "--key-separator",
            "\t",
            "--header",
            "src=cli",
        ],
        &input,
    )
    .ok();
    assert!(
        r.stderr.contains("Produced 100 records to t."),
        "{}",
        r.stderr
    );

    // Keys went where Kafka's partitioner sends them, in order per key.
    let b = crate::support::open_broker(d);
    for i in 0..7 {
        let key = format!("key-{i}");
        let p = embedlog::partition_for_key(key.as_bytes(), 4);
        let mut values = Vec::new();
        let part = b.partition("t", p).unwrap();
        for batches in part.reader(0, ReadLimit::default()) {
            for r in batches.unwrap().records() {
                let r = r.unwrap();
                if r.key.as_deref() == Some(key.as_bytes()) {
                    values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                    assert_eq!(r.headers[0].key(), "src");
                }
            }
        }
        let expected: Vec<String> = (0..100)
            .filter(|n| n % 7 == i)
            .map(|n| n.to_string())
            .collect();
        assert_eq!(values, expected, "key {key}");
    }
    b.close().unwrap();

    // consume prints everything (partition by partition, each in order).
    let out = run(
        d,
        &[
            "consume",
            "t",
            "--from-beginning",
            "--format",
            "{key}={value}",
        ],
    )
    .ok();
    let mut lines: Vec<&str> = out.lines();
    assert_eq!(lines.len(), 100);
    lines.sort_by_key(|l| l.split('=').nth(1).unwrap().parse::<u32>().unwrap());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("key-{}={i}", i % 7));
    }
    // JSON Lines carry every field.
    let out = run(
        d,
        &[
            "consume",
            "t",
            "--from-beginning",
            "--json",
            "--max-messages",
            "3",
        ],
    )
    .ok();
    assert_eq!(out.lines().len(), 3);
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["topic"], "t");
        assert!(v["key"].as_str().unwrap().starts_with("key-"));
        assert_eq!(v["headers"][0], serde_json::json!(["src", "cli"]));
        assert!(v["timestamp"].as_i64().unwrap() > 0);
    }
}

#[test]
fn consume_starts_at_an_offset_a_partition_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    topic(d, "t", 2);
    {
        let b = crate::support::open_broker(d);
        let p = b.partition("t", 1).unwrap();
        let recs: Vec<Record> = (0..20)
            .map(|i| Record::new(format!("v{i}")).timestamp(1_000_000 + i * 10))
            .collect();
        p.append(&recs).unwrap();
        b.partition("t", 0)
            .unwrap()
            .append(&[Record::new("other").timestamp(500)])
            .unwrap();
        b.close().unwrap();
    }
    let fmt = ["--format", "{partition}:{offset}:{value}"];
    let out = run(
        d,
        &[
            &["consume", "t", "--partition", "1", "--offset", "15"][..],
            &fmt[..],
        ]
        .concat(),
    )
    .ok();
    assert_eq!(
        out.lines(),
        ["1:15:v15", "1:16:v16", "1:17:v17", "1:18:v18", "1:19:v19"]
    );
    let out = run(
        d,
        &[
            &["consume", "t", "--partition", "0", "--offset", "earliest"][..],
            &fmt[..],
        ]
        .concat(),
    )
    .ok();
    assert_eq!(out.lines(), ["0:0:other"]);
    // By time: the first record at or after it, in every partition.
    let out = run(
        d,
        &[&["consume", "t", "--from-time", "1000175"][..], &fmt[..]].concat(),
    )
    .ok();
    assert_eq!(out.lines(), ["1:18:v18", "1:19:v19"]);
    let out = run(
        d,
        &[
            &[
                "consume",
                "t",
                "--partition",
                "1",
                "--from-time",
                "1970-01-01T00:16:40.000Z",
            ][..],
            &fmt[..],
        ]
        .concat(),
    )
    .ok();
    assert_eq!(out.lines().len(), 20, "1970-01-01T00:16:40Z is 1000000 ms");
    // From the end (the default) there is nothing, and it says what to do.
    let r = run(d, &["consume", "t"]).ok();
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("--from-beginning"), "{}", r.stderr);
    // Bad starts are named.
    let r = run(d, &["consume", "t", "--partition", "1", "--offset", "99"]).code(1);
    assert!(
        r.stderr.contains("offset 99 is outside t-1's range 0..20"),
        "{}",
        r.stderr
    );
    let r = run(d, &["consume", "t", "--partition", "7", "--from-beginning"]).code(1);
    assert!(r.stderr.contains("partition"), "{}", r.stderr);
    let r = run(d, &["consume", "t", "--from-time", "yesterday"]).code(1);
    assert!(
        r.stderr.contains("cannot read \"yesterday\" as a time"),
        "{}",
        r.stderr
    );
    let r = run(
        d,
        &["consume", "t", "--from-beginning", "--format", "{nope}"],
    )
    .code(1);
    assert!(r.stderr.contains("unknown field {nope}"), "{}", r.stderr);
    run(d, &["consume", "t", "--offset", "3"]).code(2);
}

#[test]
fn a_bad_line_stops_the_input_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    topic(d, "t", 1);
    let r = run_with_stdin(
        d,
        &["produce", "t", "--key-separator", ":"],
        "a:1\nb:2\nno separator\nc:3\n",
    )
    .code(1);
    assert!(
        r.stderr
            .contains("line 3 of stdin has no key separator \":\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Produced 2 records"), "{}", r.stderr);
    let out = run(
        d,
        &[
            "consume",
            "t",
            "--from-beginning",
            "--format",
            "{key}={value}",
        ],
    )
    .ok();
    assert_eq!(out.lines(), ["a=1", "b=2"]);
    // From a file, to one partition, with fsync.
    let file = d.join("input.txt");
    std::fs::write(&file, "x\ny\n").unwrap();
    run(
        d,
        &[
            "produce",
            "t",
            "--file",
            file.to_str().unwrap(),
            "--partition",
            "0",
            "--sync",
        ],
    )
    .ok();
    let out = run(d, &["consume", "t", "--partition", "0", "--offset", "2"]).ok();
    assert_eq!(out.lines(), ["x", "y"]);
    let r = run(d, &["produce", "t", "--file", "/nonexistent/in.txt"]).code(1);
    assert!(r.stderr.contains("/nonexistent/in.txt"), "{}", r.stderr);
    let r = run_with_stdin(d, &["produce", "missing"], "x\n").code(1);
    assert!(
        r.stderr.contains("unknown topic \"missing\""),
        "{}",
        r.stderr
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    topic(d, "t", 1);
    let input: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    run_with_stdin(d, &["produce", "t"], &input).ok();
    for args in [
        &["consume", "t", "--from-beginning"][..],
        &["dump-log", "--print-data-log"][..],
    ] {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args[0] == "dump-log" {
            let seg = d.join("topics/t/0/00000000000000000000.log");
            args.push(seg.display().to_string());
        }
        let mut child = crate::support::spawn(
            std::process::Command::new(crate::support::BIN)
                .arg("--dir")
                .arg(d)
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        );
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        drop(out); // `| head -1`
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            status.success() || status.signal() == Some(13),
            "{args:?} ended by SIGPIPE or cleanly: {status:?} {err}"
        );
    }
}
