//! Tail a file into a topic, and materialise the topic into an SQLite
//! table, with the Connect runtime and two built-in connectors.
//!
//! ```text
//! cargo run --release --features sqlite --example file_to_sqlite [LINES] [DIR]
//! ```
//!
//! It writes `LINES` (default 1 000 000) JSON order lines to `DIR/orders.jsonl`
//! (default: a temporary directory), then:
//! 1. a `FileStreamSource` reads the file into the topic `orders`, one
//!    record per line, storing its byte position as it goes;
//! 2. an `SqliteSink` reads `orders` as the consumer group
//!    `connect-orders-to-sqlite` and upserts each order into the table
//!    `orders` of `DIR/orders.db` by its `id` (the JSON fields become
//!    columns);
//! 3. more lines are appended to the file while both run: the source
//!    picks them up, and the sink updates the rows they change.
//!
//! It prints the rate of each connector (records per second, from the
//! moment it starts until its records are committed) and checks the table
//! against the file: one row per id, holding that id's last line.

use embedlog::Broker;
use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig};
use std::error::Error;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

/// The order line for order `id` at version `version`.
fn order(id: u64, version: u64) -> String {
    format!(
        r#"{{"id":{id},"customer":"customer-{}","amount":{}.{:02},"version":{version}}}"#,
        id % 997,
        (id * 37 + version) % 500,
        id % 100
    )
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let temp;
    let dir = match args.next() {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            Path::new(&d).to_path_buf()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let input = dir.join("orders.jsonl");
    let db = dir.join("orders.db");
    {
        let mut w = BufWriter::new(std::fs::File::create(&input)?);
        for id in 0..lines {
            writeln!(w, "{}", order(id, 0))?;
        }
        w.flush()?;
    }
    let size = std::fs::metadata(&input)?.len();
    println!(
        "wrote {lines} lines ({:.1} MB) to {}",
        size as f64 / 1e6,
        input.display()
    );

    let broker = Broker::open(dir.join("data"))?;
    let connect = Connect::with_config(
        &broker,
        ConnectConfig::default().offset_flush_interval(Duration::from_millis(200)),
    )?;

    // 1. The file into the topic.
    let started = Instant::now();
    connect.start(
        ConnectorConfig::new("orders-file", "FileStreamSource")
            .set("file", input.display())
            .set("topic", "orders"),
    )?;
    wait_for(|| Ok(end_offset(&broker)? >= lines))?;
    let source_time = started.elapsed();
    println!(
        "FileStreamSource: {lines} lines in {:.2} s: {:.0} records/s",
        source_time.as_secs_f64(),
        lines as f64 / source_time.as_secs_f64()
    );

    // 2. The topic into SQLite.
    let started = Instant::now();
    connect.start(
        ConnectorConfig::new("orders-to-sqlite", "SqliteSink")
            .set("topics", "orders")
            .set("connection.url", format!("jdbc:sqlite:{}", db.display()))
            .set("pk.mode", "record_value")
            .set("pk.fields", "id"),
    )?;
    wait_for(|| Ok(committed(&broker, "connect-orders-to-sqlite")? >= lines))?;
    let sink_time = started.elapsed();
    println!(
        "SqliteSink: {lines} rows in {:.2} s: {:.0} records/s",
        sink_time.as_secs_f64(),
        lines as f64 / sink_time.as_secs_f64()
    );

    // 3. Changes while both run: every tenth order gets a new version.
    let updates: Vec<u64> = (0..lines).step_by(10).collect();
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&input)?;
        for &id in &updates {
            writeln!(f, "{}", order(id, 1))?;
        }
    }
    let total = lines + updates.len() as u64;
    wait_for(|| Ok(committed(&broker, "connect-orders-to-sqlite")? >= total))?;
    println!(
        "{} updated orders appended to the file reached the table",
        updates.len()
    );
    connect.close();
    broker.close()?;

    // The table holds each id's last line.
    println!("{}", check_table(&db, lines, updates.len() as u64)?);
    Ok(())
}

/// Polls `done` until it holds (for at most ten minutes).
fn wait_for(mut done: impl FnMut() -> Res<bool>) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done()? {
        if Instant::now() > deadline {
            return Err("the connectors made no progress for ten minutes".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn end_offset(broker: &Broker) -> Res<u64> {
    Ok(broker
        .topic("orders")
        .map_or(0, |t| t.partition(0).map_or(0, |p| p.end_offset())))
}

/// The group's committed offset of `orders`-0.
fn committed(broker: &Broker, group: &str) -> Res<u64> {
    let c = broker.consumer(embedlog::ConsumerConfig::default().group(group));
    Ok(c.committed(("orders", 0))?.map_or(0, |o| o.offset))
}

/// Checks the table with the SQLite the connector was built with: one row
/// per id, the updated ones at version 1.
fn check_table(db: &Path, lines: u64, updated: u64) -> Res<String> {
    let conn = rusqlite::Connection::open(db)?;
    let (rows, versions): (i64, i64) =
        conn.query_row("SELECT count(*), sum(version) FROM orders", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if (rows, versions) != (lines as i64, updated as i64) {
        return Err(format!(
            "the table holds {rows} rows, {versions} updated; expected {lines} and {updated}"
        )
        .into());
    }
    Ok(format!(
        "checked: {rows} rows in {}, {updated} of them at their updated version",
        db.display()
    ))
}
