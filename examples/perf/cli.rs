//! The command line: the parent's (workloads, options) and the hidden
//! child's (`--child <workload> <step>` and the step's parameters), both
//! sides of the latter here so they cannot drift apart.

use crate::workloads::{Params, Records, Workload, scale};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: cargo run --release --example perf -- [list | all | WORKLOAD | GROUP ...] [OPTIONS]

  list                 the workloads, their groups and default sizes
  all                  every workload but `scale` (the default; with
                       EMBEDLOG_PERF_SCALE_GB set and no workload named: `scale`)
  WORKLOAD / GROUP     the named ones (`txn`, `compression` are groups)

  --records N          records of every workload (default: its own, see `list`)
  --size BYTES         payload size of every workload (8 to 262144)
  --reps N             interleaved rounds (default 3)
  --sync-records N     records of the durable-append workloads (default 5000)
  --reads N            lookups of the random-read workloads (default 100000)
  --dir PATH           scratch directory on the disk to measure (default
                       ./embedlog-perf; each workload's subdirectory is replaced)";

const MAX_SIZE: usize = 256 << 10;

pub enum Command {
    Help,
    List,
    Run(RunArgs),
    Child(ChildArgs),
}

/// What the parent was asked to run.
pub struct RunArgs {
    /// Workload and group names as given (`all` by default).
    pub names: Vec<String>,
    pub records: Option<u64>,
    pub size: Option<usize>,
    pub reps: usize,
    pub sync_records: Option<u64>,
    pub reads: u64,
    pub dir: PathBuf,
    /// The arguments as given, for the report's header.
    pub argv: Vec<String>,
}

impl RunArgs {
    /// The parameters `w`'s children get: its defaults unless overridden.
    pub fn params(&self, w: &Workload) -> Params {
        let records = match w.records_from {
            Records::Main => self.records.unwrap_or(w.records),
            Records::Sync => self.sync_records.unwrap_or(w.records),
            Records::Fixed => w.records,
        };
        Params {
            records,
            size: self.size.unwrap_or(w.size),
            reads: self.reads,
            dir: self.dir.join(&w.name),
        }
    }
}

/// What a child runs: one step of one workload.
pub struct ChildArgs {
    pub workload: String,
    pub step: String,
    pub params: Params,
}

/// The arguments that make a child run `step` of `workload`.
pub fn child_args(workload: &str, step: &str, p: &Params) -> Vec<String> {
    vec![
        "--child".into(),
        workload.into(),
        step.into(),
        "--records".into(),
        p.records.to_string(),
        "--size".into(),
        p.size.to_string(),
        "--reads".into(),
        p.reads.to_string(),
        "--dir".into(),
        p.dir.display().to_string(),
    ]
}

/// Parses the arguments after the program name; `Err` is a usage error.
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("--child") {
        return parse_child(&args[1..]).map(Command::Child);
    }
    let mut run = RunArgs {
        names: Vec::new(),
        records: None,
        size: None,
        reps: 3,
        sync_records: None,
        reads: 100_000,
        dir: PathBuf::from("embedlog-perf"),
        argv: args.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--records" => run.records = Some(number(arg, value()?, 1)?),
            "--size" => run.size = Some(size(value()?)?),
            "--reps" => run.reps = number(arg, value()?, 1)? as usize,
            "--sync-records" => run.sync_records = Some(number(arg, value()?, 1)?),
            "--reads" => run.reads = number(arg, value()?, 1)?,
            "--dir" => run.dir = PathBuf::from(value()?),
            "list" if args.len() == 1 => return Ok(Command::List),
            "list" => return Err("`list` takes no other argument".into()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            name => run.names.push(name.to_string()),
        }
    }
    if run.names.is_empty() {
        let scale_only = std::env::var_os("EMBEDLOG_PERF_SCALE_GB").is_some();
        run.names
            .push(if scale_only { "scale" } else { "all" }.into());
    }
    if run.names.iter().any(|n| n == "scale") {
        scale::gigabytes()?;
    }
    Ok(Command::Run(run))
}

fn parse_child(args: &[String]) -> Result<ChildArgs, String> {
    let [workload, step, rest @ ..] = args else {
        return Err("--child needs a workload and a step".into());
    };
    let (mut records, mut size_, mut reads, mut dir) = (None, None, None, None);
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let value = it.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--records" => records = Some(number(arg, value, 0)?),
            "--size" => size_ = Some(size(value)?),
            "--reads" => reads = Some(number(arg, value, 1)?),
            "--dir" => dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown child option {other}")),
        }
    }
    let missing = |what: &str| format!("--child needs {what}");
    Ok(ChildArgs {
        workload: workload.clone(),
        step: step.clone(),
        params: Params {
            records: records.ok_or_else(|| missing("--records"))?,
            size: size_.ok_or_else(|| missing("--size"))?,
            reads: reads.ok_or_else(|| missing("--reads"))?,
            dir: dir.ok_or_else(|| missing("--dir"))?,
        },
    })
}

fn number(option: &str, value: &str, min: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| n >= min)
        .ok_or(format!("{option} {value}: a whole number ≥ {min}"))
}

fn size(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (8..=MAX_SIZE).contains(n))
        .ok_or(format!("--size {value}: 8 to {MAX_SIZE} bytes"))
}
