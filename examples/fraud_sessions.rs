//! Session windows for fraud detection: card payments are grouped into
//! sessions of activity (a session ends after 5 minutes without a
//! payment, with 1 minute of grace for late ones); a session with many
//! payments or a large total in a short time is flagged. Sessions merge
//! when a payment bridges two of them, and the merged session replaces
//! both.
//!
//! ```text
//! cargo run --release --features streams --example fraud_sessions
//! ```
//!
//! Runs the topology in the `TopologyTestDriver` (deterministic, no
//! threads) and prints every session it closed and the ones it flagged.

use embedlog::streams::{
    BufferConfig, Consumed, Serdes, SessionWindows, StreamsBuilder, Suppressed, TopologyTestDriver,
    Windowed, windowed_serde,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const MINUTE: i64 = 60_000;

/// What a session adds up to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Activity {
    payments: u32,
    cents: u64,
    merchants: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let sessions = builder
        .stream(
            "payments",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .map_values(|v: String| {
            // "merchant,cents"
            let (merchant, cents) = v.split_once(',').unwrap_or((v.as_str(), "0"));
            (merchant.to_owned(), cents.parse::<u64>().unwrap_or(0))
        })
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(5 * 60),
            Duration::from_secs(60),
        ))
        .aggregate(
            Activity::default,
            |_, (merchant, cents): (String, u64), mut a: Activity| {
                a.payments += 1;
                a.cents += cents;
                if !a.merchants.contains(&merchant) {
                    a.merchants.push(merchant);
                }
                a
            },
            |_, mut a: Activity, b: Activity| {
                a.payments += b.payments;
                a.cents += b.cents;
                for m in b.merchants {
                    if !a.merchants.contains(&m) {
                        a.merchants.push(m);
                    }
                }
                a
            },
        )
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    sessions.to_stream().to("sessions");
    sessions
        .to_stream()
        .filter(|w: &Windowed<String>, a: &Option<Activity>| {
            a.as_ref().is_some_and(|a| {
                let minutes = ((w.window.end - w.window.start) / MINUTE).max(1);
                a.payments >= 5 && a.payments as i64 / minutes >= 1 || a.cents >= 200_000
            })
        })
        .to("flagged");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let payments = driver.input_topic("payments", Serdes::string(), Serdes::string());
    let pay = |card: &str, merchant: &str, cents: u64, minute: f64| {
        payments.pipe_input(
            card.into(),
            format!("{merchant},{cents}"),
            (minute * MINUTE as f64) as i64,
        )
    };
    // The payments in time order (one arriving late), as a payment topic
    // holds them.
    // Card 1: two quiet sessions, an hour apart (the second one below).
    pay("card-1", "bakery", 450, 0.0)?;
    pay("card-1", "bookshop", 2_300, 3.0)?;
    // Card 2: a burst at many merchants, then a payment that arrives two
    // minutes late (within the session, so it still counts).
    for (i, m) in [
        "electronics",
        "jeweller",
        "electronics",
        "watches",
        "jeweller",
        "fuel",
    ]
    .iter()
    .enumerate()
    {
        pay(
            "card-2",
            m,
            25_000 + 1_000 * i as u64,
            10.0 + i as f64 * 0.5,
        )?;
    }
    pay("card-2", "fuel", 6_000, 16.0)?;
    pay("card-2", "cafe", 500, 12.0)?;
    // Card 3: one big purchase.
    pay("card-3", "travel-agent", 310_000, 20.0)?;
    pay("card-1", "bakery", 390, 70.0)?;
    // Hours later: a payment that closes every session above.
    pay("card-4", "bakery", 300, 200.0)?;
    // Far too late for its session: dropped, and counted.
    pay("card-2", "fuel", 4_000, 30.0)?;

    let keys = windowed_serde(Serdes::string());
    let values = Serdes::optional(Serdes::json::<Activity>());
    let print = |w: &Windowed<String>, a: &Activity| {
        println!(
            "  {:<7} {:>6.1}-{:>6.1} min  {} payments, {:>8.2} total, at {}",
            w.key,
            w.window.start as f64 / MINUTE as f64,
            w.window.end as f64 / MINUTE as f64,
            a.payments,
            a.cents as f64 / 100.0,
            a.merchants.join(", ")
        )
    };
    println!("closed sessions:");
    for (w, a) in driver
        .output_topic("sessions", keys.clone(), values.clone())
        .read_key_values_to_list()?
    {
        if let Some(a) = a {
            print(&w, &a);
        }
    }
    println!("flagged:");
    let flagged = driver
        .output_topic("flagged", keys, values)
        .read_key_values_to_list()?;
    for (w, a) in &flagged {
        if let Some(a) = a {
            print(w, a);
        }
    }
    let cards: Vec<&str> = flagged.iter().map(|(w, _)| w.key.as_str()).collect();
    if cards != ["card-2", "card-3"] {
        return Err(format!("expected card-2 and card-3 flagged, got {cards:?}").into());
    }
    println!("{} late payment(s) dropped", driver.metrics().dropped_late);
    Ok(())
}
