//! The result: for each workload and contender the median and the min–max
//! of its figures over the rounds, and the median of the per-round ratios
//! (embedlog / floor, embedlog / commitlog), as a markdown table.

use crate::cli::RunArgs;
use crate::driver::{Outcome, Rounds};
use crate::workloads::{Column, Figures, Show};

/// Median, least and greatest of some values.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// `key` of every round that succeeded.
fn values(rounds: &Rounds, key: &str) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|r| r.as_ref().ok()?.get(key).copied())
        .collect()
}

/// Per round, `ours[key] / theirs[key]` (or the inverse for a time, so
/// that above 1 means embedlog is faster), where both succeeded.
fn ratios(ours: &Rounds, theirs: &Rounds, key: &str, time: bool) -> Vec<f64> {
    ours.iter()
        .zip(theirs)
        .filter_map(|(a, b)| {
            let (a, b) = (*a.as_ref().ok()?.get(key)?, *b.as_ref().ok()?.get(key)?);
            let r = if time { b / a } else { a / b };
            r.is_finite().then_some(r)
        })
        .collect()
}

/// How a rate of about `x` per second is written: divisor, digits, unit.
fn rate_unit(x: f64) -> (f64, usize, &'static str) {
    if x >= 1e6 {
        (1e6, 2, "M/s")
    } else if x >= 1e3 {
        (1e3, 1, "k/s")
    } else {
        (1.0, 0, "/s")
    }
}

impl Spread {
    fn one(x: f64) -> Spread {
        Spread {
            median: x,
            min: x,
            max: x,
        }
    }

    /// `median (min–max)`, each written by `f`; the median alone when the
    /// three read the same.
    fn show(&self, f: impl Fn(f64) -> String) -> String {
        let (median, min, max) = (f(self.median), f(self.min), f(self.max));
        if min == max {
            median
        } else {
            format!("{median} ({min}–{max})")
        }
    }
}

/// `3.21 (3.10–3.30) M/s`: a rate with the unit its median needs.
fn rate(s: Spread) -> String {
    let (div, digits, unit) = rate_unit(s.median);
    format!("{} {unit}", s.show(|x| format!("{:.*}", digits, x / div)))
}

