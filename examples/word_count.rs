//! Kafka Streams' word count, in-process: lines of text go into a topic,
//! a Streams application splits them into words, re-keys them by word
//! (through a repartition topic), counts each word in a state store backed
//! by a changelog topic, and writes every count update to an output topic.
//! The example then asks the running application for its counts
//! (interactive queries) and prints the most frequent words.
//!
//! ```text
//! cargo run --release --features streams --example word_count [DATA_DIR]
//! ```
//!
//! Without `DATA_DIR` it works in a fresh temporary directory and removes
//! it at the end. Given one, run it again: the application resumes from its
//! committed offsets, restores its counts from the changelog, and counts
//! the new lines on top of the old ones.

use embedlog::streams::{
    Consumed, Materialized, ProcessingGuarantee, Serdes, Streams, StreamsBuilder, StreamsConfig,
};
use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
use std::time::{Duration, Instant};

const TEXT: &str = "\
It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness, it was the epoch of belief, it was the epoch of
incredulity, it was the season of Light, it was the season of Darkness, it was
the spring of hope, it was the winter of despair, we had everything before us,
we had nothing before us, we were all going direct to Heaven, we were all going
direct the other way";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args().nth(1);
    let root = given
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("embedlog-word-count-{}", std::process::id()))
        });
    let broker = Broker::open(&root)?;
    let admin = broker.admin();
    for topic in ["text-lines", "word-counts"] {
        if !admin.list_topics()?.iter().any(|t| t == topic) {
            admin.create_topic(topic, TopicConfig::default().partitions(3))?;
        }
    }

    // The input: each line of the text, 200 times.
    let producer = broker.producer(ProducerConfig::default());
    let mut words = 0u64;
    for round in 0..200 {
        for (i, line) in TEXT.lines().enumerate() {
            words += line
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .count() as u64;
            producer.send("text-lines", Record::new(line).key(format!("{round}-{i}")))?;
        }
    }
    producer.flush()?;

    // The topology: lines -> words -> re-keyed by word -> counted.
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "text-lines",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .flat_map_values(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word: &String| word.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to("word-counts");
    let topology = builder.build()?;
    println!("{}", topology.describe());

    let config = StreamsConfig::new("word-count")
        .num_stream_threads(2)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    let streams = Streams::new(&broker, topology, config)?;
    let started = Instant::now();
    streams.start()?;

    // Ask the running application until its counts cover every word sent
    // (all runs' words, with a data directory given).
    let counts = streams.key_value_store::<String, i64>("counts")?;
    let rounds = admin.describe_topic("text-lines")?.record_count() / TEXT.lines().count() as u64;
    let want = rounds * (words / 200);
    loop {
        let counted: i64 = counts.all()?.iter().map(|(_, n)| n).sum();
        if counted as u64 >= want {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("counted {counted} of {want} words in 60 s").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    let mut all = counts.all()?;
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "counted {want} words ({} distinct) in {elapsed:.1?}; the most frequent:",
        all.len()
    );
    for (word, n) in all.iter().take(10) {
        println!("  {word:>12} {n}");
    }
    let metrics = streams.metrics();
    streams.close()?;
    println!(
        "{} records processed (lines, then words through the repartition topic); \
         every count update is in topic word-counts",
        metrics.processed
    );
    broker.close()?;
    if given.is_none() {
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}
