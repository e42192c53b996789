//! `embedlog perf produce|consume` (placeholder until built).
use crate::Outcome;
use crate::common::Fail;
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Producer throughput and latency.
    Produce {},
    /// Consumer throughput.
    Consume {},
}

pub fn run(_dir: &Path, _cmd: Cmd) -> Outcome {
    Err(Fail::new("perf is not built yet"))
}
