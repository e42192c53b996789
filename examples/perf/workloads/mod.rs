//! What is measured: the workloads, each a list of contenders, each a list
//! of steps, and every step one child process.
//!
//! A [`Workload`] has optional *prepare* steps (run once, before the rounds:
//! they write the data a reading contender reads) and its contenders in the
//! order a round runs them: embedlog, the floor (or the workload's own
//! baseline), the `commitlog` peer. A [`Step`] is the code a child runs; it
//! returns its [`Figures`]. The parent never runs a step itself.

mod append;
mod compression;
pub mod floor;
mod input;
mod latency;
mod open;
mod peer;
mod produce;
mod read;
pub mod scale;
mod streams;
mod txn;

use embedlog::{Broker, TopicConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Named figures of one child: `rate` (records or reads per second),
/// `secs`, `p99_ns`, ... (each workload's [`Show`] says which it reports).
pub type Figures = BTreeMap<String, f64>;

/// A step's error: anything, printed by the child before it exits 1.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// What a child is told (`--records`, `--size`, `--reads`, `--dir`).
#[derive(Debug, Clone)]
pub struct Params {
    /// Records the step writes or reads.
    pub records: u64,
    /// Payload bytes per record.
    pub size: usize,
    /// Reads of the random-read workloads.
    pub reads: u64,
    /// The workload's directory; each contender's data is a subdirectory.
    pub dir: PathBuf,
}

/// The topic every broker workload writes.
pub const TOPIC: &str = "perf";
/// Subdirectory of embedlog's data (a broker root or a log directory).
pub const EMBEDLOG: &str = "embedlog";

type Run = Box<dyn Fn(&Params) -> Res<Figures>>;

/// What a step does with its data directory.
#[derive(Debug, Clone, Copy)]
pub enum Data {
    /// Writes `dir/<name>` from nothing: the parent removes it first.
    Writes(&'static str),
    /// Reads what an earlier step wrote.
    Reads,
}

/// The code one child process runs.
pub struct Step {
    pub name: &'static str,
    pub data: Data,
    run: Run,
}

impl Step {
    pub fn writes(
        name: &'static str,
        data: &'static str,
        run: impl Fn(&Params) -> Res<Figures> + 'static,
    ) -> Step {
        Step {
            name,
            data: Data::Writes(data),
            run: Box::new(run),
        }
    }

    pub fn reads(name: &'static str, run: impl Fn(&Params) -> Res<Figures> + 'static) -> Step {
        Step {
            name,
            data: Data::Reads,
            run: Box::new(run),
        }
    }

    pub fn run(&self, params: &Params) -> Res<Figures> {
        (self.run)(params)
    }
}

/// The table column a contender's figures go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Embedlog,
    /// The BufWriter floor, or the workload's own baseline (named by the
    /// contender's label).
    Floor,
    Commitlog,
}

/// One contender of a workload: its steps run one after another, each in
/// its own child; their figures are merged.
pub struct Contender {
    pub column: Column,
    /// Shown before the figures when the column's usual contender is not
    /// what ran ("1 thread", "uncompressed", ...); empty otherwise.
    pub label: &'static str,
    pub steps: Vec<Step>,
}

impl Contender {
    pub fn new(column: Column, steps: Vec<Step>) -> Contender {
        Contender {
            column,
            label: "",
            steps,
        }
    }

    pub fn label(mut self, label: &'static str) -> Contender {
        self.label = label;
        self
    }
}

/// How a workload's figures are shown and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// `rate` per second; ratios of rates.
    Rate,
    /// `p50_ns`, `p99_ns`, `p999_ns`; no ratio.
    Latency,
    /// `ms` (lower is better); ratios of speed (the other's time / ours).
    Millis,
    /// `write_rate`, `read_rate`, `disk_bytes`; ratios of each.
    Compression,
    /// One run, its own table (`gib{k}_rate`, `gib{k}_rss_mb`, ...).
    Scale,
}

/// Which command-line option overrides a workload's record count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// `--records`.
    Main,
    /// `--sync-records` (durable appends).
    Sync,
    /// Neither (the scale run sizes itself in GiB).
    Fixed,
}

pub struct Workload {
    pub name: String,
    /// The table's row label (records and size are appended).
    pub what: String,
    pub records: u64,
    pub size: usize,
    pub records_from: Records,
    pub show: Show,
    /// A group name (`txn`, `compression`) that selects it with others.
    pub group: Option<&'static str>,
    /// Whether `all` selects it.
    pub in_all: bool,
    /// Whether `--reads` is its number of operations (its rows say so).
    pub counts_reads: bool,
    /// Why it cannot run in this build, if it cannot.
    pub unavailable: Option<String>,
    pub prepare: Vec<Step>,
    pub contenders: Vec<Contender>,
}

