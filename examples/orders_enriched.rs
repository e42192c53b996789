//! A stream–table join: each order is enriched with its customer's
//! current record. Customers are a table (the latest record per customer
//! id, from a compacted topic); orders are a stream keyed by customer id.
//! An order looks the customer up when it arrives, so a customer who moves
//! changes the orders after the move, not the ones before; an order from
//! an unknown customer comes out of the left join with no customer.
//!
//! ```text
//! cargo run --release --features streams --example orders_enriched
//! ```
//!
//! It runs the topology twice: in the `TopologyTestDriver` (no threads,
//! deterministic: how to test a topology), then as a `Streams` application
//! over a broker in a temporary directory, and prints what each computed.

use embedlog::streams::{
    Consumed, Materialized, Serdes, Streams, StreamsBuilder, StreamsConfig, Topology,
    TopologyTestDriver,
};
use embedlog::{Broker, CleanupPolicy, IsolationLevel, ProducerConfig, Record, TopicConfig};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    name: String,
    city: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnrichedOrder {
    order: Order,
    customer: Option<String>,
    ship_to: Option<String>,
}

fn topology() -> embedlog::Result<Topology> {
    let builder = StreamsBuilder::new();
    let customers = builder.table(
        "customers",
        Consumed::with(Serdes::string(), Serdes::json::<Customer>()),
        Materialized::as_("customers-store"),
    )?;
    builder
        .stream(
            "orders",
            Consumed::with(Serdes::string(), Serdes::json::<Order>()),
        )
        .left_join(&customers, |order: &Order, customer: Option<&Customer>| {
            EnrichedOrder {
                order: order.clone(),
                customer: customer.map(|c| c.name.clone()),
                ship_to: customer.map(|c| c.city.clone()),
            }
        })
        .with_serdes(Serdes::string(), Serdes::json())
        .to("orders-enriched");
    builder.build()
}

/// The input, in time order: customer updates and orders.
enum Event {
    Customer(&'static str, &'static str, &'static str),
    Order(&'static str, u32, &'static str, u64),
}

const EVENTS: &[Event] = &[
    Event::Customer("c1", "Ada", "London"),
    Event::Customer("c2", "Grace", "Arlington"),
    Event::Order("c1", 1, "notebook", 1_200),
    Event::Order("c2", 2, "compiler", 99_900),
    Event::Customer("c1", "Ada", "Paris"),
    Event::Order("c1", 3, "pen", 300),
    Event::Order("c9", 4, "mystery box", 5_000),
];

fn print(key: &str, e: &EnrichedOrder) {
    println!(
        "  order {} ({}, {:.2}) for {key}: {} -> {}",
        e.order.id,
        e.order.item,
        e.order.cents as f64 / 100.0,
        e.customer.as_deref().unwrap_or("unknown customer"),
        e.ship_to.as_deref().unwrap_or("-"),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", topology()?.describe());

    // 1. The test driver: each record processed to the end when piped.
    let driver = TopologyTestDriver::new(topology()?)?;
    let customers = driver.input_topic("customers", Serdes::string(), Serdes::json::<Customer>());
    let orders = driver.input_topic("orders", Serdes::string(), Serdes::json::<Order>());
    for (t, e) in EVENTS.iter().enumerate() {
        match e {
            Event::Customer(id, name, city) => customers.pipe_input(
                id.to_string(),
                Customer {
                    name: name.to_string(),
                    city: city.to_string(),
                },
                t as i64,
            )?,
            Event::Order(id, n, item, cents) => orders.pipe_input(
                id.to_string(),
                Order {
                    id: *n,
                    item: item.to_string(),
                    cents: *cents,
                },
                t as i64,
            )?,
        }
    }
    let out = driver.output_topic(
        "orders-enriched",
        Serdes::string(),
        Serdes::json::<EnrichedOrder>(),
    );
    println!("test driver:");
    for (key, e) in out.read_key_values_to_list()? {
        print(&key, &e);
    }

    // 2. A Streams application over a broker.
    let dir = std::env::temp_dir().join(format!("embedlog-orders-{}", std::process::id()));
    let broker = Broker::open(&dir)?;
    let admin = broker.admin();
    admin.create_topic(
        "customers",
        TopicConfig::default()
            .partitions(2)
            .cleanup_policy(CleanupPolicy::Compact),
    )?;
    admin.create_topic("orders", TopicConfig::default().partitions(2))?;
    admin.create_topic("orders-enriched", TopicConfig::default().partitions(2))?;
    let streams = Streams::new(&broker, topology()?, StreamsConfig::new("orders-enriched"))?;
    streams.start()?;
    // Send the events one at a time: a customer's update reaches the table
    // before the next order is sent, so the join sees what the driver saw.
    let producer = broker.producer(ProducerConfig::default());
    let mut orders_sent = 0;
    for e in EVENTS {
        let record = match e {
            Event::Customer(id, name, city) => (
                "customers",
                Record::new(serde_json::to_vec(&Customer {
                    name: name.to_string(),
                    city: city.to_string(),
                })?)
                .key(*id),
            ),
            Event::Order(id, n, item, cents) => {
                orders_sent += 1;
                (
                    "orders",
                    Record::new(serde_json::to_vec(&Order {
                        id: *n,
                        item: item.to_string(),
                        cents: *cents,
                    })?)
                    .key(*id),
                )
            }
        };
        producer.send(record.0, record.1)?;
        producer.flush()?;
        let before = streams.metrics().processed;
        let started = Instant::now();
        while streams.metrics().processed == before && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    streams.close()?;
    println!("Streams application:");
    let mut consumer = broker.consumer(
        embedlog::ConsumerConfig::default()
            .offset_reset(embedlog::OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    );
    consumer.assign([("orders-enriched", 0), ("orders-enriched", 1)])?;
    let mut enriched: Vec<(String, EnrichedOrder)> = Vec::new();
    for r in consumer.poll(Duration::from_secs(1))? {
        let key = String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned();
        enriched.push((key, serde_json::from_slice(r.value().unwrap_or_default())?));
    }
    enriched.sort_by_key(|(_, e)| e.order.id);
    for (key, e) in &enriched {
        print(key, e);
    }
    if enriched.len() != orders_sent {
        return Err(format!(
            "{} enriched orders for {orders_sent} orders",
            enriched.len()
        )
        .into());
    }
    broker.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
