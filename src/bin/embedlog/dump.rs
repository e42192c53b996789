//! `embedlog dump-log FILE...` (placeholder until built).
use crate::Outcome;
use crate::common::Fail;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Segment (`.log`), offset index (`.index`) or time index (`.timeindex`) files.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

pub fn run(_args: Args) -> Outcome {
    Err(Fail::new("dump-log is not built yet"))
}