impl Workload {
    pub fn new(name: &str, what: &str, records: u64, size: usize, show: Show) -> Workload {
        Workload {
            name: name.into(),
            what: what.into(),
            records,
            size,
            records_from: Records::Main,
            show,
            group: None,
            in_all: true,
            counts_reads: false,
            unavailable: None,
            prepare: Vec::new(),
            contenders: Vec::new(),
        }
    }

    pub fn prepare(mut self, step: Step) -> Workload {
        self.prepare.push(step);
        self
    }

    pub fn contender(mut self, contender: Contender) -> Workload {
        self.contenders.push(contender);
        self
    }

    pub fn group(mut self, group: &'static str) -> Workload {
        self.group = Some(group);
        self
    }

    pub fn records_from(mut self, records: Records) -> Workload {
        self.records_from = records;
        self
    }

    pub fn counts_reads(mut self) -> Workload {
        self.counts_reads = true;
        self
    }

    pub fn not_in_all(mut self) -> Workload {
        self.in_all = false;
        self
    }

    pub fn unavailable(mut self, reason: Option<String>) -> Workload {
        self.unavailable = reason;
        self
    }

    /// A step by name, among the prepare steps and the contenders'.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.prepare
            .iter()
            .chain(self.contenders.iter().flat_map(|c| &c.steps))
            .find(|s| s.name == name)
    }
}

/// 100 B records: how many by default, and their size.
pub const SMALL: (u64, usize) = (1_000_000, 100);
/// 1 KiB records.
pub const LARGE: (u64, usize) = (200_000, 1024);

/// Every workload, in the order `all` runs them.
pub fn registry() -> Vec<Workload> {
    let mut all = Vec::new();
    all.extend(produce::workloads());
    all.extend(append::workloads());
    all.extend(read::workloads());
    all.extend(latency::workloads());
    all.extend(produce::threads_workloads());
    all.extend(txn::workloads());
    all.extend(compression::workloads());
    all.extend(open::workloads());
    all.extend(streams::workloads());
    all.extend(scale::workloads());
    all
}

/// The workloads `names` select, in registry order: workload names, group
/// names, and `all` (every workload but the scale run).
pub fn select(names: &[String]) -> Result<Vec<Workload>, String> {
    let registry = registry();
    for n in names {
        let known = n == "all"
            || registry
                .iter()
                .any(|w| &w.name == n || w.group == Some(n.as_str()));
        if !known {
            return Err(format!(
                "unknown workload {n:?} (`perf -- list` shows them)"
            ));
        }
    }
    Ok(registry
        .into_iter()
        .filter(|w| {
            names
                .iter()
                .any(|n| (n == "all" && w.in_all) || *n == w.name || w.group == Some(n.as_str()))
        })
        .collect())
}

/// `perf -- list`.
pub fn list() -> String {
    let mut out = String::new();
    for w in registry() {
        let size = match w.records_from {
            Records::Fixed => "EMBEDLOG_PERF_SCALE_GB GiB".to_string(),
            Records::Sync => format!("{} × {} B (--sync-records)", w.records, w.size),
            Records::Main => format!("{} × {} B", w.records, w.size),
        };
        let size = if w.counts_reads {
            format!("{size}, --reads lookups")
        } else {
            size
        };
        let mut notes = Vec::new();
        if let Some(g) = w.group {
            notes.push(format!("group {g}"));
        }
        if !w.in_all {
            notes.push("not in all".into());
        }
        if let Some(why) = &w.unavailable {
            notes.push(why.clone());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join("; "))
        };
        out.push_str(&format!("{:<18} {} ({size}){notes}\n", w.name, w.what));
    }
    out
}

/// The figures of a throughput step: `records` in `elapsed`.
pub fn throughput(records: u64, elapsed: Duration) -> Figures {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Figures::from([
        ("records".to_string(), records as f64),
        ("secs".to_string(), secs),
        ("rate".to_string(), records as f64 / secs),
    ])
}

/// `dir/name` for a step that writes it (the parent removed it).
pub fn data_dir(p: &Params, name: &str) -> Res<PathBuf> {
    let dir = p.dir.join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Fails the step with `what` unless `ok`.
pub fn ensure(ok: bool, what: impl FnOnce() -> String) -> Res<()> {
    if ok { Ok(()) } else { Err(what().into()) }
}

/// A broker at `root` with the topic [`TOPIC`] created with `config`.
pub fn new_broker(root: &Path, config: TopicConfig) -> Res<Broker> {
    let broker = Broker::open(root)?;
    broker.admin().create_topic(TOPIC, config)?;
    Ok(broker)
}
