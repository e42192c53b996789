//! Worker threads sharing a topic as one consumer group.
//!
//! Three workers subscribe to `jobs` (8 partitions) in the group `workers`;
//! a fourth joins halfway and one leaves, and the group rebalances each
//! time (cooperative sticky: only moved partitions change hands). Each
//! worker commits after processing what a poll returned (at-least-once).
//! At the end every job was processed, and the group's lag is 0.
//!
//! ```text
//! cargo run --release --example consumer_group
//! ```

use embedlog::{
    Broker, Consumer, ConsumerConfig, OffsetReset, ProducerConfig, RebalanceListener, Record,
    TopicConfig, TopicPartition,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: u64 = 200_000;

/// Prints each rebalance a worker goes through.
struct Log(String);

impl RebalanceListener for Log {
    fn on_revoked(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        println!("{}: revoked {}", self.0, names(partitions));
    }
    fn on_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        println!("{}: assigned {}", self.0, names(partitions));
    }
}

fn names(partitions: &[TopicPartition]) -> String {
    let mut v: Vec<u32> = partitions.iter().map(|tp| tp.partition).collect();
    v.sort_unstable();
    let v: Vec<String> = v.iter().map(u32::to_string).collect();
    format!("[{}]", v.join(", "))
}

fn worker(
    broker: Broker,
    name: String,
    done: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
) -> embedlog::Result<u64> {
    let config = ConsumerConfig::default()
        .group("workers")
        .offset_reset(OffsetReset::Earliest);
    let mut consumer = broker.consumer(config);
    consumer.set_rebalance_listener(Log(name.clone()));
    consumer.subscribe(&["jobs"])?;
    let mut processed = 0;
    while !stop.load(Ordering::SeqCst) {
        let records = consumer.poll(Duration::from_millis(50))?;
        let mut d = done.lock().expect("no worker panics while holding it");
        for r in &records {
            let job: u64 = std::str::from_utf8(r.value().unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            d.insert(job);
        }
        drop(d);
        processed += records.len() as u64;
        // Processed: commit, so that whoever owns these partitions next
        // resumes after them.
        consumer.commit()?;
    }
    consumer.close()?;
    println!("{name}: processed {processed} jobs");
    Ok(processed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("embedlog-group-{}", std::process::id()));
    let broker = Broker::open(&dir)?;
    broker
        .admin()
        .create_topic("jobs", TopicConfig::default().partitions(8))?;
    let done = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let spawn = |i: usize| {
        let (b, d, s) = (broker.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || worker(b, format!("worker-{i}"), d, s))
    };
    let mut workers: Vec<_> = (0..3).map(spawn).collect();
    let producer = broker.producer(ProducerConfig::default());
    for job in 0..JOBS {
        producer.send(
            "jobs",
            Record::new(job.to_string()).key(format!("customer-{}", job % 1000)),
        )?;
        if job == JOBS / 2 {
            producer.flush()?;
            workers.push(spawn(3));
        }
    }
    producer.flush()?;
    // Let one worker go; the others take its partitions over.
    let leaver = {
        let (b, d) = (broker.clone(), done.clone());
        let s = Arc::new(AtomicBool::new(false));
        let s2 = s.clone();
        let h = std::thread::spawn(move || worker(b, "worker-4".into(), d, s2));
        std::thread::sleep(Duration::from_millis(200));
        s.store(true, Ordering::SeqCst);
        h
    };
    let mut total = leaver.join().map_err(|_| "worker panicked")??;
    while done.lock().map_err(|_| "poisoned")?.len() < JOBS as usize {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Wait until every commit is in, then stop the workers.
    loop {
        let d = broker.admin().describe_group("workers")?;
        if d.offsets.len() == 8 && d.offsets.iter().all(|o| o.lag == Some(0)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        total += w.join().map_err(|_| "worker panicked")??;
    }
    let d = broker.admin().describe_group("workers")?;
    println!(
        "{} distinct jobs processed ({total} deliveries, {} redelivered after rebalances); group {:?}, lag {:?}",
        done.lock().map_err(|_| "poisoned")?.len(),
        total.saturating_sub(JOBS),
        d.state,
        d.offsets.iter().map(|o| o.lag.unwrap_or(0)).sum::<u64>()
    );
    broker.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
