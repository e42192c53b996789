//! Streams word count against a hand-written consume-count-produce loop
//! doing the same work (feature `streams`): the framework's overhead.
//!
//! All read the same lines (10 words each from a vocabulary of 1 000,
//! written before the timer in the same child), count words, and at every
//! commit interval (Streams' defaults: 30 s at-least-once, 100 ms
//! exactly-once) write the counts that changed to an output topic and to a
//! changelog topic, then commit the input offsets (in one transaction
//! under exactly-once). Streams re-keys the words through its repartition
//! topic before counting, as Kafka's word count does, so that several
//! instances can share the counting. The baseline does the same work by
//! hand: it writes each word, keyed by itself, to a topic it also consumes
//! and counts from. The third column is a hand loop that counts the lines'
//! words directly (right for one instance only). The timer runs from the
//! start of processing to the last commit (Streams' `close`).

use super::{Column, Contender, Figures, Params, Res, Show, Step, Workload};

const LINES: u64 = 100_000;
#[cfg(feature = "streams")]
const WORDS_PER_LINE: u64 = 10;
#[cfg(feature = "streams")]
const VOCABULARY: u64 = 1_000;

pub fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();
    for (name, eos) in [("streams-alos", false), ("streams-eos", true)] {
        let what = format!(
            "Streams word count, {}, 10 words per line; baseline: a hand-written consume-count-produce loop re-keying through a topic as Streams does; third column: a hand loop counting directly",
            if eos { "exactly-once" } else { "at-least-once" }
        );
        let w = Workload::new(name, &what, LINES, 60, Show::Rate)
            .group("streams")
            .contender(Contender::new(
                Column::Embedlog,
                vec![Step::writes("streams", super::EMBEDLOG, move |p| {
                    run(p, eos, Loop::Streams)
                })],
            ))
            .contender(
                Contender::new(
                    Column::Floor,
                    vec![Step::writes("hand", "hand", move |p| {
                        run(p, eos, Loop::Hand)
                    })],
                )
                .label("hand loop"),
            )
            .contender(
                Contender::new(
                    Column::Commitlog,
                    vec![Step::writes("direct", "direct", move |p| {
                        run(p, eos, Loop::Direct)
                    })],
                )
                .label("hand loop, no re-keying"),
            );
        #[cfg(not(feature = "streams"))]
        let w = w.unavailable(Some("needs --features streams".into()));
        all.push(w);
    }
    all
}

/// Which word count a step runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loop {
    Streams,
    /// By hand, re-keying the words through a topic.
    Hand,
    /// By hand, counting the words of each line at once.
    Direct,
}

#[cfg(not(feature = "streams"))]
fn run(_p: &Params, _eos: bool, _which: Loop) -> Res<Figures> {
    Err("this build has no Streams (--features streams)".into())
}

#[cfg(feature = "streams")]
fn run(p: &Params, eos: bool, which: Loop) -> Res<Figures> {
    use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
    let dir = super::data_dir(
        p,
        match which {
            Loop::Streams => super::EMBEDLOG,
            Loop::Hand => "hand",
            Loop::Direct => "direct",
        },
    )?;
    let broker = Broker::open(&dir)?;
    let admin = broker.admin();
    admin.create_topic("lines", TopicConfig::default())?;
    admin.create_topic("counts", TopicConfig::default())?;
    admin.create_topic("hand-words", TopicConfig::default())?;
    let producer = broker.producer(ProducerConfig::default());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..p.records {
        let mut line = String::with_capacity(64);
        for w in 0..WORDS_PER_LINE {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if w > 0 {
                line.push(' ');
            }
            line.push_str(&format!("w{}", seed % VOCABULARY));
        }
        producer.send("lines", Record::new(line).key(i.to_string()))?;
    }
    producer.flush()?;
    let words = p.records * WORDS_PER_LINE;
    let started = std::time::Instant::now();
    match which {
        Loop::Streams => streams_word_count(&broker, eos, p.records + words)?,
        Loop::Hand => hand_word_count(&broker, eos, words, true)?,
        Loop::Direct => hand_word_count(&broker, eos, words, false)?,
    }
    let elapsed = started.elapsed();
    broker.close()?;
    Ok(super::throughput(p.records, elapsed))
}