fn micros(ns: f64) -> String {
    let us = ns / 1e3;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// `0.40× (0.38–0.43)`.
fn ratio(s: Spread) -> String {
    let shown = s.show(|x| format!("{x:.2}"));
    match shown.split_once(' ') {
        Some((median, spread)) => format!("{median}× {spread}"),
        None => format!("{shown}×"),
    }
}

/// One line for the progress log: a child's main figure.
pub fn brief(show: Show, f: &Figures) -> String {
    let get = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    match show {
        Show::Rate => rate(Spread::one(get("rate"))),
        Show::Latency => format!(
            "p50 {} µs, p99 {} µs, p99.9 {} µs",
            micros(get("p50_ns")),
            micros(get("p99_ns")),
            micros(get("p999_ns"))
        ),
        Show::Millis => format!("{:.2} ms", get("ms")),
        Show::Compression => format!(
            "write {}, read {}, {:.1} MB",
            rate(Spread::one(get("write_rate"))),
            rate(Spread::one(get("read_rate"))),
            get("disk_bytes") / 1e6
        ),
        Show::Scale => format!("reopen {:.2} ms", get("reopen_ms")),
    }
}

/// A contender's cell: its figures over the rounds.
fn cell(show: Show, label: &str, rounds: &Rounds) -> String {
    let failed = rounds.iter().filter(|r| r.is_err()).count();
    if failed == rounds.len() {
        let why = rounds.iter().find_map(|r| r.as_ref().err());
        return format!("failed: {}", why.map_or("", String::as_str));
    }
    let s = |k: &str| spread(values(rounds, k));
    let text = match show {
        Show::Rate => s("rate").map(rate),
        Show::Latency => (|| {
            let p = |k: &str| s(k).map(|v| v.show(micros));
            Some(format!(
                "p50 {}, p99 {}, p99.9 {} µs",
                p("p50_ns")?,
                p("p99_ns")?,
                p("p999_ns")?
            ))
        })(),
        Show::Millis => s("ms").map(|v| format!("{} ms", v.show(|x| format!("{x:.2}")))),
        Show::Compression => (|| {
            Some(format!(
                "write {}, read {}, {:.1} MB",
                rate(s("write_rate")?),
                rate(s("read_rate")?),
                s("disk_bytes")?.median / 1e6
            ))
        })(),
        Show::Scale => None,
    };
    let mut text = text.unwrap_or_else(|| "—".into());
    if !label.is_empty() {
        text = format!("{label}: {text}");
    }
    if failed > 0 {
        text.push_str(&format!(" ({failed} of {} rounds failed)", rounds.len()));
    }
    text
}

/// The ratio cell of embedlog against another contender.
fn ratio_cell(show: Show, ours: &Rounds, theirs: &Rounds) -> String {
    let r = |k: &str, time: bool| spread(ratios(ours, theirs, k, time));
    let text = match show {
        Show::Rate => r("rate", false).map(ratio),
        Show::Millis => r("ms", true).map(|s| format!("{} (speed)", ratio(s))),
        Show::Compression => (|| {
            Some(format!(
                "write {}, read {}, size {}",
                ratio(r("write_rate", false)?),
                ratio(r("read_rate", false)?),
                ratio(r("disk_bytes", false)?)
            ))
        })(),
        Show::Latency | Show::Scale => None,
    };
    text.unwrap_or_else(|| "—".into())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The command that produced the figures, as a user would type it.
fn command(args: &RunArgs) -> String {
    let features = if cfg!(feature = "compression") {
        " --features compression"
    } else {
        ""
    };
    let scale = std::env::var("EMBEDLOG_PERF_SCALE_GB")
        .map(|v| format!("EMBEDLOG_PERF_SCALE_GB={v} "))
        .unwrap_or_default();
    let quoted: Vec<String> = args
        .argv
        .iter()
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| !(c.is_ascii_alphanumeric() || "-_./=,".contains(c)))
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect();
    format!(
        "{scale}cargo run --release{features} --example perf -- {}",
        quoted.join(" ")
    )
    .trim_end()
    .to_string()
}

/// The header line and the markdown table (and the scale run's own table).
pub fn render(args: &RunArgs, outcomes: &[Outcome]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let given = |v: Option<String>, what: &str| {
        v.map_or(format!("{what} per row"), |v| {
            format!("{what} {v} (all rows)")
        })
    };
    let mut out = format!(
        "embedlog perf: {}, {}, durable appends {}, random reads {}, {} interleaved \
         round(s), {cores} cores; every figure from a fresh process after sync(2)\n\
         command: `{}`\n\n",
        given(args.records.map(thousands), "records"),
        given(args.size.map(|s| format!("{s} B")), "size"),
        args.sync_records.map_or("per row".into(), thousands),
        thousands(args.reads),
        args.reps,
        command(args),
    );
    if outcomes.iter().any(|o| o.workload.show != Show::Scale) {
        out.push_str(
            "| workload | embedlog median (min–max) | floor median (min–max) | \
             commitlog 0.2 median (min–max) | ratio to floor (median of rounds) | \
             ratio to commitlog |\n|---|---|---|---|---|---|\n",
        );
    }
    let mut scale = String::new();
    for o in outcomes {
        let w = &o.workload;
        let what = match w.show {
            Show::Scale => format!("`{}`: {}", w.name, w.what),
            _ => format!(
                "`{}`: {} — {} × {} B{}",
                w.name,
                w.what,
                thousands(o.params.records),
                o.params.size,
                if w.counts_reads {
                    format!(", {} reads", thousands(o.params.reads))
                } else {
                    String::new()
                }
            ),
        };
        let contenders = match &o.contenders {
            Err(why) => {
                out.push_str(&format!("| {what} | {why} | — | — | — | — |\n"));
                continue;
            }
            Ok(c) => c,
        };
        let find = |col: Column| {
            w.contenders
                .iter()
                .zip(contenders)
                .find(|(c, _)| c.column == col)
        };
        if w.show == Show::Scale {
            if let Some((_, rounds)) = find(Column::Embedlog) {
                scale.push_str(&scale_table(rounds));
            }
            continue;
        }
        let ours = find(Column::Embedlog);
        let column =
            |col: Column| find(col).map_or("—".into(), |(c, r)| cell(w.show, c.label, r));
        let ratio_to = |col: Column| match (ours, find(col)) {
            (Some((_, a)), Some((_, b))) => ratio_cell(w.show, a, b),
            _ => "—".into(),
        };
        out.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} |\n",
            column(Column::Embedlog),
            column(Column::Floor),
            column(Column::Commitlog),
            ratio_to(Column::Floor),
            ratio_to(Column::Commitlog),
        ));
    }
    out.push_str(&scale);
    out
}

/// The scale run: a row per GiB, then the reopen.
fn scale_table(rounds: &Rounds) -> String {
    let f = match rounds.first() {
        Some(Ok(f)) => f,
        Some(Err(e)) => return format!("\nscale run failed: {e}\n"),
        None => return String::new(),
    };
    let get = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    let mut out =
        String::from("\n| GiB written | M rec/s in this GiB | RSS (MB) |\n|---|---|---|\n");
    for step in 1..=get("gib") as u64 {
        out.push_str(&format!(
            "| {step} | {:.2} | {:.0} |\n",
            get(&format!("gib{step}_rate")) / 1e6,
            get(&format!("gib{step}_rss_mb"))
        ));
    }
    out.push_str(&format!(
        "\nreopened {:.1} GB ({} segments) after a clean close in {:.2} ms\n",
        get("disk_bytes") / 1e9,
        get("segments"),
        get("reopen_ms")
    ));
    out
}
