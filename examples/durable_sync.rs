//! Sync durability and a crash-safe restart: a child process appends with
//! `Durability::Sync` and reports each acknowledged offset; the parent kills
//! it with SIGKILL mid-stream, reopens the directory, and checks that every
//! acknowledged record is there, in order, and that appends continue.
//!
//! ```text
//! cargo run --release --example durable_sync [DATA_DIR]
//! ```

use embedlog::{Broker, Durability, ProducerConfig, Record, TopicConfig};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "payments";

fn child(root: &str) -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::open(root)?;
    let producer = broker.producer(
        ProducerConfig::default()
            .durability(Durability::Sync)
            .linger(Duration::ZERO),
    );
    for i in 0u64.. {
        let d = producer.send(TOPIC, Record::new(format!("payment {i}")))?;
        // With Durability::Sync and no linger, the delivery resolves after
        // the fsync: this offset survives a crash, even of the machine.
        println!("{}", d.wait()?.offset);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--child") {
        return child(&args.next().ok_or("--child needs a directory")?);
    }
    let root = first.unwrap_or_else(|| "embedlog-data".into());
    let root = format!("{root}/durable-sync-{}", std::process::id());
    Broker::open(&root)?
        .admin()
        .create_topic(TOPIC, TopicConfig::default())?;

    let mut kid = Command::new(std::env::current_exe()?)
        .args(["--child", &root])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = kid.stdout.take().ok_or("no child stdout")?;
    let mut acked = Vec::new();
    let started = Instant::now();
    for line in BufReader::new(out).lines() {
        acked.push(line?.parse::<u64>()?);
        if acked.len() >= 2000 || started.elapsed() > Duration::from_secs(5) {
            kid.kill()?; // SIGKILL: no flush, no clean shutdown
            break;
        }
    }
    kid.wait()?;
    let elapsed = started.elapsed();
    println!(
        "child acknowledged {} sync appends in {elapsed:.2?} ({:.0}/s), then was killed",
        acked.len(),
        acked.len() as f64 / elapsed.as_secs_f64()
    );

    let opened = Instant::now();
    let broker = Broker::open(&root)?;
    let p = broker.partition(TOPIC, 0)?;
    println!(
        "reopened after the crash in {:.1?}: offsets {}..{}",
        opened.elapsed(),
        p.start_offset(),
        p.end_offset()
    );
    let last = *acked.last().ok_or("nothing acknowledged")?;
    assert!(p.end_offset() > last, "an acknowledged record is missing");
    let mut at = 0;
    while at <= last {
        for r in p.read(at, Default::default())?.records() {
            let r = r?;
            assert_eq!(r.offset, at);
            assert_eq!(r.value.as_deref(), Some(format!("payment {at}").as_bytes()));
            at += 1;
        }
    }
    println!(
        "all {} acknowledged records are present, in order, byte for byte",
        acked.len()
    );
    let next = p.append(&[Record::new("after the crash")])?;
    println!("appends continue at offset {}", next.base_offset);
    broker.close()?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