#[cfg(feature = "streams")]
fn streams_word_count(broker: &embedlog::Broker, eos: bool, records: u64) -> Res<()> {
    use embedlog::streams::{
        Consumed, ProcessingGuarantee, Serdes, Streams, StreamsBuilder, StreamsConfig,
    };
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Serdes::string(), Serdes::string()))
        .flat_map_values(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .group_by(|_, w: &String| w.clone())
        .count()
        .to_stream()
        .to("counts");
    let guarantee = if eos {
        ProcessingGuarantee::ExactlyOnce
    } else {
        ProcessingGuarantee::AtLeastOnce
    };
    let streams = Streams::new(
        broker,
        builder.build()?,
        StreamsConfig::new("wc").processing_guarantee(guarantee),
    )?;
    streams.start()?;
    // Lines, then every word again from the repartition topic.
    while streams.metrics().processed < records {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    streams.close()?;
    Ok(())
}

#[cfg(feature = "streams")]
fn hand_word_count(broker: &embedlog::Broker, eos: bool, words: u64, rekey: bool) -> Res<()> {
    use embedlog::{
        ConsumerConfig, IsolationLevel, OffsetAndMetadata, OffsetReset, ProducerConfig, Record,
        TopicConfig, TopicPartition,
    };
    use std::collections::HashMap;
    broker
        .admin()
        .create_topic("hand-changelog", TopicConfig::default())?;
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group("hand")
            .offset_reset(OffsetReset::Earliest)
            .auto_commit(None)
            .isolation_level(if eos {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            }),
    );
    consumer.subscribe(["lines", "hand-words"])?;
    let mut config = ProducerConfig::default();
    if eos {
        config = config.transactional_id("hand");
    }
    let producer = broker.producer(config);
    if eos {
        producer.init_transactions()?;
        producer.begin_transaction()?;
    }
    let every = std::time::Duration::from_millis(if eos { 100 } else { 30_000 });
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut dirty: HashMap<String, ()> = HashMap::new();
    let mut last = std::time::Instant::now();
    let mut counted = 0u64;
    let inputs = [
        TopicPartition::new("lines", 0),
        TopicPartition::new("hand-words", 0),
    ];
    loop {
        let done = counted >= words;
        if done || last.elapsed() >= every {
            for (w, ()) in dirty.drain() {
                let n = counts[&w];
                let value = n.to_be_bytes().to_vec();
                producer.send("counts", Record::new(value.clone()).key(w.clone()))?;
                producer.send("hand-changelog", Record::new(value).key(w))?;
            }
            let mut offsets = Vec::new();
            for tp in &inputs {
                offsets.push((
                    tp.clone(),
                    OffsetAndMetadata::new(consumer.position(tp.clone())?),
                ));
            }
            if eos {
                producer.send_offsets_to_transaction(offsets, &consumer.group_metadata()?)?;
                producer.commit_transaction()?;
                if !done {
                    producer.begin_transaction()?;
                }
            } else {
                producer.flush()?;
                consumer.commit_offsets(offsets)?;
            }
            last = std::time::Instant::now();
            if done {
                return Ok(());
            }
        }
        for r in consumer.poll(std::time::Duration::from_millis(100))? {
            let text = std::str::from_utf8(r.value().unwrap_or_default())?;
            if r.topic() == "lines" && rekey {
                for w in text.split(' ') {
                    producer.send("hand-words", Record::new(w.to_owned()).key(w.to_owned()))?;
                }
                continue;
            }
            for w in text.split(' ') {
                counted += 1;
                *counts.entry(w.to_owned()).or_default() += 1;
                dirty.insert(w.to_owned(), ());
            }
        }
    }
}
