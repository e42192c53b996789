//! 1,000 consumer streams on a tokio runtime of two worker threads all
//! receive every record a producer sends, with no thread per stream and no
//! polling: while all of them wait, the process uses next to no CPU.
//!
//! Kept in its own test binary (with `required-features = ["async"]`):
//! the thread count and the CPU time are the whole process's, so the test
//! re-runs this binary (`current_exe`, `--exact <name>`) as a child that
//! runs nothing else, as `tests/descriptors_bounded.rs` does.

mod common;
use embedlog::{ConsumerConfig, OffsetReset, ProducerConfig, Record, TopicConfig};
use std::time::Duration;

const STREAMS: usize = 1000;
const PARTITIONS: u32 = 4;
/// Records sent before the idle second, and after it.
const BEFORE: usize = 200;
const AFTER: usize = 200;
/// Most CPU time the whole process may use in the idle second: a stream
/// that polled on a timer or spun would cost far more (two busy workers
/// burn 2 s of CPU a second); waiting streams cost nothing, and what is
/// left is the library's own periodic threads (the producer's linger tick,
/// the broker's housekeeping).
const IDLE_CPU_BOUND: Duration = Duration::from_millis(150);

/// Set in the child process; names the test to run there.
const CHILD_ENV: &str = "EMBEDLOG_ASYNC_CHILD";

/// CPU time the process's threads have used: the sum over them of
/// `/proc/self/task/*/schedstat` (nanoseconds on a CPU; the measure
/// `tests/it/consumer_poll.rs` takes for one thread). A thread that ends
/// takes its time with it, so this is only compared across a stretch in
/// which none ends (the idle second: the runtime's workers, the broker's
/// and the producer's threads all live on).
fn process_cpu() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("schedstat")) else {
            continue; // it ended meanwhile
        };
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// Threads of the process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_thousand_idle_streams_cost_no_thread_and_no_cpu() {
    if !std::path::Path::new("/proc/self/schedstat").exists() {
        eprintln!("no /proc/self/schedstat here; skipping");
        return;
    }
    let name = "child_a_thousand_streams";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "child failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The figures, for the log of the run.
    for line in stdout
        .lines()
        .filter_map(|l| l.find("CHILD").map(|i| &l[i..]))
    {
        println!("{line}");
    }
}

/// Run by `a_thousand_idle_streams_cost_no_thread_and_no_cpu`, alone in
/// its process.
#[test]
fn child_a_thousand_streams() {
    if std::env::var_os(CHILD_ENV).is_none_or(|v| v != "child_a_thousand_streams") {
        return; // only meaningful as the child
    }
    let dir = common::tempdir();
    let broker = common::broker_with_topic(
        dir.path(),
        "t",
        TopicConfig::default().partitions(PARTITIONS),
    );
    let producer = broker.producer(ProducerConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let threads_before = threads();
    // The same second before any stream exists: what the runtime, the
    // broker and the producer cost on their own.
    let cpu_before = process_cpu();
    // The measured window, not a wait for something to happen: nothing
    // is decided by how long it takes (every wait for an outcome below is
    // on a channel or a future), only CPU used inside it is compared.
    std::thread::sleep(Duration::from_secs(1));
    let baseline_cpu = process_cpu().saturating_sub(cpu_before);

    // Each stream tells the main thread when it has every record sent so
    // far; it then waits for more inside `next().await`.
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|i| {
            let mut c =
                broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
            c.assign((0..PARTITIONS).map(|p| ("t", p))).unwrap();
            let tx = tx.clone();
            rt.spawn(async move {
                let mut got = Vec::with_capacity(BEFORE + AFTER);
                let mut stream = c.stream();
                for phase in [BEFORE, BEFORE + AFTER] {
                    while got.len() < phase {
                        let r = stream.next().await.unwrap().unwrap();
                        got.push((r.partition, r.offset, r.value_bytes().unwrap()));
                    }
                    tx.send(i).unwrap();
                }
                got
            })
        })
        .collect();

    // Sends records `from..to`, flushes, and checks they are stored.
    let send = |from: usize, to: usize| {
        let deliveries: Vec<_> = (from..to)
            .map(|n| {
                producer
                    .send("t", Record::new(format!("{n}")).key(format!("key-{n}")))
                    .unwrap()
            })
            .collect();
        producer.flush().unwrap();
        for d in deliveries {
            d.wait().unwrap();
        }
    };
    send(0, BEFORE);
    for _ in 0..STREAMS {
        rx.recv().unwrap();
    }

    // Every stream has all it can have, and is (about to be) waiting: its
    // last fetch and its registration may fall inside the idle second.
    let threads_idle = threads();
    let cpu_before = process_cpu();
    let wall = std::time::Instant::now();
    // The idle window measured (as the baseline's above).
    std::thread::sleep(Duration::from_secs(1));
    let idle_cpu = process_cpu().saturating_sub(cpu_before);
    let wall = wall.elapsed();

    send(BEFORE, BEFORE + AFTER);
    let results = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    for _ in 0..STREAMS {
        rx.recv().unwrap();
    }

    // What each stream must have received: every record, each
    // partition's in offset order.
    let mut want = Vec::new();
    for p in 0..PARTITIONS {
        let part = broker.partition("t", p).unwrap();
        for r in common::read_all(&part.log()).unwrap() {
            want.push((p, r.offset, r.value.unwrap()));
        }
    }
    assert_eq!(want.len(), BEFORE + AFTER);
    for got in results {
        for p in 0..PARTITIONS {
            let mine: Vec<_> = got.iter().filter(|r| r.0 == p).collect();
            let theirs: Vec<_> = want.iter().filter(|r| r.0 == p).collect();
            assert_eq!(mine, theirs, "partition {p}");
        }
    }
    assert!(
        threads_idle == threads_before,
        "{threads_before} threads before the streams, {threads_idle} with {STREAMS} of them"
    );
    assert!(
        idle_cpu < IDLE_CPU_BOUND,
        "{STREAMS} idle streams used {idle_cpu:?} of CPU in {wall:?}"
    );
    println!(
        "CHILD OK streams={STREAMS} threads_before={threads_before} threads_idle={threads_idle} \
         idle_cpu_us={} baseline_cpu_us={} wall_ms={}",
        idle_cpu.as_micros(),
        baseline_cpu.as_micros(),
        wall.as_millis()
    );
}
